"""Voice end to end: real SIP and RTP on loopback between the engine's embedded pjsua2 back end and
pjsua2 user agents (tests/e2e/sipua.py, each its own process) or SIPp.

The engine runs in this process (its own event-loop thread) so the tests can look at the call table and
the committed ACD events directly; the phones are separate processes, as they would be in real life
(the rig for that: tests/e2e/voice.py).
Tones: the caller sends 1000 Hz, the agent 600 Hz; each side's recording is checked by FFT for the other
side's tone (the engine's comfort audio is 440 Hz and does not count).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testsupport import wait_for

from acd.events import (
    ContactAbandoned,
    ContactAnswered,
    ContactEnded,
    ContactOffered,
    ContactQueued,
    OfferMissed,
)
from e2e.voice import Phone, VoiceEngine, answering_phone, phone_starter, tone_files, tone_seconds
from engine.bench import sipp
from engine.bench.processes import free_port

pytestmark = pytest.mark.timeout(180)

OFFER_TIMEOUT_S = 6
AGENTS = ("alice", "bashir", "chen", "dana", "emile")


def site_yaml(stations: dict[str, str]) -> str:
    lines = ["skills: [general]", "numbers:", '  "311": general', '  "9055550100": general', "queues:",
             "  general:", "    skills: {general: 1}", "    strategy: linear",
             f"    linear_order: [{', '.join(AGENTS)}]", f"    offer_timeout_s: {OFFER_TIMEOUT_S}",
             "    wrap_up_s: 0", "rona_misses: 5", "agents:"]
    for a in AGENTS:
        lines += [f"  {a}:", "    skills: {general: 5}", "    capacity: {voice: 1}"]
    lines.append("stations:")
    lines += [f"  {a}: {uri}" for a, uri in stations.items()]
    return "\n".join(lines) + "\n"


class InboundEngine(VoiceEngine):
    """Five agents in one linear queue behind 311 and 905-555-0100."""

    agents = AGENTS
    rtp_port_start = 41000

    def site_yaml(self, stations: dict[str, str]) -> str:
        return site_yaml(stations)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InboundEngine]:
    with InboundEngine(tmp_path_factory.mktemp("voice")) as eng:
        yield eng


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tone_files(tmp_path_factory.mktemp("tones"), caller=1000.0, agent=600.0)


@pytest.fixture
def phones(tmp_path: Path, engine: VoiceEngine) -> Iterator[Callable[..., Phone]]:
    yield from phone_starter(Phone, tmp_path, engine, range(43000, 60000, 400))


def agent_phone(phones: Callable[..., Phone], engine: VoiceEngine, agent: str, tmp: Path, *extra: str,
                tone: Path | None = None) -> Phone:
    return answering_phone(phones, engine.station_ports[agent], agent, tmp / agent, *extra, tone=tone)


def dial_uri(engine: VoiceEngine, number: str) -> str:
    return f"sip:{number}@127.0.0.1:{engine.sip_port}"


# ------------------------------------------------------------------------------------------------
def test_call_reaches_agent_with_audio_both_ways(engine: VoiceEngine, phones: Callable[..., Phone],
                                                 tones: dict[str, Path], tmp_path: Path) -> None:
    engine.ready("alice")
    alice = agent_phone(phones, engine, "alice", tmp_path, tone=tones["agent"])
    caller = phones("caller", "--port", str(free_port()), "--dial", dial_uri(engine, "311"),
                    "--play", str(tones["caller"]), "--record", str(tmp_path / "caller.wav"), "--talk-s", "8")
    alice.wait("confirmed", timeout=30)
    assert caller.exited(60) == 0
    (gone,) = caller.seen("disconnected")
    assert gone["code"] == 200, gone  # the caller hung up a connected call (BYE answered)
    alice.wait("disconnected", timeout=30)
    engine.wait_idle()

    (queued,) = engine.events_of(ContactQueued)
    assert queued.attributes["dialled"] == "311" and queued.queue == "general"
    assert engine.events_of(ContactAnswered, contact=queued.contact, agent="alice")
    assert engine.events_of(ContactEnded, contact=queued.contact, agent="alice")
    # what each side heard: the other's tone, for most of the ~8 s they were connected
    heard_by_agent = tone_seconds(tmp_path / "alice" / "call-1.wav", 1000.0)
    heard_by_caller = tone_seconds(tmp_path / "caller.wav", 600.0)
    assert heard_by_agent >= 4.0, f"agent heard the caller's 1000 Hz for only {heard_by_agent} s"
    assert heard_by_caller >= 4.0, f"caller heard the agent's 600 Hz for only {heard_by_caller} s"
    assert tone_seconds(tmp_path / "alice" / "call-1.wav", 600.0) == 0.0  # no echo of the agent's own tone


def test_unknown_number_gets_404(engine: VoiceEngine, phones: Callable[..., Phone]) -> None:
    before = len(engine.events)
    caller = phones("caller", "--port", str(free_port()), "--dial", dial_uri(engine, "999"))
    assert caller.exited(30) == 0
    (gone,) = caller.seen("disconnected")
    assert gone["code"] == 404, gone
    assert not caller.seen("confirmed")
    engine.wait_idle()
    assert not [c for c in engine.events[before:] if isinstance(c.event, ContactQueued)]


def test_busy_and_no_answer_go_to_the_next_agent(engine: VoiceEngine, phones: Callable[..., Phone],
                                                 tones: dict[str, Path], tmp_path: Path) -> None:
    """RONA: bashir's station answers 486, chen's rings out (the ACD's offer timeout), dana answers."""
    before = len(engine.events)
    engine.ready("bashir", "chen", "dana")
    bashir = agent_phone(phones, engine, "bashir", tmp_path, "--answer", "busy")
    chen = agent_phone(phones, engine, "chen", tmp_path, "--answer", "none")
    dana = agent_phone(phones, engine, "dana", tmp_path, tone=tones["agent"])
    caller = phones("caller", "--port", str(free_port()), "--dial", dial_uri(engine, "9055550100"),
                    "--play", str(tones["caller"]))  # the engine answers at once: hang up only when told
    try:
        dana.wait("confirmed", timeout=OFFER_TIMEOUT_S * 3 + 30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nACD events: {[c.event for c in engine.events[before:]]}") from None
    time.sleep(1)
    caller.stop()
    assert caller.exited(30) == 0
    dana.wait("disconnected", timeout=20)
    engine.wait_idle()

    events = [c.event for c in engine.events[before:]]
    (queued,) = [e for e in events if isinstance(e, ContactQueued)]
    cid = queued.contact
    offers = [e.agent for e in events if isinstance(e, ContactOffered) and e.contact == cid]
    assert offers == ["bashir", "chen", "dana"], offers
    missed = {e.agent: e.reason for e in events if isinstance(e, OfferMissed) and e.contact == cid}
    assert missed == {"bashir": "busy", "chen": "timeout"}, missed
    assert [e.agent for e in events if isinstance(e, ContactAnswered) and e.contact == cid] == ["dana"]
    assert bashir.seen("incoming") and chen.seen("incoming")
    # chen's ringing leg was cancelled when the offer timed out (487 Request Terminated at the station)
    chen.wait("disconnected", timeout=10)
    assert chen.seen("disconnected")[0]["code"] == 487
    assert not chen.seen("confirmed")


def test_caller_abandons_while_queued(engine: VoiceEngine, phones: Callable[..., Phone]) -> None:
    before = len(engine.events)
    caller = phones("caller", "--port", str(free_port()), "--dial", dial_uri(engine, "311"))
    caller.wait("confirmed")  # answered by the engine: comfort audio while queued
    cid = wait_for(lambda: [c.event.contact for c in engine.events[before:] if isinstance(c.event, ContactQueued)],
                   20, "the call to be queued")[0]
    assert engine.call_table()[0], "the queued call is in the call table"
    caller.stop()
    wait_for(lambda: engine.events_of(ContactAbandoned, contact=cid), 20, "ContactAbandoned")
    engine.wait_idle()


def test_caller_abandons_while_agent_rings(engine: VoiceEngine, phones: Callable[..., Phone],
                                           tmp_path: Path) -> None:
    before = len(engine.events)
    engine.ready("emile")
    emile = agent_phone(phones, engine, "emile", tmp_path, "--answer", "none")
    caller = phones("caller", "--port", str(free_port()), "--dial", dial_uri(engine, "311"))
    emile.wait("incoming", timeout=30)
    caller.stop()
    emile.wait("disconnected", timeout=20)
    assert emile.seen("disconnected")[0]["code"] == 487  # the ringing station was cancelled
    engine.wait_idle()
    cid = [c.event.contact for c in engine.events[before:] if isinstance(c.event, ContactQueued)][0]
    assert engine.events_of(ContactAbandoned, contact=cid)
    assert not engine.events_of(ContactAnswered, contact=cid)


# ------------------------------------------------------------------------------------------------
def sipp_scenario(code: int) -> str:
    """A caller whose INVITE must get final response `code` (then ACKs it, as for any non-2xx answer)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="expect {code}">
  {sipp.invite()}
  <recv response="100" optional="true"/>
  <recv response="{code}"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"""


def run_sipp(engine: VoiceEngine, tmp: Path, number: str, code: int, calls: int,
             rate: int) -> subprocess.CompletedProcess[str]:
    scenario = tmp / f"expect{code}.xml"
    scenario.write_text(sipp_scenario(code))
    return sipp.run(scenario, remote=f"127.0.0.1:{engine.sip_port}", service=number,
                    errors=tmp / "sipp-errors.log",
                    extra=["-m", str(calls), "-r", str(rate), "-timeout", "30s", "-timeout_error"],
                    cwd=tmp, timeout=60)


def test_sipp_unknown_number_gets_404(engine: VoiceEngine, tmp_path: Path) -> None:
    run = run_sipp(engine, tmp_path, "5550000", 404, calls=5, rate=10)
    assert run.returncode == 0, sipp.failure(run, tmp_path / "sipp-errors.log")
    engine.wait_idle()


def test_sipp_over_the_limit_gets_503(engine: VoiceEngine, phones: Callable[..., Phone], tmp_path: Path) -> None:
    controller = engine.controller
    engine.run(lambda: setattr(controller, "max_calls", 2))
    try:
        caller = phones("caller", "--port", str(free_port()), "--dial", dial_uri(engine, "311"), "--calls", "2")
        caller.wait("confirmed", count=2)
        assert len(engine.call_table()[1]) == 2  # two queued calls: the limit
        run = run_sipp(engine, tmp_path, "311", 503, calls=10, rate=20)
        assert run.returncode == 0, sipp.failure(run, tmp_path / "sipp-errors.log")
        assert len(engine.call_table()[1]) == 2  # the refused calls left nothing behind
        caller.stop()
        engine.wait_idle()
    finally:
        engine.run(lambda: setattr(controller, "max_calls", 10))
