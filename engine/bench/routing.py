"""The routing benchmark: how fast the real router decides who takes what, at a large city 311's scale.

The workload (the same for every system measured, drawn from one seed):
- skills are topics (garbage, parking, property tax, ...) plus a tenth of languages; each agent has
  3-6 topics and maybe a language, at levels 1-10; topic popularity is skewed (Zipf-like), and
  so is the staffing, as in a real centre;
- one queue per topic, needing that topic at a base level; every fourth queue has bullseye steps
  (the level drops after 60 s, drops to any level after 180 s, overflows to the general queue
  after 600 s); half the queues age priority; a few pick agents by best skill, the rest by
  longest idle; every queue has wrap-up codes;
- contacts need their queue's topic, some a language or a higher level too (one or two skills at
  minimum levels), with priorities 0 (most), 1 and 5; every kind is servable by a few agents;
- all agents log in ready, contacts arrive faster than they are served until `waiting` wait and
  every agent the waiting contacts could use is busy; handle times are lognormal, 300 s on average.

A *routing decision*: the next agent to finish completes their contact (conversation and wrap-up,
with a code), the router picks the best waiting contact for them and offers it, the agent accepts,
and new contacts arrive until `waiting` wait again. Timers that came due since the last decision
are ticked first, as the engine does at `next_due()`. One decision is timed with
`time.perf_counter_ns` around exactly those router calls.

The naive baseline makes the same decisions by scanning: for a freed agent, every waiting contact
(eligibility by `acd.eligibility`, best by ageing priority, then age, then arrival); for an
arrival or a widened contact, every idle agent (by the queue's strategy). Its decisions must be
the router's, one for one: that is checked here on every run and in tests/bench.
"""

from __future__ import annotations

import gc
import heapq
import math
import random
import resource
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from acd import native
from acd.config import load_center
from acd.eligibility import RingRule, merge_requirements, ring_rule, serves
from acd.events import ContactOffered, Event
from acd.model import (
    AgentConfig,
    CenterConfig,
    ContactSpec,
    ContactState,
    QueueConfig,
    SkillRequirement,
    Strategy,
)
from acd.router import Router
from engine import collector

MEAN_HANDLE_S = 300.0
MIN_HANDLE_S = 30.0
WRAP_UP_CODES = ("resolved", "service_request_created", "referred", "information_given")
GENERAL_QUEUE = "q_topic000"  # the most popular topic; bullseye queues overflow to it
GOAL_DECISIONS_PER_S = 50_000
GOAL_P99_US = 500
MIN_SERVERS = 3  # a contact kind fewer agents can serve is simplified (nobody waits for nothing)

# (contact, agent, time of the offer)
Assignment = tuple[str, str, float]


# ----------------------------------------------------------------------------------------------
# the centre and its contacts
def _popularity(n: int) -> list[float]:
    return [1.0 / (i + 1) ** 0.8 for i in range(n)]


def _level(rng: random.Random) -> int:
    # most agents mid-level, a few experts and a few trainees
    return min(10, max(1, round(rng.gauss(5.5, 2.2))))


def build_center(agents: int, skills: int, seed: int) -> CenterConfig:
    """A centre of `agents` agents and `skills` skills, loaded through the site configuration checks."""
    if agents < 1 or skills < 2:
        raise ValueError("the routing benchmark needs at least 1 agent and 2 skills")
    rng = random.Random(f"center:{seed}")
    n_lang = skills // 10
    topics = [f"topic{i:03d}" for i in range(skills - n_lang)]
    languages = [f"lang{i:02d}" for i in range(n_lang)]
    weights = _popularity(len(topics))

    agent_data: dict[str, Any] = {}
    for i in range(agents):
        own = {topics[i % len(topics)]: max(5, _level(rng))}  # every topic has someone able to take it
        for t in rng.choices(topics, weights=weights, k=rng.randint(3, 6) - 1):
            own.setdefault(t, _level(rng))
        if languages and rng.random() < 0.3:
            for lang in rng.sample(languages, k=1 if rng.random() < 0.85 else min(2, len(languages))):
                own[lang] = rng.randint(5, 10)
        agent_data[f"agent{i:04d}"] = {"skills": own, "capacity": {"voice": 1}}

    queue_data: dict[str, Any] = {}
    for i, t in enumerate(topics):
        q: dict[str, Any] = {
            "skills": {t: 1 if rng.random() < 0.5 else rng.randint(2, 4)},
            "strategy": Strategy.BEST_SKILL.value if i % 7 == 3 else Strategy.LONGEST_IDLE.value,
            "priority_boost_per_s": 1 / 60 if i % 2 == 0 else 0.0,
            "offer_timeout_s": 20.0,
            "wrap_up_s": 30.0,
            "wrap_up_codes": list(WRAP_UP_CODES),
        }
        if i % 4 == 1:
            q["steps"] = [{"after_s": 60, "level_drop": 2}, {"after_s": 180, "level_drop": 9},
                          {"after_s": 600, "overflow_queues": [GENERAL_QUEUE]}]
        queue_data[f"q_{t}"] = q
    return load_center({"skills": topics + languages, "agents": agent_data, "queues": queue_data})


