"""Contacts of every channel: create, list, get, and each step of their life with an agent."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from acd.model import Channel, ContactSpec, ContactState, SkillRequirement
from engine.api.deps import Page, agent_user, core, supervisor
from engine.api.problems import ApiProblem
from engine.api.views import contact_view
from engine.auth import Principal
from engine.core import Core

router = APIRouter(prefix="/contacts", tags=["contacts"])

MAX_ATTRIBUTES_BYTES = 16_384
MAX_ATTRIBUTES_DEPTH = 16


class Requirement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skill: str = Field(min_length=1, max_length=64)
    min_level: int = Field(default=1, ge=1, le=10)


class ContactCreate(BaseModel):
    # no NaN/Infinity (Python's JSON reader takes them): they poison the journal and the queue order
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                           description="your id (e.g. the call id); generated if absent")
    queue: str = Field(min_length=1, max_length=64)
    channel: Channel = Channel.WORK_ITEM
    requirements: list[Requirement] = Field(default_factory=list, max_length=20)
    priority: int = Field(default=0, ge=-1000, le=1000)
    attributes: dict[str, Any] = Field(default_factory=dict)
    preferred_agent: str | None = Field(default=None, max_length=64)
    enqueued_at: float | None = Field(default=None, ge=0, description="epoch seconds the contact started waiting")
    schedule_at: float | None = Field(default=None, ge=0, description="a scheduled callback enters the queue then")

    @field_validator("attributes")
    @classmethod
    def _small(cls, v: dict[str, Any]) -> dict[str, Any]:
        _shallow(v)
        # ValueError on NaN/Infinity, UnicodeEncodeError (a ValueError) on lone surrogates ("\ud800"):
        # either would be kept, then break every response, feed and list that shows the contact
        if len(json.dumps(v, allow_nan=False, ensure_ascii=False).encode()) > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes must serialise to at most {MAX_ATTRIBUTES_BYTES} bytes")
        return v


def _shallow(value: Any) -> None:
    """Refuse deep nesting before anything recurses through it (encoders, the journal, pickling)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_ATTRIBUTES_DEPTH:
                raise ValueError(f"attributes may nest at most {MAX_ATTRIBUTES_DEPTH} levels deep")
            stack.extend((x, depth + 1) for x in (item.values() if isinstance(item, dict) else item))


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Literal["rejected", "busy"] = "rejected"


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_queue: str | None = Field(default=None, min_length=1, max_length=64)
    to_agent: str | None = Field(default=None, min_length=1, max_length=64)
    to_number: str | None = Field(default=None, min_length=1, max_length=32,
                                  description="a call only: an outside number, through the dial plan")
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _somewhere(self) -> "Transfer":
        if self.to_number is not None and (self.to_queue is not None or self.to_agent is not None):
            raise ValueError("give to_number alone, or to_queue, to_agent or both")
        if self.to_queue is None and self.to_agent is None and self.to_number is None:
            raise ValueError("give to_queue, to_agent or both, or to_number")
        return self


class WrapUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str | None = Field(default=None, min_length=1, max_length=64)


def _get(c: Core, contact_id: str) -> Any:
    contact = c.router.contacts.get(contact_id)
    if contact is None:
        raise ApiProblem(404, "unknown-contact", "Unknown contact", f"no contact {contact_id!r}")
    return contact


def _handled_by(contact: Any) -> set[str]:
    """Agents a contact was ever offered to or handled by (its history)."""
    return {a for h in contact.history for a in (h.get("agent"), h.get("from_agent")) if a}


def _may_touch(p: Principal, contact: Any) -> None:
    """Agents act on contacts offered to them or that they hold; supervisors on any."""
    if p.at_least("supervisor"):
        return
    if p.agent is not None and contact.agent == p.agent:
        return
    if p.agent is not None and p.agent in _handled_by(contact):
        # it was theirs (e.g. completed already): a state conflict, not a permission problem
        raise ApiProblem(409, "invalid-transition", "Invalid transition",
                         f"contact {contact.id!r} is {contact.state.value} and no longer with agent {p.agent!r}")
    raise ApiProblem(403, "forbidden", "Not allowed", f"contact {contact.id!r} is not yours")


@router.post("", status_code=201)
async def create_contact(body: ContactCreate, p: Principal = Depends(supervisor), c: Core = Depends(core)) -> dict[str, Any]:
    spec = ContactSpec(
        id=body.id or f"ct-{uuid.uuid4().hex[:16]}",
        queue=body.queue,
        channel=body.channel,
        requirements=tuple(SkillRequirement(r.skill, r.min_level) for r in body.requirements),
        priority=body.priority,
        attributes=body.attributes,
        preferred_agent=body.preferred_agent,
        enqueued_at=body.enqueued_at,
        schedule_at=body.schedule_at,
    )
    if body.id is not None and body.id not in c.router.contacts and \
            await asyncio.to_thread(c.store.journal.get_contact, body.id) is not None:
        raise ApiProblem(409, "duplicate-contact", "Duplicate contact", f"contact {body.id!r} already exists")
    await c.execute(lambda r, now: r.enqueue(spec, now))
    return contact_view(c.router.contacts[spec.id])


