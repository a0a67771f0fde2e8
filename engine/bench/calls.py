"""`switchboard bench calls`: real SIP calls through a real engine, on loopback, and what they cost.

Three processes: the engine (`switchboard serve` with the embedded SIP back end, a site file made here:
one queue, `agents` agents logged in ready), a SIPp UAS that is every agent's station (it answers 200 at
once and echoes the RTP it gets, `-rtp_echo`), and a SIPp UAC that places calls to 311 at `rate` calls per
second, at most `concurrent` at a time, for `duration_s`: each call sends G.711 audio (`play_pcap_audio`,
SIPp's own g711a.pcap) while it lasts `hold_s`, then hangs up. The engine queues each call, rings an
agent's station (the UAS), bridges caller and agent, so RTP flows caller -> engine -> station -> engine ->
caller.

Figures (JSON): calls attempted / completed / failed (a call fails if SIPp saw an error, e.g. 486 or 503,
or if it never reached an agent before the caller hung up), the
answer time INVITE -> 200 OK (the engine answers at once, comfort audio while queued) and the connect
time (the ACD's queued -> answered by an agent, from the journal) as p50/p99, the peak concurrency SIPp
saw, the engine's CPU (percent of one core, over the run) and peak RSS.
"""

from __future__ import annotations

import csv
import glob
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from engine.bench import sipp
from engine.bench.processes import free_port, stop

PCAP = "/usr/share/sip-tester/g711a.pcap"  # Debian sip-tester: 8 s of G.711 a-law
ENGINE_RTP_START = 31000

UAS_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="station">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:station@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=station 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 0
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000

]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

