"""The CTI bridge over a real engine (uvicorn in a thread) with real WebSocket clients.

A screen-pop follows its offer on the agent's socket (never before it), names the matched resident and
their open cases, says "no_match" for an unknown caller and "CRM unavailable" when the CRM fails, reaches
only the offered agent (and supervisors), is looked up afresh each time (a case filed during the call
shows on the next pop), and a CRM that takes 2 s delays the pop, never the offer.

The slow and the failing CRMs are the real webhook connector (behind the real timeout + circuit-breaker
guard, built by `make_connector` from settings) talking HMAC-signed HTTP to a small CRM web service run
by the test, which answers late, 500s or sends garbage on demand; or to a port nobody listens on. They
are swapped in on the running bridge.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from crm_service import SECRET, CrmService, running_crm
from live_server import LiveClient, live_demo, recv
from websockets.sync.client import ClientConnection

from cti.bridge import POP_TYPE, CtiBridge
from cti.connectors import Connector, make_connector
from engine.settings import Settings


class Live(LiveClient):
    def socket(self, kind: str, user: str) -> ClientConnection:
        # max_queue=None: a socket the test stops reading must not stall the server's sends
        ws = self.open_socket(kind, f"token={self.tokens[user]}", max_queue=None)
        assert recv(ws)["type"] == "hello"
        return ws

    def contact(self, caller: dict[str, Any], queue: str = "general", channel: str = "voice") -> str:
        cid = self.next_id("pop")
        self.ok("sam", "POST", "/api/v1/contacts", json={"id": cid, "queue": queue, "channel": channel,
                                                          "attributes": caller})
        return cid

    def resident(self, first: str, last: str, phone: str | None = None, email: str | None = None) -> int:
        body: dict[str, Any] = {"first_name": first, "last_name": last, "phones": [phone] if phone else [],
                                "emails": [email] if email else []}
        return int(self.ok("sam", "POST", "/api/v1/residents", json=body)["id"])

    def case(self, resident: int, service: str = "pothole", address: str = "12 Main St") -> str:
        body = {"service_code": service, "channel": "voice", "resident_id": resident,
                "location": {"address": address}}
        return str(self.ok("sam", "POST", "/api/v1/cases", json=body)["reference"])

    @property
    def bridge(self) -> CtiBridge:
        bridge: CtiBridge = self.app.state.cti
        return bridge


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_demo(Live, tmp_path_factory.mktemp("bridge"), ("alice", "bashir", "chen", "sam"),
                   {"sip_enabled": False}, timeout_graceful_shutdown=5) as env:
        yield env


@pytest.fixture(autouse=True)
def own_sockets(live: Live) -> Iterator[None]:
    """Each test's sockets are closed when it ends."""
    yield
    live.close_sockets()


@pytest.fixture
def agents(live: Live) -> Iterator[Any]:
    """Log agents in (ready) for one test; log them out afterwards, finishing what they still hold."""
    used: list[str] = []

    def ready(*names: str) -> None:
        for name in names:
            live.ok(name, "POST", f"/api/v1/agents/{name}/login", json={"ready": True})
            used.append(name)

    yield ready
    for name in used:
        held = live.ok(name, "GET", f"/api/v1/agents/{name}")
        for cid in held["offers"] + held["contacts"]:
            finish(live, name, cid)
        live.ok(name, "POST", f"/api/v1/agents/{name}/logout")


@contextlib.contextmanager
def crm(live: Live, connector: Connector) -> Iterator[None]:
    """Swap the running bridge's CRM for the test."""
    before = live.bridge.connector
    live.bridge.connector = connector
    try:
        yield
    finally:
        live.bridge.connector = before


def until_pop(ws: ClientConnection, cid: str) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, message) for every message up to this contact's screen-pop."""
    got = []
    while True:
        msg = recv(ws)
        got.append((time.perf_counter(), msg))
        if msg.get("type") == POP_TYPE and msg.get("contact") == cid:
            return got