@dataclass(frozen=True, slots=True)
class Arrival:
    spec: ContactSpec
    handle_s: float
    code: str


class ContactStream:
    """The contacts of one run, in order: the same seed gives the same contacts to every system."""

    def __init__(self, center: CenterConfig, seed: int):
        self.center = center
        self._rng = random.Random(f"contacts:{seed}")
        self._queues = list(center.queues.values())
        self._weights = _popularity(len(self._queues))
        self._languages = [s for s in center.skills if s.startswith("lang")]
        self._servable: dict[tuple[str, tuple[SkillRequirement, ...]], bool] = {}
        self._n = 0
        sigma = 0.6
        self._mu = math.log(MEAN_HANDLE_S) - sigma * sigma / 2
        self._sigma = sigma

    def next(self) -> Arrival:
        rng = self._rng
        self._n += 1
        queue = rng.choices(self._queues, weights=self._weights)[0]
        own: tuple[SkillRequirement, ...] = ()
        roll = rng.random()
        if roll < 0.15 and self._languages:
            own = (SkillRequirement(rng.choice(self._languages), 6),)
        elif roll < 0.25:
            own = (SkillRequirement(queue.skills[0].skill, 7),)  # a harder case of the topic
        if own and not self._can_serve(queue, own):
            own = ()
        r = rng.random()
        priority = 0 if r < 0.85 else (1 if r < 0.95 else 5)
        handle = max(MIN_HANDLE_S, rng.lognormvariate(self._mu, self._sigma))
        spec = ContactSpec(id=f"c{self._n:07d}", queue=queue.id, requirements=own, priority=priority,
                           attributes={"source": "311"})
        return Arrival(spec, handle, rng.choice(WRAP_UP_CODES))

    def _can_serve(self, queue: QueueConfig, own: tuple[SkillRequirement, ...]) -> bool:
        key = (queue.id, own)
        if key not in self._servable:
            rule = ring_rule(self.center, queue, _merged(queue, own), 0)
            count = sum(1 for a in self.center.agents.values() if serves(self.center, a, rule))
            self._servable[key] = count >= MIN_SERVERS
        return self._servable[key]


def _merged(queue: QueueConfig, own: tuple[SkillRequirement, ...]) -> tuple[SkillRequirement, ...]:
    return merge_requirements(queue.skills, own)


# ----------------------------------------------------------------------------------------------
# the systems measured
class RoutingSystem(Protocol):
    """What the driver asks of a router. Each call returns the offers it made, each accepted at once."""

    def start(self, t: float) -> list[Assignment]: ...

    def advance(self, t: float) -> list[Assignment]: ...

    def arrive(self, arrival: Arrival, t: float) -> list[Assignment]: ...

    def finish(self, contact: str, agent: str, code: str, t: float) -> list[Assignment]: ...


