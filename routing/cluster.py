"""Cluster mode: several app nodes on one PostgreSQL and one Redis.

The router is a state machine in memory, so exactly one node runs it at a time: the
*leader*, which holds a lease in Redis (`SET NX PX`, renewed every second). Every other
node is a *follower*:

- a follower's routing commands (go available, accept, complete, hand to people…) are
  queued in Redis and carried out by the leader, which answers with the router's
  version after the command;
- after every routing decision the leader publishes the router's state and the events it
  caused; followers keep a read-only replica (`RouterReplica`) for queue positions, the
  wall and the desk, and hand the events to their own subscribers. A follower that sent a
  command waits until its replica has caught up with the answer's version, so what a
  screen shows after a click includes the click;
- every other event is published on the node where it happened and fanned out through
  Redis; handlers subscribed with `origin_only` (side effects that must happen once) see
  only their own node's events.

When the leader dies its lease runs out (5 s) and another node takes it: it builds a new
router from the database exactly as a restarted single node does, so reserved tasks are
offered again and tasks being worked on stay with their agents. Commands queued while no
node leads wait in Redis until one does. A leader that cannot renew its lease stops
routing before the lease can pass to anyone else, so two routers never decide at once.
The database stays the truth: events on Redis are notifications, and every screen can
rebuild from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import os
import secrets
import socket
import sys
import time
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from routing import errors
from routing.aio import cancelling, stop_task
from routing.config import Settings
from routing.domain import Channel, Presence, TaskStatus
from routing.errors import NotFound, Unavailable
from routing.events import DomainEvent, InProcessBus
from routing.router import (
    AgentView,
    QueueSnapshot,
    Router,
    RouterEvent,
    TaskView,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# Events on the wire

_EXTRA_EVENTS: dict[str, type] = {}
_HINTS: dict[type, dict[str, Any]] = {}
_KNOWN: dict[str, type] = {}  # filled on first use (every core event is defined by then)


def register_event(*classes: type) -> None:
    """Let events a room defines (plain frozen dataclasses) travel between nodes. The
    core's own events are always known; an unregistered event stays on its node."""
    for cls in classes:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} is not a dataclass")
        _EXTRA_EVENTS[cls.__name__] = cls
    _KNOWN.clear()


def _known_events() -> dict[str, type]:
    if _KNOWN:
        return _KNOWN
    known: dict[str, type] = {}
    stack: list[type] = [DomainEvent, RouterEvent]
    while stack:
        cls = stack.pop()
        # `dataclass(slots=True)` makes a new class; the old one lingers in
        # __subclasses__, so only the one its module names counts.
        if getattr(sys.modules.get(cls.__module__), cls.__qualname__, None) is cls:
            known[cls.__name__] = cls
        stack.extend(cls.__subclasses__())
    _KNOWN.update(known, **_EXTRA_EVENTS)
    return _KNOWN


def encode_event(event: Any) -> dict[str, Any] | None:
    """The event as JSON-ready data, or None for an event that stays on its node."""
    cls = type(event)
    if _known_events().get(cls.__name__) is not cls:
        return None
    return {"type": cls.__name__,
            "data": {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}}