def finish(live: Live, agent: str, cid: str) -> None:
    state = live.ok("sam", "GET", f"/api/v1/contacts/{cid}")["state"]
    if state == "offered":
        live.ok(agent, "POST", f"/api/v1/contacts/{cid}/accept")
    if state in ("offered", "connected", "held", "wrap_up"):
        live.ok(agent, "POST", f"/api/v1/contacts/{cid}/complete", json={"code": "resolved"})


def kinds(messages: list[tuple[float, dict[str, Any]]], cid: str) -> list[str]:
    return [m["type"] for _, m in messages if m.get("contact") == cid]


# ---------------------------------------------------------------------------------------------------
def test_pop_follows_the_offer_with_the_resident_and_open_cases(live: Live, agents: Any) -> None:
    rid = live.resident("Marie", "Lavoie", phone="905-555-0142")
    open_ref = live.case(rid)
    closed_ref = live.case(rid, address="40 King St")
    for status in ("pending_approval", "closed"):
        live.ok("sam", "POST", f"/api/v1/cases/{closed_ref}/status",
                json={"status": status, "note": "patched"})
    agents("alice")
    ws = live.socket("agent", "alice")
    sup = live.socket("supervisor", "sam")
    cid = live.contact({"caller_id": "9055550142", "intent": "pothole"})
    got = until_pop(ws, cid)
    assert kinds(got, cid) == ["ContactOffered", POP_TYPE], "the pop comes after its offer, once"
    offer = next(m for _, m in got if m["type"] == "ContactOffered")
    pop = got[-1][1]
    assert pop["agents"] == ["alice"] and pop["agent"] == "alice" and pop["crm"] == "builtin"
    assert pop["status"] == "matched" and pop["message"] is None
    assert [p["name"] for p in pop["people"]] == ["Marie Lavoie"]
    assert pop["people"][0]["id"] == str(rid) and pop["people"][0]["phones"] == ["+19055550142"]
    assert [c["reference"] for c in pop["cases"]] == [open_ref], "only open cases pop"
    assert pop["cases"][0]["title"] == "Pothole" and pop["cases"][0]["person_id"] == str(rid)
    assert pop["caller"] == {"phone": "9055550142", "email": None} and pop["channel"] == "voice"
    assert pop["offered_at"] == offer["t"] and pop["popped_at"] >= pop["offered_at"]
    assert "seq" not in pop, "a pop is not a journaled event"
    sup_got = until_pop(sup, cid)
    assert kinds(sup_got, cid)[-1] == POP_TYPE and sup_got[-1][1]["people"] == pop["people"]
    print(f"\noffer -> pop on the agent's socket: {(got[-1][0] - got[0][0]) * 1000:.1f} ms")


def test_unknown_caller_is_no_match_and_an_email_matches(live: Live, agents: Any) -> None:
    agents("alice")
    ws = live.socket("agent", "alice")
    cid = live.contact({"caller_id": "6135550199"})
    pop = until_pop(ws, cid)[-1][1]
    assert pop["status"] == "no_match" and pop["people"] == [] and pop["cases"] == []
    finish(live, "alice", cid)

    rid = live.resident("Jon", "Baptiste", email="jon.baptiste@example.org")
    ref = live.case(rid)
    cid = live.contact({"from": "Jon.Baptiste@example.org", "subject": "pothole"}, channel="email")
    pop = until_pop(ws, cid)[-1][1]
    assert pop["status"] == "matched" and pop["people"][0]["name"] == "Jon Baptiste"
    assert [c["reference"] for c in pop["cases"]] == [ref]
    assert pop["caller"]["email"] == "Jon.Baptiste@example.org"
    finish(live, "alice", cid)

    cid = live.contact({"intent": "tax bill"})  # no caller id at all (withheld): nothing to look up
    pop = until_pop(ws, cid)[-1][1]
    assert pop["status"] == "no_match" and pop["caller"] == {"phone": None, "email": None}