class RouterSystem:
    """The real `acd.router.Router`, driven as the engine drives it."""

    name = "router"

    def __init__(self, center: CenterConfig):
        self.router = Router(center)

    def _accept(self, events: list[Event]) -> list[Assignment]:
        made: list[Assignment] = []
        for e in events:
            if type(e) is ContactOffered:
                self.router.accept(e.contact, e.agent, e.t)
                made.append((e.contact, e.agent, e.t))
        return made

    def start(self, t: float) -> list[Assignment]:
        made: list[Assignment] = []
        for agent in self.router.agents:
            made += self._accept(self.router.login(agent, t, ready=True))
        return made

    def advance(self, t: float) -> list[Assignment]:
        router = self.router
        made: list[Assignment] = []
        due = router.next_due()
        while due is not None and due <= t:
            made += self._accept(router.tick(due))
            due = router.next_due()
        return made

    def arrive(self, arrival: Arrival, t: float) -> list[Assignment]:
        return self._accept(self.router.enqueue(arrival.spec, t))

    def finish(self, contact: str, agent: str, code: str, t: float) -> list[Assignment]:
        return self._accept(self.router.complete(contact, t, code))


class MatchTimedRouterSystem(RouterSystem):
    """The router with a stopwatch on its matching step alone (`_match_agent` / `_match_contact`): the
    decision proper, without the command's bookkeeping (events, statistics, timers) around it."""

    name = "router-match"

    def __init__(self, center: CenterConfig, clock: Callable[[], int] = time.perf_counter_ns):
        super().__init__(center)
        self.match_ns: list[int] = []
        router = self.router
        for name in ("_match_agent", "_match_contact"):
            inner = getattr(router, name)

            def timed(*args: Any, _inner: Callable[..., None] = inner) -> None:
                t0 = clock()
                offers = router._out is not None and len(router._out)
                _inner(*args)
                made = router._out is not None and len(router._out) > offers
                if made:  # time only calls that decided something
                    self.match_ns.append(clock() - t0)

            setattr(router, name, timed)


class CountingRouterSystem(RouterSystem):
    """The router, also counting the events it makes (for tests; not for timed runs)."""

    def __init__(self, center: CenterConfig):
        super().__init__(center)
        self.events: Counter[str] = Counter()

    def _accept(self, events: list[Event]) -> list[Assignment]:
        self.events.update(e.kind for e in events)
        return super()._accept(events)


@dataclass(slots=True)
class _Waiting:
    id: str
    queue: QueueConfig
    requirements: tuple[SkillRequirement, ...]
    priority: int
    enqueued_at: float
    seq: int


@dataclass(slots=True)
class _Agent:
    id: str
    order: int
    skills: dict[str, int]
    cfg: AgentConfig
    idle: bool = False
    idle_since: float = 0.0


