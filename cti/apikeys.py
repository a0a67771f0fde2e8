"""API keys for machine clients (the city's web site, apps, the after-hours answering service).

A key is 32 random bytes, shown once when it is made; the store keeps only its SHA-256. A slow salted hash
(argon2, as for passwords) would buy nothing here: the key has 256 bits of entropy, so a fast hash cannot
be brute-forced, and a keyed lookup by hash stays one index probe per Open311 request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import cast

from sqlalchemy import Table, delete, insert, select

from engine.store import StoreConflict
from engine.store.db import Database
from engine.store.models import ApiKeyRow

_keys = cast(Table, ApiKeyRow.__table__)
KEY_PREFIX = "sbk_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,149}$")


class ApiKeyExists(StoreConflict):
    """A key with that name exists already."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    created_at: datetime


def key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, db: Database):
        self.db = db

    def add(self, name: str) -> tuple[str, ApiKey]:
        """Make a key for `name`: (the key itself, to show once; its record)."""
        if not NAME_PATTERN.match(name):
            raise ValueError("a key name is 1-150 letters, digits and . _ @ - (e.g. web-portal)")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(timezone.utc)
        try:
            with self.db.write() as conn:
                conn.execute(insert(_keys), {"name": name, "key_hash": key_hash(key), "created_at": now})
        except StoreConflict as error:
            raise ApiKeyExists(f"an API key named {name!r} exists already") from error
        return key, ApiKey(name, now)

    def all(self) -> list[ApiKey]:
        with self.db.read() as conn:
            rows = conn.execute(select(_keys.c.name, _keys.c.created_at).order_by(_keys.c.name)).all()
        return [ApiKey(r.name, _utc(r.created_at)) for r in rows]

    def revoke(self, name: str) -> bool:
        """Forget the key: it stops working at once. False if there is no key of that name."""
        with self.db.write() as conn:
            return bool(conn.execute(delete(_keys).where(_keys.c.name == name)).rowcount)

    def verify(self, key: str | None) -> str | None:
        """The name of the key's owner, or None for a missing, malformed, unknown or revoked key."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with self.db.read() as conn:
            row = conn.execute(select(_keys.c.name).where(_keys.c.key_hash == key_hash(key))).first()
        return str(row.name) if row is not None else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
