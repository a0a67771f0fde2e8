"""Cases (service requests) and residents for agents and supervisors, under /api/v1.

An agent files a case for a resident from the contact in hand (the contact's channel is the case's
channel, and the catalogue says whether that request type is taken on it), reads it back with its notes,
photos and full history, adds notes and photos, and moves it along new -> acknowledged -> in_progress ->
pending_approval; a supervisor approves the closing. Residents are found by phone or e-mail. Supervisors
read the ageing report by department and request type.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Iterator

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from cti.cases import (
    OPEN_STATUSES,
    Actor,
    ApprovalRequired,
    Attachment,
    Case,
    CaseDetail,
    CaseDraft,
    CaseError,
    CaseInputError,
    CaseQuery,
    CaseStore,
    InvalidTransition,
    Location,
    PhotoRejected,
    Resident,
    ResidentDraft,
    UnknownCase,
    UnknownResident,
    for_app,
    lifespan,
    normalise_phone,
    parse_reference,
)
from cti.catalogue import CHANNELS
from engine.api.deps import Page, RowId, agent_user, supervisor
from engine.api.problems import ApiProblem
from engine.auth import Principal

router = APIRouter(tags=["cases"], lifespan=lifespan)

# ACD channel -> case channel (a work item says nothing about how the resident reached us)
_CONTACT_CHANNEL = {"voice": "voice", "callback": "voice", "chat": "chat", "email": "email", "sms": "sms"}


def cases(request: Request) -> CaseStore:
    return for_app(request.app.state)


def actor(p: Principal) -> Actor:
    return Actor(p.username, "user", p.role)


@contextlib.contextmanager
def refusals(prefix: str = "body") -> Iterator[None]:
    """The case store's refusals as RFC 9457 problems."""
    try:
        yield
    except CaseInputError as e:
        title = {"unknown-service": "Unknown service", "channel-not-allowed": "Channel not allowed"}.get(
            e.code, "Invalid request")
        raise ApiProblem(422, e.code if e.code != "invalid-case" else "validation-error", title, str(e),
                         errors=[{"field": ".".join(part for part in (prefix, f) if part), "message": m}
                                 for f, m in e.problems]) from None
    except UnknownResident as e:
        raise ApiProblem(422 if prefix == "body" else 404, e.code, "Unknown resident", str(e)) from None
    except UnknownCase as e:
        raise ApiProblem(404, e.code, "Unknown case", str(e)) from None
    except InvalidTransition as e:
        raise ApiProblem(409, e.code, "Invalid status change", str(e)) from None
    except ApprovalRequired as e:
        raise ApiProblem(403, e.code, "Supervisor approval required", str(e)) from None
    except PhotoRejected as e:
        titles = {413: "Photo too large", 415: "Not a photo"}
        raise ApiProblem(e.status, e.code, titles.get(e.status, "Photo refused"), str(e)) from None
    except CaseError as e:  # pragma: no cover - every subclass is mapped above
        raise ApiProblem(400, e.code, "Case refused", str(e)) from None


# --- bodies ------------------------------------------------------------------------------------------

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LocationIn(_Body):
    address: str | None = Field(default=None, max_length=300)
    address_id: str | None = Field(default=None, max_length=100)
    zipcode: str | None = Field(default=None, max_length=20)
    lat: float | None = None
    long: float | None = None


class ResidentIn(_Body):
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phones: list[str] = Field(default_factory=list, max_length=5)
    emails: list[str] = Field(default_factory=list, max_length=5)
    address: str | None = Field(default=None, max_length=300)
    language: str | None = Field(default=None, max_length=20)

    def draft(self, extra_phone: str | None = None) -> ResidentDraft:
        phones = list(self.phones)
        if extra_phone and not phones:
            phones.append(extra_phone)
        return ResidentDraft(self.first_name, self.last_name, tuple(phones), tuple(self.emails), self.address,
                             self.language)


