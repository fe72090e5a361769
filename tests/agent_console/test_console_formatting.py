"""Dates and numbers on the server-rendered pages, by Babel: Thai with the Buddhist Era,
English with the Common Era; grouping and percentages as each language writes them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from agent_console.formatting import Formatter, formatter


def test_thai_dates_are_in_the_buddhist_era_with_thai_month_names() -> None:
    th = formatter("th")
    assert th.date(date(2026, 11, 22)) == "22 พฤศจิกายน พ.ศ. 2569"
    assert th.short_date(date(2026, 1, 2)) == "02/01/2569"
    # A moment is shown on Bangkok's calendar: 20:00 UTC on 31 Dec is 1 Jan in Bangkok.
    assert th.date(datetime(2025, 12, 31, 20, 0, tzinfo=UTC)) == "1 มกราคม พ.ศ. 2569"
    assert th.time(datetime(2026, 1, 1, 7, 5, tzinfo=UTC)) == "14:05"
    assert Formatter("th", buddhist=False).date(date(2026, 11, 22)) == "22 พฤศจิกายน ค.ศ. 2026"


def test_english_dates_and_numbers() -> None:
    en = formatter("en")
    assert en.date(date(2026, 11, 22)) == "22 November 2026"
    assert en.short_date(date(2026, 1, 2)) == "02/01/2026"
    assert en.integer(1234567) == "1,234,567"
    assert en.decimal(1234.56) == "1,234.6"
    assert en.percent(0.8123) == "81.2%"
    assert formatter("xx").lang == "th"  # unknown languages fall back to Thai


def test_report_figures_by_kind_and_missing_values() -> None:
    th = formatter("th")
    assert th.figure(2 / 3, "share") == "66.7%"
    assert th.figure(12345, "count") == "12,345"
    assert th.figure(12.345, "seconds") == "12.3"
    assert th.figure(4.5, "score") == "4.50"
    for kind in ("share", "count", "seconds", "score"):
        assert th.figure(None, kind) == "—"
    assert th.date(None) == "—" and th.time(None) == "—"
