"""Bad input: every refusal is the right 4xx with an RFC 9457 problem body, and changes nothing.

"Nothing" is checked, not assumed: the journal's length, the router's snapshot, the stations and the
user list are compared before and after each refused request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from live_server import demo_app, serving

MAX_BODY = 65_536
PROBLEM = "application/problem+json"


class Engine:
    def __init__(self, app: FastAPI, client: TestClient):
        self.app, self.client = app, client
        self.tokens = {user: self._login(user, f"{user}-demo") for user in ("alice", "bashir", "sam", "admin")}
        self.serial = 0

    def _login(self, user: str, password: str) -> str:
        r = self.client.post("/api/v1/auth/login", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def call(self, method: str, path: str, user: str = "sam", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}", **kw.pop("headers", {})}
        r: httpx.Response = self.client.request(method, path, headers=headers, **kw)
        return r

    def ok(self, method: str, path: str, user: str = "sam", **kw: Any) -> Any:
        r = self.call(method, path, user, **kw)
        assert r.is_success, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def state(self) -> tuple[Any, ...]:
        st = self.app.state
        return (st.store.journal.count(), st.core.router.snapshot(), dict(st.stations),
                [(u.username, u.role, u.agent_id, u.disabled) for u in st.store.users.all()])

    # -- arranging contacts ----------------------------------------------------------------------
    def ready(self, agent: str) -> None:
        presence = self.ok("GET", f"/api/v1/agents/{agent}")["presence"]
        if presence == "logged_out":
            self.ok("POST", f"/api/v1/agents/{agent}/login", json={"ready": True})
        elif presence != "ready":
            self.ok("POST", f"/api/v1/agents/{agent}/state", json={"state": "ready"})

    def contact(self, **body: Any) -> str:
        self.serial += 1
        cid = f"bad-{self.serial}"
        self.ok("POST", "/api/v1/contacts", json={"id": cid, **body})
        return cid

    def offered(self, agent: str) -> str:
        self.ready(agent)
        cid = self.contact(queue="general", channel="chat", preferred_agent=agent)
        assert self.app.state.core.router.contacts[cid].agent == agent
        return cid

    def connected(self, agent: str) -> str:
        cid = self.offered(agent)
        self.ok("POST", f"/api/v1/contacts/{cid}/accept")
        return cid

    def queued(self, channel: str = "voice") -> str:
        return self.contact(queue="taxes", channel=channel)  # chen and emile never log in: it waits

    def finish(self, cid: str) -> None:
        c = self.app.state.core.router.contacts[cid]
        if c.state.value in ("queued", "offered"):
            self.ok("POST", f"/api/v1/contacts/{cid}/abandon")
        elif c.state.value in ("connected", "held", "wrap_up"):
            self.ok("POST", f"/api/v1/contacts/{cid}/complete", json={"code": "resolved"})


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    app = demo_app(tmp_path_factory.mktemp("badinput"), max_body_bytes=MAX_BODY)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Engine(app, client)


@contextmanager
def unchanged(engine: Engine) -> Iterator[None]:
    before = engine.state()
    yield
    after = engine.state()
    assert after[0] == before[0], "the journal grew"
    assert after[1] == before[1], "the router changed"
    assert after[2:] == before[2:], "stations or users changed"


def assert_problem(r: httpx.Response, status: int, *fields: str, code: str | None = None) -> dict[str, Any]:
    """A problem body of that status; `fields` must each be named by an entry of `errors`."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"] == PROBLEM, r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/") and body["title"] and body["detail"], body
    if code is not None:
        assert body["type"] == f"/problems/{code}", body
    named = {e["field"] for e in body.get("errors", [])}
    for f in fields:
        assert f in named, f"{f} not named in {body.get('errors')}"
    return body


def refused(engine: Engine, status: int, method: str, path: str, *fields: str, user: str = "sam",
            code: str | None = None, **kw: Any) -> dict[str, Any]:
    with unchanged(engine):
        return assert_problem(engine.call(method, path, user, **kw), status, *fields, code=code)


JSON = {"content-type": "application/json"}


