"""Router: assignments per second and decision latency, against a bare FIFO dispatcher.

Scenario: `agents` agents with skills, `tasks` waiting tasks; agents become available and
take tasks until every task is assigned (offer → accept → complete). The baseline does the
least work any dispatcher must do (pop the oldest task for a free agent, no skills, no
capacity rules, no priorities), so the ratio shows what the routing rules cost.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from typing import Any

import yaml

from routing.config import QueuesFile, WorkflowFile, compile_settings
from routing.domain import Channel, Presence
from routing.router import AgentProfile, Router, TaskOffered

SKILLS = ["registration", "tax", "welfare", "complaints"]

QUEUES = yaml.safe_load(
    """
channels:
  chat: {service_level: {threshold_seconds: 60, target: 0.8}, reservation_timeout: 30}
  email: {service_level: {threshold_seconds: 86400, target: 0.95}, reservation_timeout: 60}
queues:
  - {id: general, name: {th: ทั่วไป, en: General}, agents: "'general' in skills"}
  - {id: registration, name: {th: ทะเบียน, en: Registration}, agents: "skills.registration >= 1"}
  - {id: tax, name: {th: ภาษี, en: Tax}, agents: "skills.tax >= 1"}
  - {id: welfare, name: {th: สวัสดิการ, en: Welfare}, agents: "skills.welfare >= 1"}
  - {id: complaints, name: {th: ร้องเรียน, en: Complaints}, agents: "skills.complaints >= 1"}
"""
)
WORKFLOW = yaml.safe_load(
    """
filters:
  - {name: registration, when: "category == 'registration'", targets: [{queue: registration}]}
  - {name: tax, when: "category == 'tax'", targets: [{queue: tax}]}
  - {name: welfare, when: "category == 'welfare'", targets: [{queue: welfare}]}
  - {name: complaints, when: "category == 'complaints'", targets: [{queue: complaints}]}
default: [{queue: general}]
"""
)


def run_router(agents: int, tasks: int, seed: int = 7) -> dict[str, Any]:
    """Assign `tasks` waiting tasks to `agents` agents; time every routing decision."""
    rng = random.Random(seed)
    settings = compile_settings(QueuesFile.model_validate(QUEUES),
                                WorkflowFile.model_validate(WORKFLOW))
    router = Router(settings)
    for i in range(agents):
        skills = {"general": 1, **{s: rng.randint(1, 5) for s in rng.sample(SKILLS, 2)}}
        router.upsert_agent(AgentProfile(f"a{i}", skills, ["th"],
                                         {Channel.CHAT: 3, Channel.EMAIL: 5}), 0.0)
    now = 1.0
    for t in range(tasks):
        category = rng.choice([*SKILLS, "general"])
        channel = Channel.CHAT if t % 3 else Channel.EMAIL
        router.submit(f"t{t}", channel, {"category": category, "priority": rng.randint(0, 3)},
                      now + t * 1e-6)
    decisions: list[float] = []
    offers: deque[TaskOffered] = deque()
    started = time.perf_counter()
    for i in range(agents):
        t0 = time.perf_counter()
        events = router.set_presence(f"a{i}", Presence.AVAILABLE, now)
        decisions.append(time.perf_counter() - t0)
        offers.extend(e for e in events if isinstance(e, TaskOffered))
    assigned = 0
    while offers:
        offer = offers.popleft()
        assert offer.task_id is not None and offer.agent_id is not None
        router.accept(offer.task_id, offer.agent_id, now)
        t0 = time.perf_counter()
        events = router.complete(offer.task_id, offer.agent_id, now)
        decisions.append(time.perf_counter() - t0)
        router.forget(offer.task_id)
        offers.extend(e for e in events if isinstance(e, TaskOffered))
        assigned += 1
    elapsed = time.perf_counter() - started
    decisions.sort()
    return {
        "agents": agents, "tasks": tasks, "assigned": assigned,
        "assignments_per_s": assigned / elapsed,
        "decision_p50_us": decisions[len(decisions) // 2] * 1e6,
        "decision_p99_us": decisions[int(len(decisions) * 0.99)] * 1e6,
    }


def run_baseline(agents: int, tasks: int) -> dict[str, Any]:
    """A bare FIFO dispatcher: a deque of tasks, a heap of free agents."""
    waiting = deque(f"t{t}" for t in range(tasks))
    free = [(0, f"a{i}") for i in range(agents)]
    heapq.heapify(free)
    assigned = 0
    started = time.perf_counter()
    clock = 0
    while waiting:
        _, agent = heapq.heappop(free)
        waiting.popleft()
        assigned += 1
        clock += 1
        heapq.heappush(free, (clock, agent))
    elapsed = time.perf_counter() - started
    return {"assignments_per_s": assigned / max(elapsed, 1e-9)}


def profile_router(agents: int = 1_000, tasks: int = 10_000, top: int = 10) -> list[dict[str, Any]]:
    """cProfile one run: the functions with the most time of their own (excluding callees)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    run_router(agents, tasks)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_cc, calls, tottime, cumtime, _callers) in sorted(
            stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]:  # type: ignore[attr-defined]
        short = path.split("/work/main/")[-1]
        rows.append({"function": f"{short}:{line}({name})", "calls": calls,
                     "own_s": round(tottime, 3), "cum_s": round(cumtime, 3),
                     "own_share": round(tottime / total, 3)})
    return rows
