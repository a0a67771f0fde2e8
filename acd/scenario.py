"""A simulation scenario from plain data (what a YAML file parses to): the centre, the demand, the shifts.

The centre part is exactly `acd.config`'s schema (checked by `load_center`); the rest says what
arrives and how people behave:

    start: "08:00"            # time of day (or seconds) the doors open; simulated time is seconds
    end: "18:00"              # arrivals stop here (or `duration_s`); work already in the centre drains
    warmup_s: 0               # discard this much from the start (rounded up to an interval edge)
    drain_s: 14400            # at most this long after `end` to finish the work left
    ring_delay: {distribution: fixed, value_s: 3}     # offer -> agent answers (default 0)
    no_answer_probability: 0.0                       # an offer rings out (exercises RONA)
    rona_ready_after_s: 60    # an agent made not-ready by RONA goes ready again this much later
    center: {skills: ..., queues: ..., agents: ...}
    contact_types:
      general_call:
        queue: general
        channel: voice
        requirements: {bylaw: 3}
        priority: 0
        arrivals: {per_hour: 51}    # or per_hour: [..] / per_interval: [..]: one value per interval
                                    # (center.interval_s, counted from `start`) up to `end`
        handle_time: {distribution: lognormal, mean_s: 300, cv: 0.8}
        patience: {distribution: exponential, mean_s: 180}   # or none (the default)
    shifts:
      - {agents: [csr01, csr02], start: "08:00", end: "16:00"}

Agents without a shift are logged in, ready, for the whole run. Every problem is reported with the
dotted path of its field, as `acd.config` does. Pure: no I/O.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acd.checks import FieldChecker
from acd.config import load_center
from acd.eligibility import merge_requirements, ring_rule, serves
from acd.errors import ConfigError, ConfigIssue
from acd.model import MAX_LEVEL, MIN_LEVEL, RONA_REASON, CenterConfig, Channel, SkillRequirement

SCENARIO_FIELDS = {
    "name", "description", "seed", "start", "end", "duration_s", "warmup_s", "drain_s", "ring_delay",
    "no_answer_probability", "rona_ready_after_s", "shift_end_reason", "center", "contact_types", "shifts",
}
CONTACT_TYPE_FIELDS = {"queue", "channel", "requirements", "priority", "arrivals", "handle_time", "patience"}
SHIFT_FIELDS = {"agents", "start", "end"}
ARRIVAL_FIELDS = {"per_hour", "per_interval"}
DISTRIBUTIONS = ("exponential", "lognormal", "fixed", "empirical", "none")
_DIST_FIELDS = {
    "exponential": {"mean_s"},
    "lognormal": {"mean_s", "cv"},
    "fixed": {"value_s"},
    "empirical": {"values_s"},
    "none": set(),
}
_TIME = re.compile(r"^(\d{1,3}):([0-5]\d)(?::([0-5]\d))?$")
DEFAULT_DRAIN_S = 4 * 3600.0


@dataclass(frozen=True, slots=True)
class Distribution:
    """A duration distribution in seconds. `none` never happens (patience: the caller never hangs up)."""

    kind: str
    mean_s: float = 0.0
    cv: float = 1.0
    values_s: tuple[float, ...] = ()

    @property
    def mean(self) -> float:
        if self.kind == "none":
            return math.inf
        if self.kind == "empirical":
            return sum(self.values_s) / len(self.values_s)
        return self.mean_s


NEVER = Distribution("none")
ZERO = Distribution("fixed", 0.0)


@dataclass(frozen=True, slots=True)
class ContactType:
    name: str
    queue: str
    channel: Channel
    requirements: tuple[SkillRequirement, ...]
    priority: int
    rates_per_s: tuple[float, ...]  # one Poisson rate per interval from the start of the run
    handle_time: Distribution
    patience: Distribution


@dataclass(frozen=True, slots=True)
class Shift:
    agent: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    center: CenterConfig
    start: float
    end: float  # arrivals stop
    warmup_s: float
    drain_s: float
    ring_delay: Distribution
    no_answer_probability: float
    rona_ready_after_s: float
    shift_end_reason: str
    contact_types: tuple[ContactType, ...]
    shifts: tuple[Shift, ...]
    seed: int = 1

    @property
    def interval_s(self) -> float:
        return self.center.interval_s


class _Checker(FieldChecker):
    """Field checks plus times of day ("HH:MM" or seconds)."""

    def number(self, path: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
               positive: bool = False, integer: bool = False) -> Any:
        found = super().number(path, value, minimum=minimum, maximum=maximum, positive=positive, integer=integer)
        return float(found) if found is not None and not integer else found

    def time(self, path: str, value: Any) -> float | None:
        """"HH:MM[:SS]" (time of day, may run past 24:00) or a number of seconds."""
        if isinstance(value, str):
            m = _TIME.match(value.strip())
            if not m:
                self.add(path, f"must be a time HH:MM or a number of seconds, got {value!r}")
                return None
            return int(m.group(1)) * 3600.0 + int(m.group(2)) * 60.0 + int(m.group(3) or 0)
        return self.number(path, value, minimum=0)


def load_scenario(data: Any) -> Scenario:
    """Parse and check a scenario; raise `ConfigError` listing every problem with its dotted path."""
    ck = _Checker()
    if not isinstance(data, Mapping):
        raise ConfigError([ConfigIssue("(top)", "a scenario must be a mapping")])
    ck.unknown("", data, SCENARIO_FIELDS)

    center: CenterConfig | None = None
    if "center" not in data:
        ck.add("center", "required: the centre (skills, queues, agents) in acd.config's schema")
    else:
        try:
            center = load_center(data["center"], root="center")
        except ConfigError as exc:
            ck.issues.extend(exc.issues)

    start = ck.time("start", data["start"]) if "start" in data else 0.0
    end: float | None = None
    if "end" in data and "duration_s" in data:
        ck.add("duration_s", "give either end or duration_s, not both")
    elif "end" in data:
        end = ck.time("end", data["end"])
        if end is not None and start is not None and end <= start:
            ck.add("end", f"must come after start ({data['end']!r} is not after {data.get('start', 0)!r})")
            end = None
    elif "duration_s" in data:
        duration = ck.number("duration_s", data["duration_s"], positive=True)
        end = None if duration is None or start is None else start + duration
    else:
        ck.add("end", "required: when arrivals stop (end, or duration_s)")
    warmup = _opt_number(ck, data, "warmup_s", 0.0, minimum=0)
    drain = _opt_number(ck, data, "drain_s", DEFAULT_DRAIN_S, minimum=0)
    no_answer = _opt_number(ck, data, "no_answer_probability", 0.0, minimum=0, maximum=1)
    rona_after = _opt_number(ck, data, "rona_ready_after_s", 60.0, minimum=0)
    ring_delay = (_distribution(ck, "ring_delay", data["ring_delay"], allow_none=False)
                  if "ring_delay" in data else ZERO) or ZERO
    seed = data.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        ck.add("seed", f"must be a whole number, got {seed!r}")
        seed = 1
    if start is not None and end is not None and warmup >= end - start:
        ck.add("warmup_s", f"the warm-up ({warmup:g} s) leaves nothing of the {end - start:g} s run to measure")

    interval_s = center.interval_s if center is not None else 900.0
    n_intervals = (max(1, math.ceil((end - start) / interval_s - 1e-9))
                   if start is not None and end is not None else None)
    types = []
    raw_types: Mapping[str, Any] = {}
    if "contact_types" not in data:
        ck.add("contact_types", "required: what arrives (queue, channel, arrivals, handle_time, ...)")
    else:
        raw_types = ck.mapping("contact_types", data["contact_types"], required=True)
        if not raw_types and isinstance(data["contact_types"], Mapping):
            ck.add("contact_types", "at least one contact type is needed")
    for name, raw in raw_types.items():
        ct = _contact_type(ck, f"contact_types.{name}", str(name), raw, center, n_intervals, interval_s)
        if ct is not None:
            types.append(ct)

    reasons = center.not_ready_reasons if center is not None else (RONA_REASON,)
    default_reason = next((r for r in reasons if r != RONA_REASON), RONA_REASON)
    reason = data.get("shift_end_reason", default_reason)
    if reason not in reasons:
        ck.add("shift_end_reason", f"must be one of the centre's not_ready_reasons ({', '.join(reasons)}), "
                                   f"got {reason!r}")

    shifts = _shifts(ck, data.get("shifts"), center)
    if ck.issues:
        raise ConfigError(ck.issues)
    assert center is not None and start is not None and end is not None
    return Scenario(
        name=str(data.get("name", "scenario")), center=center, start=start, end=end, warmup_s=warmup,
        drain_s=drain, ring_delay=ring_delay, no_answer_probability=no_answer, rona_ready_after_s=rona_after,
        shift_end_reason=str(reason), contact_types=tuple(types), shifts=tuple(shifts), seed=seed)


def _opt_number(ck: _Checker, data: Mapping[str, Any], key: str, default: float, **kw: Any) -> float:
    if key not in data:
        return default
    value = ck.number(key, data[key], **kw)
    return default if value is None else value


def _distribution(ck: _Checker, path: str, raw: Any, *, allow_none: bool) -> Distribution | None:
    if raw is None or raw == "none":
        if allow_none:
            return NEVER
        ck.add(path, "must be a distribution, e.g. {distribution: exponential, mean_s: 180}")
        return None
    raw = ck.mapping(path, raw, required=True)
    if not raw:
        return None
    kind = raw.get("distribution")
    allowed = DISTRIBUTIONS if allow_none else DISTRIBUTIONS[:-1]
    if kind not in allowed:
        ck.add(f"{path}.distribution", f"must be one of: {', '.join(allowed)}; got {kind!r}")
        return None
    ck.unknown(path, raw, _DIST_FIELDS[kind] | {"distribution"})
    for key in sorted(_DIST_FIELDS[kind]):
        if key not in raw:
            ck.add(f"{path}.{key}", f"required for a {kind} distribution")
            return None
    if kind == "exponential":
        mean = ck.number(f"{path}.mean_s", raw["mean_s"], positive=True)
        return None if mean is None else Distribution(kind, mean)
    if kind == "lognormal":
        mean = ck.number(f"{path}.mean_s", raw["mean_s"], positive=True)
        cv = ck.number(f"{path}.cv", raw["cv"], positive=True)
        return None if mean is None or cv is None else Distribution(kind, mean, cv)
    if kind == "fixed":
        value = ck.number(f"{path}.value_s", raw["value_s"], minimum=0)
        return None if value is None else Distribution(kind, value, 0.0)
    if kind == "empirical":
        values = raw["values_s"]
        if not isinstance(values, list) or not values:
            ck.add(f"{path}.values_s", "must be a non-empty list of durations in seconds")
            return None
        checked = [ck.number(f"{path}.values_s[{i}]", v, minimum=0) for i, v in enumerate(values)]
        if any(v is None for v in checked):
            return None
        return Distribution(kind, 0.0, 0.0, tuple(float(v) for v in checked if v is not None))
    return NEVER


def _rates(ck: _Checker, path: str, raw: Any, n_intervals: int | None, interval_s: float) -> tuple[float, ...] | None:
    raw = ck.mapping(path, raw, required=True)
    if not raw:
        return None
    ck.unknown(path, raw, ARRIVAL_FIELDS)
    given = [k for k in ("per_hour", "per_interval") if k in raw]
    if len(given) != 1:
        ck.add(path, "give exactly one of per_hour (a rate, or one rate per interval) or per_interval "
                     "(expected contacts in each interval)")
        return None
    key = given[0]
    value = raw[key]
    scale = (1 / 3600.0) if key == "per_hour" else (1 / interval_s)
    if isinstance(value, list):
        rates = [ck.number(f"{path}.{key}[{i}]", v, minimum=0) for i, v in enumerate(value)]
        if any(r is None for r in rates):
            return None
        if n_intervals is not None and len(rates) != n_intervals:
            ck.add(f"{path}.{key}", f"the profile has {len(rates)} intervals but the run from start to end "
                                    f"spans {n_intervals} intervals of {interval_s:g} s")
            return None
        out = tuple(r * scale for r in rates if r is not None)
    elif key == "per_interval":
        ck.add(f"{path}.per_interval", "must be a list, one expected count per interval")
        return None
    else:
        rate = ck.number(f"{path}.{key}", value, minimum=0)
        if rate is None:
            return None
        out = (rate * scale,) * (n_intervals or 1)
    if not any(out):
        ck.add(f"{path}.{key}", "no contact would ever arrive (every rate is 0)")
        return None
    return out


def _contact_type(ck: _Checker, path: str, name: str, raw: Any, center: CenterConfig | None,
                  n_intervals: int | None, interval_s: float) -> ContactType | None:
    raw = ck.mapping(path, raw, required=True)
    if not raw:
        return None
    ck.unknown(path, raw, CONTACT_TYPE_FIELDS)
    ok = True
    queue = raw.get("queue")
    if not isinstance(queue, str):
        ck.add(f"{path}.queue", f"required: the queue's id, got {queue!r}")
        ok = False
    elif center is not None and queue not in center.queues:
        ck.add(f"{path}.queue", f"unknown queue {queue!r} (one of: {', '.join(center.queues)})")
        ok = False
    try:
        channel = Channel(raw.get("channel", "voice"))
    except ValueError:
        ck.add(f"{path}.channel", f"unknown channel {raw.get('channel')!r} "
                                  f"(one of: {', '.join(c.value for c in Channel)})")
        channel, ok = Channel.VOICE, False
    reqs = []
    for skill, level in ck.mapping(f"{path}.requirements", raw.get("requirements")).items():
        if center is not None and skill not in center.skills:
            ck.add(f"{path}.requirements.{skill}", "unknown skill (not in center.skills)")
            ok = False
        if isinstance(level, bool) or not isinstance(level, int) or not MIN_LEVEL <= level <= MAX_LEVEL:
            ck.add(f"{path}.requirements.{skill}", f"skill level must be a whole number {MIN_LEVEL}-{MAX_LEVEL}, "
                                                   f"got {level!r}")
            ok = False
        else:
            reqs.append(SkillRequirement(str(skill), level))
    priority = raw.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        ck.add(f"{path}.priority", f"must be a whole number, got {priority!r}")
        ok = False
    if "arrivals" not in raw:
        ck.add(f"{path}.arrivals", "required: e.g. {per_hour: 51}")
        rates = None
    else:
        rates = _rates(ck, f"{path}.arrivals", raw["arrivals"], n_intervals, interval_s)
    if "handle_time" not in raw:
        ck.add(f"{path}.handle_time", "required: e.g. {distribution: exponential, mean_s: 240}")
        handle = None
    else:
        handle = _distribution(ck, f"{path}.handle_time", raw["handle_time"], allow_none=False)
    patience = _distribution(ck, f"{path}.patience", raw.get("patience"), allow_none=True)
    if not ok or rates is None or handle is None or patience is None:
        return None
    requirements = tuple(reqs)
    if center is not None:
        q = center.queues[queue]
        widest = ring_rule(center, q, merge_requirements(q.skills, requirements), len(q.steps))
        if not any(a.capacity.get(channel, 0) > 0 and serves(center, a, widest) for a in center.agents.values()):
            ck.add(path, f"no agent can take this contact type ({channel} on queue {queue!r} with its skills), "
                         "even at the queue's widest step")
            return None
    return ContactType(name=name, queue=queue, channel=channel, requirements=requirements, priority=priority,
                       rates_per_s=rates, handle_time=handle, patience=patience)


def _shifts(ck: _Checker, raw: Any, center: CenterConfig | None) -> list[Shift]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        ck.add("shifts", "must be a list of {agents: [...], start: HH:MM, end: HH:MM}")
        return []
    shifts: list[Shift] = []
    for i, rs in enumerate(raw):
        path = f"shifts[{i}]"
        rs = ck.mapping(path, rs, required=True)
        if not rs:
            continue
        ck.unknown(path, rs, SHIFT_FIELDS)
        agents = rs.get("agents")
        if not isinstance(agents, list) or not agents or not all(isinstance(a, str) for a in agents):
            ck.add(f"{path}.agents", f"must be a non-empty list of agent ids, got {agents!r}")
            agents = []
        for j, agent in enumerate(agents):
            if center is not None and agent not in center.agents:
                ck.add(f"{path}.agents[{j}]", f"unknown agent {agent!r}")
        if "start" not in rs or "end" not in rs:
            ck.add(path, "a shift needs start and end")
            continue
        start, end = ck.time(f"{path}.start", rs["start"]), ck.time(f"{path}.end", rs["end"])
        if start is None or end is None:
            continue
        if end <= start:
            ck.add(f"{path}.end", f"must come after the shift's start ({rs['end']!r} <= {rs['start']!r})")
            continue
        shifts.extend(Shift(a, start, end) for a in agents)
    by_agent: dict[str, list[Shift]] = {}
    for s in shifts:
        by_agent.setdefault(s.agent, []).append(s)
    for agent, own in by_agent.items():
        own.sort(key=lambda s: s.start)
        for a, b in itertools.pairwise(own):
            if b.start < a.end:
                ck.add("shifts", f"agent {agent!r} has overlapping shifts")
    return sorted(shifts, key=lambda s: (s.start, s.agent))
