"""The idle index: with many agents free, a longest-idle queue picks its agent from the index instead of
scanning the free set. Two routers, one always taking the index and one never, must decide alike."""

from __future__ import annotations

import pickle
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd import errors
from acd.config import load_center
from acd.idle_index import STOP_BELOW, WALK_LIMIT, IdleIndex
from acd.model import AgentConfig, Channel, ContactSpec, ContactState, Presence, SkillRequirement
from acd.reservations import AgentRuntime
from acd.router import Router

CHANNELS = [Channel.VOICE, Channel.CHAT, Channel.EMAIL]
OPS = ["login", "ready", "not_ready", "logout", "enqueue", "enqueue", "enqueue", "accept", "accept", "accept",
       "reject", "end", "end", "wrap", "abandon", "tick"]


@st.composite
def centers(draw: st.DrawFn) -> dict[str, Any]:
    skills = ["s0", "s1", "s2"]
    agents: dict[str, Any] = {}
    for i in range(draw(st.integers(10, 24))):
        capacity = {"voice": 1, "chat": draw(st.integers(0, 3)), "email": draw(st.integers(0, 2))}
        agents[f"a{i:02d}"] = {
            "skills": {s: draw(st.integers(1, 10)) for s in skills if draw(st.integers(0, 3))} or {"s0": 5},
            "capacity": {ch: n for ch, n in capacity.items() if n},
        }
    agents["a00"]["skills"] = {"s0": 10, "s1": 10}  # every queue servable
    queues = {
        "general": {"skills": {"s0": 1}, "wrap_up_s": draw(st.sampled_from([0, 5, 30])), "offer_timeout_s": 120},
        "tax": {"skills": {"s1": draw(st.integers(1, 6))}, "offer_timeout_s": 10, "wrap_up_s": 0},
        "any": {"skills": {}, "priority_boost_per_s": 0.1, "offer_timeout_s": 120, "wrap_up_codes": ["ok"], "wrap_up_code_required": True},
    }
    return {"skills": skills, "queues": queues, "agents": agents, "rona_misses": 2,
            "decline_retry_s": draw(st.sampled_from([3.0, 30.0])),
            "blocks": draw(st.sampled_from([{}, {"voice": ["chat", "email"]}]))}


def step(router: Router, op: str, pick: int, t: float, n: int) -> list[Any] | str:
    """Do `op` on a target chosen by `pick` among those it applies to; the events, or the error's kind."""
    agents, contacts = sorted(router.agents), sorted(router.contacts)

    def one(items: list[str]) -> str | None:
        return items[pick % len(items)] if items else None

    try:
        if op == "login":
            a = one([x for x in agents if router.agents[x].presence is Presence.LOGGED_OUT])
            return router.login(a, t, ready=pick % 3 != 0) if a else []
        if op in ("ready", "not_ready", "logout"):
            a = one([x for x in agents if router.agents[x].presence is not Presence.LOGGED_OUT])
            if a is None:
                return []
            if op == "ready":
                return router.set_ready(a, t)
            return router.set_not_ready(a, t, "break") if op == "not_ready" else router.logout(a, t)
        if op == "enqueue":
            queue = ["general", "tax", "any"][pick % 3]
            channel = CHANNELS[(pick // 3) % 3]
            needs = (SkillRequirement("s2", 1 + pick % 4),) if pick % 7 == 0 else ()
            return router.enqueue(ContactSpec(f"c{n}", queue, channel, needs, priority=pick % 2), t)
        state = {"accept": ContactState.OFFERED, "reject": ContactState.OFFERED, "end": ContactState.CONNECTED,
                 "wrap": ContactState.WRAP_UP, "abandon": ContactState.QUEUED}.get(op)
        if state is not None:
            cid = one([x for x in contacts if router.contacts[x].state is state])
            if cid is None:
                return []
            c = router.contacts[cid]
            if op == "accept":
                return router.accept(cid, c.agent or "", t)
            if op == "reject":
                return router.reject(cid, c.agent or "", t)
            if op == "end":
                return router.end(cid, t)
            return router.wrap_up(cid, t, "ok" if c.queue == "any" else None) if op == "wrap" else router.abandon(cid, t)
        return router.tick(t)
    except errors.AcdError as error:
        return type(error).__name__


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=centers(), ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 10_000),
                                              st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 4.0, 30.0])),
                                    min_size=20, max_size=160))
