"""What the agent desktop reads over HTTP: the screen-pop again (after a reconnect) and its settings.

GET /contacts/{id}/pop asks the CRM afresh (the bridge caches nothing), for the agent the contact is
offered to or handled by, or any supervisor. GET /desk/config gives the choices the desk offers: the
not-ready reasons, each queue's wrap-up codes (and whether one is required), the service catalogue, the
agents one may transfer to, and which CRM files the cases (with the status moves it takes).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request

from acd.model import RONA_REASON
from cti.bridge import Caller, CtiBridge
from cti.cases import for_app
from cti.connectors.dynamics import ACTIVE_STATUS as DYNAMICS_ACTIVE
from cti.connectors.dynamics import CLOSING as DYNAMICS_CLOSING
from engine.api.deps import agent_user, core
from engine.api.problems import ApiProblem
from engine.auth import Principal
from engine.core import Core

router = APIRouter(tags=["desk"])

# reasons the engine sets by itself (no answer; on a click-to-dial call): not an agent's choice
SYSTEM_REASONS = frozenset({RONA_REASON, "outbound"})

# the status moves an agent may make from the desk, per CRM: the builtin store's agent moves (closing
# needs a supervisor's approval) and the Dynamics connector's mapped statuses; a webhook CRM's statuses
# are its own business, so the desk offers notes only there
CASE_STATUS_CHOICES: dict[str, tuple[str, ...]] = {
    "builtin": ("acknowledged", "in_progress", "pending_approval"),
    "dynamics": (*(s for s in DYNAMICS_ACTIVE if s != "open"), *sorted(DYNAMICS_CLOSING)),
}


def bridge_of(request: Request) -> CtiBridge:
    bridge: CtiBridge | None = getattr(request.app.state, "cti", None)
    if bridge is None:
        raise ApiProblem(503, "unavailable", "Service unavailable", "the CTI bridge is not running")
    return bridge


async def contact_of(p: Principal, c: Core, contact_id: str) -> tuple[str | None, dict[str, Any], str]:
    """(agent, attributes, channel) of a contact the caller may work from: the agent it is offered to
    or handled by (live: anyone in its history; archived: its last agent), or any supervisor."""
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
    return agent, attributes or {}, channel


@router.get("/contacts/{contact_id}/pop", summary="The screen-pop for a contact, looked up again now")
async def get_pop(contact_id: str, request: Request, p: Principal = Depends(agent_user),
                  c: Core = Depends(core)) -> dict[str, Any]:
    bridge = bridge_of(request)
    agent, attributes, channel = await contact_of(p, c, contact_id)
    offer = bridge.offers.get(contact_id)
    pop = await bridge.screen_pop(contact_id, agent, Caller.of(attributes),
                                  offered_at=offer.offered_at if offer else None, channel=channel)
    pop["popped_at"] = bridge.clock()
    return pop


@router.get("/desk/config", summary="The desk's choices: not-ready reasons, wrap-up codes, services")
async def desk_config(request: Request, p: Principal = Depends(agent_user),
                      c: Core = Depends(core)) -> dict[str, Any]:
    center = c.router.center
    catalogue = for_app(request.app.state).catalogue
    bridge: CtiBridge | None = getattr(request.app.state, "cti", None)
    crm = bridge.connector.name if bridge is not None else "builtin"
    return {
        "site": request.app.state.site.engine.site.name,
        "crm": crm,  # where the desk files cases: builtin -> /cases, else through the connector
        "case_statuses": list(CASE_STATUS_CHOICES.get(crm, ())),
        # transfer targets: agents cannot list agents (GET /agents shows them only themselves)
        "agents": [{"id": a.id, "name": a.name or a.id} for a in center.agents.values()],
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
