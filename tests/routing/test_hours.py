"""Business hours follow the Thai calendar, and SLA clocks run only while open."""

from __future__ import annotations

from datetime import UTC, datetime

from routing.config import HoursSpec
from routing.hours import BusinessHours

OFFICE = BusinessHours(HoursSpec(weekly={d: ["08:30-16:30"] for d in  # type: ignore[misc]
                                         ("mon", "tue", "wed", "thu", "fri")}))


def bkk(*args: int) -> datetime:
    return datetime(*args, tzinfo=OFFICE.tz)  # type: ignore[misc]


def test_open_on_a_weekday_morning_and_closed_at_night_and_weekends() -> None:
    assert OFFICE.is_open(bkk(2026, 3, 2, 9, 0))
    assert not OFFICE.is_open(bkk(2026, 3, 2, 17, 0))
    assert not OFFICE.is_open(bkk(2026, 3, 7, 10, 0))  # Saturday


def test_closed_on_thai_public_holidays() -> None:
    assert not OFFICE.is_open(bkk(2026, 4, 13, 10, 0))  # Songkran
    assert not OFFICE.is_open(bkk(2026, 12, 10, 10, 0))  # Constitution Day
    assert OFFICE.is_open(bkk(2026, 4, 17, 10, 0))


def test_an_sla_clock_started_friday_afternoon_runs_into_monday() -> None:
    start = bkk(2026, 3, 6, 15, 30)  # Friday, one open hour left
    due = OFFICE.add_business_time(start, 4 * 3600)
    assert due == bkk(2026, 3, 9, 11, 30)
    assert OFFICE.business_seconds_between(start, due) == 4 * 3600


def test_the_next_opening_after_hours_is_the_next_working_morning() -> None:
    assert OFFICE.next_open(bkk(2026, 3, 6, 20, 0)) == bkk(2026, 3, 9, 8, 30)
    assert OFFICE.next_open(datetime(2026, 3, 2, 3, 0, tzinfo=UTC)) == datetime(
        2026, 3, 2, 3, 0, tzinfo=UTC)
