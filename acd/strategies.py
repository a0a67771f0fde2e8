"""How a queue picks one agent when several free, qualified agents could take a contact.

Each strategy is a pure function of the candidates and the router's recorded history; ties always
fall back to longest idle, then configuration order, so a decision never depends on set ordering.
The random strategy draws from a generator seeded by (queue seed, contact, attempt): replaying the
same events makes the same draws without carrying generator state.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

from acd.local_days import UTC_DAYS, LocalDays
from acd.model import Contact, QueueConfig, Strategy
from acd.reservations import AgentRuntime


def _idle_key(a: AgentRuntime) -> tuple[float, int]:
    return (a.idle_since, a.order)


def choose(queue: QueueConfig, contact: Contact, candidates: Sequence[AgentRuntime], now: float,
           rr_last: int, linear_rank: Callable[[AgentRuntime], int], agent_count: int,
           days: LocalDays = UTC_DAYS) -> AgentRuntime:
    """`agent_count` is the length of the round-robin turn (above every linear rank); `days` places local
    midnight, so yesterday's handled contacts (fewest_contacts) and occupancy (least_occupied) do not weigh."""
    strategy = queue.strategy
    if len(candidates) == 1:
        return candidates[0]
    if strategy is Strategy.LONGEST_IDLE:
        return min(candidates, key=_idle_key)
    if strategy is Strategy.BEST_SKILL:
        reqs = contact.requirements

        def skill_key(a: AgentRuntime) -> tuple[int, float, int]:
            # highest total level on what the contact needs; an unskilled queue falls back to idle
            return (-sum(a.cfg.skills.get(r.skill, 0) for r in reqs), a.idle_since, a.order)

        return min(candidates, key=skill_key)
    if strategy is Strategy.LEAST_OCCUPIED:
        return min(candidates, key=lambda a: (a.occupancy(now, days), a.idle_since, a.order))
    if strategy is Strategy.FEWEST_CONTACTS:
        today = days.day(now)
        return min(candidates, key=lambda a: (a.handled_on(today), a.idle_since, a.order))
    if strategy is Strategy.ROUND_ROBIN:
        # the next agent after the one this queue offered to last, in hunt order, wrapping round
        n = max(agent_count, 1)
        return min(candidates, key=lambda a: ((linear_rank(a) - rr_last - 1) % n, a.order))
    if strategy is Strategy.LINEAR:
        return min(candidates, key=lambda a: (linear_rank(a), a.order))
    if strategy is Strategy.RANDOM:
        ordered = sorted(candidates, key=lambda a: a.order)
        rng = random.Random(f"{queue.random_seed}:{contact.id}:{contact.offers}")
        return ordered[rng.randrange(len(ordered))]
    raise ValueError(f"unknown strategy {strategy!r}")