UAC_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller">
  """ + sipp.invite(caller="caller", number="905555[call_number]", codec=8, rtd="setup") + """
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="setup"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: caller <sip:905555[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:caller@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: caller <sip:905555[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:caller@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def site_file(agents: int, uas_port: int) -> str:
    ids = [f"a{i:03d}" for i in range(1, agents + 1)]
    lines = ["site: {name: bench, timezone: UTC, holidays: null}", "skills: [general]", "numbers:",
             '  "311": bench', "queues:", "  bench:", "    skills: {general: 1}", "    offer_timeout_s: 10",
             "    wrap_up_s: 0", "rona_misses: 1000", "agents:"]
    for a in ids:
        lines += [f"  {a}:", "    skills: {general: 5}", "    capacity: {voice: 1}"]
    lines.append("stations:")
    lines += [f"  {a}: sip:{a}@127.0.0.1:{uas_port}" for a in ids]
    lines += ["users:", "  - {username: bench, password: bench-pass, role: supervisor}"]
    return "\n".join(lines) + "\n"


class EngineProcess:
    """`switchboard serve` with SIP on, as a child process on free ports, in a directory of its own."""

    def __init__(self, workdir: Path, site: str, *, max_calls: int, log: Path):
        self.workdir = workdir
        (workdir / "site.yaml").write_text(site)
        self.http_port, self.sip_port = free_port(socket.SOCK_STREAM, both=False), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(SWITCHBOARD_CONFIG=str(workdir / "site.yaml"), SWITCHBOARD_DATA_DIR=str(workdir / "data"),
                   SWITCHBOARD_HTTP_HOST="127.0.0.1", SWITCHBOARD_HTTP_PORT=str(self.http_port),
                   SWITCHBOARD_SIP_ENABLED="true", SWITCHBOARD_SIP_PORT=str(self.sip_port),
                   SWITCHBOARD_RTP_PORT_START=str(ENGINE_RTP_START), SWITCHBOARD_MAX_CALLS=str(max_calls),
                   SWITCHBOARD_TICK_MS="100")
        self._log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve"], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=workdir)
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = log

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the engine exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the engine was not ready in {timeout_s:.0f} s; see {self.log_path}")

    def login_agents(self, agents: list[str]) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            r = client.post("/api/v1/auth/login", json={"username": "bench", "password": "bench-pass"})
            r.raise_for_status()
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            for a in agents:
                r = client.post(f"/api/v1/agents/{a}/login", json={"ready": True}, headers=headers)
                r.raise_for_status()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        code = stop(self.proc, 20, kill_wait_s=5)
        self._log.close()
        return code


class Sampler:
    """The engine's CPU time and peak RSS while the calls run (psutil, every 0.2 s)."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        t = self.proc.cpu_times()
        self.cpu0, self.t0 = t.user + t.system, time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(2)
        try:
            t = self.proc.cpu_times()
            self.cpu_s = t.user + t.system - self.cpu0
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
        except psutil.Error:
            self.cpu_s = float("nan")
        self.wall_s = time.monotonic() - self.t0


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 2)


def _sipp_stats(path: Path) -> dict[str, Any]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    if not rows:
        return {"attempted": 0, "completed": 0, "failed": 0, "peak_concurrent": 0}
    last = rows[-1]

    def num(row: dict[str, str], key: str) -> int:
        return int(float(row.get(key) or 0))

    return {"attempted": num(last, "OutgoingCall(C)"), "completed": num(last, "SuccessfulCall(C)"),
            "failed": num(last, "FailedCall(C)"),
            "peak_concurrent": max(num(r, "CurrentCall") for r in rows)}


def _rtt_ms(workdir: Path) -> list[float]:
    out: list[float] = []
    for name in glob.glob(str(workdir / "*_rtt.csv")):
        with open(name) as f:
            for line in f:
                parts = line.strip().split(";")
                if len(parts) >= 2 and parts[1].replace(".", "", 1).isdigit():
                    out.append(float(parts[1]))
    return out


def _connect_ms(data_dir: Path) -> tuple[list[float], int]:
    """Queued -> answered by an agent, per call, from the engine's journal; and how many calls were queued."""
    from sqlalchemy import select

    from engine.settings import Settings
    from engine.store.models import JournalEntry
    from engine.store.store import Store

    store = Store(Settings(data_dir=data_dir).effective_database_url())
    try:
        with store.db.read() as conn:
            rows = conn.execute(select(JournalEntry.type, JournalEntry.payload)
                                .where(JournalEntry.type.in_(("ContactQueued", "ContactAnswered")))
                                .order_by(JournalEntry.seq)).all()
    finally:
        store.close()
    queued: dict[str, float] = {}
    waits: list[float] = []
    for kind, payload in rows:
        if kind == "ContactQueued":
            queued[payload["contact"]] = payload["t"]
        elif payload["contact"] in queued:
            waits.append((payload["t"] - queued.pop(payload["contact"])) * 1000)
    return waits, len(queued) + len(waits)


def run_calls(*, rate: float, concurrent: int, duration_s: float, hold_s: float, agents: int | None = None,
              workdir: Path | None = None,
              progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    sipp.sipp_exe()  # before anything starts: say what is missing
    if not Path(PCAP).exists():
        raise RuntimeError(f"{PCAP} is missing (Debian package sip-tester ships it)")
    agents = agents or concurrent
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="sb-bench-calls-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    (work / "uas.xml").write_text(UAS_SCENARIO)
    uac_xml = UAC_SCENARIO.replace("{pcap}", PCAP).replace("{hold_ms}", str(int(hold_s * 1000)))
    (work / "uac.xml").write_text(uac_xml)
    taken: set[int] = set()
    uas_port = free_port()
    engine = EngineProcess(work, site_file(agents, uas_port), max_calls=concurrent * 2 + 10,
                           log=work / "engine.log")
    uas: subprocess.Popen[bytes] | None = None
    try:
        engine.wait_ready()
        progress(f"engine up (HTTP {engine.http_port}, SIP {engine.sip_port}); "
                 f"stations: SIPp UAS on {uas_port}")
        uas = subprocess.Popen(sipp.command(work / "uas.xml", errors=work / "uas-errors.log", port=uas_port,
                                            media=sipp.media_port(taken), extra=["-rtp_echo"]),
                               cwd=work, stdout=subprocess.DEVNULL, stderr=open(work / "uas.stderr", "wb"))
        ids = [f"a{i:03d}" for i in range(1, agents + 1)]
        engine.login_agents(ids)
        progress(f"{agents} agents ready; calling at {rate}/s, up to {concurrent} at once, "
                 f"for {duration_s} s "
                 f"(each call {hold_s} s)")
        total = max(1, int(rate * duration_s))
        with Sampler(engine.proc.pid) as sample:
            uac = sipp.run(
                work / "uac.xml", remote=f"127.0.0.1:{engine.sip_port}", service="311",
                errors=work / "uac-errors.log", media=sipp.media_port(taken),
                extra=["-r", str(rate), "-l", str(concurrent), "-m", str(total),
                       "-timeout", f"{int(duration_s + hold_s + 60)}s", "-max_socket", "2000",
                       "-trace_stat", "-stf", str(work / "stat.csv"), "-fd", "1",
                       "-trace_rtt", "-rtt_freq", "1"],
                cwd=work, timeout=duration_s + hold_s + 120)
        alive = engine.alive()
        stats = _sipp_stats(work / "stat.csv")
        setup = _rtt_ms(work)
        engine.stop()
        connect, queued = _connect_ms(work / "data")
        # a call counts as completed only if it reached an agent: the engine answers every caller at once
        # (comfort audio while queued), so SIPp alone would count a caller who never got an agent as a success
        unserved = queued - len(connect)
        result = {
            "backend": "embedded (pjsua2)", "rate_per_s": rate, "concurrent_limit": concurrent,
            "agents": agents,
            "duration_s": duration_s, "hold_s": hold_s,
            "attempted": stats["attempted"], "completed": stats["completed"] - unserved,
            "failed": stats["failed"] + unserved, "failed_in_sip": stats["failed"],
            "never_reached_an_agent": unserved, "peak_concurrent": stats["peak_concurrent"],
            "queued_by_engine": queued, "answered_by_agents": len(connect),
            "answer_ms_p50": _pct(setup, 50), "answer_ms_p99": _pct(setup, 99),
            "connect_ms_p50": _pct(connect, 50), "connect_ms_p99": _pct(connect, 99),
            "engine_cpu_pct": round(100 * sample.cpu_s / sample.wall_s, 1) if sample.wall_s else None,
            "engine_peak_rss_mb": round(sample.peak_rss / 2**20, 1), "run_s": round(sample.wall_s, 1),
            "engine_survived": alive, "sipp_exit": uac.returncode,
        }
        if not alive:
            result["engine_log_tail"] = engine.log_path.read_text(errors="replace")[-1500:]
        if stats["failed"]:
            errors = work / "uac-errors.log"
            result["failure_sample"] = errors.read_text(errors="replace")[-1200:] if errors.exists() else ""
        return result
    finally:
        if uas is not None:
            stop(uas, 10)
        engine.stop()
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
