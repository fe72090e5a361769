"""The drill report (`make drill`): its usage, its figures and its verdict."""

from __future__ import annotations

import subprocess
import sys

from tests.drills.figures import AUTHZ_BREACH, FAULTS, LOST
from tests.drills.report import ROOT, render


def test_help_prints_the_usage_without_running_the_drills() -> None:
    out = subprocess.run([sys.executable, "-m", "tests.drills", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "make drill" in out.stdout and "messages lost" in out.stdout
    assert "OneStop drill report" not in out.stdout  # nothing was run, nothing reported


def test_the_report_shows_every_figure_and_note_and_fails_on_a_loss_or_a_breach() -> None:
    outcomes = {"tests/drills/test_x.py::test_a": "passed",
                "tests/drills/test_x.py::test_b": "failed"}
    data = {"counts": {FAULTS: 3, "pages checked for security headers": 118},
            "notes": [{"drill": "database slow", "text": "waited 4.2 s"}],
            "outcomes": {"tests/drills/test_x.py::test_a": "passed"}}
    report = render(data, 12.0, 0)
    assert "pages checked for security headers" in report and "118" in report
    assert "[database slow] waited 4.2 s" in report
    assert report.splitlines()[-2] == "Verdict: PASS"
    for bad in ({**data, "counts": {LOST: 1}}, {**data, "counts": {AUTHZ_BREACH: 1}},
                {**data, "outcomes": {}}):  # nothing ran: no pass either
        assert render(bad, 1.0, 0).splitlines()[-2] == "Verdict: FAIL"
    failed = render({**data, "outcomes": outcomes}, 1.0, 1)
    assert "FAILED" in failed and "test_b" in failed and "Verdict: FAIL" in failed
