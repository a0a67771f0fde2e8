"""Outbound voice end to end: click-to-dial and callbacks with real SIP and RTP on loopback.

The engine runs in this process (the rig of tests/e2e/voice.py) with SIP on and a dial plan whose trunk
is a pjsua2 phone (tests/e2e/sipua.py) acting as the outside line; agents' stations are pjsua2 phones too.
The agent sends 600 Hz, the outside party 1000 Hz; each recording is checked by FFT for the other side's
tone (the engine's ringback is 440 Hz and does not count). The API is called through the app itself (ASGI) with real
tokens from /auth/login.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testsupport import wait_for

from acd.events import CallbackScheduled, ContactAnswered, ContactEnded, ContactOffered, ContactQueued
from e2e.voice import Phone, VoiceEngine, answering_phone, phone_starter, tone_files, tone_seconds
from engine.bench.processes import free_port

pytestmark = pytest.mark.timeout(180)

AGENTS = ("alice", "bashir", "chen")  # chen has no station
OFFER_TIMEOUT_S = 8
RESIDENT = "9055550142"


def site_yaml(stations: dict[str, str], trunk_port: int) -> str:
    lines = ["skills: [general]", "numbers:", '  "311": general', "queues:", "  general:",
             "    skills: {general: 1}", "    strategy: linear", f"    linear_order: [{', '.join(AGENTS)}]",
             f"    offer_timeout_s: {OFFER_TIMEOUT_S}", "    wrap_up_s: 0", "rona_misses: 5", "agents:"]
    for a in AGENTS:
        lines += [f"  {a}:", "    skills: {general: 5}", "    capacity: {voice: 1, callback: 1}"]
    lines.append("stations:")
    lines += [f"  {a}: {uri}" for a, uri in stations.items()]
    lines += ["dial_plan:", f'  trunk: "sip:{{number}}@127.0.0.1:{trunk_port}"', '  caller_id: "9055550311"',
              "  callback_retry_s: 300", "  callback_attempts: 2",
              "users:", "  - {username: sup, password: sup-pass, role: supervisor}"]
    lines += [f"  - {{username: {a}, password: {a}-pass, role: agent, agent: {a}}}" for a in AGENTS]
    return "\n".join(lines) + "\n"


class OutboundEngine(VoiceEngine):
    """The voice test engine with a dial plan, users and this module's port ranges."""

    agents = AGENTS
    no_station = frozenset({"chen"})
    rtp_port_start = 31000

    def __init__(self, tmp: Path):
        self._tokens: dict[str, str] = {}
        super().__init__(tmp)

    def site_yaml(self, stations: dict[str, str]) -> str:
        return site_yaml(stations, self.trunk_port)

    @property
    def dialer(self) -> Any:
        return self.app.state.dialer

    def api(self, method: str, path: str, user: str, body: Any = None) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                         base_url="http://engine") as client:
                if user not in self._tokens:
                    r = await client.post("/api/v1/auth/login", json={"username": user, "password": f"{user}-pass"})
                    assert r.status_code == 200, r.text
                    self._tokens[user] = r.json()["access_token"]
                return await client.request(method, f"/api/v1{path}", json=body,
                                            headers={"Authorization": f"Bearer {self._tokens[user]}"})

        response: httpx.Response = self.run(go)
        return response

    def agent(self, agent: str) -> tuple[str, str | None]:
        a = self.app.state.core.router.agents[agent]
        return self.run(lambda: (a.presence.value, a.reason))

    def wait_idle(self, timeout: float = 30) -> None:
        """No call, leg, back-end leg or outbound call left."""
        def table() -> tuple[Any, ...]:
            return (*self.call_table(), self.run(lambda: dict(self.dialer.calls)))

        wait_for(lambda: table() == ({}, {}, [], {}), timeout, lambda: f"call table: {table()}")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboundEngine]:
    with OutboundEngine(tmp_path_factory.mktemp("outbound")) as eng:
        yield eng


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tone_files(tmp_path_factory.mktemp("tones"), outside=1000.0, agent=600.0)


@pytest.fixture
def phones(tmp_path: Path, engine: OutboundEngine) -> Iterator[Callable[..., Phone]]:
    yield from phone_starter(Phone, tmp_path, engine, range(33000, 40000, 400))


def station(phones: Callable[..., Phone], engine: OutboundEngine, agent: str, tmp: Path, tone: Path,
            *extra: str) -> Phone:
    return answering_phone(phones, engine.station_ports[agent], agent, tmp / agent, *extra, tone=tone)


