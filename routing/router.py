"""The router: which task goes to which agent, and when.

A pure, synchronous state machine with no I/O and no clock of its own: every command
takes `now` (seconds) and returns the `RouterEvent`s it caused, which the core persists
and publishes. That keeps the routing rules testable on their own (property tests drive
it with random arrivals, presence changes, accepts, rejects and timeouts).

Semantics (after Twilio TaskRouter, Amazon Connect and Genesys):
- a task is routed by the workflow: the first filter matching its attributes gives an
  ordered list of targets (queue, optional agent expression, priority, timeout,
  skip-if-nobody-available); when a target's timeout runs out the task moves on;
- in a queue, higher priority first, then oldest; priority may age while waiting;
- among eligible agents, the least loaded, then the longest idle (or the most skilled);
- an agent is eligible when available, a member of the queue, free on the task's
  channel within the cross-channel rules, accepted by the target's agent expression
  and has not rejected this task;
- an offer (reservation) holds capacity until accepted, rejected or timed out; a miss
  is recorded and, by default, the agent is set away.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from routing.config import Settings, Target
from routing.domain import Channel, Presence, TaskStatus
from routing.errors import Conflict, NotFound
from routing.expressions import matches

# ---------------------------------------------------------------------------------------
# Events


#: How many finished task ids a router remembers (see `Router.finished_recently`).
FORGOTTEN_KEPT = 50_000


@dataclass(frozen=True, slots=True)
class RouterEvent:
    task_id: str | None
    agent_id: str | None
    at: float


@dataclass(frozen=True, slots=True)
class TaskQueued(RouterEvent):
    queue: str
    priority: int
    target_index: int
    workflow_filter: str


@dataclass(frozen=True, slots=True)
class TaskOffered(RouterEvent):
    queue: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class TaskAccepted(RouterEvent):
    queue: str
    wait_seconds: float


@dataclass(frozen=True, slots=True)
class TaskRejected(RouterEvent):
    pass


@dataclass(frozen=True, slots=True)
class OfferMissed(RouterEvent):
    pass


@dataclass(frozen=True, slots=True)
class OfferWithdrawn(RouterEvent):
    reason: str


@dataclass(frozen=True, slots=True)
class TaskMoved(RouterEvent):
    from_queue: str
    to_queue: str
    target_index: int


@dataclass(frozen=True, slots=True)
class TaskWrapping(RouterEvent):
    pass


@dataclass(frozen=True, slots=True)
class TaskFinished(RouterEvent):
    status: TaskStatus
    queue: str
    wait_seconds: float | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceChanged(RouterEvent):
    presence: Presence
    reason: str | None


# ---------------------------------------------------------------------------------------
# State


@dataclass
class AgentProfile:
    """What routing needs to know about an agent."""

    id: str
    skills: Mapping[str, int] = field(default_factory=dict)
    languages: Iterable[str] = ("th",)
    capacity: Mapping[Channel, int] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Agent:
    profile: AgentProfile
    context: dict[str, Any]
    presence: Presence = Presence.OFFLINE
    presence_reason: str | None = None
    presence_since: float = 0.0
    idle_since: float = 0.0
    held: dict[str, Channel] = field(default_factory=dict)
    queues: set[str] = field(default_factory=set)
    missed: int = 0
    # Running count of held tasks per channel (no zero entries), kept by `_hold`/`_unhold`,
    # and the channels the agent can take one more task on (capacity and cross-channel
    # rules), recomputed by `_refresh_free` whenever `held` or the profile changes.
    counts: dict[Channel, int] = field(default_factory=dict)
    open: frozenset[Channel] = frozenset()
    # The waiting lists of the agent's queues on the channels of their capacity.
    lists: list[tuple[Channel, SortedList]] = field(default_factory=list)


@dataclass
class _Task:
    id: str
    channel: Channel
    attributes: dict[str, Any]
    base_priority: int
    priority: int
    created_at: float
    enqueued_at: float
    seq: int
    workflow_filter: str
    targets: tuple[Target, ...]
    target_index: int = 0
    target_deadline: float | None = None
    status: TaskStatus = TaskStatus.PENDING
    agent_id: str | None = None
    reservation_deadline: float | None = None
    wrap_deadline: float | None = None
    accepted_at: float | None = None
    rejected_by: set[str] = field(default_factory=set)
    version: int = 0
    # Cached: the current target and its queue (change with `set_target`), the order key
    # (changes with `set_priority`), and the waiting list the task is in, if any.
    target: Target = field(init=False)
    queue: str = field(init=False)
    key: tuple[int, float, int, str] = field(init=False)
    waiting_in: SortedList | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.set_target(self.targets, self.target_index)
        self.set_priority(self.priority)

    def set_target(self, targets: tuple[Target, ...], index: int) -> None:
        self.targets, self.target_index = targets, index
        self.target = targets[index]
        self.queue = self.target.queue

    def set_priority(self, priority: int) -> None:
        self.priority = priority
        self.key = (-priority, self.enqueued_at, self.seq, self.id)


@dataclass(frozen=True, slots=True)
class TaskView:
    """A read-only view of a task's routing state."""

    id: str
    channel: Channel
    status: TaskStatus
    queue: str
    priority: int
    agent_id: str | None
    enqueued_at: float
    reservation_deadline: float | None
    attributes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AgentView:
    id: str
    presence: Presence
    presence_reason: str | None
    presence_since: float
    held: Mapping[str, Channel]
    queues: frozenset[str]
    missed: int
    activity: str


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What the live wall shows for one queue."""

    queue: str
    waiting: int
    waiting_by_channel: Mapping[str, int]
    longest_wait_seconds: float
    agents_available: int
    agents_logged_in: int
    service_level: float | None
    answered: int
    abandoned: int


class _QueueStats:
    """Rolling service-level statistics for one queue (last `window` seconds)."""

    def __init__(self, window: float = 3600.0) -> None:
        self.window = window
        self.events: deque[tuple[float, str, float, float]] = deque()
        self.handle_ema: dict[Channel, float] = {}

    def record(self, now: float, kind: str, wait: float, threshold: float) -> None:
        self.events.append((now, kind, wait, threshold))
        self._trim(now)

    def service_level(self, now: float) -> tuple[float | None, int, int]:
        self._trim(now)
        answered = sum(1 for _, k, _, _ in self.events if k == "answered")
        abandoned = sum(1 for _, k, _, _ in self.events if k == "abandoned")
        within = sum(1 for _, k, w, t in self.events if k == "answered" and w <= t)
        # Calls abandoned before the threshold do not count against the service level.
        counted = answered + sum(1 for _, k, w, t in self.events if k == "abandoned" and w > t)
        return (within / counted if counted else None), answered, abandoned

    def _trim(self, now: float) -> None:
        while self.events and self.events[0][0] < now - self.window:
            self.events.popleft()


# ---------------------------------------------------------------------------------------
# The router


class Router:
    """In-memory routing state; see the module docstring for the rules."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._agents: dict[str, _Agent] = {}
        self._tasks: dict[str, _Task] = {}
        #: Ids of tasks recently finished and forgotten (newest last, bounded): a late
        #: duplicate of their submission must not route them again.
        self._forgotten: dict[str, None] = {}
        self._waiting: dict[tuple[str, Channel], SortedList] = {}
        self._members: dict[str, set[str]] = {q: set() for q in settings.queues}
        self._free: set[str] = set()
        self._deadlines: list[tuple[float, int, str, str, int]] = []
        self._seq = itertools.count()
        self._stats = {q: _QueueStats() for q in settings.queues}
        self._next_aging = 0.0
        self._exclusive = [
            (exclusive, frozenset({exclusive, *alongside}))
            for exclusive, alongside in settings.capacity_rules.exclusive.items()
        ]
        self._any_aging = any(q.spec.priority_aging > 0 for q in settings.queues.values())
        self._timeouts: dict[tuple[str, Channel], tuple[float, float]] = {}

    # -- agents -------------------------------------------------------------------------

    def upsert_agent(self, profile: AgentProfile, now: float) -> list[RouterEvent]:
        """Add an agent or update their skills, languages and capacity."""
        agent = self._agents.get(profile.id)
        context = {
            **profile.attributes,
            "id": profile.id,
            "skills": dict(profile.skills),
            "languages": list(profile.languages),
            "capacity": {str(k): v for k, v in profile.capacity.items()},
        }
        if agent is None:
            agent = _Agent(profile, context, presence_since=now, idle_since=now)
            self._agents[profile.id] = agent
        else:
            agent.profile, agent.context = profile, context
        for queue_id, members in self._members.items():
            members.discard(profile.id)
            queue = self.settings.queues[queue_id]
            if matches(queue.agents, context):
                members.add(profile.id)
        agent.queues = {q for q, m in self._members.items() if profile.id in m}
        agent.lists = [
            (c, self._waiting_list(q, c)) for q in agent.queues for c in profile.capacity
        ]
        self._refresh_free(agent)
        return self._offer_to_agent(agent, now)

    def set_presence(
        self, agent_id: str, presence: Presence, now: float, reason: str | None = None
    ) -> list[RouterEvent]:
        """Change what the agent has chosen; leaving 'available' withdraws pending offers."""
        agent = self._agent(agent_id)
        events: list[RouterEvent] = []
        if agent.presence == presence and agent.presence_reason == reason:
            return events
        agent.presence, agent.presence_reason, agent.presence_since = presence, reason, now
        events.append(PresenceChanged(None, agent_id, now, presence, reason))
        if presence is Presence.AVAILABLE:
            agent.idle_since = now
            self._refresh_free(agent)
            events += self._offer_to_agent(agent, now)
            return events
        self._free.discard(agent_id)
        for task_id in [t for t in agent.held if self._tasks[t].status is TaskStatus.RESERVED]:
            events += self._return_reserved(self._tasks[task_id], now, "agent_unavailable")
        return events

    # -- tasks --------------------------------------------------------------------------

    def submit(
        self,
        task_id: str,
        channel: Channel,
        attributes: Mapping[str, Any],
        now: float,
        *,
        enqueued_at: float | None = None,
    ) -> list[RouterEvent]:
        """Route a new task through the workflow and offer it if an agent is free."""
        if task_id in self._tasks:
            raise Conflict(f"task {task_id} already routed")
        attrs = {**attributes, "channel": str(channel)}
        filter_name, targets = self.settings.workflow.targets_for(attrs)
        base = int(attrs.get("priority") or 0)
        if attrs.get("vulnerable"):
            base += self.settings.workflow.vulnerable_priority_boost
        task = _Task(
            id=task_id, channel=channel, attributes=attrs, base_priority=base, priority=base,
            created_at=now, enqueued_at=enqueued_at if enqueued_at is not None else now,
            seq=next(self._seq), workflow_filter=filter_name, targets=targets,
        )
        self._tasks[task_id] = task
        return self._enter_target(task, 0, now, first=True)

    def requeue(
        self, task_id: str, queue_id: str, now: float, *, agent_id: str | None = None
    ) -> list[RouterEvent]:
        """Transfer: the task leaves its agent and waits in `queue_id` (for `agent_id` only
        if given), keeping its place in time."""
        task = self._task(task_id)
        if queue_id not in self.settings.queues:
            raise NotFound("queue", queue_id)
        if task.status.is_final:
            raise Conflict(f"task {task_id} is {task.status}")
        events: list[RouterEvent] = []
        if task.agent_id:
            self._release(task, now)
        expr = f"id == {agent_id!r}" if agent_id else None
        from routing.expressions import compile_expression

        target = Target(
            queue_id, compile_expression(expr) if expr else None, expr,
            None, None, False,
        )
        self._unqueue(task)
        task.set_target((target,), 0)
        task.status, task.agent_id = TaskStatus.PENDING, None
        task.rejected_by.clear()
        events += self._enter_target(task, 0, now, first=False)
        return events

    def restore_held(
        self,
        task_id: str,
        channel: Channel,
        attributes: Mapping[str, Any],
        queue_id: str,
        agent_id: str,
        status: TaskStatus,
        enqueued_at: float,
        accepted_at: float,
        now: float,
    ) -> None:
        """After a restart: put back a task an agent was working on (assigned or wrapping)."""
        if queue_id not in self.settings.queues:
            queue_id = next(iter(self.settings.queues))
        agent = self._agent(agent_id)
        task = _Task(
            id=task_id, channel=channel, attributes=dict(attributes), base_priority=0,
            priority=0, created_at=enqueued_at, enqueued_at=enqueued_at, seq=next(self._seq),
            workflow_filter="restored",
            targets=(Target(queue_id, None, None, None, None, False),),
            status=status, agent_id=agent_id, accepted_at=accepted_at,
        )
        self._tasks[task_id] = task
        self._hold(agent, task_id, channel)
        if status is TaskStatus.WRAPPING:
            task.wrap_deadline = now + self.settings.channel(channel).wrap_up_seconds
            self._push_deadline(task.wrap_deadline, "wrap", task)
        self._refresh_free(agent)

    def accept(self, task_id: str, agent_id: str, now: float) -> list[RouterEvent]:
        """The agent takes the offered task."""
        task = self._task(task_id)
        if task.status is not TaskStatus.RESERVED or task.agent_id != agent_id:
            raise Conflict(f"task {task_id} is not offered to agent {agent_id}")
        task.status, task.reservation_deadline = TaskStatus.ASSIGNED, None
        task.accepted_at = now
        task.version += 1
        wait = now - task.enqueued_at
        threshold = self._timeouts_for(task.queue, task.channel)[1]
        self._stats[task.queue].record(now, "answered", wait, threshold)
        return [TaskAccepted(task_id, agent_id, now, task.queue, wait)]

    def reject(self, task_id: str, agent_id: str, now: float) -> list[RouterEvent]:
        """The agent declines the offer: the task goes back and is not offered to them again."""
        task = self._task(task_id)
        if task.status is not TaskStatus.RESERVED or task.agent_id != agent_id:
            raise Conflict(f"task {task_id} is not offered to agent {agent_id}")
        task.rejected_by.add(agent_id)
        events: list[RouterEvent] = [TaskRejected(task_id, agent_id, now)]
        agent = self._agents[agent_id]
        self._release(task, now)
        events += self._requeue_after_offer(task, now)
        events += self._offer_to_agent(agent, now)
        return events

    def wrap_up(self, task_id: str, agent_id: str, now: float) -> list[RouterEvent]:
        """The conversation is over; the agent does after-contact work (or finishes)."""
        task = self._task(task_id)
        if task.status is not TaskStatus.ASSIGNED or task.agent_id != agent_id:
            raise Conflict(f"task {task_id} is not assigned to agent {agent_id}")
        seconds = self.settings.channel(task.channel).wrap_up_seconds
        if seconds <= 0:
            return self._finish(task, TaskStatus.COMPLETED, now)
        task.status, task.wrap_deadline = TaskStatus.WRAPPING, now + seconds
        task.version += 1
        self._push_deadline(task.wrap_deadline, "wrap", task)
        return [TaskWrapping(task_id, agent_id, now)]

    def complete(self, task_id: str, agent_id: str, now: float) -> list[RouterEvent]:
        """The agent is done with the task (ends wrap-up early if wrapping)."""
        task = self._task(task_id)
        if task.status not in (TaskStatus.ASSIGNED, TaskStatus.WRAPPING) or (
            task.agent_id != agent_id
        ):
            raise Conflict(f"task {task_id} is not held by agent {agent_id}")
        return self._finish(task, TaskStatus.COMPLETED, now)

    def cancel(self, task_id: str, now: float, reason: str = "canceled") -> list[RouterEvent]:
        """Withdraw the task (the citizen left, the matter was settled elsewhere)."""
        task = self._task(task_id)
        if task.status.is_final:
            return []
        return self._finish(task, TaskStatus.CANCELED, now, reason)

    def abandon(self, task_id: str, now: float) -> list[RouterEvent]:
        """The citizen hung up or left while waiting."""
        task = self._task(task_id)
        if task.status not in (TaskStatus.PENDING, TaskStatus.RESERVED):
            return []
        threshold = self.settings.service_level(task.queue, task.channel).threshold_seconds
        self._stats[task.queue].record(now, "abandoned", now - task.enqueued_at, threshold)
        return self._finish(task, TaskStatus.ABANDONED, now, "citizen_left")

    def forget(self, task_id: str) -> None:
        """Drop a finished task from memory (its history lives in storage)."""
        task = self._tasks.get(task_id)
        if task is not None and task.status.is_final:
            del self._tasks[task_id]
            self._forgotten[task_id] = None
            if len(self._forgotten) > FORGOTTEN_KEPT:
                del self._forgotten[next(iter(self._forgotten))]

    def finished_recently(self, task_id: str) -> bool:
        """Whether this router finished and forgot `task_id` (among the last
        `FORGOTTEN_KEPT`)."""
        return task_id in self._forgotten

    # -- time ---------------------------------------------------------------------------

    def tick(self, now: float) -> list[RouterEvent]:
        """Apply every deadline that has passed: offer timeouts, wrap-up ends, workflow
        target timeouts, priority aging."""
        events: list[RouterEvent] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, kind, task_id, version = heapq.heappop(self._deadlines)
            task = self._tasks.get(task_id)
            if task is None or task.version != version:
                continue
            if kind == "offer" and task.status is TaskStatus.RESERVED:
                events += self._offer_timed_out(task, now)
            elif kind == "wrap" and task.status is TaskStatus.WRAPPING:
                events += self._finish(task, TaskStatus.COMPLETED, now)
            elif kind == "target" and task.status is TaskStatus.PENDING:
                events += self._enter_target(task, task.target_index + 1, now, first=False)
        if now >= self._next_aging:
            events += self._age(now)
            self._next_aging = now + 10.0
        return events

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (for the core's timer)."""
        while self._deadlines:
            deadline, _, _, task_id, version = self._deadlines[0]
            task = self._tasks.get(task_id)
            if task is not None and task.version == version:
                return min(deadline, self._next_aging) if self._aging_queues() else deadline
            heapq.heappop(self._deadlines)
        return self._next_aging if self._aging_queues() else None

    # -- queries ------------------------------------------------------------------------

    def task(self, task_id: str) -> TaskView:
        t = self._task(task_id)
        return TaskView(t.id, t.channel, t.status, t.queue, t.priority, t.agent_id,
                        t.enqueued_at, t.reservation_deadline, dict(t.attributes))

    def tasks(self) -> list[TaskView]:
        return [self.task(t) for t in self._tasks]

    def agent(self, agent_id: str) -> AgentView:
        a = self._agent(agent_id)
        return AgentView(a.profile.id, a.presence, a.presence_reason, a.presence_since,
                         dict(a.held), frozenset(a.queues), a.missed, self._activity(a))

    def agents(self) -> list[AgentView]:
        return [self.agent(a) for a in self._agents]

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def has_task(self, task_id: str) -> bool:
        return task_id in self._tasks

    def queue_position(self, task_id: str) -> int | None:
        """1 for the next task to be offered in its queue and channel; None if not waiting."""
        task = self._task(task_id)
        if task.status is not TaskStatus.PENDING:
            return None
        waiting = self._waiting.get((task.queue, task.channel))
        if not waiting:
            return None
        return int(waiting.index(task.key)) + 1

    def estimated_wait(self, task_id: str) -> float | None:
        """Seconds until the task is likely answered: position × handle time / staffed slots."""
        position = self.queue_position(task_id)
        if position is None:
            return None
        task = self._tasks[task_id]
        slots = sum(
            self._agents[a].profile.capacity.get(task.channel, 0)
            for a in self._members.get(task.queue, ())
            if self._agents[a].presence is Presence.AVAILABLE
        )
        handle = self._stats[task.queue].handle_ema.get(
            task.channel, self.settings.channel(task.channel).default_handle_seconds
        )
        return position * handle / max(slots, 1)

    def queue_snapshot(self, queue_id: str, now: float) -> QueueSnapshot:
        """Live figures for one queue."""
        if queue_id not in self.settings.queues:
            raise NotFound("queue", queue_id)
        by_channel: dict[str, int] = {}
        oldest = now
        for (q, channel), waiting in self._waiting.items():
            if q == queue_id and waiting:
                by_channel[str(channel)] = len(waiting)
                oldest = min(oldest, waiting[0][1])
        members = [self._agents[a] for a in self._members.get(queue_id, ())]
        sl, answered, abandoned = self._stats[queue_id].service_level(now)
        return QueueSnapshot(
            queue=queue_id,
            waiting=sum(by_channel.values()),
            waiting_by_channel=by_channel,
            longest_wait_seconds=max(0.0, now - oldest),
            agents_available=sum(1 for a in members if a.presence is Presence.AVAILABLE),
            agents_logged_in=sum(1 for a in members if a.presence is not Presence.OFFLINE),
            service_level=sl,
            answered=answered,
            abandoned=abandoned,
        )

    def eligible(self, task_id: str, agent_id: str) -> bool:
        """Whether the agent could be offered the task right now."""
        return self._eligible(self._task(task_id), self._agent(agent_id))

    # -- internals ----------------------------------------------------------------------

    def _agent(self, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise NotFound("agent", agent_id) from None

    def _task(self, task_id: str) -> _Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise NotFound("task", task_id) from None

    def _activity(self, agent: _Agent) -> str:
        statuses = {self._tasks[t].status for t in agent.held}
        if TaskStatus.ASSIGNED in statuses:
            return "busy"
        if TaskStatus.WRAPPING in statuses:
            return "wrap-up"
        if TaskStatus.RESERVED in statuses:
            return "ringing"
        return str(agent.presence)

    def _can_take(self, agent: _Agent, channel: Channel) -> bool:
        return channel in agent.open

    def _open_channels(self, agent: _Agent) -> frozenset[Channel]:
        """The channels on which the agent can take one more task: below capacity, and
        allowed by the cross-channel (exclusive) rules given what they hold."""
        counts = agent.counts
        result = []
        for channel, capacity in agent.profile.capacity.items():
            if counts.get(channel, 0) >= capacity:
                continue
            for exclusive, allowed in self._exclusive:
                if counts.get(exclusive) and channel not in allowed:
                    break
                if channel is exclusive and any(c not in allowed for c in counts):
                    break
            else:
                result.append(channel)
        return frozenset(result)

    def _hold(self, agent: _Agent, task_id: str, channel: Channel) -> None:
        previous = agent.held.get(task_id)
        if previous is not None:
            self._unhold(agent, task_id)
        agent.held[task_id] = channel
        agent.counts[channel] = agent.counts.get(channel, 0) + 1

    def _unhold(self, agent: _Agent, task_id: str) -> None:
        channel = agent.held.pop(task_id, None)
        if channel is None:
            return
        left = agent.counts[channel] - 1
        if left:
            agent.counts[channel] = left
        else:
            del agent.counts[channel]

    def _refresh_free(self, agent: _Agent) -> None:
        agent.open = self._open_channels(agent)
        if agent.presence is Presence.AVAILABLE and agent.open:
            self._free.add(agent.profile.id)
        else:
            self._free.discard(agent.profile.id)

    def _eligible(self, task: _Task, agent: _Agent) -> bool:
        if task.status is not TaskStatus.PENDING or agent.presence is not Presence.AVAILABLE:
            return False
        if task.queue not in agent.queues or agent.profile.id in task.rejected_by:
            return False
        if not self._can_take(agent, task.channel):
            return False
        target = task.target
        if target.agents is not None:
            return matches(target.agents, {**agent.context, "task": task.attributes})
        return True

    def _enter_target(
        self, task: _Task, index: int, now: float, *, first: bool
    ) -> list[RouterEvent]:
        events: list[RouterEvent] = []
        previous = task.queue
        last = len(task.targets) - 1
        index = min(index, last)
        while index < last and task.targets[index].skip_if_no_agents and not any(
            self._agents[a].presence is Presence.AVAILABLE
            for a in self._members.get(task.targets[index].queue, ())
        ):
            index += 1
        if not first and index == task.target_index and task.status is TaskStatus.PENDING and (
            task.queue == previous and self._is_waiting(task)
        ):
            task.target_deadline = None  # last target: the task stays where it is
            return events
        self._unqueue(task)
        task.set_target(task.targets, index)
        target = task.target
        if target.priority is not None:
            task.base_priority = target.priority + (
                self.settings.workflow.vulnerable_priority_boost
                if task.attributes.get("vulnerable") else 0
            )
        task.set_priority(task.base_priority + self._aging_bonus(task, now))
        task.status = TaskStatus.PENDING
        task.version += 1
        task.target_deadline = now + target.timeout if target.timeout and index < last else None
        if task.target_deadline is not None:
            self._push_deadline(task.target_deadline, "target", task)
        self._enqueue(task)
        if first:
            events.append(TaskQueued(task.id, None, now, task.queue, task.priority, index,
                                     task.workflow_filter))
        else:
            events.append(TaskMoved(task.id, None, now, previous, task.queue, index))
        events += self._offer_task(task, now)
        return events

    def _is_waiting(self, task: _Task) -> bool:
        return task.waiting_in is not None

    def _waiting_list(self, queue_id: str, channel: Channel) -> SortedList:
        waiting = self._waiting.get((queue_id, channel))
        if waiting is None:
            waiting = self._waiting[(queue_id, channel)] = SortedList()
        return waiting

    def _timeouts_for(self, queue_id: str, channel: Channel) -> tuple[float, float]:
        """(reservation timeout, service-level threshold) for a queue and channel."""
        found = self._timeouts.get((queue_id, channel))
        if found is None:
            found = self._timeouts[(queue_id, channel)] = (
                self.settings.reservation_timeout(queue_id, channel),
                self.settings.service_level(queue_id, channel).threshold_seconds,
            )
        return found

    def _enqueue(self, task: _Task) -> None:
        waiting = self._waiting_list(task.queue, task.channel)
        waiting.add(task.key)
        task.waiting_in = waiting

    def _unqueue(self, task: _Task) -> None:
        waiting = task.waiting_in
        if waiting is not None:
            waiting.discard(task.key)
            task.waiting_in = None

    def _offer_task(self, task: _Task, now: float) -> list[RouterEvent]:
        if task.status is not TaskStatus.PENDING:
            return []
        members = self._members.get(task.queue, set())
        pool = members & self._free if len(members) > len(self._free) else self._free & members
        if not pool:
            return []
        # Among eligible agents: the most skilled (strategy `most_skilled`), then the least
        # loaded, then the longest since their last offer; the agent id breaks ties.
        spec = self.settings.queues[task.queue].spec
        skill = spec.skill if spec.strategy == "most_skilled" else None
        channel, rejected, expression = task.channel, task.rejected_by, task.target.agents
        best: tuple[tuple[float, ...], str] | None = None
        for agent_id in pool:
            agent = self._agents[agent_id]
            # `_eligible`, less what holds for every agent in the pool: the task is
            # pending and in one of their queues; they are available (`_free`).
            if channel not in agent.open or agent_id in rejected:
                continue
            if expression is not None and not matches(
                expression, {**agent.context, "task": task.attributes}
            ):
                continue
            load = float(len(agent.held))
            order: tuple[tuple[float, ...], str] = (
                (-float(agent.profile.skills.get(skill, 0)), load, agent.idle_since)
                if skill else (load, agent.idle_since),
                agent_id,
            )
            if best is None or order < best:
                best = order
        if best is None:
            return []
        return self._reserve(task, self._agents[best[1]], now)

    def _offer_to_agent(self, agent: _Agent, now: float) -> list[RouterEvent]:
        events: list[RouterEvent] = []
        while agent.profile.id in self._free:
            task = self._best_task_for(agent)
            if task is None:
                break
            events += self._reserve(task, agent, now)
        return events

    def _best_task_for(self, agent: _Agent) -> _Task | None:
        """The first task in queue order (lowest key) the agent is eligible for."""
        if agent.presence is not Presence.AVAILABLE or not agent.open:
            return None
        agent_id, open_channels, tasks = agent.profile.id, agent.open, self._tasks
        best: _Task | None = None
        best_key: tuple[int, float, int, str] | None = None
        for channel, waiting in agent.lists:
            if not waiting or channel not in open_channels:
                continue
            if best_key is not None and waiting[0] > best_key:
                continue
            for key in waiting:
                if best_key is not None and key > best_key:
                    break
                task = tasks[key[3]]
                # `_eligible`, less what holds for every task in this list: it is in one
                # of the agent's queues on a channel they can take.
                if task.status is not TaskStatus.PENDING or agent_id in task.rejected_by:
                    continue
                expression = task.target.agents
                if expression is not None and not matches(
                    expression, {**agent.context, "task": task.attributes}
                ):
                    continue
                best, best_key = task, key
                break
        return best

    def _reserve(self, task: _Task, agent: _Agent, now: float) -> list[RouterEvent]:
        self._unqueue(task)
        task.status, task.agent_id = TaskStatus.RESERVED, agent.profile.id
        task.reservation_deadline = now + self._timeouts_for(task.queue, task.channel)[0]
        task.version += 1
        self._push_deadline(task.reservation_deadline, "offer", task)
        self._hold(agent, task.id, task.channel)
        agent.idle_since = now
        self._refresh_free(agent)
        return [TaskOffered(task.id, agent.profile.id, now, task.queue, task.reservation_deadline)]

    def _release(self, task: _Task, now: float) -> None:
        """Free the agent's capacity held by the task."""
        if task.agent_id is None:
            return
        agent = self._agents.get(task.agent_id)
        if agent is not None:
            self._unhold(agent, task.id)
            if not agent.held:
                agent.idle_since = now
            self._refresh_free(agent)

    def _requeue_after_offer(self, task: _Task, now: float) -> list[RouterEvent]:
        task.status, task.agent_id, task.reservation_deadline = TaskStatus.PENDING, None, None
        task.version += 1
        if task.target_deadline is not None:
            if task.target_deadline <= now:
                return self._enter_target(task, task.target_index + 1, now, first=False)
            self._push_deadline(task.target_deadline, "target", task)
        self._enqueue(task)
        return self._offer_task(task, now)

    def _return_reserved(self, task: _Task, now: float, reason: str) -> list[RouterEvent]:
        agent_id = task.agent_id
        self._release(task, now)
        events: list[RouterEvent] = [OfferWithdrawn(task.id, agent_id, now, reason)]
        return events + self._requeue_after_offer(task, now)

    def _offer_timed_out(self, task: _Task, now: float) -> list[RouterEvent]:
        agent = self._agents[task.agent_id] if task.agent_id else None
        events: list[RouterEvent] = [OfferMissed(task.id, task.agent_id, now)]
        if agent is not None:
            agent.missed += 1
            task.rejected_by.add(agent.profile.id)
        self._release(task, now)
        if agent is not None and self.settings.on_missed_offer == "away":
            # Set away before re-offering so the absent agent is not offered the task again.
            events += self.set_presence(agent.profile.id, Presence.AWAY, now, "missed_offer")
        events += self._requeue_after_offer(task, now)
        return events

    def _finish(
        self, task: _Task, status: TaskStatus, now: float, reason: str | None = None
    ) -> list[RouterEvent]:
        agent = self._agents.get(task.agent_id) if task.agent_id else None
        if status is TaskStatus.COMPLETED and task.accepted_at is not None:
            stats = self._stats[task.queue]
            handle = now - task.accepted_at
            previous = stats.handle_ema.get(task.channel, handle)
            stats.handle_ema[task.channel] = 0.8 * previous + 0.2 * handle
        self._unqueue(task)
        self._release(task, now)
        agent_id = task.agent_id
        wait = (task.accepted_at or now) - task.enqueued_at
        task.status, task.version = status, task.version + 1
        events: list[RouterEvent] = [TaskFinished(task.id, agent_id, now, status, task.queue,
                                                  wait, reason)]
        if agent is not None:
            events += self._offer_to_agent(agent, now)
        return events

    def _push_deadline(self, at: float, kind: str, task: _Task) -> None:
        heapq.heappush(self._deadlines, (at, next(self._seq), kind, task.id, task.version))

    def _aging_queues(self) -> bool:
        return self._any_aging

    def _aging_bonus(self, task: _Task, now: float) -> int:
        rate = self.settings.queues[task.queue].spec.priority_aging
        return math.floor(rate * max(0.0, now - task.enqueued_at) / 60.0) if rate else 0

    def _age(self, now: float) -> list[RouterEvent]:
        for (queue_id, _channel), waiting in list(self._waiting.items()):
            if not self.settings.queues[queue_id].spec.priority_aging or not waiting:
                continue
            for key in list(waiting):
                task = self._tasks[key[3]]
                new = task.base_priority + self._aging_bonus(task, now)
                if new != task.priority:
                    waiting.discard(key)
                    task.set_priority(new)
                    waiting.add(task.key)
        return []
