"""Run the Alembic migrations that ship inside this package, on a `Database`, without an alembic.ini."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from engine.store.db import Database, translated

SCRIPT_LOCATION = "engine.store:migrations"  # package resource: works from an installed wheel too


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found in engine/store/migrations/versions"
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at; None if it was never migrated."""
    with translated(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to `revision` in one transaction; return the revision reached."""
    cfg = alembic_config()
    with translated(), db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(db)
