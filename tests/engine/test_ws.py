"""WebSockets over a real HTTP server (uvicorn in a thread) with a real client (`websockets`).

An agent's socket carries only what concerns that agent, a supervisor's carries everything, refusals
arrive as close codes a browser can read (4401, 4403, 4400), and a client that reconnects with
`after=<last id>` receives exactly what it missed, in order, then the live feed without repeats.

Every wait below is bounded (`recv(timeout=...)`) only so a broken feed fails instead of hanging; what
is asserted is which messages arrive and in what order, never how fast.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from live_server import WAIT_S, LiveClient, live_demo, recv
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection


class Live(LiveClient):
    def socket(self, kind: str, token: str, **params: str) -> ClientConnection:
        return self.open_socket(kind, "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items()))

    def contact(self, **body: Any) -> str:
        cid = self.next_id("ws")
        self.ok("sam", "POST", "/api/v1/contacts", json={"id": cid, **body})
        return cid


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_demo(Live, tmp_path_factory.mktemp("ws"), ("alice", "bashir", "sam", "admin"),
                   ws_max_size=65536, timeout_graceful_shutdown=5) as env:
        yield env


def hello(ws: ClientConnection) -> dict[str, Any]:
    msg = recv(ws)
    assert msg["type"] == "hello", msg
    return msg


def until(ws: ClientConnection, last: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Every journaled event up to and including the first one for which `last` is true (screen-pops,
    which the CTI bridge sends on the same sockets without a journal seq, are left out)."""
    got = []
    while True:
        msg = recv(ws)
        if msg.get("type", "").startswith("cti."):
            continue
        got.append(msg)
        if last(msg):
            return got


def is_(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())


def closed_with(ws: ClientConnection) -> tuple[int, list[dict[str, Any]]]:
    """Read until the server closes; the close code and what came before it."""
    before = []
    with pytest.raises(ConnectionClosed) as info:
        while True:
            before.append(json.loads(ws.recv(timeout=WAIT_S)))
    assert info.value.rcvd is not None, "closed without a close frame"
    return info.value.rcvd.code, before


def concerns(msg: dict[str, Any], cid: str) -> bool:
    return msg.get("contact") == cid


def test_agent_sockets_see_only_their_own_and_the_supervisor_sees_all(live: Live) -> None:
    alice_ws = live.socket("agent", live.tokens["alice"])
    bashir_ws = live.socket("agent", live.tokens["bashir"])
    sup_ws = live.socket("supervisor", live.tokens["sam"])
    assert hello(alice_ws)["agent"] == "alice" and hello(bashir_ws)["agent"] == "bashir"
    sup_hello = hello(sup_ws)
    assert set(sup_hello["queues"]) == {"general", "bylaw", "roads", "waste", "taxes", "parking"}

    live.ok("alice", "POST", "/api/v1/agents/alice/login", json={"ready": True})
    live.ok("bashir", "POST", "/api/v1/agents/bashir/login", json={"ready": True})
    his = live.contact(queue="roads", channel="chat")  # only bashir has roads
    hers = live.contact(queue="parking", channel="voice", attributes={"ani": "+19055550199"})  # only alice
    other = live.contact(queue="taxes", channel="email")  # nobody: waits
    live.ok("bashir", "POST", f"/api/v1/contacts/{his}/accept")
    live.ok("alice", "POST", f"/api/v1/contacts/{hers}/accept")
    live.ok("bashir", "POST", f"/api/v1/contacts/{his}/complete", json={"code": "resolved"})
    live.ok("alice", "POST", f"/api/v1/contacts/{hers}/complete", json={"code": "resolved"})
    live.ok("sam", "POST", f"/api/v1/contacts/{other}/abandon")
    live.ok("bashir", "POST", "/api/v1/agents/bashir/logout")  # the last event of all
    live.ok("alice", "POST", "/api/v1/agents/alice/logout")

    # alice: everything about her, in order, and nothing about bashir or his chat
    mine = until(alice_ws, is_("AgentLoggedOut", agent="alice"))
    assert all("alice" in m["agents"] for m in mine), mine
    assert not [m for m in mine if concerns(m, his) or concerns(m, other) or m.get("agent") == "bashir"]
    kinds = [(m["type"], m.get("contact")) for m in mine]
    assert kinds == [("AgentLoggedIn", None), ("AgentReady", None), ("ContactOffered", hers),
                     ("ContactAnswered", hers), ("ContactEnded", hers), ("WrapUpCompleted", hers),
                     ("AgentLoggedOut", None)], kinds
    offer = mine[2]
    assert offer["contact_info"]["queue"] == "parking" and offer["contact_info"]["attributes"] == {
        "ani": "+19055550199"}

    # bashir: his own, and not alice's (her events after his came last, so a leak would have shown)
    his_feed = until(bashir_ws, is_("AgentLoggedOut", agent="bashir"))
    assert [(m["type"], m.get("contact")) for m in his_feed] == [
        ("AgentLoggedIn", None), ("AgentReady", None), ("ContactOffered", his), ("ContactAnswered", his),
        ("ContactEnded", his), ("WrapUpCompleted", his), ("AgentLoggedOut", None)]
    assert not [m for m in his_feed if concerns(m, hers) or m.get("agent") == "alice"]

    # the supervisor: every event, journal order, no gaps
    feed = until(sup_ws, is_("AgentLoggedOut", agent="alice"))
    seqs = [m["seq"] for m in feed]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    ids = {m["id"] for m in feed}
    assert {m["id"] for m in mine} <= ids and {m["id"] for m in his_feed} <= ids
    types = [m["type"] for m in feed]
    assert types.count("ContactQueued") == 3 and "ContactAbandoned" in types
    assert [m["contact"] for m in feed if m["type"] == "ContactQueued"] == [his, hers, other]


