"""SIP robustness: callers and stations that misbehave must not hurt the engine.

Each test ends with an empty call table (controller, back end and outbound dialer) and a normal call still
getting through to an agent with audio set up. SIPp scenarios are in tests/e2e/sipp/; malformed SIP goes
out on raw UDP and TCP sockets.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testsupport import wait_for

from acd.events import ContactAbandoned, ContactAnswered, ContactOffered, ContactQueued, OfferMissed
from e2e.test_voice_outbound import OutboundEngine, station
from e2e.voice import Phone, phone_starter, tone_files
from engine.bench import sipp
from engine.bench.processes import free_port

pytestmark = pytest.mark.timeout(240)

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboundEngine]:
    with OutboundEngine(tmp_path_factory.mktemp("robust")) as eng:
        yield eng


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tone_files(tmp_path_factory.mktemp("tones"), agent=600.0)["agent"]


@pytest.fixture
def phones(tmp_path: Path, engine: OutboundEngine) -> Iterator[Callable[..., Phone]]:
    yield from phone_starter(Phone, tmp_path, engine, range(35000, 38000, 400), idle_timeout=45)


def normal_call_works(engine: OutboundEngine, phones: Callable[..., Phone], tone: Path, tmp: Path) -> None:
    """A caller dials 311 and bashir's station answers; both see the call up, then it is hung up."""
    before = len(engine.events)
    engine.ready("bashir")
    bashir = station(phones, engine, "bashir", tmp, tone)
    caller = phones("caller", "--port", str(free_port()), "--dial", f"sip:311@127.0.0.1:{engine.sip_port}")
    bashir.wait("confirmed", timeout=20)
    bashir.wait("media", timeout=10)
    time.sleep(1)
    caller.stop()
    assert caller.exited(30) == 0
    bashir.wait("disconnected", timeout=20)
    engine.wait_idle()
    assert [e for e in (c.event for c in engine.events[before:]) if isinstance(e, ContactAnswered)]
    bashir.stop()
    engine.logout_all()


