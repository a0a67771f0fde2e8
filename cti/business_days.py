"""The business-day clock that response targets run on.

A target such as "initial response within 2 business days" counts working days after the day a request
came in: Saturdays, Sundays and statutory holidays (with their observed days) do not count. Holidays come
from the `holidays` package for the site's `site.holidays` code, e.g. `CA-ON` (Ontario) or `CA` (federal
only); no code means weekends only. A request filed on a Friday with a 2-day target is due on Tuesday, and
one filed on a Saturday is due on Tuesday too, because the clock only ticks on business days.
"""

from __future__ import annotations

import bisect
import threading
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays

WEEKEND = frozenset({5, 6})  # Saturday, Sunday (date.weekday())


class CalendarError(ValueError):
    """The holiday code names no country or subdivision the `holidays` package knows."""


class BusinessCalendar:
    """Working days of one jurisdiction, in its time zone. Safe to share between threads."""

    def __init__(self, holiday_code: str | None = "CA-ON", *, tz: str = "America/Toronto",
                 day_ends: time = time(17, 0)):
        self.holiday_code = holiday_code or None
        self.tz = ZoneInfo(tz)
        self.day_ends = day_ends  # a due date means "by the end of that business day"
        self._lock = threading.Lock()  # the holidays object fills in years lazily on lookup
        self._years: set[int] = set()
        self._weekday_holidays: list[date] = []  # sorted, only those that fall Monday-Friday
        self._holidays: holidays.HolidayBase | None = None
        if self.holiday_code:
            country, _, subdivision = self.holiday_code.partition("-")
            try:
                self._holidays = holidays.country_holidays(country.upper(), subdiv=subdivision.upper() or None)
            except NotImplementedError as exc:
                raise CalendarError(f"unknown holiday calendar {holiday_code!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.holiday_code!r}, tz={self.tz.key!r})"

    # --- single days -------------------------------------------------------------------------------

    def holiday_name(self, day: date) -> str | None:
        """The statutory holiday on `day` (its observed day too), or None."""
        if self._holidays is None:
            return None
        self._load(day.year)
        name = self._holidays.get(day)
        return str(name) if name else None

    def is_business_day(self, day: date) -> bool:
        return day.weekday() not in WEEKEND and self.holiday_name(day) is None

    def next_business_day(self, day: date) -> date:
        """`day` itself if it is a business day, else the first one after it."""
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    # --- counting -----------------------------------------------------------------------------------

    def add_business_days(self, start: date, days: int) -> date:
        """The business day `days` business days after `start` (`start` itself does not count).

        With `days=0` the answer is `start` when it is a business day, else the next one."""
        if days < 0:
            raise ValueError("days must not be negative")
        day = start
        for _ in range(days):
            day = self.next_business_day(day + timedelta(days=1))
        return self.next_business_day(day) if days == 0 else day

    def business_days_between(self, start: date, end: date) -> int:
        """How many business days lie after `start` up to and including `end` (0 if `end <= start`).

        Closed form (weekdays minus weekday holidays), so ageing thousands of old cases stays cheap."""
        if end <= start:
            return 0
        weekdays = _weekdays_after(start, end)
        if self._holidays is None:
            return weekdays
        for year in range(start.year, end.year + 1):
            self._load(year)
        lo = bisect.bisect_right(self._weekday_holidays, start)
        hi = bisect.bisect_right(self._weekday_holidays, end)
        return weekdays - (hi - lo)

    # --- wall clock ---------------------------------------------------------------------------------

    def local_date(self, moment: datetime) -> date:
        return _aware(moment).astimezone(self.tz).date()

    def due_at(self, received: datetime, days: int) -> datetime:
        """When a target of `days` business days from `received` runs out: the end of the due day, in UTC."""
        due = self.add_business_days(self.local_date(received), days)
        return datetime.combine(due, self.day_ends, tzinfo=self.tz).astimezone(timezone.utc)

    def age(self, received: datetime, now: datetime) -> int:
        """Business days a request has been open: 0 on the day it came in."""
        return self.business_days_between(self.local_date(received), self.local_date(now))

    def _load(self, year: int) -> None:
        if year in self._years or self._holidays is None:
            return
        with self._lock:
            if year in self._years:
                return
            self._holidays.get(date(year, 1, 1))  # a lookup makes the package fill in that whole year
            found = [d for d in self._holidays if d.year == year and d.weekday() not in WEEKEND]
            self._weekday_holidays = sorted(set(self._weekday_holidays) | set(found))
            self._years.add(year)


def _weekdays_after(start: date, end: date) -> int:
    """Monday-Friday dates in (start, end]."""
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    count = weeks * 5
    wd = start.weekday()
    for i in range(1, rest + 1):
        if (wd + i) % 7 not in WEEKEND:
            count += 1
    return count


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
