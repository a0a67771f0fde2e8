"""Role matrix: every HTTP endpoint in the OpenAPI document, called as every kind of caller.

Callers: nobody (no token), an agent acting for themselves, an agent acting on another agent's
agent id or contact, a supervisor, an admin, an expired token and a tampered token. Before each call
the engine is put in a state where the call would succeed for a caller who may make it, so a 403 or
401 is the role check speaking, not the state machine. A new endpoint without a row fails the test.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from engine.app import create_app
from engine.configfile import load_file
from engine.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ROLES = ("anon", "agent", "other", "supervisor", "admin", "expired", "tampered")
OWN, OTHER = "alice", "bashir"  # the agent user is alice; "other" is alice acting on bashir
PASSWORDS = {"alice": "alice-demo", "sam": "sam-demo", "admin": "admin-demo"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class World:
    """A running engine plus helpers that put a contact or an agent in the state a call needs."""

    def __init__(self, app: FastAPI, client: TestClient):
        self.app, self.client = app, client
        self.tokens: dict[str, str | None] = {"anon": None}
        for role, user in (("agent", "alice"), ("supervisor", "sam"), ("admin", "admin")):
            r = client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORDS[user]})
            assert r.status_code == 200, r.text
            self.tokens[role] = r.json()["access_token"]
        self.tokens["other"] = self.tokens["agent"]
        signer = app.state.signer
        self.tokens["expired"], _ = signer.issue("admin", "admin", None, now=time.time() - signer.ttl_s - 60)
        claims_b64, sig = str(self.tokens["agent"]).split(".")
        claims = json.loads(_unb64(claims_b64))
        claims["role"], claims["agent"] = "admin", None  # promote itself, keep the agent's signature
        self.tokens["tampered"] = f"{_b64(json.dumps(claims).encode())}.{sig}"
        self.created: list[str] = []
        self.serial = 0

    # -- plumbing --------------------------------------------------------------------------------
    def call(self, method: str, path: str, role: str = "supervisor", **kw: Any) -> Any:
        token = self.tokens[role]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.request(method, path, headers=headers, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.call(method, path, "supervisor", **kw)
        assert r.is_success, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def contact_state(self, cid: str) -> tuple[str, str | None]:
        c = self.app.state.core.router.contacts[cid]
        return c.state.value, c.agent

    # -- agents ----------------------------------------------------------------------------------
    def presence(self, agent: str) -> str:
        return str(self.ok("GET", f"/api/v1/agents/{agent}")["presence"])

    def ensure_ready(self, agent: str) -> None:
        if self.presence(agent) == "logged_out":
            self.ok("POST", f"/api/v1/agents/{agent}/login", json={"ready": True})
        elif self.presence(agent) != "ready":
            self.ok("POST", f"/api/v1/agents/{agent}/state", json={"state": "ready"})
        assert self.presence(agent) == "ready"

    def ensure_logged_out(self, agent: str) -> None:
        if self.presence(agent) != "logged_out":
            self.ok("POST", f"/api/v1/agents/{agent}/logout")

    # -- contacts --------------------------------------------------------------------------------
    def new_contact(self, **body: Any) -> str:
        self.serial += 1
        cid = f"rm-{self.serial}"
        self.ok("POST", "/api/v1/contacts", json={"id": cid, **body})
        self.created.append(cid)
        return cid

    def offered(self, agent: str) -> str:
        self.ensure_ready(agent)
        cid = self.new_contact(queue="general", channel="chat", preferred_agent=agent)
        assert self.contact_state(cid) == ("offered", agent)
        return cid

    def connected(self, agent: str) -> str:
        cid = self.offered(agent)
        self.ok("POST", f"/api/v1/contacts/{cid}/accept")
        assert self.contact_state(cid) == ("connected", agent)
        return cid

    def held(self, agent: str) -> str:
        cid = self.connected(agent)
        self.ok("POST", f"/api/v1/contacts/{cid}/hold")
        return cid

    def wrapping(self, agent: str) -> str:
        cid = self.connected(agent)
        self.ok("POST", f"/api/v1/contacts/{cid}/end")
        assert self.contact_state(cid) == ("wrap_up", agent)
        return cid

    def queued_voice(self) -> str:
        # taxes is served by chen and emile only, who never log in here: the call stays in line
        cid = self.new_contact(queue="taxes", channel="voice")
        assert self.contact_state(cid) == ("queued", None)
        return cid

    def cleanup(self) -> None:
        """Finish every contact a case left behind, so agents have free capacity again."""
        for cid in self.created:
            state, _ = self.contact_state(cid)
            if state in ("queued", "offered", "scheduled"):
                self.ok("POST", f"/api/v1/contacts/{cid}/abandon")
            elif state in ("connected", "held", "wrap_up"):
                self.ok("POST", f"/api/v1/contacts/{cid}/complete", json={"code": "resolved"})
        self.created.clear()


def target(role: str) -> str:
    """The agent id a caller acts on: their own, or for "other" someone else's."""
    return OTHER if role == "other" else OWN


