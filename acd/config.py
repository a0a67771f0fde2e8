"""Build and check a `CenterConfig` from plain data (what a YAML file parses to).

Every problem is collected with the dotted path of the field, so the engine can point at the file
and line. An impossible queue is refused here, before anything routes.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from acd.checks import FieldChecker
from acd.errors import ConfigError, ConfigIssue
from acd.local_days import zone_problem
from acd.model import (
    DEFAULT_BLOCKS,
    DEFAULT_REASONS,
    MAX_LEVEL,
    MIN_LEVEL,
    OUTBOUND_REASON,
    RONA_REASON,
    AgentConfig,
    CenterConfig,
    Channel,
    QueueConfig,
    RoutingStep,
    SkillRequirement,
    Strategy,
)

QUEUE_FIELDS = {
    "name", "strategy", "sl_threshold_s", "skills", "groups", "steps", "offer_timeout_s", "wrap_up_s",
    "wrap_up_codes", "wrap_up_code_required", "priority_boost_per_s", "short_abandon_s",
    "preferred_agent_timeout_s", "random_seed", "linear_order",
}
STEP_FIELDS = {"after_s", "level_drop", "add_groups", "overflow_queues"}
AGENT_FIELDS = {"name", "skills", "capacity", "groups"}
CENTER_FIELDS = {"skills", "queues", "agents", "blocks", "rona_misses", "decline_retry_s", "not_ready_reasons", "interval_s",
                 "day_offset_s", "timezone"}


class _Checker(FieldChecker):
    """Field checks plus the centre's own: skill levels and channel names."""

    def level(self, path: str, value: Any) -> int | None:
        level = self.number(path, value, integer=True)
        if level is not None and not MIN_LEVEL <= level <= MAX_LEVEL:
            self.add(path, f"skill level must be {MIN_LEVEL}-{MAX_LEVEL}, got {level}")
            return None
        return level

    def channel(self, path: str, value: Any) -> Channel | None:
        try:
            return Channel(value)
        except ValueError:
            self.add(path, f"unknown channel {value!r} (one of: {', '.join(c.value for c in Channel)})")
            return None


def _opt(ck: _Checker, data: Mapping[str, Any], key: str, path: str, default: Any,
         convert: Callable[[str, Any], Any]) -> Any:
    if key not in data:
        return default
    value = convert(f"{path}.{key}", data[key])
    return default if value is None else value


def _zone(ck: _Checker, path: str, value: Any) -> str | None:
    problem = zone_problem(value)
    if problem is not None:
        ck.add(path, problem)
        return None
    return str(value)