def test_agents_get_only_their_own_pops_and_the_supervisor_gets_all(live: Live, agents: Any) -> None:
    live.resident("Ada", "Okoro", phone="905-555-0177")
    alice_ws, bashir_ws = live.socket("agent", "alice"), live.socket("agent", "bashir")
    sup = live.socket("supervisor", "sam")
    agents("alice")
    for_alice = live.contact({"caller_id": "9055550177"})
    assert until_pop(alice_ws, for_alice)[-1][1]["status"] == "matched"
    agents("bashir")  # alice holds her offer (voice capacity 1): the next call is bashir's
    for_bashir = live.contact({"caller_id": "9055550177"})
    bashir_got = until_pop(bashir_ws, for_bashir)
    assert bashir_got[-1][1]["agents"] == ["bashir"]
    assert not any(m.get("contact") == for_alice for _, m in bashir_got), "bashir saw alice's contact"
    sup_got = until_pop(sup, for_bashir)
    pops = {m["contact"]: m["agents"] for _, m in sup_got if m["type"] == POP_TYPE}
    assert pops == {for_alice: ["alice"], for_bashir: ["bashir"]}

    # the same over HTTP: the pop again is for the contact's agent (or a supervisor) only
    assert live.ok("alice", "GET", f"/api/v1/contacts/{for_alice}/pop")["people"][0]["name"] == "Ada Okoro"
    refused = live.call("bashir", "GET", f"/api/v1/contacts/{for_alice}/pop")
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert "not yours" in refused.json()["detail"]
    assert live.ok("sam", "GET", f"/api/v1/contacts/{for_bashir}/pop")["agents"] == ["bashir"]
    missing = live.call("alice", "GET", "/api/v1/contacts/no-such-contact/pop")
    assert missing.status_code == 404 and missing.json()["type"] == "/problems/unknown-contact"
    assert live.http.get(f"/api/v1/contacts/{for_alice}/pop",
                         headers={"Authorization": "Bearer forged"}).status_code == 401


def test_nothing_is_cached_a_case_filed_during_the_call_shows_on_the_next_pop(live: Live,
                                                                              agents: Any) -> None:
    rid = live.resident("Lucie", "Tran", phone="905-555-0188")
    agents("alice")
    ws = live.socket("agent", "alice")
    cid = live.contact({"caller_id": "905 555 0188"})
    assert until_pop(ws, cid)[-1][1]["cases"] == []
    live.ok("alice", "POST", f"/api/v1/contacts/{cid}/accept")
    filed = live.ok("alice", "POST", "/api/v1/cases", json={"service_code": "pothole", "contact_id": cid,
                                                            "resident_id": rid,
                                                            "location": {"address": "3 Elm St"}})
    again = live.ok("alice", "GET", f"/api/v1/contacts/{cid}/pop")
    assert [c["reference"] for c in again["cases"]] == [filed["reference"]]
    finish(live, "alice", cid)
    # the finished contact's pop can still be fetched by its agent (a desktop reloading after the call)
    assert live.ok("alice", "GET", f"/api/v1/contacts/{cid}/pop")["status"] == "matched"
    cid2 = live.contact({"caller_id": "9055550188"})
    assert [c["reference"] for c in until_pop(ws, cid2)[-1][1]["cases"]] == [filed["reference"]]


@pytest.fixture
def crm_service() -> Iterator[CrmService]:
    with running_crm() as service:
        yield service


def webhook(url: str, timeout_s: float) -> Connector:
    """The connector `serve` would build for SWITCHBOARD_CRM=webhook (guard included)."""
    return make_connector(Settings(crm="webhook", webhook_url=url, webhook_secret=SECRET,
                                   crm_timeout_s=timeout_s, crm_failures_to_open=100), None)


