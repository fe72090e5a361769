"""The router's fast paths against a straightforward reference, on seeded random sequences.

`Router` keeps running per-channel counts of what each agent holds, the channels each agent
can still take, cached order keys and per-agent lists of the waiting lists to search. The
`ReferenceRouter` below recomputes all of that from scratch on every decision (a `Counter`
per capacity check, every task scanned for the best task, every agent scanned for the best
agent, order keys rebuilt), as the rules are written in the module docstring. Both are driven
by the same seeded sequence of commands (submit, accept, reject, wrap-up, complete, abandon,
cancel, transfer, presence, profile changes, time); every event, every view and every
derived figure must be the same, and the invariants must hold after every step.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from routing.domain import Channel, Presence, TaskStatus
from routing.errors import Conflict, NotFound
from routing.expressions import matches
from routing.router import (
    AgentProfile,
    OfferMissed,
    Router,
    RouterEvent,
    TaskOffered,
    TaskRejected,
)
from tests.routing.helpers import settings_from

QUEUES = """
channels:
  voice: {service_level: {threshold_seconds: 20, target: 0.8}, reservation_timeout: 15, wrap_up_seconds: 5}
  chat: {service_level: {threshold_seconds: 60, target: 0.8}, reservation_timeout: 20}
  email: {service_level: {threshold_seconds: 86400, target: 0.95}, reservation_timeout: 30}
capacity_rules: {exclusive: {voice: [], sms: [email]}}
queues:
  - {id: general, name: {th: ทั่วไป, en: General}, agents: "'general' in skills"}
  - {id: tax, name: {th: ภาษี, en: Tax}, agents: "skills.tax >= 1", strategy: most_skilled,
     skill: tax, priority_aging: 2}
  - {id: welfare, name: {th: สวัสดิการ, en: Welfare}, agents: "skills.welfare >= 1",
     reservation_timeout: 10}
  - {id: english, name: {th: อังกฤษ, en: English}, agents: "'en' in languages"}
"""

WORKFLOW = """
filters:
  - name: tax first
    when: "category == 'tax'"
    targets:
      - {queue: tax, timeout: 30}
      - {queue: general, priority: 5}
  - name: welfare if staffed
    when: "category == 'welfare'"
    targets:
      - {queue: welfare, skip_if_no_agents: true, timeout: 20}
      - {queue: english, agents: "skills.general >= 2", timeout: 15}
      - {queue: general}
  - name: last agent
    when: "last_agent_id != null"
    targets:
      - {queue: general, agents: "id == task.last_agent_id", timeout: 10}
      - {queue: general}
default:
  - {queue: general}
