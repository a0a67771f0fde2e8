"""The webhook connector against a real HTTP receiver that checks every signature the documented way.

The receiver recomputes HMAC-SHA256 over "<timestamp>." + the exact body bytes with its own copy of the
secret (written here from the scheme in cti/connectors/webhook.py's docstring, not by calling its code),
refuses a wrong signature or a stale timestamp with 401, and otherwise answers from a small in-memory CRM.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cti.connectors.base import CaseInput, CaseUpdate, CrmRejected, CrmUnavailable
from cti.connectors.guard import BreakerState, GuardedConnector
from cti.connectors.webhook import WebhookConnector, sign, verify_signature

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
SECRET = "a-long-shared-secret-for-tests"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Receiver:
    """The city's CRM web service, as a test would script it."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.received: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.refused_signatures = 0
        self.reply: tuple[int, Any] | None = None  # force this (status, body) on the next requests
        self.delay_s = 0.0
        self.cases: dict[str, dict[str, Any]] = {
            "SR-2026-000001": {"id": "SR-2026-000001", "reference": "SR-2026-000001", "title": "Pothole",
                               "status": "open", "opened_at": "2026-11-20T14:00:00Z", "department": "Roads",
                               "url": "https://crm.example/cases/1", "owner": "roads-team"}}
        self.url = ""

    def _signed(self, request: Request, body: bytes) -> bool:
        ts = request.headers.get("x-switchboard-timestamp", "")
        sig = request.headers.get("x-switchboard-signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return False
        want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, sig)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if not self._signed(request, body):
            self.refused_signatures += 1
            return JSONResponse({"type": "about:blank", "title": "Unauthorized", "status": 401,
                                 "detail": "bad signature"}, status_code=401)
        payload = json.loads(body)
        path = request.url.path
        self.received.append((request.scope["raw_path"].decode(), payload, dict(request.headers)))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.reply is not None:
            status, content = self.reply
            if isinstance(content, str):
                return PlainTextResponse(content, status_code=status)
            return JSONResponse(content, status_code=status)
        if path == "/crm/lookup":
            people = [{"id": "P-7", "name": "Ann Lee", "phones": ["+19055550101"], "emails": [], "extra": 1}]
            return JSONResponse({"people": people if payload["phone"] == "+19055550101" else []})
        if path == "/crm/cases/open":
            return JSONResponse({"cases": list(self.cases.values()) if payload["person_id"] == "P-7" else []})
        if path == "/crm/cases":
            if payload["service_code"] not in ("pothole", "noise"):
                return JSONResponse({"title": "Bad Request", "status": 422,
                                     "detail": f"unknown service_code {payload['service_code']}"}, status_code=422)
            ref = f"SR-2026-{len(self.cases) + 1:06d}"
            self.cases[ref] = {"id": ref, "reference": ref, "title": payload["service_code"], "status": "open"}
            return JSONResponse({"case": self.cases[ref]}, status_code=201)
        case_id = path.removeprefix("/crm/cases/")
        case = self.cases.get(case_id)
        if case is None:
            return JSONResponse({"error": f"no case {case_id}"}, status_code=404)
        if payload.get("status"):
            case["status"] = payload["status"]
        return JSONResponse({"case": case})

    async def start(self) -> None:
        app = Starlette(routes=[Route("/crm/{rest:path}", self.handle, methods=["POST"])])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                     timeout_graceful_shutdown=1))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/crm"

    async def stop(self) -> None:
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 15)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(SECRET)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
async def crm(receiver: Receiver) -> AsyncIterator[WebhookConnector]:
    c = WebhookConnector(base_url=receiver.url, secret=SECRET)
    try:
        yield c
    finally:
        await c.close()


# ---- the signature scheme -----------------------------------------------------------------------------------

def test_signature_scheme() -> None:
    body = b'{"phone":"+19055550101"}'
    expected = "sha256=" + hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET.encode(), "1700000000", body) == expected
    assert verify_signature(SECRET.encode(), "1700000000", body, expected, now=1700000100)
    assert not verify_signature(SECRET.encode(), "1700000000", body + b" ", expected, now=1700000100)
    assert not verify_signature(b"other-secret", "1700000000", body, expected, now=1700000100)
    assert not verify_signature(SECRET.encode(), "1700000000", body, expected, now=1700000000 + 301)  # replay
    assert not verify_signature(SECRET.encode(), "17e8", body, expected, now=1700000000)


# ---- good paths ---------------------------------------------------------------------------------------------

async def test_lookup_cases_create_update_all_signed(receiver: Receiver, crm: WebhookConnector) -> None:
    people = await crm.lookup(phone="+19055550101")
    assert [(p.id, p.name, p.phones) for p in people] == [("P-7", "Ann Lee", ("+19055550101",))]
    assert await crm.lookup(phone="+19055550199") == []
    assert await crm.lookup() == []  # nothing to look up: no request

    cases = await crm.open_cases("P-7", limit=5)
    assert [(c.reference, c.department, c.status) for c in cases] == [("SR-2026-000001", "Roads", "open")]
    assert cases[0].opened_at is not None and cases[0].opened_at.isoformat() == "2026-11-20T14:00:00+00:00"

    created = await crm.create_case(CaseInput(service_code="pothole", description="Deep hole", person_id="P-7",
                                              location="12 Elm St", attributes={"size": "large"}, filed_by="alice"))
    assert created.reference == "SR-2026-000002"
    path, payload, headers = receiver.received[-1]
    assert path == "/crm/cases" and payload["person_id"] == "P-7" and payload["attributes"] == {"size": "large"}
    assert headers["content-type"] == "application/json" and headers["x-switchboard-delivery"]

    updated = await crm.update_case("SR-2026-000002", CaseUpdate(status="in_progress", note="Crew sent",
                                                                 filed_by="alice"))
    assert updated.status == "in_progress"
    assert receiver.received[-1][0] == "/crm/cases/SR-2026-000002"
    assert receiver.received[-1][1] == {"status": "in_progress", "note": "Crew sent", "filed_by": "alice"}
    assert receiver.refused_signatures == 0 and len(receiver.received) == 5


