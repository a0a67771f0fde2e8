"""Discrete-event simulation of a contact centre that drives the real router.

The simulation plays the outside world: callers arriving (Poisson, a rate per interval), agents
answering after a ring delay (or not: RONA), talking for a handle time, callers hanging up when
their patience runs out, agents logging in and out on shifts. Every decision - who gets which
contact, wrap-up, RONA, bullseye widening - is the router's own (`acd.router.Router`), so what is
simulated is what runs in the engine. Wrap-up, offer time-outs and widening are the router's timers:
the loop merges its own event heap with `router.next_due()` and ticks the router then.

Time is simulated seconds (seconds since midnight of the scenario's day); randomness comes from
one `random.Random(seed)` owned here, split into streams per purpose so that changing, say,
patience leaves the arrivals and handle times of the same seed unchanged (common random numbers).

Figures come from the router's own statistics (`router.stats`: the same counters a wallboard
shows), summed over the intervals after the warm-up:
  service_level   answered within T / (answered + abandoned)   [sl_offered]
  service_levels  all three labelled definitions of `acd.stats`
  abandoned       abandons after the queue's short-abandon threshold; short ones are counted apart
  abandon_rate    abandoned / (contacts - short abandons)
  occupancy       busy / staffed agent time over the arrival window (after `router.settle`)
The wait-estimator comparison records, for each contact that has to queue, the router's expected
wait at its position and Asterisk's holdtime at that moment, and compares both with the wait it
really had once answered (`ewt_*` and `asterisk_*`: mean absolute and mean signed error). Ours
blends three forecasts (`acd.stats.WaitEstimator`); `estimator_mae_s` gives each one's error beside the blend's.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from acd.events import (
    AgentNotReady,
    ContactAnswered,
    ContactOffered,
    Event,
    OfferMissed,
    WrapUpCompleted,
)
from acd.model import RONA_REASON, ContactSpec, ContactState, Presence
from acd.router import Router
from acd.scenario import Distribution, Scenario
from acd.stats import IntervalCounters, service_levels

# simulation event kinds (the router's own timers are not among them)
_ARRIVE, _ACCEPT, _END, _ABANDON, _SHIFT_START, _SHIFT_END, _READY = range(7)
_WAITING = (ContactState.QUEUED, ContactState.OFFERED)


def sampler(dist: Distribution, rng: random.Random) -> Callable[[], float]:
    """A function drawing one duration (seconds) from `dist` with `rng`."""
    if dist.kind == "exponential":
        lambd, expo = 1.0 / dist.mean_s, rng.expovariate
        return lambda: expo(lambd)
    if dist.kind == "lognormal":
        # parameters of the underlying normal from the mean and coefficient of variation
        sigma = math.sqrt(math.log1p(dist.cv * dist.cv))
        mu = math.log(dist.mean_s) - sigma * sigma / 2
        lognorm = rng.lognormvariate
        return lambda: lognorm(mu, sigma)
    if dist.kind == "fixed":
        value = dist.mean_s
        return lambda: value
    if dist.kind == "empirical":
        values, choice = dist.values_s, rng.choice
        return lambda: choice(values)
    return lambda: math.inf


class _Due:
    """Something the outside world does at `t` (`kind`, one of the simulation's event kinds, to `a`, `b`);
    `seq` keeps the order things were planned in among those due at the same instant."""

    __slots__ = ("t", "seq", "kind", "a", "b")

    def __init__(self, t: float, seq: int, kind: int, a: Any, b: Any) -> None:
        self.t = t
        self.seq = seq
        self.kind = kind
        self.a = a
        self.b = b

    def __lt__(self, other: _Due) -> bool:
        return self.t < other.t or (self.t == other.t and self.seq < other.seq)


# the waits a queued caller could be told, each scored against their real wait: ours (the blend), then the
# three forecasts it blends (`WaitEstimator.forecasts`: by departure gap, by wait per place, Asterisk's holdtime)
FORECASTS = ("blend", "gap", "place", "asterisk")


@dataclass(slots=True)
class _ErrorTally:
    """Prediction errors of one wait estimator: predicted minus real wait."""

    n: int = 0
    abs_s: float = 0.0
    signed_s: float = 0.0

    def add(self, error: float) -> None:
        self.n += 1
        self.abs_s += abs(error)
        self.signed_s += error

    def mae(self) -> float | None:
        return self.abs_s / self.n if self.n else None

    def bias(self) -> float | None:
        return self.signed_s / self.n if self.n else None


@dataclass(frozen=True, slots=True)
class QueueResult:
    queue: str
    sl_threshold_s: float
    contacts: int
    answered: int
    abandoned: int
    short_abandoned: int
    service_level: float | None
    service_levels: dict[str, float | None]
    asa_s: float | None
    abandon_rate: float | None
    aht_s: float | None
    ronas: int  # offers that rang out or were refused (re-offered at the contact's old place)
    ewt_mae_s: float | None
    ewt_mean_error_s: float | None
    asterisk_mae_s: float | None
    asterisk_mean_error_s: float | None
    estimator_samples: int
    # mean absolute error of each forecast the blend (ewt) is made of: by gap, by place, Asterisk's
    estimator_mae_s: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class SimulationResult:
    scenario: str
    seed: int
    contacts: int
    answered: int
    abandoned: int
    short_abandoned: int
    unserved: int  # still waiting when the run stopped (no agent left, drain time over)
    service_level: float | None
    service_levels: dict[str, float | None]
    asa_s: float | None
    abandon_rate: float | None
    occupancy: float | None
    aht_s: float | None
    ronas: int
    ewt_mae_s: float | None
    ewt_mean_error_s: float | None
    asterisk_mae_s: float | None
    asterisk_mean_error_s: float | None
    estimator_samples: int
    estimator_mae_s: dict[str, float | None]
    queues: dict[str, QueueResult]
    measured_from_s: float  # start of the first interval counted (after the warm-up)
    arrivals_end_s: float
    simulated_until_s: float
    sim_events: int  # events handled: the simulation's own plus router ticks
    intervals: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["queues"] = {q: r.to_dict() for q, r in self.queues.items()}
        data["intervals"] = list(self.intervals)
        return data


def simulate(scenario: Scenario, seed: int | None = None, *, intervals: bool = False) -> SimulationResult:
    """Run `scenario` once with `seed` (the scenario's own seed if None)."""
    return Simulation(scenario, scenario.seed if seed is None else seed).run(intervals=intervals)


class Simulation:
    """One run. `journal=True` keeps every event the router returned, in order (for replay checks)."""

    def __init__(self, scenario: Scenario, seed: int, *, journal: bool = False):
        self.scenario = scenario
        self.seed = seed
        # finished contacts are of no more use here (the figures are the router's counters): freed at once,
        # not kept as the engine keeps them for reading, which cost a fifth of the run in memory and collection
        self.router = Router(scenario.center, keep_finished=0)
        self.journal: list[Event] | None = [] if journal else None
        self.rng = random.Random(seed)

        def stream() -> random.Random:
            return random.Random(self.rng.getrandbits(64))

        types = scenario.contact_types
        self._arrival_rng = [stream() for _ in types]
        self._handle = [sampler(ct.handle_time, stream()) for ct in types]
        self._patience = [sampler(ct.patience, stream()) for ct in types]
        self._patient = [ct.patience.kind == "none" for ct in types]
        answer_rng = stream()
        self._ring_delay = sampler(scenario.ring_delay, answer_rng)
        self._no_answer = scenario.no_answer_probability
        self._answer_draw = answer_rng.random
        self._specs = [(ct.queue, ct.channel, ct.requirements, ct.priority) for ct in types]

        self._heap: list[_Due] = []
        self._seq = 0
        self._count = 0
        # contact id -> [type index, arrival time, the waits it was told by each of FORECASTS (None: not queued)]
        self._info: dict[str, list[Any]] = {}
        self._leaving: set[str] = set()  # shift over, logging out once free
        self._on_shift: set[str] = set()
        self.sim_events = 0
        iv = scenario.interval_s
        self._measure_from = (math.ceil((scenario.start + scenario.warmup_s) / iv - 1e-9) * iv
                              if scenario.warmup_s > 0 else -math.inf)
        queues = list(scenario.center.queues)
        self._errors = {q: {f: _ErrorTally() for f in FORECASTS} for q in queues}

    # ------------------------------------------------------------------------------------------
    def _push(self, t: float, kind: int, a: Any = None, b: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Due(t, self._seq, kind, a, b))

    def _next_arrival(self, k: int, t: float) -> float | None:
        """The next arrival of contact type `k` after `t`: Poisson, piecewise-constant rate per interval."""
        sc = self.scenario
        rates = sc.contact_types[k].rates_per_s
        start, end, iv = sc.start, sc.end, sc.interval_s
        expo = self._arrival_rng[k].expovariate
        last = len(rates) - 1
        i = min(int((t - start) // iv), last)
        while t < end:
            edge = end if i >= last else min(start + (i + 1) * iv, end)
            rate = rates[i]
            if rate > 0:
                nxt = t + expo(rate)
                if nxt < edge:
                    return nxt
            t = edge  # memoryless: start afresh at the interval edge with the next rate
            i += 1
        return None

    def run(self, *, intervals: bool = False) -> SimulationResult:
        sc = self.scenario
        router = self.router
        shifted = {s.agent for s in sc.shifts}
        for agent in sc.center.agents:
            if agent not in shifted:
                self._on_shift.add(agent)
                self._handle_events(router.login(agent, sc.start, ready=True))
        for s in sc.shifts:
            self._push(s.start, _SHIFT_START, s.agent)
            self._push(s.end, _SHIFT_END, s.agent)
        for k in range(len(sc.contact_types)):
            t = self._next_arrival(k, sc.start)
            if t is not None:
                self._push(t, _ARRIVE, k)

        stop = sc.end + sc.drain_s
        heap = self._heap
        pop = heapq.heappop
        next_due = router.next_due
        now = sc.start
        events = 0
        while True:
            due = next_due()
            if heap and (due is None or heap[0].t < due):
                d = heap[0]
                t, kind, a, b = d.t, d.kind, d.a, d.b
                if t > stop:
                    break
                pop(heap)
                now = t
                events += 1
                if kind == _ARRIVE:
                    self._arrive(a, t)
                elif kind == _END:
                    if router.contacts[a].state is ContactState.CONNECTED:
                        self._handle_events(router.end(a, t))
                elif kind == _ACCEPT:
                    self._accept(a, b, t)
                elif kind == _ABANDON:
                    self._abandon(a, t)
                elif kind == _SHIFT_START:
                    self._shift_start(a, t)
                elif kind == _SHIFT_END:
                    self._shift_end(a, t)
                else:
                    self._ready_again(a, t)
            elif due is not None:
                if due > stop:
                    break
                now = max(now, due)
                events += 1
                self._handle_events(router.tick(due))
            else:
                break
        self.sim_events = events
        router.settle(now)
        return self._result(now, intervals)

    # ------------------------------------------------------------------------------------------
    # what the outside world does
    def _arrive(self, k: int, t: float) -> None:
        nxt = self._next_arrival(k, t)
        if nxt is not None:
            self._push(nxt, _ARRIVE, k)
        self._count += 1
        cid = f"c{self._count}"
        queue, channel, reqs, priority = self._specs[k]
        info: list[Any] = [k, t, None]
        self._info[cid] = info
        router = self.router
        events = router.enqueue(ContactSpec(cid, queue, channel, reqs, priority), t)
        c = router.contacts[cid]
        if c.state is ContactState.QUEUED:
            # what the caller is told on joining, at their place: our estimate and its parts (Asterisk's last);
            # the router worked it out already unless the caller joined ahead of someone
            forecasts = c.told[2] if c.told is not None else router.wait_forecasts(queue, router.position(cid) or 1)
            info[2] = (router.stats.queues[queue].estimator.blend(forecasts), *forecasts)
        if not self._patient[k]:
            self._push(t + self._patience[k](), _ABANDON, cid)
        self._handle_events(events)

    def _accept(self, cid: str, agent: str, t: float) -> None:
        c = self.router.contacts.get(cid)  # finished contacts are retired from the router after a while
        if c is not None and c.state is ContactState.OFFERED and c.agent == agent and (c.offer_deadline is None
                                                                     or t <= c.offer_deadline):
            self._handle_events(self.router.accept(cid, agent, t))

    def _abandon(self, cid: str, t: float) -> None:
        c = self.router.contacts.get(cid)
        if c is not None and c.state in _WAITING:
            agent = c.agent
            del self._info[cid]
            self._handle_events(self.router.abandon(cid, t))
            if agent is not None and agent in self._leaving:
                self._try_logout(agent, t)

    def _shift_start(self, agent: str, t: float) -> None:
        self._on_shift.add(agent)
        if agent in self._leaving:  # still finishing the last shift's work
            self._leaving.discard(agent)
            self._handle_events(self.router.set_ready(agent, t))
        else:
            self._handle_events(self.router.login(agent, t, ready=True))

    def _shift_end(self, agent: str, t: float) -> None:
        self._on_shift.discard(agent)
        self._leaving.add(agent)
        self._handle_events(self.router.set_not_ready(agent, t, self.scenario.shift_end_reason))
        self._try_logout(agent, t)

    def _try_logout(self, agent: str, t: float) -> None:
        a = self.router.agents[agent]
        if not a.work and not a.offers:
            self._leaving.discard(agent)
            self._handle_events(self.router.logout(agent, t))

    def _ready_again(self, agent: str, t: float) -> None:
        a = self.router.agents[agent]
        if agent in self._on_shift and a.presence is Presence.NOT_READY and a.reason == RONA_REASON:
            self._handle_events(self.router.set_ready(agent, t))

    def _handle_events(self, events: list[Event]) -> None:
        """React to what the router decided: ring the agent, start the conversation, free a leaver."""
        if self.journal is not None:
            self.journal.extend(events)
        for e in events:
            tp = type(e)
            if tp is ContactOffered:
                assert isinstance(e, ContactOffered)
                if self._no_answer and self._answer_draw() < self._no_answer:
                    continue  # it rings out: the router's offer timer makes it a RONA
                delay = self._ring_delay()
                if delay <= 0:
                    self._handle_events(self.router.accept(e.contact, e.agent, e.t))
                else:
                    self._push(e.t + delay, _ACCEPT, e.contact, e.agent)
            elif tp is ContactAnswered:
                assert isinstance(e, ContactAnswered)
                info = self._info.pop(e.contact)  # answered once: the simulation never transfers
                self._push(e.t + self._handle[info[0]](), _END, e.contact)
                if info[2] is not None and info[1] >= self._measure_from:
                    wait = e.t - info[1]
                    errors = self._errors[self._specs[info[0]][0]]
                    for name, told in zip(FORECASTS, info[2]):
                        errors[name].add(told - wait)
            elif tp is WrapUpCompleted or tp is OfferMissed:
                agent = e.agent  # type: ignore[attr-defined]
                if agent in self._leaving:
                    self._try_logout(agent, e.t)
            elif tp is AgentNotReady:
                assert isinstance(e, AgentNotReady)
                if e.reason == RONA_REASON:
                    self._push(e.t + self.scenario.rona_ready_after_s, _READY, e.agent)

    # ------------------------------------------------------------------------------------------
    # read-out
    def _result(self, until: float, want_intervals: bool) -> SimulationResult:
        sc = self.scenario
        stats = self.router.stats
        iv = sc.interval_s
        first = -math.inf if self._measure_from == -math.inf else round(self._measure_from / iv)
        total = IntervalCounters()
        queues: dict[str, QueueResult] = {}
        for qid, qs in stats.queues.items():
            counters = IntervalCounters()
            for idx, c in qs.intervals.items():
                if idx >= first:
                    counters.add(c)
            total.add(counters)
            queues[qid] = _queue_result(qid, qs.threshold_s, counters, self._errors[qid])
        errors = {f: _ErrorTally() for f in FORECASTS}
        for qid in queues:
            for name, theirs in self._errors[qid].items():
                mine = errors[name]
                mine.n += theirs.n
                mine.abs_s += theirs.abs_s
                mine.signed_s += theirs.signed_s
        ewt, ast = errors["blend"], errors["asterisk"]
        # occupancy over the arrival window only: agents logged in before the doors open or idle
        # while the last contacts drain are not the centre's load
        opened, last = max(first, sc.start // iv), math.ceil(sc.end / iv - 1e-9)
        busy = sum(v for i, v in stats.busy_s.items() if opened <= i < last)
        staffed = sum(v for i, v in stats.staffed_s.items() if opened <= i < last)
        unserved = sum(1 for _ in self.router.iter_contacts())
        rows: list[dict[str, Any]] = []
        if want_intervals:
            for qid in stats.queues:
                for row in stats.interval_report(qid):
                    if row["interval_start"] // iv >= first:
                        start = row["interval_start"]
                        row["time"] = f"{int(start // 3600):02d}:{int(start % 3600 // 60):02d}"
                        rows.append(row)
            rows.sort(key=lambda r: (r["interval_start"], r["queue"]))
        sls = service_levels(total)
        return SimulationResult(
            scenario=sc.name, seed=self.seed, contacts=total.offered, answered=total.answered,
            abandoned=total.abandoned, short_abandoned=total.short_abandoned, unserved=unserved,
            service_level=sls["sl_offered"], service_levels=sls,
            asa_s=total.answer_wait_s / total.answered if total.answered else None,
            abandon_rate=_abandon_rate(total), occupancy=busy / staffed if staffed else None,
            aht_s=total.report()["aht_s"], ronas=total.ronas,
            ewt_mae_s=ewt.mae(), ewt_mean_error_s=ewt.bias(), asterisk_mae_s=ast.mae(),
            asterisk_mean_error_s=ast.bias(), estimator_samples=ewt.n,
            estimator_mae_s={f: t.mae() for f, t in errors.items()}, queues=queues,
            measured_from_s=max(self._measure_from, sc.start), arrivals_end_s=sc.end,
            simulated_until_s=until, sim_events=self.sim_events, intervals=tuple(rows))


def _abandon_rate(c: IntervalCounters) -> float | None:
    counted = c.offered - c.short_abandoned
    return c.abandoned / counted if counted > 0 else None


def _queue_result(qid: str, threshold: float, c: IntervalCounters, errors: dict[str, _ErrorTally]) -> QueueResult:
    ewt, ast = errors["blend"], errors["asterisk"]
    sls = service_levels(c)
    return QueueResult(
        queue=qid, sl_threshold_s=threshold, contacts=c.offered, answered=c.answered, abandoned=c.abandoned,
        short_abandoned=c.short_abandoned, service_level=sls["sl_offered"], service_levels=sls,
        asa_s=c.answer_wait_s / c.answered if c.answered else None, abandon_rate=_abandon_rate(c),
        aht_s=c.report()["aht_s"], ronas=c.ronas, ewt_mae_s=ewt.mae(), ewt_mean_error_s=ewt.bias(),
        asterisk_mae_s=ast.mae(), asterisk_mean_error_s=ast.bias(), estimator_samples=ewt.n,
        estimator_mae_s={f: t.mae() for f, t in errors.items()})