def run_sipp(engine: OutboundEngine, tmp: Path, scenario: str, *args: str,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One of tests/e2e/sipp/'s caller scenarios against the engine's 311; the last screen goes to a file."""
    return sipp.run(SIPP_DIR / scenario, remote=f"127.0.0.1:{engine.sip_port}", service="311",
                    errors=tmp / "sipp-errors.log",
                    extra=["-trace_screen", "-screen_file", str(tmp / "sipp-screen.log"), *args],
                    cwd=tmp, timeout=timeout)


def sipp_failed(run: subprocess.CompletedProcess[str], tmp: Path) -> str:
    return sipp.failure(run, tmp / "sipp-errors.log")


# ------------------------------------------------------------------------------------------------
def test_caller_that_never_acks_is_dropped(engine: OutboundEngine, phones: Callable[..., Phone], tone: Path,
                                           tmp_path: Path) -> None:
    before = len(engine.events)
    run = run_sipp(engine, tmp_path, "no_ack.xml", "-m", "1", "-timeout", "90s", "-timeout_error")
    assert run.returncode == 0, sipp_failed(run, tmp_path)  # the engine sent BYE when the ACK never came
    (queued,) = [c.event for c in engine.events[before:] if isinstance(c.event, ContactQueued)]
    wait_for(lambda: engine.events_of(ContactAbandoned, contact=queued.contact), 10, "the contact abandoned")
    engine.wait_idle()
    normal_call_works(engine, phones, tone, tmp_path)


BAD_DATAGRAMS = [
    b"",
    b"\x00" * 64,
    bytes(range(256)) * 4,
    b"hello world\r\n\r\n",
    b"INVITE\r\n\r\n",
    b"SIP/2.0 200 OK\r\n\r\n",  # a response to nothing
    b"INVITE sip:311@127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0",
    b"INVITE sip:311@127.0.0.1 SIP/2.0\r\n" + b"X-Long: " + b"a" * 60000 + b"\r\n\r\n",
]


def invite(port: int, *, transport: str = "UDP", call_id: str | None = "auto", cseq: str = "1 INVITE",
           sdp: str | None = None, extra: tuple[str, ...] = (), content_type: str = "application/sdp",
           length_delta: int = 0, ruri: str | None = None) -> bytes:
    sdp = sdp if sdp is not None else ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                                       "m=audio 38990 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    lines = [f"INVITE {ruri or f'sip:311@127.0.0.1:{port}'} SIP/2.0",
             f"Via: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{uuid.uuid4().hex}",
             "From: <sip:bad@127.0.0.1>;tag=bad1", f"To: <sip:311@127.0.0.1:{port}>"]
    if call_id is not None:
        lines.append(f"Call-ID: {uuid.uuid4().hex if call_id == 'auto' else call_id}")
    lines += [f"CSeq: {cseq}", "Contact: <sip:bad@127.0.0.1:9>", *extra,
              f"Content-Type: {content_type}", f"Content-Length: {len(sdp.encode()) + length_delta}", "", sdp]
    return "\r\n".join(lines).encode()


# what is wrong -> (the INVITE's faults, the final response the engine gives on UDP and on TCP)
# pjsip answers what it can parse; a request whose mandatory headers it cannot parse is dropped without an
# answer (it has no hook for them, so neither do we): 400 would be better where Via/Call-ID/CSeq survive.
BAD_INVITES: dict[str, tuple[dict[str, Any], int | None]] = {
    "SDP is garbage": ({"sdp": "this is not SDP\r\n"}, 400),
    "unknown required extension": ({"extra": ("Require: x-no-such-thing",)}, 420),
    "body not SDP": ({"content_type": "text/plain"}, 415),
    "CSeq method differs": ({"cseq": "1 BYE"}, 500),  # pjsua cannot make a dialog of it; 400 would be right
    "no Call-ID": ({"call_id": None}, None),
    "CSeq not a number": ({"cseq": "one INVITE"}, None),
    "Request-URI not a URI": ({"ruri": "not-a-uri"}, None),
    "Max-Forwards not a number": ({"extra": ("Max-Forwards: lots",)}, None),
}


def status_of(reply: bytes) -> int:
    m = re.match(rb"SIP/2\.0 (\d{3}) ", reply)
    assert m, f"not a SIP response: {reply[:200]!r}"
    return int(m.group(1))


def udp_request(port: int, data: bytes, wait_s: float = 1.5) -> list[bytes]:
    """Send `data` from a socket bound where the Via says (port 9 is replaced by ours) and collect replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        mine = s.getsockname()[1]
        s.sendto(data.replace(b"127.0.0.1:9;", f"127.0.0.1:{mine};".encode())
                 .replace(b"127.0.0.1:9>", f"127.0.0.1:{mine}>".encode()), ("127.0.0.1", port))
        s.settimeout(0.3)
        replies: list[bytes] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                replies.append(s.recv(65535))
            except TimeoutError:
                if replies and status_of(replies[-1]) >= 200:
                    break
        return replies


def tcp_request(port: int, data: bytes, wait_s: float = 1.5) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        mine = s.getsockname()[1]
        s.sendall(data.replace(b"127.0.0.1:9;", f"127.0.0.1:{mine};".encode())
                  .replace(b"127.0.0.1:9>", f"127.0.0.1:{mine}>".encode()))
        s.settimeout(0.5)
        buf = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65535)
            except TimeoutError:
                continue
            if not chunk:
                break
            buf += chunk
            finals = [int(x) for x in re.findall(rb"SIP/2\.0 (\d{3}) ", buf) if int(x) >= 200]
            if finals:
                break
        return [m.group(0) for m in re.finditer(rb"SIP/2\.0 \d{3} .*?\r\n\r\n", buf, re.S)]


def final_status(replies: list[bytes]) -> int | None:
    finals = [status_of(r) for r in replies if status_of(r) >= 200]
    return finals[-1] if finals else None


def test_malformed_sip_gets_400_and_the_engine_keeps_serving(engine: OutboundEngine, phones: Callable[..., Phone],
                                                             tone: Path, tmp_path: Path) -> None:
    before = len(engine.events)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in BAD_DATAGRAMS:
            s.sendto(junk, ("127.0.0.1", engine.sip_port))
    with socket.create_connection(("127.0.0.1", engine.sip_port), timeout=5) as s:  # garbage on a TCP stream
        s.sendall(bytes(range(256)) * 8 + b"\r\n\r\n")
    outcomes = {what: (final_status(udp_request(engine.sip_port, invite(engine.sip_port, **kw))),
                       final_status(tcp_request(engine.sip_port, invite(engine.sip_port, transport="TCP", **kw))))
                for what, (kw, _) in BAD_INVITES.items()}
    assert outcomes == {what: (code, code) for what, (_, code) in BAD_INVITES.items()}
    assert not [c for c in engine.events[before:] if isinstance(c.event, ContactQueued)]
    engine.wait_idle()
    normal_call_works(engine, phones, tone, tmp_path)


