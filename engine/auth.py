"""Bearer tokens and roles.

A token is `base64url(claims).base64url(HMAC-SHA256(secret, claims))`: stateless, so a second API node
with the same secret accepts it, and it expires by its `exp` claim. Passwords are argon2-hashed by the store.
Roles are ordered: admin can do what a supervisor can, a supervisor what an agent can; an agent only acts
for their own agent id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["agent", "supervisor", "admin"]
ROLE_RANK: dict[str, int] = {"agent": 1, "supervisor": 2, "admin": 3}


class AuthError(Exception):
    """401: no token, bad token, expired token, wrong password."""


class Forbidden(Exception):
    """403: a valid token whose role (or agent) may not do this."""


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    role: str
    agent: str | None
    expires_at: float

    def at_least(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def require(self, role: str) -> None:
        if not self.at_least(role):
            raise Forbidden(f"this needs the {role} role; you are {self.role}")

    def require_agent(self, agent: str) -> None:
        """Agents act only for themselves; supervisors and admins for anyone."""
        if self.at_least("supervisor"):
            return
        if self.agent != agent:
            raise Forbidden(f"user {self.username!r} may not act for agent {agent!r}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes, ttl_s: int):
        self.secret = secret
        self.ttl_s = ttl_s

    def issue(self, username: str, role: str, agent: str | None, now: float | None = None) -> tuple[str, float]:
        exp = (time.time() if now is None else now) + self.ttl_s
        claims = json.dumps({"sub": username, "role": role, "agent": agent, "exp": exp,
                             "jti": secrets.token_hex(8)}, separators=(",", ":")).encode()
        sig = hmac.new(self.secret, claims, hashlib.sha256).digest()
        return f"{_b64(claims)}.{_b64(sig)}", exp

    def verify(self, token: str, now: float | None = None) -> Principal:
        try:
            body, sig = token.split(".")
            claims_raw = _unb64(body)
            good = hmac.compare_digest(_unb64(sig), hmac.new(self.secret, claims_raw, hashlib.sha256).digest())
            claims = json.loads(claims_raw) if good else None
        except (ValueError, json.JSONDecodeError):
            claims = None
        if not isinstance(claims, dict) or claims.get("role") not in ROLE_RANK:
            raise AuthError("invalid token")
        if float(claims["exp"]) < (time.time() if now is None else now):
            raise AuthError("token expired")
        return Principal(str(claims["sub"]), str(claims["role"]), claims.get("agent"), float(claims["exp"]))


def load_secret(data_dir: Path) -> bytes:
    """SWITCHBOARD_SECRET if set (share it between nodes), else a key kept in the data directory."""
    env = os.environ.get("SWITCHBOARD_SECRET")
    if env:
        return env.encode()
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_bytes()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
