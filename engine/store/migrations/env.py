"""Alembic environment. `engine.store.migrate` hands over an open connection in
`config.attributes["connection"]`; the `alembic` command line (for writing new revisions) gets its URL
from `-x url=...`, `sqlalchemy.url` or the Switchboard settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from engine.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from engine.settings import Settings

    return Settings().effective_database_url()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    from engine.store.db import Database

    db = Database(_url())
    try:
        with db.engine.begin() as conn:
            _run(conn)
    finally:
        db.dispose()