Prepare = Callable[[World, str], tuple[str, dict[str, Any]]]


def fixed(path: str, **kw: Any) -> Prepare:
    return lambda w, role: (path, kw)


def on_agent(suffix: str, setup: Callable[[World, str], None] | None = None, **kw: Any) -> Prepare:
    def prep(w: World, role: str) -> tuple[str, dict[str, Any]]:
        agent = target(role)
        if setup is not None:
            setup(w, agent)
        return f"/api/v1/agents/{agent}{suffix}", kw
    return prep


def on_contact(suffix: str, make: Callable[[World, str], str], **kw: Any) -> Prepare:
    def prep(w: World, role: str) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/contacts/{make(w, target(role))}{suffix}", kw
    return prep


def new_user(w: World, role: str) -> tuple[str, dict[str, Any]]:
    w.serial += 1
    return "/api/v1/users", {"json": {"username": f"made-{w.serial}", "password": "long-enough-pw",
                                      "role": "supervisor"}}


def list_contacts(w: World, role: str) -> tuple[str, dict[str, Any]]:
    return "/api/v1/contacts", {"params": {"agent": target(role)}}


def ready_own(w: World, agent: str) -> None:
    w.ensure_ready(agent)


# cases (cti): a tax question needs no location; a 1x1 PNG is the smallest photo
CASE = {"service_code": "property-tax", "channel": "voice", "description": "When is the next instalment due?"}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def on_case(suffix: str, **kw: Any) -> Prepare:
    return lambda w, role: (f"/api/v1/cases/{w.ok('POST', '/api/v1/cases', json=CASE)['reference']}{suffix}", kw)


def case_from_contact(w: World, role: str) -> tuple[str, dict[str, Any]]:
    cid = w.offered(target(role))
    filed = {**CASE, "channel": "chat", "contact_id": cid}  # filed from the contact: its agent may work it
    ref = w.ok("POST", "/api/v1/cases", json=filed)["reference"]
    return f"/api/v1/contacts/{cid}/cases/{ref}", {"json": {"note": "called back"}}


def case_photo(w: World, role: str) -> tuple[str, dict[str, Any]]:
    ref = w.ok("POST", "/api/v1/cases", json=CASE)["reference"]
    photo = w.ok("POST", f"/api/v1/cases/{ref}/attachments", files={"file": ("p.png", PNG, "image/png")})
    return photo["url"], {}


def new_resident(w: World, role: str) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/residents/{w.ok('POST', '/api/v1/residents', json={'first_name': 'Ann'})['id']}", {}


def open311_case(w: World, role: str, what: str) -> tuple[str, dict[str, Any]]:
    if what == "token":  # a request filed through Open311 has a token
        path, kw = open311_post(w, role)
        ref = w.client.post(path, **kw).json()[0]["service_request_id"]
        return f"/open311/v2/tokens/{w.app.state.cases.get(ref).token}.json", {}
    return f"/open311/v2/requests/{w.ok('POST', '/api/v1/cases', json=CASE)['reference']}.xml", {}


def open311_post(w: World, role: str) -> tuple[str, dict[str, Any]]:
    from cti.apikeys import ApiKeys

    w.serial += 1
    key, _ = ApiKeys(w.app.state.store.db).add(f"roles-{w.serial}")  # an API key, not a user token, files
    return "/open311/v2/requests.json", {"data": {"api_key": key, "service_code": "pothole",
                                                  "address_string": "12 Elm St"}}


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # as the OpenAPI document spells it
    prepare: Prepare
    expect: str  # one class per role in ROLES order: 2xx, 401, 403 or 4xx (a client error that is not auth)

    def expected(self) -> dict[str, str]:
        classes = self.expect.split()
        assert len(classes) == len(ROLES), self
        return dict(zip(ROLES, classes))


