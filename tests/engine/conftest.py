"""Store fixtures: every store test runs on SQLite (a temporary file) and on PostgreSQL (a fresh schema).

PostgreSQL comes from SWITCHBOARD_TEST_POSTGRES_URL (default: the local server). If it cannot be
reached the tests fail and say so: a store that was never tested on PostgreSQL is not a passing store.

Also the ARI stand-in (tests/engine/ari_standin.py) as a fixture, for the ARI modules (anyio tests).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from ari_standin import AriStandIn
from sqlalchemy.engine import make_url
from testsupport import Relay, fresh_schema

from engine.store.store import Store

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A URL whose connections see only a fresh, empty schema (dropped afterwards)."""
    with fresh_schema(pg_server_url) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{os.path.join(tmp_path, 'switchboard.db')}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def open_store(db_url: str) -> Iterator[Callable[..., Store]]:
    """Open (another) store on the test database: a new engine, as a restarted process would have."""
    opened: list[Store] = []

    def _open(url: str | None = None, **kw: object) -> Store:
        s = Store(url or db_url, **kw)  # type: ignore[arg-type]
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    """A migrated, empty store."""
    s = open_store()
    s.migrate()
    return s


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[tuple[Relay, str]]:
    """(relay, URL through it) for the test schema; the relay is up (`cut()` / `restore()`)."""
    url = make_url(pg_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432)).start()
    try:
        yield relay, url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    finally:
        relay.cut()


@pytest.fixture
async def standin() -> AsyncIterator[AriStandIn]:
    """The ARI stand-in listening on loopback; stopped afterwards."""
    server = AriStandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
