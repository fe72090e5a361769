"""Property tests: random arrivals, presence changes, accepts, rejects and timeouts."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.domain import Channel, Presence, TaskStatus
from routing.errors import Conflict
from routing.router import AgentProfile, Router, TaskAccepted, TaskOffered
from tests.routing.helpers import small_settings

AGENTS = [
    AgentProfile("a1", {"general": 5}, ["th"], {Channel.VOICE: 1, Channel.CHAT: 3, Channel.EMAIL: 2}),
    AgentProfile("a2", {"general": 3, "tax": 4}, ["th", "en"], {Channel.VOICE: 1, Channel.CHAT: 2}),
    AgentProfile("a3", {"tax": 2}, ["th"], {Channel.CHAT: 1, Channel.EMAIL: 5}),
]
AGENT_IDS = [a.id for a in AGENTS]
CHANNELS = [Channel.VOICE, Channel.CHAT, Channel.EMAIL]

operation = st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from(CHANNELS), st.integers(0, 3),
              st.sampled_from([None, "tax"]), st.sampled_from([None, "a1", "a2", "a3"]),
              st.booleans()),
    st.tuples(st.just("presence"), st.sampled_from(AGENT_IDS),
              st.sampled_from(list(Presence))),
    st.tuples(st.just("accept"), st.integers(0, 30)),
    st.tuples(st.just("reject"), st.integers(0, 30)),
    st.tuples(st.just("finish"), st.integers(0, 30)),
    st.tuples(st.just("abandon"), st.integers(0, 30)),
    st.tuples(st.just("time"), st.floats(0.1, 40)),
)


def check_invariants(router: Router, accepted: Counter[str]) -> None:
    rules = router.settings.capacity_rules.exclusive
    for agent in router.agents():
        held = Counter(agent.held.values())
        profile = next(a for a in AGENTS if a.id == agent.id)
        for channel, n in held.items():
            assert n <= profile.capacity.get(channel, 0), f"{agent.id} over capacity on {channel}"
        for exclusive, alongside in rules.items():
            if held[exclusive]:
                others = {c for c, n in held.items() if n and c not in {exclusive, *alongside}}
                assert not others, f"{agent.id} holds {others} beside {exclusive}"
        if agent.presence is not Presence.AVAILABLE:
            reserved = [t for t in agent.held if router.task(t).status is TaskStatus.RESERVED]
            assert not reserved, f"{agent.id} is {agent.presence} but holds offers {reserved}"
    assert all(n == 1 for n in accepted.values()), "a task was assigned twice"
    for task in router.tasks():
        if task.status is TaskStatus.PENDING:
            for agent_id in AGENT_IDS:
                assert not router.eligible(task.id, agent_id), (
                    f"pending {task.id} not offered to free eligible agent {agent_id}"
                )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=60))
def test_routing_invariants_hold_under_any_sequence(ops: list[tuple]) -> None:
    router = Router(small_settings())
    now = 0.0
    for profile in AGENTS:
        router.upsert_agent(profile, now)
    accepted: Counter[str] = Counter()
    offered_presence: list[str] = []
    task_ids: list[str] = []

    def note(events: list) -> None:
        for e in events:
            if isinstance(e, TaskOffered):
                assert router.agent(e.agent_id).presence is Presence.AVAILABLE
                offered_presence.append(e.agent_id)
            if isinstance(e, TaskAccepted):
                accepted[e.task_id] += 1

    for op in ops:
        kind = op[0]
        if kind == "arrive":
            _, channel, priority, category, last_agent, vulnerable = op
            task_id = f"t{len(task_ids)}"
            task_ids.append(task_id)
            attrs = {"priority": priority, "category": category, "last_agent_id": last_agent,
                     "vulnerable": ["elderly"] if vulnerable else []}
            note(router.submit(task_id, channel, attrs, now))
        elif kind == "presence":
            note(router.set_presence(op[1], op[2], now))
        elif kind in ("accept", "reject", "finish", "abandon") and task_ids:
            task = router.task(task_ids[op[1] % len(task_ids)])
            try:
                if kind == "accept" and task.agent_id:
                    note(router.accept(task.id, task.agent_id, now))
                elif kind == "reject" and task.agent_id:
                    note(router.reject(task.id, task.agent_id, now))
                elif kind == "finish" and task.agent_id:
                    if task.status is TaskStatus.ASSIGNED:
                        note(router.wrap_up(task.id, task.agent_id, now))
                    else:
                        note(router.complete(task.id, task.agent_id, now))
                elif kind == "abandon":
                    note(router.abandon(task.id, now))
            except Conflict:
                pass
        elif kind == "time":
            now += op[1]
            note(router.tick(now))
        check_invariants(router, accepted)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=2, max_size=25))
def test_higher_priority_waiting_task_is_offered_first(priorities: list[int]) -> None:
    router = Router(small_settings())
    for i, p in enumerate(priorities):
        router.submit(f"t{i}", Channel.CHAT, {"priority": p}, float(i))
    agent = AgentProfile("solo", {"general": 1}, ["th"], {Channel.CHAT: 1})
    router.upsert_agent(agent, 100.0)
    order = []
    now = 100.0
    events = router.set_presence("solo", Presence.AVAILABLE, now)
    for _ in priorities:
        offer = next(e for e in events if isinstance(e, TaskOffered))
        order.append(offer.task_id)
        router.accept(offer.task_id, "solo", now)
        now += 1
        events = router.complete(offer.task_id, "solo", now)
    expected = sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))
    assert order == [f"t{i}" for i in expected]