def load_center(data: Mapping[str, Any], *, root: str = "") -> CenterConfig:
    """Parse and check; raise `ConfigError` listing every problem. `root` prefixes the paths."""
    ck = _Checker()
    p = (lambda s: f"{root}.{s}" if root else s)
    if not isinstance(data, Mapping):
        raise ConfigError([ConfigIssue(root or "(top)", "must be a mapping")])
    ck.unknown_fields(root, data, CENTER_FIELDS)

    raw_skills = data.get("skills", [])
    if isinstance(raw_skills, Mapping):
        skills = tuple(str(s) for s in raw_skills)
    else:
        skills = ck.names(p("skills"), raw_skills)
    skill_set = set(skills)

    agents: dict[str, AgentConfig] = {}
    for agent_id, raw in ck.mapping(p("agents"), data.get("agents")).items():
        agent = _load_agent(ck, p(f"agents.{agent_id}"), str(agent_id), raw, skill_set)
        if agent is not None:
            agents[agent.id] = agent

    raw_queues = ck.mapping(p("queues"), data.get("queues"))
    queues: dict[str, QueueConfig] = {}
    for queue_id, raw in raw_queues.items():
        queue = _load_queue(ck, p(f"queues.{queue_id}"), str(queue_id), raw, skill_set, set(raw_queues))
        if queue is not None:
            queues[queue.id] = queue
    if not raw_queues:
        ck.add(p("queues"), "at least one queue is needed")

    blocks: dict[Channel, frozenset[Channel]] = dict(DEFAULT_BLOCKS)
    if "blocks" in data:
        blocks = {}
        for ch, raw in ck.mapping(p("blocks"), data["blocks"]).items():
            key = ck.channel(p(f"blocks.{ch}"), ch)
            targets = [ck.channel(p(f"blocks.{ch}[{i}]"), v) for i, v in enumerate(ck.names(p(f"blocks.{ch}"), raw))]
            if key is not None:
                blocks[key] = frozenset(t for t in targets if t is not None)

    reasons: tuple[str, ...] = ck.names(p("not_ready_reasons"), data.get("not_ready_reasons")) or DEFAULT_REASONS
    if RONA_REASON not in reasons:
        reasons = (*reasons, RONA_REASON)
    if OUTBOUND_REASON not in reasons:  # always there, like RONA: the engine uses it for outbound calls
        reasons = (*reasons, OUTBOUND_REASON)

    center = CenterConfig(
        skills=skills,
        queues=queues,
        agents=agents,
        blocks=blocks,
        rona_misses=_opt(ck, data, "rona_misses", root or "", 2,
                         lambda path, v: ck.number(path.lstrip("."), v, integer=True, minimum=1)),
        decline_retry_s=_opt(ck, data, "decline_retry_s", root or "", 30.0,
                             lambda path, v: ck.number(path.lstrip("."), v, positive=True)),
        not_ready_reasons=tuple(reasons),
        interval_s=_opt(ck, data, "interval_s", root or "", 900.0,
                        lambda path, v: ck.number(path.lstrip("."), v, positive=True)),
        day_offset_s=_opt(ck, data, "day_offset_s", root or "", 0.0,
                          lambda path, v: ck.number(path.lstrip("."), v)),
        timezone=_opt(ck, data, "timezone", root or "", None, lambda path, v: _zone(ck, path.lstrip("."), v)),
    )
    if "timezone" in data and "day_offset_s" in data:
        ck.add(p("day_offset_s"), "give timezone (local midnight, daylight saving included) or a fixed "
                                  "day_offset_s, not both")
    _check_servable(ck, p, center)
    if ck.issues:
        raise ConfigError(ck.issues)
    return center


def _load_agent(ck: _Checker, path: str, agent_id: str, raw: Any, skill_set: set[str]) -> AgentConfig | None:
    raw = ck.mapping(path, raw)
    ck.unknown_fields(path, raw, AGENT_FIELDS)
    skills: dict[str, int] = {}
    for skill, level in ck.mapping(f"{path}.skills", raw.get("skills")).items():
        if skill not in skill_set:
            ck.add(f"{path}.skills.{skill}", "unknown skill (not in the skills list)")
        lv = ck.level(f"{path}.skills.{skill}", level)
        if lv is not None:
            skills[str(skill)] = lv
    capacity: dict[Channel, int] = {}
    raw_cap = raw.get("capacity", {"voice": 1})
    for ch, n in ck.mapping(f"{path}.capacity", raw_cap).items():
        channel = ck.channel(f"{path}.capacity.{ch}", ch)
        count = ck.number(f"{path}.capacity.{ch}", n, integer=True)
        if count is not None and count < 1:
            ck.add(f"{path}.capacity.{ch}", f"capacity must be at least 1, got {count} "
                                            "(leave the channel out if the agent does not take it)")
        elif channel is not None and count is not None:
            capacity[channel] = count
    if not raw_cap:
        ck.add(f"{path}.capacity", "an agent needs capacity on at least one channel")
    return AgentConfig(id=agent_id, name=str(raw.get("name", agent_id)), skills=skills, capacity=capacity,
                       groups=ck.names(f"{path}.groups", raw.get("groups")))


