"""The journal: core events in global order, the contact rows derived from them, and snapshots.

`append` writes a batch of events and everything derived from it in one transaction, so after a crash
the store holds a prefix of whole batches; recovery is `Router.replay(center, events)` over
`load_events()` (or a snapshot plus the tail after its seq).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence, cast

from sqlalchemy import Connection, Select, Table, bindparam, delete, func, insert, select, update

from acd.events import CallbackScheduled, ContactQueued, Event, from_dict, to_dict
from engine.store.db import Database, upsert
from engine.store.models import AgentStateChange, ContactRow, JournalEntry, Snapshot
from engine.store.projection import agent_change, fold_contact, journal_keys

_journal = cast(Table, JournalEntry.__table__)
_contacts = cast(Table, ContactRow.__table__)
_history = cast(Table, AgentStateChange.__table__)
_snapshots = cast(Table, Snapshot.__table__)

_CONTACT_COLUMNS = tuple(c.name for c in _contacts.columns)
_IN_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """A contact's current state as stored (see `models.ContactRow`)."""

    id: str
    queue: str
    channel: str
    state: str
    priority: int
    enqueued_at: float
    agent: str | None
    attributes: dict[str, Any]
    schedule_at: float | None
    answered_at: float | None
    ended_at: float | None
    wrap_up_code: str | None
    first_seq: int
    last_seq: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ContactPage:
    items: list[ContactRecord]
    next_after: int | None  # pass as `after` for the next page; None when this is the last one


