"""The email channel talks to the core only through its Protocols, except for the one
module that plugs those Protocols into the core (`wiring.py`, public API only)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "channels" / "email"
FORBIDDEN = ("routing", "onestop", "ivr", "bot", "agent_console", "knowledge")


def test_channels_email_imports_no_other_room() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "wiring.py":
            continue  # checked by tests/test_architecture.py: `routing`'s public API only
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                sibling = name.startswith("channels.") and not name.startswith("channels.email")
                if top in FORBIDDEN or sibling:
                    offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not offenders, offenders
