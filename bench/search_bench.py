"""Knowledge search: p50/p95 at 10k and 100k articles on the embedded backend.

Uses the knowledge room's own helper (`knowledge/bench_search.py`): a generated corpus
derived from the demo articles, timed with the 149 labelled citizen questions. Index files
are kept in `.cache/bench/search/` (a 100k build takes minutes) and timed again on later
runs; delete the folder to rebuild.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

from bench.common import CACHE

INDEX_DIR = CACHE / "search"


async def run_search(sizes: list[int], log: Callable[[str], None]) -> dict[str, Any]:
    if importlib.util.find_spec("knowledge.bench_search") is None:
        log("  search: skipped — knowledge/bench_search.py is not there yet")
        return {"skipped": "knowledge/bench_search.py missing"}
    from knowledge.bench_search import measure_index, run_benchmark

    INDEX_DIR.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        path = INDEX_DIR / f"bench-{size}.sqlite3"
        if path.exists():
            result = await measure_index(path)
            row = {**dataclasses.asdict(result), "index": "reused"}
        else:
            (result,) = await run_benchmark([size], directory=INDEX_DIR)
            row = {**dataclasses.asdict(result), "index": "built"}
        rows.append(row)
        log(f"  search {size:>7,}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms "
            f"(CPU p95 {row['cpu_p95_ms']} ms, load {row['load_average']})")
    return {"backend": "embedded (SQLite FTS5)", "sizes": rows}
