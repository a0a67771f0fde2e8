"""The database connection: URL handling, engine set-up per back end, transactions, error mapping.

SQLite (the default) runs in WAL mode with synchronous=FULL, so a committed transaction survives a
`kill -9` and a power cut; SQLAlchemy issues BEGIN itself (the sqlite3 module's own transaction
handling skips it for reads), and writers take the lock up front with BEGIN IMMEDIATE so two writers
queue on the busy timeout instead of failing. PostgreSQL goes through psycopg 3. Both use
`pool_pre_ping`, so a connection that died while the database was away is replaced on next use.

Every database failure that means "not reachable now" leaves here as `StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import Connection, Engine, Table, create_engine, event, exc, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from engine.store import StoreConflict, StoreUnavailable

# One writer at a time appends to the journal, so seq order is commit order even with several
# processes (a follower reading by seq never skips an entry committed late). Any constant will do.
JOURNAL_LOCK_KEY = 0x53574A4C  # "SWJL"


def normalize_url(url: str | URL) -> URL:
    """`postgres://` and `postgresql://` mean psycopg 3 here (SQLAlchemy would pick psycopg2)."""
    u = make_url(url) if isinstance(url, str) else url
    if u.drivername in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def masked(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return normalize_url(url).render_as_string(hide_password=True)


def is_unavailable(error: BaseException) -> bool:
    """Errors that mean the database is away, locked or out of connections, not that the query is wrong."""
    away = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)
    if isinstance(error, away):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Map SQLAlchemy errors to the store's: unavailable -> StoreUnavailable, uniqueness -> StoreConflict."""
    try:
        yield
    except exc.IntegrityError as error:
        raise StoreConflict(str(error.orig)) from error
    except exc.SQLAlchemyError as error:
        if is_unavailable(error):
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()
            raise StoreUnavailable(f"database unavailable: {detail[0] if detail else type(error).__name__}") \
                from error
        raise


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column (SQLite and PostgreSQL)."""
    name = conn.dialect.name
    if name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"upsert is written for SQLite and PostgreSQL, not {name}")
    stmt = (postgresql.insert if name == "postgresql" else sqlite.insert)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys})
    conn.execute(stmt, rows)


class Database:
    """An `Engine` plus the two ways the store uses it: reads, and write transactions."""

    def __init__(self, url: str | URL, *, busy_timeout_s: float = 5.0, connect_timeout_s: int = 5,
                 pool_size: int = 5, echo: bool = False):
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        self.engine: Engine = _make_engine(self.url, busy_timeout_s=busy_timeout_s, pool_size=pool_size,
                                           connect_timeout_s=connect_timeout_s, echo=echo)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a (read) transaction; rolled back at the end."""
        with translated(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self, *, journal: bool = False) -> Iterator[Connection]:
        """One write transaction: all of it is committed, or none of it (the error goes on up).

        `journal=True` also serialises journal writers across processes (PostgreSQL advisory lock;
        SQLite's BEGIN IMMEDIATE already does)."""
        with translated(), self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if journal and self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOURNAL_LOCK_KEY})
                yield conn

    def ping(self) -> bool:
        """True when a trivial query goes through now (for /readyz)."""
        try:
            with self.read() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except StoreUnavailable:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: URL, *, busy_timeout_s: float, connect_timeout_s: int, pool_size: int,
                 echo: bool) -> Engine:
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "echo": echo}
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # the engine may be used from a worker thread; the pool hands each connection to one thread at a time
        kwargs["connect_args"] = {"timeout": busy_timeout_s, "check_same_thread": False}
        if database in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool  # one connection: each new one would be a new empty database
    elif backend == "postgresql":
        # a server that stops answering (partition, frozen host) must fail a write, not hang it:
        # TCP keepalives and tcp_user_timeout bound how long unacknowledged traffic may wait
        args: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                                "keepalives_count": 3, "tcp_user_timeout": 10_000}
        if "connect_timeout" not in url.query:
            args["connect_timeout"] = connect_timeout_s
        kwargs["connect_args"] = {k: v for k, v in args.items() if k not in url.query}
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_timeout=connect_timeout_s)
    engine = create_engine(url, **kwargs)
    if backend == "sqlite":
        _sqlite_setup(engine, busy_timeout_s)
    return engine


def _sqlite_setup(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN (below), sqlite3 must not
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())