def test_invite_flood_gets_503_beyond_the_limit(engine: OutboundEngine, phones: Callable[..., Phone], tone: Path,
                                                tmp_path: Path) -> None:
    """200 INVITEs at 25 per second; each admitted caller stays a second, then hangs up.

    The engine's own limit (2 concurrent calls here) answers 503. The embedded SIP stack has a hard cap of
    its own (PJSUA_MAX_CALLS, 4 legs in the pjsua2 wheel): an INVITE that finds every one of its slots taken
    (by calls or by INVITEs still being refused) gets 486 from the stack before the engine sees it.

    NOT higher: from about 60 refused INVITEs per second the pjsua2 wheel's select() ioqueue runs out of its
    64 socket handles (each refused INVITE still opens an RTP and an RTCP socket, and a closed one is only
    freed 500 ms later) and pjlib aborts the whole process (assertion in ioqueue_select.c). Fixing that
    needs pjproject rebuilt (PJ_IOQUEUE_MAX_HANDLES / epoll, PJSUA_MAX_CALLS); see the V2 report."""
    limit, total = 2, 200
    controller = engine.controller
    engine.run(lambda: setattr(controller, "max_calls", limit))
    before = len(engine.events)
    try:
        run = run_sipp(engine, tmp_path, "flood.xml", "-m", str(total), "-r", "25", "-l", "100", "-timeout", "90s",
                   "-timeout_error", "-max_socket", "1000")
        assert run.returncode == 0, sipp_failed(run, tmp_path)
        engine.wait_idle(45)
    finally:
        engine.run(lambda: setattr(controller, "max_calls", 10))
    screen = (tmp_path / "sipp-screen.log").read_text(errors="replace")
    final = screen[screen.rindex("Messages  Retrans"):]  # the last screen: the totals
    counts = {code: int(m.group(1)) if (m := re.search(rf"^\s*{code} <----------\s+(\d+)", final, re.M)) else 0
              for code in (200, 486, 503)}
    queued = [c.event for c in engine.events[before:] if isinstance(c.event, ContactQueued)]
    abandoned = [c.event for c in engine.events[before:] if isinstance(c.event, ContactAbandoned)]
    assert counts[503] > 0, final
    assert counts[200] + counts[486] + counts[503] == total, (counts, final)
    assert len(queued) == counts[200], (len(queued), counts)  # only admitted calls reached the ACD
    assert len(abandoned) == len(queued)  # every admitted caller hung up while queued: the slot was freed
    assert engine.thread.is_alive()
    normal_call_works(engine, phones, tone, tmp_path)


def test_station_that_is_down_passes_the_call_on(engine: OutboundEngine, phones: Callable[..., Phone], tone: Path,
                                                 tmp_path: Path) -> None:
    """alice's station does not exist (nothing listens on its UDP port): her offer times out, bashir gets
    the call; the INVITE to the dead station is not left behind."""
    stations = engine.app.state.stations
    real = stations["alice"]
    engine.run(lambda: stations.__setitem__("alice", f"sip:alice@127.0.0.1:{free_port()}"))
    before = len(engine.events)
    try:
        engine.ready("alice", "bashir")
        bashir = station(phones, engine, "bashir", tmp_path, tone)
        caller = phones("caller", "--port", str(free_port()), "--dial", f"sip:311@127.0.0.1:{engine.sip_port}")
        try:
            bashir.wait("confirmed", timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nACD events: {[c.event for c in engine.events[before:]]}") from None
        time.sleep(1)
        caller.stop()
        assert caller.exited(30) == 0
        engine.wait_idle(45)  # includes the dead station's INVITE transaction
    finally:
        engine.run(lambda: stations.__setitem__("alice", real))
    events = [c.event for c in engine.events[before:]]
    (queued,) = [e for e in events if isinstance(e, ContactQueued)]
    offers = [e.agent for e in events if isinstance(e, ContactOffered) and e.contact == queued.contact]
    assert offers[:1] == ["alice"] and offers[-1] == "bashir", offers
    assert [e.reason for e in events if isinstance(e, OfferMissed) and e.agent == "alice"][:1] in (["timeout"],
                                                                                                    ["rejected"])
    assert [e.agent for e in events if isinstance(e, ContactAnswered)] == ["bashir"]
    bashir.stop()
    engine.logout_all()
    normal_call_works(engine, phones, tone, tmp_path)
