"""The rules of the house (docs/architecture.md), checked on every run.

- `routing/` (the core) imports no other room;
- the other rooms use the core only through its public API (`routing` itself, never
  `routing.<module>`) and never import each other;
- nothing imports `onestop/`, the composition root.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ["routing", "channels", "ivr", "bot", "agent_console", "knowledge", "onestop"]


def room_of(module: str) -> str | None:
    """The room a module belongs to; each channel adapter is a room of its own."""
    parts = module.split(".")
    if parts[0] not in ROOMS:
        return None
    if parts[0] == "channels" and len(parts) > 1:
        return f"channels.{parts[1]}"
    return parts[0]


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def source_files() -> list[Path]:
    files = []
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            if ".venv" in path.parts or "rasa" in path.parts:
                continue
            files.append(path)
    return files


def violations() -> list[str]:
    problems = []
    for path in source_files():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = room_of(module)
        for line, imported in imports_of(path):
            target = room_of(imported)
            where = f"{path.relative_to(ROOT)}:{line} imports {imported}"
            if target is None or target == own or own == "onestop":
                continue
            if target == "onestop":
                problems.append(f"{where}: nothing may import the composition root")
            elif own == "routing":
                problems.append(f"{where}: the core imports no other room")
            elif target == "routing" and imported != "routing":
                problems.append(f"{where}: use the core's public API (`from routing import …`)")
            elif target != "routing":
                problems.append(f"{where}: rooms do not import each other")
    return problems


def test_the_rooms_follow_the_rules_of_the_house() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "imported", "expected"),
    [
        ("routing.router", "channels.email", "the core imports no other room"),
        ("channels.email.smtp", "routing.center", "public API"),
        ("channels.email.smtp", "channels.webchat", "do not import each other"),
        ("bot.client", "onestop.app", "composition root"),
    ],
)
def test_the_contract_catches_each_kind_of_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, imported: str, expected: str
) -> None:
    path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True)
    path.write_text(f"import {imported}\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "ROOT", tmp_path)
    assert any(expected in p for p in violations())
