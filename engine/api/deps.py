"""Request dependencies shared by the routers: the engine's parts and the caller's identity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.auth import AuthError, Principal
from engine.core import Core

# The largest integer a BIGINT column and an SQL OFFSET hold, in SQLite and PostgreSQL alike. A larger id or
# offset would overflow the database driver (a 500); the schema bounds them instead, so it is a 422 naming
# the parameter.
DB_INT_MAX = 2**63 - 1

RowId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="a stored record's number")]


async def core(request: Request) -> Core:
    c: Core = request.app.state.core
    c.ensure_fresh()  # after a failed write the router ran ahead of the store: rebuild it first, or 503
    return c


# declared as a security scheme, so the OpenAPI document says which operations need a token (and /docs
# offers to hold one); a missing token is our own 401 problem, not the framework's 403
bearer = HTTPBearer(auto_error=False, description="a token from POST /api/v1/auth/login")


async def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Principal:
    if credentials is None:
        raise AuthError("missing bearer token (Authorization: Bearer <token>)")
    p: Principal = request.app.state.signer.verify(credentials.credentials.strip())
    if p.username in request.app.state.disabled_users:
        raise AuthError(f"user {p.username!r} is disabled")
    return p


async def agent_user(p: Principal = Depends(principal)) -> Principal:
    p.require("agent")
    return p


async def supervisor(p: Principal = Depends(principal)) -> Principal:
    p.require("supervisor")
    return p


async def admin(p: Principal = Depends(principal)) -> Principal:
    p.require("admin")
    return p


class Page:
    """`limit`/`offset` pagination; every list endpoint answers {items, total, limit, offset, next_offset}."""

    def __init__(self, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=DB_INT_MAX)):
        self.limit, self.offset = limit, offset

    def wrap(self, items: list[Any], total: int) -> dict[str, Any]:
        nxt = self.offset + self.limit if self.offset + self.limit < total else None
        return {"items": items, "total": total, "limit": self.limit, "offset": self.offset, "next_offset": nxt}

    def slice(self, items: list[Any]) -> dict[str, Any]:
        return self.wrap(items[self.offset:self.offset + self.limit], len(items))
