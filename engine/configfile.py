"""The site configuration file (`config/switchboard.yaml`): parse, check, and point at the line.

The ACD part (skills, queues, agents, blocks, ...) is checked by `acd.config.load_center`; the engine's own
sections (site, business hours, stations, numbers, users, public waits) by pydantic. Every problem comes back
as `file:line: field: message`, all of them at once, so an administrator can fix the file in one pass.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from acd.config import CENTER_FIELDS, load_center
from acd.errors import ConfigError
from acd.local_days import zone_problem
from acd.model import CenterConfig

if TYPE_CHECKING:
    from engine.telephony.dialplan import DialPlan

SITE_ZONED = {"timezone", "day_offset_s"}  # centre fields a site file leaves to site.timezone
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSection(_Strict):
    name: str = "Switchboard"
    timezone: str = "America/Toronto"
    holidays: str | None = Field(default="CA-ON", description="country-subdivision for statutory holidays")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        problem = zone_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v


class UserSection(_Strict):
    """Bootstrap users created at start if missing (demo only: use `switchboard user add` in production)."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=4)
    role: Literal["agent", "supervisor", "admin"]
    agent: str | None = None


class DialPlanSection(_Strict):
    """Outbound calls (click-to-dial, callbacks, transfers out): the toll-fraud guard, see `dialplan.py`."""

    trunk: str = Field(default="sip:{number}@127.0.0.1:5080",
                       description="SIP URI template of the outside line")
    caller_id: str = Field(default="", description="number presented on outbound calls (the central number)")
    allow_categories: list[str] = Field(default_factory=lambda: ["n11", "local", "toll_free"])
    local_area_codes: list[str] = Field(default_factory=lambda: ["905", "289", "365"])
    allow: list[str] = Field(default_factory=list, description="extra regexes allowed (normalised digits)")
    deny: list[str] = Field(default_factory=list, description="regexes always refused")
    callback_retry_s: float = Field(default=600.0, gt=0,
                                    description="an unanswered callback is tried again this much later")
    callback_attempts: int = Field(default=3, ge=1, le=10,
                                   description="attempts in all before a callback is dropped")

    @field_validator("trunk")
    @classmethod
    def _template(cls, v: str) -> str:
        if not v.startswith(("sip:", "sips:")) or "{number}" not in v:
            raise ValueError(f"trunk must be a sip: URI with {{number}} in it, got {v!r}")
        try:
            v.format(number="311")
        except (KeyError, IndexError, ValueError) as exc:  # another {placeholder} would fail at dial time
            what = f"{{{exc.args[0]}}}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"trunk {v!r}: only {{number}} may be filled in, not {what}") from None
        return v

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, v: str) -> str:
        if v and not re.fullmatch(r"\+?\d{3,15}", v):
            raise ValueError(f"caller_id must be a phone number (digits, optional leading +), got {v!r}")
        return v

    @field_validator("allow_categories")
    @classmethod
    def _categories(cls, v: list[str]) -> list[str]:
        from engine.telephony.dialplan import Category

        known = {c.value for c in Category} - {"invalid", "emergency"}
        for c in v:
            if c not in known:
                raise ValueError(f"unknown category {c!r} (one of: {', '.join(sorted(known))})")
        return v

    @field_validator("local_area_codes")
    @classmethod
    def _area_codes(cls, v: list[str]) -> list[str]:
        for code in v:
            if not re.fullmatch(r"[2-9]\d\d", str(code)):
                raise ValueError(f"area code {code!r} must be three digits")
        return [str(c) for c in v]

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from None
        return v

    def plan(self) -> DialPlan:
        from engine.telephony.dialplan import Category, DialPlan

        return DialPlan(trunk=self.trunk, allowed=frozenset(Category(c) for c in self.allow_categories),
                        local_area_codes=tuple(self.local_area_codes), allow=tuple(self.allow),
                        deny=tuple(self.deny))


