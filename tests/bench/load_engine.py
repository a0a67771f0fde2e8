"""Load benchmark of the engine as it runs: a real `switchboard serve`, agents on WebSockets, contacts over HTTP.

    python tests/bench/load_engine.py [--agents 500] [--rate 100] [--duration 120]
                                      [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                                      [--json result.json]

It writes a site file with N agents (a0001..) who can all take every queue, starts the server on a free
loopback port with its data in a temporary directory (SQLite there by default; with --database-url, a
scratch database `sb_load_<random>` created on that PostgreSQL server and dropped afterwards), creates one
user per agent as admin over the API, logs every agent in over HTTP and connects its agent WebSocket.

Then contacts arrive (Poisson, R per second, D seconds) with POST /api/v1/contacts; each agent accepts
every offer that reaches its socket, keeps it for a short random handle time and completes it, so capacity
keeps up. For every contact the latency is taken from the moment its POST was sent to the moment its
ContactOffered message arrived on the agent's socket (both on this process's monotonic clock).

Prints one JSON object: contacts created, offered, completed, creation->offer p50/p90/p99/max in ms,
errors (and a sample of them), the server's RSS at start (agents connected, before the first contact) and
at the end plus the peak sampled each second, its CPU seconds, and the database kind. No pass/fail: the
numbers are for people. Progress goes to stderr, the server's own log to --server-log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from websockets.asyncio.client import connect

from engine.bench.processes import free_port, stop

REPO = Path(__file__).resolve().parents[2]
QUEUES = ("general", "permits")
PASSWORD = "load-test-pass"


def log(msg: str, who: str = "load") -> None:
    """Progress on stderr (stdout is the JSON result)."""
    print(f"[{who} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def agent_ids(n: int) -> list[str]:
    return [f"a{i:04d}" for i in range(1, n + 1)]


def site_config(agents: int, offer_timeout_s: float) -> dict[str, Any]:
    """N interchangeable agents (one call at a time) for two queues; wrap-up 0 s, no codes required."""
    return {
        "site": {"name": "load", "timezone": "UTC", "holidays": None},
        "skills": ["general", "permits"],
        "queues": {q: {"name": q, "skills": {q: 1}, "wrap_up_s": 0, "offer_timeout_s": offer_timeout_s}
                   for q in QUEUES},
        "agents": {a: {"name": a, "skills": {"general": 5, "permits": 5}, "capacity": {"voice": 1}}
                   for a in agent_ids(agents)},
        "users": [{"username": "admin", "password": PASSWORD, "role": "admin"},
                  {"username": "sup", "password": PASSWORD, "role": "supervisor"}],
    }


class Server:
    """`python -m engine.cli serve` in a subprocess with its own data dir and site file; `settings` are
    further SWITCHBOARD_* variables (e.g. SWITCHBOARD_DATABASE_URL)."""

    def __init__(self, workdir: Path, config: dict[str, Any], log_path: Path, settings: dict[str, str]):
        self.port = free_port(socket.SOCK_STREAM, both=False)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/api/v1/ws/agent"
        site = workdir / "site.yaml"
        site.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(SWITCHBOARD_DATA_DIR=str(workdir / "data"), SWITCHBOARD_CONFIG=str(site),
                   SWITCHBOARD_HTTP_HOST="127.0.0.1", SWITCHBOARD_HTTP_PORT=str(self.port),
                   SWITCHBOARD_LOG_LEVEL="WARNING", **settings)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve"], cwd=REPO, env=env,
                                         stdout=out, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)

    async def ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    if (await c.get(f"{self.base_url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"server not ready within {timeout:.0f} s; see {self.log_path}")

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / 2**20

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        stop(self.proc)


class Run:
    """What the load client saw: send and offer times per contact, completions, errors."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.created: set[str] = set()
        self.offered: dict[str, float] = {}
        # the same instants on the wall clock, which the server shares (same host): where the time goes
        self.sent_wall: dict[str, float] = {}
        self.decided_wall: dict[str, float] = {}  # the ContactOffered event's own time, on the server
        self.offered_wall: dict[str, float] = {}
        self.completed: set[str] = set()
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.send_lag: list[float] = []

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{kind}: {detail[:300]}")


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of an already sorted list."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, int(q * len(values) + 0.5) - 1))]


