"""Agents: list, log in to a station, set state and not-ready reason, log out."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from engine.api.deps import Page, agent_user, core
from engine.api.problems import ApiProblem
from engine.api.views import agent_view
from engine.auth import Principal
from engine.core import Core

router = APIRouter(prefix="/agents", tags=["agents"])


class AgentLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station: str | None = Field(default=None, pattern=r"^sips?:[^\s]+$", max_length=256,
                                description="SIP URI of the phone to ring; default the configured station")
    ready: bool = False


class AgentStateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["ready", "not_ready"]
    reason: str | None = Field(default=None, max_length=64)


def _stations(request: Request) -> dict[str, str]:
    s: dict[str, str] = request.app.state.stations
    return s


def _known(c: Core, agent_id: str) -> None:
    if agent_id not in c.router.agents:
        raise ApiProblem(404, "unknown-agent", "Unknown agent", f"no agent {agent_id!r}")


@router.get("")
async def list_agents(request: Request, page: Page = Depends(), p: Principal = Depends(agent_user),
                c: Core = Depends(core)) -> dict[str, Any]:
    ids = sorted(c.router.agents) if p.at_least("supervisor") else [a for a in sorted(c.router.agents) if a == p.agent]
    stations = _stations(request)
    return page.slice([agent_view(c.router, a, stations.get(a)) for a in ids])


@router.get("/{agent_id}")
async def get_agent(agent_id: str, request: Request, p: Principal = Depends(agent_user),
              c: Core = Depends(core)) -> dict[str, Any]:
    _known(c, agent_id)
    p.require_agent(agent_id)
    return agent_view(c.router, agent_id, _stations(request).get(agent_id))


@router.post("/{agent_id}/login")
async def login_agent(agent_id: str, body: AgentLogin, request: Request, p: Principal = Depends(agent_user),
                c: Core = Depends(core)) -> dict[str, Any]:
    _known(c, agent_id)
    p.require_agent(agent_id)
    await c.execute(lambda r, now: r.login(agent_id, now, ready=body.ready))
    if body.station:
        _stations(request)[agent_id] = body.station
    return agent_view(c.router, agent_id, _stations(request).get(agent_id))


@router.post("/{agent_id}/logout")
async def logout_agent(agent_id: str, request: Request, p: Principal = Depends(agent_user),
                 c: Core = Depends(core)) -> dict[str, Any]:
    _known(c, agent_id)
    p.require_agent(agent_id)
    await c.execute(lambda r, now: r.logout(agent_id, now))
    return agent_view(c.router, agent_id, _stations(request).get(agent_id))


@router.post("/{agent_id}/state")
async def set_state(agent_id: str, body: AgentStateChange, request: Request, p: Principal = Depends(agent_user),
              c: Core = Depends(core)) -> dict[str, Any]:
    _known(c, agent_id)
    p.require_agent(agent_id)
    if body.state == "ready":
        if body.reason is not None:
            raise ApiProblem(422, "validation-error", "Invalid request", "reason: only with state not_ready",
                             errors=[{"field": "body.reason", "message": "only with state not_ready"}])
        await c.execute(lambda r, now: r.set_ready(agent_id, now))
    else:
        if not body.reason:
            raise ApiProblem(422, "validation-error", "Invalid request", "reason: required for not_ready",
                             errors=[{"field": "body.reason", "message": "required for not_ready"}])
        reason = body.reason
        await c.execute(lambda r, now: r.set_not_ready(agent_id, now, reason))
    return agent_view(c.router, agent_id, _stations(request).get(agent_id))
