"""The engine as a process while its store or its bus goes away and comes back.

Issue 4: "Store or Redis down: /readyz says so, writes fail with 503, nothing is half-written, and the engine
recovers by itself when they return." A TCP relay in this test process stands between the engine and the
real PostgreSQL or Redis, so cutting it (listener closed, every open connection shut) is an outage the engine
cannot tell from a dead server, and the shared servers are never touched. The SQLite variant holds the
database's write lock from another connection for longer than the engine's busy timeout.

What is checked each time: /readyz names what is down; writes and agent actions get a 503 problem body with
Retry-After; every write that got 2xx is in the store exactly once and none that got 503 is; the engine is
ready again within seconds of the server coming back, without a restart. With Redis, a second process
(`switchboard follow`) sees every committed event exactly once and in journal order, both one that was
disconnected by the outage and resumed from its last id, and one that reads the whole stream afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
import yaml
from sqlalchemy import create_engine, text
from testsupport import Relay, wait_for

from engine.bench.processes import free_port, stop

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 15
READY_TIMEOUT_S = 60.0
RECOVERY_TIMEOUT_S = 15.0  # "within a few seconds": the engine retries every tick (200 ms)
SQLITE_BUSY_S = 5.0  # the engine's busy timeout (engine.store.store.Store default)

pytestmark = pytest.mark.timeout(240)

T = TypeVar("T")


# ----------------------------------------------------------------------------------------------
# the engine as a subprocess, with whatever SWITCHBOARD_* environment the test needs

class Serve:
    """`python -m engine.cli serve` on a free port; its output goes to test-artifacts/e2e/<test>.log."""

    def __init__(self, tmp: Path, name: str, config: dict[str, Any], env: dict[str, str]):
        self.config_path = tmp / "site.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.data_dir = tmp / "data"
        self.port = free_port(socket.SOCK_STREAM, both=False)
        self.base_url = f"http://127.0.0.1:{self.port}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log_path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.log"
        self.log_path.write_bytes(b"")  # each start appends
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        self.env["SWITCHBOARD_SIP_ENABLED"] = "false"  # voice has its own tests; keep 5060 free
        self.env.update(SWITCHBOARD_DATA_DIR=str(self.data_dir), SWITCHBOARD_CONFIG=str(self.config_path),
                        SWITCHBOARD_HTTP_HOST="127.0.0.1", SWITCHBOARD_HTTP_PORT=str(self.port), **env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve"], cwd=REPO, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._exited() or self.ready(), READY_TIMEOUT_S, "the engine to become ready", self)
        assert self.proc.poll() is None, f"the engine exited ({self.proc.returncode}):\n{self.log_tail()}"
        return time.monotonic() - started

    def _exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def readyz(self) -> httpx.Response:
        return httpx.get(f"{self.base_url}/readyz", timeout=10)

    def ready(self) -> bool:
        try:
            return self.readyz().status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, 15)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def client(self, user: str) -> httpx.Client:
        r = httpx.post(f"{self.base_url}/api/v1/auth/login", json={"username": user, "password": f"{user}-pass"},
                       timeout=10)
        assert r.status_code == 200, f"login {user}: {r.status_code} {r.text}"
        return httpx.Client(base_url=self.base_url, timeout=30,
                            headers={"Authorization": f"Bearer {r.json()['access_token']}"})


def wait_until(probe: Callable[[], T], timeout: float, what: str, server: Serve | None = None,
               every: float = 0.1) -> T:
    # on a timeout, the engine's log says why
    tail = (lambda: f"{what}\nengine log:\n{server.log_tail()}") if server is not None else what
    return wait_for(probe, timeout, tail, every)


def site() -> dict[str, Any]:
    """Two queues every agent can take; offers wait 120 s (nothing times out during an outage)."""
    agents = ("a1", "a2", "a3")
    return {
        "site": {"name": "outages", "timezone": "UTC", "holidays": None},
        "skills": ["general"],
        "queues": {q: {"name": f"Queue {q}", "skills": {"general": 1}, "wrap_up_s": 0, "offer_timeout_s": 120}
                   for q in ("q1", "q2")},
        "agents": {a: {"name": a, "skills": {"general": 5}, "capacity": {"voice": 1}} for a in agents},
        "users": [{"username": "sup", "password": "sup-pass", "role": "supervisor"}]
                 + [{"username": a, "password": f"{a}-pass", "role": "agent", "agent": a} for a in agents],
    }


def contact(cid: str | None, tag: str) -> dict[str, Any]:
    body: dict[str, Any] = {"queue": "q1", "channel": "voice", "attributes": {"tag": tag}}
    if cid is not None:
        body["id"] = cid
    return body


def created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    body: dict[str, Any] = r.json()
    return body


def assert_unavailable(r: httpx.Response) -> dict[str, Any]:
    """A 503 the client can act on: an RFC 9457 problem body and a Retry-After header."""
    assert r.status_code == 503, f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert int(r.headers["retry-after"]) > 0, r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == 503 and body["type"] == "/problems/unavailable" and body["detail"], body
    return body


def all_contacts(c: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        r = c.get("/api/v1/contacts", params={"limit": 500, "offset": offset})
        assert r.status_code == 200, f"GET /api/v1/contacts: {r.status_code} {r.text}"
        items += r.json()["items"]
        offset = r.json()["next_offset"]
    return items


def stored_state(url: str) -> tuple[list[tuple[int, str, str | None]], dict[str, str]]:
    """Straight from the database, not through the engine: the journal (seq, type, contact) in seq order,
    and each contact row's state."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            journal = [(int(s), str(t), c) for s, t, c in
                       conn.execute(text("SELECT seq, type, contact FROM journal ORDER BY seq"))]
            rows = {str(i): str(s) for i, s in conn.execute(text("SELECT id, state FROM contacts"))}
    finally:
        engine.dispose()
    return journal, rows