async def test_case_ids_are_escaped_into_the_path(receiver: Receiver, crm: WebhookConnector) -> None:
    with pytest.raises(CrmRejected, match="no case a/b"):
        await crm.update_case("a/b", CaseUpdate(note="x"))
    assert receiver.received[-1][0] == "/crm/cases/a%2Fb"


# ---- bad input, refusals ------------------------------------------------------------------------------------

async def test_a_wrong_secret_is_refused_by_the_receiver(receiver: Receiver) -> None:
    crm = WebhookConnector(base_url=receiver.url, secret="not-the-shared-secret")
    try:
        with pytest.raises(CrmRejected, match="401.*bad signature"):
            await crm.lookup(phone="+19055550101")
    finally:
        await crm.close()
    assert receiver.refused_signatures == 1 and receiver.received == []


async def test_a_stale_timestamp_is_refused_by_the_receiver(receiver: Receiver) -> None:
    crm = WebhookConnector(base_url=receiver.url, secret=SECRET, clock=lambda: time.time() - 3600)
    try:
        with pytest.raises(CrmRejected, match="401"):
            await crm.lookup(phone="+19055550101")
    finally:
        await crm.close()
    assert receiver.refused_signatures == 1


async def test_refusals_carry_the_services_reason(receiver: Receiver, crm: WebhookConnector) -> None:
    with pytest.raises(CrmRejected, match="422.*unknown service_code parking"):
        await crm.create_case(CaseInput(service_code="parking", description="blocked driveway"))
    with pytest.raises(CrmRejected, match="404.*no case SR-2026-000099"):
        await crm.update_case("SR-2026-000099", CaseUpdate(status="closed"))
    requests_so_far = len(receiver.received)
    with pytest.raises(CrmRejected, match="required"):
        await crm.create_case(CaseInput(service_code="", description="x"))
    with pytest.raises(CrmRejected, match="nothing to update"):
        await crm.update_case("SR-2026-000001", CaseUpdate())
    with pytest.raises(CrmRejected, match="person_id"):
        await crm.open_cases("")
    assert len(receiver.received) == requests_so_far  # refused before asking


# ---- a CRM in trouble ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, words", [
    ((500, {"error": "boom"}), "answered 500"),
    ((503, "maintenance"), "answered 503"),
    ((200, "<html>captive portal</html>"), "unexpected"),
    ((200, {"people": "Ann"}), "people"),
    ((200, {"people": [{"id": "", "name": "Ann"}]}), "people.0.id"),
    ((200, {"persons": []}), "people"),
])
async def test_garbage_and_5xx_are_unavailable(receiver: Receiver, crm: WebhookConnector,
                                               reply: tuple[int, Any], words: str) -> None:
    receiver.reply = reply
    with pytest.raises(CrmUnavailable, match=words):
        await crm.lookup(phone="+19055550101")


async def test_garbage_case_replies_are_unavailable(receiver: Receiver, crm: WebhookConnector) -> None:
    receiver.reply = (200, {"case": {"id": "SR-1", "reference": "SR-1", "title": "x", "status": "open",
                                     "opened_at": "last tuesday"}})
    with pytest.raises(CrmUnavailable, match="case.opened_at"):
        await crm.update_case("SR-1", CaseUpdate(note="x"))
    receiver.reply = (200, {"cases": [{"id": "SR-1"}]})
    with pytest.raises(CrmUnavailable, match="cases.0"):
        await crm.open_cases("P-7")


async def test_unreachable_is_unavailable() -> None:
    crm = WebhookConnector(base_url="http://127.0.0.1:9/crm", secret=SECRET)
    try:
        with pytest.raises(CrmUnavailable, match="unreachable"):
            await crm.lookup(phone="+19055550101")
    finally:
        await crm.close()


async def test_slow_service_gives_up_at_the_timeout_then_the_breaker_opens(receiver: Receiver,
                                                                           crm: WebhookConnector) -> None:
    receiver.delay_s = 2.0
    guard = GuardedConnector(crm, timeout_s=0.3, failures_to_open=1, open_for_s=60)
    started = time.monotonic()
    with pytest.raises(CrmUnavailable, match="within 0.3 s"):
        await guard.lookup(phone="+19055550101")
    assert time.monotonic() - started < 1.5  # gave up at the timeout, did not wait the 2 s
    assert guard.state is BreakerState.OPEN
    with pytest.raises(CrmUnavailable, match="circuit open"):
        await guard.lookup(phone="+19055550101")
    assert len(receiver.received) == 1
