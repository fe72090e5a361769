"""`make bench`: every benchmark with its baseline in the same run; a table, JSON and SVG.

    .venv/bin/python -m bench                 # everything (~13 min; ~20 min the first time)
    .venv/bin/python -m bench --quick         # a ~4-minute subset
    .venv/bin/python -m bench --only chat,ivr # router outbox chat ivr email search bot footprint
    .venv/bin/python -m bench --chat-max 5000 # also drive OneStop at 5,000 conversations

Results: bench/results/bench-<time>.json (and latest.json), bench/results/*.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import svg
from bench.common import RESULTS, AppProcess, raise_nofile, rss_mb
from bench.router_bench import profile_router, run_baseline, run_router

SECTIONS = ["router", "outbox", "chat", "ivr", "email", "search", "bot", "footprint"]


def log(line: str) -> None:
    print(line, flush=True)


def router_section(quick: bool) -> dict[str, Any]:
    rows = []
    base_cost = None
    sizes = (100, 1_000, 10_000) if quick else (100, 1_000, 10_000, 100_000)
    for tasks in sizes:
        result = run_router(1_000, tasks)
        baseline = run_baseline(1_000, tasks)
        cost = 1 / result["assignments_per_s"]
        base_cost = base_cost or cost
        result["baseline_assignments_per_s"] = baseline["assignments_per_s"]
        result["ratio_to_baseline"] = result["assignments_per_s"] / baseline["assignments_per_s"]
        result["cost_per_task_vs_first"] = cost / base_cost
        rows.append(result)
        log(f"  router {tasks:>7,} tasks: {result['assignments_per_s']:>9,.0f}/s, decision p99 "
            f"{result['decision_p99_us']:.0f} µs, baseline {baseline['assignments_per_s']:,.0f}/s")
    first, last = rows[1], rows[-1]
    nlogn = last["tasks"] * math.log(last["tasks"]) / (first["tasks"] * math.log(first["tasks"]))
    grew = (last["tasks"] / last["assignments_per_s"]) / (
        first["tasks"] / first["assignments_per_s"])
    profile = profile_router(1_000, 10_000)
    svg.line_chart(RESULTS / "router.svg", "Router: assignments per second (1,000 agents)",
                   "waiting tasks", "assignments/s",
                   {"OneStop router": [(r["tasks"], r["assignments_per_s"]) for r in rows],
                    "goal 20,000/s": [(r["tasks"], 20_000.0) for r in rows]})
    return {"rows": rows, "total_time_growth": round(grew, 1),
            "nlogn_growth": round(nlogn, 1), "profile_own_time_10k": profile}


async def chat_section(levels: list[int], onestop_max: int, paced_s: float) -> dict[str, Any]:
    from bench.chat_bench import measure

    rows: list[dict[str, Any]] = []
    for n in levels:
        for kind in ("bare", "onestop"):
            if kind == "onestop" and n > onestop_max:
                rows.append({"server": kind, "connections": n, "skipped":
                             f"above --chat-max {onestop_max} (see docs/performance.md)"})
                continue
            try:
                row = await measure(kind, n, paced_s)
            except Exception as exc:  # a level that cannot run is reported, not fatal
                import traceback

                stack = traceback.extract_tb(exc.__traceback__)
                frames = [f for f in stack if "/bench/" in f.filename]
                where = f" at {frames[-1].name}:{frames[-1].lineno}" if frames else ""
                row = {"server": kind, "connections": n,
                       "error": f"{type(exc).__name__}{where}: {exc}",
                       # the innermost frames, library ones included (what raised it)
                       "traceback": [f"{os.path.basename(f.filename)}:{f.lineno} {f.name}"
                                     for f in stack[-8:]]}
            rows.append(row)
            b, p = row.get("burst", {}), row.get("paced", {})
            log(f"  chat {kind:8} n={n:>5}: burst {b.get('messages_per_s', '-')} msg/s "
                f"(lost {b.get('lost', '-')}), paced rtt p50 {p.get('rtt_p50_ms', '-')} ms "
                f"p99 {p.get('rtt_p99_ms', '-')} ms, {row.get('kb_per_connection', '-')} KB/conn "
                f"{row.get('error', '') or row.get('skipped', '')}")
    def series(kind: str, key: str, sub: str | None) -> list[tuple[float, float]]:
        out = []
        for r in rows:
            if r["server"] == kind and "error" not in r and "skipped" not in r:
                value = r[sub][key] if sub else r[key]
                out.append((float(r["connections"]), float(value)))
        return out

    svg.line_chart(RESULTS / "chat-throughput.svg", "Chat relay: messages/s (burst phase)",
                   "connections (conversations)", "messages/s",
                   {"bare relay": series("bare", "messages_per_s", "burst"),
                    "OneStop": series("onestop", "messages_per_s", "burst")}, logy=True)
    svg.line_chart(RESULTS / "chat-latency.svg",
                   "Chat relay: round-trip p99 at one message per citizen per 20 s",
                   "connections (conversations)", "ms",
                   {"bare p99": series("bare", "rtt_p99_ms", "paced"),
                    "OneStop p99": series("onestop", "rtt_p99_ms", "paced"),
                    "goal 100 ms": [(float(n), 100.0) for n in levels]}, logy=True)
    svg.line_chart(RESULTS / "chat-memory.svg", "Chat relay: server memory per connection",
                   "connections (conversations)", "KB per conversation",
                   {"bare relay": series("bare", "kb_per_connection", None),
                    "OneStop": series("onestop", "kb_per_connection", None)})
    return {"rows": rows}


async def profile_section() -> dict[str, Any]:
    """The app under cProfile: 100 chat conversations, then 5 s of IVR webhooks."""
    from bench.chat_bench import measure
    from bench.ivr_bench import run_ivr
    from bench.profiles import by_package, top_functions

    out: dict[str, Any] = {}
    chat_prof, ivr_prof = RESULTS / "profile-chat.prof", RESULTS / "profile-ivr.prof"
    await measure("onestop", 100, 5.0, profile=chat_prof)
    await run_ivr(5.0, log, profile=ivr_prof)
    for name, path in (("chat", chat_prof), ("ivr", ivr_prof)):
        out[name] = {"by_package": by_package(path), "functions": top_functions(path)}
        log(f"  profile {name}: " + ", ".join(
            f"{r['package']} {r['share']:.0%}" for r in out[name]["by_package"][:6]))
    return out


async def footprint_section() -> dict[str, Any]:
    app = AppProcess(bot="off")
    await app.start()
    try:
        await asyncio.sleep(3)
        idle = rss_mb(app.pid)
    finally:
        app.stop()
    log(f"  footprint: app idle (bot off) {idle:.1f} MB")
    return {"app_idle_rss_mb": round(idle, 1)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if args.quick and not args.only:
        only.discard("bot")
    unknown = only - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}

    async def section(name: str, make: Callable[[], Any]) -> None:
        if name not in only and name != "profile":
            return
        log(f"[{name}]")
        started = time.perf_counter()
        try:
            value = make()
            results[name] = await value if asyncio.iscoroutine(value) else value
        except Exception as exc:  # one broken section must not lose the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"  {name}: error {results[name]['error']}")
        timings[name] = round(time.perf_counter() - started, 1)

    from bench.bot_bench import run_bot
    from bench.email_bench import run_email
    from bench.ivr_bench import run_ivr
    from bench.outbox_bench import run_outbox
    from bench.search_bench import run_search

    levels = [100] if args.quick else [100, 1_000, 5_000]
    if args.chat_levels:
        levels = [int(n) for n in args.chat_levels.split(",")]
    await section("router", lambda: router_section(args.quick))
    await section("outbox", lambda: run_outbox(100 if args.quick else 300, log))
    await section("chat", lambda: chat_section(levels, args.chat_max, 5.0 if args.quick else 10.0))
    await section("ivr", lambda: run_ivr(3.0 if args.quick else 10.0, log))
    await section("email", lambda: run_email(100 if args.quick else 500, log))
    await section("search", lambda: run_search([10_000] if args.quick else [10_000, 100_000],
                                               log))
    await section("bot", lambda: run_bot(24, log))
    await section("footprint", footprint_section)
    if args.profile:
        await section("profile", profile_section)
    results["seconds"] = timings
    return results


def table(results: dict[str, Any]) -> list[str]:
    """The summary: one line per figure, with the baseline, the ratio and the goal."""
    lines = [f"{'benchmark':<40} {'OneStop':>14} {'baseline':>14} {'ratio':>8}  goal",
             "-" * 100]

    def row(name: str, ours: Any, base: Any = "", ratio: Any = "", goal: str = "") -> None:
        def fmt(v: Any) -> str:
            return f"{v:,.1f}" if isinstance(v, float) else str(v)
        shown = f"{ratio:.3g}×" if isinstance(ratio, float) else str(ratio)
        lines.append(f"{name:<40} {fmt(ours):>14} {fmt(base):>14} {shown:>8}  {goal}")

    router = results.get("router", {})
    for r in router.get("rows", []):
        row(f"router assign/s, {r['tasks']:,} tasks", r["assignments_per_s"],
            r["baseline_assignments_per_s"], round(r["ratio_to_baseline"], 3), "≥ 20,000/s")
        row("  decision p99 µs", r["decision_p99_us"])
    if "total_time_growth" in router:
        row("router time growth 1k→max", router["total_time_growth"], router["nlogn_growth"],
            "", "≤ n log n (baseline col)")
    outbox = results.get("outbox", {})
    if "send_and_deliver" in outbox:
        send, store = outbox["send_and_deliver"], outbox["store_only"]
        row("outbox send+deliver msg/s (vs store only)", send["messages_per_s"],
            store["messages_per_s"], outbox["ratio_vs_store_only"])
        row("  statements / transactions per msg", f"{send['statements_per_msg']:g} / "
            f"{send['transactions_per_msg']:g}", f"{store['statements_per_msg']:g} / "
            f"{store['transactions_per_msg']:g}")
        row("  retry path msg/s, statements per msg", outbox["retry_path"]["messages_per_s"],
            f"{outbox['retry_path']['statements_per_msg']:g} stmts")
    chat = {(r["server"], r["connections"]): r for r in results.get("chat", {}).get("rows", [])}
    for n in sorted({n for _, n in chat}):
        o, b = chat.get(("onestop", n), {}), chat.get(("bare", n), {})
        ob, bb = o.get("burst", {}), b.get("burst", {})
        if "messages_per_s" in ob and "messages_per_s" in bb:
            row(f"chat msg/s, {n:,} conversations", ob["messages_per_s"], bb["messages_per_s"],
                round(ob["messages_per_s"] / bb["messages_per_s"], 4), "≥ 0.5×")
        elif bb:
            row(f"chat msg/s, {n:,} conversations", (o.get("skipped") and "not run")
                or o.get("error", "-")[:14], bb.get("messages_per_s", "-"))
        for key, label in (("rtt_p50_ms", "p50"), ("rtt_p99_ms", "p99")):
            if "paced" in o or "paced" in b:
                row(f"  paced round trip {label} ms", o.get("paced", {}).get(key, "-"),
                    b.get("paced", {}).get(key, "-"), "", "p99 ≤ 100 ms" if label == "p99" else "")
        if "kb_per_connection" in o or "kb_per_connection" in b:
            row("  server KB per conversation", o.get("kb_per_connection", "-"),
                b.get("kb_per_connection", "-"))
    ivr = results.get("ivr", {})
    if "onestop" in ivr:
        row("IVR signed /ivr/voice req/s", ivr["onestop"]["requests_per_s"],
            ivr["bare"]["requests_per_s"], ivr["ratio"], "≥ 0.5×")
        row("  p99 ms", ivr["onestop"]["p99_ms"], ivr["bare"]["p99_ms"])
    email = results.get("email", {})
    if "onestop" in email:
        peer = email["django_helpdesk"]
        row(f"email ingest msg/s ({email['messages']} msgs)", email["onestop"]["messages_per_s"],
            peer.get("messages_per_s", peer.get("error", "-")[:14]), email["ratio"] or "-",
            "≥ 10× django-helpdesk")
    for s in results.get("search", {}).get("sizes", []):
        row(f"search p50 / p95 ms, {s['articles']:,} articles", s["p50_ms"], "", "",
            "p95 ≤ 20 ms at 100k")
        row("  p95 ms (CPU p95 ms)", s["p95_ms"], f"cpu {s['cpu_p95_ms']}")
    if "skipped" in results.get("search", {}):
        row("search", "skipped: " + results["search"]["skipped"][:30])
    bot = results.get("bot", {})
    if "chat_turn_p50_ms" in bot:
        row("bot chat turn p50 ms (vs /model/parse)", bot["chat_turn_p50_ms"],
            bot["parse_p50_ms"], bot["ratio_turn_to_parse_p50"])
        row("  p95 ms", bot["chat_turn_p95_ms"], bot["parse_p95_ms"])
        row("  Rasa RSS MB", bot["rasa_rss_after_mb"])
    elif "skipped" in bot:
        row("bot", "skipped: " + bot["skipped"])
    fp = results.get("footprint", {})
    if "app_idle_rss_mb" in fp:
        row("app RSS MB idle (bot off)", fp["app_idle_rss_mb"])
    peaks = [r.get("rss_peak_mb") for r in results.get("chat", {}).get("rows", [])
             if r.get("server") == "onestop" and r.get("rss_peak_mb")]
    if peaks:
        row("app RSS MB peak under chat load", max(peaks))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~4-minute subset")
    parser.add_argument("--only", default="", help=f"comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--profile", action="store_true",
                        help="also run the app under cProfile (chat and IVR) and summarise")
    parser.add_argument("--chat-max", type=int, default=1_000,
                        help="largest number of conversations to drive through OneStop")
    parser.add_argument("--chat-levels", default="",
                        help="comma-separated conversation counts for the chat section "
                             "(default 100,1000,5000; e.g. 5000 with --chat-max 5000)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    nofile = raise_nofile()
    log(f"open-file limit {nofile}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    started = time.time()
    results = asyncio.run(run(args))
    summary = table(results)
    print("\n" + "\n".join(summary))
    document = {"started": started, "machine": platform.platform(), "cpus": os.cpu_count(),
                "python": sys.version.split()[0], "load_average_at_end": os.getloadavg(),
                "args": vars(args), "results": results, "table": summary}
    out = RESULTS / f"bench-{int(started)}.json"
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str))
    (RESULTS / "latest.json").write_text(out.read_text())
    print(f"\nwritten {out.relative_to(RESULTS.parent.parent)} and SVG plots in bench/results/")


if __name__ == "__main__":
    main()