"""

CHANNELS = [Channel.VOICE, Channel.CHAT, Channel.EMAIL, Channel.SMS]
QUEUE_IDS = ["general", "tax", "welfare", "english"]


class ReferenceRouter(Router):
    """The same state machine with every decision recomputed from scratch."""

    @staticmethod
    def _fresh_key(task: Any) -> tuple[int, float, int, str]:
        return (-task.priority, task.enqueued_at, task.seq, task.id)

    def _can_take(self, agent: Any, channel: Channel) -> bool:
        held = Counter(agent.held.values())
        if held[channel] >= agent.profile.capacity.get(channel, 0):
            return False
        for exclusive, alongside in self.settings.capacity_rules.exclusive.items():
            allowed = {exclusive, *alongside}
            if held[exclusive] and channel not in allowed:
                return False
            if channel is exclusive and any(n and c not in allowed for c, n in held.items()):
                return False
        return True

    def _refresh_free(self, agent: Any) -> None:
        if agent.presence is Presence.AVAILABLE and any(
            self._can_take(agent, c) for c in agent.profile.capacity
        ):
            self._free.add(agent.profile.id)
        else:
            self._free.discard(agent.profile.id)

    def _eligible(self, task: Any, agent: Any) -> bool:
        if task.status is not TaskStatus.PENDING or agent.presence is not Presence.AVAILABLE:
            return False
        target = task.targets[task.target_index]
        member = matches(self.settings.queues[target.queue].agents, agent.context)
        if not member or agent.profile.id in task.rejected_by:
            return False
        if not self._can_take(agent, task.channel):
            return False
        if target.agents is not None:
            return matches(target.agents, {**agent.context, "task": task.attributes})
        return True

    def _best_task_for(self, agent: Any) -> Any:
        candidates = [t for t in self._tasks.values() if self._eligible(t, agent)]
        return min(candidates, key=self._fresh_key, default=None)

    def _agent_order(self, task: Any, agent: Any) -> tuple[Any, ...]:
        queue = self.settings.queues[task.targets[task.target_index].queue]
        load = float(len(agent.held))
        if queue.spec.strategy == "most_skilled" and queue.spec.skill:
            skill = -float(agent.profile.skills.get(queue.spec.skill, 0))
            return (skill, load, agent.idle_since, agent.profile.id)
        return (load, agent.idle_since, agent.profile.id)

    def _offer_task(self, task: Any, now: float) -> list[RouterEvent]:
        candidates = [a for a in self._agents.values() if self._eligible(task, a)]
        if not candidates:
            return []
        best = min(candidates, key=lambda a: self._agent_order(task, a))
        return self._reserve(task, best, now)


def random_profile(rng: random.Random, agent_id: str) -> AgentProfile:
    skills: dict[str, int] = {}
    if rng.random() < 0.8:
        skills["general"] = rng.randint(1, 3)
    for skill in ("tax", "welfare"):
        if rng.random() < 0.4:
            skills[skill] = rng.randint(1, 5)
    languages = ["th", "en"] if rng.random() < 0.4 else ["th"]
    capacity = {c: rng.randint(1, 3) for c in rng.sample(CHANNELS, rng.randint(1, 4))}
    if Channel.VOICE in capacity:
        capacity[Channel.VOICE] = 1
    return AgentProfile(agent_id, skills, languages, capacity)


def commands(seed: int, agents: int, steps: int) -> list[Callable[[Router, float], Any]]:
    """A seeded sequence of commands; each takes the router and `now` and returns events.

    Commands that pick a task or an agent pick by index into what exists at that moment,
    so the same sequence means the same thing on any router that makes the same decisions.
    """
    rng = random.Random(seed)
    ops: list[Callable[[Router, float], Any]] = []
    agent_ids = [f"a{i}" for i in range(agents)]
    for i in range(agents):
        profile = random_profile(rng, agent_ids[i])
        ops.append(lambda r, now, p=profile: r.upsert_agent(p, now))
    submitted = 0
    for _ in range(steps):
        roll = rng.random()
        pick = rng.randrange(1 << 30)
        if roll < 0.25:
            task_id = f"t{submitted}"
            submitted += 1
            channel = rng.choice(CHANNELS)
            attrs = {
                "priority": rng.randint(0, 4),
                "category": rng.choice([None, "tax", "welfare", "other"]),
                "last_agent_id": rng.choice([None, None, *agent_ids]),
                "vulnerable": ["elderly"] if rng.random() < 0.15 else [],
            }
            ops.append(lambda r, now, t=task_id, c=channel, a=attrs: r.submit(t, c, a, now))
        elif roll < 0.35:
            presence = rng.choice([Presence.AVAILABLE, Presence.AVAILABLE, Presence.AWAY,
                                   Presence.OFFLINE])
            agent_id = rng.choice(agent_ids)
            ops.append(lambda r, now, a=agent_id, p=presence: r.set_presence(a, p, now, None))
        elif roll < 0.50:
            ops.append(lambda r, now, k=pick: _held_command(r, now, k, TaskStatus.RESERVED,
                                                            "accept"))
        elif roll < 0.57:
            ops.append(lambda r, now, k=pick: _held_command(r, now, k, TaskStatus.RESERVED,
                                                            "reject"))
        elif roll < 0.64:
            ops.append(lambda r, now, k=pick: _held_command(r, now, k, TaskStatus.ASSIGNED,
                                                            "wrap_up"))
        elif roll < 0.72:
            ops.append(lambda r, now, k=pick: _held_command(r, now, k, None, "complete"))
        elif roll < 0.75:
            ops.append(lambda r, now, k=pick: r.abandon(_nth_task(r, k), now))
        elif roll < 0.77:
            ops.append(lambda r, now, k=pick: r.cancel(_nth_task(r, k), now))
        elif roll < 0.80:
            queue = rng.choice(QUEUE_IDS)
            only = rng.choice([None, None, *agent_ids])
            ops.append(lambda r, now, k=pick, q=queue, a=only:
                       r.requeue(_nth_task(r, k), q, now, agent_id=a))
        elif roll < 0.82:
            profile = random_profile(rng, rng.choice(agent_ids))
            ops.append(lambda r, now, p=profile: r.upsert_agent(p, now))
        elif roll < 0.84:
            ops.append(lambda r, now, k=pick: r.forget(_nth_task(r, k)))
        else:
            step = rng.choice([0.5, 3.0, 8.0, 12.0, 25.0, 40.0])
            ops.append(lambda r, now, s=step: ("advance", s))
    return ops


def _nth_task(router: Router, k: int) -> str:
    ids = sorted(t.id for t in router.tasks())
    if not ids:
        raise NotFound("task", "none")
    return ids[k % len(ids)]


def _held_command(router: Router, now: float, k: int, status: TaskStatus | None,
                  command: str) -> list[RouterEvent]:
    held = sorted(
        (t.id, t.agent_id) for t in router.tasks()
        if t.agent_id is not None and (status is None or t.status is status)
    )
    if not held:
        # An agent acting on a task they do not hold: the router must refuse.
        held = [(t.id, "a0") for t in router.tasks()] or [("t0", "a0")]
    task_id, agent_id = held[k % len(held)]
    method = getattr(router, command)
    result: list[RouterEvent] = method(task_id, agent_id, now)
    return result


def run(router: Router, ops: list[Callable[[Router, float], Any]],
        after_step: Callable[[Router, float, Any], None]) -> list[Any]:
    """Apply the commands; return what each produced (events, or the error it raised)."""
    now = 0.0
    outcomes: list[Any] = []
    for op in ops:
        try:
            result = op(router, now)
        except (Conflict, NotFound) as error:
            result = ("error", type(error).__name__, str(error))
        if isinstance(result, tuple) and result[0] == "advance":
            now += result[1]
            result = router.tick(now)
        outcomes.append(result)
        after_step(router, now, result)
    return outcomes


def observe(router: Router, now: float) -> dict[str, Any]:
    """Everything the router lets its callers see."""
    tasks = sorted(router.tasks(), key=lambda t: t.id)
    return {
        "tasks": tasks,
        "agents": sorted(router.agents(), key=lambda a: a.id),
        "positions": {t.id: router.queue_position(t.id) for t in tasks},
        "waits": {t.id: router.estimated_wait(t.id) for t in tasks},
        "eligible": {(t.id, a.id): router.eligible(t.id, a.id)
                     for t in tasks for a in router.agents()},
        "snapshots": [router.queue_snapshot(q, now) for q in QUEUE_IDS],
        "next_deadline": router.next_deadline(),
    }


def check_invariants(router: Router, now: float, outcome: Any) -> None:
    """No task held twice, no offer beyond capacity or against the cross-channel rules,
    internal caches agree with a recomputation, and no waiting task has an agent who could
    take it.

    (An agent whose capacity is lowered while they hold tasks keeps them, so capacity is
    checked for each offer made in this step that still stands at its end.)"""
    rules = router.settings.capacity_rules.exclusive
    holders: Counter[str] = Counter()
    for agent in router.agents():
        internal = router._agents[agent.id]
        held = Counter(agent.held.values())
        holders.update(agent.held.keys())
        assert internal.counts == {c: n for c, n in held.items() if n}, agent.id
        assert internal.open == frozenset(
            c for c in internal.profile.capacity
            if ReferenceRouter._can_take(router, internal, c)  # type: ignore[arg-type]
        ), agent.id
        if agent.presence is not Presence.AVAILABLE:
            reserved = [t for t in agent.held if router.task(t).status is TaskStatus.RESERVED]
            assert not reserved, f"{agent.id} is {agent.presence} but holds offers {reserved}"
        for task_id in agent.held:
            task = router.task(task_id)
            assert task.agent_id == agent.id and task.status in (
                TaskStatus.RESERVED, TaskStatus.ASSIGNED, TaskStatus.WRAPPING)
    for offer in outcome if isinstance(outcome, list) else []:
        if not isinstance(offer, TaskOffered) or offer.agent_id is None:
            continue
        agent = router.agent(offer.agent_id)
        if offer.task_id not in agent.held:
            continue  # withdrawn again within the same step
        channel = agent.held[offer.task_id]
        held = Counter(agent.held.values())
        capacity = router._agents[agent.id].profile.capacity.get(channel, 0)
        assert held[channel] <= capacity, f"{agent.id} offered over capacity on {channel}"
        for exclusive, alongside in rules.items():
            allowed = {exclusive, *alongside}
            if channel is exclusive:
                others = {c for c, n in held.items() if n and c not in allowed}
                assert not others, f"{agent.id} offered {channel} beside {others}"
            elif held[exclusive]:
                assert channel in allowed, f"{agent.id} offered {channel} beside {exclusive}"
    assert all(n == 1 for n in holders.values()), "a task is held by two agents"
    reference = ReferenceRouter.__new__(ReferenceRouter)
    reference.settings = router.settings
    waiting = sum(len(w) for w in router._waiting.values())
    pending = 0
    for task in router.tasks():
        internal_task = router._tasks[task.id]
        assert internal_task.key == ReferenceRouter._fresh_key(internal_task)
        assert internal_task.queue == internal_task.targets[internal_task.target_index].queue
        if task.status in (TaskStatus.RESERVED, TaskStatus.ASSIGNED, TaskStatus.WRAPPING):
            assert task.id in router.agent(task.agent_id or "").held
        if task.status is not TaskStatus.PENDING:
            assert router.queue_position(task.id) is None
            continue
        pending += 1
        assert router.queue_position(task.id) is not None, f"pending {task.id} not queued"
        for agent in router.agents():
            internal_agent = router._agents[agent.id]
            fast = router.eligible(task.id, agent.id)
            assert fast == reference._eligible(internal_task, internal_agent), (task.id, agent.id)
            assert not fast, f"pending {task.id} not offered to free eligible agent {agent.id}"
    assert waiting == pending, "the waiting lists hold something other than the pending tasks"


@pytest.mark.parametrize("seed", range(8))
def test_invariants_hold_on_seeded_random_sequences(seed: int) -> None:
    ops = commands(seed, agents=6, steps=400)
    outcomes = run(Router(settings_from(QUEUES, WORKFLOW)), ops, check_invariants)
    offers = sum(isinstance(e, TaskOffered) for o in outcomes if isinstance(o, list) for e in o)
    assert offers > 20, "the sequence exercised too little"


@pytest.mark.parametrize(("seed", "agents", "steps"),
                         [*((s, 5, 300) for s in range(100, 110)), (7, 25, 1000), (8, 40, 800)])
def test_decisions_match_the_reference(seed: int, agents: int, steps: int) -> None:
    settings = settings_from(QUEUES, WORKFLOW)
    fast, slow = Router(settings), ReferenceRouter(settings)
    seen_fast: list[dict[str, Any]] = []
    seen_slow: list[dict[str, Any]] = []
    ops = commands(seed, agents, steps)
    every = 2 if agents <= 5 else 100
    counter = {"fast": 0, "slow": 0}

    def record(into: list[dict[str, Any]], name: str) -> Callable[[Router, float, Any], None]:
        def after(router: Router, now: float, outcome: Any) -> None:
            counter[name] += 1
            if counter[name] % every == 0:
                into.append(observe(router, now))
        return after

    fast_outcomes = run(fast, ops, record(seen_fast, "fast"))
    slow_outcomes = run(slow, ops, record(seen_slow, "slow"))
    for step, (a, b) in enumerate(zip(fast_outcomes, slow_outcomes, strict=True)):
        assert a == b, f"step {step}: {a} != {b}"
    for step, (a, b) in enumerate(zip(seen_fast, seen_slow, strict=True)):
        assert a == b, f"observation {step} differs"
    kinds = Counter(type(e).__name__ for o in fast_outcomes if isinstance(o, list) for e in o)
    assert kinds[TaskOffered.__name__] and kinds[TaskRejected.__name__]
    if agents <= 5 and seed == 100:
        assert kinds[OfferMissed.__name__]
