"""What the agent desktop reads over HTTP: the screen-pop again (after a reconnect) and its settings.

GET /contacts/{id}/pop asks the CRM afresh (the bridge caches nothing), for the agent the contact is
offered to or handled by, or any supervisor. GET /desk/config gives the choices the desk offers: the
not-ready reasons, each queue's wrap-up codes (and whether one is required), and the service catalogue.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request

from acd.model import RONA_REASON
from cti.bridge import Caller, CtiBridge
from cti.cases import for_app
from engine.api.deps import agent_user, core
from engine.api.problems import ApiProblem
from engine.auth import Principal
from engine.core import Core

router = APIRouter(tags=["desk"])

# reasons the engine sets by itself (no answer; on a click-to-dial call): not an agent's choice
SYSTEM_REASONS = frozenset({RONA_REASON, "outbound"})


def _bridge(request: Request) -> CtiBridge:
    bridge: CtiBridge | None = getattr(request.app.state, "cti", None)
    if bridge is None:
        raise ApiProblem(503, "unavailable", "Service unavailable", "the CTI bridge is not running")
    return bridge


@router.get("/contacts/{contact_id}/pop", summary="The screen-pop for a contact, looked up again now")
async def get_pop(contact_id: str, request: Request, p: Principal = Depends(agent_user),
                  c: Core = Depends(core)) -> dict[str, Any]:
    bridge = _bridge(request)
    live = c.router.contacts.get(contact_id)
    if live is not None:
        agent, attributes, channel = live.agent, live.attributes, live.channel.value
        handled = {a for h in live.history for a in (h.get("agent"), h.get("from_agent")) if a}
    else:
        record = await asyncio.to_thread(c.store.journal.get_contact, contact_id)
        if record is None:
            raise ApiProblem(404, "unknown-contact", "Unknown contact", f"no contact {contact_id!r}")
        agent, attributes, channel, handled = record.agent, record.attributes, record.channel, set()
    if not p.at_least("supervisor") and (p.agent is None or (p.agent != agent and p.agent not in handled)):
        raise ApiProblem(403, "forbidden", "Not allowed", f"contact {contact_id!r} is not yours")
    offer = bridge.offers.get(contact_id)
    pop = await bridge.screen_pop(contact_id, agent, Caller.of(attributes or {}),
                                  offered_at=offer.offered_at if offer else None, channel=channel)
    pop["popped_at"] = bridge.clock()
    return pop


@router.get("/desk/config", summary="The desk's choices: not-ready reasons, wrap-up codes, services")
async def desk_config(request: Request, p: Principal = Depends(agent_user),
                      c: Core = Depends(core)) -> dict[str, Any]:
    center = c.router.center
    catalogue = for_app(request.app.state).catalogue
    return {
        "site": request.app.state.site.engine.site.name,
        "not_ready_reasons": [r for r in center.not_ready_reasons if r not in SYSTEM_REASONS],
        "queues": {q.id: {"name": q.name, "wrap_up_codes": list(q.wrap_up_codes),
                          "wrap_up_code_required": q.wrap_up_code_required} for q in center.queues.values()},
        "services": [{"code": s.code, "name": s.name, "department": catalogue.department_name(s.department),
                      "channels": [str(ch) for ch in s.channels], "needs_location": s.needs_location,
                      "attributes": [{"code": a.code, "description": a.description, "required": a.required,
                                      "datatype": a.datatype,
                                      "values": [{"key": v.key, "name": v.name} for v in a.values]}
                                     for a in s.attributes if a.variable]}
                     for s in catalogue.services.values()],
    }
