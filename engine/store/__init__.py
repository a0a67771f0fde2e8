"""Persistence: the journal of core events, the tables derived from it, users and reports.

Modules: `db` (engine, transactions, error mapping), `models` (tables), `journal` (append / replay /
snapshots / contact queries), `projection` (events -> contact and agent-history rows), `users`,
`intervals` (interval statistics), `migrate` (Alembic, run from inside the package), `store` (the facade
the engine holds). The errors below are the only ones callers need to catch.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is locked: nothing was written; try again later (HTTP 503)."""


class StoreConflict(StoreError):
    """A write broke a uniqueness rule (duplicate user name, contact id, ...): nothing was written."""


class StoreNotMigrated(StoreError):
    """The schema is missing or older than this code: run `switchboard migrate`."""


__all__ = ["StoreError", "StoreUnavailable", "StoreConflict", "StoreNotMigrated"]
