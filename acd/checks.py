"""Checking plain data (parsed YAML) field by field, collecting every problem with its dotted path.

Shared by the centre configuration (`acd.config`) and simulation scenarios (`acd.scenario`), so both
report bad input the same way: `queues.bylaw.steps[1].after_s: must be at least 0, got -5`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from acd.errors import ConfigIssue


class FieldChecker:
    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(path, message))

    def unknown_fields(self, path: str, data: Mapping[str, Any], allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                self.add(f"{path}.{key}" if path else str(key),
                         f"unknown field (allowed: {', '.join(sorted(allowed))})")

    unknown = unknown_fields

    def mapping(self, path: str, value: Any, *, required: bool = False) -> Mapping[str, Any]:
        if value is None and not required:
            return {}
        if not isinstance(value, Mapping):
            self.add(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        return value

    def number(self, path: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
               positive: bool = False, integer: bool = False) -> Any:
        """The value if it is a finite number within the bounds, else None (and the problem noted)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not math.isfinite(value)):
            self.add(path, f"must be a number, got {value!r}")
            return None
        if integer and not isinstance(value, int):
            self.add(path, f"must be a whole number, got {value!r}")
            return None
        if positive and value <= 0:
            self.add(path, f"must be greater than 0, got {value!r}")
            return None
        if minimum is not None and value < minimum:
            self.add(path, f"must be at least {minimum}, got {value!r}")
            return None
        if maximum is not None and value > maximum:
            self.add(path, f"must be at most {maximum}, got {value!r}")
            return None
        return value

    def names(self, path: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(path, f"must be a list of names, got {value!r}")
            return ()
        return tuple(value)