def assert_store_holds_exactly(url: str, acknowledged: set[str], refused: set[str], tags: set[str],
                               listed: list[dict[str, Any]]) -> None:
    """Every acknowledged contact is in the journal and the contacts table once, nothing refused is
    anywhere, and the engine lists exactly what the store holds."""
    journal, rows = stored_state(url)
    queued = [c for _, kind, c in journal if kind == "ContactQueued"]
    assert len(queued) == len(set(queued)), f"a contact was journaled twice: {queued}"
    assert set(queued) == set(rows), "journal and contacts table disagree (half-written?)"
    assert acknowledged <= set(rows), f"acknowledged but not stored: {sorted(acknowledged - set(rows))}"
    assert not refused & set(rows), f"refused with 503 but stored: {sorted(refused & set(rows))}"
    ids = [c["id"] for c in listed]
    assert len(ids) == len(set(ids)), "a contact is listed twice"
    assert set(ids) == set(rows), (sorted(ids), sorted(rows))
    assert not {c["id"] for c in listed if c["attributes"].get("tag") in tags}, \
        "a contact created without an id during the outage (answered 503) exists"
    seqs = [s for s, _, _ in journal]
    assert seqs == sorted(set(seqs))


# ----------------------------------------------------------------------------------------------
# PostgreSQL

@pytest.fixture
def pg_relay(pg_database: str) -> Iterator[tuple[Relay, str, str]]:
    """(relay, URL through it, direct URL) for a fresh database; fails the test if PostgreSQL is down."""
    from sqlalchemy.engine import make_url

    url = make_url(pg_database)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432)).start()
    via = url.set(host="127.0.0.1", port=relay.port).update_query_dict({"connect_timeout": "3"})
    try:
        yield relay, via.render_as_string(hide_password=False), pg_database
    finally:
        relay.cut()