class OnBehalfIn(_Body):
    name: str = Field(min_length=1, max_length=200, description="who filed it, e.g. Cllr. Jane Roe, Ward 3")
    role: str | None = Field(default=None, max_length=40, description="councillor, family, caregiver, ...")


class CaseCreate(_Body):
    service_code: str = Field(min_length=1, max_length=64)
    channel: str | None = Field(default=None, description=f"one of {', '.join(CHANNELS)}; default: the "
                                                          "contact's channel")
    contact_id: str | None = Field(default=None, max_length=100, description="the contact it is filed from")
    resident_id: int | None = None
    resident: ResidentIn | None = Field(default=None, description="a new resident (matched by e-mail or "
                                                                  "phone if already known)")
    description: str | None = Field(default=None, max_length=4000)
    location: LocationIn = LocationIn()
    on_behalf_of: OnBehalfIn | None = None
    attributes: dict[str, str | float | list[str]] = Field(default_factory=dict)
    media_url: str | None = Field(default=None, max_length=2000)
    acknowledge: bool = Field(default=True, description="give the reference and expected date now")


class StatusChange(_Body):
    status: str = Field(description="acknowledged, in_progress, pending_approval, closed")
    note: str | None = Field(default=None, max_length=10_000, description="why; shown as Open311 status_notes")


class NoteIn(_Body):
    body: str = Field(min_length=1, max_length=10_000)


# --- views -------------------------------------------------------------------------------------------

def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def case_view(c: Case, store: CaseStore) -> dict[str, Any]:
    now = store.clock()
    due = c.expected_at.astimezone(store.calendar.tz)
    return {
        "reference": c.reference, "status": c.status, "service_code": c.service_code,
        "service_name": c.service_name, "department": c.department, "department_name": c.department_name,
        "priority": c.priority, "channel": c.channel, "source": c.source, "filed_by": c.filed_by,
        "on_behalf_of": {"name": c.on_behalf_of, "role": c.on_behalf_role} if c.on_behalf_of else None,
        "resident_id": c.resident_id, "contact_id": c.contact_id, "description": c.description,
        "location": {"address": c.location.address, "address_id": c.location.address_id,
                     "zipcode": c.location.zipcode, "lat": c.location.lat, "long": c.location.long},
        "media_url": c.media_url, "attributes": c.attributes,
        "requested_at": _iso(c.requested_at), "updated_at": _iso(c.updated_at),
        "expected_at": _iso(c.expected_at), "expected_response_date": due.date().isoformat(),
        "acknowledged_at": _iso(c.acknowledged_at), "closed_at": _iso(c.closed_at),
        "status_notes": c.status_notes, "service_notice": c.service_notice,
        "overdue": c.is_open and c.expected_at < now,
        "age_business_days": store.calendar.age(c.requested_at, c.closed_at or now),
    }


def resident_view(r: Resident) -> dict[str, Any]:
    return {"id": r.id, "first_name": r.first_name, "last_name": r.last_name, "name": r.name,
            "phones": list(r.phones), "emails": list(r.emails), "address": r.address, "language": r.language,
            "created_at": _iso(r.created_at)}


def attachment_view(a: Attachment, reference: str) -> dict[str, Any]:
    return {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
            "sha256": a.sha256, "uploaded_by": a.uploaded_by, "created_at": _iso(a.created_at),
            "url": f"/api/v1/cases/{reference}/attachments/{a.id}"}


def detail_view(d: CaseDetail, store: CaseStore) -> dict[str, Any]:
    return {**case_view(d.case, store),
            "resident": resident_view(d.resident) if d.resident else None,
            "notes": [{"id": n.id, "author": n.author, "body": n.body, "created_at": _iso(n.created_at)}
                      for n in d.notes],
            "attachments": [attachment_view(a, d.case.reference) for a in d.attachments],
            "history": [{"at": _iso(h.at), "actor": h.actor, "action": h.action, "from_status": h.from_status,
                         "to_status": h.to_status, "detail": h.detail} for h in d.history]}


# --- cases -------------------------------------------------------------------------------------------

