"""The builtin connector: Switchboard's own case store (`cti/cases.py`) behind the `Connector` interface.

The store is synchronous SQLAlchemy; its calls run in a worker thread so a lookup never blocks the event
loop that carries offers. Person ids are resident ids, case ids are SR references.
"""

from __future__ import annotations

import asyncio

from cti.cases import (
    MAX_NOTE,
    Actor,
    Case,
    CaseDraft,
    CaseError,
    CaseInputError,
    CaseStore,
    Location,
    Resident,
    ResidentDraft,
    UnknownCase,
)
from cti.connectors.base import CaseInput, CaseUpdate, CrmCase, CrmRejected, Person

ACD_TO_CASE_CHANNEL = {"callback": "voice", "work_item": "web"}  # the rest share a name


def person_of(r: Resident) -> Person:
    return Person(id=str(r.id), name=r.name or "(no name)", phones=r.phones, emails=r.emails,
                  address=r.address, language=r.language, url=f"/api/v1/residents/{r.id}")


def case_of(c: Case) -> CrmCase:
    return CrmCase(id=c.reference, reference=c.reference, title=c.service_name, status=c.status,
                   opened_at=c.requested_at, department=c.department_name, url=f"/api/v1/cases/{c.reference}")


class BuiltinConnector:
    name = "builtin"

    def __init__(self, store: CaseStore):
        self.store = store

    async def lookup(self, *, phone: str | None = None, email: str | None = None) -> list[Person]:
        if not phone and not email:
            return []
        found: dict[int, Resident] = {}
        for kind, value in (("phone", phone), ("email", email)):
            if not value:
                continue
            try:
                rows = await asyncio.to_thread(self.store.find_residents, **{kind: value}, limit=20)
            except CaseInputError:
                continue  # an anonymous or odd caller id is simply no match
            for r in rows:
                found.setdefault(r.id, r)
        return [person_of(r) for r in found.values()]

    async def open_cases(self, person_id: str, *, limit: int = 20) -> list[CrmCase]:
        if not person_id.isdigit():
            raise CrmRejected(f"{person_id!r} is not a resident id")
        rid = int(person_id)
        cases = await asyncio.to_thread(self.store.cases_of, [rid], open_only=True, limit=limit)
        return [case_of(c) for c in cases.get(rid, [])]

    async def create_case(self, case: CaseInput) -> CrmCase:
        resident = None
        resident_id = int(case.person_id) if case.person_id and case.person_id.isdigit() else None
        if resident_id is None and (case.phone or case.email or case.first_name or case.last_name):
            resident = ResidentDraft(first_name=case.first_name, last_name=case.last_name,
                                     phones=(case.phone,) if case.phone else (),
                                     emails=(case.email,) if case.email else (), address=case.address)
        draft = CaseDraft(service_code=case.service_code, channel=ACD_TO_CASE_CHANNEL.get(case.channel, case.channel),
                          description=case.description, resident_id=resident_id, resident=resident,
                          location=Location(address=case.location, lat=case.lat, long=case.long),
                          contact_id=case.contact_id,
                          attributes={k: [str(v)] for k, v in case.attributes.items()}, source="desk")
        try:
            created = await asyncio.to_thread(self.store.create, draft, Actor(case.filed_by or "desk"))
        except CaseError as exc:
            raise CrmRejected(str(exc)) from exc
        return case_of(created)

    async def update_case(self, case_id: str, update: CaseUpdate) -> CrmCase:
        actor = Actor(update.filed_by or "desk")
        note = update.note.strip() if update.note else None
        if note is not None and len(note) > MAX_NOTE:
            raise CrmRejected(f"note: must be at most {MAX_NOTE} characters")
        try:
            # the status first: a refused move then leaves no orphan note behind
            if update.status:
                await asyncio.to_thread(self.store.change_status, case_id, update.status, actor)
            if note:
                await asyncio.to_thread(self.store.add_note, case_id, note, actor)
            current = await asyncio.to_thread(self.store.get, case_id)
        except CaseError as exc:
            raise CrmRejected(str(exc)) from exc
        if current is None:
            raise CrmRejected(str(UnknownCase(f"no case {case_id!r}")))
        return case_of(current)

    async def close(self) -> None:
        return None
