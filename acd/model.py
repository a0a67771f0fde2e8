"""The ACD's vocabulary: channels, skills, agents, queues, routing steps, contacts.

Configuration objects are frozen; the runtime objects (`Contact`, `AgentRuntime`) are owned and
mutated only by the router while it applies events.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from types import MemberDescriptorType
from typing import Any, Mapping

from mypy_extensions import mypyc_attr


# Pickling (engine snapshots) that works compiled (acd/native.py) as well as pure: a class compiled by
# mypyc runs its __init__ whenever an object is made, unpickling included, so pickle's default (make an
# object without arguments, then fill it in) fails where __init__ takes arguments, and a frozen class
# cannot be filled in at all.
@mypyc_attr(allow_interpreted_subclasses=True)  # (events: the engine adds its own)
class Value:
    """The base of the frozen dataclasses: configuration, contact specs, events."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # a frozen dataclass pickles as a call of its constructor with every field (each subclass is one)
        return type(self), tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]


def pickled(obj: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A runtime object pickles as a call of its constructor with `args`, then its state set over it (the
    object exists before its state is pickled, so references back to it, as a contact's to its route
    class and the class's to its contacts, are kept)."""
    return type(obj), args, obj.__getstate__()


MIN_LEVEL = 1
MAX_LEVEL = 10


def fast_frozen_init(cls: type[Any]) -> None:
    """Give a frozen, slotted dataclass a constructor that fills its slots through their descriptors.

    The dataclass one calls object.__setattr__ per field, which made building events and contact
    specs a large share of every routing decision. Same signature, defaults and immutability."""
    params, body = [], []
    env: dict[str, Any] = {"_MISSING": MISSING}
    for f in fields(cls):
        if f.default is not MISSING:
            env[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        elif f.default_factory is not MISSING:
            env[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING:\n        {f.name} = _f_{f.name}()")
        else:
            params.append(f.name)
        slot = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__)  # may be a base's
        if type(slot) is not MemberDescriptorType:
            return  # a class compiled by mypyc (see acd/native.py): its fields are not plain slots
        env[f"_s_{f.name}"] = slot.__set__
        body.append(f"    _s_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(source, env)  # noqa: S102 - generated from the class's own field names
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init


class Channel(StrEnum):
    VOICE = "voice"
    CALLBACK = "callback"
    CHAT = "chat"
    EMAIL = "email"
    SMS = "sms"
    WORK_ITEM = "work_item"


PHONE_CHANNELS = frozenset({Channel.VOICE, Channel.CALLBACK})

# Cross-channel rules: while an agent has work on the key channel, no new work of the listed
# channels is offered. A phone call (live or callback) blocks everything else; a chat does not
# block email (the example), and nothing blocks a channel except by these rules or capacity.
DEFAULT_BLOCKS: Mapping[Channel, frozenset[Channel]] = {
    Channel.VOICE: frozenset(Channel) - {Channel.VOICE},
    Channel.CALLBACK: frozenset(Channel) - {Channel.CALLBACK},
}


class Strategy(StrEnum):
    LONGEST_IDLE = "longest_idle"
    BEST_SKILL = "best_skill"
    LEAST_OCCUPIED = "least_occupied"
    ROUND_ROBIN = "round_robin"
    FEWEST_CONTACTS = "fewest_contacts"
    LINEAR = "linear"
    RANDOM = "random"


class Presence(StrEnum):
    """What the agent asked for; the displayed `AgentState` also depends on their work."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"
    BUSY = "busy"
    WRAP_UP = "wrap_up"
    NOT_READY = "not_ready"


class ContactState(StrEnum):
    SCHEDULED = "scheduled"  # a callback booked for later: not yet in the queue
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    HELD = "held"
    WRAP_UP = "wrap_up"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


ACTIVE_STATES = frozenset({ContactState.CONNECTED, ContactState.HELD})
WAITING_STATES = frozenset({ContactState.QUEUED, ContactState.OFFERED})
FINAL_STATES = frozenset({ContactState.COMPLETED, ContactState.ABANDONED})

RONA_REASON = "RONA"
OUTBOUND_REASON = "outbound"  # the engine sets it while an agent makes an outbound call (click-to-dial)
DEFAULT_REASONS: tuple[str, ...] = ("break", "lunch", "meeting", "training", RONA_REASON, OUTBOUND_REASON)


@dataclass(frozen=True, slots=True, order=True)
class SkillRequirement(Value):
    skill: str
    min_level: int = MIN_LEVEL

    def __hash__(self) -> int:
        # the dataclass's own, written out so that compiled it runs as C: requirements are part of the keys
        # the router looks up on every arrival
        return hash((self.skill, self.min_level))


fast_frozen_init(SkillRequirement)


@dataclass(frozen=True, slots=True)
class RoutingStep(Value):
    """One ring of the bullseye. From `after_s` seconds of age the contact's requirement relaxes.

    Steps widen cumulatively: groups and overflow queues added by earlier steps stay added, and the
    level drop in force is the largest one so far.
    """

    after_s: float
    level_drop: int = 0
    add_groups: tuple[str, ...] = ()
    overflow_queues: tuple[str, ...] = ()  # agents serving these queues may take it, skills aside


@dataclass(frozen=True, slots=True)
class QueueConfig(Value):
    id: str
    name: str = ""
    strategy: Strategy = Strategy.LONGEST_IDLE
    sl_threshold_s: float = 30.0
    skills: tuple[SkillRequirement, ...] = ()  # carried by every contact of the queue
    groups: tuple[str, ...] = ()  # agent groups serving the queue; empty means every agent
    steps: tuple[RoutingStep, ...] = ()
    offer_timeout_s: float = 20.0
    wrap_up_s: float = 0.0
    wrap_up_codes: tuple[str, ...] = ()
    wrap_up_code_required: bool = False
    priority_boost_per_s: float = 0.0  # ageing: priority gained per second waited
    short_abandon_s: float = 5.0
    preferred_agent_timeout_s: float = 30.0
    random_seed: int = 0
    linear_order: tuple[str, ...] = ()  # agent ids in hunt order; default is configuration order


@dataclass(frozen=True, slots=True)
class AgentConfig(Value):
    id: str
    name: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)
    capacity: Mapping[Channel, int] = field(default_factory=lambda: {Channel.VOICE: 1})
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CenterConfig(Value):
    """Everything the router needs to know that does not change while it runs."""

    skills: tuple[str, ...]
    queues: Mapping[str, QueueConfig]
    agents: Mapping[str, AgentConfig]
    blocks: Mapping[Channel, frozenset[Channel]] = field(default_factory=lambda: dict(DEFAULT_BLOCKS))
    rona_misses: int = 2  # misses in a row before an agent is made not-ready with reason RONA
    # an agent who missed a contact is not offered it again for this long (others may take it first);
    # after that it comes back to them, so a contact whose only qualified agent declined it still flows
    decline_retry_s: float = 30.0
    not_ready_reasons: tuple[str, ...] = DEFAULT_REASONS
    interval_s: float = 900.0
    # where "today" starts (acd.local_days): local midnight in `timezone` (IANA name, daylight saving
    # included) or, without one, at a fixed offset: local time minus `now`, in seconds
    day_offset_s: float = 0.0
    timezone: str | None = None


@dataclass(frozen=True, slots=True, init=False)
class ContactSpec(Value):
    """What a channel adapter knows when a contact arrives."""

    id: str
    queue: str
    channel: Channel = Channel.VOICE
    requirements: tuple[SkillRequirement, ...] = ()
    priority: int = 0
    attributes: Mapping[str, Any] = field(default_factory=dict)
    preferred_agent: str | None = None
    enqueued_at: float | None = None  # age carried from before (IVR time, an earlier queue)
    schedule_at: float | None = None  # a scheduled callback enters the queue then

    # written out, as the hot events' are (acd/events.py): compiled, the dataclass's own constructor sets
    # each field through object.__setattr__, several times the cost
    def __init__(self, id: str, queue: str, channel: Channel = Channel.VOICE,
                 requirements: tuple[SkillRequirement, ...] = (), priority: int = 0,
                 attributes: Mapping[str, Any] | None = None, preferred_agent: str | None = None,
                 enqueued_at: float | None = None, schedule_at: float | None = None) -> None:
        self.id = id  # type: ignore[misc]
        self.queue = queue  # type: ignore[misc]
        self.channel = channel  # type: ignore[misc]
        self.requirements = requirements  # type: ignore[misc]
        self.priority = priority  # type: ignore[misc]
        self.attributes = {} if attributes is None else attributes  # type: ignore[misc]
        self.preferred_agent = preferred_agent  # type: ignore[misc]
        self.enqueued_at = enqueued_at  # type: ignore[misc]
        self.schedule_at = schedule_at  # type: ignore[misc]


fast_frozen_init(ContactSpec)  # one per arrival, in the routing benchmark's and the simulator's loops


@dataclass(slots=True, init=False)  # repr, eq and fields from the dataclass; the constructor is below
class Contact:
    id: str
    queue: str
    channel: Channel
    requirements: tuple[SkillRequirement, ...]  # the contact's own plus its queue's, merged
    own_requirements: tuple[SkillRequirement, ...]  # what the contact itself asked for (kept on transfer)
    priority: int
    attributes: dict[str, Any]
    enqueued_at: float  # original age; kept across RONA, widening, transfer and callback
    seq: int  # arrival order: the last tie-break, so equal contacts stay first-in first-out
    state: ContactState
    ring: int  # 0 is the queue's base requirement; n is after steps[n-1]
    restrict_to: str | None  # preferred or transferred-to agent
    restrict_until: float | None
    agent: str | None
    offer_deadline: float | None
    offers: int
    declined_by: dict[str, float]  # agent -> until when they are skipped
    first_answered_at: float | None
    answered_at: float | None
    hold_started: float | None
    hold_s: float
    talk_s: float
    ended_at: float | None
    wrap_up_code: str | None
    history: list[dict[str, Any]]
    # the wait forecast it got on joining its queue, scored when it is answered: (queue, place, forecasts)
    told: tuple[str, int, tuple[float, float, float]] | None
    # heap bookkeeping, private to the router
    route_class: Any  # the router's RouteClass (typed there where read: it would import the router here)
    heap_token: int
    line_key: tuple[float, float, int] | None  # its place key in its queue's line, while in a class

    def __init__(self, id: str, queue: str, channel: Channel, requirements: tuple[SkillRequirement, ...],
                 own_requirements: tuple[SkillRequirement, ...], priority: int, attributes: dict[str, Any],
                 enqueued_at: float, seq: int, state: ContactState = ContactState.QUEUED) -> None:
        # written out, not the dataclass's: compiled (acd/native.py), this one runs as C, the dataclass's
        # as Python, and a contact is made per arrival
        self.id = id
        self.queue = queue
        self.channel = channel
        self.requirements = requirements
        self.own_requirements = own_requirements
        self.priority = priority
        self.attributes = attributes
        self.enqueued_at = enqueued_at
        self.seq = seq
        self.state = state
        self.ring = 0
        self.restrict_to = self.restrict_until = None
        self.agent = None
        self.offer_deadline = None
        self.offers = 0
        self.declined_by = {}
        self.first_answered_at = self.answered_at = self.hold_started = None
        self.hold_s = self.talk_s = 0.0
        self.ended_at = None
        self.wrap_up_code = None
        self.history = []
        self.told = None
        self.route_class = None
        self.heap_token = 0
        self.line_key = None

    def __reduce__(self) -> tuple[Any, ...]:
        return pickled(self, (self.id, self.queue, self.channel, self.requirements, self.own_requirements,
                              self.priority, self.attributes, self.enqueued_at, self.seq))

    def waited(self, now: float) -> float:
        return now - self.enqueued_at
