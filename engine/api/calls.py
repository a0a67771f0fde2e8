"""Voice in-call requests: consult (warm transfer), conference, and the outside-number blind transfer.

Hold, resume and transfer to a queue or an agent stay on the contact endpoints (contacts.py): they are
ACD steps the call controller follows. What needs a new call leg comes here. Every outside number goes
through the site's dial plan first (the toll-fraud guard): refused -> 403 naming the number and its
category (422 if it is not a number at all), and nothing changes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from acd.model import Channel
from engine.api.contacts import _get, _may_touch
from engine.api.deps import agent_user, core
from engine.api.problems import ApiProblem
from engine.api.views import contact_view
from engine.auth import Principal
from engine.core import Core
from engine.telephony.dialplan import Category, DialRefused, DialTarget
from engine.telephony.incall import InCallRefused

router = APIRouter(prefix="/contacts", tags=["calls"])

NUMBER = Field(default=None, min_length=1, max_length=32, description="an outside number (the dial plan vets it)")


class ThirdParty(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_agent: str | None = Field(default=None, min_length=1, max_length=64)
    to_number: str | None = NUMBER
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _one(self) -> ThirdParty:
        if (self.to_agent is None) == (self.to_number is None):
            raise ValueError("give exactly one of to_agent or to_number")
        return self


def route_number(request: Request, number: str) -> DialTarget:
    """The dial plan's verdict on `number`, as a problem if refused."""
    try:
        return request.app.state.site.engine.dial_plan.plan().route(number)  # type: ignore[no-any-return]
    except DialRefused as exc:
        status = 422 if exc.category is Category.INVALID else 403
        raise ApiProblem(status, "dial-refused", "Number refused by the dial plan",
                         f"{number!r} ({exc.category.value}): {exc.reason}", number=number,
                         category=exc.category.value) from None


def _controller(request: Request) -> Any:
    calls = request.app.state.calls
    if calls is None:
        raise ApiProblem(409, "no-voice", "Voice is not running", "this engine has no SIP back end running")
    return calls


async def start_third_party(request: Request, c: Core, p: Principal, contact_id: str, purpose: str,
                            to_agent: str | None, to_number: str | None, note: str) -> dict[str, Any]:
    contact = _get(c, contact_id)
    _may_touch(p, contact)
    if contact.channel is not Channel.VOICE:
        raise ApiProblem(409, "not-a-call", "Not a call", f"contact {contact_id!r} is a {contact.channel} contact")
    calls = _controller(request)
    target = route_number(request, to_number) if to_number is not None else None
    try:
        await calls.consult(contact_id, purpose=purpose, to_agent=to_agent,
                            number=target.number if target else None, uri=target.uri if target else None,
                            caller_id=request.app.state.site.engine.dial_plan.caller_id, note=note)
    except InCallRefused as exc:
        raise ApiProblem(409, exc.code, "Invalid transition", exc.detail) from None
    return _view(c, calls, contact_id)


def _view(c: Core, calls: Any, contact_id: str) -> dict[str, Any]:
    data = contact_view(c.router.contacts[contact_id])
    data["call"] = calls.describe(contact_id)
    return data


@router.post("/{contact_id}/consult")
async def consult(contact_id: str, body: ThirdParty, request: Request, p: Principal = Depends(agent_user),
                  c: Core = Depends(core)) -> dict[str, Any]:
    """Warm transfer, step 1: the caller is held (with music) while the agent calls another agent (reserved
    meanwhile) or an outside number. Then /consult/complete or /consult/cancel."""
    return await start_third_party(request, c, p, contact_id, "consult", body.to_agent, body.to_number, body.note)


@router.post("/{contact_id}/consult/complete")
async def consult_complete(contact_id: str, request: Request, p: Principal = Depends(agent_user),
                           c: Core = Depends(core)) -> dict[str, Any]:
    """The consulted party takes the caller (an agent gets the contact with its history and the note)."""
    return await _end_consult(request, c, p, contact_id, complete=True)


@router.post("/{contact_id}/consult/cancel")
async def consult_cancel(contact_id: str, request: Request, p: Principal = Depends(agent_user),
                         c: Core = Depends(core)) -> dict[str, Any]:
    """Let the consulted party go; the caller is back with the agent."""
    return await _end_consult(request, c, p, contact_id, complete=False)


async def _end_consult(request: Request, c: Core, p: Principal, contact_id: str, *, complete: bool) -> dict[str, Any]:
    _may_touch(p, _get(c, contact_id))
    calls = _controller(request)
    try:
        await (calls.consult_complete if complete else calls.consult_cancel)(contact_id)
    except InCallRefused as exc:
        raise ApiProblem(409, exc.code, "Invalid transition", exc.detail) from None
    return _view(c, calls, contact_id)


@router.post("/{contact_id}/conference")
async def conference(contact_id: str, body: ThirdParty, request: Request, p: Principal = Depends(agent_user),
                     c: Core = Depends(core)) -> dict[str, Any]:
    """Bring a third party (an interpreter line, another agent) into the call: all three hear each other."""
    return await start_third_party(request, c, p, contact_id, "conference", body.to_agent, body.to_number,
                                   body.note)
