"""The drill runner: every drill, long variants included, then the drill report.

    .venv/bin/python -m tests.drills [pytest options]     (`make drill`)

Pytest options narrow or shape the run, e.g. `-k "security or fuzz"`, `-x`. The report: inputs tried and acknowledged, crashes,
faults injected, requests fuzzed, messages lost (must be 0), unauthorised accesses that
succeeded (must be 0), every other figure the drills counted, and what the citizen and
the agent saw in each drill.

Exit status 0 only when every drill passed, no acknowledged message was lost and no
unauthorised access succeeded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.drills.figures import (
    ACKED,
    AUTHZ,
    AUTHZ_BREACH,
    FAULTS,
    FUZZED,
    INPUTS,
    KILLS,
    LOST,
    SERVER_ERRORS,
)

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = [(INPUTS, "inputs tried"), (ACKED, "inputs acknowledged"), (KILLS, "crashes (SIGKILL)"),
            (FAULTS, "faults injected"), (FUZZED, "requests fuzzed"),
            (SERVER_ERRORS, "5xx answers while fuzzing"), (AUTHZ, "authorisation checks"),
            (LOST, "messages lost (must be 0)"),
            (AUTHZ_BREACH, "unauthorised accesses that succeeded (must be 0)")]


def run(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__.strip())
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "drills.json"
        env = {**os.environ, "ONESTOP_DRILL_LONG": "1", "ONESTOP_DRILL_REPORT": str(target)}
        started = time.monotonic()
        status = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  "tests/drills", *argv], cwd=ROOT, env=env)
        elapsed = time.monotonic() - started
        data: dict[str, Any] = json.loads(target.read_text()) if target.exists() else {}
    print(render(data, elapsed, status))
    return 0 if passed(data, status) else 1


def passed(data: dict[str, Any], status: int) -> bool:
    """Every drill passed (and some ran), nothing lost, no unauthorised access."""
    counts = data.get("counts", {})
    return (status == 0 and bool(data.get("outcomes")) and not counts.get(LOST)
            and not counts.get(AUTHZ_BREACH))


def render(data: dict[str, Any], elapsed: float, status: int) -> str:
    counts: dict[str, int] = data.get("counts", {})
    outcomes: dict[str, str] = data.get("outcomes", {})
    lines = ["", "=" * 78, "OneStop drill report", "=" * 78]
    for key, label in HEADLINE:
        lines.append(f"  {label:<52} {counts.get(key, 0):>10}")
    for key, value in sorted(counts.items()):
        if key not in dict(HEADLINE):
            lines.append(f"  {key:<52} {value:>10}")
    lines += ["", "What the citizen and the agent saw:"]
    for note in data.get("notes", []):
        lines.append(f"  [{note['drill']}] {note['text']}")
    tally: dict[str, int] = {}
    for outcome in outcomes.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    lines += ["", "Drills: " + ", ".join(f"{n} {o}" for o, n in sorted(tally.items()))
              + f" in {elapsed:.0f} s (pytest exit {status})"]
    lines += [f"  {o.upper():<8} {n}" for n, o in sorted(outcomes.items())
              if o not in ("passed", "skipped")]
    verdict = "PASS" if passed(data, status) else "FAIL"
    lines += [f"Verdict: {verdict}", "=" * 78]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
