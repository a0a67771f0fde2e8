"""SIPp as the call bench (`switchboard bench calls`) and the voice tests drive it: the program, a media
port for it, the INVITE a caller scenario sends, and the command line for a run on loopback.

Every SIPp here talks to the engine on 127.0.0.1; errors go to a file of the caller's choosing
(`-trace_err`), so a failed run can say what SIPp saw.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from engine.bench.processes import free_port

MEDIA_PORTS = range(38000, 40000, 10)  # SIPp's RTP: each instance takes a few ports from its base
CODECS = {0: "PCMU", 8: "PCMA"}  # RTP payload type -> G.711 name (SDP rtpmap)


def sipp_exe() -> str:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("SIPp is not installed (Debian package sip-tester)")
    return sipp


def media_port(taken: set[int] | None = None) -> int:
    """A base port in SIPp's media range whose next four ports are free (RTP, RTCP, and video's two), not
    in `taken` (bases handed out to SIPps that may not have bound them yet); tried in random order, so two
    runs side by side rarely reach for the same one."""
    for base in random.sample(MEDIA_PORTS, len(MEDIA_PORTS)):
        if taken is not None and base in taken:
            continue
        try:
            for p in range(base, base + 4):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        if taken is not None:
            taken.add(base)
        return base
    raise RuntimeError(f"no free SIPp media port in {MEDIA_PORTS.start}-{MEDIA_PORTS.stop - 1}")


def invite(*, caller: str = "sipp", number: str = "sipp", codec: int = 0, rtd: str | None = None) -> str:
    """The scenario step that sends a caller's INVITE to [service] with a G.711 offer (`codec`: RTP payload
    type 0 or 8), from `caller` <sip:`number`@...>; `rtd` starts SIPp's response-time timer of that name."""
    timer = f' start_rtd="{rtd}"' if rtd else ""
    return f"""<send retrans="500"{timer}><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: {caller} <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o={caller} 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {codec}
a=rtpmap:{codec} {CODECS[codec]}/8000

]]></send>"""


def command(scenario: Path, *, errors: Path, remote: str | None = None, service: str | None = None,
            port: int | None = None, media: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """SIPp running `scenario` on 127.0.0.1:`port` (default: a free one) with media from `media` (default: a
    free base), calling `service` at `remote` (host:port; none for a server scenario), errors to `errors`."""
    args = [sipp_exe()] + ([remote] if remote else []) + ["-sf", str(scenario)]
    if service is not None:
        args += ["-s", service]
    return [*args, "-i", "127.0.0.1", "-p", str(port or free_port()), "-mp", str(media or media_port()),
            "-nostdin", "-trace_err", "-error_file", str(errors), *extra]


def run(scenario: Path, *, cwd: Path, timeout: float, errors: Path, remote: str, service: str,
        media: int | None = None, extra: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """A caller scenario run to its end (`-m` calls, in `extra`); SIPp's exit code says whether every call
    went as the scenario expects."""
    return subprocess.run(command(scenario, errors=errors, remote=remote, service=service, media=media,
                                  extra=extra),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def failure(done: subprocess.CompletedProcess[str], errors: Path) -> str:
    """What to say when a SIPp run failed: its exit code, the ends of its output and of its error file."""
    seen = errors.read_text(errors="replace")[-3000:] if errors.exists() else ""
    return f"SIPp exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{seen}"