PUBLIC = "2xx 2xx 2xx 2xx 2xx 2xx 2xx"
ANY_USER = "401 2xx 2xx 2xx 2xx 401 401"
OWN_ONLY = "401 2xx 403 2xx 2xx 401 401"
SUPERVISOR = "401 403 403 2xx 2xx 401 401"
ADMIN = "401 403 403 403 2xx 401 401"

ROWS = [
    Row("POST", "/api/v1/auth/login", fixed("/api/v1/auth/login", json={"username": "sam", "password": "sam-demo"}),
        PUBLIC),
    Row("GET", "/healthz", fixed("/healthz"), PUBLIC),
    Row("GET", "/readyz", fixed("/readyz"), PUBLIC),
    Row("GET", "/metrics", fixed("/metrics"), PUBLIC),
    Row("GET", "/api/v1/public/waits", fixed("/api/v1/public/waits"), PUBLIC),  # the web site's wait feed
    # agents
    Row("GET", "/api/v1/agents", fixed("/api/v1/agents"), ANY_USER),
    Row("GET", "/api/v1/agents/{agent_id}", on_agent(""), OWN_ONLY),
    Row("POST", "/api/v1/agents/{agent_id}/login",
        on_agent("/login", World.ensure_logged_out, json={"station": "sip:desk@127.0.0.1:5999", "ready": True}),
        OWN_ONLY),
    Row("POST", "/api/v1/agents/{agent_id}/logout", on_agent("/logout", ready_own), OWN_ONLY),
    Row("POST", "/api/v1/agents/{agent_id}/state",
        on_agent("/state", ready_own, json={"state": "not_ready", "reason": "break"}), OWN_ONLY),
    # click-to-dial: permission is checked before voice; this engine runs without SIP, so allowed roles get 503
    # (tests/e2e/test_voice_outbound.py dials for real)
    Row("POST", "/api/v1/agents/{agent_id}/dial", on_agent("/dial", json={"number": "905-555-0100"}),
        "401 503 403 503 503 401 401"),
    Row("GET", "/api/v1/agents/{agent_id}/dial", on_agent("/dial"), "401 503 403 503 503 401 401"),
    # queues: every signed-in user reads them
    Row("GET", "/api/v1/queues", fixed("/api/v1/queues"), ANY_USER),
    Row("GET", "/api/v1/queues/{queue_id}", fixed("/api/v1/queues/general"), ANY_USER),
    Row("GET", "/api/v1/queues/{queue_id}/stats", fixed("/api/v1/queues/general/stats"), ANY_USER),
    Row("GET", "/api/v1/queues/{queue_id}/intervals", fixed("/api/v1/queues/general/intervals"), ANY_USER),
    # contacts
    Row("POST", "/api/v1/contacts", fixed("/api/v1/contacts", json={"queue": "taxes", "channel": "email"}),
        SUPERVISOR),
    Row("GET", "/api/v1/contacts", list_contacts, OWN_ONLY),
    Row("GET", "/api/v1/contacts/{contact_id}", on_contact("", World.offered), OWN_ONLY),
    # answering someone else's offer is no permission problem: it is simply not offered to you (409)
    Row("POST", "/api/v1/contacts/{contact_id}/accept", on_contact("/accept", World.offered),
        "401 2xx 4xx 2xx 2xx 401 401"),
    Row("POST", "/api/v1/contacts/{contact_id}/reject", on_contact("/reject", World.offered, json={"reason": "busy"}),
        "401 2xx 4xx 2xx 2xx 401 401"),
    Row("POST", "/api/v1/contacts/{contact_id}/hold", on_contact("/hold", World.connected), OWN_ONLY),
    Row("POST", "/api/v1/contacts/{contact_id}/resume", on_contact("/resume", World.held), OWN_ONLY),
    Row("POST", "/api/v1/contacts/{contact_id}/transfer",
        on_contact("/transfer", World.connected, json={"to_queue": "general", "note": "for a colleague"}), OWN_ONLY),
    Row("POST", "/api/v1/contacts/{contact_id}/consult",
        on_contact("/consult", World.connected, json={"to_agent": "chen", "note": "n"}), "401 4xx 403 4xx 4xx 401 401"),
    Row("POST", "/api/v1/contacts/{contact_id}/consult/complete",
        on_contact("/consult/complete", World.connected), "401 4xx 403 4xx 4xx 401 401"),
    Row("POST", "/api/v1/contacts/{contact_id}/consult/cancel",
        on_contact("/consult/cancel", World.connected), "401 4xx 403 4xx 4xx 401 401"),
    Row("POST", "/api/v1/contacts/{contact_id}/conference",
        on_contact("/conference", World.connected, json={"to_number": "311"}), "401 4xx 403 4xx 4xx 401 401"),
    Row("POST", "/api/v1/contacts/{contact_id}/end", on_contact("/end", World.connected), OWN_ONLY),
    Row("POST", "/api/v1/contacts/{contact_id}/wrap-up",
        on_contact("/wrap-up", World.wrapping, json={"code": "resolved"}), OWN_ONLY),
    Row("POST", "/api/v1/contacts/{contact_id}/complete",
        on_contact("/complete", World.connected, json={"code": "info-given"}), OWN_ONLY),
    Row("POST", "/api/v1/contacts/{contact_id}/abandon",
        on_contact("/abandon", lambda w, agent: w.queued_voice()), SUPERVISOR),
    Row("POST", "/api/v1/contacts/{contact_id}/callback",
        on_contact("/callback", lambda w, agent: w.queued_voice()), SUPERVISOR),
    # users and administration
    Row("GET", "/api/v1/users", fixed("/api/v1/users"), ADMIN),
    Row("POST", "/api/v1/users", new_user, ADMIN),
    Row("GET", "/api/v1/users/{username}", fixed("/api/v1/users/sam"), ADMIN),
    Row("POST", "/api/v1/users/{username}/disable", fixed("/api/v1/users/victim/disable"), ADMIN),
    Row("POST", "/api/v1/admin/reload", fixed("/api/v1/admin/reload"), ADMIN),
    # cases and residents (cti): every signed-in user files and works cases; closing is checked in tests/cti
    Row("POST", "/api/v1/cases", fixed("/api/v1/cases", json=CASE), ANY_USER),
    Row("GET", "/api/v1/cases", fixed("/api/v1/cases"), ANY_USER),
    Row("GET", "/api/v1/cases/ageing", fixed("/api/v1/cases/ageing"), SUPERVISOR),
    Row("GET", "/api/v1/cases/{reference}", on_case(""), ANY_USER),
    Row("POST", "/api/v1/cases/{reference}/status", on_case("/status", json={"status": "in_progress"}), ANY_USER),
    Row("POST", "/api/v1/cases/{reference}/notes", on_case("/notes", json={"body": "called back"}), ANY_USER),
    Row("POST", "/api/v1/cases/{reference}/attachments",
        on_case("/attachments", files={"file": ("p.png", PNG, "image/png")}), ANY_USER),
    Row("GET", "/api/v1/cases/{reference}/attachments/{attachment_id}", case_photo, ANY_USER),
    Row("GET", "/api/v1/residents", fixed("/api/v1/residents", params={"phone": "9055550100"}), ANY_USER),
    Row("POST", "/api/v1/residents", fixed("/api/v1/residents", json={"first_name": "Ann"}), ANY_USER),
    Row("GET", "/api/v1/residents/{resident_id}", new_resident, ANY_USER),
    # the agent desktop: the screen-pop again is for the contact's agent; its choices and articles for all
    Row("GET", "/api/v1/contacts/{contact_id}/pop", on_contact("/pop", World.offered), OWN_ONLY),
    Row("GET", "/api/v1/desk/config", fixed("/api/v1/desk/config"), ANY_USER),
    # cases through the site's CRM connector, from a contact: its agent's, or any supervisor's
    Row("POST", "/api/v1/contacts/{contact_id}/case",
        on_contact("/case", World.offered, json={k: v for k, v in CASE.items() if k != "channel"}), OWN_ONLY),
    Row("POST", "/api/v1/contacts/{contact_id}/cases/{case_id}", case_from_contact, OWN_ONLY),
    Row("GET", "/api/v1/kb", fixed("/api/v1/kb", params={"q": "pothole"}), ANY_USER),
    Row("GET", "/api/v1/kb/{slug}", fixed("/api/v1/kb/garbage-day"), ANY_USER),
    # Open311: public reads; filing takes an API key, not a user token, so whatever token is sent it succeeds
    Row("GET", "/open311/v2/discovery.{fmt}", fixed("/open311/v2/discovery.json"), PUBLIC),
    Row("GET", "/open311/v2/services.{fmt}", fixed("/open311/v2/services.xml"), PUBLIC),
    Row("GET", "/open311/v2/services/{code}.{fmt}", fixed("/open311/v2/services/pothole.json"), PUBLIC),
    Row("GET", "/open311/v2/requests.{fmt}", fixed("/open311/v2/requests.json"), PUBLIC),
    Row("GET", "/open311/v2/requests/{request_id}.{fmt}", lambda w, role: open311_case(w, role, "request"), PUBLIC),
    Row("GET", "/open311/v2/tokens/{token}.{fmt}", lambda w, role: open311_case(w, role, "token"), PUBLIC),
    Row("POST", "/open311/v2/requests.{fmt}", open311_post, PUBLIC),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("roles")
    shutil.copy(REPO / "config" / "switchboard.yaml", tmp / "switchboard.yaml")
    app = create_app(Settings(data_dir=tmp / "data"), load_file(tmp / "switchboard.yaml"))
    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.store.users.create("victim", "victim-password", "supervisor")
        yield World(app, client)


def operations(app: FastAPI) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}


