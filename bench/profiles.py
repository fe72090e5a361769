"""Where the time goes: a cProfile dump summarised by package (own time, idle excluded)."""

from __future__ import annotations

import pstats
from collections import defaultdict
from pathlib import Path
from typing import Any

IDLE = "of 'select.epoll' objects"


def by_package(path: Path, top: int = 12) -> list[dict[str, Any]]:
    """Own (exclusive) CPU time per package or room, largest first, epoll waits excluded."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        if IDLE in name:
            continue
        totals[_package(filename, name)] += tottime
    busy = sum(totals.values()) or 1.0
    rows = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [{"package": k, "own_s": round(v, 2), "share": round(v / busy, 3)} for k, v in rows]


def _package(filename: str, name: str) -> str:
    if filename == "~":  # built-ins: name them by what they are
        if "socket" in name or "epoll" in name:
            return "sockets (send/recv)"
        if "SimpleQueue" in name or "_thread" in name or "acquire" in name:
            return "thread hand-off (aiosqlite)"
        if "sqlite3" in name or "execute" in name or "commit" in name:
            return "sqlite3 (C)"
        return "built-ins"
    if "/site-packages/" in filename:
        return filename.split("/site-packages/")[1].split("/")[0].removesuffix(".py")
    if "/work/main/" in filename:
        return filename.split("/work/main/")[1].split("/")[0]
    if "/lib/python3" in filename:
        return "stdlib:" + filename.rsplit("/", 1)[-1].removesuffix(".py")
    return filename


def top_functions(path: Path, top: int = 15, under: str = "/work/main/") -> list[dict[str, Any]]:
    """The project's own functions with the most cumulative time (synchronous ones only
    are exact: a coroutine's count includes every resumption)."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (prim, _nc, tottime, cumtime, _callers) in stats.items():
        if under in filename and "/.venv/" not in filename:
            rows.append({"function": f"{filename.split(under)[1]}:{line}({name})",
                         "primitive_calls": prim, "own_s": round(tottime, 3),
                         "cum_s": round(cumtime, 3)})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return rows[:top]