@router.get("")
async def list_contacts(page: Page = Depends(), p: Principal = Depends(agent_user), c: Core = Depends(core),
                  state: ContactState | None = Query(None), queue: str | None = Query(None, max_length=64),
                  channel: Channel | None = Query(None), agent: str | None = Query(None, max_length=64)
                  ) -> dict[str, Any]:
    if not p.at_least("supervisor"):
        if agent is not None and agent != p.agent:
            raise ApiProblem(403, "forbidden", "Not allowed", "agents list only their own contacts")
        agent = p.agent or "\0"
    items = [x for x in c.router.contacts.values()
             if (state is None or x.state is state) and (queue is None or x.queue == queue)
             and (channel is None or x.channel is channel) and (agent is None or x.agent == agent)]
    items.sort(key=lambda x: (x.enqueued_at, x.seq))
    return page.slice([contact_view(x) for x in items])


@router.get("/{contact_id}")
async def get_contact(contact_id: str, p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    if contact_id not in c.router.contacts:
        # finished long ago: the router has let it go, the store keeps it
        record = await asyncio.to_thread(c.store.journal.get_contact, contact_id)
        if record is None:
            raise ApiProblem(404, "unknown-contact", "Unknown contact", f"no contact {contact_id!r}")
        if not p.at_least("supervisor") and (p.agent is None or record.agent != p.agent):
            raise ApiProblem(403, "forbidden", "Not allowed", f"contact {contact_id!r} is not yours")
        return {**dataclasses.asdict(record), "position": None, "expected_wait_s": None, "archived": True}
    contact = _get(c, contact_id)
    if not p.at_least("supervisor") and (p.agent is None or (contact.agent != p.agent
                                                             and p.agent not in _handled_by(contact))):
        raise ApiProblem(403, "forbidden", "Not allowed", f"contact {contact_id!r} is not yours")
    data = contact_view(contact)
    data["position"] = position = c.router.position(contact_id)
    # what the caller would be told now (the queue's wait estimator at their place); None out of line
    data["expected_wait_s"] = c.router.expected_wait(contact.queue, position) if position is not None else None
    return data


async def _agent_action(contact_id: str, p: Principal, c: Core, action: str, **kw: Any) -> dict[str, Any]:
    contact = _get(c, contact_id)
    if action in ("accept", "reject"):
        # an agent answers an offer for themselves (the core says 409 if it is not theirs or has lapsed);
        # a supervisor for whoever it is offered to
        agent = contact.agent if p.at_least("supervisor") else p.agent
        if agent is None:
            raise ApiProblem(409, "not-your-contact", "Invalid transition",
                             f"contact {contact_id!r} is {contact.state.value}: not offered to anyone")
        if action == "accept":
            await c.execute(lambda r, now: r.accept(contact_id, agent, now))
        else:
            await c.execute(lambda r, now: r.reject(contact_id, agent, now, reason=kw["reason"]))
        return contact_view(c.router.contacts[contact_id])
    _may_touch(p, contact)
    await c.execute(lambda r, now: getattr(r, action)(contact_id, now, **kw))
    return contact_view(c.router.contacts[contact_id])


@router.post("/{contact_id}/accept")
async def accept(contact_id: str, p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    return await _agent_action(contact_id, p, c, "accept")


@router.post("/{contact_id}/reject")
async def reject(contact_id: str, body: Reject | None = None, p: Principal = Depends(agent_user),
           c: Core = Depends(core)) -> dict[str, Any]:
    return await _agent_action(contact_id, p, c, "reject", reason=(body or Reject()).reason)


@router.post("/{contact_id}/hold")
async def hold(contact_id: str, p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    return await _agent_action(contact_id, p, c, "hold")


@router.post("/{contact_id}/resume")
async def resume(contact_id: str, p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    return await _agent_action(contact_id, p, c, "resume")


@router.post("/{contact_id}/transfer")
async def transfer(contact_id: str, body: Transfer, request: Request, p: Principal = Depends(agent_user),
             c: Core = Depends(core)) -> dict[str, Any]:
    if body.to_number is not None:  # a call handed to an outside line (engine/api/calls.py)
        from engine.api.calls import start_third_party
        return await start_third_party(request, c, p, contact_id, "transfer", None, body.to_number, body.note)
    return await _agent_action(contact_id, p, c, "transfer", to_queue=body.to_queue, to_agent=body.to_agent,
                         note=body.note)


@router.post("/{contact_id}/end")
async def end(contact_id: str, p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    return await _agent_action(contact_id, p, c, "end")


@router.post("/{contact_id}/wrap-up")
async def wrap_up(contact_id: str, body: WrapUp, p: Principal = Depends(agent_user),
            c: Core = Depends(core)) -> dict[str, Any]:
    return await _agent_action(contact_id, p, c, "wrap_up", code=body.code)


@router.post("/{contact_id}/complete")
async def complete(contact_id: str, body: WrapUp | None = None, p: Principal = Depends(agent_user),
             c: Core = Depends(core)) -> dict[str, Any]:
    return await _agent_action(contact_id, p, c, "complete", code=(body or WrapUp()).code)


@router.post("/{contact_id}/abandon")
async def abandon(contact_id: str, p: Principal = Depends(supervisor), c: Core = Depends(core)) -> dict[str, Any]:
    """The customer left before an agent answered (used by channel adapters and the IVR)."""
    _get(c, contact_id)
    await c.execute(lambda r, now: r.abandon(contact_id, now))
    return contact_view(c.router.contacts[contact_id])


@router.post("/{contact_id}/callback")
async def request_callback(contact_id: str, p: Principal = Depends(supervisor), c: Core = Depends(core)) -> dict[str, Any]:
    """A waiting caller chose to be called back: they keep their place."""
    _get(c, contact_id)
    await c.execute(lambda r, now: r.request_callback(contact_id, now))
    return contact_view(c.router.contacts[contact_id])