def test_the_index_and_the_scan_decide_alike(data: dict[str, Any], ops: list[tuple[str, int, float]]) -> None:
    center = load_center(data)
    indexed, scanned = Router(center), Router(center)
    indexed.idle_index_from, scanned.idle_index_from = 0, 10**9
    for aid in sorted(center.agents):  # most of them ready at the start: many free at once
        assert indexed.login(aid, 0.0, ready=True) == scanned.login(aid, 0.0, ready=True)
    t = 0.0
    for n, (op, pick, dt) in enumerate(ops):
        t += dt
        assert step(indexed, op, pick, t, n) == step(scanned, op, pick, t, n), f"step {n}: {op}"
        for ch in CHANNELS:  # the index's first entry is the longest idle of the free agents
            free = scanned._free[ch]
            first = indexed._idle[ch].first(set(free), {}, t)
            if free:
                best = min((scanned.agents[x] for x in free), key=lambda a: (a.idle_since, a.order))
                assert isinstance(first, AgentRuntime) and first.id == best.id
            else:
                assert first is None
    assert indexed.snapshot() == scanned.snapshot()
    again = pickle.loads(pickle.dumps(indexed))  # the index survives a snapshot
    assert again.tick(t + 100) == indexed.tick(t + 100)


def _agents(n: int) -> list[AgentRuntime]:
    out = []
    for i in range(n):
        a = AgentRuntime(AgentConfig(f"a{i:03d}", skills={"s": 5}), i)
        a.idle_since = float(100 - i % 10)
        out.append(a)
    return out


def test_a_walk_past_its_limit_says_so_and_stale_entries_are_dropped() -> None:
    free: set[str] = set()
    agents = _agents(WALK_LIMIT * 3)
    index = IdleIndex(free, {a.id: a for a in agents})
    for a in agents:
        free.add(a.id)
        index.add(a)
    assert not index.heap  # not started: nobody asked yet
    last = max(agents, key=lambda a: (a.idle_since, a.order))
    # only the most recently idle may take it: the walk gives up rather than pass everyone
    assert index.first({last.id}, {}, 0.0) is False
    assert index.active and len(index.heap) == len(agents)
    assert index.first({"nobody"}, {}, 0.0) is False
    first = min(agents, key=lambda a: (a.idle_since, a.order))
    assert index.first({a.id for a in agents}, {}, 0.0) is first
    assert index.first({a.id for a in agents}, {first.id: 5.0}, 1.0) is not first  # declined until 5
    assert index.first({a.id for a in agents}, {first.id: 5.0}, 5.0) is first
    # agents leaving the free set, or idle again since, leave stale entries that are never given
    for a in agents[:-1]:
        free.discard(a.id)
    agents[-1].idle_since = 1e9
    assert index.first({a.id for a in agents}, {}, 0.0) is None
    index.add(agents[-1])
    assert index.first({a.id for a in agents}, {}, 0.0) is agents[-1]
    for a in agents[1:STOP_BELOW + 2]:
        free.add(a.id)
        a.idle_since = 2e9
        index.add(a)
    assert index.first({a.id for a in agents}, {}, 0.0) is agents[-1]
    free.add(agents[0].id)
    for _ in range(200):  # churn: the heap is rebuilt, not left to grow
        agents[0].idle_since += 1.0
        index.add(agents[0])
    assert index.active and len(index.heap) <= 2 * len(free) + 64
    for a in agents[1:STOP_BELOW + 2]:  # few free: the index stops and keeps nothing
        free.discard(a.id)
    index.add(agents[0])
    assert not index.active and not index.heap
    assert index.first({a.id for a in agents}, {}, 0.0) is agents[0]  # started again from the free set
