"""The voice tests' rig: the engine with SIP on, in this process, and pjsua2 phones as processes of their own.

Each voice module (test_voice*.py) subclasses `VoiceEngine` with its own site, agents and RTP ports (so
modules never collide), and builds its `phones` fixture on `phone_starter`. The engine runs on its own
event-loop thread so a test can look at the call table and the committed ACD events directly; the phones
(tests/e2e/sipua.py) are separate processes, as they would be in real life.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import wave
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
from testsupport import wait_for

from engine.app import create_app
from engine.bench.processes import free_port, stop
from engine.configfile import parse_text
from engine.core import Committed
from engine.settings import Settings
from engine.telephony.tonegen import write_wav

SIPUA = Path(__file__).resolve().parent / "sipua.py"


class VoiceEngine(ABC):
    """The engine app (with its lifespan) on a private event loop in a background thread, SIP on.

    A subclass says what its module needs: `agents` (logged out after each test), `rtp_port_start` (the
    engine's RTP ports, apart from every other module's), `site_yaml()`, and `no_station` (agents without a
    phone). Ports: `sip_port` (the engine), `station_ports` (an agent's phone listens there) and `trunk_port`
    (where a site's dial plan sends outside calls: a phone of the test's)."""

    agents: tuple[str, ...] = ()
    no_station: frozenset[str] = frozenset()
    rtp_port_start = 0

    def __init__(self, tmp: Path):
        self.sip_port = free_port()
        self.trunk_port = free_port()
        self.station_ports = {a: free_port() for a in self.agents if a not in self.no_station}
        stations = {a: f"sip:{a}@127.0.0.1:{p}" for a, p in self.station_ports.items()}
        text = self.site_yaml(stations)
        (tmp / "site.yaml").write_text(text)
        settings = Settings(config=tmp / "site.yaml", data_dir=tmp / "data", sip_enabled=True,
                            sip_port=self.sip_port, rtp_port_start=self.rtp_port_start, max_calls=10,
                            tick_ms=100)
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

    @abstractmethod
    def site_yaml(self, stations: dict[str, str]) -> str:
        """The site file, given each agent's station URI (each test module's engine writes its own)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

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
        """Every agent of the site logged out, once what it holds has ended (the next test starts clean)."""
        agents = self.app.state.core.router.agents
        for a in self.agents:
            runtime = agents[a]
            if self.run(lambda rt=runtime: rt.presence.value) != "logged_out":
                wait_for(lambda rt=runtime: self.run(lambda: not (rt.work or rt.offers)), 30,
                         lambda a=a: f"{a} still has work")
                self.execute(lambda r, now, a=a: r.logout(a, now))


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
                ev = json.loads(line)
            except ValueError:
                continue
            self.events.append(self.received(ev))

    def received(self, ev: dict[str, Any]) -> dict[str, Any]:
        """An event as it is kept (a subclass may stamp it)."""
        return ev

    def seen(self, ev: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("ev") == ev]

    def wait(self, ev: str, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        return wait_for(lambda: len(self.seen(ev)) >= count and self.seen(ev), timeout,
                        lambda: f"{count} x {ev!r} from {self.proc.args!r}; got {self.events}")

    def stop(self, timeout: float = 20) -> None:
        stop(self.proc, timeout, kill_wait_s=5)
        self._reader.join(5)

    def exited(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)


PhoneT = TypeVar("PhoneT", bound=Phone)


def phone_starter(kind: type[PhoneT], tmp: Path, engine: VoiceEngine, rtp_ports: range,
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


def answering_phone(phones: Callable[..., PhoneT], port: int, user: str, rec: Path, *extra: str,
                    tone: Path | None = None) -> PhoneT:
    """A phone that answers calls to `port` (an agent's station, or the trunk as the outside line), plays
    `tone` and records each call in `rec` (call-1.wav, call-2.wav, ...)."""
    rec.mkdir(exist_ok=True)
    args = ["agent", "--port", str(port), "--user", user, "--record-dir", str(rec)]
    if tone is not None:
        args += ["--play", str(tone)]
    return phones(*args, *extra)


def tone_files(folder: Path, **freqs: float) -> dict[str, Path]:
    """A 2 s WAV of a pure tone per name (`caller=1000.0`: what that party plays, in a loop)."""
    return {who: write_wav(folder / f"{who}.wav", [(f, 2.0)]) for who, f in freqs.items()}


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
