"""Click-to-dial: POST /agents/{id}/dial rings the agent's station, then the number (telephony/outbound.py).

Every number goes through the site's dial plan first: a refused one is a 403 problem naming the number and
its category, and nothing is dialled. An agent dials only for themself; supervisors and admins for anyone.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.api.deps import agent_user, core
from engine.api.problems import ApiProblem
from engine.auth import Principal
from engine.core import Core
from engine.telephony.dialplan import DialRefused
from engine.telephony.outbound import AgentBusy, OutboundDialer

router = APIRouter(prefix="/agents", tags=["agents"])


class Dial(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=32, description="the number to call, as a person writes it")


def _dialer(request: Request) -> OutboundDialer:
    dialer: OutboundDialer | None = getattr(request.app.state, "dialer", None)
    if dialer is None or getattr(request.app.state, "calls", None) is None:
        raise ApiProblem(503, "voice-unavailable", "Voice is not running",
                         "outbound calls need the SIP back end (serve without --no-sip)")
    return dialer


def _agent(c: Core, p: Principal, agent_id: str) -> None:
    if agent_id not in c.router.agents:
        raise ApiProblem(404, "unknown-agent", "Unknown agent", f"no agent {agent_id!r}")
    p.require_agent(agent_id)


@router.post("/{agent_id}/dial", status_code=202)
async def dial(agent_id: str, body: Dial, request: Request, p: Principal = Depends(agent_user),
               c: Core = Depends(core)) -> JSONResponse:
    """Ring the agent's station; when they answer, call `number` and connect them (202: under way)."""
    _agent(c, p, agent_id)
    dialer = _dialer(request)
    try:
        call = await dialer.click_to_dial(agent_id, body.number)
    except DialRefused as exc:
        raise ApiProblem(403, "dial-refused", "Number refused by the dial plan",
                         f"{exc.number!r} ({exc.category.value}): {exc.reason}",
                         number=exc.number, category=exc.category.value) from None
    except AgentBusy as exc:
        raise ApiProblem(409, "agent-busy", "Agent cannot dial now", str(exc)) from None
    return JSONResponse(call.view(), status_code=202)


@router.get("/{agent_id}/dial")
async def outbound_calls(agent_id: str, request: Request, p: Principal = Depends(agent_user),
                         c: Core = Depends(core)) -> dict[str, Any]:
    """The agent's outbound calls in progress (click-to-dial and callbacks)."""
    _agent(c, p, agent_id)
    return {"items": [call.view() for call in _dialer(request).of_agent(agent_id)]}
