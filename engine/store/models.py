"""The tables. The journal is the truth; `contacts` and `agent_state_history` are derived from it in the
same transaction; `snapshots` shorten recovery; `interval_stats`, `users` and `api_keys` stand alone.

Core times (`t`, `enqueued_at`, ...) are the router's float seconds; wall-clock columns are timezone-aware
`DateTime`s. A change here needs a new revision in `engine/store/migrations/versions/`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact); plain JSON text elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-numbers an INTEGER PRIMARY KEY, so the 64-bit key is plain INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ROLES = ("agent", "supervisor", "admin")

NAME = 100  # length of ids and names (contacts, agents, queues)


class Base(DeclarativeBase):
    pass


class JournalEntry(Base):
    """One core event. `seq` is the global order: replaying by `seq` rebuilds the router."""

    __tablename__ = "journal"
    # AUTOINCREMENT: SQLite never reuses a seq, even after old entries are pruned behind a snapshot
    __table_args__ = (
        Index("ix_journal_contact_seq", "contact", "seq"),
        Index("ix_journal_agent_seq", "agent", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(40))
    contact: Mapped[str | None] = mapped_column(String(NAME))
    agent: Mapped[str | None] = mapped_column(String(NAME))
    t: Mapped[float] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ContactRow(Base):
    """A contact's current state, as the journal says after entry `last_seq`."""

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_state_queue", "state", "queue"),
        Index("ix_contacts_first_seq", "first_seq"),
    )

    id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    queue: Mapped[str] = mapped_column(String(NAME))
    channel: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer)
    enqueued_at: Mapped[float] = mapped_column(Float)  # original age, kept across requeue and transfer
    agent: Mapped[str | None] = mapped_column(String(NAME))
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    schedule_at: Mapped[float | None] = mapped_column(Float)  # scheduled callbacks
    answered_at: Mapped[float | None] = mapped_column(Float)  # first answer
    ended_at: Mapped[float | None] = mapped_column(Float)
    wrap_up_code: Mapped[str | None] = mapped_column(String(NAME))
    first_seq: Mapped[int] = mapped_column(BigInteger)  # arrival order; the listing's keyset
    last_seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)  # core time of the first event
    updated_at: Mapped[float] = mapped_column(Float)  # core time of the last event


class AgentStateChange(Base):
    """An agent's presence after a login, logout, ready or not-ready event (reason: break, RONA, ...)."""

    __tablename__ = "agent_state_history"
    __table_args__ = (Index("ix_agent_state_history_agent_t", "agent", "t"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)  # the journal entry it comes from
    agent: Mapped[str] = mapped_column(String(NAME))
    event: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(NAME))
    t: Mapped[float] = mapped_column(Float)


class Snapshot(Base):
    """Router state after journal entry `seq`: recovery loads it and replays only the tail."""

    __tablename__ = "snapshots"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IntervalStat(Base):
    """One queue's counters for one interval (15 minutes by default); replaced as the interval fills."""

    __tablename__ = "interval_stats"

    queue: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    interval_start: Mapped[float] = mapped_column(Float, primary_key=True)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    answered_within: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    abandoned_after: Mapped[int] = mapped_column(Integer, default=0)
    short_abandoned: Mapped[int] = mapped_column(Integer, default=0)
    answer_wait_s: Mapped[float] = mapped_column(Float, default=0.0)
    abandon_wait_s: Mapped[float] = mapped_column(Float, default=0.0)
    handled: Mapped[int] = mapped_column(Integer, default=0)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    hold_s: Mapped[float] = mapped_column(Float, default=0.0)
    wrap_s: Mapped[float] = mapped_column(Float, default=0.0)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    ronas: Mapped[int] = mapped_column(Integer, default=0)
    occupancy: Mapped[float | None] = mapped_column(Float)
    report: Mapped[dict[str, Any]] = mapped_column(JsonDoc)  # the whole report, ratios included
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# the counter columns of interval_stats, in IntervalCounters' order
INTERVAL_COUNTERS = (
    "offered", "answered", "answered_within", "abandoned", "abandoned_after", "short_abandoned",
    "answer_wait_s", "abandon_wait_s", "handled", "talk_s", "hold_s", "wrap_s", "transfers", "ronas",
)


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name="ck_users_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(NAME))  # the ACD agent this login drives
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiKeyRow(Base):
    """Keys for machine clients (CRM, BI). Only a hash of the key is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    key_hash: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
