"""Initial schema: journal, contacts, agent state history, snapshots, interval stats, users, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copies of the model types (a revision must not change when models.py does)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
NAME = 100


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("seq", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("contact", sa.String(NAME), nullable=True),
        sa.Column("agent", sa.String(NAME), nullable=True),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_journal_contact_seq", "journal", ["contact", "seq"])
    op.create_index("ix_journal_agent_seq", "journal", ["agent", "seq"])

    op.create_table(
        "contacts",
        sa.Column("id", sa.String(NAME), primary_key=True),
        sa.Column("queue", sa.String(NAME), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", sa.Float(), nullable=False),
        sa.Column("agent", sa.String(NAME), nullable=True),
        sa.Column("attributes", JSON_DOC, nullable=False),
        sa.Column("schedule_at", sa.Float(), nullable=True),
        sa.Column("answered_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("wrap_up_code", sa.String(NAME), nullable=True),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_contacts_state_queue", "contacts", ["state", "queue"])
    op.create_index("ix_contacts_first_seq", "contacts", ["first_seq"])

    op.create_table(
        "agent_state_history",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("agent", sa.String(NAME), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(NAME), nullable=True),
        sa.Column("t", sa.Float(), nullable=False),
    )
    op.create_index("ix_agent_state_history_agent_t", "agent_state_history", ["agent", "t"])

    op.create_table(
        "snapshots",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )

    op.create_table(
        "interval_stats",
        sa.Column("queue", sa.String(NAME), primary_key=True),
        sa.Column("interval_start", sa.Float(), primary_key=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in (
            "offered", "answered", "answered_within", "abandoned", "abandoned_after", "short_abandoned")],
        sa.Column("answer_wait_s", sa.Float(), nullable=False),
        sa.Column("abandon_wait_s", sa.Float(), nullable=False),
        sa.Column("handled", sa.Integer(), nullable=False),
        sa.Column("talk_s", sa.Float(), nullable=False),
        sa.Column("hold_s", sa.Float(), nullable=False),
        sa.Column("wrap_s", sa.Float(), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("ronas", sa.Integer(), nullable=False),
        sa.Column("occupancy", sa.Float(), nullable=True),
        sa.Column("report", JSON_DOC, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(150), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.String(NAME), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name="ck_users_role"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(150), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("api_keys", "users", "interval_stats", "snapshots", "agent_state_history", "contacts",
                  "journal"):
        op.drop_table(table)