def outside_line(phones: Callable[..., Phone], engine: OutboundEngine, tmp: Path, tone: Path, *extra: str) -> Phone:
    return answering_phone(phones, engine.trunk_port, "trunk", tmp / "outside", *extra, tone=tone)


def log_in_ready(engine: OutboundEngine, agent: str) -> None:
    """The agent logs in, ready, over the API (as the agent's desktop would)."""
    r = engine.api("POST", f"/agents/{agent}/login", agent, {"ready": True})
    assert r.status_code == 200, r.text


def assert_audio_both_ways(tmp: Path, agent: str) -> None:
    heard_by_agent = tone_seconds(tmp / agent / "call-1.wav", 1000.0)
    heard_outside = tone_seconds(tmp / "outside" / "call-1.wav", 600.0)
    assert heard_by_agent >= 3.0, f"the agent heard the outside party's 1000 Hz for only {heard_by_agent} s"
    assert heard_outside >= 3.0, f"the outside party heard the agent's 600 Hz for only {heard_outside} s"


# ------------------------------------------------------------------------------------------------
def test_click_to_dial_connects_agent_and_number(engine: OutboundEngine, phones: Callable[..., Phone],
                                                 tones: dict[str, Path], tmp_path: Path) -> None:
    log_in_ready(engine, "alice")
    alice = station(phones, engine, "alice", tmp_path, tones["agent"])
    outside = outside_line(phones, engine, tmp_path, tones["outside"])

    r = engine.api("POST", "/agents/alice/dial", "alice", {"number": "+1 (905) 555-0142"})
    assert r.status_code == 202, r.text
    view = r.json()
    assert (view["agent"], view["number"], view["category"], view["kind"]) == ("alice", RESIDENT, "local",
                                                                               "click_to_dial")
    # occupied for the ACD: not ready "outbound" (no voice call can be offered to her meanwhile)
    assert engine.agent("alice") == ("not_ready", "outbound")
    alice.wait("confirmed", timeout=20)  # her station rang first and she answered
    (rang,) = outside.wait("incoming", timeout=20)  # then the number, on the trunk
    assert "sip:switchboard@127.0.0.1" in rang["remote"]
    outside.wait("confirmed", timeout=20)
    r = engine.api("GET", "/agents/alice/dial", "alice")
    assert [c["state"] for c in r.json()["items"]] == ["connected"], r.json()

    # a voice call arriving meanwhile is not offered to her
    caller = phones("caller", "--port", str(free_port()), "--dial", f"sip:311@127.0.0.1:{engine.sip_port}")
    caller.wait("confirmed")
    time.sleep(6)
    offered = [e.agent for e in engine.events_of(ContactOffered)]
    assert "alice" not in offered, offered
    caller.stop()

    outside.stop()  # the outside party hangs up: the agent's leg goes too
    alice.wait("disconnected", timeout=20)
    engine.wait_idle()
    assert_audio_both_ways(tmp_path, "alice")
    wait_for(lambda: engine.agent("alice") == ("ready", None), 10, "alice back to ready")


def test_callback_calls_the_resident_back(engine: OutboundEngine, phones: Callable[..., Phone],
                                          tones: dict[str, Path], tmp_path: Path) -> None:
    before = len(engine.events)
    # the resident calls in, waits, and takes a callback (keeping their place): the engine hangs up on them
    resident = phones("caller", "--port", str(free_port()), "--user", RESIDENT,
                      "--dial", f"sip:311@127.0.0.1:{engine.sip_port}")
    resident.wait("confirmed")
    cid = wait_for(lambda: [c.event.contact for c in engine.events[before:] if isinstance(c.event, ContactQueued)],
                   20, "the call to be queued")[0]
    r = engine.api("POST", f"/contacts/{cid}/callback", "sup")
    assert r.status_code == 200, r.text
    assert (r.json()["channel"], r.json()["attributes"]["caller_id"]) == ("callback", RESIDENT)
    assert resident.exited(20) == 0  # hung up by the engine, and the contact was not abandoned
    time.sleep(0.5)
    assert engine.run(lambda: engine.app.state.core.router.contacts[cid].state.value) == "queued"

    alice = station(phones, engine, "alice", tmp_path, tones["agent"])
    outside = outside_line(phones, engine, tmp_path, tones["outside"])
    engine.ready("alice")  # the callback is offered to her: her station rings, then the resident's number
    alice.wait("confirmed", timeout=20)
    outside.wait("incoming", timeout=20)
    assert f"sip:{RESIDENT}@" in engine.run(lambda: [c.target.uri for c in engine.dialer.calls.values()])[0]
    outside.wait("confirmed", timeout=20)
    assert engine.events_of(ContactAnswered, contact=cid, agent="alice")
    time.sleep(6)
    outside.stop()
    alice.wait("disconnected", timeout=20)
    wait_for(lambda: engine.events_of(ContactEnded, contact=cid), 20, "ContactEnded")
    engine.wait_idle()
    assert_audio_both_ways(tmp_path, "alice")
    assert not engine.events_of(CallbackScheduled)  # answered: nothing rebooked


