"""Drills: the `drill` marker (long variants, run by `make drill`) and the report file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.drills.figures import FIGURES

_outcomes: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "drill: long drill variant (make drill only)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.outcome != "passed"
                                 and report.nodeid not in _outcomes):
        _outcomes[report.nodeid] = "xfailed" if hasattr(report, "wasxfail") and (
                report.skipped) else report.outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("ONESTOP_DRILL_REPORT")
    if target:
        FIGURES.write(Path(target), _outcomes)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long variants run only under `make drill` (ONESTOP_DRILL_LONG=1 or `-m drill`)."""
    if os.environ.get("ONESTOP_DRILL_LONG") == "1" or "drill" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="long drill: run with `make drill`")
    for item in items:
        if item.get_closest_marker("drill"):
            item.add_marker(skip)
