"""What the CTI bridge needs from a CRM, whichever CRM it is.

A connector looks a caller up by phone or e-mail, lists a person's open cases, and creates or updates a
case. Three ship: `builtin` (Switchboard's own case store), `dynamics` (Microsoft Dynamics 365 Web API)
and `webhook` (a generic JSON REST service, HMAC-signed). Every call is async and may be slow or fail:
the bridge wraps connectors in `guard.GuardedConnector` (timeout + circuit breaker) so a slow CRM never
delays an offer; the screen-pop just arrives later, or says "CRM unavailable".

Values are plain and CRM-neutral: ids are strings (a Dynamics GUID, a builtin resident id, an SR number),
and `url` points back into the CRM where it has a page for the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class CrmError(Exception):
    """The CRM refused or could not answer. `unavailable` is what the agent's desktop shows."""


class CrmUnavailable(CrmError):
    """Timed out, unreachable, 5xx, garbage in the reply, or the circuit breaker is open."""


class CrmRejected(CrmError):
    """The CRM understood and said no (4xx): bad input, unknown record. The message says what."""


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    address: str | None = None
    language: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "phones": list(self.phones), "emails": list(self.emails),
                "address": self.address, "language": self.language, "url": self.url}


@dataclass(frozen=True, slots=True)
class CrmCase:
    id: str
    reference: str  # what the resident quotes (SR-2026-000123, a Dynamics ticket number)
    title: str  # the request type or the CRM's case title
    status: str
    opened_at: datetime | None = None
    department: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "reference": self.reference, "title": self.title, "status": self.status,
                "opened_at": self.opened_at.isoformat() if self.opened_at else None,
                "department": self.department, "url": self.url}


@dataclass(frozen=True, slots=True)
class CaseInput:
    """A case filed from a contact. `service_code` is a catalogue code for the builtin store; other CRMs
    map it to their own case type (or put it in the title)."""

    service_code: str
    description: str
    person_id: str | None = None  # an existing person, from the lookup
    phone: str | None = None  # or who to file it for when there is no match
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None  # the person's home address
    location: str | None = None  # where the problem is (an address), when the request type needs one
    lat: float | None = None
    long: float | None = None
    contact_id: str | None = None  # the ACD contact it came from
    channel: str = "voice"  # the ACD channel the contact came on
    filed_by: str = ""  # the agent's user name
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseUpdate:
    status: str | None = None
    note: str | None = None
    filed_by: str = ""


@runtime_checkable
class Connector(Protocol):
    name: str  # "builtin", "dynamics", "webhook": shown on the pop

    async def lookup(self, *, phone: str | None = None, email: str | None = None) -> list[Person]:
        """People with that phone (any of their numbers) or e-mail; [] when nobody matches."""
        ...

    async def open_cases(self, person_id: str, *, limit: int = 20) -> list[CrmCase]:
        """The person's cases that are not closed, newest first."""
        ...

    async def create_case(self, case: CaseInput) -> CrmCase: ...

    async def update_case(self, case_id: str, update: CaseUpdate) -> CrmCase: ...

    async def close(self) -> None: ...
