"""`switchboard migrate [--database-url URL]`: create or upgrade the schema to the latest revision."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("migrate", help="create or upgrade the database schema (SQLite file or PostgreSQL)")
    p.add_argument("--database-url", default=None,
                   help="SQLAlchemy URL (default: SWITCHBOARD_DATABASE_URL, else the SQLite file in "
                        "SWITCHBOARD_DATA_DIR)")
    p.add_argument("--revision", default="head", help="target revision (default: head)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.settings import Settings
    from engine.store import StoreError
    from engine.store.db import Database, masked
    from engine.store.migrate import current_revision, upgrade

    url = args.database_url or Settings().effective_database_url()
    try:
        db = Database(url)
    except Exception as error:  # a malformed URL or an unknown driver
        print(f"switchboard migrate: bad database URL: {error}", file=sys.stderr)
        return 2
    try:
        before = current_revision(db)
        after = upgrade(db, args.revision)
    except StoreError as error:
        print(f"switchboard migrate: {masked(db.url)}: {error}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    change = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    print(f"{masked(db.url)}: {change} revision {after}")
    return 0
