"""Cases filed and worked from a contact, through the site's CRM connector (builtin, Dynamics, webhook).

POST /contacts/{id}/case files a case in whichever CRM the site uses (`settings.crm`), so a city on
Dynamics or a webhook CRM gets its cases there, not in Switchboard's own store; the contact gives the
channel and the agent is the filer. POST /contacts/{id}/cases/{case_id} adds a note and/or moves the
status. Only the contact's agent (offered, holding or having held it) or a supervisor may, and an agent
only on a case of this contact: one filed from it, or an open case of its caller as the CRM finds them
(the cases of the screen-pop); any other case answers 403 "not-this-callers-case" and is left alone. A CRM
that is down answers 503 "crm-unavailable" (nothing is stored: the guard's timeout or breaker refused, or
the CRM failed); a CRM that says no answers 422 "crm-rejected" naming what it refused.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, NoReturn

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cti.bridge import MAX_CASES_PER_PERSON, MAX_PEOPLE, Caller
from cti.case_values import CaseInputError
from cti.cases import MAX_NOTE, for_app
from cti.connectors import CaseInput, CaseUpdate, Connector, CrmCase, CrmError, CrmRejected
from engine.api.deps import agent_user, core
from engine.api.desk import bridge_of, contact_of
from engine.api.problems import ApiProblem
from engine.auth import Principal
from engine.core import Core

router = APIRouter(tags=["desk"])

UNAVAILABLE_DETAIL = "CRM unavailable, try again"
REMEMBERED_CONTACTS = 10_000  # contacts whose filed cases are remembered here (an external CRM's cases)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CaseFromContact(_Body):
    service_code: str = Field(min_length=1, max_length=64, description="a catalogue service code")
    description: str = Field(default="", max_length=4000)
    person_id: str | None = Field(default=None, min_length=1, max_length=200,
                                  description="the CRM's id of the person (from the screen-pop)")
    first_name: str | None = Field(default=None, max_length=100, description="when no person matched")
    last_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=32, description="default: the contact's caller id")
    email: str | None = Field(default=None, max_length=254)
    location: str | None = Field(default=None, max_length=300, description="where the problem is")
    lat: float | None = Field(default=None, ge=-90, le=90)
    long: float | None = Field(default=None, ge=-180, le=180)
    attributes: dict[str, str | float] = Field(default_factory=dict, max_length=50)


class CaseChange(_Body):
    note: str | None = Field(default=None, max_length=MAX_NOTE)
    status: str | None = Field(default=None, min_length=1, max_length=40)

    @model_validator(mode="after")
    def _something(self) -> CaseChange:
        if not (self.note and self.note.strip()) and self.status is None:
            raise ValueError("give a note, a status or both")
        return self


def _field(store_field: str) -> str:
    """The store names attributes Open311-style (`attribute[size]`); this body has `attributes.size`."""
    if store_field.startswith("attribute[") and store_field.endswith("]"):
        return f"attributes.{store_field[10:-1]}"
    return store_field


def _crm_problem(exc: CrmError, crm: str) -> NoReturn:
    if isinstance(exc, CrmRejected):
        cause = exc.__cause__
        # the builtin store names each bad field; another CRM's refusal is one message
        errors = ([{"field": f"body.{_field(f)}", "message": m} for f, m in cause.problems]
                  if isinstance(cause, CaseInputError) else [{"field": "body", "message": str(exc)}])
        raise ApiProblem(422, "crm-rejected", "Refused by the CRM", f"{crm} refused: {exc}",
                         errors=errors) from None
    raise ApiProblem(503, "crm-unavailable", "CRM unavailable", f"{UNAVAILABLE_DETAIL} ({exc})") from None


def _filed(state: Any) -> OrderedDict[str, set[str]]:
    """Contact -> ids and references of the cases filed from it in this process, newest contacts last."""
    filed: OrderedDict[str, set[str]] | None = getattr(state, "desk_filed", None)
    if filed is None:
        filed = state.desk_filed = OrderedDict()
    return filed


def _remember(state: Any, contact_id: str, case: CrmCase) -> None:
    filed = _filed(state)
    filed.setdefault(contact_id, set()).update((case.id, case.reference))
    filed.move_to_end(contact_id)
    while len(filed) > REMEMBERED_CONTACTS:
        filed.popitem(last=False)


async def _case_of_contact(state: Any, connector: Connector, contact_id: str, attributes: dict[str, Any],
                           case_id: str) -> bool:
    """Whether `case_id` belongs with this contact: filed from it, or an open case of its caller."""
    if case_id in _filed(state).get(contact_id, ()):
        return True
    if connector.name == "builtin":  # the builtin store records the contact, across restarts too
        case = await asyncio.to_thread(for_app(state).get, case_id)
        if case is not None and case.contact_id == contact_id:
            return True
    caller = Caller.of(attributes)
    if not (caller.phone or caller.email):
        return False
    people = (await connector.lookup(phone=caller.phone, email=caller.email))[:MAX_PEOPLE]
    found = await asyncio.gather(*(connector.open_cases(person.id, limit=MAX_CASES_PER_PERSON)
                                   for person in people))
    return any(case_id in (k.id, k.reference) for cases in found for k in cases)


@router.post("/contacts/{contact_id}/case", status_code=201,
             summary="File a case from a contact in the site's CRM (builtin, Dynamics or webhook)")
async def create_case(contact_id: str, body: CaseFromContact, request: Request,
                      p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    connector = bridge_of(request).connector
    _, attributes, channel = await contact_of(p, c, contact_id)
    if body.service_code not in for_app(request.app.state).catalogue.services:
        raise ApiProblem(422, "unknown-service", "Unknown service", f"no service {body.service_code!r}",
                         errors=[{"field": "body.service_code", "message": "not in the service catalogue"}])
    caller = Caller.of(attributes)
    anonymous = body.person_id is None and not (body.phone or body.email)
    case = CaseInput(
        service_code=body.service_code, description=body.description.strip(), person_id=body.person_id,
        # nobody matched and nothing typed: the case is for whoever is calling
        phone=caller.phone if anonymous else body.phone, email=caller.email if anonymous else body.email,
        first_name=body.first_name, last_name=body.last_name, location=body.location, lat=body.lat,
        long=body.long, contact_id=contact_id, channel=channel, filed_by=p.username,
        attributes=dict(body.attributes))
    try:
        created = await connector.create_case(case)
    except CrmError as exc:
        _crm_problem(exc, connector.name)
    _remember(request.app.state, contact_id, created)
    return {**created.to_dict(), "crm": connector.name, "contact_id": contact_id}


@router.post("/contacts/{contact_id}/cases/{case_id}",
             summary="Add a note to a case and/or change its status, in the site's CRM, from a contact")
async def update_case(contact_id: str, body: CaseChange, request: Request,
                      case_id: str = Path(min_length=1, max_length=200),
                      p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    connector = bridge_of(request).connector
    _, attributes, _ = await contact_of(p, c, contact_id)
    note = body.note.strip() if body.note and body.note.strip() else None
    try:
        # a supervisor may work any case; an agent only this contact's (no note on a stranger's case)
        if not p.at_least("supervisor") and not await _case_of_contact(
                request.app.state, connector, contact_id, attributes, case_id):
            raise ApiProblem(403, "not-this-callers-case", "Not this caller's case",
                             f"case {case_id!r} was not filed from contact {contact_id!r} and is not an open "
                             "case of its caller")
        updated = await connector.update_case(case_id, CaseUpdate(status=body.status, note=note,
                                                                  filed_by=p.username))
    except CrmError as exc:
        _crm_problem(exc, connector.name)
    return {**updated.to_dict(), "crm": connector.name, "contact_id": contact_id}