@router.post("/cases", status_code=201, summary="File a case for a resident (from a contact)")
def create_case(body: CaseCreate, request: Request, p: Principal = Depends(agent_user)) -> dict[str, Any]:
    store = cases(request)
    channel, caller = body.channel, None
    if body.contact_id is not None:
        contact = request.app.state.store.journal.get_contact(body.contact_id)
        if contact is None:
            raise ApiProblem(422, "unknown-contact", "Unknown contact", f"no contact {body.contact_id!r}",
                             errors=[{"field": "body.contact_id", "message": "unknown contact"}])
        from_contact = _CONTACT_CHANNEL.get(contact.channel)
        if channel is None:
            channel = from_contact
        elif from_contact is not None and channel != from_contact:
            raise ApiProblem(422, "validation-error", "Invalid request",
                             f"channel: contact {body.contact_id} came by {from_contact}, not {channel}",
                             errors=[{"field": "body.channel", "message": f"the contact came by {from_contact}"}])
        ani = str(contact.attributes.get("ani") or "")
        caller = ani if from_contact == "voice" and normalise_phone(ani) else None
    if channel is None:
        raise ApiProblem(422, "validation-error", "Invalid request", "channel: say how the request came in",
                         errors=[{"field": "body.channel", "message": f"required (one of: {', '.join(CHANNELS)})"}])
    draft = CaseDraft(
        service_code=body.service_code, channel=channel, description=body.description,
        location=Location(**body.location.model_dump()), resident_id=body.resident_id,
        resident=body.resident.draft(caller) if body.resident else None,
        on_behalf_of=body.on_behalf_of.name if body.on_behalf_of else None,
        on_behalf_role=body.on_behalf_of.role if body.on_behalf_of else None,
        attributes={k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in body.attributes.items()},
        contact_id=body.contact_id, media_url=body.media_url, acknowledge=body.acknowledge, source="desk")
    with refusals():
        case = store.create(draft, actor(p))
    return case_view(case, store)


@router.get("/cases", summary="List cases (filters, newest first)")
def list_cases(request: Request, page: Page = Depends(), p: Principal = Depends(agent_user),
               status: list[str] = Query(default=[], description="repeat or comma-separate; 'open' = not closed"),
               service_code: list[str] = Query(default=[]), department: str | None = None,
               channel: str | None = None, resident_id: int | None = None, source: str | None = None,
               requested_from: datetime | None = None, requested_to: datetime | None = None,
               overdue: bool | None = None) -> dict[str, Any]:
    store = cases(request)
    statuses: list[str] = []
    for s in (part.strip() for value in status for part in value.split(",") if part.strip()):
        statuses += list(OPEN_STATUSES) if s == "open" else [s]
    query = CaseQuery(statuses=tuple(dict.fromkeys(statuses)),
                      service_codes=tuple(c for v in service_code for c in v.split(",") if c),
                      department=department, channel=channel, resident_id=resident_id, source=source,
                      requested_from=requested_from, requested_to=requested_to, overdue=overdue)
    found, total = store.search(query, limit=page.limit, offset=page.offset)
    return page.wrap([case_view(c, store) for c in found], total)


@router.get("/cases/ageing", summary="Open cases by department and type: age in business days, overdue")
def ageing(request: Request, department: str | None = None, p: Principal = Depends(supervisor)) -> dict[str, Any]:
    store = cases(request)
    now = store.clock()
    rows = store.ageing(department=department, now=now)
    totals: dict[str, dict[str, int]] = {}
    for r in rows:
        t = totals.setdefault(r.department, {"open": 0, "overdue": 0})
        t["open"] += r.open
        t["overdue"] += r.overdue
    return {"generated_at": now.isoformat(), "calendar": store.calendar.holiday_code,
            "unit": "business days", "rows": [{
                "department": r.department, "department_name": r.department_name, "service_code": r.service_code,
                "service_name": r.service_name, "open": r.open, "by_status": r.by_status, "buckets": r.buckets,
                "overdue": r.overdue, "oldest_days": r.oldest_days, "mean_days": r.mean_days} for r in rows],
            "departments": totals}


