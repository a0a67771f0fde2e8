"""Voice end to end: real SIP and RTP on loopback between the engine's embedded pjsua2 back end and
pjsua2 user agents (tests/e2e/sipua.py, each its own process) or SIPp.

The engine runs in this process (its own event-loop thread) so the tests can look at the call table and
the committed ACD events directly; the phones are separate processes, as they would be in real life.
Tones: the caller sends 1000 Hz, the agent 600 Hz; each side's recording is checked by FFT for the other
side's tone (the engine's comfort audio is 440 Hz and does not count).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from acd.events import (
    ContactAbandoned,
    ContactAnswered,
    ContactEnded,
    ContactOffered,
    ContactQueued,
    OfferMissed,
)
from engine.app import create_app
from engine.configfile import parse_text
from engine.core import Committed
from engine.settings import Settings
from engine.telephony.tonegen import write_wav

pytestmark = pytest.mark.timeout(180)

HERE = Path(__file__).resolve().parent
SIPUA = HERE / "sipua.py"
OFFER_TIMEOUT_S = 6
AGENTS = ("alice", "bashir", "chen", "dana", "emile")


def free_udp_port() -> int:
    """A port free for both UDP and TCP (the engine binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


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


class VoiceEngine:
    """The engine app (with its lifespan) on a private event loop in a background thread."""

    def __init__(self, tmp: Path):
        self.sip_port = free_udp_port()
        self.station_ports = {a: free_udp_port() for a in AGENTS}
        stations = {a: f"sip:{a}@127.0.0.1:{p}" for a, p in self.station_ports.items()}
        text = site_yaml(stations)
        (tmp / "site.yaml").write_text(text)
        settings = Settings(config=tmp / "site.yaml", data_dir=tmp / "data", sip_enabled=True, sip_port=self.sip_port,
                            rtp_port_start=41000, max_calls=10, tick_ms=100)
        self.app = create_app(settings, parse_text(text, str(tmp / "site.yaml")))
        self.events: list[Committed] = []
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._up = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self.thread.start()
        if not self._up.wait(60) or self._error is not None:
            raise RuntimeError(f"engine did not start: {self._error}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                async with self.app.router.lifespan_context(self.app):
                    assert self.app.state.calls is not None, "the SIP back end did not start"
                    self.app.state.core.listeners.append(self.events.extend)
                    self._up.set()
                    await self._stop.wait()
            except BaseException as exc:
                self._error = exc
                self._up.set()
                raise

        try:
            self.loop.run_until_complete(main())
        except BaseException:
            pass

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)

    def run(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run `fn` (sync, or returning a coroutine) on the engine's loop; return its result."""
        async def wrapper() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def execute(self, command: Callable[[Any, float], Any]) -> Any:
        return self.run(lambda: self.app.state.core.execute(command))

    @property
    def controller(self) -> Any:
        return self.app.state.calls

    def call_table(self) -> tuple[dict[str, str], dict[str, Any], list[str]]:
        c = self.controller
        return self.run(lambda: (c.call_table(), dict(c.calls), c.telephony.active_legs()))

    def wait_idle(self, timeout: float = 30) -> None:
        """Until no call, leg or back-end leg is left (the 'call table is empty' check)."""
        wait_for(lambda: self.call_table() == ({}, {}, []), timeout, lambda: f"call table: {self.call_table()}")

    def events_of(self, kind: type, **match: Any) -> list[Any]:
        found = [c.event for c in list(self.events) if isinstance(c.event, kind)]
        return [e for e in found if all(getattr(e, k) == v for k, v in match.items())]

    def ready(self, *agents: str) -> None:
        for a in agents:
            self.execute(lambda r, now, a=a: r.login(a, now, ready=True))

    def logout_all(self) -> None:
        for a in AGENTS:
            state = self.run(lambda a=a: self.app.state.core.router.agents[a].presence.value)
            if state != "logged_out":
                wait_for(lambda a=a: self.run(lambda: not (self.app.state.core.router.agents[a].work
                                                           or self.app.state.core.router.agents[a].offers)),
                         30, lambda: f"{a} still has work")
                self.execute(lambda r, now, a=a: r.logout(a, now))


def wait_for(pred: Callable[[], Any], timeout: float, what: Callable[[], str] | str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what() if callable(what) else what}")
        time.sleep(0.1)


class Phone:
    """A sipua.py process and the JSON events it printed."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(SIPUA), *args], stdout=subprocess.PIPE,
                                     stderr=open(log, "wb"), text=True)
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait("ready", timeout=30)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass

    def seen(self, ev: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("ev") == ev]

    def wait(self, ev: str, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        return wait_for(lambda: len(self.seen(ev)) >= count and self.seen(ev), timeout,
                        lambda: f"{count} x {ev!r} from {self.proc.args}; got {self.events}")

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)

    def exited(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceEngine]:
    eng = VoiceEngine(tmp_path_factory.mktemp("voice"))
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tones")
    return {"caller": write_wav(d / "tone1000.wav", [(1000.0, 2.0)]),
            "agent": write_wav(d / "tone600.wav", [(600.0, 2.0)])}


PhoneT = TypeVar("PhoneT", bound="Phone")


def phone_starter(kind: type[PhoneT], tmp: Path, engine: Any, rtp_ports: range,
                  idle_timeout: float = 30) -> Iterator[Callable[..., PhoneT]]:
    """The body of each voice module's `phones` fixture: start UA processes (each with its own RTP ports,
    from a range per module so modules never collide); afterwards stop them all, wait until the engine's
    call table is empty and log every agent out."""
    started: list[PhoneT] = []
    rtp = iter(rtp_ports)

    def start(*args: str) -> PhoneT:
        p = kind([*args, "--rtp-port", str(next(rtp))], tmp / f"phone-{len(started)}.log")
        started.append(p)
        return p

    try:
        yield start
    finally:
        for p in started:
            p.stop()
        try:
            engine.wait_idle(idle_timeout)
        finally:
            engine.logout_all()


@pytest.fixture
def phones(tmp_path: Path, engine: VoiceEngine) -> Iterator[Callable[..., Phone]]:
    yield from phone_starter(Phone, tmp_path, engine, range(43000, 60000, 400))


def agent_phone(phones: Callable[..., Phone], engine: VoiceEngine, agent: str, tmp: Path, *extra: str,
                tone: Path | None = None) -> Phone:
    rec = tmp / agent
    rec.mkdir(exist_ok=True)
    args = ["agent", "--port", str(engine.station_ports[agent]), "--user", agent, "--record-dir", str(rec)]
    if tone is not None:
        args += ["--play", str(tone)]
    return phones(*args, *extra)


def dial_uri(engine: VoiceEngine, number: str) -> str:
    return f"sip:{number}@127.0.0.1:{engine.sip_port}"


def tone_seconds(path: Path, freq: float, *, window_s: float = 0.25, min_rms: float = 300.0) -> float:
    """Seconds of the recording where `freq` (+-25 Hz) is the loudest component and the audio is not quiet."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    n = int(rate * window_s)
    hits = 0
    for start in range(0, len(data) - n + 1, n):
        chunk = data[start:start + n]
        if np.sqrt(np.mean(chunk ** 2)) < min_rms:
            continue
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(n)))
        peak = np.fft.rfftfreq(n, 1 / rate)[int(np.argmax(spectrum))]
        if abs(peak - freq) <= 25:
            hits += 1
    return hits * window_s


