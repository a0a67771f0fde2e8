"""Who may take a contact: the rule for a queue's ring of the bullseye, and the check of one agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from acd.model import MIN_LEVEL, AgentConfig, CenterConfig, QueueConfig, SkillRequirement, Value


@dataclass(frozen=True, slots=True)
class RingRule(Value):
    requirements: tuple[SkillRequirement, ...]  # sorted, one per skill
    groups: frozenset[str]  # empty: any agent
    overflow: tuple["RingRule", ...] = ()  # base rules of overflow queues: serving those is enough


def merge_requirements(*parts: Iterable[SkillRequirement]) -> tuple[SkillRequirement, ...]:
    """One requirement per skill, the strictest level wins; sorted so equal needs compare equal."""
    best: dict[str, int] = {}
    for part in parts:
        for req in part:
            best[req.skill] = max(best.get(req.skill, MIN_LEVEL), req.min_level)
    return tuple(SkillRequirement(s, lv) for s, lv in sorted(best.items()))


def ring_rule(center: CenterConfig, queue: QueueConfig, requirements: tuple[SkillRequirement, ...],
              ring: int) -> RingRule:
    """The rule in force at `ring` (0 = base; n = after the queue's n-th step). Steps widen cumulatively."""
    steps = queue.steps[:ring]
    drop = max((s.level_drop for s in steps), default=0)
    reqs = tuple(SkillRequirement(r.skill, max(MIN_LEVEL, r.min_level - drop)) for r in requirements)
    groups = frozenset(queue.groups)
    if groups:
        for s in steps:
            groups |= frozenset(s.add_groups)
    overflow: list[RingRule] = []
    for s in steps:
        for qid in s.overflow_queues:
            other = center.queues.get(qid)
            if other is not None:
                overflow.append(RingRule(merge_requirements(other.skills), frozenset(other.groups)))
    return RingRule(reqs, groups, tuple(overflow))


def has_skills(agent: AgentConfig, requirements: tuple[SkillRequirement, ...]) -> bool:
    skills = agent.skills
    return all(skills.get(r.skill, 0) >= r.min_level for r in requirements)


def serves(center: CenterConfig, agent: AgentConfig, rule: RingRule) -> bool:
    if (not rule.groups or not rule.groups.isdisjoint(agent.groups)) and has_skills(agent, rule.requirements):
        return True
    return any(serves(center, agent, o) for o in rule.overflow)
