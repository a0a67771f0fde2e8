"""Free agents of one channel, longest idle first: the longest-idle strategy without a scan of them all.

A large centre at a quiet hour has hundreds of agents free: choosing among them by a scan costs a walk
over every one of them per arriving contact. The index is a heap of (idle since, configuration order),
the key `acd.strategies` ranks longest-idle agents by, so its first live entry that may take the contact
is the agent the strategy would choose. Entries are left behind, not removed: one is stale once its
agent is no longer free on the channel or went idle again since (a newer entry stands for them then).
Stale entries are dropped as they reach the top, and the heap is rebuilt when they outnumber live ones.

Most of the time a busy centre has a handful of agents free, and the scan is cheaper than keeping the
heap: the index starts when first asked for an agent, from the free set, and stops (keeps nothing) once
fewer than STOP_BELOW agents are free, so a busy centre pays nothing for it.
"""

from __future__ import annotations

import heapq
from typing import Any

from acd.heaps import in_order
from acd.model import pickled
from acd.reservations import AgentRuntime

# a walk gives up after this many entries (free agents ahead that may not take the contact: another
# skill's agents), and the caller falls back to intersecting the sets
WALK_LIMIT = 64
STOP_BELOW = 4


class Idle:
    """One agent's entry: free on the channel since `since` (their idle_since when it was made)."""

    __slots__ = ("since", "order", "agent")

    def __reduce__(self) -> tuple[Any, ...]:
        return Idle, (self.since, self.order, self.agent)

    def __init__(self, since: float, order: int, agent: AgentRuntime) -> None:
        self.since = since
        self.order = order
        self.agent = agent

    def __lt__(self, other: Idle) -> bool:
        return self.since < other.since or (self.since == other.since and self.order < other.order)


class IdleIndex:
    """The free agents of one channel (`free`, the router's own set of their ids), longest idle first."""

    __slots__ = ("free", "agents", "heap", "active")

    def __reduce__(self) -> tuple[Any, ...]:
        return pickled(self, (self.free, self.agents))

    def __init__(self, free: set[str], agents: dict[str, AgentRuntime]) -> None:
        self.free = free
        self.agents = agents
        self.heap: list[Idle] = []
        self.active = False  # keeping the heap up (else it is empty and first() starts it)

    def _live(self, e: Idle) -> bool:
        a = e.agent
        return a.idle_since == e.since and a.id in self.free

    def add(self, a: AgentRuntime) -> None:
        """`a` is free on the channel now (newly, or idle again since its last entry)."""
        if not self.active:
            return
        if len(self.free) < STOP_BELOW:
            self.active = False
            self.heap = []
            return
        heap = self.heap
        heapq.heappush(heap, Idle(a.idle_since, a.order, a))
        if len(heap) > 2 * len(self.free) + 64:
            self._rebuild()

    def _rebuild(self) -> None:
        seen: set[str] = set()
        live: list[Idle] = []
        for e in self.heap:
            a = e.agent
            if a.id not in seen and self._live(e):
                seen.add(a.id)
                live.append(e)
        heapq.heapify(live)
        self.heap = live

    def first(self, allowed: set[str], declined: dict[str, float], t: float) -> AgentRuntime | None | bool:
        """The longest-idle free agent in `allowed` who has not declined the contact until after `t`; None
        when there is none; False when the walk passed WALK_LIMIT entries without deciding."""
        if not self.active:
            agents = self.agents
            self.heap = [Idle(a.idle_since, a.order, a) for a in (agents[x] for x in self.free)]
            heapq.heapify(self.heap)
            self.active = True
        heap = self.heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        if not heap:
            return None
        a = heap[0].agent
        if a.id in allowed and not (declined and declined.get(a.id, t) > t):
            return a  # the usual case: the longest idle may take it
        for passed, e in enumerate(in_order(heap)):  # (the heap left as it is)
            a = e.agent
            if self._live(e) and a.id in allowed and not (declined and declined.get(a.id, t) > t):
                return a
            if passed >= WALK_LIMIT:
                return False
        return None
