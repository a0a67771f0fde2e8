"""Every state change of the core is one of these events.

Commands decide and return events; the router changes state only by applying them, so a journal of
events replayed into a fresh router rebuilds the same state. Events are plain values that round-trip
through JSON (`to_dict` / `from_dict`) for the engine's journal and bus; `kind`, the name in the journal,
is the class's name.

The events made on every routing decision write out their constructor: compiled (acd/native.py), it
fills the fields directly, where the dataclass's would set each through object.__setattr__ (ten times
slower, a fifth of a decision). Interpreted, the constructor written out would trip the frozen guard,
so `fast_frozen_init` replaces it with one of the same signature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from mypy_extensions import mypyc_attr

from acd.model import Channel, SkillRequirement, Value, fast_frozen_init


@mypyc_attr(allow_interpreted_subclasses=True)  # the engine adds its own (ConfigReloaded)
@dataclass(frozen=True, slots=True)
class Event(Value):
    t: float

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class AgentLoggedIn(Event):
    agent: str


@dataclass(frozen=True, slots=True)
class AgentLoggedOut(Event):
    agent: str


@dataclass(frozen=True, slots=True, init=False)
class AgentReady(Event):
    agent: str

    def __init__(self, t: float, agent: str) -> None:
        self.t = t  # type: ignore[misc]
        self.agent = agent  # type: ignore[misc]


@dataclass(frozen=True, slots=True, init=False)
class AgentNotReady(Event):
    agent: str
    reason: str

    def __init__(self, t: float, agent: str, reason: str) -> None:
        self.t = t  # type: ignore[misc]
        self.agent = agent  # type: ignore[misc]
        self.reason = reason  # type: ignore[misc]


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(self, t: float, contact: str, queue: str, channel: Channel,
                 requirements: tuple[SkillRequirement, ...], priority: int, attributes: dict[str, Any],
                 enqueued_at: float, preferred_agent: str | None = None, restrict_until: float | None = None
                 ) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]
        self.queue = queue  # type: ignore[misc]
        self.channel = channel  # type: ignore[misc]
        self.requirements = requirements  # type: ignore[misc]
        self.priority = priority  # type: ignore[misc]
        self.attributes = attributes  # type: ignore[misc]
        self.enqueued_at = enqueued_at  # type: ignore[misc]
        self.preferred_agent = preferred_agent  # type: ignore[misc]
        self.restrict_until = restrict_until  # type: ignore[misc]


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


@dataclass(frozen=True, slots=True, init=False)
class CallbackDue(Event):
    """A scheduled callback enters its queue."""

    contact: str

    def __init__(self, t: float, contact: str) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class CallbackRequested(Event):
    """The caller hangs up and keeps their place: the voice contact becomes a callback."""

    contact: str


@dataclass(frozen=True, slots=True, init=False)
class ContactWidened(Event):
    """The contact moved to a wider ring of its queue's bullseye (or its agent restriction ran out)."""

    contact: str
    ring: int

    def __init__(self, t: float, contact: str, ring: int) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]
        self.ring = ring  # type: ignore[misc]


@dataclass(frozen=True, slots=True, init=False)
class ContactOffered(Event):
    """The agent is reserved for this contact until `deadline`."""

    contact: str
    agent: str
    deadline: float

    def __init__(self, t: float, contact: str, agent: str, deadline: float) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]
        self.agent = agent  # type: ignore[misc]
        self.deadline = deadline  # type: ignore[misc]


@dataclass(frozen=True, slots=True, init=False)
class OfferMissed(Event):
    """Rejected, timed out or the station was busy: the contact goes back to its old place."""

    contact: str
    agent: str
    reason: str  # "rejected" | "timeout" | "busy"

    def __init__(self, t: float, contact: str, agent: str, reason: str) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]
        self.agent = agent  # type: ignore[misc]
        self.reason = reason  # type: ignore[misc]


@dataclass(frozen=True, slots=True, init=False)
class ContactAnswered(Event):
    contact: str
    agent: str

    def __init__(self, t: float, contact: str, agent: str) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]
        self.agent = agent  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class ContactHeld(Event):
    contact: str


@dataclass(frozen=True, slots=True)
class ContactResumed(Event):
    contact: str


@dataclass(frozen=True, slots=True)
class ContactTransferred(Event):
    contact: str
    from_agent: str | None
    to_queue: str
    to_agent: str | None
    note: str
    restrict_until: float | None


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


@dataclass(frozen=True, slots=True)
class ConsultEnded(Event):
    """The third party took the contact over ("completed": a consulted agent now has it; for an outside
    number the contact's conversation ends for the agent) or did not ("cancelled": back to the agent)."""

    contact: str
    to_agent: str | None
    outcome: str  # "completed" | "cancelled"


@dataclass(frozen=True, slots=True, init=False)
class ContactEnded(Event):
    """The conversation is over (either side); the agent's wrap-up starts."""

    contact: str
    agent: str

    def __init__(self, t: float, contact: str, agent: str) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]
        self.agent = agent  # type: ignore[misc]


@dataclass(frozen=True, slots=True, init=False)
class WrapUpCompleted(Event):
    contact: str
    agent: str
    code: str | None

    def __init__(self, t: float, contact: str, agent: str, code: str | None) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]
        self.agent = agent  # type: ignore[misc]
        self.code = code  # type: ignore[misc]


@dataclass(frozen=True, slots=True, init=False)
class ContactAbandoned(Event):
    contact: str
    waited_s: float
    short: bool  # abandoned before the queue's short-abandon threshold

    def __init__(self, t: float, contact: str, waited_s: float, short: bool) -> None:
        self.t = t  # type: ignore[misc]
        self.contact = contact  # type: ignore[misc]
        self.waited_s = waited_s  # type: ignore[misc]
        self.short = short  # type: ignore[misc]


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
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
