"""People who log in: agents, supervisors, administrators. Passwords are kept as argon2id hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Row, Table, insert, select, update

from engine.store import StoreConflict
from engine.store.db import Database
from engine.store.models import ROLES, UserRow

_users = cast(Table, UserRow.__table__)


class UserExists(StoreConflict):
    """The user name is taken."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: str
    agent_id: str | None
    created_at: datetime
    disabled: bool


class Users:
    def __init__(self, db: Database, hasher: PasswordHasher | None = None):
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    def create(self, username: str, password: str, role: str, *, agent_id: str | None = None) -> User:
        username = username.strip()
        if not username:
            raise ValueError("user name must not be empty")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (one of: {', '.join(ROLES)})")
        if not password:
            raise ValueError("password must not be empty")
        created = datetime.now(timezone.utc)
        row = {"username": username, "password_hash": self.hasher.hash(password), "role": role,
               "agent_id": agent_id, "created_at": created, "disabled": False}
        try:
            with self.db.write() as conn:
                new_id = conn.execute(insert(_users).returning(_users.c.id), row).scalar_one()
        except StoreConflict as error:
            raise UserExists(f"user {username!r} already exists") from error
        return User(int(new_id), username, role, agent_id, created, False)

    def get(self, username: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(_users).where(_users.c.username == username)).first()
        return _user(row) if row is not None else None

    def all(self, *, include_disabled: bool = True) -> list[User]:
        query = select(_users).order_by(_users.c.username)
        if not include_disabled:
            query = query.where(_users.c.disabled.is_(False))
        with self.db.read() as conn:
            return [_user(r) for r in conn.execute(query)]

    def verify(self, username: str, password: str) -> User | None:
        """The user if the password is right and the account enabled, else None.

        An unknown name costs the same hashing time as a wrong password, so timing tells nothing."""
        with self.db.read() as conn:
            row = conn.execute(select(_users).where(_users.c.username == username)).first()
        if row is None:
            self._burn(password)
            return None
        try:
            self.hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if row.disabled:
            return None
        if self.hasher.check_needs_rehash(row.password_hash):
            self._set_hash(row.id, self.hasher.hash(password))
        return _user(row)

    def set_password(self, username: str, password: str) -> bool:
        if not password:
            raise ValueError("password must not be empty")
        with self.db.write() as conn:
            done = conn.execute(update(_users).where(_users.c.username == username)
                                .values(password_hash=self.hasher.hash(password))).rowcount
        return bool(done)

    def disable(self, username: str, disabled: bool = True) -> bool:
        """Lock (or with `disabled=False` unlock) an account; False if there is no such user."""
        with self.db.write() as conn:
            done = conn.execute(update(_users).where(_users.c.username == username)
                                .values(disabled=disabled)).rowcount
        return bool(done)

    def _set_hash(self, user_id: int, password_hash: str) -> None:
        with self.db.write() as conn:
            conn.execute(update(_users).where(_users.c.id == user_id).values(password_hash=password_hash))

    def _burn(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash("not a real password")
        try:
            self.hasher.verify(self._dummy_hash, password)
        except VerificationError:
            pass


def _user(row: Row) -> User:  # type: ignore[type-arg]
    created = row.created_at
    if created.tzinfo is None:  # SQLite keeps no zone; we only ever store UTC
        created = created.replace(tzinfo=timezone.utc)
    return User(int(row.id), row.username, row.role, row.agent_id, created, bool(row.disabled))
