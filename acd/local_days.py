"""Local days: where "today" begins for the counts that restart at midnight (an agent's contacts today,
today's occupancy).

A centre in a time zone gets its local midnights from the zone's rules, daylight saving included, so a
day is 23 or 25 hours long twice a year; without one, days start at a fixed offset from UTC. Time is the
router's `now` (seconds since the epoch, UTC). Asked about the same day over and over, as routing does,
an answer is two comparisons: the current day's bounds are kept and only worked out again when `t`
leaves them. Pure: the zone's rules are data (the tz database), read once.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def zone_problem(name: Any) -> str | None:
    """What is wrong with `name` as a time zone, or None: the one check of every zone a site file names."""
    if not isinstance(name, str) or not name:
        return f"time zone must be an IANA name such as America/Toronto, got {name!r}"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r} (an IANA name such as America/Toronto)"
    return None


class LocalDays:
    __slots__ = ("_day", "_end", "_start", "offset_s", "zone")

    def __init__(self, zone: str | None = None, offset_s: float = 0.0):
        self.zone = ZoneInfo(zone) if zone else None  # ZoneInfoNotFoundError for an unknown zone
        self.offset_s = offset_s  # used only without a zone: local time minus UTC, in seconds
        self._start, self._end, self._day = math.inf, -math.inf, 0  # nothing known yet

    def day(self, t: float) -> int:
        """The local date of instant `t`, as days since 1970-01-01."""
        if not self._start <= t < self._end:
            self._locate(t)
        return self._day

    def start(self, t: float) -> float:
        """The instant the local day of `t` began (its local midnight)."""
        if not self._start <= t < self._end:
            self._locate(t)
        return self._start

    def _locate(self, t: float) -> None:
        if self.zone is None:
            day = math.floor((t + self.offset_s) / 86400)
            start = day * 86400 - self.offset_s
            self._day, self._start, self._end = day, start, start + 86400
            return
        today = datetime.fromtimestamp(t, self.zone).date()
        start = datetime.combine(today, time(0), self.zone).timestamp()
        end = datetime.combine(today + timedelta(days=1), time(0), self.zone).timestamp()
        # a zone whose clocks skip midnight itself: the day begins when the clocks come back to it, at t at latest
        self._day, self._start, self._end = today.toordinal() - _EPOCH_ORDINAL, min(start, t), max(end, t + 1e-6)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalDays) and (self.zone, self.offset_s) == (other.zone, other.offset_s)

    def __hash__(self) -> int:
        return hash((self.zone, self.offset_s))

    def __repr__(self) -> str:
        return f"LocalDays({str(self.zone)!r})" if self.zone else f"LocalDays(offset_s={self.offset_s})"

    def __reduce__(self) -> tuple[type[LocalDays], tuple[str | None, float]]:
        return LocalDays, (str(self.zone) if self.zone else None, self.offset_s)


UTC_DAYS = LocalDays()