# ------------------------------------------------------------------------------------------------
# body syntax and shape
@pytest.mark.parametrize("method,path,user", [
    ("POST", "/api/v1/contacts", "sam"),
    ("POST", "/api/v1/agents/alice/login", "alice"),
    ("POST", "/api/v1/agents/alice/state", "alice"),
    ("POST", "/api/v1/users", "admin"),
    ("POST", "/api/v1/auth/login", "sam"),
])
@pytest.mark.parametrize("raw", [b'{"queue": "general"', b"{'queue': 'general'}", b"\xff\xfe{}", b'{"a":1}}'])
def test_malformed_json_is_400(engine: Engine, method: str, path: str, user: str, raw: bytes) -> None:
    body = refused(engine, 400, method, path, user=user, code="malformed-json", content=raw, headers=JSON)
    assert body["errors"] and all(e["field"].startswith("body") for e in body["errors"])


def test_unknown_fields_are_422_and_named(engine: Engine) -> None:
    refused(engine, 422, "POST", "/api/v1/contacts", "body.colour", json={"queue": "general", "colour": "red"})
    refused(engine, 422, "POST", "/api/v1/contacts", "body.requirements.0.weight",
            json={"queue": "general", "requirements": [{"skill": "general", "weight": 3}]})
    refused(engine, 422, "POST", "/api/v1/agents/alice/login", "body.phone", user="alice", json={"phone": "x"})
    refused(engine, 422, "POST", "/api/v1/auth/login", "body.otp",
            json={"username": "sam", "password": "sam-demo", "otp": "123456"})
    refused(engine, 422, "POST", "/api/v1/users", "body.is_root", user="admin",
            json={"username": "x1", "password": "long-enough", "role": "admin", "is_root": True})


def test_wrong_types_are_422_and_named(engine: Engine) -> None:
    refused(engine, 422, "POST", "/api/v1/contacts", "body.queue", "body.priority",
            json={"queue": 5, "priority": "high"})
    refused(engine, 422, "POST", "/api/v1/contacts", "body.channel", json={"queue": "general", "channel": "pigeon"})
    refused(engine, 422, "POST", "/api/v1/contacts", "body.attributes", json={"queue": "general", "attributes": [1]})
    refused(engine, 422, "POST", "/api/v1/contacts", "body.requirements.0.min_level",
            json={"queue": "general", "requirements": [{"skill": "general", "min_level": 11}]})
    refused(engine, 422, "POST", "/api/v1/contacts", "body.id", json={"queue": "general", "id": "has space"})
    refused(engine, 422, "POST", "/api/v1/contacts", "body", json=["general"])
    refused(engine, 422, "POST", "/api/v1/contacts", "body.queue", json={})
    refused(engine, 422, "POST", "/api/v1/agents/alice/login", "body.station", user="alice",
            json={"station": "tel:+15550100"})
    refused(engine, 422, "POST", "/api/v1/agents/alice/state", "body.state", user="alice", json={"state": "asleep"})
    # a JSON body sent as text is not taken for JSON
    refused(engine, 422, "POST", "/api/v1/contacts", "body", content=b'{"queue": "general"}',
            headers={"content-type": "text/plain"})


@pytest.mark.parametrize("raw,field", [
    (b'{"queue": "general", "enqueued_at": NaN}', "body.enqueued_at"),
    (b'{"queue": "general", "schedule_at": Infinity}', "body.schedule_at"),
    (b'{"queue": "general", "attributes": {"score": -Infinity}}', "body.attributes"),
])
def test_nan_and_infinity_are_refused(engine: Engine, raw: bytes, field: str) -> None:
    """Python's JSON reader accepts them; once journaled they broke the store write (and a batch with it)."""
    refused(engine, 422, "POST", "/api/v1/contacts", field, content=raw, headers=JSON)


@pytest.mark.parametrize("raw", [
    b"[" * 20_000,  # deeper than the JSON reader goes
    b'{"queue": "general", "priority": ' + b"9" * 5000 + b"}",  # more digits than Python parses
], ids=["deep", "long-number"])
def test_json_the_reader_cannot_take_is_400(engine: Engine, raw: bytes) -> None:
    refused(engine, 400, "POST", "/api/v1/contacts", content=raw, headers=JSON, code="malformed-json")


@pytest.mark.parametrize("attributes", [
    '{"note": "\\ud800"}',  # a lone surrogate: no UTF-8 for it, so no response could carry it
    '{"\\udfff": 1}',
    "[" * 17 + "]" * 17,  # deeper than 16 levels
    "[" * 300 + "]" * 300,  # deep enough to break the encoders that would have shown it
], ids=["surrogate-value", "surrogate-key", "17-deep", "300-deep"])
def test_attributes_that_could_not_be_shown_are_refused(engine: Engine, attributes: str) -> None:
    """Kept, such a contact used to break every list and feed it appeared in (500) from then on."""
    raw = f'{{"queue": "general", "attributes": {{"x": {attributes}}}}}'.encode()
    refused(engine, 422, "POST", "/api/v1/contacts", "body.attributes", content=raw, headers=JSON)
    assert engine.call("GET", "/api/v1/contacts").status_code == 200


