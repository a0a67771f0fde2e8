"""The service catalogue (`config/services.yaml`): what a resident can ask for, who owns it, how fast.

Each service has a code (Open311's `service_code`), a name, the department that owns it, a response target
in business days, the channels it may be taken on (parking complaints are not taken by email, say), and the
Open311 attributes its form asks for. Problems in the file come back all at once as `file:line: field:
message`, like the site file's.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.configfile import ConfigFileError, Problem, _line_of

CHANNELS = ("voice", "email", "chat", "sms", "web", "walk_in")
Channel = Literal["voice", "email", "chat", "sms", "web", "walk_in"]
Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
LIST_TYPES = ("singlevaluelist", "multivaluelist")
CODE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_ATTRIBUTE_CHARS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Department(_Strict):
    name: str = Field(min_length=1, max_length=100)


class AttributeValue(_Strict):
    key: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)

    @field_validator("key", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class Attribute(_Strict):
    """One Open311 service-definition attribute (a question on the request form)."""

    code: str = Field(pattern=CODE)
    datatype: Datatype
    required: bool = False
    variable: bool = True  # false: shown to the resident as information only, never answered
    description: str = Field(min_length=1, max_length=500)
    datatype_description: str | None = None
    order: int | None = Field(default=None, ge=1)
    values: tuple[AttributeValue, ...] = ()

    @model_validator(mode="after")
    def _values_fit_type(self) -> Attribute:
        if self.datatype in LIST_TYPES and not self.values:
            raise ValueError(f"a {self.datatype} needs values")
        if self.datatype not in LIST_TYPES and self.values:
            raise ValueError(f"only singlevaluelist and multivaluelist take values, not {self.datatype}")
        keys = [v.key for v in self.values]
        if len(set(keys)) != len(keys):
            raise ValueError("value keys must be unique")
        if self.required and not self.variable:
            raise ValueError("an attribute that is not variable cannot be required")
        return self

    def check(self, answers: list[str]) -> tuple[Any, str | None]:
        """(normalised answer, None) or (None, what is wrong). `answers` holds the submitted strings."""
        answers = [a.strip() for a in answers if a is not None and a.strip() != ""]
        if not self.variable:
            return None, "is information only and takes no answer"
        if not answers:
            return None, "is required" if self.required else None
        if self.datatype != "multivaluelist" and len(answers) > 1:
            return None, "takes one value"
        if any(len(a) > MAX_ATTRIBUTE_CHARS for a in answers):
            return None, f"is longer than {MAX_ATTRIBUTE_CHARS} characters"
        value = answers[0]
        if self.datatype in LIST_TYPES:
            keys = {v.key for v in self.values}
            bad = [a for a in answers if a not in keys]
            if bad:
                return None, f"has no choice {bad[0]!r} (one of: {', '.join(sorted(keys))})"
            return (sorted(set(answers)) if self.datatype == "multivaluelist" else value), None
        if self.datatype == "number":
            try:
                number = float(value)
            except ValueError:
                return None, f"must be a number, not {value!r}"
            if not math.isfinite(number):
                return None, "must be a finite number"
            return number, None
        if self.datatype == "datetime":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return None, f"must be an ISO 8601 date or date-time, not {value!r}"
            return value, None
        if self.datatype == "string" and ("\n" in value or "\r" in value):
            return None, "must be a single line"
        return value, None


class Service(_Strict):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=1000)
    department: str
    group: str | None = None
    keywords: tuple[str, ...] = ()
    response_days: int = Field(ge=0, le=120, description="response target in business days")
    priority: Literal["normal", "urgent"] = "normal"
    channels: tuple[Channel, ...] = Field(min_length=1)
    notice: str | None = Field(default=None, max_length=1000)
    needs_location: bool = True  # where the problem is (a pothole); false for questions (a tax bill)
    # Open311 "type": realtime answers the service_request_id at once, batch answers a token
    open311_type: Literal["realtime", "batch"] = "realtime"
    attributes: tuple[Attribute, ...] = ()

    @model_validator(mode="after")
    def _attributes_unique(self) -> Service:
        codes = [a.code for a in self.attributes]
        if len(set(codes)) != len(codes):
            raise ValueError("attribute codes must be unique within a service")
        orders = [a.order for a in self.attributes if a.order is not None]
        if len(set(orders)) != len(orders):
            raise ValueError("attribute orders must be unique within a service")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels are listed twice")
        return self

    def takes(self, channel: str) -> bool:
        return channel in self.channels

    def ordered_attributes(self) -> list[tuple[int, Attribute]]:
        """(order, attribute) in form order: the file's order unless `order` says otherwise."""
        taken = {a.order for a in self.attributes if a.order is not None}
        free = (n for n in range(1, 10_000) if n not in taken)
        numbered = [(a.order if a.order is not None else next(free), a) for a in self.attributes]
        return sorted(numbered, key=lambda pair: pair[0])

    def check_attributes(self, answers: dict[str, list[str]]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Normalised answers, and a (code, problem) for every unknown, missing or malformed one."""
        known = {a.code: a for a in self.attributes}
        problems = [(code, "is not an attribute of this service") for code in answers if code not in known]
        clean: dict[str, Any] = {}
        for code, attribute in known.items():
            given = answers.get(code, [])
            if not given and not attribute.variable:
                continue
            value, problem = attribute.check(given)
            if problem:
                problems.append((code, problem))
            elif value is not None:
                clean[code] = value
        return clean, problems


class CatalogueFile(_Strict):
    jurisdiction: str | None = Field(default=None, max_length=200)
    departments: dict[str, Department] = Field(min_length=1)
    services: tuple[Service, ...] = Field(min_length=1)


class Catalogue:
    """The loaded catalogue: services by code, departments by code."""

    def __init__(self, data: CatalogueFile, source: str = "<catalogue>"):
        self.source = source
        self.jurisdiction = data.jurisdiction
        self.departments = dict(data.departments)
        self.services = {s.code: s for s in data.services}

    def __repr__(self) -> str:
        return f"Catalogue({self.source!r}, {len(self.services)} services)"

    def get(self, code: str) -> Service | None:
        return self.services.get(code)

    def department_name(self, code: str) -> str:
        dept = self.departments.get(code)
        return dept.name if dept else code

    @classmethod
    def parse(cls, text: str, file: str = "<catalogue>") -> Catalogue:
        try:
            root = yaml.compose(text)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigFileError([Problem(file, mark.line + 1 if mark else None, "(syntax)",
                                           str(getattr(exc, "problem", exc)))]) from None
        if not isinstance(data, dict):
            raise ConfigFileError([Problem(file, 1, "(top)", "the file must be a mapping with departments "
                                                             "and services")])
        problems: list[Problem] = []
        try:
            parsed = CatalogueFile.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = [p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-")]
                dotted = ".".join(str(p) for p in loc)
                problems.append(Problem(file, _line_of(root, list(loc)), dotted, err["msg"]))
            raise ConfigFileError(problems) from None
        seen: set[str] = set()
        for i, service in enumerate(parsed.services):
            if service.code in seen:
                problems.append(Problem(file, _line_of(root, ["services", i, "code"]), f"services.{i}.code",
                                        f"service code {service.code!r} is used twice"))
            seen.add(service.code)
            if service.department not in parsed.departments:
                problems.append(Problem(file, _line_of(root, ["services", i, "department"]),
                                        f"services.{i}.department",
                                        f"unknown department {service.department!r} "
                                        f"(one of: {', '.join(sorted(parsed.departments))})"))
        if problems:
            raise ConfigFileError(problems)
        return cls(parsed, file)

    @classmethod
    def load(cls, path: str | Path) -> Catalogue:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigFileError([Problem(str(p), None, "(file)", f"cannot read: {exc.strerror or exc}")]) \
                from None
        return cls.parse(text, str(p))