@pytest.mark.parametrize("kind", ["agent", "supervisor"])
def test_a_bad_token_is_closed_with_4401(live: Live, kind: str) -> None:
    signer = live.app.state.signer
    expired, _ = signer.issue("sam", "supervisor", None, now=time.time() - signer.ttl_s - 60)
    claims, sig = live.tokens["alice"].split(".")
    for token in ("garbage", expired, f"{claims}.{sig[::-1]}", ""):
        code, before = closed_with(live.socket(kind, token))
        assert (code, before) == (4401, []), token


def test_a_socket_the_role_does_not_allow_is_closed_with_4403(live: Live) -> None:
    for kind, token, params in (("supervisor", live.tokens["alice"], {}),
                                ("agent", live.tokens["alice"], {"agent": "bashir"}),
                                ("agent", live.tokens["admin"], {}),  # an admin is no agent: say which
                                ("agent", live.tokens["sam"], {"agent": "nobody"})):
        code, before = closed_with(live.socket(kind, token, **params))
        assert (code, before) == (4403, []), (kind, params)
    # a supervisor may follow one agent's feed
    assert hello(live.socket("agent", live.tokens["sam"], agent="bashir"))["agent"] == "bashir"


@pytest.mark.parametrize("after", ["abc", "1-x", "-1", "1-2-3", "%20"])
def test_garbage_after_is_closed_with_4400(live: Live, after: str) -> None:
    for kind, token in (("agent", live.tokens["alice"]), ("supervisor", live.tokens["sam"])):
        code, before = closed_with(live.socket(kind, token, after=after))
        assert code == 4400, (kind, after)
        assert [m["type"] for m in before] == ["error"] and "after" in before[0]["detail"]


def test_after_beyond_what_the_bus_holds_asks_for_a_resync(live: Live) -> None:
    code, before = closed_with(live.socket("supervisor", live.tokens["sam"], after="999999999-0"))
    assert code == 4409 and [m["type"] for m in before] == ["resync"]


def test_reconnect_after_delivers_exactly_what_was_missed(live: Live) -> None:
    witness = live.socket("supervisor", live.tokens["sam"])  # connected throughout
    hello(witness)
    ws = live.socket("supervisor", live.tokens["sam"])
    hello(ws)
    first = live.contact(queue="taxes", channel="email")
    seen = until(ws, is_("ContactQueued", contact=first))
    last_id = seen[-1]["id"]
    ws.close()

    # while it is away
    missed_contacts = [live.contact(queue="taxes", channel="email"), live.contact(queue="waste", channel="chat")]
    live.ok("sam", "POST", f"/api/v1/contacts/{first}/abandon")
    missed = until(witness, is_("ContactAbandoned", contact=first))
    missed = missed[next(i for i, m in enumerate(missed) if m["id"] == last_id) + 1:]
    assert [(m["type"], m["contact"]) for m in missed] == [
        ("ContactQueued", missed_contacts[0]), ("ContactQueued", missed_contacts[1]), ("ContactAbandoned", first)]

    back = live.socket("supervisor", live.tokens["sam"], after=last_id)
    hello(back)
    caught_up = [recv(back) for _ in missed]
    assert caught_up == missed
    # then the live feed, with nothing repeated in between
    live_one = live.contact(queue="taxes", channel="email")
    assert recv(back) == recv(witness)
    for cid in (*missed_contacts, live_one):
        live.ok("sam", "POST", f"/api/v1/contacts/{cid}/abandon")


def test_an_agent_reconnecting_gets_only_its_own_missed_events(live: Live) -> None:
    ws = live.socket("agent", live.tokens["alice"])
    hello(ws)
    live.ok("alice", "POST", "/api/v1/agents/alice/login", json={})
    last_id = until(ws, is_("AgentLoggedIn", agent="alice"))[-1]["id"]
    ws.close()

    live.ok("bashir", "POST", "/api/v1/agents/bashir/login", json={"ready": True})
    live.ok("alice", "POST", "/api/v1/agents/alice/state", json={"state": "ready"})
    noise = live.contact(queue="roads", channel="chat")  # bashir's
    live.ok("alice", "POST", "/api/v1/agents/alice/state", json={"state": "not_ready", "reason": "lunch"})
    live.ok("sam", "POST", f"/api/v1/contacts/{noise}/abandon")

    back = live.socket("agent", live.tokens["alice"], after=last_id)
    assert hello(back)["state"]["presence"] == "not_ready"
    got = [recv(back), recv(back)]
    assert [(m["type"], m.get("reason")) for m in got] == [("AgentReady", None), ("AgentNotReady", "lunch")]
    live.ok("alice", "POST", "/api/v1/agents/alice/logout")
    assert recv(back)["type"] == "AgentLoggedOut"  # next is live, not bashir's or the chat's
    live.ok("bashir", "POST", "/api/v1/agents/bashir/logout")


def test_ping_is_answered(live: Live) -> None:
    ws = live.socket("agent", live.tokens["bashir"])
    hello(ws)
    ws.send("ping")
    assert ws.recv(timeout=WAIT_S) == "pong"
