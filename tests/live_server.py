"""The engine app behind a real HTTP server (uvicorn in a thread of this process), for tests that need real
sockets: chunked bodies that arrive in pieces, WebSockets read by a real client, URLs a second service calls.

`serving(app)` runs any app on a free loopback port; `demo_app(tmp)` is the demo site's app with its data in
`tmp`; `LiveClient` is a test's side of it: the demo users' tokens, requests that must succeed, and the
WebSockets it opened (closed at the end). Importable from every test folder (tests/ is on sys.path).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI
from websockets.sync.client import ClientConnection, connect

from engine.app import create_app
from engine.bench.processes import free_port
from engine.configfile import load_file
from engine.settings import Settings

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 20.0  # hang guard only: a broken feed fails instead of hanging


def demo_app(tmp: Path, **settings: Any) -> FastAPI:
    """The demo site (config/switchboard.yaml, copied to `tmp`) with its data in `tmp`/data."""
    shutil.copy(REPO / "config" / "switchboard.yaml", tmp / "switchboard.yaml")
    return create_app(Settings(data_dir=tmp / "data", **settings), load_file(tmp / "switchboard.yaml"))


@contextlib.contextmanager
def serving(app: FastAPI, **config: Any) -> Iterator[str]:
    """`app` on a free loopback port until the block ends (its lifespan runs); yields its base URL.
    `config`: further uvicorn settings (ws_max_size, timeout_graceful_shutdown, ...)."""
    port = free_port(socket.SOCK_STREAM, both=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class LiveClient:
    """A test's side of a served app: each user's token (demo passwords: `<user>-demo`), requests as a user,
    and every WebSocket opened (closed by `close_sockets()` and at the end)."""

    def __init__(self, app: FastAPI, base: str, users: tuple[str, ...]):
        self.app, self.base = app, base
        self.http = httpx.Client(base_url=base, timeout=30)
        self.tokens = {u: self._login(u) for u in users}
        self.sockets = contextlib.ExitStack()
        self.serial = 0  # for contact ids of the test's own

    def _login(self, user: str) -> str:
        r = self.http.post("/api/v1/auth/login", json={"username": user, "password": f"{user}-demo"})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def call(self, user: str, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {self.tokens[user]}"}, **kw)

    def ok(self, user: str, method: str, path: str, **kw: Any) -> Any:
        r = self.call(user, method, path, **kw)
        assert r.is_success, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def open_socket(self, kind: str, query: str, **options: Any) -> ClientConnection:
        """/api/v1/ws/`kind`?`query`, closed with the others."""
        url = f"{self.base.replace('http', 'ws')}/api/v1/ws/{kind}?{query}"
        return self.sockets.enter_context(connect(url, open_timeout=WAIT_S, **options))

    def close_sockets(self) -> None:
        self.sockets.close()
        self.sockets = contextlib.ExitStack()

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def close(self) -> None:
        self.sockets.close()
        self.http.close()


LiveT = TypeVar("LiveT", bound=LiveClient)


@contextlib.contextmanager
def live_demo(kind: type[LiveT], tmp: Path, users: tuple[str, ...], settings: dict[str, Any] | None = None,
              **config: Any) -> Iterator[LiveT]:
    """The demo app served (`serving`), and a `kind` client logged in as `users`; all closed at the end."""
    app = demo_app(tmp, **(settings or {}))
    with serving(app, **config) as base:
        live = kind(app, base, users)
        try:
            yield live
        finally:
            live.close()


def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next message on the socket, parsed (within WAIT_S)."""
    msg: dict[str, Any] = json.loads(ws.recv(timeout=WAIT_S))
    return msg
