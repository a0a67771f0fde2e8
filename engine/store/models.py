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
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
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


# --- case store (cti/cases.py): residents, service requests, their history ---------------------------

CASE_STATUSES = ("new", "acknowledged", "in_progress", "pending_approval", "closed")


class ResidentRow(Base):
    """A person the city serves. Phones and e-mail addresses live in `resident_contacts` (several each)."""

    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(300))
    language: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ResidentContactRow(Base):
    """One way to reach a resident; `value` is normalised (E.164 phone, lower-case e-mail) for look-ups."""

    __tablename__ = "resident_contacts"
    __table_args__ = (
        UniqueConstraint("resident_id", "kind", "value", name="uq_resident_contacts"),
        Index("ix_resident_contacts_kind_value", "kind", "value"),
        CheckConstraint("kind IN ('phone', 'email')", name="ck_resident_contacts_kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("residents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    label: Mapped[str | None] = mapped_column(String(40))  # as given: "+1 (905) 555-0123", "mobile"


class CaseSequenceRow(Base):
    """The last reference number handed out per year: SR-2026-000123 is number 123 of 2026."""

    __tablename__ = "case_sequences"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)


class CaseRow(Base):
    """A service request. `reference` is what the resident quotes; `token` answers Open311 token look-ups."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_department", "status", "department", "service_code"),
        Index("ix_cases_requested_at", "requested_at"),
        Index("ix_cases_resident_status", "resident_id", "status"),
        CheckConstraint("status IN ('new', 'acknowledged', 'in_progress', 'pending_approval', 'closed')",
                        name="ck_cases_status"),
        CheckConstraint("latitude IS NULL OR (latitude BETWEEN -90 AND 90)", name="ck_cases_latitude"),
        CheckConstraint("longitude IS NULL OR (longitude BETWEEN -180 AND 180)", name="ck_cases_longitude"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    service_code: Mapped[str] = mapped_column(String(NAME))
    department: Mapped[str] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))  # desk (an agent) or open311 (a machine client)
    filed_by: Mapped[str] = mapped_column(String(160))  # user name, or "apikey:NAME"
    on_behalf_of: Mapped[str | None] = mapped_column(String(200))  # e.g. "Cllr. Jane Roe, Ward 3"
    on_behalf_role: Mapped[str | None] = mapped_column(String(40))  # councillor, family, caregiver, ...
    resident_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("residents.id", ondelete="SET NULL"))
    contact_id: Mapped[str | None] = mapped_column(String(NAME))  # the ACD contact it was filed from
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(300))
    address_id: Mapped[str | None] = mapped_column(String(100))
    zipcode: Mapped[str | None] = mapped_column(String(20))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    media_url: Mapped[str | None] = mapped_column(String(2000))
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    requester: Mapped[dict[str, Any]] = mapped_column(JsonDoc)  # Open311 account_id, device_id, ...
    token: Mapped[str | None] = mapped_column(String(64), unique=True)
    status_notes: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # response target runs out
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CaseEventRow(Base):
    """One change to a case, in order: created, acknowledged, status changes, notes, attachments."""

    __tablename__ = "case_history"
    __table_args__ = (Index("ix_case_history_case_id", "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc)


class CaseNoteRow(Base):
    __tablename__ = "case_notes"
    __table_args__ = (Index("ix_case_notes_case_id", "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(160))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CaseAttachmentRow(Base):
    """A photo kept under SWITCHBOARD_DATA_DIR/attachments; `path` is relative to that folder."""

    __tablename__ = "case_attachments"
    __table_args__ = (Index("ix_case_attachments_case_id", "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
