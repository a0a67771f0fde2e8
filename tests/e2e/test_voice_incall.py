"""Voice in-call features end to end: hold/resume, blind transfer (queue, agent, outside number, refused
number), warm transfer (complete, cancel), three-way conference, DTMF by SIP INFO and RFC 4733.

Real SIP and RTP on loopback: the engine's embedded pjsua2 back end in this process (its own event-loop
thread), pjsua2 phones in their own processes (tests/e2e/sipua.py), requests through the real HTTP API
(FastAPI over ASGI, supervisor token). Each party sends its own tone; what each one recorded is checked
by FFT, window by window, against the times the test switched things (hold, resume, transfer...).
Tones: caller 1000 Hz, alice 600 Hz, bashir 800 Hz, the outside line 1400 Hz; the engine's comfort audio
is 440 Hz and its hold audio a 523/659 Hz chime.
RTP ports: the engine from 21000, phones from 23000 (step 400), apart from the other voice tests.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from testsupport import wait_for

from acd.events import (
    ConsultEnded,
    ConsultStarted,
    ContactAnswered,
    ContactEnded,
    ContactOffered,
    ContactQueued,
    ContactTransferred,
)
from acd.model import AgentState
from e2e.voice import Phone, VoiceEngine, answering_phone, phone_starter, tone_files
from engine.bench.processes import free_port

pytestmark = pytest.mark.timeout(240)

AGENTS = ("alice", "bashir", "chen")
FREQ = {"caller": 1000.0, "alice": 600.0, "bashir": 800.0, "outside": 1400.0}
HOLD_FREQS = (523.0, 659.0)
COMFORT = 440.0


def site_yaml(stations: dict[str, str], trunk_port: int) -> str:
    lines = ["skills: [general, taxes]", "numbers:", '  "311": general', "queues:",
             "  general:", "    skills: {general: 1}", "    strategy: linear",
             f"    linear_order: [{', '.join(AGENTS)}]", "    offer_timeout_s: 8", "    wrap_up_s: 0",
             "  taxes:", "    skills: {taxes: 1}", "    offer_timeout_s: 8", "    wrap_up_s: 0",
             "rona_misses: 5", "agents:",
             "  alice:", "    skills: {general: 5}", "    capacity: {voice: 1}",
             "  bashir:", "    skills: {general: 5, taxes: 5}", "    capacity: {voice: 1}",
             "  chen:", "    skills: {general: 5}", "    capacity: {voice: 1}",
             "stations:"]
    lines += [f"  {a}: {uri}" for a, uri in stations.items()]
    lines += ["users:", "  - {username: sam, password: sam-demo, role: supervisor}",
              "  - {username: bashir, password: bashir-demo, role: agent, agent: bashir}",
              "dial_plan:", f'  trunk: "sip:{{number}}@127.0.0.1:{trunk_port}"', '  caller_id: "9055550311"']
    return "\n".join(lines) + "\n"


class InCallEngine(VoiceEngine):
    """The voice test engine with a dial plan whose trunk is a phone of ours, and an HTTP client."""

    agents = AGENTS
    rtp_port_start = 21000

    def __init__(self, tmp: Path):
        super().__init__(tmp)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://engine")
        token = self.post("/api/v1/auth/login", {"username": "sam", "password": "sam-demo"}, expect=200)
        self.client.headers["authorization"] = f"Bearer {token['access_token']}"

    def site_yaml(self, stations: dict[str, str]) -> str:
        return site_yaml(stations, self.trunk_port)

    def request(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.run(lambda: self.client.post(path, json=body))  # type: ignore[no-any-return]

    def post(self, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        resp = self.request(path, body)
        assert resp.status_code == expect, f"POST {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def contact(self, cid: str) -> Any:
        return self.run(lambda: self.app.state.core.router.contacts[cid])

    def agent_state(self, agent: str) -> AgentState:
        return self.run(lambda: self.app.state.core.router.agent_state(agent))  # type: ignore[no-any-return]


class TimedPhone(Phone):
    """A phone whose events carry the time this process read them (to line recordings up with actions)."""

    def received(self, ev: dict[str, Any]) -> dict[str, Any]:
        return {**ev, "at": time.monotonic()}

    def media_at(self, n: int = 1) -> float:
        return float(next(e["at"] for e in self.seen("media") if e["n"] == n))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InCallEngine]:
    with InCallEngine(tmp_path_factory.mktemp("incall")) as eng:
        yield eng


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tone_files(tmp_path_factory.mktemp("tones"), **FREQ)


@pytest.fixture
def phones(tmp_path: Path, engine: InCallEngine) -> Iterator[Callable[..., TimedPhone]]:
    yield from phone_starter(TimedPhone, tmp_path, engine, range(23000, 30000, 400))


def station(phones: Callable[..., TimedPhone], engine: InCallEngine, who: str, tmp: Path, tones: dict[str, Path],
            *extra: str) -> TimedPhone:
    port = engine.trunk_port if who == "outside" else engine.station_ports[who]
    return answering_phone(phones, port, who, tmp / who, *extra, tone=tones[who])


def caller_phone(phones: Callable[..., TimedPhone], engine: InCallEngine, tmp: Path, tones: dict[str, Path],
                 *extra: str) -> TimedPhone:
    return phones("caller", "--port", str(free_port()), "--dial", f"sip:311@127.0.0.1:{engine.sip_port}",
                  "--play", str(tones["caller"]), "--record", str(tmp / "caller.wav"), *extra)


def heard(path: Path, freq: float, start: float = 0.0, end: float = 1e9, *, window_s: float = 0.1,
          min_share: float = 0.15, min_rms: float = 200.0) -> float:
    """Seconds of [start, end) of the recording in which `freq` (+-25 Hz) carries at least `min_share` of
    the energy (so a tone is found in a mix of two, as in a conference) and the audio is not quiet."""
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    n = int(rate * window_s)
    lo, hi = int(max(0.0, start) * rate), int(min(end, len(data) / rate) * rate)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    band = np.abs(freqs - freq) <= 25
    hits = 0
    for s in range(lo, hi - n + 1, n):
        chunk = data[s:s + n]
        if np.sqrt(np.mean(chunk ** 2)) < min_rms:
            continue
        power = np.abs(np.fft.rfft(chunk * np.hanning(n))) ** 2
        if power[band].sum() >= min_share * power.sum():
            hits += 1
    return round(hits * window_s, 2)


def queued_contact(engine: InCallEngine, before: int) -> str:
    found = wait_for(lambda: [c.event.contact for c in engine.events[before:] if isinstance(c.event, ContactQueued)],
                     20, "the call to be queued")
    return str(found[0])


def connect(engine: InCallEngine, phones: Callable[..., TimedPhone], tmp: Path, tones: dict[str, Path],
            *caller_extra: str) -> tuple[str, TimedPhone, TimedPhone]:
    """A caller talking to alice; returns (contact, caller, alice)."""
    before = len(engine.events)
    engine.ready("alice")
    alice = station(phones, engine, "alice", tmp, tones)
    caller = caller_phone(phones, engine, tmp, tones, *caller_extra)
    cid = queued_contact(engine, before)
    alice.wait("media", timeout=30)
    wait_for(lambda: engine.contact(cid).state.value == "connected", 10, "alice to be connected")
    # the router moves before the bus delivers: wait for the event too, so tests count from after it
    wait_for(lambda: engine.events_of(ContactAnswered, contact=cid), 10, "the answer to be published")
    return cid, caller, alice


def hang_up_and_settle(engine: InCallEngine, caller: TimedPhone, *others: TimedPhone) -> None:
    caller.stop()
    for p in others:
        p.wait("disconnected", timeout=20)
    engine.wait_idle()


# ------------------------------------------------------------------------------------------------
def test_hold_plays_hold_audio_to_the_caller_and_resume_reconnects(engine: InCallEngine, phones: Any,
                                                                   tones: dict[str, Path], tmp_path: Path) -> None:
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    time.sleep(3)
    t_hold = time.monotonic()
    engine.post(f"/api/v1/contacts/{cid}/hold")
    time.sleep(5)
    t_resume = time.monotonic()
    body = engine.post(f"/api/v1/contacts/{cid}/resume")
    assert body["state"] == "connected"
    time.sleep(4)
    t_end = time.monotonic()
    hang_up_and_settle(engine, caller, alice)

    c0, a0 = caller.media_at(), alice.media_at()
    crec, arec = tmp_path / "caller.wav", tmp_path / "alice" / "call-1.wav"
    held = (t_hold + 0.5, t_resume - 0.3)
    after = (t_resume + 0.7, t_end - 0.3)
    # while held: the caller hears the hold chime and nothing of alice; alice hears nothing of the caller
    hold_heard = sum(heard(crec, f, held[0] - c0, held[1] - c0) for f in HOLD_FREQS)
    assert hold_heard >= 0.5, f"caller heard the hold chime for {hold_heard} s"
    assert heard(crec, FREQ["alice"], held[0] - c0, held[1] - c0) <= 0.1
    assert heard(arec, FREQ["caller"], held[0] - a0, held[1] - a0) <= 0.1
    # before and after: both ways
    assert heard(arec, FREQ["caller"], t_hold - 2.5 - a0, t_hold - a0) >= 1.5
    assert heard(arec, FREQ["caller"], after[0] - a0, after[1] - a0) >= 2.0
    assert heard(crec, FREQ["alice"], after[0] - c0, after[1] - c0) >= 2.0
    c = engine.contact(cid)
    assert c.state.value == "completed" and 4.0 <= c.hold_s <= 7.0


def test_blind_transfer_to_a_queue_rings_the_next_agent(engine: InCallEngine, phones: Any,
                                                        tones: dict[str, Path], tmp_path: Path) -> None:
    engine.ready("bashir")  # the only agent with the taxes skill
    bashir = station(phones, engine, "bashir", tmp_path, tones, "--ring-s", "2")
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    assert not bashir.seen("incoming")  # alice is first in line for general
    time.sleep(2)
    t_transfer = time.monotonic()
    engine.post(f"/api/v1/contacts/{cid}/transfer", {"to_queue": "taxes", "note": "arrears"})
    alice.wait("disconnected", timeout=10)
    bashir.wait("media", timeout=20)
    t_bashir = bashir.seen("confirmed")[0]["at"]
    time.sleep(4)
    t_end = time.monotonic()
    hang_up_and_settle(engine, caller, bashir)

    c0, b0 = caller.media_at(), bashir.media_at()
    crec, brec = tmp_path / "caller.wav", tmp_path / "bashir" / "call-1.wav"
    # between the transfer and bashir's answer the caller hears comfort audio, not alice
    assert heard(crec, COMFORT, t_transfer - c0, t_bashir - c0) >= 0.2
    assert heard(crec, FREQ["alice"], t_transfer + 0.5 - c0, t_bashir - c0) <= 0.1
    assert heard(brec, FREQ["caller"], 0.5, t_end - b0) >= 2.5
    assert heard(crec, FREQ["bashir"], t_bashir + 0.5 - c0, t_end - c0) >= 2.5
    assert [e.agent for e in engine.events_of(ContactOffered, contact=cid)] == ["alice", "bashir"]
    assert engine.events_of(ContactEnded, contact=cid, agent="bashir")
    assert engine.contact(cid).queue == "taxes"


def test_blind_transfer_to_an_agent(engine: InCallEngine, phones: Any, tones: dict[str, Path],
                                    tmp_path: Path) -> None:
    engine.ready("bashir", "chen")
    bashir = station(phones, engine, "bashir", tmp_path, tones)
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    engine.post(f"/api/v1/contacts/{cid}/transfer", {"to_agent": "bashir", "note": "for bashir"})
    alice.wait("disconnected", timeout=10)
    bashir.wait("media", timeout=20)
    time.sleep(4)
    hang_up_and_settle(engine, caller, bashir)
    assert heard(tmp_path / "bashir" / "call-1.wav", FREQ["caller"]) >= 2.5
    assert heard(tmp_path / "caller.wav", FREQ["bashir"]) >= 2.5
    # chen was idle and first in line after alice's turn: the transfer went to the named agent only
    assert [e.agent for e in engine.events_of(ContactOffered, contact=cid)] == ["alice", "bashir"]


def test_blind_transfer_to_an_outside_number(engine: InCallEngine, phones: Any, tones: dict[str, Path],
                                             tmp_path: Path) -> None:
    outside = station(phones, engine, "outside", tmp_path, tones, "--ring-s", "1")
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    body = engine.post(f"/api/v1/contacts/{cid}/transfer", {"to_number": "311", "note": "regional 311"})
    assert body["call"]["third_party"]["number"] == "311"
    alice.wait("disconnected", timeout=10)  # blind: the agent is off the call at once
    (incoming,) = outside.wait("incoming", timeout=10)
    assert "311@" in incoming["remote"] or incoming["remote"]  # the trunk was called
    outside.wait("media", timeout=10)
    wait_for(lambda: engine.events_of(ContactEnded, contact=cid), 10, "the contact to end for alice")
    assert engine.agent_state("alice") is AgentState.AVAILABLE  # wrap-up (0 s) done: free again
    time.sleep(4)
    hang_up_and_settle(engine, caller, outside)
    assert heard(tmp_path / "outside" / "call-1.wav", FREQ["caller"]) >= 2.5
    assert heard(tmp_path / "caller.wav", FREQ["outside"]) >= 2.5
    (started,) = engine.events_of(ConsultStarted, contact=cid)
    assert (started.purpose, started.to_number, started.agent) == ("transfer", "311", "alice")
    assert [e.outcome for e in engine.events_of(ConsultEnded, contact=cid)] == ["completed"]


def test_blind_transfer_to_a_busy_outside_line_goes_back_to_the_queue(engine: InCallEngine, phones: Any,
                                                                    tones: dict[str, Path], tmp_path: Path) -> None:
    outside = station(phones, engine, "outside", tmp_path, tones, "--answer", "busy")
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    engine.post(f"/api/v1/contacts/{cid}/transfer", {"to_number": "311"})
    alice.wait("disconnected", timeout=10)
    outside.wait("incoming", timeout=10)
    # nothing lost: the caller is back in line at their old place, and alice (free again) gets them
    alice.wait("media", count=2, timeout=20)
    time.sleep(4)
    hang_up_and_settle(engine, caller, alice)
    assert [e.outcome for e in engine.events_of(ConsultEnded, contact=cid)] == ["cancelled"]
    (back,) = engine.events_of(ContactTransferred, contact=cid)
    assert back.to_queue == "general" and back.note == "transfer to 311 failed: busy"
    assert [e.agent for e in engine.events_of(ContactOffered, contact=cid)] == ["alice", "alice"]
    assert heard(tmp_path / "alice" / "call-2.wav", FREQ["caller"]) >= 2.5
    assert heard(tmp_path / "caller.wav", FREQ["outside"]) <= 0.1


def test_consult_to_a_busy_agent_returns_the_caller_to_the_agent(engine: InCallEngine, phones: Any,
                                                                 tones: dict[str, Path], tmp_path: Path) -> None:
    engine.ready("bashir")
    bashir = station(phones, engine, "bashir", tmp_path, tones, "--answer", "busy")
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    engine.post(f"/api/v1/contacts/{cid}/consult", {"to_agent": "bashir"})
    bashir.wait("incoming", timeout=10)
    wait_for(lambda: engine.contact(cid).state.value == "connected", 10, "the caller to be resumed")
    t_back = time.monotonic()
    assert engine.agent_state("bashir") is AgentState.AVAILABLE  # the reservation is released
    time.sleep(4)
    t_end = time.monotonic()
    hang_up_and_settle(engine, caller, alice)
    c0 = caller.media_at()
    assert heard(tmp_path / "caller.wav", FREQ["alice"], t_back + 0.5 - c0, t_end - c0) >= 2.5
    assert [e.outcome for e in engine.events_of(ConsultEnded, contact=cid)] == ["cancelled"]
    assert engine.events_of(ContactEnded, contact=cid, agent="alice")


@pytest.mark.parametrize("number, status, category", [
    ("1-900-555-0199", 403, "premium"), ("011 44 20 7946 0958", 403, "international"),
    ("876-555-0100", 403, "international"), ("911", 403, "emergency"), ("not-a-number", 422, "invalid")])
def test_refused_outside_number_changes_nothing(engine: InCallEngine, phones: Any, tones: dict[str, Path],
                                                tmp_path: Path, number: str, status: int, category: str) -> None:
    outside = station(phones, engine, "outside", tmp_path, tones)
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    before = len(engine.events)
    for path in ("transfer", "consult", "conference"):
        resp = engine.request(f"/api/v1/contacts/{cid}/{path}", {"to_number": number})
        assert resp.status_code == status, resp.text
        problem = resp.json()
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert problem["type"] == "/problems/dial-refused"
        assert problem["number"] == number and problem["category"] == category and number in problem["detail"]
    resp = engine.request(f"/api/v1/contacts/{cid}/transfer", {"to_number": "311", "to_queue": "taxes"})
    assert resp.status_code == 422 and "to_number alone" in resp.text
    time.sleep(1)
    assert engine.events[before:] == []  # nothing journaled
    assert engine.contact(cid).state.value == "connected" and engine.contact(cid).agent == "alice"
    assert not outside.seen("incoming") and not alice.seen("disconnected")
    hang_up_and_settle(engine, caller, alice)


def test_warm_transfer_to_an_agent_completes_with_context(engine: InCallEngine, phones: Any,
                                                          tones: dict[str, Path], tmp_path: Path) -> None:
    engine.ready("bashir", "chen")
    bashir = station(phones, engine, "bashir", tmp_path, tones)
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    time.sleep(1)
    t_consult = time.monotonic()
    body = engine.post(f"/api/v1/contacts/{cid}/consult", {"to_agent": "bashir", "note": "asks about arrears"})
    assert body["state"] == "held"
    assert engine.agent_state("bashir") is AgentState.RESERVED
    bashir.wait("media", timeout=20)
    # bashir's desktop reads the contact, its history and the note while they talk to alice
    token = engine.post("/api/v1/auth/login", {"username": "bashir", "password": "bashir-demo"})["access_token"]
    seen = engine.run(lambda: engine.client.get(f"/api/v1/contacts/{cid}",
                                                headers={"authorization": f"Bearer {token}"}))
    assert seen.status_code == 200, seen.text
    assert seen.json()["history"][-1]["note"] == "asks about arrears"
    # a new voice contact meanwhile goes to chen, never to the reserved bashir (made through the API, not
    # dialled: this pjsua2 build allows 4 calls at once and caller, alice and bashir hold 3 of them)
    other = engine.post("/api/v1/contacts", {"queue": "general", "channel": "voice"}, expect=201)
    assert [e.agent for e in engine.events_of(ContactOffered, contact=other["id"])] == ["chen"]
    engine.post(f"/api/v1/contacts/{other['id']}/abandon")
    time.sleep(3)
    t_complete = time.monotonic()
    body = engine.post(f"/api/v1/contacts/{cid}/consult/complete")
    assert body["agent"] == "bashir" and body["state"] == "connected"
    alice.wait("disconnected", timeout=10)
    time.sleep(4)
    t_end = time.monotonic()
    hang_up_and_settle(engine, caller, bashir)

    c0, a0, b0 = caller.media_at(), alice.media_at(), bashir.media_at()
    crec, arec, brec = tmp_path / "caller.wav", tmp_path / "alice" / "call-1.wav", tmp_path / "bashir" / "call-1.wav"
    # consult: alice and bashir talk, the caller hears hold audio and neither of them
    assert heard(arec, FREQ["bashir"], 0.5 + b0 - a0, t_complete - a0) >= 2.0
    assert heard(brec, FREQ["alice"], 0.5, t_complete - b0) >= 2.0
    assert heard(brec, FREQ["caller"], 0.5, t_complete - 0.3 - b0) <= 0.1
    consult = (t_consult + 0.5 - c0, t_complete - 0.3 - c0)
    assert sum(heard(crec, f, *consult) for f in HOLD_FREQS) >= 0.5
    assert heard(crec, FREQ["alice"], *consult) <= 0.1 and heard(crec, FREQ["bashir"], *consult) <= 0.1
    # after: the caller and bashir
    assert heard(crec, FREQ["bashir"], t_complete + 0.7 - c0, t_end - c0) >= 2.5
    assert heard(brec, FREQ["caller"], t_complete + 0.7 - b0, t_end - b0) >= 2.5
    c = engine.contact(cid)
    done = [h for h in c.history if h["event"] == "consult_ended"][-1]
    assert done["outcome"] == "completed" and done["note"] == "asks about arrears"
    assert done["from_agent"] == "alice" and done["agent"] == "bashir"
    assert engine.events_of(ContactEnded, contact=cid, agent="bashir")


def test_warm_transfer_to_an_outside_number_cancelled(engine: InCallEngine, phones: Any,
                                                       tones: dict[str, Path], tmp_path: Path) -> None:
    outside = station(phones, engine, "outside", tmp_path, tones)
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    engine.post(f"/api/v1/contacts/{cid}/consult", {"to_number": "905-555-0142", "note": "by-law office"})
    outside.wait("media", timeout=20)
    time.sleep(3)
    t_cancel = time.monotonic()
    body = engine.post(f"/api/v1/contacts/{cid}/consult/cancel")
    assert body["state"] == "connected" and body["agent"] == "alice" and body["call"]["third_party"] is None
    outside.wait("disconnected", timeout=10)
    time.sleep(4)
    t_end = time.monotonic()
    hang_up_and_settle(engine, caller, alice)

    c0, a0, o0 = caller.media_at(), alice.media_at(), outside.media_at()
    crec, arec = tmp_path / "caller.wav", tmp_path / "alice" / "call-1.wav"
    assert heard(tmp_path / "outside" / "call-1.wav", FREQ["alice"], 0.5) >= 2.0
    assert heard(tmp_path / "outside" / "call-1.wav", FREQ["caller"], 0.5) <= 0.1
    assert heard(arec, FREQ["outside"], o0 + 0.5 - a0, t_cancel - a0) >= 2.0
    assert heard(crec, FREQ["alice"], t_cancel + 0.7 - c0, t_end - c0) >= 2.5
    assert heard(arec, FREQ["caller"], t_cancel + 0.7 - a0, t_end - a0) >= 2.5
    assert heard(crec, FREQ["outside"]) <= 0.1
    assert [e.outcome for e in engine.events_of(ConsultEnded, contact=cid)] == ["cancelled"]
    assert engine.events_of(ContactEnded, contact=cid, agent="alice")


def test_three_way_conference_and_a_party_leaving(engine: InCallEngine, phones: Any, tones: dict[str, Path],
                                                  tmp_path: Path) -> None:
    interpreter = station(phones, engine, "outside", tmp_path, tones, "--talk-s", "7")
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    engine.post(f"/api/v1/contacts/{cid}/conference", {"to_number": "1-800-555-0175", "note": "interpreter"})
    interpreter.wait("media", timeout=20)
    interpreter.wait("disconnected", timeout=20)  # the interpreter leaves after 7 s
    t_left = interpreter.seen("disconnected")[0]["at"]
    time.sleep(4)
    t_end = time.monotonic()
    assert engine.contact(cid).state.value == "connected"  # the other two talk on
    hang_up_and_settle(engine, caller, alice)

    c0, a0, i0 = caller.media_at(), alice.media_at(), interpreter.media_at()
    crec, arec, irec = tmp_path / "caller.wav", tmp_path / "alice" / "call-1.wav", tmp_path / "outside" / "call-1.wav"
    conf = (i0 + 0.7, t_left - 0.3)
    # each of the three hears the other two
    for rec, start, who in ((crec, c0, ("alice", "outside")), (arec, a0, ("caller", "outside")),
                            (irec, i0, ("caller", "alice"))):
        for other in who:
            got = heard(rec, FREQ[other], conf[0] - start, conf[1] - start)
            assert got >= 3.0, f"{rec.parent.name}/{rec.name} heard {other} for {got} s in the conference"
    # after the interpreter left: caller and alice, both ways
    assert heard(crec, FREQ["alice"], t_left + 0.5 - c0, t_end - c0) >= 2.5
    assert heard(arec, FREQ["caller"], t_left + 0.5 - a0, t_end - a0) >= 2.5
    assert heard(crec, FREQ["outside"], t_left + 0.5 - c0, t_end - c0) <= 0.1
    (started,) = engine.events_of(ConsultStarted, contact=cid)
    assert started.purpose == "conference" and started.to_number == "8005550175"
    assert [e.outcome for e in engine.events_of(ConsultEnded, contact=cid)] == ["cancelled"]


def test_conference_with_an_agent_who_takes_over_when_the_first_agent_leaves(
        engine: InCallEngine, phones: Any, tones: dict[str, Path], tmp_path: Path) -> None:
    engine.ready("bashir")
    bashir = station(phones, engine, "bashir", tmp_path, tones)
    cid, caller, alice = connect(engine, phones, tmp_path, tones)
    body = engine.post(f"/api/v1/contacts/{cid}/conference", {"to_agent": "bashir", "note": "second opinion"})
    assert body["state"] == "connected"  # a conference does not hold the caller
    bashir.wait("media", timeout=20)
    time.sleep(4)
    t_left = time.monotonic()
    alice.stop()  # alice leaves the conference: bashir has the caller now
    wait_for(lambda: engine.contact(cid).agent == "bashir", 10, "the contact to move to bashir")
    time.sleep(4)
    t_end = time.monotonic()
    assert engine.agent_state("alice") is AgentState.AVAILABLE
    hang_up_and_settle(engine, caller, bashir)
    c0, b0 = caller.media_at(), bashir.media_at()
    crec, brec = tmp_path / "caller.wav", tmp_path / "bashir" / "call-1.wav"
    assert heard(crec, FREQ["bashir"], b0 + 0.5 - c0, t_left - c0) >= 2.5  # all three in the conference
    assert heard(crec, FREQ["alice"], b0 + 0.5 - c0, t_left - c0) >= 2.5
    assert heard(brec, FREQ["caller"], t_left + 0.7 - b0, t_end - b0) >= 2.5  # then the two of them
    assert heard(crec, FREQ["bashir"], t_left + 0.7 - c0, t_end - c0) >= 2.5
    done = [h for h in engine.contact(cid).history if h["event"] == "consult_ended"][-1]
    assert (done["outcome"], done["purpose"], done["agent"]) == ("completed", "conference", "bashir")
    assert engine.events_of(ContactEnded, contact=cid, agent="bashir")


@pytest.mark.parametrize("method", ["info", "rfc4733"])
def test_dtmf_reaches_the_engine(engine: InCallEngine, phones: Any, tones: dict[str, Path], tmp_path: Path,
                                 method: str) -> None:
    got: list[tuple[str, str, str]] = []
    engine.run(lambda: engine.controller.dtmf_listeners.append(lambda *a: got.append(a)))
    try:
        before = len(engine.events)
        caller = phones("caller", "--port", str(free_port()), "--dial", f"sip:311@127.0.0.1:{engine.sip_port}",
                        "--play", str(tones["caller"]),  # RFC 4733 events ride the RTP stream a phone sends
                        "--dtmf", "12#", "--dtmf-method", method, "--dtmf-after-s", "1")
        cid = queued_contact(engine, before)
        caller.wait("dtmf-sent", timeout=20)
        wait_for(lambda: len(got) >= 3, 10, lambda: f"three digits; got {got}")
        assert [d for _, _, d in got] == ["1", "2", "#"]
        assert {c for c, _, _ in got} == {cid}
        caller.stop()
        engine.wait_idle()
    finally:
        engine.run(lambda: engine.controller.dtmf_listeners.clear())
