"""Users and roles (admin only): list, create, disable. Passwords are stored argon2-hashed."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from engine.api.deps import Page, admin
from engine.api.problems import ApiProblem
from engine.auth import Principal
from engine.store.users import UserExists

router = APIRouter(prefix="/users", tags=["users"])


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str = Field(min_length=8, max_length=256)
    role: Literal["agent", "supervisor", "admin"]
    agent: str | None = Field(default=None, max_length=64)


def _view(u: Any) -> dict[str, Any]:
    return {"username": u.username, "role": u.role, "agent": u.agent_id, "disabled": u.disabled}


@router.get("")
def list_users(request: Request, page: Page = Depends(), p: Principal = Depends(admin)) -> dict[str, Any]:
    return page.slice([_view(u) for u in request.app.state.store.users.all()])


@router.post("", status_code=201)
def create_user(body: UserCreate, request: Request, p: Principal = Depends(admin)) -> dict[str, Any]:
    users = request.app.state.store.users
    if body.agent is not None and body.agent not in request.app.state.core.router.agents:
        raise ApiProblem(422, "validation-error", "Invalid request", f"agent: unknown agent {body.agent!r}",
                         errors=[{"field": "body.agent", "message": "unknown agent"}])
    if body.role == "agent" and body.agent is None:
        raise ApiProblem(422, "validation-error", "Invalid request", "agent: an agent user needs an agent id",
                         errors=[{"field": "body.agent", "message": "required for role agent"}])
    try:
        return _view(users.create(body.username, body.password, body.role, agent_id=body.agent))
    except UserExists:  # the store's unique name decides, so two racing requests cannot both win
        raise ApiProblem(409, "duplicate-user", "User exists", f"user {body.username!r} already exists") from None


@router.get("/{username}")
def get_user(username: str, request: Request, p: Principal = Depends(admin)) -> dict[str, Any]:
    u = request.app.state.store.users.get(username)
    if u is None:
        raise ApiProblem(404, "unknown-user", "Unknown user", f"no user {username!r}")
    return _view(u)


@router.post("/{username}/disable")
def disable_user(username: str, request: Request, p: Principal = Depends(admin)) -> dict[str, Any]:
    users = request.app.state.store.users
    if users.get(username) is None:
        raise ApiProblem(404, "unknown-user", "Unknown user", f"no user {username!r}")
    users.disable(username)
    request.app.state.disabled_users.add(username)
    return _view(users.get(username))
