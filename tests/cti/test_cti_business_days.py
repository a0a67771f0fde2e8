"""The business-day clock: weekends and Ontario statutory holidays (and their observed days) do not count."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti.business_days import BusinessCalendar, CalendarError

ONTARIO = BusinessCalendar("CA-ON", tz="America/Toronto")
WEEKENDS_ONLY = BusinessCalendar(None, tz="America/Toronto")


@pytest.mark.parametrize("day, name", [
    (date(2026, 1, 1), "New Year's Day"),
    (date(2026, 2, 16), "Family Day"),
    (date(2026, 4, 3), "Good Friday"),
    (date(2026, 5, 18), "Victoria Day"),
    (date(2026, 7, 1), "Canada Day"),
    (date(2026, 9, 7), "Labor Day"),
    (date(2026, 10, 12), "Thanksgiving Day"),
    (date(2026, 12, 25), "Christmas Day"),
    (date(2026, 12, 28), "Boxing Day (observed)"),  # Boxing Day is a Saturday in 2026
    (date(2028, 1, 3), "New Year's Day (observed)"),
])
def test_ontario_statutory_holidays_are_not_business_days(day: date, name: str) -> None:
    assert ONTARIO.holiday_name(day) == name
    assert not ONTARIO.is_business_day(day)
    assert WEEKENDS_ONLY.is_business_day(day) == (day.weekday() < 5)


@pytest.mark.parametrize("day", [
    date(2026, 4, 6),   # Easter Monday: not a statutory holiday in Ontario
    date(2026, 8, 3),   # Civic Holiday: customary, not statutory
    date(2026, 11, 11),  # Remembrance Day: not a statutory holiday in Ontario
    date(2026, 12, 24),
])
def test_days_that_are_not_ontario_statutory_holidays_count(day: date) -> None:
    assert ONTARIO.is_business_day(day)


@pytest.mark.parametrize("start, days, due", [
    (date(2026, 11, 20), 2, date(2026, 11, 24)),  # Friday + 2 -> Tuesday
    (date(2026, 11, 21), 2, date(2026, 11, 24)),  # Saturday + 2 -> Tuesday (the clock only ticks Mon-Fri)
    (date(2026, 11, 22), 1, date(2026, 11, 23)),  # Sunday + 1 -> Monday
    (date(2026, 4, 2), 1, date(2026, 4, 6)),      # Thursday before Good Friday + 1 -> Monday
    (date(2026, 12, 24), 2, date(2026, 12, 30)),  # Christmas, the weekend and Boxing Day (observed) skipped
    (date(2026, 12, 24), 5, date(2027, 1, 5)),    # ... and New Year's Day, across the year end
    (date(2026, 11, 23), 0, date(2026, 11, 23)),  # 0 days: the same day if it is a business day
    (date(2026, 11, 21), 0, date(2026, 11, 23)),  # ... else the next one
    (date(2026, 12, 25), 0, date(2026, 12, 29)),
])
def test_add_business_days(start: date, days: int, due: date) -> None:
    assert ONTARIO.add_business_days(start, days) == due


def test_weekends_only_calendar_counts_holidays_as_working_days() -> None:
    assert WEEKENDS_ONLY.add_business_days(date(2026, 12, 24), 2) == date(2026, 12, 28)
    assert WEEKENDS_ONLY.holiday_name(date(2026, 12, 25)) is None


def test_negative_days_are_refused() -> None:
    with pytest.raises(ValueError):
        ONTARIO.add_business_days(date(2026, 1, 5), -1)


def test_unknown_holiday_calendar_is_named() -> None:
    with pytest.raises(CalendarError, match="CA-XX"):
        BusinessCalendar("CA-XX")
    with pytest.raises(CalendarError, match="ZZ"):
        BusinessCalendar("ZZ")


def test_due_at_uses_the_local_date_and_the_end_of_the_business_day() -> None:
    cal = BusinessCalendar("CA-ON", tz="America/Toronto", day_ends=time(18, 0))
    # 16:00 in Toronto on Thursday April 2 (EDT, UTC-4); Good Friday skipped: due Tuesday 18:00 local
    assert cal.due_at(datetime(2026, 4, 2, 20, 0, tzinfo=timezone.utc), 2) == \
        datetime(2026, 4, 7, 22, 0, tzinfo=timezone.utc)
    # 02:00 UTC on Friday is still Thursday evening in Toronto: the clock starts from Thursday
    assert cal.local_date(datetime(2026, 4, 3, 2, 0, tzinfo=timezone.utc)) == date(2026, 4, 2)
    assert cal.due_at(datetime(2026, 4, 3, 2, 0, tzinfo=timezone.utc), 1) == \
        datetime(2026, 4, 6, 22, 0, tzinfo=timezone.utc)
    # winter: EST, UTC-5
    assert cal.due_at(datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc), 2) == \
        datetime(2026, 11, 24, 23, 0, tzinfo=timezone.utc)


def test_age_in_business_days() -> None:
    filed = datetime(2026, 12, 23, 15, 0, tzinfo=timezone.utc)  # Wednesday
    assert ONTARIO.age(filed, filed + timedelta(hours=2)) == 0
    # Thursday 24 counts; 25 to 28 do not; Tuesday 29 and Wednesday 30 count
    assert ONTARIO.age(filed, datetime(2026, 12, 30, 15, 0, tzinfo=timezone.utc)) == 3
    assert ONTARIO.business_days_between(date(2026, 12, 30), date(2026, 12, 23)) == 0


def _count_by_walking(cal: BusinessCalendar, start: date, end: date) -> int:
    n, day = 0, start
    while day < end:
        day += timedelta(days=1)
        n += cal.is_business_day(day)
    return n


days = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))


@settings(max_examples=300, deadline=None)
@given(start=days, span=st.integers(min_value=0, max_value=400))
def test_closed_form_count_matches_walking_the_calendar(start: date, span: int) -> None:
    end = start + timedelta(days=span)
    assert ONTARIO.business_days_between(start, end) == _count_by_walking(ONTARIO, start, end)
    assert WEEKENDS_ONLY.business_days_between(start, end) == _count_by_walking(WEEKENDS_ONLY, start, end)


@settings(max_examples=300, deadline=None)
@given(start=days, n=st.integers(min_value=1, max_value=80))
def test_adding_then_counting_gives_the_same_number(start: date, n: int) -> None:
    due = ONTARIO.add_business_days(start, n)
    assert ONTARIO.is_business_day(due)
    assert ONTARIO.business_days_between(start, due) == n