class NaiveSystem:
    """The same choice rule by full scans, with no index: the yardstick, and a check of the router's indexing."""

    name = "naive"

    def __init__(self, center: CenterConfig):
        self.center = center
        self.waiting: dict[str, _Waiting] = {}
        self.agents = {a.id: _Agent(a.id, i, dict(a.skills), a) for i, a in enumerate(center.agents.values())}
        self._rules: dict[tuple[str, tuple[SkillRequirement, ...], int], RingRule] = {}
        self._seq = 0
        self._last_t = float("-inf")

    # the rules ---------------------------------------------------------------------------------
    def _ring(self, w: _Waiting, t: float) -> int:
        """Steps in force at `t`: a step applies from `after_s` seconds of waiting on."""
        return sum(1 for s in w.queue.steps if w.enqueued_at + s.after_s <= t)

    def _rule(self, w: _Waiting, ring: int) -> RingRule:
        key = (w.queue.id, w.requirements, ring)
        rule = self._rules.get(key)
        if rule is None:
            rule = self._rules[key] = ring_rule(self.center, w.queue, w.requirements, ring)
        return rule

    def _best_contact(self, agent: _Agent, t: float) -> _Waiting | None:
        best: _Waiting | None = None
        best_key: tuple[float, float, int] | None = None
        for w in self.waiting.values():
            if not serves(self.center, agent.cfg, self._rule(w, self._ring(w, t))):
                continue
            key = (-(w.priority + w.queue.priority_boost_per_s * (t - w.enqueued_at)), w.enqueued_at, w.seq)
            if best_key is None or key < best_key:
                best, best_key = w, key
        return best

    def _best_agent(self, w: _Waiting, t: float) -> _Agent | None:
        rule = self._rule(w, self._ring(w, t))
        idle = [a for a in self.agents.values() if a.idle and serves(self.center, a.cfg, rule)]
        if not idle:
            return None
        if w.queue.strategy is Strategy.BEST_SKILL:
            return min(idle, key=lambda a: (-sum(a.skills.get(r.skill, 0) for r in w.requirements),
                                            a.idle_since, a.order))
        if w.queue.strategy is Strategy.LONGEST_IDLE:
            return min(idle, key=lambda a: (a.idle_since, a.order))
        raise NotImplementedError(f"the baseline does not model strategy {w.queue.strategy}")

    def _assign(self, w: _Waiting, a: _Agent, t: float) -> Assignment:
        del self.waiting[w.id]
        a.idle = False
        return (w.id, a.id, t)

    # the system --------------------------------------------------------------------------------
    def start(self, t: float) -> list[Assignment]:
        for a in self.agents.values():
            a.idle, a.idle_since = True, t
        self._last_t = t
        return []

    def advance(self, t: float) -> list[Assignment]:
        """Contacts whose ring widened since the last call may now suit an idle agent, in time order."""
        made: list[Assignment] = []
        if any(a.idle for a in self.agents.values()):
            widened = sorted((w.enqueued_at + s.after_s, w.seq, w) for w in self.waiting.values()
                             for s in w.queue.steps if self._last_t < w.enqueued_at + s.after_s <= t)
            for due, _, w in widened:
                if w.id in self.waiting:
                    a = self._best_agent(w, due)
                    if a is not None:
                        made.append(self._assign(w, a, due))
        self._last_t = max(self._last_t, t)
        return made

    def arrive(self, arrival: Arrival, t: float) -> list[Assignment]:
        spec = arrival.spec
        queue = self.center.queues[spec.queue]
        self._seq += 1
        w = _Waiting(spec.id, queue, _merged(queue, spec.requirements), spec.priority, t, self._seq)
        self.waiting[w.id] = w
        a = self._best_agent(w, t)
        return [self._assign(w, a, t)] if a is not None else []

    def finish(self, contact: str, agent: str, code: str, t: float) -> list[Assignment]:
        a = self.agents[agent]
        a.idle, a.idle_since = True, t
        w = self._best_contact(a, t)
        return [self._assign(w, a, t)] if w is not None else []


# ----------------------------------------------------------------------------------------------
# the driver
@dataclass
class Run:
    system: str
    waiting: int
    latencies_ns: list[int] = field(default_factory=list)
    phase_ns: Counter[str] = field(default_factory=Counter)  # timed decisions only: where the time went
    assignments: list[Assignment] = field(default_factory=list)
    waiting_end: int = 0
    idle_end: int = 0
    position_us: float | None = None  # mean cost of asking a waiting contact's place, after the run

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ns
        if not lat:
            return {"waiting": self.waiting, "decisions": 0}
        cuts = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
        total_s = sum(lat) / 1e9
        return {
            "waiting": self.waiting,
            "decisions": len(lat),
            "decisions_per_s": round(len(lat) / total_s, 1) if total_s else None,
            "mean_us": round(sum(lat) / len(lat) / 1000, 2),
            "p50_us": round(cuts[49] / 1000, 2),
            "p99_us": round(cuts[98] / 1000, 2),
            "max_us": round(max(lat) / 1000, 2),
            "phases_mean_us": {k: round(v / len(lat) / 1000, 2) for k, v in self.phase_ns.items()},
            "position_mean_us": self.position_us,
        }