class Journal:
    def __init__(self, db: Database):
        self.db = db

    # -- writing --------------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> list[int]:
        """Journal `events` and update the rows derived from them, all in one transaction.

        Returns their seq numbers in order. Raises `StoreUnavailable` (nothing written) if the
        database is away."""
        return self.append_many([events])[0]

    def append_many(self, batches: Sequence[Sequence[Event]]) -> list[list[int]]:
        """Several commands' events, in order, in one transaction (group commit: one disk flush for
        all of them); all are written or none. Returns each batch's seq numbers."""
        flat = [e for batch in batches for e in batch]
        if not flat:
            return [[] for _ in batches]
        now = datetime.now(timezone.utc)
        entries = []
        for e in flat:
            contact, agent = journal_keys(e)
            entries.append({"type": e.kind, "contact": contact, "agent": agent, "t": e.t,
                            "payload": to_dict(e), "recorded_at": now})
        with self.db.write(journal=True) as conn:
            seqs = list(conn.execute(
                insert(_journal).returning(_journal.c.seq, sort_by_parameter_order=True), entries).scalars())
            self._derive(conn, list(zip(seqs, flat, strict=True)))
        out, i = [], 0
        for batch in batches:
            out.append(seqs[i:i + len(batch)])
            i += len(batch)
        return out

    def _derive(self, conn: Connection, batch: list[tuple[int, Event]]) -> None:
        created = {e.contact for _, e in batch if isinstance(e, (ContactQueued, CallbackScheduled))}
        touched = {cid for _, e in batch if (cid := getattr(e, "contact", None)) is not None}
        existing = _load_rows(conn, touched - created)  # a new contact's row is built from its event
        rows = {cid: dict(row) for cid, row in existing.items()}
        changed: dict[str, None] = {}  # ordered set
        history = []
        for seq, e in batch:
            cid = fold_contact(rows, seq, e)
            if cid is not None:
                changed[cid] = None
            change = agent_change(seq, e)
            if change is not None:
                history.append(change)
        new = [rows[cid] for cid in changed if cid not in existing]
        old = [{f"b_{k}": v for k, v in rows[cid].items()} for cid in changed if cid in existing]
        if new:
            upsert(conn, _contacts, new, ("id",))
        if old:
            conn.execute(
                update(_contacts).where(_contacts.c.id == bindparam("b_id")).values(
                    {name: bindparam(f"b_{name}") for name in _CONTACT_COLUMNS if name != "id"}),
                old)
        if history:
            conn.execute(insert(_history), history)

    # -- reading the journal ---------------------------------------------------------------------
    def load_events(self, after_seq: int = 0, *, batch: int = 5000) -> Iterator[tuple[int, Event]]:
        """Every event after `after_seq`, in seq order, read in pages of `batch` (short transactions)."""
        last = after_seq
        while True:
            with self.db.read() as conn:
                page = conn.execute(
                    select(_journal.c.seq, _journal.c.payload).where(_journal.c.seq > last)
                    .order_by(_journal.c.seq).limit(batch)).all()
            for seq, payload in page:
                yield seq, from_dict(payload)
            if len(page) < batch:
                return
            last = page[-1][0]

    def events_for_contact(self, contact: str) -> list[tuple[int, Event]]:
        with self.db.read() as conn:
            rows = conn.execute(select(_journal.c.seq, _journal.c.payload)
                                .where(_journal.c.contact == contact).order_by(_journal.c.seq)).all()
        return [(seq, from_dict(payload)) for seq, payload in rows]

    def last_seq(self) -> int:
        """The newest entry's seq, 0 for an empty journal."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(_journal.c.seq), 0))).scalar_one())

    def count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(_journal)).scalar_one())

    # -- snapshots -------------------------------------------------------------------------------
    def write_snapshot(self, seq: int, payload: dict[str, Any], *, keep: int = 3) -> None:
        """Store router state as of entry `seq` (JSON-able `payload`); keep only the newest `keep`."""
        with self.db.write() as conn:
            conn.execute(delete(_snapshots).where(_snapshots.c.seq == seq))
            conn.execute(insert(_snapshots), {"seq": seq, "payload": payload,
                                              "created_at": datetime.now(timezone.utc)})
            kept = select(_snapshots.c.seq).order_by(_snapshots.c.seq.desc()).limit(keep).subquery()
            floor = conn.execute(select(func.min(kept.c.seq))).scalar()
            if floor is not None:
                conn.execute(delete(_snapshots).where(_snapshots.c.seq < floor))

    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        """(seq, payload) of the newest snapshot, or None."""
        with self.db.read() as conn:
            row = conn.execute(select(_snapshots.c.seq, _snapshots.c.payload)
                               .order_by(_snapshots.c.seq.desc()).limit(1)).first()
        return (int(row[0]), row[1]) if row is not None else None

    # -- contacts (current state) ----------------------------------------------------------------
    def get_contact(self, contact: str) -> ContactRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(_contacts).where(_contacts.c.id == contact)).mappings().first()
        return ContactRecord(**row) if row is not None else None

    def list_contacts(self, *, queue: str | None = None, state: str | Iterable[str] | None = None,
                      channel: str | None = None, limit: int = 100, after: int | None = None,
                      offset: int = 0) -> ContactPage:
        """Contacts in arrival order, filtered. Page with `after=page.next_after` (keyset, stable while
        contacts change) or with `offset`."""
        query = _filtered(select(_contacts), queue, state, channel).order_by(_contacts.c.first_seq)
        if after is not None:
            query = query.where(_contacts.c.first_seq > after)
        query = query.limit(limit + 1).offset(offset)
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        items = [ContactRecord(**r) for r in rows[:limit]]
        return ContactPage(items, items[-1].first_seq if len(rows) > limit and items else None)

    def count_contacts(self, *, queue: str | None = None, state: str | Iterable[str] | None = None,
                       channel: str | None = None) -> int:
        query = _filtered(select(func.count()).select_from(_contacts), queue, state, channel)
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def agent_history(self, agent: str) -> list[dict[str, Any]]:
        """The agent's presence changes, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(select(_history).where(_history.c.agent == agent)
                                .order_by(_history.c.seq, _history.c.id)).mappings().all()
        return [dict(r) for r in rows]


def _filtered(query: Select[Any], queue: str | None, state: str | Iterable[str] | None,
              channel: str | None) -> Select[Any]:
    if queue is not None:
        query = query.where(_contacts.c.queue == queue)
    if state is not None:
        query = query.where(_contacts.c.state.in_([state] if isinstance(state, str) else list(state)))
    if channel is not None:
        query = query.where(_contacts.c.channel == channel)
    return query


def _load_rows(conn: Connection, ids: set[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if not ids:
        return found
    ordered = sorted(ids)
    for i in range(0, len(ordered), _IN_CHUNK):
        chunk = ordered[i:i + _IN_CHUNK]
        for row in conn.execute(select(_contacts).where(_contacts.c.id.in_(chunk))).mappings():
            found[row["id"]] = row
    return found
