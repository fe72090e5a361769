"""`make bench`: print a table and write JSON under bench/results/ (git-ignored)."""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

from bench.router_bench import run_baseline, run_router

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    rows = []
    print("Router: 1,000 agents, tasks waiting, offer → accept → complete until all assigned")
    print(f"{'tasks':>8} {'assign/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'baseline/s':>11} "
          f"{'ratio':>6} {'cost/task vs 1k':>15}")
    base_cost = None
    for tasks in (100, 1_000, 10_000, 100_000):
        result = run_router(1_000, tasks)
        baseline = run_baseline(1_000, tasks)
        cost = 1 / result["assignments_per_s"]
        base_cost = base_cost or cost
        result["baseline_assignments_per_s"] = baseline["assignments_per_s"]
        result["ratio_to_baseline"] = result["assignments_per_s"] / baseline["assignments_per_s"]
        rows.append(result)
        print(f"{tasks:>8,} {result['assignments_per_s']:>10,.0f} "
              f"{result['decision_p50_us']:>8.1f} {result['decision_p99_us']:>8.1f} "
              f"{baseline['assignments_per_s']:>11,.0f} {result['ratio_to_baseline']:>6.3f} "
              f"{cost / base_cost:>15.2f}")
    growth = rows[-1]["tasks"] * math.log(rows[-1]["tasks"]) / (
        rows[1]["tasks"] * math.log(rows[1]["tasks"]))
    total_ratio = (rows[-1]["tasks"] / rows[-1]["assignments_per_s"]) / (
        rows[1]["tasks"] / rows[1]["assignments_per_s"])
    print(f"total time 1k → 100k tasks grew {total_ratio:.1f}× (n log n would be {growth:.1f}×)")
    out = RESULTS / f"router-{int(time.time())}.json"
    out.write_text(json.dumps({"machine": platform.platform(), "router": rows}, indent=2))
    print(f"written {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
