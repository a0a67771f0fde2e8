"""Every state change of the core is one of these events.

Commands decide and return events; the router changes state only by applying them, so a journal of
events replayed into a fresh router rebuilds the same state. Events are plain values that round-trip
through JSON (`to_dict` / `from_dict`) for the engine's journal and bus.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from acd.model import Channel, SkillRequirement, fast_frozen_init


@dataclass(frozen=True, slots=True)
class Event:
    t: float
    kind: ClassVar[str] = "Event"


@dataclass(frozen=True, slots=True)
class AgentLoggedIn(Event):
    agent: str
    kind: ClassVar[str] = "AgentLoggedIn"


@dataclass(frozen=True, slots=True)
class AgentLoggedOut(Event):
    agent: str
    kind: ClassVar[str] = "AgentLoggedOut"


@dataclass(frozen=True, slots=True)
class AgentReady(Event):
    agent: str
    kind: ClassVar[str] = "AgentReady"


@dataclass(frozen=True, slots=True)
class AgentNotReady(Event):
    agent: str
    reason: str
    kind: ClassVar[str] = "AgentNotReady"


@dataclass(frozen=True, slots=True)
class ContactQueued(Event):
    contact: str
    queue: str
    channel: Channel
    requirements: tuple[SkillRequirement, ...]
    priority: int
    attributes: dict[str, Any]
    enqueued_at: float
    preferred_agent: str | None = None
    restrict_until: float | None = None
    kind: ClassVar[str] = "ContactQueued"


@dataclass(frozen=True, slots=True)
class CallbackScheduled(Event):
    contact: str
    queue: str
    channel: Channel
    requirements: tuple[SkillRequirement, ...]
    priority: int
    attributes: dict[str, Any]
    enqueued_at: float
    schedule_at: float
    kind: ClassVar[str] = "CallbackScheduled"


@dataclass(frozen=True, slots=True)
class CallbackDue(Event):
    """A scheduled callback enters its queue."""

    contact: str
    kind: ClassVar[str] = "CallbackDue"


@dataclass(frozen=True, slots=True)
class CallbackRequested(Event):
    """The caller hangs up and keeps their place: the voice contact becomes a callback."""

    contact: str
    kind: ClassVar[str] = "CallbackRequested"


@dataclass(frozen=True, slots=True)
class ContactWidened(Event):
    """The contact moved to a wider ring of its queue's bullseye (or its agent restriction ran out)."""

    contact: str
    ring: int
    kind: ClassVar[str] = "ContactWidened"


@dataclass(frozen=True, slots=True)
class ContactOffered(Event):
    """The agent is reserved for this contact until `deadline`."""

    contact: str
    agent: str
    deadline: float
    kind: ClassVar[str] = "ContactOffered"


@dataclass(frozen=True, slots=True)
class OfferMissed(Event):
    """Rejected, timed out or the station was busy: the contact goes back to its old place."""

    contact: str
    agent: str
    reason: str  # "rejected" | "timeout" | "busy"
    kind: ClassVar[str] = "OfferMissed"


@dataclass(frozen=True, slots=True)
class ContactAnswered(Event):
    contact: str
    agent: str
    kind: ClassVar[str] = "ContactAnswered"


@dataclass(frozen=True, slots=True)
class ContactHeld(Event):
    contact: str
    kind: ClassVar[str] = "ContactHeld"


@dataclass(frozen=True, slots=True)
class ContactResumed(Event):
    contact: str
    kind: ClassVar[str] = "ContactResumed"


@dataclass(frozen=True, slots=True)
class ContactTransferred(Event):
    contact: str
    from_agent: str | None
    to_queue: str
    to_agent: str | None
    note: str
    restrict_until: float | None
    kind: ClassVar[str] = "ContactTransferred"


@dataclass(frozen=True, slots=True)
class ConsultStarted(Event):
    """The agent on a contact calls a third party: another agent (reserved by this, so they are offered
    nothing else meanwhile) or an outside number, to consult them, conference them in or hand over to them."""

    contact: str
    agent: str
    to_agent: str | None
    to_number: str | None
    purpose: str  # "consult" | "conference" | "transfer"
    note: str
    kind: ClassVar[str] = "ConsultStarted"


@dataclass(frozen=True, slots=True)
class ConsultEnded(Event):
    """The third party took the contact over ("completed": a consulted agent now has it; for an outside
    number the contact's conversation ends for the agent) or did not ("cancelled": back to the agent)."""

    contact: str
    to_agent: str | None
    outcome: str  # "completed" | "cancelled"
    kind: ClassVar[str] = "ConsultEnded"


@dataclass(frozen=True, slots=True)
class ContactEnded(Event):
    """The conversation is over (either side); the agent's wrap-up starts."""

    contact: str
    agent: str
    kind: ClassVar[str] = "ContactEnded"


@dataclass(frozen=True, slots=True)
class WrapUpCompleted(Event):
    contact: str
    agent: str
    code: str | None
    kind: ClassVar[str] = "WrapUpCompleted"


@dataclass(frozen=True, slots=True)
class ContactAbandoned(Event):
    contact: str
    waited_s: float
    short: bool  # abandoned before the queue's short-abandon threshold
    kind: ClassVar[str] = "ContactAbandoned"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        AgentLoggedIn, AgentLoggedOut, AgentReady, AgentNotReady, ContactQueued, CallbackScheduled,
        CallbackDue, CallbackRequested, ContactWidened, ContactOffered, OfferMissed, ContactAnswered,
        ContactHeld, ContactResumed, ContactTransferred, ContactEnded, WrapUpCompleted, ContactAbandoned,
        ConsultStarted, ConsultEnded,
    )
}
for _cls in EVENT_TYPES.values():
    fast_frozen_init(_cls)  # events are made several times per routing decision


def to_dict(event: Event) -> dict[str, Any]:
    data = asdict(event)
    data["type"] = event.kind
    if "requirements" in data:
        data["requirements"] = [[r["skill"], r["min_level"]] for r in data["requirements"]]
    return data


def from_dict(data: dict[str, Any]) -> Event:
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if "requirements" in kwargs:
        kwargs["requirements"] = tuple(SkillRequirement(s, int(lv)) for s, lv in kwargs["requirements"])
    if "channel" in kwargs:
        kwargs["channel"] = Channel(kwargs["channel"])
    return cls(**kwargs)