@router.get("/cases/{reference}", summary="A case with its resident, notes, photos and full history")
def get_case(reference: str, request: Request, p: Principal = Depends(agent_user)) -> dict[str, Any]:
    store = cases(request)
    with refusals():
        return detail_view(store.detail(reference), store)


@router.post("/cases/{reference}/status", summary="Move a case along its lifecycle (closing: supervisor)")
def change_status(reference: str, body: StatusChange, request: Request,
                  p: Principal = Depends(agent_user)) -> dict[str, Any]:
    store = cases(request)
    with refusals():
        return case_view(store.change_status(reference, body.status, actor(p), body.note), store)


@router.post("/cases/{reference}/notes", status_code=201, summary="Add a note")
def add_note(reference: str, body: NoteIn, request: Request, p: Principal = Depends(agent_user)) -> dict[str, Any]:
    with refusals():
        n = cases(request).add_note(reference, body.body, actor(p))
    return {"id": n.id, "author": n.author, "body": n.body, "created_at": _iso(n.created_at)}


@router.post("/cases/{reference}/attachments", status_code=201,
             summary="Attach a photo (multipart field `file`; JPEG, PNG, GIF, WebP or HEIC)",
             responses={415: {"description": "Not a photo of a kind we keep"}})
def attach(reference: str, request: Request, file: UploadFile = File(...),
           p: Principal = Depends(agent_user)) -> dict[str, Any]:
    store = cases(request)
    data = file.file.read(store.max_photo_bytes + 1)
    with refusals():
        a = store.attach_photo(reference, file.filename or "", data, actor(p))
    return attachment_view(a, parse_reference(reference) or reference)


@router.get("/cases/{reference}/attachments/{attachment_id}", summary="Download a photo",
            response_class=FileResponse)
def download(reference: str, attachment_id: RowId, request: Request, p: Principal = Depends(agent_user)) -> FileResponse:
    with refusals():
        a, path = cases(request).attachment(reference, attachment_id)
    if not path.exists():
        raise ApiProblem(410, "attachment-missing", "Attachment missing",
                         f"the file of attachment {attachment_id} is gone from the data directory")
    return FileResponse(path, media_type=a.content_type, filename=a.filename, content_disposition_type="inline",
                        headers={"X-Content-Type-Options": "nosniff"})


# --- residents ---------------------------------------------------------------------------------------

@router.get("/residents", summary="Find residents by phone, e-mail or name, with their open cases")
def find_residents(request: Request, page: Page = Depends(), p: Principal = Depends(agent_user),
                   phone: str | None = None, email: str | None = None, name: str | None = None) -> dict[str, Any]:
    store = cases(request)
    with refusals(prefix="query"):
        found = store.find_residents(phone=phone, email=email, name=name, limit=500)
    shown = found[page.offset:page.offset + page.limit]
    open_cases = store.cases_of([r.id for r in shown])
    items = [{**resident_view(r), "open_cases": [case_view(c, store) for c in open_cases[r.id]]} for r in shown]
    return page.wrap(items, len(found))


@router.post("/residents", status_code=201, summary="Add a resident")
def create_resident(body: ResidentIn, request: Request, p: Principal = Depends(agent_user)) -> dict[str, Any]:
    with refusals():
        return resident_view(cases(request).create_resident(body.draft()))


@router.get("/residents/{resident_id}", summary="A resident and their cases, newest first")
def get_resident(resident_id: RowId, request: Request, p: Principal = Depends(agent_user)) -> dict[str, Any]:
    store = cases(request)
    r = store.resident(resident_id)
    if r is None:
        raise ApiProblem(404, "unknown-resident", "Unknown resident", f"no resident {resident_id}")
    history = store.cases_of([r.id], open_only=False)[r.id]
    return {**resident_view(r), "cases": [case_view(c, store) for c in history]}

