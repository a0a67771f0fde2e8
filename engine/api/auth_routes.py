"""POST /api/v1/auth/login: username and password in, bearer token out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from engine.auth import AuthError

router = APIRouter(prefix="/auth", tags=["auth"])


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@router.post("/login", responses={401: {"description": "Wrong username or password"}})
def login(body: Login, request: Request) -> dict[str, Any]:
    user = request.app.state.store.users.verify(body.username, body.password)
    if user is None:
        raise AuthError("wrong username or password")
    token, exp = request.app.state.signer.issue(user.username, user.role, user.agent_id)
    return {"access_token": token, "token_type": "bearer", "expires_at": exp, "role": user.role,
            "agent": user.agent_id, "username": user.username}