def test_postgresql_outage_refuses_writes_and_recovers(pg_relay: tuple[Relay, str, str], tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    relay, via_relay, direct = pg_relay
    server = Serve(tmp_path, request.node.name, site(), {"SWITCHBOARD_DATABASE_URL": via_relay})
    try:
        server.start()
        with server.client("sup") as sup, server.client("a1") as a1:
            acked = {created(sup.post("/api/v1/contacts", json=contact(f"pre-{n}", "pre")))["id"] for n in range(5)}
            view = a1.post("/api/v1/agents/a1/login", json={"ready": True})
            assert view.status_code == 200, view.text
            offered = sup.get("/api/v1/contacts/pre-0").json()
            assert (offered["state"], offered["agent"]) == ("offered", "a1"), offered

            relay.cut()
            body = wait_until(lambda: (r := server.readyz()).status_code == 503 and r.json(), 10,
                              "/readyz to report the store down", server)
            assert body["checks"]["store"] is False and body["status"] == "unavailable", body

            # an agent action while the router is still current: it runs, its journal write fails, and
            # the router (now ahead of the store) must not show it to anyone
            assert_unavailable(a1.post("/api/v1/contacts/pre-0/accept"))
            r = sup.get("/api/v1/contacts/pre-0")
            assert r.status_code == 503 or r.json()["state"] == "offered", \
                f"an accept that got 503 is visible during the outage: {r.text}"
            refused = set()
            for n in range(3):
                assert_unavailable(sup.post("/api/v1/contacts", json=contact(f"down-{n}", "down")))
                refused.add(f"down-{n}")
            assert_unavailable(sup.post("/api/v1/contacts", json=contact(None, "down-anonymous")))
            assert_unavailable(a1.post("/api/v1/contacts/pre-0/accept"))
            assert_unavailable(a1.post("/api/v1/agents/a1/state", json={"state": "not_ready"}))
            assert_unavailable(httpx.post(f"{server.base_url}/api/v1/auth/login",
                                          json={"username": "a2", "password": "a2-pass"}, timeout=10))
            assert server.readyz().status_code == 503

            relay.restore()
            back = time.monotonic()
            wait_until(server.ready, RECOVERY_TIMEOUT_S, "/readyz to recover after PostgreSQL came back", server)
            print(f"\nPostgreSQL back -> /readyz 200 in {time.monotonic() - back:.2f} s")

            after = sup.get("/api/v1/contacts/pre-0").json()
            assert (after["state"], after["agent"]) == ("offered", "a1"), after
            r = a1.post("/api/v1/contacts/pre-0/accept")
            assert r.status_code == 200 and r.json()["state"] == "connected", r.text
            acked |= {created(sup.post("/api/v1/contacts", json=contact(f"post-{n}", "post")))["id"]
                      for n in range(3)}
            assert_store_holds_exactly(direct, acked, refused, {"down-anonymous"}, all_contacts(sup))
            answered = [h for h in sup.get("/api/v1/contacts/pre-0").json()["history"]
                        if h.get("event") == "answered"]
            assert len(answered) == 1, answered

        # and the store's state is what a restart rebuilds: same contacts, same states
        with server.client("sup") as sup:
            before = {c["id"]: (c["state"], c["enqueued_at"]) for c in all_contacts(sup)}
        server.stop()
        server.start()
        with server.client("sup") as sup:
            assert {c["id"]: (c["state"], c["enqueued_at"]) for c in all_contacts(sup)} == before
    finally:
        server.stop()


# ----------------------------------------------------------------------------------------------
# SQLite

def test_sqlite_write_lock_refuses_writes_and_recovers(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = Serve(tmp_path, request.node.name, site(), {})
    db_file = server.data_dir / "switchboard.db"
    try:
        server.start()
        with server.client("sup") as sup, server.client("a1") as a1:
            acked = {created(sup.post("/api/v1/contacts", json=contact(f"pre-{n}", "pre")))["id"] for n in range(3)}
            assert a1.post("/api/v1/agents/a1/login", json={"ready": True}).status_code == 200

            # another process's writer holds the database longer than the engine waits for it
            blocker = sqlite3.connect(db_file, isolation_level=None, timeout=1)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                started = time.monotonic()
                assert_unavailable(sup.post("/api/v1/contacts", json=contact(None, "locked-anonymous")))
                waited = time.monotonic() - started
                # reads still go through (WAL), but a failed write means the store is not ready for work
                body = server.readyz().json()
                assert body["status"] == "unavailable" and body["checks"]["store"] is False, body
                assert_unavailable(a1.post("/api/v1/contacts/pre-0/accept"))
                assert_unavailable(sup.post("/api/v1/contacts", json=contact("locked-1", "locked")))
                r = sup.get("/api/v1/contacts/pre-0")
                assert r.status_code == 503 or r.json()["state"] == "offered", r.text
                print(f"\nSQLite locked: a write gave up after {waited:.2f} s")
            finally:
                blocker.rollback()
                blocker.close()

            wait_until(server.ready, RECOVERY_TIMEOUT_S, "/readyz after the lock was released", server)
            r = a1.post("/api/v1/contacts/pre-0/accept")
            assert r.status_code == 200 and r.json()["state"] == "connected", r.text
            acked.add(created(sup.post("/api/v1/contacts", json=contact("post-0", "post")))["id"])
            assert_store_holds_exactly(f"sqlite:///{db_file}", acked, {"locked-1"}, {"locked-anonymous"},
                                       all_contacts(sup))
    finally:
        server.stop()


# ----------------------------------------------------------------------------------------------
# Redis

class Follower:
    """`switchboard follow` as a second process, its JSON lines collected by a thread."""

    def __init__(self, redis_url: str, stream: str, *, count: int | None = None):
        args = [sys.executable, "-m", "engine.cli", "follow", "--redis-url", redis_url, "--stream", stream,
                "--from-id", "0-0"] + (["--count", str(count)] if count is not None else [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(json.loads(raw))

    def seqs(self) -> list[int]:
        return [int(line["payload"]["seq"]) for line in self.journaled()]

    def journaled(self) -> list[dict[str, Any]]:
        """Lines of journaled events (not gap notes, nor screen-pops, which the CTI bridge sends unjournaled)."""
        return [line for line in self.lines if "seq" in line.get("payload", {})]

    def stop(self) -> str:
        stop(self.proc, 10, sig=signal.SIGINT)
        self._thread.join(10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")


@pytest.fixture
def redis_stream() -> Iterator[str]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is unreachable at {REDIS_HOST}:{REDIS_PORT} ({error}); the bus outage test needs it",
                    pytrace=False)
    stream = f"sb-e2e-outage:{uuid.uuid4().hex[:12]}"
    try:
        yield stream
    finally:
        client.delete(stream)
        client.close()


def test_redis_outage_holds_events_refuses_writes_and_followers_see_everything_once(
        redis_stream: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    relay = Relay((REDIS_HOST, REDIS_PORT)).start()
    via_relay = f"redis://127.0.0.1:{relay.port}/{REDIS_DB}"
    server = Serve(tmp_path, request.node.name, site(),
                   {"SWITCHBOARD_REDIS_URL": via_relay, "SWITCHBOARD_REDIS_STREAM": redis_stream})
    db_url = f"sqlite:///{server.data_dir / 'switchboard.db'}"
    through_outage: Follower | None = None
    try:
        server.start()
        # a follower that goes through the same relay: the outage disconnects it too
        through_outage = follower = Follower(via_relay, redis_stream)
        with server.client("sup") as sup, server.client("a1") as a1:
            acked = {created(sup.post("/api/v1/contacts", json=contact(f"pre-{n}", "pre")))["id"] for n in range(5)}
            assert a1.post("/api/v1/agents/a1/login", json={"ready": True}).status_code == 200
            last = stored_state(db_url)[0][-1][0]
            wait_until(lambda: follower.seqs() and follower.seqs()[-1] >= last, 15, "the follower to catch up")

            relay.cut()
            body = wait_until(lambda: (r := server.readyz()).status_code == 503 and r.json(), 10,
                              "/readyz to report the bus down", server)
            assert body["checks"]["bus"] is False and body["checks"]["store"] is True, body

            # writes the engine takes before it notices are committed and their events held for the bus;
            # once it has noticed, writes are refused
            refused: set[str] = set()
            before_notice: list[str] = []
            deadline = time.monotonic() + 10
            while not refused:
                assert time.monotonic() < deadline, "writes were still accepted 10 s into the Redis outage"
                cid = f"cut-{len(before_notice)}"
                r = sup.post("/api/v1/contacts", json=contact(cid, "cut"))
                if r.status_code == 201:
                    before_notice.append(cid)
                    time.sleep(0.1)
                else:
                    assert_unavailable(r)
                    refused.add(cid)
            acked |= set(before_notice)
            for n in range(2):
                assert_unavailable(sup.post("/api/v1/contacts", json=contact(f"down-{n}", "down")))
                refused.add(f"down-{n}")
            assert_unavailable(a1.post("/api/v1/contacts/pre-0/accept"))

            relay.restore()
            back = time.monotonic()
            wait_until(server.ready, RECOVERY_TIMEOUT_S, "/readyz to recover after Redis came back", server)
            print(f"\nRedis back -> /readyz 200 in {time.monotonic() - back:.2f} s; "
                  f"{len(before_notice)} write(s) accepted before the engine noticed the outage")
            r = a1.post("/api/v1/contacts/pre-0/accept")
            assert r.status_code == 200 and r.json()["state"] == "connected", r.text
            acked |= {created(sup.post("/api/v1/contacts", json=contact(f"post-{n}", "post")))["id"]
                      for n in range(3)}
            assert_store_holds_exactly(db_url, acked, refused, set(), all_contacts(sup))

        journal, _ = stored_state(db_url)
        want = [seq for seq, _, _ in journal]
        wait_until(lambda: len(follower.seqs()) >= len(want), 20,
                   f"the disconnected follower to resume ({len(follower.seqs())}/{len(want)} events)")
        time.sleep(0.5)  # anything extra (a repeat) would show by now
        assert follower.seqs() == want, "the follower that lived through the outage saw a gap, a repeat or disorder"
        assert not [line for line in follower.lines if line.get("gap")]

        # a process that starts afterwards reads the whole stream: every event once, in journal order
        # as many messages as the first follower saw: the events and the CTI bridge's screen-pops
        late = Follower(f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}", redis_stream, count=len(follower.lines))
        try:
            late.proc.wait(20)
        finally:
            errors = late.stop()
        assert late.proc.returncode == 0, errors
        assert late.seqs() == want
        kinds = {seq: kind for seq, kind, _ in journal}
        assert [line["type"] for line in late.journaled()] == [kinds[s] for s in want]
        queued = [line["payload"]["contact"] for line in late.journaled() if line["type"] == "ContactQueued"]
        assert sorted(queued) == sorted(acked)
        assert before_notice and set(before_notice) <= set(queued)
    finally:
        if through_outage is not None:
            through_outage.stop()
        server.stop()
        relay.cut()