class Lane:
    """HTTP clients with at most `size` requests in flight; the rest wait at the gate, in order.

    httpcore's pool spends time proportional to its queue and to its number of connections on every
    request (it checks each connection, with a system call), so a lane is several small pools used in
    turn, and a backlog waits at the gate instead of in a pool: the client must not be the bottleneck."""

    PER_POOL = 8

    def __init__(self, size: int, timeout: float):
        pools = max(1, -(-size // self.PER_POOL))
        # keep-alive shorter than the server's 5 s, so a POST never goes out on a connection it is closing
        self.clients = [httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(
            max_connections=self.PER_POOL, max_keepalive_connections=self.PER_POOL, keepalive_expiry=2.0))
            for _ in range(pools)]
        self.turn = 0
        self.gate = asyncio.Semaphore(size)
        self.waiting = 0  # requests at the gate now
        self.most_waiting = 0
        self.round_trips: list[float] = []  # seconds from leaving the gate to the answer

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        async with self.gate:
            self.waiting -= 1
            started = time.perf_counter()
            self.turn = (self.turn + 1) % len(self.clients)
            r = await self.clients[self.turn].request(method, url, **kw)
            self.round_trips.append(time.perf_counter() - started)
            return r

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


async def call(lane: Lane, run: Run, kind: str, method: str, url: str, token: str,
               expect: int = 200, **kw: Any) -> httpx.Response | None:
    try:
        r = await lane.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kw)
    except httpx.HTTPError as exc:
        run.error(f"{kind}:{type(exc).__name__}", str(exc))
        return None
    if r.status_code != expect:
        run.error(f"{kind}:{r.status_code}", r.text)
        return None
    return r


class AgentSocket(ABC):
    """One agent's desktop socket, read by a task of its own (`listen`): the hello sets `connected`, every
    other message goes to `on_message` with the times it arrived (monotonic and wall clock, taken before it
    is parsed); work a message starts runs in tasks of its own (`spawn`), so the socket is always read."""

    def __init__(self, agent: str, url: str):
        self.agent, self.url = agent, url
        self.connected = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def listen(self) -> None:
        try:
            async with connect(self.url, open_timeout=30, max_size=2**22, ping_interval=None) as ws:
                async for raw in ws:
                    arrived, arrived_wall = time.perf_counter(), time.time()
                    msg = json.loads(raw)
                    if msg.get("type") == "hello":
                        self.connected.set()
                    else:
                        self.on_message(msg, arrived, arrived_wall)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a lost socket is an error of the run, not of the script
            self.lost(f"{self.agent}: {type(exc).__name__}: {exc}")
        finally:
            self.connected.set()

    @abstractmethod
    def on_message(self, msg: dict[str, Any], arrived: float, arrived_wall: float) -> None:
        """A message other than the hello (each bench's agent reacts in its own way)."""

    @abstractmethod
    def lost(self, detail: str) -> None:
        """The socket failed: record it as an error of the run."""

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def close_sockets(sockets: Sequence[AgentSocket], listeners: list[asyncio.Task[None]]) -> None:
    """Stop listening and cancel the work the sockets started; return once all of it has ended."""
    for t in listeners:
        t.cancel()
    for s in sockets:
        for t in list(s.tasks):
            t.cancel()
    await asyncio.gather(*listeners, *(t for s in sockets for t in s.tasks), return_exceptions=True)


class Agent(AgentSocket):
    """One agent: the offers its socket gets, each accepted, held for a while and completed."""

    def __init__(self, agent: str, token: str, server: Server, http: Lane, run: Run,
                 rng: random.Random, handle_s: tuple[float, float]):
        super().__init__(agent, f"{server.ws_url}?token={token}")
        self.token, self.server, self.http, self.run = token, server, http, run
        self.rng, self.handle_s = rng, handle_s

    def on_message(self, msg: dict[str, Any], arrived: float, arrived_wall: float) -> None:
        if msg.get("type") == "ContactOffered" and msg.get("agent") == self.agent:
            cid = msg["contact"]
            if cid not in self.run.offered:
                self.run.offered[cid], self.run.offered_wall[cid] = arrived, arrived_wall
                self.run.decided_wall[cid] = float(msg["t"])
            self.spawn(self.handle(cid))

    def lost(self, detail: str) -> None:
        self.run.error("ws", detail)

    async def handle(self, cid: str) -> None:
        base = f"{self.server.base_url}/api/v1/contacts/{cid}"
        if await call(self.http, self.run, "accept", "POST", f"{base}/accept", self.token) is None:
            return
        await asyncio.sleep(self.rng.uniform(*self.handle_s))
        if await call(self.http, self.run, "complete", "POST", f"{base}/complete", self.token) is not None:
            self.run.completed.add(cid)


