"""The router: skills-based matching of contacts to agents, as a deterministic event-sourced state machine.

Commands (`enqueue`, `accept`, `tick`, ...) check their input against the current state, raise a
typed error and change nothing if it makes no sense, otherwise decide and return the events they
caused. State changes only in `apply`, so `Router.replay(center, events)` rebuilds the same state.
Time is always an argument; `next_due()` says when the router next needs a `tick`.

Indexing, so a decision costs about the log of the number of waiting contacts:
- waiting contacts sit in *route classes*: one heap per (queue, channel, ring rule, agent
  restriction), ordered by ageing priority, then original age, then arrival;
- each class knows the agents qualified for it, each agent the classes it qualifies for;
- `_free[channel]` holds the ready agents with a slot left on that channel, and `_idle[channel]`
  the same agents longest idle first.
A freed agent peeks at the heads of its classes; a new contact intersects its class's agents with
the free set or, with many free and the longest-idle strategy, takes the first idle agent its class
allows. Between commands no waiting contact has a free, qualified agent that has not refused it
(a refusal lasts `decline_retry_s`; every command, not only `tick`, takes back the refusals that ran out).
"""

from __future__ import annotations

import copy
import heapq
import math
from collections import defaultdict, deque
from typing import Any, Callable, Iterable, Iterator

from acd import errors
from acd.eligibility import RingRule, merge_requirements, ring_rule, serves
from acd.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    CallbackDue,
    CallbackRequested,
    CallbackScheduled,
    ConsultEnded,
    ConsultStarted,
    ContactAbandoned,
    ContactAnswered,
    ContactEnded,
    ContactHeld,
    ContactOffered,
    ContactQueued,
    ContactResumed,
    ContactTransferred,
    ContactWidened,
    Event,
    OfferMissed,
    WrapUpCompleted,
)
from acd.heaps import in_order
from acd.idle_index import IdleIndex
from acd.line_index import LineIndex, LineKey
from acd.local_days import LocalDays
from acd.model import (
    FINAL_STATES,
    MAX_LEVEL,
    MIN_LEVEL,
    RONA_REASON,
    WAITING_STATES,
    AgentState,
    CenterConfig,
    Channel,
    Contact,
    ContactSpec,
    ContactState,
    Presence,
    QueueConfig,
    SkillRequirement,
    Strategy,
    pickled,
)
from acd.reservations import NO_CHANNELS, STATE_FIELDS, Activity, AgentRuntime
from acd.stats import DEFAULT_AHT_S, CenterStats
from acd.strategies import choose
from acd.timers import Timer, Timers


class Place:
    """A contact's place in a route class's heap: its line key when it entered, and the token that tells
    this entry from a later one of the same contact (an entry left behind when it leaves is stale)."""

    __slots__ = ("rank", "at", "seq", "token", "contact")

    def __reduce__(self) -> tuple[Any, ...]:
        return Place, (self.rank, self.at, self.seq, self.token, self.contact)

    def __init__(self, rank: float, at: float, seq: int, token: int, contact: Contact) -> None:
        self.rank = rank  # ageing priority (`_line_key`)
        self.at = at  # original age
        self.seq = seq  # arrival
        self.token = token
        self.contact = contact

    def __lt__(self, other: Place) -> bool:
        if self.rank != other.rank:
            return self.rank < other.rank
        if self.at != other.at:
            return self.at < other.at
        return self.seq < other.seq


class RouteClass:
    """Waiting contacts that share a queue, channel, ring rule and agent restriction."""

    __slots__ = ("key", "queue", "channel", "rule", "restrict", "boost", "heap", "size", "agents", "line")

    def __reduce__(self) -> tuple[Any, ...]:
        return pickled(self, (self.key, self.queue, self.channel, self.rule, self.restrict, self.line))

    def __init__(self, key: tuple[Any, ...], queue: QueueConfig, channel: Channel, rule: RingRule,
                 restrict: str | None, line: LineIndex):
        self.key = key
        self.queue = queue
        self.channel = channel
        self.rule = rule
        self.restrict = restrict
        self.boost = queue.priority_boost_per_s
        self.heap: list[Place] = []
        self.size = 0
        self.agents: set[str] = set()
        self.line = line  # the queue's line index (position()), which contacts entering and leaving keep up


def _channel(value: Any) -> Channel:
    # Channel(x) goes through the enum machinery even when x is already a Channel
    return value if type(value) is Channel else Channel(value)


def _line_key(boost: float, c: Contact) -> LineKey:
    # service order: ageing priority, then original age, then arrival. Independent of the clock: never flips.
    # The ageing priority is a rank (lower first) to a billionth, so that equal ones tie exactly and age
    # decides whatever the float noise: as round(x, 9) does, without its trip through a decimal string
    rank = math.floor((boost * c.enqueued_at - c.priority) * 1e9 + 0.5) / 1e9
    return (rank, c.enqueued_at, c.seq)


# with more agents free on a channel than this, a longest-idle queue finds its agent by the idle index
IDLE_INDEX_FROM = 8

# timer kinds
_WIDEN, _RESTRICT, _OFFER, _WRAP, _CALLBACK, _RETRY = range(6)


