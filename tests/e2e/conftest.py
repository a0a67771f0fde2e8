"""End-to-end fixtures: the real `switchboard serve` as a subprocess, on SQLite or on PostgreSQL.

`start_engine(config)` writes the site file to the test's tmp_path, starts `python -m engine.cli serve` on a
free loopback port with SWITCHBOARD_DATA_DIR in tmp_path (and SWITCHBOARD_DATABASE_URL when the test runs
on PostgreSQL), waits for /readyz and hands back an `EngineServer`: its URLs, `kill()` (SIGKILL), `start()`
again on the same data, and log-in helpers. Everything the server prints goes to
test-artifacts/e2e/<test>-<n>.log for debugging. Servers still running at the end are stopped.

PostgreSQL comes from SWITCHBOARD_TEST_POSTGRES_URL (default the local server); each test gets a fresh
database `sb_e2e_<random>`, dropped afterwards. If PostgreSQL does not answer the test fails and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from testsupport import scratch_database
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from engine.bench.processes import free_port, stop

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
READY_TIMEOUT_S = 60.0


class EngineServer:
    """One engine process at a time on fixed data (site file, data dir, database): start, kill, restart."""

    def __init__(self, config: Path, data_dir: Path, database_url: str | None, log_stem: Path,
                 env: dict[str, str] | None = None):
        self.config, self.data_dir, self.database_url = config, data_dir, database_url
        self.extra_env = dict(env or {})  # further SWITCHBOARD_* settings (e.g. which CRM)
        self.log_stem = log_stem
        self.port = free_port(socket.SOCK_STREAM, both=False)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the engine is not running"
        return self.proc.pid

    def start(self) -> float:
        """Start the engine and wait until /readyz says ready; returns the seconds it took."""
        assert self.proc is None or self.proc.poll() is not None, "the engine is already running"
        self.starts += 1
        self.log_path = self.log_stem.with_name(f"{self.log_stem.name}-{self.starts}.log")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SWITCHBOARD_") or k.startswith("SWITCHBOARD_TEST_")}
        env.update(SWITCHBOARD_DATA_DIR=str(self.data_dir), SWITCHBOARD_CONFIG=str(self.config),
                   SWITCHBOARD_HTTP_PORT=str(self.port), SWITCHBOARD_HTTP_HOST="127.0.0.1",
                   SWITCHBOARD_SIP_ENABLED="false")  # voice has its own tests; keep 5060 free
        if self.database_url:
            env["SWITCHBOARD_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve"], cwd=REPO, env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = started + READY_TIMEOUT_S
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the engine exited with code {self.proc.returncode} before it was ready; "
                                   f"its log ({self.log_path}) ends with:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.base_url}/readyz", timeout=2)
                if r.status_code == 200:
                    return time.monotonic() - started
                last = f"{r.status_code} {r.text}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the engine was not ready within {READY_TIMEOUT_S:.0f} s (last /readyz: {last}); "
                           f"its log ({self.log_path}) ends with:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing; what the store has is all there is."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, 15)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- helpers for the API -------------------------------------------------------------------
    def login(self, username: str, password: str) -> str:
        r = httpx.post(f"{self.base_url}/api/v1/auth/login", json={"username": username, "password": password},
                       timeout=10)
        assert r.status_code == 200, f"login {username}: {r.status_code} {r.text}"
        token: str = r.json()["access_token"]
        return token

    def client(self, token: str, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=kw.pop("timeout", 30), **kw)

    async def socket(self, token: str, kind: str = "agent", after: str | None = None,
                     hello: bool = True) -> Feed:
        """An agent (or supervisor) socket; waits for its hello unless `hello=False`."""
        url = f"{self.ws_url}/{kind}?token={token}" + (f"&after={after}" if after else "")
        return await Feed.open(url, hello=hello)


class Feed:
    """A WebSocket whose messages are collected in the background, to wait on and inspect."""

    def __init__(self, conn: ClientConnection):
        self.conn = conn
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read())
        self.closed_code: int | None = None

    @classmethod
    async def open(cls, url: str, hello: bool = True) -> Feed:
        conn = await connect(url, open_timeout=10, max_size=2**22)
        feed = cls(conn)
        if hello:
            await feed.wait_for(lambda m: m.get("type") == "hello")
        return feed

    async def ended(self) -> None:
        """Until the server closes the socket."""
        await asyncio.shield(self._task)

    async def _read(self) -> None:
        try:
            with contextlib.suppress(ConnectionClosed):  # the close code says why it ended
                async for raw in self.conn:
                    self.messages.append(json.loads(raw))
                    self._arrived.set()
        finally:
            self.closed_code = self.conn.close_code
            self._arrived.set()

    @property
    def events(self) -> list[dict[str, Any]]:
        """Bus messages only (not hello / resync)."""
        return [m for m in self.messages if "id" in m and "seq" in m]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.events if m.get("type") == kind]

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0,
                       count: int = 1) -> list[dict[str, Any]]:
        """Wait until `count` messages match; returns them."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            hits = [m for m in self.messages if predicate(m)]
            if len(hits) >= count:
                return hits
            if self._task.done():
                raise AssertionError(f"socket closed (code {self.closed_code}) with {len(hits)}/{count} "
                                     f"matching messages; last: {self.messages[-3:]}")
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"timed out with {len(hits)}/{count} matching messages; "
                                     f"last: {self.messages[-3:]}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.conn.close()
        await asyncio.wait_for(asyncio.shield(self._task), 10)


# ----------------------------------------------------------------------------------------------
# site files

def site_config(agents: int = 3, queues: int = 2, *, offer_timeout_s: float = 60) -> dict[str, Any]:
    """A small centre: `queues` queues every agent can take, wrap-up 0 s without codes, bootstrap users
    admin/admin-pass, sup/sup-pass (supervisor) and a1..aN/a1-pass... (agents a1..aN)."""
    queue_ids = [f"q{i + 1}" for i in range(queues)]
    return {
        "site": {"name": "e2e", "timezone": "UTC", "holidays": None},
        "skills": ["general"],
        "queues": {q: {"name": f"Queue {q}", "skills": {"general": 1}, "wrap_up_s": 0,
                       "offer_timeout_s": offer_timeout_s} for q in queue_ids},
        "agents": {f"a{i + 1}": {"name": f"Agent {i + 1}", "skills": {"general": 5},
                                 "capacity": {"voice": 1}} for i in range(agents)},
        "users": [{"username": "admin", "password": "admin-pass", "role": "admin"},
                  {"username": "sup", "password": "sup-pass", "role": "supervisor"}]
                 + [{"username": f"a{i + 1}", "password": f"a{i + 1}-pass", "role": "agent",
                     "agent": f"a{i + 1}"} for i in range(agents)],
    }


# ----------------------------------------------------------------------------------------------
# fixtures

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pg_database(pg_server_url: str) -> Iterator[str]:
    """A fresh database `sb_e2e_<random>` on the test server, dropped (with its sessions) afterwards."""
    with scratch_database(pg_server_url, "sb_e2e") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None: the engine's default SQLite file in its data dir; else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def start_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., EngineServer]]:
    servers: list[EngineServer] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def _start(config: dict[str, Any], database_url: str | None = None,
               env: dict[str, str] | None = None) -> EngineServer:
        n = len(servers) + 1
        path = tmp_path / f"site-{n}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        server = EngineServer(path, tmp_path / f"data-{n}", database_url, ARTIFACTS / f"{stem}-{n}", env)
        servers.append(server)
        server.start()
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def make_site() -> Callable[..., dict[str, Any]]:
    """`site_config` for tests (fixtures are how test modules reach the helpers here)."""
    return site_config
