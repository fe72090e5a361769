"""Dates and numbers on the server-rendered pages, formatted by Babel for the reader's
language: Thai (dates in the Buddhist Era, as Thai offices write them) or English.

The words themselves come from the small catalogue in `i18n.py`; everything that is a
date, a time or a number goes through here, so that "1,234.5", "81.2%" and
"22 พฤศจิกายน พ.ศ. 2569" / "22 November 2026" are written the way each language does."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from babel.numbers import format_decimal, format_percent

LOCALES = {"th": "th_TH", "en": "en_GB"}
BANGKOK = ZoneInfo("Asia/Bangkok")
#: The Buddhist Era is 543 years ahead of the Common Era.
BE_OFFSET = 543


@dataclass(frozen=True)
class Formatter:
    """Formatting for one language (`fmt` in the templates)."""

    lang: str
    buddhist: bool = True  # Thai dates in the Buddhist Era (only when lang is "th")

    @property
    def locale(self) -> str:
        return LOCALES.get(self.lang, "th_TH")

    def date(self, day: dt.date | dt.datetime | None) -> str:
        """A date in words: "22 พฤศจิกายน พ.ศ. 2569" or "22 November 2026"."""
        if day is None:
            return "—"
        if isinstance(day, dt.datetime):
            day = day.astimezone(BANGKOK).date()
        if self.lang == "th" and self.buddhist:
            return f"{format_date(day, 'd MMMM', locale=self.locale)} พ.ศ. {day.year + BE_OFFSET}"
        return format_date(day, "long", locale=self.locale)

    def short_date(self, day: dt.date | None) -> str:
        """A compact date: "22/11/2569" or "22/11/2026"."""
        if day is None:
            return "—"
        year = day.year + (BE_OFFSET if self.lang == "th" and self.buddhist else 0)
        return f"{format_date(day, 'dd/MM', locale=self.locale)}/{year}"

    def time(self, moment: dt.datetime | None) -> str:
        """A clock time in Bangkok: "14:05"."""
        if moment is None:
            return "—"
        return format_time(moment.astimezone(BANGKOK), "HH:mm", locale=self.locale)

    def datetime(self, moment: dt.datetime | None) -> str:
        if moment is None:
            return "—"
        return f"{self.date(moment)} {self.time(moment)}"

    def integer(self, value: int | None) -> str:
        return "—" if value is None else format_decimal(value, "#,##0", locale=self.locale)

    def decimal(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        pattern = "#,##0." + "0" * digits if digits else "#,##0"
        return format_decimal(value, pattern, locale=self.locale)

    def percent(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        pattern = "#,##0." + "0" * digits + "%" if digits else "#,##0%"
        return format_percent(value, pattern, locale=self.locale)

    def figure(self, value: float | int | None, kind: str) -> str:
        """A report figure by its kind: count, share, seconds or score."""
        if kind == "share":
            return self.percent(value)
        if kind == "count":
            return self.integer(None if value is None else int(value))
        return self.decimal(value, 2 if kind == "score" else 1)


def formatter(lang: str) -> Formatter:
    return Formatter(lang if lang in LOCALES else "th")