def _load_queue(ck: _Checker, path: str, queue_id: str, raw: Any, skill_set: set[str],
                queue_ids: set[Any]) -> QueueConfig | None:
    raw = ck.mapping(path, raw)
    ck.unknown_fields(path, raw, QUEUE_FIELDS)
    reqs = []
    for skill, level in ck.mapping(f"{path}.skills", raw.get("skills")).items():
        if skill not in skill_set:
            ck.add(f"{path}.skills.{skill}", "unknown skill: no agent can have it (not in the skills list)")
        lv = ck.level(f"{path}.skills.{skill}", level)
        if lv is not None:
            reqs.append(SkillRequirement(str(skill), lv))
    strategy = Strategy.LONGEST_IDLE
    if "strategy" in raw:
        try:
            strategy = Strategy(raw["strategy"])
        except ValueError:
            ck.add(f"{path}.strategy", f"unknown strategy {raw['strategy']!r} "
                                       f"(one of: {', '.join(s.value for s in Strategy)})")
    steps = []
    last_after = -1.0
    raw_steps = raw.get("steps") or []
    if not isinstance(raw_steps, list):
        ck.add(f"{path}.steps", "must be a list of routing steps")
        raw_steps = []
    for i, rs in enumerate(raw_steps):
        sp = f"{path}.steps[{i}]"
        rs = ck.mapping(sp, rs)
        ck.unknown_fields(sp, rs, STEP_FIELDS)
        if "after_s" not in rs:
            ck.add(f"{sp}.after_s", "required: seconds of waiting after which this step applies")
            continue
        after = ck.number(f"{sp}.after_s", rs["after_s"], minimum=0)
        if after is None:
            continue
        if after <= last_after:
            ck.add(f"{sp}.after_s", f"steps must come in increasing after_s order ({after} after {last_after})")
        last_after = after
        drop = _opt(ck, rs, "level_drop", sp, 0, lambda p_, v: ck.number(p_, v, integer=True, minimum=0))
        overflow = ck.names(f"{sp}.overflow_queues", rs.get("overflow_queues"))
        for q in overflow:
            if q not in queue_ids:
                ck.add(f"{sp}.overflow_queues", f"unknown queue {q!r}")
        steps.append(RoutingStep(after_s=float(after), level_drop=drop,
                                 add_groups=ck.names(f"{sp}.add_groups", rs.get("add_groups")),
                                 overflow_queues=overflow))
    codes = ck.names(f"{path}.wrap_up_codes", raw.get("wrap_up_codes"))
    required = bool(raw.get("wrap_up_code_required", False))
    if required and not codes:
        ck.add(f"{path}.wrap_up_code_required", "a required wrap-up code needs a wrap_up_codes list")
    num = (lambda key, default, **kw: _opt(ck, raw, key, path, default, lambda p_, v: ck.number(p_, v, **kw)))
    return QueueConfig(
        id=queue_id,
        name=str(raw.get("name", queue_id)),
        strategy=strategy,
        sl_threshold_s=float(num("sl_threshold_s", 30.0, positive=True)),
        skills=tuple(reqs),
        groups=ck.names(f"{path}.groups", raw.get("groups")),
        steps=tuple(steps),
        offer_timeout_s=float(num("offer_timeout_s", 20.0, positive=True)),
        wrap_up_s=float(num("wrap_up_s", 0.0, minimum=0)),
        wrap_up_codes=codes,
        wrap_up_code_required=required,
        priority_boost_per_s=float(num("priority_boost_per_s", 0.0, minimum=0)),
        short_abandon_s=float(num("short_abandon_s", 5.0, minimum=0)),
        preferred_agent_timeout_s=float(num("preferred_agent_timeout_s", 30.0, minimum=0)),
        random_seed=int(num("random_seed", 0, integer=True)),
        linear_order=ck.names(f"{path}.linear_order", raw.get("linear_order")),
    )


def _check_servable(ck: _Checker, p: Callable[[str], str], center: CenterConfig) -> None:
    """A queue nobody could ever serve, even at its widest ring, is a configuration error."""
    groups_known = {g for a in center.agents.values() for g in a.groups}
    for q in center.queues.values():
        qp = p(f"queues.{q.id}")
        for g in q.groups:
            if g not in groups_known and center.agents:
                ck.add(f"{qp}.groups", f"no agent is in group {g!r}")
        for i, step in enumerate(q.steps):
            for g in step.add_groups:
                if g not in groups_known and center.agents:
                    ck.add(f"{qp}.steps[{i}].add_groups", f"no agent is in group {g!r}")
        for agent_id in q.linear_order:
            if agent_id not in center.agents:
                ck.add(f"{qp}.linear_order", f"unknown agent {agent_id!r}")
        if not center.agents:
            continue
        from acd.eligibility import ring_rule, serves  # local: eligibility imports model only

        widest = ring_rule(center, q, q.skills, len(q.steps))
        if not any(serves(center, a, widest) for a in center.agents.values()):
            needs = ", ".join(f"{r.skill}>={r.min_level}" for r in widest.requirements) or "membership"
            ck.add(f"{qp}.skills", f"no configured agent can serve this queue even at its widest step "
                                   f"(needs {needs} in groups {sorted(widest.groups) or 'any'})")