def drive(system: RoutingSystem, center: CenterConfig, *, waiting: int, decisions: int, seed: int,
          warmup: int = 0, clock: Callable[[], int] = time.perf_counter_ns) -> Run:
    """Fill the centre to `waiting`, then make `warmup` untimed and `decisions` timed routing decisions."""
    run = Run(getattr(system, "name", type(system).__name__), waiting)
    stream = ContactStream(center, seed)
    handles: dict[str, Arrival] = {}
    busy: list[tuple[float, str, str]] = []  # (end of the agent's contact, contact, agent)
    queued = 0

    def booked(made: Sequence[Assignment]) -> int:
        for contact, agent, t in made:
            arrival = handles[contact]
            heapq.heappush(busy, (t + arrival.handle_s, contact, agent))
        run.assignments.extend(made)
        return len(made)

    # fill: a morning rush, contacts coming (Poisson) fifty times faster than agents finish
    t = 0.0
    booked(system.start(t))
    fill = random.Random(f"fill:{seed}")
    rate = 50 * max(len(center.agents), 1) / MEAN_HANDLE_S
    while queued < waiting:
        if busy and busy[0][0] <= t:
            end, contact, agent = heapq.heappop(busy)
            queued -= booked(system.advance(end))
            queued -= booked(system.finish(contact, agent, handles.pop(contact).code, end))
            continue
        queued -= booked(system.advance(t))
        arrival = stream.next()
        handles[arrival.spec.id] = arrival
        queued += 1 - booked(system.arrive(arrival, t))
        t += fill.expovariate(rate)

    # steady state: each decision frees one agent, who takes the best contact; arrivals top up
    for i in range(warmup + decisions):
        if not busy:
            raise RuntimeError("no agent is busy: the workload cannot keep the centre loaded")
        end, contact, agent = heapq.heappop(busy)
        code = handles.pop(contact).code
        upcoming = stream.next()
        handles[upcoming.spec.id] = upcoming
        t0 = clock()
        made = system.advance(end)
        t1 = clock()
        made += system.finish(contact, agent, code, end)
        t2 = clock()
        arriving = 0
        queued -= booked(made)
        while queued < waiting:
            t3 = clock()
            made = system.arrive(upcoming, end)
            arriving += clock() - t3
            queued += 1 - booked(made)
            if queued < waiting:
                upcoming = stream.next()
                handles[upcoming.spec.id] = upcoming
        if i >= warmup:
            run.latencies_ns.append(t2 - t0 + arriving)
            run.phase_ns["tick"] += t1 - t0
            run.phase_ns["complete_accept"] += t2 - t1
            run.phase_ns["enqueue"] += arriving
    run.waiting_end = queued
    run.idle_end = len(center.agents) - len(busy)
    return run


def position_cost_us(router: Router, samples: int, seed: int, clock: Callable[[], int]) -> float | None:
    """Mean microseconds of `Router.position()` for waiting contacts picked at random: what announcing a
    caller's place costs (the first ask of each queue, which builds its line index, included)."""
    queued = [c.id for c in router.iter_contacts((ContactState.QUEUED,))]
    if not queued:
        return None
    rng = random.Random(f"position:{seed}")
    picks = [rng.choice(queued) for _ in range(samples)]
    # the collector's debt from the run must not land in these few milliseconds: one full collection over
    # the 10,000 contacts in line (30-50 ms) would read as a 15-25 us rise in the mean ask
    gc.collect()
    t0 = clock()
    for cid in picks:
        router.position(cid)
    return round((clock() - t0) / samples / 1000, 2)


def peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def first_difference(a: Sequence[Assignment], b: Sequence[Assignment]) -> dict[str, Any] | None:
    """Where two decision logs part, over their common length; None when they agree."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return {"index": i, "router": list(x), "baseline": list(y)}
    return None


# ----------------------------------------------------------------------------------------------
# the benchmark
CLOCKS: dict[str, Callable[[], int]] = {
    "wall": time.perf_counter_ns,  # what a caller waits, preemption included
    "cpu": time.thread_time_ns,  # this thread's CPU time only: steadier on a shared machine
}


def run_routing(*, agents: int, skills: int, waiting: int, decisions: int, seed: int,
                baseline_decisions: int, scaling: Sequence[int], clock: str = "wall",
                progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The router at `waiting`, the baseline on the same workload, and both at each `scaling` size."""
    center = build_center(agents, skills, seed)
    collector.settle()  # the collector as `switchboard serve` sets it before it serves
    warmup = min(1000, decisions // 10)
    tick = CLOCKS[clock]

    def router_run(size: int) -> Run:
        progress(f"router: {size} waiting, {decisions} decisions")
        system = RouterSystem(center)
        run = drive(system, center, waiting=size, decisions=decisions, seed=seed, warmup=warmup, clock=tick)
        run.position_us = position_cost_us(system.router, 2000, seed, tick)
        return run

    def baseline_run(size: int) -> Run:
        progress(f"naive baseline: {size} waiting, {baseline_decisions} decisions")
        return drive(NaiveSystem(center), center, waiting=size, decisions=baseline_decisions, seed=seed,
                     clock=tick)

    started = time.perf_counter()
    main = router_run(waiting)
    rss_router = peak_rss_mb()
    summary = main.summary()
    result: dict[str, Any] = {
        "benchmark": "routing",
        "agents": agents,
        "skills": skills,
        "queues": len(center.queues),
        "waiting": waiting,
        "seed": seed,
        "clock": clock,
        "core": native.build(),  # compiled (mypyc) or pure Python, and why
        "gc_threshold": list(gc.get_threshold()),  # as `switchboard serve` runs (engine/collector.py)
        **{k: v for k, v in summary.items() if k != "waiting"},
        "peak_rss_mb": rss_router,
    }

    # the decision proper: the matching step that picks a contact for an agent (or an agent for a contact);
    # a stopwatch can be put on it only in the pure build (compiled methods cannot be wrapped)
    match: list[int] = []
    if not native.compiled():
        progress(f"router matching step alone: {waiting} waiting")
        timed = MatchTimedRouterSystem(center, tick)
        drive(timed, center, waiting=waiting, decisions=decisions, seed=seed, warmup=warmup, clock=tick)
        match = sorted(timed.match_ns[len(timed.match_ns) // 10:])
    if match:
        result["match_decisions_per_s"] = round(1e9 / statistics.fmean(match), 1)
        result["match_p50_us"] = round(match[len(match) // 2] / 1000, 2)
        result["match_p99_us"] = round(match[min(len(match) - 1, int(len(match) * 0.99))] / 1000, 2)

    base = baseline_run(waiting)
    bsum = base.summary()
    result["baseline_decisions"] = bsum["decisions"]
    result["baseline_decisions_per_s"] = bsum["decisions_per_s"]
    result["baseline_p50_us"] = bsum["p50_us"]
    result["baseline_p99_us"] = bsum["p99_us"]
    result["speedup_vs_baseline"] = round(summary["decisions_per_s"] / bsum["decisions_per_s"], 1)
    diff = first_difference(main.assignments, base.assignments)
    result["baseline_agrees"] = diff is None
    result["baseline_compared_assignments"] = min(len(main.assignments), len(base.assignments))
    if diff is not None:
        result["baseline_first_difference"] = diff

    rows = []
    for size in scaling:
        row = (main if size == waiting else router_run(size)).summary()
        line = {k: row[k] for k in ("waiting", "decisions_per_s", "p50_us", "p99_us", "mean_us", "position_mean_us")}
        # the scan is slow: it runs only up to the main size (None above it)
        brow = (base if size == waiting else baseline_run(size)).summary() if size <= waiting else None
        line["baseline_decisions_per_s"] = brow["decisions_per_s"] if brow else None
        line["baseline_mean_us"] = brow["mean_us"] if brow else None
        rows.append(line)
    result["scaling"] = rows
    if len(rows) >= 2 and rows[0]["waiting"] > 1:
        lo, hi = rows[0], rows[-1]
        # how the mean cost grew from the smallest line to the largest, beside log and linear growth
        result["scaling_cost_ratio"] = round(hi["mean_us"] / lo["mean_us"], 2)
        scanned = [row for row in rows if row["baseline_mean_us"]]
        if len(scanned) >= 2:  # over the sizes the baseline ran at
            result["scaling_baseline_cost_ratio"] = round(
                scanned[-1]["baseline_mean_us"] / scanned[0]["baseline_mean_us"], 2)
        result["scaling_log_ratio"] = round(math.log(hi["waiting"]) / math.log(lo["waiting"]), 2)
        result["scaling_linear_ratio"] = round(hi["waiting"] / lo["waiting"], 2)
    result["peak_rss_mb_total"] = peak_rss_mb()
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    # the goal, stated for 1000 agents / 100 skills / 10,000 waiting on one core
    result["goal"] = {"decisions_per_s": GOAL_DECISIONS_PER_S, "p99_us": GOAL_P99_US,
                      "met": summary["decisions_per_s"] >= GOAL_DECISIONS_PER_S and summary["p99_us"] < GOAL_P99_US}
    return result
