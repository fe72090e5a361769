"""What the drills did, for the drill report: counters and the notes each drill writes
(what the citizen and the agent saw). Tests add to `FIGURES`; the conftest writes it to
the file named by ONESTOP_DRILL_REPORT at the end of the run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


class Figures:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.notes: list[dict[str, str]] = []

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def note(self, drill: str, text: str) -> None:
        self.notes.append({"drill": drill, "text": text})

    def write(self, path: Path, outcomes: dict[str, str]) -> None:
        data: dict[str, Any] = {"counts": dict(self.counts), "notes": self.notes,
                                "outcomes": outcomes}
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2))


#: Counter names used across drills.
INPUTS = "inputs_tried"            # inputs sent to the app (chat, email, kiosk, IVR)
ACKED = "inputs_acknowledged"      # inputs the app acknowledged
LOST = "messages_lost"             # acknowledged inputs missing (or doubled) afterwards
KILLS = "crashes (SIGKILL)"
FAULTS = "faults_injected"
FUZZED = "requests_fuzzed"
SERVER_ERRORS = "server_errors (5xx) while fuzzing"
AUTHZ = "authorisation checks"
AUTHZ_BREACH = "unauthorised_accesses_succeeded"

FIGURES = Figures()