class Router:
    def __reduce__(self) -> tuple[Any, ...]:
        return pickled(self, (self.center,))

    def __init__(self, center: CenterConfig, *, keep_finished: int = 10_000):
        self.center = center
        self.now = float("-inf")
        self.contacts: dict[str, Contact] = {}
        self.agents: dict[str, AgentRuntime] = {
            a.id: AgentRuntime(a, i) for i, a in enumerate(center.agents.values())}
        self.stats = CenterStats({q.id: q.sl_threshold_s for q in center.queues.values()}, center.interval_s)
        self._classes: dict[tuple[Any, ...], RouteClass] = {}
        self._agent_classes: dict[str, dict[Channel, list[RouteClass]]] = {a: {} for a in self.agents}
        self._free: dict[Channel, set[str]] = {ch: set() for ch in Channel}
        self._idle: dict[Channel, IdleIndex] = {ch: IdleIndex(free, self.agents) for ch, free in self._free.items()}
        self._serving: dict[str, int] = {}  # queue -> serving(queue), until the next log-in or log-out
        self.idle_index_from = IDLE_INDEX_FROM  # (a test sets it to 0, or beyond any count, to compare both ways)
        self._waiting: dict[str, dict[str, Contact]] = {q: {} for q in center.queues}
        self._timers = Timers()
        # ends of declines, apart: every command releases those due, not only tick, because a command
        # that comes late for its timers must not pass over a contact the agent may now take again
        self._retries = Timers()
        self._timer_seq = 0  # timers set so far, of both kinds (equal due times: the first set fires first)
        self._arrivals = 0
        self._token = 0
        self._rr_last: dict[str, int] = {}
        self._missed_by: dict[str, set[str]] = {}  # agent -> contacts they missed since last ready
        self._routable: dict[tuple[Any, ...], bool] = {}  # (queue, channel, needs) -> some agent could take it
        self._linear: dict[str, dict[str, int]] = {
            q.id: {a: i for i, a in enumerate(q.linear_order)} for q in center.queues.values()}
        self._pending_agents: deque[str] = deque()
        self._pending_contacts: deque[str] = deque()
        self._queued: dict[str, int] = {q: 0 for q in center.queues}  # contacts in line (not offered)
        self._lines: dict[str, LineIndex] = {q: LineIndex() for q in center.queues}  # for position()
        self._class_cache: dict[tuple[Any, ...], RouteClass] = {}
        self._base_agent_sets: dict[str, frozenset[str]] = {}
        self._at_least: dict[tuple[str, int], frozenset[str]] = {}  # (skill, level) -> agents that have it
        # skill -> agents by their level in it (index = level): a new route class, which bullseye steps and rare
        # requirements make now and then, gathers its agents from here instead of scanning every agent
        self._skill_levels: dict[str, list[list[str]]] = {}
        for a in self.agents.values():
            for skill, level in a.cfg.skills.items():
                self._skill_levels.setdefault(skill, [[] for _ in range(MAX_LEVEL + 1)])[level].append(a.id)
        self._finished: deque[str] = deque()  # completed/abandoned contacts, oldest first
        self._known_skills = frozenset(center.skills)
        self._merged: dict[tuple[str, tuple[SkillRequirement, ...]], tuple[SkillRequirement, ...]] = {}
        self.keep_finished = keep_finished
        self.days = LocalDays(center.timezone, center.day_offset_s)  # where "today" begins, for today's counts
        self._out: list[Event] | None = None
        self._apply_table: dict[type[Event], Callable[[Any], None]] = {
            AgentLoggedIn: self._on_logged_in, AgentLoggedOut: self._on_logged_out,
            AgentReady: self._on_ready, AgentNotReady: self._on_not_ready,
            ContactQueued: self._on_queued, CallbackScheduled: self._on_scheduled,
            CallbackDue: self._on_callback_due, CallbackRequested: self._on_callback_requested,
            ContactWidened: self._on_widened, ContactOffered: self._on_offered,
            OfferMissed: self._on_missed, ContactAnswered: self._on_answered,
            ContactHeld: self._on_held, ContactResumed: self._on_resumed,
            ContactTransferred: self._on_transferred, ContactEnded: self._on_ended,
            WrapUpCompleted: self._on_wrapped, ContactAbandoned: self._on_abandoned,
            ConsultStarted: self._on_consult_started, ConsultEnded: self._on_consult_ended,
        }

    @classmethod
    def replay(cls, center: CenterConfig, events: Iterable[Event]) -> "Router":
        router = cls(center)
        router.replay_more(events)
        return router

    def replay_more(self, events: Iterable[Event]) -> None:
        """Apply journaled events. Each journaled batch ended with a full dispatch, so nothing is
        left to match afterwards: the work lists filled by applying are dropped."""
        for event in events:
            self.apply(event)
        self._pending_agents.clear()
        self._pending_contacts.clear()

    def reconfigured(self, center: CenterConfig) -> "Router":
        """A router for a new configuration carrying over every contact, agent and counter.

        Refused (ConfigError) if the new configuration drops a queue that still has live contacts or an
        agent who is logged in or holds work. Changes nothing by itself: call `rebalance(now)` next so
        newly qualified agents pick up waiting contacts, and journal what it returns.
        """
        issues = []
        for c in self.contacts.values():
            if c.state not in FINAL_STATES and c.queue not in center.queues:
                issues.append(errors.ConfigIssue(f"queues.{c.queue}", "removed while it still has live contacts"))
        for a in self.agents.values():
            if a.id not in center.agents and (a.presence is not Presence.LOGGED_OUT or a.work or a.offers):
                issues.append(errors.ConfigIssue(f"agents.{a.id}", "removed while logged in or holding work"))
        if issues:
            raise errors.ConfigError(sorted(set(issues), key=str))
        new = Router(center, keep_finished=self.keep_finished)
        new._finished = deque(self._finished)
        new.now = self.now
        new._arrivals, new._token, new._timer_seq = self._arrivals, self._token, self._timer_seq
        new._rr_last = {q: r for q, r in self._rr_last.items() if q in center.queues}
        new._missed_by = {a: cids for a, cids in self._missed_by.items() if a in center.agents}
        for qid, qs in self.stats.queues.items():
            if qid in center.queues:
                qs.threshold_s = center.queues[qid].sl_threshold_s
                new.stats.queues[qid] = qs
        new.stats.busy_s, new.stats.staffed_s = self.stats.busy_s, self.stats.staffed_s
        for aid, old in self.agents.items():
            if aid in new.agents:
                fresh = new.agents[aid]
                for name in STATE_FIELDS:
                    setattr(fresh, name, getattr(old, name))
        new._timers = self._timers.copy()
        new._retries = self._retries.copy()
        for c in self.contacts.values():
            c.route_class, c.heap_token = None, 0
            if c.queue in center.queues:
                c.requirements = merge_requirements(center.queues[c.queue].skills, c.own_requirements)
            new.contacts[c.id] = c
            if c.state in WAITING_STATES and c.queue in center.queues:
                new._waiting[c.queue][c.id] = c
                if c.state is ContactState.QUEUED:
                    new._enter_class(c, new.now)
        for a in new.agents.values():
            new._touch(a, new.now)
        return new

    def rebalance(self, now: float) -> list[Event]:
        """Match whatever is pending (after `reconfigured`)."""
        self._begin(now)
        return self._done()

    # ------------------------------------------------------------------------------------------
    # agent commands
    def login(self, agent: str, now: float, *, ready: bool = False) -> list[Event]:
        a = self._agent(agent)
        if a.presence is not Presence.LOGGED_OUT:
            raise errors.InvalidTransition(f"agent {agent!r} is already logged in")
        t = self._begin(now)
        self._emit(AgentLoggedIn(t, agent))
        if ready:
            self._emit(AgentReady(t, agent))
        return self._done()

    def logout(self, agent: str, now: float) -> list[Event]:
        a = self._agent(agent)
        if a.presence is Presence.LOGGED_OUT:
            raise errors.InvalidTransition(f"agent {agent!r} is not logged in")
        if a.work or a.offers:
            raise errors.AgentHasWork(f"agent {agent!r} still has {len(a.work) + len(a.offers)} contact(s)")
        t = self._begin(now)
        self._emit(AgentLoggedOut(t, agent))
        return self._done()

    def set_ready(self, agent: str, now: float) -> list[Event]:
        a = self._agent(agent)
        if a.presence is Presence.LOGGED_OUT:
            raise errors.InvalidTransition(f"agent {agent!r} is not logged in")
        t = self._begin(now)
        if a.presence is not Presence.READY:
            self._emit(AgentReady(t, agent))
        return self._done()

    def set_not_ready(self, agent: str, now: float, reason: str) -> list[Event]:
        a = self._agent(agent)
        if a.presence is Presence.LOGGED_OUT:
            raise errors.InvalidTransition(f"agent {agent!r} is not logged in")
        if reason not in self.center.not_ready_reasons:
            raise errors.InvalidReason(
                f"unknown not-ready reason {reason!r} (one of: {', '.join(self.center.not_ready_reasons)})")
        t = self._begin(now)
        if a.presence is not Presence.NOT_READY or a.reason != reason:
            self._emit(AgentNotReady(t, agent, reason))
        return self._done()

    # ------------------------------------------------------------------------------------------
    # contact commands
    def enqueue(self, spec: ContactSpec, now: float) -> list[Event]:
        if spec.id in self.contacts:
            raise errors.DuplicateContact(f"contact {spec.id!r} already exists")
        queue = self._queue(spec.queue)
        self._check_requirements(spec.requirements)
        if spec.preferred_agent is not None:
            self._agent(spec.preferred_agent)
        t = self._begin(now)
        enqueued_at = min(spec.enqueued_at, t) if spec.enqueued_at is not None else t
        if spec.schedule_at is not None and spec.schedule_at > t:
            # a booked callback waits from the time it was booked for, unless an age is carried in
            self._emit(CallbackScheduled(
                t, spec.id, queue.id, _channel(spec.channel), tuple(spec.requirements), spec.priority,
                dict(spec.attributes), spec.schedule_at if spec.enqueued_at is None else enqueued_at,
                spec.schedule_at))
        else:
            until = t + queue.preferred_agent_timeout_s if spec.preferred_agent else None
            self._emit(ContactQueued(
                t, spec.id, queue.id, _channel(spec.channel), tuple(spec.requirements), spec.priority,
                dict(spec.attributes), enqueued_at, spec.preferred_agent, until))
        return self._done()

    def accept(self, contact: str, agent: str, now: float) -> list[Event]:
        c = self._offered_to(contact, agent, now)
        t = self._begin(now)
        self._emit(ContactAnswered(t, c.id, agent))
        return self._done()

    def reject(self, contact: str, agent: str, now: float, *, reason: str = "rejected") -> list[Event]:
        """The agent declined, or the station answered busy (`reason="busy"`)."""
        c = self._offered_to(contact, agent, now)
        t = self._begin(now)
        self._miss(c, t, reason)
        return self._done()

    def hold(self, contact: str, now: float) -> list[Event]:
        self._expect(self._contact(contact), ContactState.CONNECTED, "hold")
        t = self._begin(now)
        self._emit(ContactHeld(t, contact))
        return self._done()

    def resume(self, contact: str, now: float) -> list[Event]:
        self._expect(self._contact(contact), ContactState.HELD, "resume")
        t = self._begin(now)
        self._emit(ContactResumed(t, contact))
        return self._done()

    def transfer(self, contact: str, now: float, *, to_queue: str | None = None, to_agent: str | None = None,
                 note: str = "") -> list[Event]:
        """Blind transfer to a queue and/or a named agent; the contact keeps its age and history."""
        c = self._contact(contact)
        self._expect(c, (ContactState.CONNECTED, ContactState.HELD, ContactState.QUEUED), "transfer")
        queue = self._queue(to_queue or c.queue)
        self._check_routable(queue, c.channel, c.own_requirements)
        if to_agent is not None:
            self._agent(to_agent)
        t = self._begin(now)
        until = t + queue.preferred_agent_timeout_s if to_agent else None
        self._emit(ContactTransferred(t, c.id, c.agent, queue.id, to_agent, note, until))
        return self._done()

    def requeue(self, contact: str, now: float, *, note: str = "requeued") -> list[Event]:
        """Put a contact the agent holds back in its queue, at its old place."""
        c = self._contact(contact)
        self._expect(c, (ContactState.CONNECTED, ContactState.HELD), "requeue")
        return self.transfer(contact, now, to_queue=c.queue, note=note)

    def end(self, contact: str, now: float) -> list[Event]:
        """The conversation is over (hang-up on either side, chat closed): wrap-up starts."""
        c = self._contact(contact)
        self._expect(c, (ContactState.CONNECTED, ContactState.HELD), "end")
        t = self._begin(now)
        self._end(c, t)
        return self._done()

    def wrap_up(self, contact: str, now: float, code: str | None = None) -> list[Event]:
        c = self._contact(contact)
        self._expect(c, ContactState.WRAP_UP, "wrap up")
        self._check_code(c, code)
        t = self._begin(now)
        self._emit(WrapUpCompleted(t, c.id, c.agent or "", code))
        return self._done()

    def complete(self, contact: str, now: float, code: str | None = None) -> list[Event]:
        """End the conversation and finish wrap-up at once, with the code."""
        c = self._contact(contact)
        self._expect(c, (ContactState.CONNECTED, ContactState.HELD, ContactState.WRAP_UP), "complete")
        self._check_code(c, code)
        t = self._begin(now)
        if c.state is not ContactState.WRAP_UP:
            self._emit(ContactEnded(t, c.id, c.agent or ""))
        if c.state is ContactState.WRAP_UP:
            self._emit(WrapUpCompleted(t, c.id, c.agent or "", code))
        return self._done()

    def abandon(self, contact: str, now: float) -> list[Event]:
        """The caller hung up (or the chat closed) before an agent answered."""
        c = self._contact(contact)
        self._expect(c, (ContactState.QUEUED, ContactState.OFFERED, ContactState.SCHEDULED), "abandon")
        t = self._begin(now)
        waited = max(0.0, t - c.enqueued_at)
        short = waited < self.center.queues[c.queue].short_abandon_s
        self._emit(ContactAbandoned(t, c.id, waited, short))
        return self._done()

    def request_callback(self, contact: str, now: float) -> list[Event]:
        """A waiting caller hangs up and keeps their place: an agent will call them back."""
        c = self._contact(contact)
        self._expect(c, ContactState.QUEUED, "request a callback for")
        if c.channel is not Channel.VOICE:
            raise errors.InvalidTransition(f"contact {contact!r} is a {c.channel} contact, not a voice call")
        self._check_routable(self.center.queues[c.queue], Channel.CALLBACK, c.own_requirements)
        t = self._begin(now)
        self._emit(CallbackRequested(t, c.id))
        return self._done()

    # ------------------------------------------------------------------------------------------
    # a third party on a contact: consult (warm transfer), conference, hand-over to an outside number
    CONSULT_PURPOSES = ("consult", "conference", "transfer")

    def consult(self, contact: str, now: float, *, to_agent: str | None = None, to_number: str | None = None,
                purpose: str = "consult", note: str = "") -> list[Event]:
        """The agent on the contact calls a third party. An agent target must be ready with a free slot on
        the contact's channel; they are reserved (offered nothing else) until the consult completes or is
        cancelled. An outside number is only recorded (the engine's dial plan vets it)."""
        c = self._contact(contact)
        self._expect(c, (ContactState.CONNECTED, ContactState.HELD), purpose)
        if purpose not in self.CONSULT_PURPOSES:
            raise errors.InvalidTransition(
                f"unknown purpose {purpose!r} (one of: {', '.join(self.CONSULT_PURPOSES)})")
        if (to_agent is None) == (to_number is None):
            raise errors.InvalidTransition("give exactly one of to_agent or to_number")
        if self.consult_of(contact) is not None:
            raise errors.InvalidTransition(f"contact {contact!r} already has a third party on it")
        if to_agent is not None:
            b = self._agent(to_agent)
            if to_agent == c.agent:
                raise errors.InvalidTransition(f"agent {to_agent!r} already has contact {contact!r}")
            if c.channel not in b.free:
                raise errors.InvalidTransition(
                    f"agent {to_agent!r} is not available for a {c.channel} contact (not ready or busy)")
        t = self._begin(now)
        self._emit(ConsultStarted(t, c.id, c.agent or "", to_agent, to_number, purpose, note))
        return self._done()

    def consult_complete(self, contact: str, now: float) -> list[Event]:
        """The third party takes over: a consulted agent gets the contact, connected, history and note kept;
        with an outside number the conversation ends for the agent (wrap-up follows)."""
        c = self._contact(contact)
        started = self._consult_started(c)
        self._expect(c, (ContactState.CONNECTED, ContactState.HELD), "complete the consult of")
        t = self._begin(now)
        self._emit(ConsultEnded(t, c.id, started["to_agent"], "completed"))
        if started["to_agent"] is None:
            self._end(c, t)
        return self._done()

    def consult_cancel(self, contact: str, now: float) -> list[Event]:
        """The third party is let go (declined, hung up, or the contact moved on): an agent target is
        released. Allowed in any state, so a reservation never outlives its contact."""
        c = self._contact(contact)
        started = self._consult_started(c)
        t = self._begin(now)
        self._emit(ConsultEnded(t, c.id, started["to_agent"], "cancelled"))
        return self._done()

    def consult_of(self, contact: str) -> dict[str, Any] | None:
        """The history entry of the consult going on for a contact, or None."""
        c = self.contacts.get(contact)
        for h in reversed(c.history if c is not None else ()):
            if h["event"] == "consult_started":
                entry: dict[str, Any] = h
                return entry
            if h["event"] == "consult_ended":
                return None
        return None

    def _consult_started(self, c: Contact) -> dict[str, Any]:
        started = self.consult_of(c.id)
        if started is None:
            raise errors.InvalidTransition(f"contact {c.id!r} has no consult going on")
        return started

    def tick(self, now: float) -> list[Event]:
        """Fire every timer due by `now`: offer timeouts, widening, restrictions, wrap-up, callbacks.

        Each fires at its own due time, so the events say when things really happened."""
        timers, retries = self._timers, self._retries
        # drop what can no longer act (e.g. the timeout of an offer already answered), judged as of now,
        # before earlier timers of this tick run: "early" (an offer that times out in this tick brings its
        # contact back in line, where the end of an older decline still counts)
        timer = self._drop_stale(timers, now)
        retry = self._drop_stale(retries, now)
        if (timer is None or timer.due > now) and (retry is None or retry.due > now):
            if now > self.now:
                self.now = now
            return []
        self._out = []  # a command that does not move the clock to `now` up front
        contacts = self.contacts
        while True:
            timer, retry = timers.first(), retries.first()
            first = timer if timer is not None and timer.due <= now else None
            if retry is not None and retry.due <= now and (first is None or retry < first):
                first = retry
                retries.pop(retry)
            elif first is not None:
                timers.pop(first)
            else:
                break
            t = first.due if first.due > self.now else self.now
            self.now = t
            self._fire(first.kind, contacts.get(first.contact), first.stamp, t)
            self._dispatch(t)
        if now > self.now:
            self.now = now
        return self._done()

    def stats_as_of(self, now: float) -> CenterStats:
        """The statistics with every agent's running activity booked up to `now`, on a copy: reading
        occupancy must not change the router (the journal would not know, and a replay would differ)."""
        stats = copy.copy(self.stats)  # queue counters shared: only read by the caller
        stats.busy_s, stats.staffed_s = defaultdict(float, stats.busy_s), defaultdict(float, stats.staffed_s)
        for a in self.agents.values():
            stats.agent_span(a.activity, a.activity_since, now)
        return stats

    def settle(self, now: float) -> None:
        """Book every agent's running activity up to `now` (for occupancy read-outs; no events)."""
        for a in self.agents.values():
            self.stats.agent_span(a.activity, a.activity_since, now)
            a.clock(now, self.days)

    def next_due(self) -> float | None:
        """When the next timer that can still do something fires.

        Timers that can no longer act (the offer was answered, the wrap-up done) are dropped here, so
        callers do not tick for nothing. Dropping early is safe: every change that makes a timer's work
        matter again (a missed offer back in line, a contact re-entering its queue) sets a timer of its own."""
        timer = self._drop_stale(self._timers, None)
        retry = self._drop_stale(self._retries, None)
        if timer is None or (retry is not None and retry.due < timer.due):
            return retry.due if retry is not None else None
        return timer.due

    def _drop_stale(self, timers: Timers, until: float | None) -> Timer | None:
        """Drop the first timers while they can no longer act (judged early: see `_stale`), up to those due
        by `until` (None: whenever); the first one left."""
        first = timers.first()
        while first is not None and (until is None or first.due <= until) and self._stale(first, early=True):
            timers.pop(first)
            first = timers.first()
        return first

    # ------------------------------------------------------------------------------------------
    # reads
    def agent_state(self, agent: str) -> AgentState:
        a = self._agent(agent)
        return a.state({cid: self.contacts[cid].state for cid in a.work})

    def waiting(self, queue: str) -> list[Contact]:
        """The queue's waiting contacts in the order they would be served (offered ones first)."""
        self._queue(queue)
        boost = self.center.queues[queue].priority_boost_per_s
        return sorted(self._waiting[queue].values(),
                      key=lambda c: (c.state is not ContactState.OFFERED, *_line_key(boost, c)))

    def position(self, contact: str) -> int | None:
        """1-based place in line among contacts not yet offered; None once it has left the line. O(log n)."""
        c = self._contact(contact)
        rc: RouteClass | None = c.route_class
        key = c.line_key
        if c.state is not ContactState.QUEUED or rc is None or key is None:
            return None
        line = self._waiting[c.queue]
        return 1 + rc.line.ahead_of(key, lambda: (w.line_key for w in line.values()
                                                  if w.route_class is not None and w.line_key is not None))

    def in_line(self, queue: str) -> int:
        """Contacts waiting in the queue's line, not yet offered (a caller joining now is told place in_line + 1)."""
        return self._queued[self._queue(queue).id]

    def serving(self, queue: str) -> int:
        """Agents logged in who serve the queue at its base ring (ready or not)."""
        qid = self._queue(queue).id
        found = self._serving.get(qid)
        if found is None:  # (every arrival asks, until the queue has a departure gap to forecast with)
            agents, out = self.agents, Presence.LOGGED_OUT
            found = self._serving[qid] = sum(1 for n in self._base_agents(qid) if agents[n].presence is not out)
        return found

    def free_to_serve(self, queue: str, channel: Channel) -> int:
        """Ready agents with a slot free on `channel` who serve the queue at its base ring: a contact joining
        now, with nobody in line, would be offered at once."""
        return len(self._free[_channel(channel)] & self._base_agents(self._queue(queue).id))

    def expected_wait(self, queue: str, position: int) -> float:
        """Expected seconds until the contact at `position` (1-based) is answered."""
        return self.stats.queues[self._queue(queue).id].estimator.expected_wait(position, self._fallback_gap(queue))

    def wait_forecasts(self, queue: str, position: int) -> tuple[float, float, float]:
        """The estimator's three forecasts for `position` (by gap, by place, Asterisk's), before blending."""
        return self.stats.queues[self._queue(queue).id].estimator.forecasts(position, self._fallback_gap(queue))

    def _fallback_gap(self, queue: str) -> float:
        """The gap between departures to forecast with: the smoothed one, or before any was seen, handle
        time over the agents logged in to serve."""
        qs = self.stats.queues[queue]
        if qs.estimator.gap_s is not None:  # not needed: spare the scan of the queue's agents
            return qs.estimator.gap_s
        return (qs.aht_s or DEFAULT_AHT_S) / max(self.serving(queue), 1)

    def queue_snapshot(self, queue: str, now: float | None = None) -> dict[str, Any]:
        """Live statistics for a wallboard."""
        q = self._queue(queue)
        now = self.now if now is None else now
        waiting = self._waiting[q.id]
        states: dict[str, int] = {s.value: 0 for s in AgentState}
        for name in self._base_agents(q.id):
            a = self.agents[name]
            states[a.state({cid: self.contacts[cid].state for cid in a.work}).value] += 1
        oldest = min((c.enqueued_at for c in waiting.values()), default=None)
        qs = self.stats.queues[q.id]
        current = qs.intervals.get(self.stats.interval(now))
        return {
            "queue": q.id,
            "waiting": len(waiting),
            "oldest_wait_s": (now - oldest) if oldest is not None else 0.0,
            "agents": states,
            "expected_wait_s": [self.expected_wait(q.id, p) for p in range(1, min(len(waiting), 10) + 1)],
            "asterisk_holdtime_s": qs.estimator.asterisk_s,
            "interval": current.report() if current else None,
        }

    def snapshot(self) -> dict[str, Any]:
        """The router's logical state as plain data: equal snapshots mean equal routers."""
        contacts = {}
        for c in self.contacts.values():
            contacts[c.id] = {k: getattr(c, k) for k in Contact.__dataclass_fields__
                              if k not in ("route_class", "heap_token", "declined_by")}
            contacts[c.id]["declined_by"] = sorted(c.declined_by.items())
        agents = {a.id: {"presence": a.presence.value, "reason": a.reason, "load": dict(a.load),
                         "offers": dict(a.offers), "work": dict(a.work), "idle_since": a.idle_since,
                         "rona_streak": a.rona_streak, "handled_today": a.handled_today,
                         "busy_s": a.busy_s, "staffed_s": a.staffed_s, "occ_day": a.occ_day,
                         "busy_today_s": a.busy_today_s, "staffed_today_s": a.staffed_today_s}
                  for a in self.agents.values()}
        return {
            "contacts": contacts,
            "agents": agents,
            "waiting": {q: [c.id for c in self.waiting(q)] for q in self._waiting},
            "stats": {q: {i: c.report() for i, c in qs.intervals.items()} for q, qs in self.stats.queues.items()},
            "rr": dict(self._rr_last),
        }

    # ------------------------------------------------------------------------------------------
    # event application: the only place state changes
    def apply(self, event: Event) -> None:
        if event.t > self.now:
            self.now = event.t
        self._apply_table[type(event)](event)

    def _on_logged_in(self, e: AgentLoggedIn) -> None:
        a = self.agents[e.agent]
        a.presence, a.reason = Presence.NOT_READY, None
        a.idle_since = e.t
        self._serving.clear()
        self._touch(a, e.t)

    def _on_logged_out(self, e: AgentLoggedOut) -> None:
        a = self.agents[e.agent]
        a.presence, a.reason = Presence.LOGGED_OUT, None
        self._serving.clear()
        self._touch(a, e.t)

    def _on_ready(self, e: AgentReady) -> None:
        a = self.agents[e.agent]
        if a.presence is not Presence.READY:
            a.idle_since = e.t
            # back from not ready (a RONA, a break): contacts they missed may be offered to them again,
            # or the only qualified agent's miss would keep a caller waiting beside them for ever
            for cid in self._missed_by.pop(a.id, ()):
                missed = self.contacts.get(cid)  # (finished contacts may be retired already)
                if missed is not None:
                    missed.declined_by.pop(a.id, None)
        a.presence, a.reason, a.rona_streak = Presence.READY, None, 0
        self._touch(a, e.t)

    def _on_not_ready(self, e: AgentNotReady) -> None:
        a = self.agents[e.agent]
        a.presence, a.reason = Presence.NOT_READY, e.reason
        if e.reason == RONA_REASON:
            a.rona_streak = 0
        self._touch(a, e.t)

    def _new_contact(self, e: ContactQueued | CallbackScheduled, state: ContactState) -> Contact:
        queue = self.center.queues[e.queue]
        self._arrivals += 1
        own = tuple(e.requirements)
        merged = self._merged.get((queue.id, own))
        if merged is None:
            merged = self._merged[(queue.id, own)] = merge_requirements(queue.skills, own)
        c = Contact(id=e.contact, queue=e.queue, channel=_channel(e.channel), requirements=merged,
                    own_requirements=own, priority=e.priority,
                    attributes=dict(e.attributes), enqueued_at=e.enqueued_at, seq=self._arrivals, state=state)
        c.history.append({"t": e.t, "event": "queued", "queue": e.queue})
        self.contacts[c.id] = c
        if state is ContactState.QUEUED:  # a booked callback is offered when it comes due
            self.stats.counters(e.queue, e.t).offered += 1
        return c

    def _on_queued(self, e: ContactQueued) -> None:
        c = self._new_contact(e, ContactState.QUEUED)
        if e.preferred_agent is not None and e.restrict_until is not None and e.restrict_until > e.t:
            c.restrict_to, c.restrict_until = e.preferred_agent, e.restrict_until
        self._enter_line(c, e.t)
        # the wait it would be told at its place, kept to teach the wait estimator when it is answered. The
        # place is known for free when it joins at the end of the line; one whose priority (or an age kept
        # from elsewhere) put it ahead of someone teaches nothing: its place would cost keeping the line's
        # index up on every change, and told the end of the line it would teach too short a wait per place
        rc: RouteClass = c.route_class
        if c.line_key == rc.line.tail:
            place = self._queued[c.queue]
            estimator = self.stats.queues[c.queue].estimator
            c.told = (c.queue, place, estimator.forecasts(place, self._fallback_gap(c.queue)))

    def _on_scheduled(self, e: CallbackScheduled) -> None:
        c = self._new_contact(e, ContactState.SCHEDULED)
        self._timer(e.schedule_at, _CALLBACK, c.id, e.schedule_at)

    def _on_callback_due(self, e: CallbackDue) -> None:
        c = self.contacts[e.contact]
        c.state = ContactState.QUEUED
        self.stats.counters(c.queue, e.t).offered += 1
        self._enter_line(c, e.t)

    def _on_callback_requested(self, e: CallbackRequested) -> None:
        c = self.contacts[e.contact]
        self._leave_class(c)
        c.channel = Channel.CALLBACK
        c.told = None  # off the line now: the wait until the call back says nothing of the line's pace
        c.history.append({"t": e.t, "event": "callback_requested"})
        self._enter_class(c, e.t)

    def _on_widened(self, e: ContactWidened) -> None:
        c = self.contacts[e.contact]
        self._leave_class(c)
        if c.restrict_until is not None and e.t >= c.restrict_until:
            c.restrict_to = c.restrict_until = None
        c.ring = e.ring
        self._enter_class(c, e.t)

    def _on_offered(self, e: ContactOffered) -> None:
        c = self.contacts[e.contact]
        a = self.agents[e.agent]
        self._leave_class(c)
        if e.t <= c.enqueued_at:
            c.told = None  # offered as it arrived: it never stood in line, nobody was told a wait
        c.state, c.agent, c.offer_deadline = ContactState.OFFERED, e.agent, e.deadline
        c.offers += 1
        a.hold_slot(c.id, c.channel, offer=True)
        ranks = self._linear[c.queue]
        self._rr_last[c.queue] = ranks.get(a.id, len(ranks) + a.order)  # _linear_rank, inlined
        self._timer(e.deadline, _OFFER, c.id, e.deadline, self.center.queues[c.queue].offer_timeout_s)
        self._touch(a, e.t)

    def _on_missed(self, e: OfferMissed) -> None:
        c = self.contacts[e.contact]
        a = self.agents[e.agent]
        a.release_slot(c.id)
        a.rona_streak += 1
        c.state, c.agent, c.offer_deadline = ContactState.QUEUED, None, None
        until = e.t + self.center.decline_retry_s
        c.declined_by[e.agent] = until
        self._timer(until, _RETRY, c.id, until, self.center.decline_retry_s)  # then try them again
        self._missed_by.setdefault(e.agent, set()).add(c.id)
        c.history.append({"t": e.t, "event": "offer_missed", "agent": e.agent, "reason": e.reason})
        self.stats.counters(c.queue, e.t).ronas += 1
        self._enter_class(c, e.t)  # same enqueued_at and seq: its old place
        self._touch(a, e.t)

    def _on_answered(self, e: ContactAnswered) -> None:
        c = self.contacts[e.contact]
        a = self.agents[e.agent]
        a.promote_offer(c.id)
        a.rona_streak = 0
        day = self.days.day(e.t)
        if day != a.day:
            a.day, a.handled_today = day, 0
        a.handled_today += 1
        c.state, c.offer_deadline, c.answered_at = ContactState.CONNECTED, None, e.t
        c.declined_by.clear()
        del self._waiting[c.queue][c.id]
        c.history.append({"t": e.t, "event": "answered", "agent": e.agent, "queue": c.queue})
        qs = self.stats.queues[c.queue]
        if c.first_answered_at is None:
            c.first_answered_at = e.t
            wait = e.t - c.enqueued_at
            counters = self.stats.counters(c.queue, e.t)
            counters.answered += 1
            counters.answer_wait_s += wait
            if wait <= qs.threshold_s:
                counters.answered_within += 1
            told = c.told
            qs.estimator.answered(wait, told[1:] if told is not None and told[0] == c.queue else None)
            c.told = None
        qs.estimator.departed(e.t, self._queued[c.queue])
        # no re-index: the offer's slot simply becomes work, so load and free channels are unchanged

    def _on_held(self, e: ContactHeld) -> None:
        c = self.contacts[e.contact]
        c.state, c.hold_started = ContactState.HELD, e.t

    def _on_resumed(self, e: ContactResumed) -> None:
        c = self.contacts[e.contact]
        c.hold_s += e.t - (c.hold_started or e.t)
        c.state, c.hold_started = ContactState.CONNECTED, None

    def _close_talk(self, c: Contact, t: float) -> None:
        if c.state is ContactState.HELD:
            c.hold_s += t - (c.hold_started or t)
            c.hold_started = None
        if c.answered_at is not None:
            c.talk_s += t - c.answered_at
            c.answered_at = None

    def _on_transferred(self, e: ContactTransferred) -> None:
        c = self.contacts[e.contact]
        counters = self.stats.counters(c.queue, e.t)
        counters.transfers += 1
        if c.state is ContactState.QUEUED:
            self._leave_class(c)
            del self._waiting[c.queue][c.id]
        if c.agent is not None:
            self._close_talk(c, e.t)
            a = self.agents[c.agent]
            a.release_slot(c.id)
            a.idle_since = e.t
            self._touch(a, e.t)
        c.history.append({"t": e.t, "event": "transferred", "from_queue": c.queue, "from_agent": e.from_agent,
                          "to_queue": e.to_queue, "to_agent": e.to_agent, "note": e.note})
        queue = self.center.queues[e.to_queue]
        c.queue = e.to_queue
        c.requirements = merge_requirements(queue.skills, c.own_requirements)
        c.state, c.agent = ContactState.QUEUED, None
        c.declined_by.clear()
        c.restrict_to, c.restrict_until = (e.to_agent, e.restrict_until) if e.to_agent else (None, None)
        self._enter_line(c, e.t)

    def _on_ended(self, e: ContactEnded) -> None:
        c = self.contacts[e.contact]
        self._close_talk(c, e.t)
        c.state, c.ended_at = ContactState.WRAP_UP, e.t
        c.history.append({"t": e.t, "event": "ended"})
        queue = self.center.queues[c.queue]
        if not queue.wrap_up_code_required and queue.wrap_up_s > 0:
            due = e.t + queue.wrap_up_s
            self._timer(due, _WRAP, c.id, due, queue.wrap_up_s)
        # wrap-up keeps the slot: nothing to re-index until it completes

    def _on_wrapped(self, e: WrapUpCompleted) -> None:
        c = self.contacts[e.contact]
        a = self.agents[e.agent]
        a.release_slot(c.id)
        a.idle_since = e.t
        wrap = e.t - (c.ended_at or e.t)
        c.state, c.wrap_up_code, c.agent = ContactState.COMPLETED, e.code, None
        c.history.append({"t": e.t, "event": "completed", "code": e.code})
        self._retire(c)
        counters = self.stats.counters(c.queue, e.t)
        counters.handled += 1
        counters.talk_s += c.talk_s - c.hold_s
        counters.hold_s += c.hold_s
        counters.wrap_s += wrap
        self.stats.queues[c.queue].handled(c.talk_s + wrap)
        self._touch(a, e.t)

    def _on_abandoned(self, e: ContactAbandoned) -> None:
        c = self.contacts[e.contact]
        was = c.state
        if was is ContactState.OFFERED and c.agent is not None:
            a = self.agents[c.agent]
            a.release_slot(c.id)
            self._touch(a, e.t)
        self._leave_class(c)
        self._waiting[c.queue].pop(c.id, None)
        c.state, c.agent, c.offer_deadline = ContactState.ABANDONED, None, None
        c.history.append({"t": e.t, "event": "abandoned", "waited_s": e.waited_s})
        self._retire(c)
        if was is ContactState.SCHEDULED:
            return  # a booking cancelled before it came due was never offered: not an abandon either
        counters = self.stats.counters(c.queue, e.t)
        qs = self.stats.queues[c.queue]
        if e.short:
            counters.short_abandoned += 1
        else:
            counters.abandoned += 1
            counters.abandon_wait_s += e.waited_s
            if e.waited_s > qs.threshold_s:
                counters.abandoned_after += 1
        qs.estimator.departed(e.t, self._queued[c.queue])

    def _on_consult_started(self, e: ConsultStarted) -> None:
        c = self.contacts[e.contact]
        # "agent" is the consulted agent (as in an offer), so they may read the contact and its history
        c.history.append({"t": e.t, "event": "consult_started", "from_agent": e.agent, "agent": e.to_agent,
                          "to_agent": e.to_agent, "to_number": e.to_number, "purpose": e.purpose, "note": e.note})
        if e.to_agent is not None:
            b = self.agents[e.to_agent]
            b.hold_slot(c.id, c.channel, offer=True)  # a reservation, like an offer: nothing else meanwhile
            self._touch(b, e.t)

    def _on_consult_ended(self, e: ConsultEnded) -> None:
        c = self.contacts[e.contact]
        started = self.consult_of(c.id) or {}
        entry = {"t": e.t, "event": "consult_ended", "outcome": e.outcome, "purpose": started.get("purpose"),
                 "to_agent": e.to_agent, "to_number": started.get("to_number"), "note": started.get("note", "")}
        if e.outcome == "completed":
            self.stats.counters(c.queue, e.t).transfers += 1
        if e.to_agent is None:  # an outside number: consult_complete ends the conversation next
            c.history.append(entry)
            return
        b = self.agents[e.to_agent]
        if e.outcome != "completed":
            b.release_slot(c.id)
            c.history.append(entry)
            self._touch(b, e.t)
            return
        # the consulted agent takes the contact over, as if they had answered it; the first agent is free
        self._close_talk(c, e.t)
        if c.agent is not None:
            a = self.agents[c.agent]
            a.release_slot(c.id)
            a.idle_since = e.t
            self._touch(a, e.t)
        entry["from_agent"], entry["agent"] = c.agent, e.to_agent
        b.promote_offer(c.id)
        c.state, c.agent, c.answered_at = ContactState.CONNECTED, e.to_agent, e.t
        c.history.append(entry)
        self._touch(b, e.t)

    # ------------------------------------------------------------------------------------------
    # helpers of apply
    def _touch(self, a: AgentRuntime, t: float) -> None:
        """Re-index an agent after a change: free sets, occupancy clock, pending match.

        Runs several times per routing decision: `a.clock(t)` and the free channels are written out here."""
        activity, since = a.activity, a.activity_since
        if activity == Activity.BUSY or activity == Activity.IDLE:
            if t > since:
                self.stats.agent_span(activity, since, t)
            if activity == Activity.BUSY:
                a.busy_s += t - since
            a.staffed_s += t - since
            a.book_today(activity, since, t, self.days)
        a.activity_since = t
        presence = a.presence
        if presence is Presence.LOGGED_OUT:
            a.activity = Activity.OFF
        elif a.load:
            a.activity = Activity.BUSY
        else:
            a.activity = Activity.IDLE if presence is Presence.READY else Activity.AWAY
        if presence is not Presence.READY:
            free = NO_CHANNELS
        elif not a.load:
            free = a.full
        else:
            free = a.free_channels(self.center.blocks)
        old = a.free
        if free == old:
            if free and a.idle_since != a.indexed_since:  # idle again, still free (a chat ended, email free)
                self._index_idle(a, free)
            return
        a.free = free
        for ch in old - free:
            self._free[ch].discard(a.id)
        gained = free - old
        for ch in gained:
            self._free[ch].add(a.id)
        if gained:
            self._pending_agents.append(a.id)
        if free:
            self._index_idle(a, free if a.idle_since != a.indexed_since else gained)

    def _index_idle(self, a: AgentRuntime, channels: frozenset[Channel]) -> None:
        """Give the agent an entry at their idle_since in the idle index of each of `channels`."""
        for ch in channels:
            self._idle[ch].add(a)
        a.indexed_since = a.idle_since

    def _retire(self, c: Contact) -> None:
        """Finished contacts stay readable for a while, then only the store has them (bounded memory)."""
        self._finished.append(c.id)
        while len(self._finished) > self.keep_finished:
            self.contacts.pop(self._finished.popleft(), None)

    def _enter_line(self, c: Contact, t: float) -> None:
        self._waiting[c.queue][c.id] = c
        self._enter_class(c, t)

    def _ring_for_age(self, queue: QueueConfig, enqueued_at: float, t: float) -> int:
        # compare instants, as the widening timer does (due = enqueued_at + after_s): comparing the
        # age t - enqueued_at with after_s can round below it at t == due and miss the step for good
        ring = 0
        for step in queue.steps:
            if enqueued_at + step.after_s <= t:
                ring += 1
            else:
                break
        return ring

    def _enter_class(self, c: Contact, t: float) -> None:
        queue = self.center.queues[c.queue]
        c.ring = self._ring_for_age(queue, c.enqueued_at, t) if queue.steps else 0
        restrict = c.restrict_to if (c.restrict_until is not None and c.restrict_until > t) else None
        if restrict is None:
            c.restrict_to = c.restrict_until = None
        rc = self._class_cache.get((queue.id, c.channel, c.requirements, c.ring, restrict))  # _class_for's
        if rc is None:
            rc = self._class_for(queue, c.channel, c.requirements, c.ring, restrict)
        if restrict is not None and not rc.agents:
            # the named agent cannot take it at all: don't make the caller wait for nothing
            c.restrict_to = c.restrict_until = None
            rc = self._class_for(queue, c.channel, c.requirements, c.ring, None)
        self._token += 1
        c.heap_token = self._token
        c.route_class = rc
        c.line_key = key = _line_key(rc.boost, c)
        heapq.heappush(rc.heap, Place(key[0], c.enqueued_at, c.seq, self._token, c))
        rc.size += 1
        line = rc.line
        if key > line.tail or not self._queued[c.queue]:  # LineIndex.tail: at or past every key in line
            line.tail = key
        self._queued[c.queue] += 1
        if line.live:
            line.note(True, key)
        if c.ring < len(queue.steps):
            due = c.enqueued_at + queue.steps[c.ring].after_s
            self._timer(due, _WIDEN, c.id, due)
        if c.restrict_to is not None and c.restrict_until is not None:
            self._timer(c.restrict_until, _RESTRICT, c.id, c.restrict_until)
        self._pending_contacts.append(c.id)

    def _leave_class(self, c: Contact) -> None:
        rc: RouteClass | None = c.route_class
        if rc is None:
            return
        rc.size -= 1
        self._queued[rc.queue.id] -= 1
        if rc.line.live and c.line_key is not None:
            rc.line.note(False, c.line_key)
        c.route_class = None
        c.heap_token = 0  # the heap entry is now stale; dropped lazily when it reaches the top
        if rc.heap and rc.heap[0].contact is c:
            heapq.heappop(rc.heap)

    def _class_for(self, queue: QueueConfig, channel: Channel, requirements: tuple[SkillRequirement, ...],
                   ring: int, restrict: str | None) -> RouteClass:
        fast_key = (queue.id, channel, requirements, ring, restrict)
        rc = self._class_cache.get(fast_key)
        if rc is not None:
            return rc
        rule = ring_rule(self.center, queue, requirements, ring)
        key = (queue.id, channel, rule, restrict)
        rc = self._classes.get(key)
        if rc is None:
            rc = RouteClass(key, queue, channel, rule, restrict, self._lines[queue.id])
            names = self._agents_for(rule)
            if restrict is not None:
                names = names & {restrict}
            for name in names:  # (each agent's own list of classes keeps the order classes were made in)
                if self.agents[name].cfg.capacity.get(channel, 0) > 0:
                    rc.agents.add(name)
                    self._agent_classes[name].setdefault(channel, []).append(rc)
            self._classes[key] = rc
        self._class_cache[fast_key] = rc
        return rc

    def _agents_for(self, rule: RingRule) -> set[str]:
        """Agents a ring rule admits (capacity aside), from a (skill, level) index instead of a full scan."""
        if rule.requirements:
            sets = sorted((self._skill_at_least(r.skill, r.min_level) for r in rule.requirements), key=len)
            names = set(sets[0]).intersection(*sets[1:])
        else:
            names = set(self.agents)
        if rule.groups:
            names = {n for n in names if not rule.groups.isdisjoint(self.agents[n].cfg.groups)}
        for other in rule.overflow:
            names |= self._agents_for(other)
        return names

    def _skill_at_least(self, skill: str, level: int) -> frozenset[str]:
        key = (skill, level)
        found = self._at_least.get(key)
        if found is None:
            if level <= 0:  # (an agent without the skill has it at level 0)
                found = frozenset(self.agents)
            else:
                levels = self._skill_levels.get(skill, [])
                found = frozenset(a for at in levels[level:] for a in at)
            self._at_least[key] = found
        return found

    def _base_agents(self, queue: str) -> frozenset[str]:
        """Agents who serve the queue at its base ring (cached: configuration does not change in a router)."""
        found = self._base_agent_sets.get(queue)
        if found is None:
            found = frozenset(self._agents_for(self._base_rule(queue)))
            self._base_agent_sets[queue] = found
        return found

    def _base_rule(self, queue: str) -> RingRule:
        q = self.center.queues[queue]
        return ring_rule(self.center, q, merge_requirements(q.skills), 0)

    def _linear_rank(self, queue: str, a: AgentRuntime) -> int:
        ranks = self._linear[queue]
        return ranks.get(a.id, len(ranks) + a.order)

    def _timer(self, due: float, kind: int, contact: str, stamp: float, delay: float = -1.0) -> None:
        """Set a timer; `delay`: the fixed delay from now it runs, if it is one (see `Timers`)."""
        self._timer_seq += 1
        timer = Timer(due, self._timer_seq, kind, contact, stamp)
        (self._retries if kind == _RETRY else self._timers).add(timer, delay)

    # ------------------------------------------------------------------------------------------
    # decisions
    def _fire(self, kind: int, c: Contact | None, stamp: float, t: float) -> None:
        if c is None:
            return
        if kind == _OFFER:
            if c.state is ContactState.OFFERED and c.offer_deadline == stamp:
                self._miss(c, t, "timeout")
        elif kind in (_WIDEN, _RESTRICT):
            if c.state is ContactState.QUEUED:
                ring = self._ring_for_age(self.center.queues[c.queue], c.enqueued_at, t)
                expired = c.restrict_until is not None and t >= c.restrict_until
                if ring != c.ring or expired:
                    self._emit(ContactWidened(t, c.id, ring))
        elif kind == _WRAP:
            if c.state is ContactState.WRAP_UP and c.ended_at is not None and c.agent is not None:
                queue = self.center.queues[c.queue]
                if not queue.wrap_up_code_required and c.ended_at + queue.wrap_up_s == stamp:
                    self._emit(WrapUpCompleted(t, c.id, c.agent, None))
        elif kind == _CALLBACK:
            if c.state is ContactState.SCHEDULED:
                self._emit(CallbackDue(t, c.id))
        elif kind == _RETRY:
            if c.state is ContactState.QUEUED and c.route_class is not None:
                self._pending_contacts.append(c.id)  # a decline ran out: match it again (no state changes)

    def _stale(self, timer: Timer, *, early: bool = False) -> bool:
        """A timer that can no longer do anything when it comes due (the checks `_fire` makes). `early`:
        asked before it is due, so only what no later change can undo without setting a timer of its own."""
        kind, stamp = timer.kind, timer.stamp
        c = self.contacts.get(timer.contact)
        if c is None or c.state is ContactState.COMPLETED or c.state is ContactState.ABANDONED:
            return True
        if kind == _OFFER:
            return c.state is not ContactState.OFFERED or c.offer_deadline != stamp
        if kind == _WIDEN or kind == _RESTRICT:
            return c.state is not ContactState.QUEUED
        if kind == _RETRY:
            # before it is due, the contact may be out on another offer and back in line by then: keep it
            return (not early and c.state is not ContactState.QUEUED) or stamp not in c.declined_by.values()
        if kind == _WRAP:
            return c.state is not ContactState.WRAP_UP
        return c.state is not ContactState.SCHEDULED  # _CALLBACK

    def _miss(self, c: Contact, t: float, reason: str) -> None:
        agent = c.agent or ""
        self._emit(OfferMissed(t, c.id, agent, reason))
        a = self.agents[agent]
        if a.rona_streak >= self.center.rona_misses and a.presence is Presence.READY:
            self._emit(AgentNotReady(t, agent, RONA_REASON))

    def _end(self, c: Contact, t: float) -> None:
        agent = c.agent or ""
        self._emit(ContactEnded(t, c.id, agent))
        queue = self.center.queues[c.queue]
        if not queue.wrap_up_code_required and queue.wrap_up_s == 0:
            self._emit(WrapUpCompleted(t, c.id, agent, None))

    def _dispatch(self, t: float) -> None:
        agents, contacts = self._pending_agents, self._pending_contacts
        free = self._free
        while agents or contacts:
            if agents:
                self._match_agent(self.agents[agents.popleft()], t)
            else:
                c = self.contacts[contacts.popleft()]
                # nobody free on its channel (the usual case when contacts wait): nothing to match
                if c.state is ContactState.QUEUED and c.route_class is not None and free[c.channel]:
                    self._match_contact(c, t)

    def _match_agent(self, a: AgentRuntime, t: float) -> None:
        """Offer the freed agent the best contact they may take, while they have room."""
        while a.free:
            best = self._best_for(a, t)
            if best is None:
                return
            self._offer(best, a, t)

    def _best_for(self, a: AgentRuntime, t: float) -> Contact | None:
        """The best head among the classes the agent qualifies for on their free channels.

        Best: highest ageing priority (equal within 1e-9 counts as equal, so float noise never beats
        age), then oldest, then first arrived. This is the hot path of routing: kept flat on purpose."""
        classes = self._agent_classes[a.id]
        agent = a.id
        best: Contact | None = None
        lo = hi = best_at = 0.0  # the best's priority -/+ 1e-9, and its age
        best_seq = 0
        for ch in a.free:
            for rc in classes.get(ch, ()):
                if not rc.size:
                    continue
                head = rc.heap[0]
                c = head.contact
                if c.heap_token != head.token or (c.declined_by and c.declined_by.get(agent, t) > t):
                    found = self._head(rc, agent, t)
                    if found is None:
                        continue
                    c = found
                at = c.enqueued_at
                eff = c.priority + rc.boost * (t - at)
                if best is not None:
                    if eff < lo:  # lower priority: the usual loser, settled by one comparison
                        continue
                    if eff <= hi and (at > best_at or (at == best_at and c.seq >= best_seq)):
                        continue  # the same priority but no older
                best, best_at, best_seq = c, at, c.seq
                lo, hi = eff - 1e-9, eff + 1e-9
        return best

    def _head(self, rc: RouteClass, agent: str, t: float) -> Contact | None:
        """The first live contact of the class that `agent` has not missed lately (see `decline_retry_s`)."""
        heap = rc.heap
        while heap:
            head = heap[0]
            c = head.contact
            if c.heap_token != head.token:
                heapq.heappop(heap)
                continue
            if c.declined_by.get(agent, t) <= t:
                return c
            break
        else:
            return None
        # rare: the head was missed by this agent: walk the heap in order, without disturbing it
        for place in in_order(heap):
            c = place.contact
            if c.heap_token == place.token and c.declined_by.get(agent, t) <= t:
                return c
        return None

    def _match_contact(self, c: Contact, t: float) -> None:
        rc: RouteClass = c.route_class  # (typed: compiled, its fields are then read directly)
        free = self._free[c.channel]
        queue = self.center.queues[c.queue]
        if queue.strategy is Strategy.LONGEST_IDLE and len(free) > self.idle_index_from:
            found = self._idle[c.channel].first(rc.agents, c.declined_by, t)
            if found is None:
                return
            if isinstance(found, AgentRuntime):
                self._offer_best(c, found, t)
                return
            # (False: many free agents ahead are not the class's; the sets settle it)
        names = rc.agents & free  # (set intersection walks the smaller of the two itself)
        if c.declined_by:
            names = names - {a for a, until in c.declined_by.items() if until > t}
        if not names:
            return
        candidates = [self.agents[n] for n in names]
        # ranks run to len(linear_order) + agent count (see _linear_rank): the round-robin turn spans them all
        chosen = choose(queue, c, candidates, t, self._rr_last.get(queue.id, -1),
                        lambda a: self._linear_rank(queue.id, a), len(self.agents) + len(self._linear[queue.id]),
                        days=self.days)
        self._offer_best(c, chosen, t)

    def _offer_best(self, c: Contact, chosen: AgentRuntime, t: float) -> None:
        # the agent gets the best contact they may take: usually `c`, but contacts that became takeable
        # at this same instant (several arrivals, declines ending together) may rank above it
        best = self._best_for(chosen, t) or c
        self._offer(best, chosen, t)
        if best is not c and c.state is ContactState.QUEUED:
            self._pending_contacts.appendleft(c.id)  # still waiting: try the other free agents next

    def _offer(self, c: Contact, a: AgentRuntime, t: float) -> None:
        self._emit(ContactOffered(t, c.id, a.id, t + self.center.queues[c.queue].offer_timeout_s))

    # ------------------------------------------------------------------------------------------
    # command plumbing
    def _begin(self, now: float) -> float:
        """Open a command at `now`; `_done` closes it. Commands check their input first, so a refused
        command changes nothing; time never runs backwards inside the core (a late clock reading counts
        as "now")."""
        t = now if now > self.now else self.now
        self.now = t
        retries = self._retries
        retry = retries.first()
        while retry is not None and retry.due <= t:  # declines that ran out: match those contacts again
            retries.pop(retry)
            # (no events: this marks the contact for matching)
            self._fire(retry.kind, self.contacts.get(retry.contact), retry.stamp, t)
            retry = retries.first()
        self._out = []
        return t

    def _done(self) -> list[Event]:
        """Close a command opened by `_begin`: match what it freed, hand back its events."""
        if self._pending_agents or self._pending_contacts:
            self._dispatch(self.now)
        out, self._out = self._out or [], None
        return out

    def _emit(self, event: Event) -> None:
        assert self._out is not None
        self._out.append(event)
        if event.t > self.now:  # apply(), inlined: this runs for every event
            self.now = event.t
        self._apply_table[type(event)](event)

    def _agent(self, agent: str) -> AgentRuntime:
        try:
            return self.agents[agent]
        except KeyError:
            raise errors.UnknownAgent(f"unknown agent {agent!r}") from None

    def _queue(self, queue: str) -> QueueConfig:
        try:
            return self.center.queues[queue]
        except KeyError:
            raise errors.UnknownQueue(f"unknown queue {queue!r}") from None

    def _contact(self, contact: str) -> Contact:
        try:
            return self.contacts[contact]
        except KeyError:
            raise errors.UnknownContact(f"unknown contact {contact!r}") from None

    def _expect(self, c: Contact, states: ContactState | tuple[ContactState, ...], action: str) -> None:
        allowed = states if isinstance(states, tuple) else (states,)
        if c.state not in allowed:
            raise errors.InvalidTransition(f"cannot {action} contact {c.id!r}: it is {c.state.value}")

    def _offered_to(self, contact: str, agent: str, now: float) -> Contact:
        c = self._contact(contact)
        self._agent(agent)
        if c.state is not ContactState.OFFERED or c.agent != agent:
            if agent in c.declined_by:
                raise errors.OfferExpired(f"the offer of contact {contact!r} to {agent!r} has already ended")
            raise errors.NotYourContact(f"contact {contact!r} is not offered to agent {agent!r}")
        if c.offer_deadline is not None and now > c.offer_deadline:
            raise errors.OfferExpired(f"the offer of contact {contact!r} to {agent!r} timed out")
        return c

    def _check_requirements(self, reqs: Iterable[SkillRequirement]) -> None:
        known = self._known_skills
        for r in reqs:
            if r.skill not in known:
                raise errors.InvalidContact(f"unknown skill {r.skill!r}")
            if not MIN_LEVEL <= r.min_level <= MAX_LEVEL:
                raise errors.InvalidContact(f"skill level for {r.skill!r} must be {MIN_LEVEL}-{MAX_LEVEL}")

    def _check_routable(self, queue: QueueConfig, channel: Channel, reqs: Iterable[SkillRequirement]) -> None:
        """Refuse a contact that no configured agent could ever take, even at the queue's widest ring
        (a channel nobody staffs, a level nobody has): it would wait until the caller gave up."""
        needs = merge_requirements(queue.skills, reqs)
        key = (queue.id, channel, needs)
        ok = self._routable.get(key)
        if ok is None:
            rule = ring_rule(self.center, queue, needs, len(queue.steps))
            ok = self._routable[key] = any(
                a.cfg.capacity.get(channel, 0) > 0 and serves(self.center, a.cfg, rule) for a in self.agents.values())
        if not ok:
            wanted = ", ".join(f"{r.skill}>={r.min_level}" for r in needs) or "no skill"
            raise errors.InvalidContact(
                f"no agent can ever take a {channel} contact in queue {queue.id!r} needing {wanted}")

    def _check_code(self, c: Contact, code: str | None) -> None:
        queue = self.center.queues[c.queue]
        if code is None:
            if queue.wrap_up_code_required:
                raise errors.WrapUpCodeRequired(f"queue {queue.id!r} requires a wrap-up code")
        elif queue.wrap_up_codes and code not in queue.wrap_up_codes:
            raise errors.InvalidWrapUpCode(
                f"unknown wrap-up code {code!r} for queue {queue.id!r} (one of: {', '.join(queue.wrap_up_codes)})")

    def iter_contacts(self, states: Iterable[ContactState] = WAITING_STATES) -> Iterator[Contact]:
        wanted = set(states)
        return (c for c in self.contacts.values() if c.state in wanted)
