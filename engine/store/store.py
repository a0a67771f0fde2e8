"""The store the engine holds: one database, its journal, users and interval statistics."""

from __future__ import annotations

from sqlalchemy.engine import URL

from engine.store import StoreNotMigrated
from engine.store.db import Database, masked
from engine.store.intervals import IntervalStats
from engine.store.journal import Journal
from engine.store.migrate import current_revision, head_revision, upgrade
from engine.store.users import Users


class Store:
    def __init__(self, url: str | URL, *, busy_timeout_s: float = 5.0, connect_timeout_s: int = 5):
        self.db = Database(url, busy_timeout_s=busy_timeout_s, connect_timeout_s=connect_timeout_s)
        self.journal = Journal(self.db)
        self.users = Users(self.db)
        self.intervals = IntervalStats(self.db)

    def __repr__(self) -> str:
        return f"Store({masked(self.db.url)!r})"

    def migrate(self, revision: str = "head") -> str | None:
        """Create or upgrade the schema (what `switchboard migrate` does)."""
        return upgrade(self.db, revision)

    def require_current(self) -> None:
        """Raise `StoreNotMigrated` unless the schema is at this code's head revision."""
        have, want = current_revision(self.db), head_revision()
        if have != want:
            raise StoreNotMigrated(
                f"database {masked(self.db.url)} is at schema revision {have or 'none'}, this code needs "
                f"{want}: run `switchboard migrate`")

    def ping(self) -> bool:
        return self.db.ping()

    def close(self) -> None:
        self.db.dispose()
