"""A generic CRM behind a JSON web service that the city writes or already has: HMAC-signed POSTs.

Requests (all `POST`, `Content-Type: application/json`, UTF-8) to the configured base URL:

| path                | body                                                       | 2xx reply                 |
|---------------------|------------------------------------------------------------|---------------------------|
| `{base}/lookup`     | `{"phone": "+19055550101" or null, "email": ... or null}`  | `{"people": [Person]}`    |
| `{base}/cases/open` | `{"person_id": "...", "limit": 20}`                        | `{"cases": [Case]}`       |
| `{base}/cases`      | the `CaseInput` fields (`service_code`, `description`, ...)| `{"case": Case}`          |
| `{base}/cases/{id}` | `{"status": ... or null, "note": ... or null, "filed_by"}` | `{"case": Case}`          |

Person: `{"id", "name", "phones": [], "emails": [], "address", "language", "url"}` (id and name required).
Case: `{"id", "reference", "title", "status", "opened_at" (ISO 8601), "department", "url"}` (id, reference,
title, status required). Unknown fields are ignored. A 4xx reply is the service refusing this input: its
RFC 9457 `detail` (or `title`, or `{"error": ...}`) is shown to the agent. A 5xx, a timeout, or a 2xx whose
body is not that JSON means the CRM is unavailable.

Signature. Every request carries
    X-Switchboard-Timestamp: <Unix time, whole seconds>
    X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of  "<timestamp>." + raw body bytes,  key = the secret>
    X-Switchboard-Delivery: <a fresh UUID per request, for de-duplicating retries>
A receiver recomputes the HMAC over the exact bytes it received, compares in constant time, and refuses a
timestamp more than 5 minutes from its clock (replays). `verify_signature` below does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cti.connectors.base import CaseInput, CaseUpdate, CrmCase, CrmRejected, CrmUnavailable, Person

SIGNATURE_HEADER = "X-Switchboard-Signature"
TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
DELIVERY_HEADER = "X-Switchboard-Delivery"
REPLAY_WINDOW_S = 300


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, signature: str, *, now: float | None = None,
                     window_s: float = REPLAY_WINDOW_S) -> bool:
    """What a receiver does: a fresh timestamp and a matching HMAC over the exact body bytes."""
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > window_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# ---- the replies -------------------------------------------------------------------------------------------

_Id = Field(min_length=1, max_length=200)


class _Person(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = _Id
    name: str = Field(min_length=1, max_length=300)
    phones: list[str] = []
    emails: list[str] = []
    address: str | None = None
    language: str | None = None
    url: str | None = None


class _Case(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = _Id
    reference: str = _Id
    title: str = Field(max_length=500)
    status: str = Field(min_length=1, max_length=100)
    opened_at: datetime | None = None
    department: str | None = None
    url: str | None = None


class _People(BaseModel):
    people: list[_Person]


class _Cases(BaseModel):
    cases: list[_Case]


class _OneCase(BaseModel):
    case: _Case


def _person(p: _Person) -> Person:
    return Person(id=p.id, name=p.name, phones=tuple(p.phones), emails=tuple(p.emails), address=p.address,
                  language=p.language, url=p.url)


def _case(c: _Case) -> CrmCase:
    return CrmCase(id=c.id, reference=c.reference, title=c.title, status=c.status, opened_at=c.opened_at,
                   department=c.department, url=c.url)


class WebhookConnector:
    name = "webhook"

    def __init__(self, *, base_url: str, secret: str | bytes, http: httpx.AsyncClient | None = None,
                 request_timeout_s: float = 10.0, clock: Callable[[], float] = time.time):
        self.base_url = base_url.rstrip("/")
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.clock = clock
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=request_timeout_s)

    async def _post(self, path: str, payload: dict[str, Any], model: type[BaseModel]) -> Any:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        timestamp = str(int(self.clock()))
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(self.secret, timestamp, body),
                   DELIVERY_HEADER: str(uuid.uuid4())}
        try:
            reply = await self.http.post(f"{self.base_url}{path}", content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise CrmUnavailable(f"CRM web service unreachable: {type(exc).__name__}: {exc}") from exc
        status = reply.status_code
        if status >= 500 or status in (408, 429):
            raise CrmUnavailable(f"CRM web service answered {status}")
        if status >= 400:
            raise CrmRejected(f"CRM web service refused ({status}): {_problem(reply)}")
        if not 200 <= status < 300:
            raise CrmUnavailable(f"CRM web service answered {status}")
        try:
            return model.model_validate_json(reply.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise CrmUnavailable(f"CRM web service answered something unexpected at {where}: {first['msg']}") from exc

    async def lookup(self, *, phone: str | None = None, email: str | None = None) -> list[Person]:
        if not phone and not email:
            return []
        reply = await self._post("/lookup", {"phone": phone or None, "email": email or None}, _People)
        return [_person(p) for p in reply.people]

    async def open_cases(self, person_id: str, *, limit: int = 20) -> list[CrmCase]:
        if not person_id:
            raise CrmRejected("person_id is empty")
        reply = await self._post("/cases/open", {"person_id": person_id, "limit": limit}, _Cases)
        return [_case(c) for c in reply.cases[:limit]]

    async def create_case(self, case: CaseInput) -> CrmCase:
        if not case.service_code.strip() or not case.description.strip():
            raise CrmRejected("service_code and description are required")
        reply = await self._post("/cases", asdict(case), _OneCase)
        return _case(reply.case)

    async def update_case(self, case_id: str, update: CaseUpdate) -> CrmCase:
        if not case_id:
            raise CrmRejected("case id is empty")
        if not update.status and not update.note:
            raise CrmRejected("nothing to update: give a status or a note")
        reply = await self._post(f"/cases/{quote(case_id, safe='')}", asdict(update), _OneCase)
        return _case(reply.case)

    async def close(self) -> None:
        if self._own_http:
            await self.http.aclose()


def _problem(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:200] or reply.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "title", "error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return reply.reason_phrase
