"""A city's CRM web service for tests: the webhook connector's protocol (HMAC-signed JSON POSTs), real HTTP.

`running_crm()` serves it on a free loopback port with one known caller (905-555-0123, Rosa Martins,
one open case CAS-01042). Set `mode` / `delay_s` to make it late, fail with 500 or answer garbage.
Cases filed (`POST /crm/cases`) and updated (`POST /crm/cases/{id}`) are recorded in `created` and
`updates`; a filed case for a known person joins their open cases. `refused_services` are answered 422.
Importable from every test folder (tests/ is on sys.path, as for `testsupport`).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from cti.connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

SECRET = "test-crm-webhook-secret"


class CrmService(http.server.ThreadingHTTPServer):
    """A city's CRM web service speaking the webhook connector's protocol (signed JSON POSTs).

    `mode`: "ok" answers (a lookup after `delay_s`); "500" fails; "garbage" answers 200 with something that
    is not JSON."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CrmHandler)
        self.mode, self.delay_s = "ok", 0.0
        self.people: dict[str, dict[str, Any]] = {}  # phone -> person
        self.cases: dict[str, list[dict[str, Any]]] = {}  # person id -> open cases
        self.answered: list[float] = []  # when each lookup was answered (wall clock)
        self.bad_signatures = 0
        self.created: list[dict[str, Any]] = []  # the CaseInput bodies of cases filed, in order
        self.updates: list[tuple[str, dict[str, Any]]] = []  # (case id, CaseUpdate body)
        self.notes: dict[str, list[str]] = {}  # case id -> notes added
        self.refused_services: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/crm"


class _CrmHandler(http.server.BaseHTTPRequestHandler):
    server: CrmService

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # the http.server name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not verify_signature(SECRET.encode(), self.headers.get(TIMESTAMP_HEADER, ""), body,
                                self.headers.get(SIGNATURE_HEADER, "")):
            self.server.bad_signatures += 1
            return self._reply(401, b'{"detail": "bad signature"}')
        if self.path == "/crm/lookup":
            time.sleep(self.server.delay_s)
        if self.server.mode == "500":
            return self._reply(500, b"Internal Server Error")
        if self.server.mode == "garbage":
            return self._reply(200, b"<html>maintenance</html>")
        data = json.loads(body)
        if self.path == "/crm/lookup":
            digits = "".join(ch for ch in data.get("phone") or "" if ch.isdigit())[-10:]  # as a CRM would
            person = self.server.people.get(digits)
            self.server.answered.append(time.time())
            return self._reply(200, json.dumps({"people": [person] if person else []}).encode())
        if self.path == "/crm/cases/open":
            found = self.server.cases.get(data["person_id"], [])
            return self._reply(200, json.dumps({"cases": found}).encode())
        if self.path == "/crm/cases":
            return self._create(data)
        if self.path.startswith("/crm/cases/"):
            return self._update(self.path.removeprefix("/crm/cases/"), data)
        self._reply(404, b'{"detail": "no such path"}')

    def _create(self, data: dict[str, Any]) -> None:
        if data["service_code"] in self.server.refused_services:
            detail = f"no case type for service {data['service_code']}"
            return self._reply(422, json.dumps({"detail": detail}).encode())
        self.server.created.append(data)
        n = len(self.server.created)
        case = {"id": f"inc-new-{n}", "reference": f"CAS-{2000 + n:05d}", "title": data["service_code"],
                "status": "active", "opened_at": "2026-11-23T16:00:00+00:00"}
        if data.get("person_id") in self.server.cases:
            self.server.cases[data["person_id"]].insert(0, case)
        return self._reply(201, json.dumps({"case": case}).encode())

    def _update(self, case_id: str, data: dict[str, Any]) -> None:
        case = next((c for cases in self.server.cases.values() for c in cases if c["id"] == case_id), None)
        if case is None:
            return self._reply(404, json.dumps({"detail": f"no case {case_id}"}).encode())
        self.server.updates.append((case_id, data))
        if data.get("note"):
            self.server.notes.setdefault(case_id, []).append(data["note"])
        if data.get("status"):
            case["status"] = data["status"]
        return self._reply(200, json.dumps({"case": case}).encode())

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the connector gave up waiting
            self.wfile.write(body)


@contextlib.contextmanager
def running_crm() -> Iterator[CrmService]:
    service = CrmService()
    service.people["9055550123"] = {"id": "contact-7", "name": "Rosa Martins", "phones": ["+19055550123"]}
    service.cases["contact-7"] = [{"id": "inc-1", "reference": "CAS-01042", "title": "Tree down",
                                   "status": "active", "opened_at": "2026-11-02T15:04:00+00:00"}]
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.shutdown()
        service.server_close()