def test_callback_not_answered_is_booked_again(engine: OutboundEngine, phones: Callable[..., Phone],
                                               tones: dict[str, Path], tmp_path: Path) -> None:
    station(phones, engine, "bashir", tmp_path, tones["agent"])
    outside_line(phones, engine, tmp_path, tones["outside"], "--answer", "busy")
    r = engine.api("POST", "/contacts", "sup", {"id": "cb-busy", "queue": "general", "channel": "callback",
                                                "attributes": {"caller_id": "905 555 0177"}})
    assert r.status_code in (200, 201), r.text
    engine.ready("bashir")
    wait_for(lambda: engine.events_of(ContactEnded, contact="cb-busy"), 30, "the callback to end")
    (booked,) = wait_for(lambda: engine.events_of(CallbackScheduled, contact="cb-busy-r2"), 10, "a new booking")
    assert booked.attributes["callback_attempt"] == 2 and booked.attributes["callback_of"] == "cb-busy"
    assert booked.schedule_at - booked.t == pytest.approx(300, abs=1)
    engine.wait_idle()
    r = engine.api("POST", "/contacts/cb-busy-r2/abandon", "sup")  # cancel the booking: keep the queue clean
    assert r.status_code == 200, r.text


def test_refused_numbers_are_never_dialled(engine: OutboundEngine, phones: Callable[..., Phone],
                                           tones: dict[str, Path], tmp_path: Path) -> None:
    log_in_ready(engine, "alice")
    alice = station(phones, engine, "alice", tmp_path, tones["agent"])
    outside = outside_line(phones, engine, tmp_path, tones["outside"])
    for number, category in (("1-900-555-0100", "premium"), ("+44 20 7946 0958", "international"),
                             ("876 555 0100", "international"), ("416-555-0100", "long_distance"),
                             ("911", "emergency"), ("not a number", "invalid")):
        r = engine.api("POST", "/agents/alice/dial", "alice", {"number": number})
        assert r.status_code == 403, r.text
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert problem["type"] == "/problems/dial-refused"
        assert (problem["number"], problem["category"]) == (number, category)
        assert number in problem["detail"] and category in problem["detail"]
    assert engine.agent("alice") == ("ready", None)  # nothing changed for the ACD

    # a callback to a refused number: ended at once, never dialled, the agent's phone never rings
    r = engine.api("POST", "/contacts", "sup", {"id": "cb-jamaica", "queue": "general", "channel": "callback",
                                                "attributes": {"caller_id": "876-555-0100"}})
    assert r.status_code in (200, 201), r.text
    wait_for(lambda: engine.events_of(ContactEnded, contact="cb-jamaica"), 20, "the refused callback to end")
    time.sleep(2)
    assert not alice.seen("incoming") and not outside.seen("incoming")
    assert not engine.events_of(CallbackScheduled, contact="cb-jamaica-r2")


def test_who_may_dial_for_whom(engine: OutboundEngine, phones: Callable[..., Phone]) -> None:
    r = engine.api("POST", "/agents/bashir/dial", "alice", {"number": "311"})
    assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden", r.text
    r = engine.api("POST", "/agents/bashir/dial", "sup", {"number": "311"})  # a supervisor may: bashir is out
    assert r.status_code == 409 and "not logged in" in r.json()["detail"], r.text
    engine.ready("chen")
    r = engine.api("POST", "/agents/chen/dial", "chen", {"number": "311"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/agent-busy" and "station" in r.json()["detail"]
    r = engine.api("POST", "/agents/nobody/dial", "sup", {"number": "311"})
    assert r.status_code == 404, r.text
    r = engine.api("POST", "/agents/chen/dial", "chen", {"number": ""})
    assert r.status_code == 422, r.text
    r = engine.api("POST", "/agents/chen/dial", "chen", {"number": "311", "extra": 1})
    assert r.status_code == 422, r.text
    assert engine.agent("chen") == ("ready", None)