def test_times_before_the_epoch_are_refused(engine: Engine) -> None:
    refused(engine, 422, "POST", "/api/v1/contacts", "body.enqueued_at", json={"queue": "general", "enqueued_at": -1})
    refused(engine, 422, "POST", "/api/v1/contacts", "body.schedule_at",
            json={"queue": "general", "schedule_at": -1e308})


def test_oversized_body_with_content_length_is_413(engine: Engine) -> None:
    big = {"queue": "general", "attributes": {"note": "x" * (MAX_BODY + 10)}}
    body = refused(engine, 413, "POST", "/api/v1/contacts", json=big, code="too-large")
    assert str(MAX_BODY) in body["detail"]


def test_oversized_chunked_body_is_413(engine: Engine) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"queue": "general", "attributes": {"note": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}}'

    refused(engine, 413, "POST", "/api/v1/contacts", content=chunks(), headers=JSON, code="too-large")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same application behind a real HTTP server: chunked bodies arrive in pieces there."""
    tmp = tmp_path_factory.mktemp("badinput-live")
    with serving(demo_app(tmp, max_body_bytes=MAX_BODY)) as base:
        yield base


def test_oversized_bodies_over_real_http(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=30) as http:
        token = http.post("/api/v1/auth/login", json={"username": "sam", "password": "sam-demo"}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}", **JSON}

        def chunks() -> Iterator[bytes]:
            for _ in range(64):
                yield b"x" * 4096  # 256 KiB in 64 pieces, no Content-Length

        for content in (b"x" * (MAX_BODY + 1), chunks()):
            r = http.post("/api/v1/contacts", content=content, headers=auth)
            assert_problem(r, 413, code="too-large")
        # a body under the limit still goes through afterwards
        r = http.post("/api/v1/contacts", json={"queue": "taxes", "id": "live-1"}, headers=auth)
        assert r.status_code == 201, r.text


# ------------------------------------------------------------------------------------------------
# what the body or path names does not exist
def test_unknown_ids_are_404(engine: Engine) -> None:
    cid = engine.connected("alice")
    refused(engine, 404, "GET", "/api/v1/contacts/no-such", code="unknown-contact")
    for action in ("accept", "reject", "hold", "resume", "end", "complete", "abandon", "callback"):
        refused(engine, 404, "POST", f"/api/v1/contacts/no-such/{action}", code="unknown-contact")
    refused(engine, 404, "POST", "/api/v1/contacts/no-such/transfer", json={"to_queue": "general"})
    refused(engine, 404, "POST", "/api/v1/contacts/no-such/wrap-up", json={"code": "resolved"})
    refused(engine, 404, "GET", "/api/v1/agents/nobody", code="unknown-agent")
    for action, body in (("login", {}), ("logout", None), ("state", {"state": "ready"})):
        refused(engine, 404, "POST", f"/api/v1/agents/nobody/{action}", json=body, code="unknown-agent")
    for suffix in ("", "/stats", "/intervals"):
        refused(engine, 404, "GET", f"/api/v1/queues/nowhere{suffix}", code="unknown-queue")
    refused(engine, 404, "GET", "/api/v1/users/nobody", user="admin", code="unknown-user")
    refused(engine, 404, "POST", "/api/v1/users/nobody/disable", user="admin", code="unknown-user")
    refused(engine, 404, "POST", "/api/v1/contacts", json={"queue": "nowhere"}, code="unknown-queue")
    refused(engine, 404, "POST", "/api/v1/contacts", json={"queue": "general", "preferred_agent": "nobody"},
            code="unknown-agent")
    refused(engine, 404, "POST", f"/api/v1/contacts/{cid}/transfer", json={"to_queue": "nowhere"},
            code="unknown-queue")
    refused(engine, 404, "POST", f"/api/v1/contacts/{cid}/transfer", json={"to_agent": "nobody"},
            code="unknown-agent")
    refused(engine, 404, "GET", "/api/v1/no-such-endpoint", code="not-found")
    engine.finish(cid)


def test_wrong_method_is_405_with_allow(engine: Engine) -> None:
    with unchanged(engine):
        r = engine.call("DELETE", "/api/v1/contacts")
    assert_problem(r, 405, code="method-not-allowed")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


# ------------------------------------------------------------------------------------------------
# the state machine says no
def test_transitions_the_state_machine_forbids_are_409(engine: Engine) -> None:
    offered_to_bashir = engine.offered("bashir")
    # alice answering bashir's offer: it is not offered to her
    refused(engine, 409, "POST", f"/api/v1/contacts/{offered_to_bashir}/accept", user="alice",
            code="not-your-contact")
    refused(engine, 409, "POST", f"/api/v1/contacts/{offered_to_bashir}/reject", user="alice",
            code="not-your-contact")
    refused(engine, 409, "POST", f"/api/v1/contacts/{offered_to_bashir}/hold", code="invalid-transition")
    refused(engine, 409, "POST", f"/api/v1/contacts/{offered_to_bashir}/callback", code="invalid-transition")
    engine.finish(offered_to_bashir)

    queued = engine.queued()
    for action in ("accept", "reject"):  # nobody to answer for
        refused(engine, 409, "POST", f"/api/v1/contacts/{queued}/{action}")
    for action in ("hold", "resume", "end"):
        refused(engine, 409, "POST", f"/api/v1/contacts/{queued}/{action}", code="invalid-transition")
    refused(engine, 409, "POST", f"/api/v1/contacts/{queued}/wrap-up", json={"code": "resolved"},
            code="invalid-transition")
    engine.finish(queued)

    chat = engine.queued(channel="chat")  # a chat cannot become a callback
    refused(engine, 409, "POST", f"/api/v1/contacts/{chat}/callback", code="invalid-transition")
    engine.finish(chat)

    cid = engine.connected("alice")
    refused(engine, 409, "POST", f"/api/v1/contacts/{cid}/resume", user="alice", code="invalid-transition")
    refused(engine, 409, "POST", f"/api/v1/contacts/{cid}/accept", user="alice")  # answered already
    refused(engine, 409, "POST", f"/api/v1/contacts/{cid}/wrap-up", user="alice", json={"code": "resolved"},
            code="invalid-transition")
    refused(engine, 409, "POST", f"/api/v1/contacts/{cid}/abandon", code="invalid-transition")
    refused(engine, 409, "POST", "/api/v1/agents/alice/logout", user="alice", code="agent-has-work")
    refused(engine, 409, "POST", "/api/v1/agents/alice/login", user="alice", json={}, code="invalid-transition")
    engine.ok("POST", f"/api/v1/contacts/{cid}/complete", user="alice", json={"code": "resolved"})
    # complete twice: as the agent who had it and as a supervisor
    refused(engine, 409, "POST", f"/api/v1/contacts/{cid}/complete", user="alice", json={"code": "resolved"},
            code="invalid-transition")
    refused(engine, 409, "POST", f"/api/v1/contacts/{cid}/complete", json={"code": "resolved"},
            code="invalid-transition")
    refused(engine, 409, "POST", f"/api/v1/contacts/{cid}/hold", user="alice", code="invalid-transition")


def test_duplicate_contact_id_is_409(engine: Engine) -> None:
    cid = engine.queued()
    refused(engine, 409, "POST", "/api/v1/contacts", json={"id": cid, "queue": "general"}, code="duplicate-contact")
    engine.finish(cid)
    # still taken once it is finished
    refused(engine, 409, "POST", "/api/v1/contacts", json={"id": cid, "queue": "taxes"}, code="duplicate-contact")


def test_wrap_up_codes(engine: Engine) -> None:
    cid = engine.connected("alice")
    # general requires a code from its list
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/complete", user="alice", code="wrap-up-code-required")
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/complete", user="alice", json={},
            code="wrap-up-code-required")
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/complete", user="alice", json={"code": "fixed-it"},
            code="invalid-wrap-up-code")
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/complete", "body.code", user="alice", json={"code": ""})
    engine.ok("POST", f"/api/v1/contacts/{cid}/end", user="alice")
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/wrap-up", user="alice", json={},
            code="wrap-up-code-required")
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/wrap-up", user="alice", json={"code": "escalated"},
            code="invalid-wrap-up-code")  # a code of another queue
    engine.ok("POST", f"/api/v1/contacts/{cid}/wrap-up", user="alice", json={"code": "sr-created"})


def test_not_ready_needs_a_known_reason(engine: Engine) -> None:
    engine.ready("alice")
    refused(engine, 422, "POST", "/api/v1/agents/alice/state", "body.reason", user="alice",
            json={"state": "not_ready"})
    refused(engine, 422, "POST", "/api/v1/agents/alice/state", "body.reason", user="alice",
            json={"state": "not_ready", "reason": ""})
    refused(engine, 422, "POST", "/api/v1/agents/alice/state", user="alice",
            json={"state": "not_ready", "reason": "nap"}, code="invalid-reason")
    refused(engine, 422, "POST", "/api/v1/agents/alice/state", "body.reason", user="alice",
            json={"state": "ready", "reason": "break"})


def test_transfer_needs_a_destination(engine: Engine) -> None:
    cid = engine.connected("alice")
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/transfer", "body", user="alice", json={"note": "?"})
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/transfer", "body.to_queue", user="alice",
            json={"to_queue": ""})
    refused(engine, 422, "POST", f"/api/v1/contacts/{cid}/transfer", "body.note", user="alice",
            json={"to_queue": "general", "note": "n" * 2001})
    engine.finish(cid)


def test_token_of_the_wrong_role_is_403(engine: Engine) -> None:
    cid = engine.connected("bashir")
    refused(engine, 403, "POST", "/api/v1/contacts", user="alice", json={"queue": "general"}, code="forbidden")
    refused(engine, 403, "POST", f"/api/v1/contacts/{cid}/abandon", user="bashir", code="forbidden")
    refused(engine, 403, "POST", f"/api/v1/contacts/{cid}/hold", user="alice", code="forbidden")
    refused(engine, 403, "GET", f"/api/v1/contacts/{cid}", user="alice", code="forbidden")
    refused(engine, 403, "GET", "/api/v1/contacts", user="alice", params={"agent": "bashir"}, code="forbidden")
    refused(engine, 403, "POST", "/api/v1/agents/bashir/state", user="alice", json={"state": "ready"},
            code="forbidden")
    refused(engine, 403, "GET", "/api/v1/users", user="sam", code="forbidden")
    refused(engine, 403, "POST", "/api/v1/users", user="sam",
            json={"username": "sneaky", "password": "long-enough", "role": "admin"}, code="forbidden")
    refused(engine, 403, "POST", "/api/v1/admin/reload", user="sam", code="forbidden")
    engine.finish(cid)


def test_bad_user_records_are_refused(engine: Engine) -> None:
    refused(engine, 422, "POST", "/api/v1/users", "body.password", user="admin",
            json={"username": "shorty", "password": "short", "role": "agent", "agent": "chen"})
    refused(engine, 422, "POST", "/api/v1/users", "body.agent", user="admin",
            json={"username": "nobody-agent", "password": "long-enough", "role": "agent"})
    refused(engine, 422, "POST", "/api/v1/users", "body.agent", user="admin",
            json={"username": "ghost", "password": "long-enough", "role": "agent", "agent": "ghost"})
    refused(engine, 422, "POST", "/api/v1/users", "body.username", user="admin",
            json={"username": "with space", "password": "long-enough", "role": "admin"})
    refused(engine, 422, "POST", "/api/v1/users", "body.role", user="admin",
            json={"username": "root", "password": "long-enough", "role": "root"})
    refused(engine, 409, "POST", "/api/v1/users", user="admin",
            json={"username": "sam", "password": "long-enough", "role": "admin"}, code="duplicate-user")


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "query.limit"),
    ({"limit": 501}, "query.limit"),
    ({"limit": "ten"}, "query.limit"),
    ({"offset": -1}, "query.offset"),
    ({"offset": "1.5"}, "query.offset"),
])
@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/agents", "/api/v1/queues",
                                  "/api/v1/queues/general/intervals", "/api/v1/users"])
def test_bad_pagination_is_422(engine: Engine, path: str, params: dict[str, Any], field: str) -> None:
    refused(engine, 422, "GET", path, field, user="admin", params=params, code="validation-error")


def test_bad_list_filters_are_422(engine: Engine) -> None:
    refused(engine, 422, "GET", "/api/v1/contacts", "query.state", params={"state": "lost"})
    refused(engine, 422, "GET", "/api/v1/contacts", "query.channel", params={"channel": "fax"})
    refused(engine, 422, "GET", "/api/v1/contacts", "query.queue", params={"queue": "q" * 65})


def test_wrong_password_is_401_and_changes_nothing(engine: Engine) -> None:
    with unchanged(engine):
        for user, password in (("sam", "wrong"), ("nobody", "whatever")):
            r = engine.client.post("/api/v1/auth/login", json={"username": user, "password": password})
            assert_problem(r, 401, code="unauthorized")