class EngineSections(_Strict):
    site: SiteSection = SiteSection()
    business_hours: dict[str, list[tuple[str, str]]] = Field(default_factory=dict)
    stations: dict[str, str] = Field(default_factory=dict)  # agent id -> SIP URI of their desk phone
    numbers: dict[str, str] = Field(default_factory=dict)  # dialled number -> queue
    users: list[UserSection] = Field(default_factory=list)
    dial_plan: DialPlanSection = DialPlanSection()
    # queues whose current wait the city's web site may show (GET /api/v1/public/waits, no sign-in)
    public_waits: list[str] = Field(default_factory=list)

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, v: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
        for day, ranges in v.items():
            if day not in DAYS:
                raise ValueError(f"unknown day {day!r} (one of: {', '.join(DAYS)})")
            for start, end in ranges:
                for t in (start, end):
                    if not _HHMM.match(t):
                        raise ValueError(f"{day}: time {t!r} must be HH:MM")
                if start >= end:
                    raise ValueError(f"{day}: opening {start} must come before closing {end}")
        return v

    @field_validator("stations")
    @classmethod
    def _sip_uris(cls, v: dict[str, str]) -> dict[str, str]:
        for agent, uri in v.items():
            if not uri.startswith(("sip:", "sips:")):
                raise ValueError(f"station of {agent!r} must be a sip: URI, got {uri!r}")
        return v


@dataclass(frozen=True)
class SiteConfig:
    path: Path
    center: CenterConfig
    engine: EngineSections
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}"


class ConfigFileError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in path.split("."):
        m = re.match(r"^([^\[]*)((?:\[\d+\])*)$", piece)
        if not m:
            parts.append(piece)
            continue
        if m.group(1):
            parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return parts


def _line_of(root: yaml.Node | None, parts: list[str | int]) -> int | None:
    """The 1-based line of the deepest node along `parts` that exists (the key line for mapping entries)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def parse_text(text: str, file: str = "<config>") -> SiteConfig:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigFileError([Problem(file, line, "(syntax)", str(getattr(exc, "problem", exc)))]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError([Problem(file, 1, "(top)", "the file must be a mapping of sections")])

    problems: list[Problem] = []
    engine_keys = set(EngineSections.model_fields)
    allowed = ", ".join(sorted((CENTER_FIELDS - SITE_ZONED) | engine_keys))
    for key in data:
        if key not in CENTER_FIELDS and key not in engine_keys:
            problems.append(Problem(file, _line_of(root, [key]), str(key),
                                    f"unknown section (allowed: {allowed})"))
    # the centre's own say on local days: the site's zone decides
    for key in sorted(SITE_ZONED & data.keys()):
        problems.append(Problem(file, _line_of(root, [key]), key,
                                "local days follow site.timezone (daylight saving included); remove this"))
    center: CenterConfig | None = None
    try:
        center = load_center({k: v for k, v in data.items() if k in CENTER_FIELDS and k not in SITE_ZONED})
    except ConfigError as exc:
        for issue in exc.issues:
            problems.append(Problem(file, _line_of(root, _split_path(issue.path)), issue.path, issue.message))
    engine: EngineSections | None = None
    try:
        engine = EngineSections.model_validate({k: v for k, v in data.items() if k in engine_keys})
    except ValidationError as exc:
        for err in exc.errors():
            loc = [p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-")]
            dotted = ".".join(str(p) for p in loc)
            problems.append(Problem(file, _line_of(root, list(loc)), dotted, err["msg"]))
    if center is not None and engine is not None:
        for agent in engine.stations:
            if agent not in center.agents:
                problems.append(Problem(file, _line_of(root, ["stations", agent]), f"stations.{agent}",
                                        "unknown agent"))
        for number, queue in engine.numbers.items():
            if queue not in center.queues:
                problems.append(Problem(file, _line_of(root, ["numbers", number]), f"numbers.{number}",
                                        f"unknown queue {queue!r}"))
        for i, queue in enumerate(engine.public_waits):
            if queue not in center.queues:
                problems.append(Problem(file, _line_of(root, ["public_waits", i]), f"public_waits[{i}]",
                                        f"unknown queue {queue!r}"))
        for i, user in enumerate(engine.users):
            if user.role == "agent" and user.agent is None:
                problems.append(Problem(file, _line_of(root, ["users", i]), f"users[{i}].agent",
                                        "a user with role agent needs the agent id they log in as"))
            if user.agent is not None and user.agent not in center.agents:
                problems.append(Problem(file, _line_of(root, ["users", i, "agent"]), f"users[{i}].agent",
                                        f"unknown agent {user.agent!r}"))
    if problems:
        raise ConfigFileError(problems)
    assert center is not None and engine is not None
    center = dataclasses.replace(center, timezone=engine.site.timezone)  # "today" starts at local midnight
    return SiteConfig(path=Path(file), center=center, engine=engine, raw=data)


def load_file(path: str | Path) -> SiteConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(p), None, "(file)", f"cannot read: {exc.strerror or exc}")
        raise ConfigFileError([problem]) from None
    return parse_text(text, str(p))
