"""Case store: residents and their phones/e-mails, cases (service requests) with yearly reference numbers,
their history, notes and photo attachments.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copies of the model types (a revision must not change when models.py does)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
NAME = 100
WHO = 160


def upgrade() -> None:
    op.create_table(
        "residents",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("first_name", sa.String(100), nullable=True),
        sa.Column("last_name", sa.String(100), nullable=True),
        sa.Column("address", sa.String(300), nullable=True),
        sa.Column("language", sa.String(20), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )

    op.create_table(
        "resident_contacts",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("resident_id", BIG_ID, sa.ForeignKey("residents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("label", sa.String(40), nullable=True),
        sa.UniqueConstraint("resident_id", "kind", "value", name="uq_resident_contacts"),
        sa.CheckConstraint("kind IN ('phone', 'email')", name="ck_resident_contacts_kind"),
    )
    op.create_index("ix_resident_contacts_kind_value", "resident_contacts", ["kind", "value"])

    op.create_table(
        "case_sequences",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last", sa.Integer(), nullable=False),
    )

    op.create_table(
        "cases",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("reference", sa.String(20), nullable=False, unique=True),
        sa.Column("service_code", sa.String(NAME), nullable=False),
        sa.Column("department", sa.String(NAME), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("filed_by", sa.String(WHO), nullable=False),
        sa.Column("on_behalf_of", sa.String(200), nullable=True),
        sa.Column("on_behalf_role", sa.String(40), nullable=True),
        sa.Column("resident_id", BIG_ID, sa.ForeignKey("residents.id", ondelete="SET NULL"), nullable=True),
        sa.Column("contact_id", sa.String(NAME), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("address", sa.String(300), nullable=True),
        sa.Column("address_id", sa.String(100), nullable=True),
        sa.Column("zipcode", sa.String(20), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("media_url", sa.String(2000), nullable=True),
        sa.Column("attributes", JSON_DOC, nullable=False),
        sa.Column("requester", JSON_DOC, nullable=False),
        sa.Column("token", sa.String(64), nullable=True, unique=True),
        sa.Column("status_notes", sa.Text(), nullable=True),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("expected_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.CheckConstraint("status IN ('new', 'acknowledged', 'in_progress', 'pending_approval', 'closed')",
                           name="ck_cases_status"),
        sa.CheckConstraint("latitude IS NULL OR (latitude BETWEEN -90 AND 90)", name="ck_cases_latitude"),
        sa.CheckConstraint("longitude IS NULL OR (longitude BETWEEN -180 AND 180)", name="ck_cases_longitude"),
    )
    op.create_index("ix_cases_status_department", "cases", ["status", "department", "service_code"])
    op.create_index("ix_cases_requested_at", "cases", ["requested_at"])
    op.create_index("ix_cases_resident_status", "cases", ["resident_id", "status"])

    op.create_table(
        "case_history",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("case_id", BIG_ID, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(WHO), nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=True),
        sa.Column("detail", JSON_DOC, nullable=False),
    )
    op.create_index("ix_case_history_case_id", "case_history", ["case_id", "id"])

    op.create_table(
        "case_notes",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("case_id", BIG_ID, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("author", sa.String(WHO), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_case_notes_case_id", "case_notes", ["case_id", "id"])

    op.create_table(
        "case_attachments",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("case_id", BIG_ID, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.String(WHO), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_case_attachments_case_id", "case_attachments", ["case_id", "id"])


def downgrade() -> None:
    for table in ("case_attachments", "case_notes", "case_history", "cases", "case_sequences",
                  "resident_contacts", "residents"):
        op.drop_table(table)
