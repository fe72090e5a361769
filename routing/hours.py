"""Business hours with Thai public holidays, and clocks that only run while open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from routing.config import HoursSpec, parse_range

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessHours:
    """When a queue is staffed: weekly opening ranges, minus public holidays."""

    def __init__(self, spec: HoursSpec) -> None:
        self.spec = spec
        self.tz = ZoneInfo(spec.timezone)
        self._weekly = {
            day: [parse_range(r) for r in spec.weekly.get(day, [])]  # type: ignore[call-overload]
            for day in _DAYS
        }
        self._closed = {date.fromisoformat(d) for d in spec.extra_closed_dates}

    def is_holiday(self, day: date) -> bool:
        """True on a public holiday of the configured country or an extra closed date."""
        if day in self._closed:
            return True
        if self.spec.holidays is None:
            return False
        return day in _holiday_dates(self.spec.holidays, day.year)

    def is_open(self, moment: datetime) -> bool:
        """True when `moment` (aware, any zone) falls inside opening hours."""
        if self.spec.always_open:
            return True
        local = moment.astimezone(self.tz)
        if self.is_holiday(local.date()):
            return False
        now = local.time()
        return any(start <= now < end for start, end in self._weekly[_DAYS[local.weekday()]])

    def next_open(self, moment: datetime) -> datetime | None:
        """The first moment at or after `moment` when the hours are open (None if never)."""
        for start, _end in self._intervals(moment, days=31):
            return max(start, moment)
        return None  # pragma: no cover - a schedule open nowhere in a month

    def add_business_time(self, start: datetime, seconds: float) -> datetime:
        """The moment when `seconds` of open time have passed since `start`."""
        if self.spec.always_open:
            return start + timedelta(seconds=seconds)
        remaining = timedelta(seconds=seconds)
        for begin, end in self._intervals(start, days=400):
            begin = max(begin, start)
            if end - begin >= remaining:
                return begin + remaining
            remaining -= end - begin
        return start + timedelta(seconds=seconds)  # no open time configured: plain clock

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Open time elapsed between two moments."""
        if end <= start:
            return 0.0
        if self.spec.always_open:
            return (end - start).total_seconds()
        total = 0.0
        days = (end - start).days + 2
        for begin, finish in self._intervals(start, days=days):
            if begin >= end:
                break
            total += (min(finish, end) - max(begin, start)).total_seconds()
        return total

    def _intervals(self, moment: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals from `moment` on, day by day, lazily: callers stop as soon as they
        have covered the time they need (most SLA clocks end within days, not a year)."""
        local = moment.astimezone(self.tz)
        for offset in range(days):
            day = local.date() + timedelta(days=offset)
            if self.spec.always_open:
                begin = datetime.combine(day, datetime.min.time(), self.tz)
                yield begin, begin + timedelta(days=1)
                continue
            if self.is_holiday(day):
                continue
            for start, end in self._weekly[_DAYS[day.weekday()]]:
                b = datetime.combine(day, start, self.tz)
                e = datetime.combine(day, end, self.tz)
                if e > moment:
                    yield b, e


@lru_cache(maxsize=64)
def _holiday_dates(country: str, year: int) -> frozenset[date]:
    # A plain set: `date in HolidayBase` does more work than a lookup on every call.
    return frozenset(holidays_lib.country_holidays(country, years=year).keys())


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)