@pytest.mark.parametrize("failure", ["down", "500", "garbage", "timeout"])
def test_a_crm_that_fails_says_unavailable_and_the_contact_still_flows(live: Live, agents: Any,
                                                                        crm_service: CrmService,
                                                                        failure: str) -> None:
    url = crm_service.url
    if failure == "down":
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/crm"
    elif failure == "timeout":
        crm_service.delay_s = 2.0  # longer than the guard's 0.5 s
    else:
        crm_service.mode = failure
    agents("alice")
    ws = live.socket("agent", "alice")
    with crm(live, webhook(url, timeout_s=0.5)):
        cid = live.contact({"caller_id": "9055550123"})
        got = until_pop(ws, cid)
        assert kinds(got, cid) == ["ContactOffered", POP_TYPE]
        pop = got[-1][1]
        assert pop["status"] == "unavailable" and pop["message"] == "CRM unavailable"
        assert pop["crm"] == "webhook"
        assert pop["people"] == [] and pop["cases"] == []
        assert live.ok("alice", "GET", f"/api/v1/contacts/{cid}/pop")["status"] == "unavailable"
        live.ok("alice", "POST", f"/api/v1/contacts/{cid}/accept")
        live.ok("alice", "POST", f"/api/v1/contacts/{cid}/end")
        done = live.ok("alice", "POST", f"/api/v1/contacts/{cid}/wrap-up", json={"code": "info-given"})
        assert done["state"] == "completed"
    assert crm_service.bad_signatures == 0


def test_a_slow_crm_delays_the_pop_never_the_offer(live: Live, agents: Any, crm_service: CrmService) -> None:
    crm_service.delay_s = 2.0
    agents("alice")
    ws = live.socket("agent", "alice")
    with crm(live, webhook(crm_service.url, timeout_s=5.0)):
        sent = time.perf_counter()
        sent_wall = time.time()
        cid = live.contact({"caller_id": "9055550123"})
        got = until_pop(ws, cid)
    offer_at = next(t for t, m in got if m["type"] == "ContactOffered")
    pop_at, pop = got[-1]
    assert kinds(got, cid) == ["ContactOffered", POP_TYPE]
    assert pop["status"] == "matched" and pop["crm"] == "webhook"
    assert pop["people"][0]["name"] == "Rosa Martins" and pop["cases"][0]["reference"] == "CAS-01042"
    # causality, not speed: the offer was on the socket before the CRM had answered at all
    assert len(crm_service.answered) == 1
    assert sent_wall + (offer_at - sent) < crm_service.answered[0] <= pop["popped_at"]
    print(f"\nslow CRM (2 s): offer on the socket {(offer_at - sent) * 1000:.1f} ms after the request, "
          f"pop {(pop_at - sent) * 1000:.1f} ms")


def test_desk_config_lists_reasons_wrap_up_codes_and_services(live: Live) -> None:
    cfg = live.ok("alice", "GET", "/api/v1/desk/config")
    # RONA and outbound are set by the engine, never chosen
    assert cfg["not_ready_reasons"] == ["break", "lunch", "meeting", "training"]
    assert cfg["queues"]["general"]["wrap_up_code_required"] is True
    assert "sr-created" in cfg["queues"]["general"]["wrap_up_codes"]
    noise = next(s for s in cfg["services"] if s["code"] == "noise")
    assert noise["department"] == "By-law" and "voice" in noise["channels"] and noise["needs_location"]
    assert any(a["code"] == "source" and a["required"] for a in noise["attributes"])
    tax = next(s for s in cfg["services"] if s["code"] == "property-tax")
    assert tax["needs_location"] is False
    assert live.http.get("/api/v1/desk/config").status_code == 401


def test_the_server_address_opens_the_desk(live: Live) -> None:
    for path in ("/", "/desk"):
        reply = live.http.get(path, follow_redirects=False)
        assert reply.status_code == 307 and reply.headers["location"] == "/desk/", path
    page = live.http.get("/", follow_redirects=True)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and "<title>" in page.text
