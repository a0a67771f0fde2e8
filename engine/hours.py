"""Opening hours: whether the centre is open at a moment, from the site file's `business_hours` (local time in
the site's time zone) and its statutory holidays (closed all day). A site file without `business_hours` is
open at all hours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, time
from typing import TYPE_CHECKING

from cti.business_days import BusinessCalendar
from engine.configfile import DAYS  # in datetime.weekday() order

if TYPE_CHECKING:
    from engine.configfile import SiteConfig


class OpeningHours:
    def __init__(self, hours: Mapping[str, Sequence[tuple[str, str]]], calendar: BusinessCalendar):
        self.calendar = calendar
        self._always = not hours
        self._ranges: dict[int, list[tuple[time, time]]] = {
            DAYS.index(day): [(time.fromisoformat(start), time.fromisoformat(end)) for start, end in ranges]
            for day, ranges in hours.items()}

    @classmethod
    def of_site(cls, site: SiteConfig) -> OpeningHours:
        return cls(site.engine.business_hours, BusinessCalendar(site.engine.site.holidays, tz=site.engine.site.timezone))

    def is_open(self, at: datetime) -> bool:
        """`at` must be aware (any zone): it is read in the site's zone."""
        if self._always:
            return True
        local = at.astimezone(self.calendar.tz)
        if self.calendar.holiday_name(local.date()) is not None:
            return False
        now = local.time()
        return any(start <= now < end for start, end in self._ranges.get(local.weekday(), ()))