async def bounded(n: int, coros: list[Any]) -> list[Any]:
    sem = asyncio.Semaphore(n)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def token_for(http: Lane, base: str, username: str) -> str:
    r = await http.request("POST", f"{base}/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    if r.status_code != 200:
        raise RuntimeError(f"login {username}: {r.status_code} {r.text}")
    return str(r.json()["access_token"])


async def load(args: argparse.Namespace, database_url: str | None, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    run = Run()
    kind = "postgresql" if database_url and database_url.startswith("postgres") else "sqlite"
    settings = {"SWITCHBOARD_DATABASE_URL": database_url or "", "SWITCHBOARD_REDIS_URL": args.redis_url or "",
                "SWITCHBOARD_SIP_ENABLED": "false"}  # HTTP and WebSocket load: no SIP port taken
    server = Server(workdir, site_config(args.agents, args.offer_timeout),
                    Path(args.server_log or REPO / "test-artifacts" / "bench" / f"load_engine-server-{kind}.log"),
                    {k: v for k, v in settings.items() if v})
    result: dict[str, Any] = {"database": kind, "bus": "redis" if args.redis_url else "memory",
                              "agents": args.agents, "rate_per_s": args.rate, "duration_s": args.duration}
    agents: list[Agent] = []
    listeners: list[asyncio.Task[None]] = []
    try:
        t0 = time.perf_counter()
        await server.ready()
        result["rss_mb_ready"] = round(server.rss_mb(), 1)
        # contacts arrive on one lane, agents work on another: a backlog of one never starves the other.
        # Agents' desktops each have their own connection, as they would in a contact centre.
        http = Lane(args.connections, args.request_timeout)
        desk = Lane(args.desk_connections or args.agents, args.request_timeout)
        try:
            base = server.base_url
            admin = await token_for(http, base, "admin")
            sup = await token_for(http, base, "sup")
            ids = agent_ids(args.agents)

            # setup (not measured): one user per agent, its log-in (argon2 both times), ready, its socket
            started = time.perf_counter()
            await bounded(8, [call(http, run, "setup-user", "POST", f"{base}/api/v1/users", admin, 201,
                                   json={"username": a, "password": PASSWORD, "role": "agent", "agent": a})
                              for a in ids])
            result["setup_users_s"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            tokens = await bounded(8, [token_for(http, base, a) for a in ids])
            result["setup_logins_s"] = round(time.perf_counter() - started, 1)
            log(f"{args.agents} users created in {result['setup_users_s']} s, logged in in "
                f"{result['setup_logins_s']} s")
            for a, token in zip(ids, tokens):
                agents.append(Agent(a, token, server, desk, run, random.Random(rng.random()),
                                    (args.handle_min, args.handle_max)))
            listeners += [asyncio.create_task(agent.listen()) for agent in agents]
            await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in agents)), 120)
            await bounded(16, [call(http, run, "setup-login", "POST", f"{base}/api/v1/agents/{a.agent}/login",
                                    a.token, json={"ready": True}) for a in agents])
            if run.errors:
                raise RuntimeError(f"setup failed: {dict(run.errors)}; e.g. {run.error_samples[:3]}")
            result["setup_s"] = round(time.perf_counter() - t0, 1)
            result["rss_mb_start"] = round(server.rss_mb(), 1)
            cpu_start, client_cpu_start = server.cpu_s(), sum(psutil.Process().cpu_times()[:2])
            for lane in (http, desk):
                lane.round_trips, lane.most_waiting = [], 0
            log(f"{args.agents} agents ready on their sockets after {result['setup_s']} s; "
                f"{args.rate}/s for {args.duration} s")

            peak = [result["rss_mb_start"]]

            async def sample() -> None:
                while True:
                    await asyncio.sleep(1)
                    peak[0] = max(peak[0], server.rss_mb())

            sampler = asyncio.create_task(sample())
            posts: set[asyncio.Task[None]] = set()

            async def create(cid: str, queue: str) -> None:
                run.sent[cid], run.sent_wall[cid] = time.perf_counter(), time.time()
                r = await call(http, run, "create", "POST", f"{base}/api/v1/contacts", sup, 201,
                               json={"id": cid, "queue": queue, "channel": "voice"})
                if r is not None:
                    run.created.add(cid)

            begin = time.perf_counter()
            due = begin
            n = 0
            while True:
                due += rng.expovariate(args.rate)
                if due - begin >= args.duration:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                run.send_lag.append(time.perf_counter() - due)
                n += 1
                task = asyncio.create_task(create(f"ld-{n}", QUEUES[n % len(QUEUES)]))
                posts.add(task)
                task.add_done_callback(posts.discard)
                if n % max(1, int(args.rate * 10)) == 0:
                    log(f"{n} sent, {len(run.offered)} offered, {len(run.completed)} completed, "
                        f"{sum(run.errors.values())} errors, rss {server.rss_mb():.0f} MB")
            arrivals_s = time.perf_counter() - begin
            # drain, bounded: every contact should be created, offered and completed before the deadline
            deadline = time.perf_counter() + args.drain
            if posts:
                await asyncio.wait(posts, timeout=args.drain)
            for task in list(posts):
                task.cancel()
                run.error("create:unfinished", "still waiting for an answer at the end of the drain")
            while time.perf_counter() < deadline and not run.created <= run.completed:
                await asyncio.sleep(0.1)
            result["drain_s"] = round(time.perf_counter() - begin - arrivals_s, 1)
            sampler.cancel()
            result["rss_mb_end"] = round(server.rss_mb(), 1)
            result["rss_mb_peak"] = round(max(peak[0], result["rss_mb_end"]), 1)
            result["server_cpu_s"] = round(server.cpu_s() - cpu_start, 1)
            result["server_cpu_pct"] = round(100 * result["server_cpu_s"] / (arrivals_s + result["drain_s"]), 1)
            result["client_cpu_s"] = round(sum(psutil.Process().cpu_times()[:2]) - client_cpu_start, 1)
            for name, lane in (("create", http), ("agent", desk)):
                rtt = sorted(lane.round_trips)
                result[f"{name}_http_p50_ms"] = ms(quantile(rtt, 0.50))
                result[f"{name}_http_p99_ms"] = ms(quantile(rtt, 0.99))
                result[f"{name}_most_waiting_in_client"] = lane.most_waiting
        finally:
            await close_sockets(agents, listeners)
            await http.aclose()
            await desk.aclose()
    finally:
        server.stop()

    done = [c for c in run.created if c in run.offered]
    latencies = sorted(1000 * (run.offered[c] - run.sent[c]) for c in done)
    # split at the moment the server decided the offer: before it, the request's way in and the wait
    # for an agent; after it, the journal flush, the bus, the hub and the socket
    to_decision = sorted(run.decided_wall[c] - run.sent_wall[c] for c in done)
    to_socket = sorted(run.offered_wall[c] - run.decided_wall[c] for c in done)
    lag = sorted(run.send_lag)
    result.update({
        "contacts": len(run.created),
        "offered": sum(1 for c in run.created if c in run.offered),
        "completed": len(run.completed & run.created),
        "p50_ms": _round(quantile(latencies, 0.50)),
        "p90_ms": _round(quantile(latencies, 0.90)),
        "p99_ms": _round(quantile(latencies, 0.99)),
        "max_ms": _round(latencies[-1] if latencies else None),
        "sent_to_decision_p50_ms": ms(quantile(to_decision, 0.50)),
        "sent_to_decision_p99_ms": ms(quantile(to_decision, 0.99)),
        "decision_to_socket_p50_ms": ms(quantile(to_socket, 0.50)),
        "decision_to_socket_p99_ms": ms(quantile(to_socket, 0.99)),
        "errors": sum(run.errors.values()),
        "error_kinds": dict(run.errors),
        "error_samples": run.error_samples,
        "client_send_lag_p99_ms": ms(quantile(lag, 0.99)),
        "server_log": str(server.log_path),
    })
    return result


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def ms(seconds: float | None, digits: int = 1) -> float | None:
    return None if seconds is None else round(1000 * seconds, digits)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=500, help="agents, each with its own user and socket")
    p.add_argument("--rate", type=float, default=100.0, help="contacts per second (Poisson arrivals)")
    p.add_argument("--duration", type=float, default=120.0, help="seconds of arrivals")
    p.add_argument("--database-url", help="a PostgreSQL server URL: a scratch database is made on it "
                                          "(default: SQLite in the server's temporary data dir)")
    p.add_argument("--redis-url", help="run the server on Redis Streams (default: in-process bus)")
    p.add_argument("--json", help="also write the result to this file")
    p.add_argument("--handle-min", type=float, default=0.5, help="shortest handle time, seconds")
    p.add_argument("--handle-max", type=float, default=2.0, help="longest handle time, seconds")
    p.add_argument("--offer-timeout", type=float, default=30.0, help="queues' offer timeout (RONA), seconds")
    p.add_argument("--drain", type=float, default=30.0, help="seconds to wait for the last contacts")
    p.add_argument("--connections", type=int, default=256,
                   help="HTTP connections that create contacts (wide enough not to hold arrivals back)")
    p.add_argument("--desk-connections", type=int, default=0,
                   help="HTTP connections for agents' accept/complete (default: one per agent)")
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--server-log", help="where the server's log goes (default test-artifacts/bench/)")
    args = p.parse_args(argv)
    if args.agents < 1 or args.rate <= 0 or args.duration <= 0 or not 0 <= args.handle_min <= args.handle_max:
        p.error("need --agents >= 1, --rate > 0, --duration > 0 and 0 <= --handle-min <= --handle-max")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sb-load-") as tmp:
        if args.database_url:
            sys.path.insert(0, str(REPO / "tests"))  # the tests' helpers (this file runs as a script)
            from testsupport import scratch_database

            with scratch_database(args.database_url, "sb_load") as url:
                result = asyncio.run(load(args, url, Path(tmp)))
        else:
            result = asyncio.run(load(args, None, Path(tmp)))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