def decode_event(data: Mapping[str, Any]) -> Any:
    """The event `encode_event` wrote (KeyError for an unknown type)."""
    cls = _known_events()[data["type"]]
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return cls(**{name: _typed(hints[name], value) for name, value in data["data"].items()})


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def _typed(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {"$dt"}:
        return datetime.fromisoformat(value["$dt"])
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _typed(options[0], value) if len(options) == 1 else value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if origin is tuple:
        return tuple(value)
    if origin is frozenset:
        return frozenset(value)
    return value


# ---------------------------------------------------------------------------------------
# The router's state, as the leader publishes it and followers read it


def router_state(router: Router, settings: Settings, now: float) -> dict[str, Any]:
    """What followers need to answer the router's read queries."""
    tasks = {}
    per_place: dict[tuple[str, Channel], float | None] = {}  # estimated seconds per place
    for v in router.tasks():
        position = wait = None
        if v.status is TaskStatus.PENDING:
            position = router.queue_position(v.id)
            if position:
                key = (v.queue, v.channel)
                if key not in per_place:
                    estimate = router.estimated_wait(v.id)
                    per_place[key] = None if estimate is None else estimate / position
                factor = per_place[key]
                wait = None if factor is None else factor * position
        tasks[v.id] = [v.channel.value, v.status.value, v.queue, v.priority, v.agent_id,
                       v.enqueued_at, v.reservation_deadline, position, wait]
    agents = {a.id: [a.presence.value, a.presence_reason, a.presence_since,
                     {t: c.value for t, c in a.held.items()}, sorted(a.queues), a.missed,
                     a.activity] for a in router.agents()}
    queues = {q: dataclasses.asdict(router.queue_snapshot(q, now)) for q in settings.queues}
    return {"at": now, "tasks": tasks, "agents": agents, "queues": queues}


class RouterReplica:
    """A follower's read-only copy of the leader's router: the same queries as `Router`."""

    def __init__(self) -> None:
        self.version = 0
        self._state: dict[str, Any] = {"at": 0.0, "tasks": {}, "agents": {}, "queues": {}}
        self._changed = asyncio.Event()

    def update(self, version: int, state: Mapping[str, Any]) -> None:
        """Take a newer state (an older one, delayed on the way, is ignored)."""
        if version < self.version:
            return
        self.version, self._state = version, dict(state)
        self._changed.set()
        self._changed = asyncio.Event()

    def reset(self) -> None:
        """Forget the state (a new leader's versions start again from its term)."""
        self.version = 0

    async def caught_up(self, version: int, within: float = 2.0) -> bool:
        """Wait until the replica shows `version` (or newer); False after `within` s."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self.version < version:
                    await self._changed.wait()
        return self.version >= version

    def task(self, task_id: str) -> TaskView:
        row = self._state["tasks"].get(task_id)
        if row is None:
            raise NotFound("task", task_id)
        return TaskView(task_id, Channel(row[0]), TaskStatus(row[1]), row[2], row[3], row[4],
                        row[5], row[6], {})

    def tasks(self) -> list[TaskView]:
        return [self.task(t) for t in self._state["tasks"]]

    def agent(self, agent_id: str) -> AgentView:
        row = self._state["agents"].get(agent_id)
        if row is None:
            raise NotFound("agent", agent_id)
        return AgentView(agent_id, Presence(row[0]), row[1], row[2],
                         {t: Channel(c) for t, c in row[3].items()}, frozenset(row[4]), row[5],
                         row[6])

    def agents(self) -> list[AgentView]:
        return [self.agent(a) for a in self._state["agents"]]

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._state["agents"]

    def has_task(self, task_id: str) -> bool:
        return task_id in self._state["tasks"]

    def queue_position(self, task_id: str) -> int | None:
        position: int | None = self._row(task_id)[7]
        return position

    def estimated_wait(self, task_id: str) -> float | None:
        wait: float | None = self._row(task_id)[8]
        return wait

    def _row(self, task_id: str) -> list[Any]:
        row: list[Any] | None = self._state["tasks"].get(task_id)
        if row is None:
            raise NotFound("task", task_id)
        return row

    def queue_snapshot(self, queue_id: str, now: float) -> QueueSnapshot:
        snap = self._state["queues"].get(queue_id)
        if snap is None:
            return QueueSnapshot(queue_id, 0, {}, 0.0, 0, 0, None, 0, 0)
        longest = snap["longest_wait_seconds"]
        if snap["waiting"]:
            longest += max(0.0, now - self._state["at"])  # the oldest has waited since
        return QueueSnapshot(**{**snap, "longest_wait_seconds": longest})


# ---------------------------------------------------------------------------------------
# The node's side of the cluster


class ClusterMember(Protocol):
    """What the cluster asks of the node's contact center."""

    async def lead(self) -> None:
        """This node now holds the lease: build the router from the database."""

    async def follow(self) -> None:
        """This node lost the lease: stop routing."""

    async def execute(self, op: str, args: Mapping[str, Any], *, flush: bool = False) -> int:
        """Carry out a routing command; return the router's version after it."""

    async def router_changed(self, version: int, state: Mapping[str, Any] | None,
                             events: list[Any]) -> None:
        """The leader decided: update the replica, then tell this node's subscribers."""


class RedisBus(InProcessBus):
    """The event bus of a cluster node: this node's subscribers at once, the others
    through Redis pub/sub (`RedisCluster` receives and dispatches them)."""

    def __init__(self, client: aioredis.Redis, channel: str, node_id: str) -> None:
        super().__init__()
        self._redis, self.channel, self.node_id = client, channel, node_id
        self.lost = 0  # events that could not be sent to the other nodes

    async def publish(self, event: Any) -> None:
        await self.publish_local(event)
        encoded = encode_event(event)
        if encoded is None:
            return
        try:
            await self._redis.publish(self.channel, json.dumps({"n": self.node_id,
                                                                 "e": encoded}))
        except (RedisError, OSError) as exc:
            # The store has it; other nodes' screens catch up when they next read.
            self.lost += 1
            log.warning("event not sent to other nodes", extra={
                "event": type(event).__name__, "error": type(exc).__name__})


class RedisCluster:
    """Leadership, command forwarding and the shared bus, on one Redis server."""

    def __init__(self, url: str, *, prefix: str = "onestop", node_id: str | None = None,
                 lease_seconds: float = 5.0, call_timeout: float = 10.0) -> None:
        self.node_id = node_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.redis = aioredis.from_url(url, decode_responses=True, socket_connect_timeout=2,
                                       health_check_interval=10)
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.call_timeout = call_timeout
        self.bus = RedisBus(self.redis, f"{prefix}:bus", self.node_id)
        self.term = 0
        self._member: ClusterMember | None = None
        self._leading = False
        self._valid_until = 0.0
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._consumer: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closing = False

    # -- keys -------------------------------------------------------------------------

    @property
    def _lease_key(self) -> str:
        return f"{self.prefix}:leader"

    @property
    def _commands_key(self) -> str:
        return f"{self.prefix}:commands"

    @property
    def _state_key(self) -> str:
        return f"{self.prefix}:router"

    def _reply_channel(self, node_id: str) -> str:
        return f"{self.prefix}:reply:{node_id}"

    # -- life cycle -------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Whether this node holds a lease that cannot have passed to another node."""
        return self._leading and time.monotonic() < self._valid_until

    async def start(self, member: ClusterMember) -> None:
        """Join: listen, take the lease if it is free, keep trying while it is not."""
        self._member = member
        self._tasks.append(asyncio.create_task(self._listen(), name="cluster-listen"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._subscribed.wait()
        with contextlib.suppress(RedisError, OSError):
            await self._campaign()
        self._tasks.append(asyncio.create_task(self._keep_lease(), name="cluster-lease"))

    async def stop(self) -> None:
        """Leave: hand the lease back at once so another node need not wait it out."""
        self._closing = True
        for task in [*self._tasks, *([self._consumer] if self._consumer else [])]:
            await stop_task(task, f"cluster task {task.get_name()}")
        if self._leading:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.eval(_RELEASE, 1, self._lease_key, self.node_id)
        self._leading = False
        await self.redis.aclose()

    async def ping(self) -> bool:
        """Readiness: Redis answers."""
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    # -- the lease --------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        every = self.lease_seconds / 5
        while not self._closing:
            await asyncio.sleep(every)
            try:
                await self._campaign()
            except (RedisError, OSError) as exc:
                log.warning("cluster: Redis unreachable", extra={"error": type(exc).__name__})
                if self._leading and time.monotonic() >= self._valid_until:
                    await self._step_down("lease could not be renewed")
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancelling():  # a library turned our cancellation into its own error
                    raise asyncio.CancelledError from None
                log.exception("cluster: lease loop failed")

    async def _campaign(self) -> None:
        ttl_ms = int(self.lease_seconds * 1000)
        asked = time.monotonic()
        if self._leading:
            if await self.redis.eval(_RENEW, 1, self._lease_key, self.node_id, ttl_ms):
                self._valid_until = asked + self.lease_seconds * 0.6
            else:
                await self._step_down("lease taken by another node")
            return
        if not await self.redis.set(self._lease_key, self.node_id, nx=True, px=ttl_ms):
            return
        self.term = int(await self.redis.incr(f"{self.prefix}:term"))
        self._leading, self._valid_until = True, asked + self.lease_seconds * 0.6
        log.info("cluster: this node leads", extra={"node": self.node_id, "term": self.term})
        assert self._member is not None
        try:
            await self._member.lead()
        except Exception:
            log.exception("cluster: could not take over the router")
            await self._step_down("take-over failed")
            with contextlib.suppress(RedisError, OSError):
                await self.redis.eval(_RELEASE, 1, self._lease_key, self.node_id)
            return
        self._consumer = asyncio.create_task(self._serve_commands(), name="cluster-commands")

    async def _step_down(self, why: str) -> None:
        if not self._leading:
            return
        self._leading = False
        log.warning("cluster: this node stops leading", extra={"node": self.node_id,
                                                               "reason": why})
        if self._consumer:
            self._consumer.cancel()
            self._consumer = None
        assert self._member is not None
        await self._member.follow()

    # -- commands ---------------------------------------------------------------------

    async def call(self, op: str, args: Mapping[str, Any]) -> int:
        """Have the leader carry out a routing command; its version after the command."""
        request_id = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.redis.rpush(self._commands_key, json.dumps({
                "id": request_id, "op": op, "args": dict(args), "reply": self.node_id,
                "deadline": time.time() + self.call_timeout}))
            async with asyncio.timeout(self.call_timeout):
                reply = await future
        except (RedisError, OSError) as exc:
            raise Unavailable(f"routing is unavailable ({type(exc).__name__} from Redis); "
                              "try again in a few seconds") from exc
        except TimeoutError:
            raise Unavailable(f"no node answered the routing command {op!r} within "
                              f"{self.call_timeout:.0f} s; try again") from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            raise _error(reply)
        return int(reply["version"])

    async def _serve_commands(self) -> None:
        assert self._member is not None
        while self._leading and not self._closing:
            try:
                item = await self.redis.blpop([self._commands_key], timeout=1)
            except (RedisError, OSError):
                await asyncio.sleep(0.5)
                continue
            if item is None:
                continue
            request = json.loads(item[1])
            if request.get("deadline", 0) < time.time():
                continue  # the caller gave up and said so; doing it now would surprise
            reply: dict[str, Any] = {"id": request["id"]}
            try:
                reply["version"] = await self._member.execute(request["op"], request["args"],
                                                              flush=True)
            except errors.NotFound as exc:
                reply.update(error="NotFound", kind=exc.kind, key=exc.key, message=str(exc))
            except errors.OneStopError as exc:
                reply.update(error=type(exc).__name__, message=str(exc))
            except Exception as exc:
                log.exception("cluster: command failed", extra={"op": request.get("op")})
                reply.update(error="Unavailable", message=f"the command failed: "
                                                          f"{type(exc).__name__}")
            with contextlib.suppress(RedisError, OSError):
                await self.redis.publish(self._reply_channel(request["reply"]),
                                         json.dumps(reply))

    # -- the router's state and the bus -----------------------------------------------

    def version(self, counter: int) -> int:
        """A version that grows across leaders: the term, then the leader's own count."""
        return self.term * 1_000_000_000 + counter

    async def publish_router(self, version: int, state: Mapping[str, Any] | None,
                             events: list[dict[str, Any]]) -> None:
        """Tell the followers what the router decided, with its state when given (kept
        for nodes that join later)."""
        payload = json.dumps({"n": self.node_id, "r": {"v": version, "s": state, "e": events}})
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                if state is not None:
                    pipe.set(self._state_key, payload)
                pipe.publish(self.bus.channel, payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.bus.lost += 1
            log.warning("cluster: router state not published", extra={
                "error": type(exc).__name__})

    async def _listen(self) -> None:
        while not self._closing:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.bus.channel, self._reply_channel(self.node_id))
                self._subscribed.set()
                stored = await self.redis.get(self._state_key)
                if stored:
                    await self._on_message(stored, catch_up=True)
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if message is not None and message["type"] == "message":
                        await self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("cluster: lost Redis; listening again",
                            extra={"error": type(exc).__name__})
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _on_message(self, raw: str | bytes, *, catch_up: bool = False) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("cluster: unreadable message ignored")
            return
        if "id" in message:  # a reply to one of our commands
            future = self._pending.get(message["id"])
            if future is not None and not future.done():
                future.set_result(message)
            return
        if message.get("n") == self.node_id:
            return
        assert self._member is not None
        if "r" in message:
            r = message["r"]
            events = [] if catch_up else [e for e in map(_decode, r["e"]) if e is not None]
            await self._member.router_changed(int(r["v"]), r["s"], events)
        elif "e" in message:
            event = _decode(message["e"])
            if event is not None:
                await self.bus.dispatch_remote(event)


def _decode(data: Mapping[str, Any]) -> Any:
    try:
        return decode_event(data)
    except (KeyError, TypeError, ValueError):
        log.warning("cluster: unknown event ignored", extra={"event": data.get("type")})
        return None


def _error(reply: Mapping[str, Any]) -> Exception:
    """The leader's refusal, raised again on the follower as the same kind of error."""
    name, message = reply["error"], reply.get("message", "")
    if name == "NotFound":
        return errors.NotFound(reply.get("kind", "thing"), reply.get("key", ""))
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and cls in (errors.Conflict, errors.Forbidden, errors.Unavailable):
        return cls(message)
    return Unavailable(message)


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