# ------------------------------------------------------------------------------------------------
def test_call_reaches_agent_with_audio_both_ways(engine: VoiceEngine, phones: Callable[..., Phone],
                                                 tones: dict[str, Path], tmp_path: Path) -> None:
    engine.ready("alice")
    alice = agent_phone(phones, engine, "alice", tmp_path, tone=tones["agent"])
    caller = phones("caller", "--port", str(free_udp_port()), "--dial", dial_uri(engine, "311"),
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
    caller = phones("caller", "--port", str(free_udp_port()), "--dial", dial_uri(engine, "999"))
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
    caller = phones("caller", "--port", str(free_udp_port()), "--dial", dial_uri(engine, "9055550100"),
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
    caller = phones("caller", "--port", str(free_udp_port()), "--dial", dial_uri(engine, "311"))
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
    caller = phones("caller", "--port", str(free_udp_port()), "--dial", dial_uri(engine, "311"))
    emile.wait("incoming", timeout=30)
    caller.stop()
    emile.wait("disconnected", timeout=20)
    assert emile.seen("disconnected")[0]["code"] == 487  # the ringing station was cancelled
    engine.wait_idle()
    cid = [c.event.contact for c in engine.events[before:] if isinstance(c.event, ContactQueued)][0]
    assert engine.events_of(ContactAbandoned, contact=cid)
    assert not engine.events_of(ContactAnswered, contact=cid)


# ------------------------------------------------------------------------------------------------
SIPP_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="expect {code}">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

]]></send>
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


def run_sipp(engine: VoiceEngine, tmp: Path, number: str, code: int, calls: int, rate: int) -> subprocess.CompletedProcess[str]:
    sipp = shutil.which("sipp")
    assert sipp, "SIPp is not installed (Debian package sip-tester)"
    scenario = tmp / f"expect{code}.xml"
    scenario.write_text(SIPP_SCENARIO.format(code=code))
    return subprocess.run([sipp, f"127.0.0.1:{engine.sip_port}", "-sf", str(scenario), "-s", number,
                           "-m", str(calls), "-r", str(rate), "-i", "127.0.0.1", "-p", str(free_udp_port()),
                           "-mp", str(free_udp_port()), "-nostdin", "-timeout", "30s", "-timeout_error",
                           "-trace_err", "-error_file", str(tmp / "sipp-errors.log")],
                          cwd=tmp, capture_output=True, text=True, timeout=60)


def test_sipp_unknown_number_gets_404(engine: VoiceEngine, tmp_path: Path) -> None:
    run = run_sipp(engine, tmp_path, "5550000", 404, calls=5, rate=10)
    assert run.returncode == 0, f"SIPp: {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    engine.wait_idle()


def test_sipp_over_the_limit_gets_503(engine: VoiceEngine, phones: Callable[..., Phone], tmp_path: Path) -> None:
    controller = engine.controller
    engine.run(lambda: setattr(controller, "max_calls", 2))
    try:
        caller = phones("caller", "--port", str(free_udp_port()), "--dial", dial_uri(engine, "311"), "--calls", "2")
        caller.wait("confirmed", count=2)
        assert len(engine.call_table()[1]) == 2  # two queued calls: the limit
        run = run_sipp(engine, tmp_path, "311", 503, calls=10, rate=20)
        assert run.returncode == 0, f"SIPp: {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
        assert len(engine.call_table()[1]) == 2  # the refused calls left nothing behind
        caller.stop()
        engine.wait_idle()
    finally:
        engine.run(lambda: setattr(controller, "max_calls", 10))