def test_the_table_covers_every_endpoint(world: World) -> None:
    rows = [(r.method, r.path) for r in ROWS]
    assert len(rows) == len(set(rows)), "a row appears twice"
    missing = operations(world.app) - set(rows)
    assert not missing, f"endpoints without a row in the role matrix: {sorted(missing)}"
    stale = set(rows) - operations(world.app)
    assert not stale, f"rows for endpoints that no longer exist: {sorted(stale)}"


def _class_of(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if status in (401, 403):
        return str(status)
    if 400 <= status < 500:
        return "4xx"
    return str(status)  # 3xx or 5xx: never expected


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method} {r.path}")
def test_role_matrix(world: World, row: Row) -> None:
    wrong = []
    for role, expected in row.expected().items():
        world.cleanup()
        path, kw = row.prepare(world, role)
        r = world.call(row.method, path, role, **kw)
        got = _class_of(r.status_code)
        if got != expected:
            wrong.append(f"{role}: expected {expected}, got {r.status_code} {r.text[:200]}")
            continue
        if got != "2xx":
            assert r.headers["content-type"] == "application/problem+json", r.headers
            body = r.json()
            assert body["status"] == r.status_code and body["type"].startswith("/problems/"), body
            assert body["title"] and body["detail"], body
        if got == "401":
            assert r.headers.get("www-authenticate") == "Bearer"
    world.cleanup()
    assert not wrong, f"{row.method} {row.path}:\n" + "\n".join(wrong)


def test_expired_and_tampered_tokens_say_why(world: World) -> None:
    for role, words in (("expired", "expired"), ("tampered", "invalid")):
        r = world.call("GET", "/api/v1/queues", role)
        assert r.status_code == 401 and words in r.json()["detail"], r.text
    for header in ("Basic YWRtaW46YWRtaW4tZGVtbw==", "Bearer", "Bearer not-a-token", "Bearer a.b.c"):
        r = world.client.get("/api/v1/queues", headers={"Authorization": header})
        assert r.status_code == 401, (header, r.text)


def test_a_disabled_user_cannot_log_in(world: World) -> None:
    world.app.state.store.users.create("leaver", "leaver-password", "supervisor")
    assert world.client.post("/api/v1/auth/login",
                             json={"username": "leaver", "password": "leaver-password"}).status_code == 200
    assert world.call("POST", "/api/v1/users/leaver/disable", "admin").json()["disabled"] is True
    r = world.client.post("/api/v1/auth/login", json={"username": "leaver", "password": "leaver-password"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
