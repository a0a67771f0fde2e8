"""Helpers the test folders share: the PostgreSQL test server, fresh schemas and databases on it, a
TCP relay, and polling until something holds.

`tests/` is on sys.path under pytest (tests/conftest.py sits here), so test modules import this as
`testsupport`. Fixtures built on it live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine.store.db import masked, normalize_url

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float, what: Callable[[], str] | str = "condition",
             every: float = 0.1) -> T:
    """Poll `probe` every `every` seconds until it gives something true, and return that; after `timeout`
    seconds fail saying what was awaited (`what` may be a callable, read only then, to show the state)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(every)


def pg_server_url() -> str:
    """The PostgreSQL server the tests use (SWITCHBOARD_TEST_POSTGRES_URL, else the local one), checked;
    fails the calling test with a message saying so if it does not answer (never a silent skip)."""
    url = normalize_url(os.environ.get("SWITCHBOARD_TEST_POSTGRES_URL") or PG_DEFAULT_URL).render_as_string(
        hide_password=False)
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means the same thing here
        pytest.fail(f"PostgreSQL is unreachable at {masked(url)} ({type(error).__name__}: {error}). "
                    "These tests need it: start PostgreSQL or set SWITCHBOARD_TEST_POSTGRES_URL.",
                    pytrace=False)
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def fresh_schema(server_url: str, prefix: str = "sbtest") -> Iterator[str]:
    """A URL whose connections see only a new, empty schema, dropped afterwards (with any session a
    killed process left behind: application_name marks the test's sessions)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}", "application_name": schema})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
                         {"n": schema})
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str = "sbtest") -> Iterator[str]:
    """A URL of a new, empty database `<prefix>_<random>` on the PostgreSQL server of `server_url`, dropped
    afterwards with any session still on it (for a whole engine process, which wants a database of its own)."""
    url = normalize_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _shut(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


class Relay:
    """Forwards 127.0.0.1:<port> to a real server. `cut()` closes the listener and shuts every open
    connection both ways (the engine sees resets and refused connections, as with a dead server);
    `restore()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> Relay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="relay-accept", daemon=True).start()
        return self

    restore = start

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            _shut(s)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _shut(client)
                    _shut(upstream)
                    continue
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), name="relay-pump", daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(src)
            _shut(dst)

