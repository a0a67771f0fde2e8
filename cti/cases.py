"""The case store: residents, service requests ("cases"), their lifecycle, notes, photos and history.

A case gets a reference number a person can read out over the phone, `SR-2026-000123`: the year it was
filed (site time zone) and its number within that year, handed out inside the filing transaction from
`case_sequences` with one upsert, so concurrent filings on PostgreSQL or SQLite never share or skip a
number. The request type (catalogue service) decides the owner department, the channels it may be taken
on and the response target; the expected response date counts business days on the site's calendar.

Lifecycle: new -> acknowledged -> in_progress -> pending_approval -> closed. Only a supervisor approves
closing (pending_approval -> closed), sends a closing back, or reopens a closed case. Every change is a
row in `case_history` written in the same transaction as the change itself. Bad input is refused before
anything is written: one `CaseInputError` names every bad field at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import threading
import uuid
from datetime import datetime, time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Sequence, cast

from sqlalchemy import Connection, Row, Select, Table, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from cti.business_days import BusinessCalendar
from cti.case_values import (  # re-exported: callers import the vocabulary from here too
    AGE_BUCKETS,
    Actor,
    AgeingRow,
    ApprovalRequired,
    Attachment,
    Case,
    CaseDetail,
    CaseDraft,
    CaseError,
    CaseInputError,
    CaseQuery,
    ChannelNotAllowed,
    HistoryEntry,
    InvalidTransition,
    Location,
    MAX_DESCRIPTION,
    MAX_NOTE,
    MAX_PHOTO_BYTES,
    Note,
    OPEN_STATUSES,
    PhotoRejected,
    REFERENCE_PREFIX,
    Resident,
    ResidentDraft,
    SUPERVISOR_MOVES,
    TRANSITIONS,
    UnknownCase,
    UnknownResident,
    UnknownService,
    as_utc,
    clean_text,
    format_reference,
    normalise_email,
    normalise_phone,
    parse_reference,
    safe_filename,
    sniff_photo,
    utcnow,
)
from cti.catalogue import CHANNELS, Catalogue, Service
from engine.store.db import Database
from engine.store.models import (
    CASE_STATUSES,
    CaseAttachmentRow,
    CaseEventRow,
    CaseNoteRow,
    CaseRow,
    CaseSequenceRow,
    ResidentContactRow,
    ResidentRow,
)

__all__ = [
    "AGE_BUCKETS",
    "Actor",
    "AgeingRow",
    "ApprovalRequired",
    "Attachment",
    "Case",
    "CaseDetail",
    "CaseDraft",
    "CaseError",
    "CaseInputError",
    "CaseQuery",
    "ChannelNotAllowed",
    "HistoryEntry",
    "InvalidTransition",
    "Location",
    "MAX_DESCRIPTION",
    "MAX_NOTE",
    "MAX_PHOTO_BYTES",
    "Note",
    "OPEN_STATUSES",
    "PhotoRejected",
    "REFERENCE_PREFIX",
    "Resident",
    "ResidentDraft",
    "SUPERVISOR_MOVES",
    "TRANSITIONS",
    "UnknownCase",
    "UnknownResident",
    "UnknownService",
    "as_utc",
    "clean_text",
    "format_reference",
    "normalise_email",
    "normalise_phone",
    "parse_reference",
    "safe_filename",
    "sniff_photo",
    "utcnow",
    "CaseStore",
    "DEFAULT_CATALOGUE",
    "catalogue_path",
    "for_app",
    "lifespan",
]

_residents = cast(Table, ResidentRow.__table__)
_contacts = cast(Table, ResidentContactRow.__table__)
_sequences = cast(Table, CaseSequenceRow.__table__)
_cases = cast(Table, CaseRow.__table__)
_history = cast(Table, CaseEventRow.__table__)
_notes = cast(Table, CaseNoteRow.__table__)
_attachments = cast(Table, CaseAttachmentRow.__table__)

# --- the store ---------------------------------------------------------------------------------------

class CaseStore:
    def __init__(self, db: Database, catalogue: Catalogue, calendar: BusinessCalendar, *,
                 attachments_dir: Path, clock: Callable[[], datetime] = utcnow,
                 max_photo_bytes: int = MAX_PHOTO_BYTES):
        self.db = db
        self.catalogue = catalogue
        self.calendar = calendar
        self.attachments_dir = Path(attachments_dir)
        self.clock = clock
        self.max_photo_bytes = max_photo_bytes

    # --- filing ----------------------------------------------------------------------------------

    def check(self, draft: CaseDraft) -> tuple[Service, dict[str, Any]]:
        """Validate a draft without touching the database: the service and the normalised attributes.

        Raises `UnknownService`, `ChannelNotAllowed` or `CaseInputError` naming every bad field."""
        service = self.catalogue.get(draft.service_code)
        if service is None:
            raise UnknownService([("service_code", f"unknown service code {draft.service_code!r}")])
        problems: list[tuple[str, str]] = []
        if draft.channel not in CHANNELS:
            problems.append(("channel", f"unknown channel {draft.channel!r} (one of: {', '.join(CHANNELS)})"))
        elif not service.takes(draft.channel):
            raise ChannelNotAllowed([("channel", (f"{service.name} requests are not taken by {draft.channel} "
                                                  f"(accepted: {', '.join(service.channels)})"))])
        problems += draft.location.problems()
        if (draft.location_required or service.needs_location) and not draft.location.given:
            problems.append(("location", "give lat and long, an address_string or an address_id"))
        if draft.description is not None and len(draft.description) > MAX_DESCRIPTION:
            problems.append(("description", f"must be at most {MAX_DESCRIPTION} characters"))
        if draft.on_behalf_of is not None and len(draft.on_behalf_of) > 200:
            problems.append(("on_behalf_of", "must be at most 200 characters"))
        if draft.on_behalf_role is not None and len(draft.on_behalf_role) > 40:
            problems.append(("on_behalf_role", "must be at most 40 characters"))
        if draft.on_behalf_role and not draft.on_behalf_of:
            problems.append(("on_behalf_of", "say who filed it when giving on_behalf_role"))
        if draft.contact_id is not None and len(draft.contact_id) > 100:
            problems.append(("contact_id", "must be at most 100 characters"))
        if draft.media_url is not None and (len(draft.media_url) > 2000 or
                                            not re.fullmatch(r"https?://\S+", draft.media_url)):
            problems.append(("media_url", "must be an http(s) URL of at most 2000 characters"))
        if draft.resident is not None:
            if draft.resident_id is not None:
                problems.append(("resident", "give resident_id or resident details, not both"))
            problems += draft.resident.problems()
        attributes, bad = service.check_attributes({k: list(v) for k, v in draft.attributes.items()})
        problems += [(f"attribute[{code}]", message) for code, message in bad]
        if problems:
            raise CaseInputError(problems)
        return service, attributes

    def create(self, draft: CaseDraft, actor: Actor) -> Case:
        """File a case: one transaction for the resident match, the reference number, the case and its
        first history entries; nothing is stored if any of it fails."""
        service, attributes = self.check(draft)
        now = self.clock()
        year = self.calendar.local_date(now).year
        expected = self.calendar.due_at(now, service.response_days)
        loc = draft.location
        with self.db.write() as conn:
            resident_id, matched = self._resolve_resident(conn, draft, now)
            number = self._next_number(conn, year)
            status = "acknowledged" if draft.acknowledge else "new"
            row = {
                "reference": format_reference(year, number), "service_code": service.code,
                "department": service.department, "status": status, "priority": service.priority,
                "channel": draft.channel, "source": draft.source, "filed_by": actor.label,
                "on_behalf_of": clean_text(draft.on_behalf_of), "on_behalf_role": clean_text(draft.on_behalf_role),
                "resident_id": resident_id, "contact_id": clean_text(draft.contact_id),
                "description": clean_text(draft.description), "address": clean_text(loc.address),
                "address_id": clean_text(loc.address_id), "zipcode": clean_text(loc.zipcode),
                "latitude": loc.lat, "longitude": loc.long, "media_url": clean_text(draft.media_url),
                "attributes": attributes, "requester": dict(draft.requester),
                "token": secrets.token_urlsafe(12) if draft.source == "open311" else None,
                "status_notes": None, "requested_at": now, "updated_at": now, "expected_at": expected,
                "acknowledged_at": now if draft.acknowledge else None, "closed_at": None,
            }
            case_id = conn.execute(insert(_cases).returning(_cases.c.id), row).scalar_one()
            created: dict[str, Any] = {"service_code": service.code, "channel": draft.channel, "source": draft.source,
                       "department": service.department}
            if row["on_behalf_of"]:
                created["on_behalf_of"] = row["on_behalf_of"]
                created["on_behalf_role"] = row["on_behalf_role"]
            if resident_id is not None:
                created["resident_id"] = resident_id
                created["resident_match"] = matched
            if row["contact_id"]:
                created["contact_id"] = row["contact_id"]
            self._log(conn, case_id, now, actor, "created", None, "new", created)
            if draft.acknowledge:
                self._log(conn, case_id, now, actor, "acknowledged", "new", "acknowledged",
                          {"expected_at": expected.isoformat(), "response_days": service.response_days})
            saved = conn.execute(select(_cases).where(_cases.c.id == case_id)).one()
        return self._case(saved)

    def _resolve_resident(self, conn: Connection, draft: CaseDraft, now: datetime) -> tuple[int | None, str]:
        """(resident id, how it was found): given by id, matched by e-mail/phone, created, or none."""
        if draft.resident_id is not None:
            if conn.execute(select(_residents.c.id).where(_residents.c.id == draft.resident_id)).first() is None:
                raise UnknownResident(f"no resident {draft.resident_id}")
            return draft.resident_id, "given"
        if draft.resident is None:
            return None, "none"
        found = self._match(conn, draft.resident)
        if found is not None:
            return found, "matched"  # an existing record is never changed by a filing
        return self._insert_resident(conn, draft.resident, now), "created"

    def _match(self, conn: Connection, r: ResidentDraft) -> int | None:
        keys = [("email", normalise_email(e)) for e in r.emails] + [("phone", normalise_phone(p)) for p in r.phones]
        for kind, value in keys:  # e-mail first: a phone is more often shared by a household
            hit = conn.execute(select(_contacts.c.resident_id)
                               .where(_contacts.c.kind == kind, _contacts.c.value == value)
                               .order_by(_contacts.c.resident_id).limit(1)).first()
            if hit is not None:
                return int(hit.resident_id)
        return None

    def _insert_resident(self, conn: Connection, r: ResidentDraft, now: datetime) -> int:
        new_id = conn.execute(insert(_residents).returning(_residents.c.id), {
            "first_name": clean_text(r.first_name), "last_name": clean_text(r.last_name), "address": clean_text(r.address),
            "language": clean_text(r.language), "created_at": now, "updated_at": now}).scalar_one()
        points: dict[tuple[str, str], str] = {}
        for phone in r.phones:
            points.setdefault(("phone", cast(str, normalise_phone(phone))), phone.strip())
        for email in r.emails:
            points.setdefault(("email", cast(str, normalise_email(email))), email.strip())
        if points:
            conn.execute(insert(_contacts), [{"resident_id": new_id, "kind": k, "value": v, "label": label[:40]}
                                             for (k, v), label in points.items()])
        return int(new_id)

    def _next_number(self, conn: Connection, year: int) -> int:
        """Take the year's next number. The upsert locks the year's row until commit, so a concurrent filing
        waits for this one and a rolled-back filing gives its number back: no duplicates and no gaps."""
        dialect = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = dialect(_sequences).values(year=year, last=1)
        stmt = stmt.on_conflict_do_update(index_elements=["year"], set_={"last": _sequences.c.last + 1})
        return int(conn.execute(stmt.returning(_sequences.c.last)).scalar_one())

    # --- residents -------------------------------------------------------------------------------

    def create_resident(self, draft: ResidentDraft) -> Resident:
        problems = draft.problems("")
        if problems:
            raise CaseInputError([(f.lstrip("."), m) for f, m in problems])
        now = self.clock()
        with self.db.write() as conn:
            new_id = self._insert_resident(conn, draft, now)
        resident = self.resident(new_id)
        assert resident is not None
        return resident

    def resident(self, resident_id: int) -> Resident | None:
        with self.db.read() as conn:
            row = conn.execute(select(_residents).where(_residents.c.id == resident_id)).first()
            return self._residents(conn, [row])[0] if row is not None else None

    def find_residents(self, *, phone: str | None = None, email: str | None = None, name: str | None = None,
                       limit: int = 50) -> list[Resident]:
        """Residents matching every criterion given: that phone, that e-mail (both normalised first), a name
        containing `name`."""
        conds = []
        for kind, raw, normalise, what in (("phone", phone, normalise_phone, "a phone number"),
                                           ("email", email, normalise_email, "an e-mail address")):
            if not raw:
                continue
            value = normalise(raw)
            if value is None:
                raise CaseInputError([(kind, f"{raw!r} is not {what}")])
            conds.append(_residents.c.id.in_(select(_contacts.c.resident_id)
                                             .where(_contacts.c.kind == kind, _contacts.c.value == value)))
        if name:
            literal = name.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{literal}%"
            full = func.lower(func.coalesce(_residents.c.first_name, "") + " " +
                              func.coalesce(_residents.c.last_name, ""))
            conds.append(full.like(pattern, escape="\\"))
        if not conds:
            raise CaseInputError([("query", "search by phone, email or name")])
        with self.db.read() as conn:
            rows = conn.execute(select(_residents).where(and_(*conds)).order_by(_residents.c.id).limit(limit)).all()
            return self._residents(conn, rows)

    def _residents(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[Resident]:
        ids = [r.id for r in rows]
        points: dict[int, dict[str, list[str]]] = {i: {"phone": [], "email": []} for i in ids}
        if ids:
            for c in conn.execute(select(_contacts).where(_contacts.c.resident_id.in_(ids)).order_by(_contacts.c.id)):
                points[c.resident_id][c.kind].append(c.value)
        return [Resident(int(r.id), r.first_name, r.last_name, tuple(points[r.id]["phone"]),
                         tuple(points[r.id]["email"]), r.address, r.language, as_utc(r.created_at)) for r in rows]

    # --- reading cases ---------------------------------------------------------------------------

    def get(self, reference: str) -> Case | None:
        ref = parse_reference(reference)
        if ref is None:
            return None
        with self.db.read() as conn:
            row = conn.execute(select(_cases).where(_cases.c.reference == ref)).first()
        return self._case(row) if row is not None else None

    def by_token(self, token: str) -> Case | None:
        with self.db.read() as conn:
            row = conn.execute(select(_cases).where(_cases.c.token == token)).first()
        return self._case(row) if row is not None else None

    def detail(self, reference: str) -> CaseDetail:
        ref = parse_reference(reference)
        with self.db.read() as conn:
            row = conn.execute(select(_cases).where(_cases.c.reference == ref)).first() if ref else None
            if row is None:
                raise UnknownCase(f"no case {reference!r}")
            resident = None
            if row.resident_id is not None:
                r = conn.execute(select(_residents).where(_residents.c.id == row.resident_id)).first()
                resident = self._residents(conn, [r])[0] if r is not None else None
            notes = tuple(Note(int(n.id), n.author, n.body, as_utc(n.created_at)) for n in conn.execute(
                select(_notes).where(_notes.c.case_id == row.id).order_by(_notes.c.id)))
            attachments = tuple(_attachment(a) for a in conn.execute(
                select(_attachments).where(_attachments.c.case_id == row.id).order_by(_attachments.c.id)))
            history = tuple(HistoryEntry(int(h.id), as_utc(h.at), h.actor, h.action, h.from_status, h.to_status,
                                         dict(h.detail or {})) for h in conn.execute(
                select(_history).where(_history.c.case_id == row.id).order_by(_history.c.id)))
        return CaseDetail(self._case(row), resident, notes, attachments, history)

    def search(self, query: CaseQuery = CaseQuery(), *, limit: int = 50,
               offset: int = 0) -> tuple[list[Case], int]:
        """Cases matching `query`, newest first, and how many match in all."""
        base = self._filtered(select(_cases), query)
        with self.db.read() as conn:
            total = conn.execute(select(func.count()).select_from(base.subquery())).scalar_one()
            rows = conn.execute(base.order_by(_cases.c.requested_at.desc(), _cases.c.id.desc())
                                .limit(limit).offset(offset)).all()
        return [self._case(r) for r in rows], int(total)

    def cases_of(self, resident_ids: Sequence[int], *, open_only: bool = True,
                 limit: int = 100) -> dict[int, list[Case]]:
        """Each resident's cases, newest first (the screen-pop's "open cases"), in one query."""
        out: dict[int, list[Case]] = {i: [] for i in resident_ids}
        if not resident_ids:
            return out
        q = select(_cases).where(_cases.c.resident_id.in_(list(resident_ids)))
        if open_only:
            q = q.where(_cases.c.status != "closed")
        with self.db.read() as conn:
            for row in conn.execute(q.order_by(_cases.c.requested_at.desc(), _cases.c.id.desc())):
                if len(out[row.resident_id]) < limit:
                    out[row.resident_id].append(self._case(row))
        return out

    def _filtered(self, q: Select[Any], query: CaseQuery) -> Select[Any]:
        if query.references:
            refs = [r for r in (parse_reference(x) for x in query.references) if r]
            q = q.where(_cases.c.reference.in_(refs))
        if query.statuses:
            q = q.where(_cases.c.status.in_(query.statuses))
        if query.service_codes:
            q = q.where(_cases.c.service_code.in_(query.service_codes))
        if query.department:
            q = q.where(_cases.c.department == query.department)
        if query.channel:
            q = q.where(_cases.c.channel == query.channel)
        if query.source:
            q = q.where(_cases.c.source == query.source)
        if query.resident_id is not None:
            q = q.where(_cases.c.resident_id == query.resident_id)
        if query.requested_from is not None:
            q = q.where(_cases.c.requested_at >= as_utc(query.requested_from))
        if query.requested_to is not None:
            q = q.where(_cases.c.requested_at <= as_utc(query.requested_to))
        if query.overdue is not None:
            late = and_(_cases.c.status != "closed", _cases.c.expected_at < self.clock())
            q = q.where(late if query.overdue else ~late)
        return q

    # --- changing cases --------------------------------------------------------------------------

    def change_status(self, reference: str, to: str, actor: Actor, note: str | None = None) -> Case:
        if to not in CASE_STATUSES:
            raise CaseInputError([("status", f"unknown status {to!r} (one of: {', '.join(CASE_STATUSES)})")])
        note = clean_text(note)
        if note is not None and len(note) > MAX_NOTE:
            raise CaseInputError([("note", f"must be at most {MAX_NOTE} characters")])
        now = self.clock()
        with self.db.write() as conn:
            row = self._lock(conn, reference)
            current = row.status
            if to == current or to not in TRANSITIONS[current]:
                allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
                raise InvalidTransition(f"case {row.reference} is {current}: it cannot move to {to} "
                                        f"(next: {allowed})")
            if (current, to) in SUPERVISOR_MOVES and not actor.is_supervisor:
                what = {"closed": "approve closing", "in_progress": "send a case back or reopen it"}[to]
                raise ApprovalRequired(f"only a supervisor may {what} ({row.reference} is {current})")
            values: dict[str, Any] = {"status": to, "updated_at": now, "status_notes": note}
            if to == "acknowledged":
                values["acknowledged_at"] = now
            values["closed_at"] = now if to == "closed" else None
            conn.execute(update(_cases).where(_cases.c.id == row.id).values(**values))
            detail: dict[str, Any] = {"note": note} if note else {}
            action = "reopened" if current == "closed" else "status"
            self._log(conn, row.id, now, actor, action, current, to, detail)
            saved = conn.execute(select(_cases).where(_cases.c.id == row.id)).one()
        return self._case(saved)

    def add_note(self, reference: str, body: str, actor: Actor) -> Note:
        text = body.strip()
        if not text or len(text) > MAX_NOTE:
            raise CaseInputError([("body", f"a note needs 1 to {MAX_NOTE} characters")])
        now = self.clock()
        with self.db.write() as conn:
            row = self._lock(conn, reference)
            note_id = conn.execute(insert(_notes).returning(_notes.c.id), {
                "case_id": row.id, "author": actor.label, "body": text, "created_at": now}).scalar_one()
            conn.execute(update(_cases).where(_cases.c.id == row.id).values(updated_at=now))
            self._log(conn, row.id, now, actor, "note", None, None, {"note_id": int(note_id)})
        return Note(int(note_id), actor.label, text, now)

    def attach_photo(self, reference: str, filename: str, data: bytes, actor: Actor) -> Attachment:
        """Keep a photo with the case. The bytes decide the type; the file is written (and synced) before
        the row that points at it is committed, and removed again if the commit fails."""
        if not data:
            raise PhotoRejected(422, "the file is empty")
        if len(data) > self.max_photo_bytes:
            raise PhotoRejected(413, f"photos may be at most {self.max_photo_bytes} bytes, this one has {len(data)}")
        kind = sniff_photo(data)
        if kind is None:
            raise PhotoRejected(415, "not a photo: send JPEG, PNG, GIF, WebP or HEIC")
        content_type, ext = kind
        name = safe_filename(filename) or f"photo{ext}"
        case = self.get(reference)
        if case is None:
            raise UnknownCase(f"no case {reference!r}")
        relative = f"{case.reference}/{uuid.uuid4().hex}{ext}"
        target = self.attachments_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        digest = hashlib.sha256(data).hexdigest()
        now = self.clock()
        try:
            with self.db.write() as conn:
                row = self._lock(conn, case.reference)
                att_id = conn.execute(insert(_attachments).returning(_attachments.c.id), {
                    "case_id": row.id, "filename": name, "path": relative, "content_type": content_type,
                    "size": len(data), "sha256": digest, "uploaded_by": actor.label,
                    "created_at": now}).scalar_one()
                conn.execute(update(_cases).where(_cases.c.id == row.id).values(updated_at=now))
                self._log(conn, row.id, now, actor, "attachment", None, None,
                          {"attachment_id": int(att_id), "filename": name, "size": len(data)})
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return Attachment(int(att_id), name, content_type, len(data), digest, actor.label, now, relative)

    def attachment(self, reference: str, attachment_id: int) -> tuple[Attachment, Path]:
        ref = parse_reference(reference)
        with self.db.read() as conn:
            row = conn.execute(select(_attachments).join(_cases, _cases.c.id == _attachments.c.case_id)
                               .where(_cases.c.reference == ref, _attachments.c.id == attachment_id)).first()
        if row is None:
            raise UnknownCase(f"case {reference!r} has no attachment {attachment_id}")
        return _attachment(row), self.attachments_dir / row.path

    def _lock(self, conn: Connection, reference: str) -> Row[Any]:
        """The case's row, locked for this transaction on PostgreSQL (SQLite's writer lock already is)."""
        ref = parse_reference(reference)
        row = conn.execute(select(_cases).where(_cases.c.reference == ref).with_for_update()).first() \
            if ref else None
        if row is None:
            raise UnknownCase(f"no case {reference!r}")
        return row

    def _log(self, conn: Connection, case_id: int, at: datetime, actor: Actor, action: str,
             from_status: str | None, to_status: str | None, detail: dict[str, Any]) -> None:
        conn.execute(insert(_history), {"case_id": case_id, "at": at, "actor": actor.label, "action": action,
                                        "from_status": from_status, "to_status": to_status, "detail": detail})

    # --- reports ---------------------------------------------------------------------------------

    def ageing(self, *, department: str | None = None, now: datetime | None = None) -> list[AgeingRow]:
        """Open cases by department and request type: how many, how long open (business days), how many
        past their expected response date."""
        now = now or self.clock()
        q = select(_cases.c.department, _cases.c.service_code, _cases.c.status, _cases.c.requested_at,
                   _cases.c.expected_at).where(_cases.c.status != "closed")
        if department:
            q = q.where(_cases.c.department == department)
        groups: dict[tuple[str, str], list[tuple[str, int, bool]]] = {}
        with self.db.read() as conn:
            for r in conn.execute(q):
                age = self.calendar.age(as_utc(r.requested_at), now)
                groups.setdefault((r.department, r.service_code), []).append(
                    (r.status, age, as_utc(r.expected_at) < now))
        out = []
        for (dept, code), items in sorted(groups.items()):
            service = self.catalogue.get(code)
            by_status = {s: sum(1 for st, _, _ in items if st == s) for s in OPEN_STATUSES}
            buckets = {label: sum(1 for _, age, _ in items if age >= lo and (hi is None or age <= hi))
                       for label, lo, hi in AGE_BUCKETS}
            ages = [age for _, age, _ in items]
            out.append(AgeingRow(dept, self.catalogue.department_name(dept), code,
                                 service.name if service else code, len(items), by_status, buckets,
                                 sum(1 for *_, late in items if late), max(ages), round(sum(ages) / len(ages), 2)))
        return out

    # --- rows -> values --------------------------------------------------------------------------

    def _case(self, r: Row[Any]) -> Case:
        service = self.catalogue.get(r.service_code)
        expected = as_utc(r.expected_at)
        notice = None
        if service is not None:
            due = expected.astimezone(self.calendar.tz)
            notice = f"{service.notice + ' ' if service.notice else ''}Expected response by " \
                     f"{due:%A %B} {due.day}, {due.year}."
        return Case(
            id=int(r.id), reference=r.reference, service_code=r.service_code,
            service_name=service.name if service else r.service_code, department=r.department,
            department_name=self.catalogue.department_name(r.department), status=r.status, priority=r.priority,
            channel=r.channel, source=r.source, filed_by=r.filed_by, on_behalf_of=r.on_behalf_of,
            on_behalf_role=r.on_behalf_role, resident_id=r.resident_id, contact_id=r.contact_id,
            description=r.description,
            location=Location(r.address, r.address_id, r.zipcode, r.latitude, r.longitude),
            media_url=r.media_url, attributes=dict(r.attributes or {}), requester=dict(r.requester or {}),
            token=r.token, status_notes=r.status_notes, service_notice=notice,
            requested_at=as_utc(r.requested_at), updated_at=as_utc(r.updated_at), expected_at=expected,
            acknowledged_at=as_utc(r.acknowledged_at) if r.acknowledged_at else None,
            closed_at=as_utc(r.closed_at) if r.closed_at else None)


def _attachment(r: Row[Any]) -> Attachment:
    return Attachment(int(r.id), r.filename, r.content_type, int(r.size), r.sha256, r.uploaded_by,
                      as_utc(r.created_at), r.path)


# --- assembly ----------------------------------------------------------------------------------------

_build_lock = threading.Lock()
DEFAULT_CATALOGUE = Path(__file__).resolve().parents[1] / "config" / "services.yaml"


def catalogue_path(site_file: Path) -> Path:
    """`services.yaml` next to the site file, else the catalogue shipped in `config/`."""
    beside = Path(site_file).parent / "services.yaml"
    return beside if beside.exists() else DEFAULT_CATALOGUE


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Router lifespan: build the case store when the application starts, so a broken catalogue stops the
    start with its file:line message instead of failing the first request."""
    for_app(app.state)
    yield


def for_app(state: Any) -> CaseStore:
    """The application's case store, built once from its store, site file and settings (`app.state`)."""
    existing = getattr(state, "cases", None)
    if isinstance(existing, CaseStore):
        return existing
    with _build_lock:
        existing = getattr(state, "cases", None)
        if isinstance(existing, CaseStore):
            return existing
        site = state.site
        hours: Iterable[Any] = (r for day in ("mon", "tue", "wed", "thu", "fri")
                                for r in site.engine.business_hours.get(day, []))
        closes = max((end for _start, end in hours), default="17:00")
        calendar = BusinessCalendar(site.engine.site.holidays, tz=site.engine.site.timezone,
                                    day_ends=time.fromisoformat(closes))
        catalogue = Catalogue.load(catalogue_path(site.path))
        store = CaseStore(state.store.db, catalogue, calendar,
                          attachments_dir=Path(state.settings.data_dir) / "attachments")
        state.cases = store
        return store


