"""Live updates for staff: one WebSocket per open console or wall, fed by the event bus.

Nothing is polled. Each event is sent only to the staff who may see it: offers and task
changes to the agent concerned, message bodies to the agent working on the conversation
and to supervisors monitoring it, queue and agent figures to supervisors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from agent_console.api_console import WORKING, task_conversations
from routing import (
    Actor,
    CaseChanged,
    ContactCenter,
    DeliveryFailed,
    MessageStored,
    NotFound,
    PresenceChanged,
    StaffIdentity,
    TaskAccepted,
    TaskCreated,
    TaskFinished,
    TaskOffered,
    TaskStatus,
    queue_views,
)

log = logging.getLogger(__name__)
#: How long supervisors' figures may lag behind a burst of events.
WALL_DELAY = 0.3
#: At most this often (seconds), a message on a conversation with no known task makes
#: the hub look for held tasks it has not seen accepted (a node that started late).
RESCAN_EVERY = 1.0


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    staff: StaffIdentity
    monitoring: set[str] = field(default_factory=set)

    @property
    def supervisor(self) -> bool:
        return self.staff.has_role("supervisor")


class LiveHub:
    """Every open staff WebSocket of this node, and the bus subscription feeding them."""

    def __init__(self, center: ContactCenter) -> None:
        self.center = center
        self.connections: set[Connection] = set()
        # The same sockets by agent, and the supervisors' (who gets what is a look-up,
        # not a scan of every socket).
        self._by_agent: dict[str, set[Connection]] = {}
        self._supervisors: set[Connection] = set()
        self._names: dict[str, str] = {}
        self._wall_pending: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        # Who works on a conversation comes from the router's task state (`center.router`,
        # a replica on a follower node) and the tasks' conversations: no query per message.
        self._tasks = task_conversations(center)
        self._unresolved: set[str] = set()  # tasks seen accepted, conversation not known
        # Task → the agent whose acceptance this node has seen: a follower's replica may
        # show the task still reserved for a moment after the event arrived.
        self._accepted: dict[str, str] = {}
        # Task → the agent who held it until it was moved away from them (a supervisor's
        # reassignment): they are told too, so that their desk lets it go.
        self._released: dict[str, str] = {}
        self._rescanned = 0.0
        self._unsubscribe: list[Callable[[], None]] = []

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        # Straight on the bus, not through the (lossy) stream: the task index must not miss
        # an acceptance. These handlers do not wait on anything.
        bus = self.center.bus
        self._unsubscribe = [bus.subscribe(self._learn, TaskCreated),
                             bus.subscribe(self._track)]
        self._rescan(force=True)
        ready = asyncio.Event()
        self._pump = asyncio.create_task(self._run(ready), name="console-live")
        await ready.wait()

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        for conn in list(self.connections):
            await conn.ws.close(code=1001, message=b"server shutdown")
        for task in (self._pump, self._wall_pending):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self, ready: asyncio.Event) -> None:
        stream = self.center.bus.stream()
        # The subscription starts when the stream is first awaited: run one step so that
        # nothing published after start() is missed.
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        ready.set()
        event = await first
        while True:
            try:
                await self.dispatch(event)
            except Exception:
                log.exception("live update failed", extra={"event": type(event).__name__})
            event = await stream.__anext__()

    # -- connections --------------------------------------------------------------------

    async def serve(self, request: web.Request, staff: StaffIdentity) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        conn = Connection(ws, staff)
        self._add(conn)
        try:
            await self._send(conn, {"type": "hello", "agent_id": staff.agent_id})
            if conn.supervisor:
                await self._send(conn, await self.wall())
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._command(conn, msg.json())
        except (ValueError, TypeError, NotFound):
            await ws.close(code=1003, message=b"send JSON objects naming known conversations")
        finally:
            self._drop(conn)
        return ws

    def _add(self, conn: Connection) -> None:
        self.connections.add(conn)
        self._by_agent.setdefault(conn.staff.agent_id, set()).add(conn)
        if conn.supervisor:
            self._supervisors.add(conn)

    def _drop(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._supervisors.discard(conn)
        mine = self._by_agent.get(conn.staff.agent_id)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self._by_agent[conn.staff.agent_id]

    async def disconnect(self, *, agent_id: str, session_id: str | None = None) -> None:
        """Close the sockets of a session (or all of an agent's) when they sign out."""
        for conn in list(self._by_agent.get(agent_id, ())):
            if session_id in (None, conn.staff.session_id):
                self._drop(conn)
                await conn.ws.close(code=4401, message=b"signed out")

    async def _command(self, conn: Connection, data: Any) -> None:
        """Supervisors choose which conversations they monitor silently."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if "monitor" in data and conn.supervisor and isinstance(data["monitor"], str):
            conversation = await self.center.conversation(data["monitor"][:32])
            conn.monitoring = {conversation.id}
            await self.center.audit(Actor(conn.staff.agent_id, "supervisor"), "monitor",
                                    "conversation", conversation.id, conversation.citizen_id)
        elif "unmonitor" in data:
            conn.monitoring.clear()

    # -- events -------------------------------------------------------------------------

    async def dispatch(self, event: Any) -> None:
        """Send `event` to those who may see it."""
        if isinstance(event, TaskOffered):
            await self._to_agent(event.agent_id, {
                "type": "offer", "task_id": event.task_id, "queue": event.queue,
                "expires_at": event.expires_at,
                "server_time": self.center.clock.now().timestamp()})
        elif isinstance(event, PresenceChanged):
            await self._to_agent(event.agent_id, {
                "type": "presence", "presence": str(event.presence), "reason": event.reason})
        elif isinstance(event, MessageStored):
            await self._message(event)
        elif isinstance(event, DeliveryFailed):
            await self._delivery_failed(event)
        elif isinstance(event, CaseChanged):
            await self._to_supervisors({"type": "case", "case_id": event.case_id})
        elif _is_router_event(event):
            # Accepted, rejected, missed, withdrawn, moved, wrapping, finished.
            await self._to_agent(event.agent_id, {
                "type": "task", "event": type(event).__name__, "task_id": event.task_id})
        if _is_router_event(event):
            released = self._released.pop(event.task_id, None) if event.task_id else None
            if released is not None and released != event.agent_id:
                await self._to_agent(released, {"type": "task", "event": "TaskReleased",
                                                "task_id": event.task_id})
            self._wall_soon()

    # -- who works on a conversation (the router's memory, no query) ---------------------

    async def _learn(self, event: TaskCreated) -> None:
        self._tasks.add(event.task_id, event.conversation_id)

    async def _track(self, event: Any) -> None:
        """Every router event about a task (and nothing else)."""
        if not _is_router_event(event) or not event.task_id:
            return
        task_id = event.task_id
        if isinstance(event, TaskFinished):
            self._tasks.forget(task_id)
            self._accepted.pop(task_id, None)
            self._unresolved.discard(task_id)
        elif isinstance(event, TaskAccepted):
            if event.agent_id:
                self._accepted[task_id] = event.agent_id
            if self._tasks.of(task_id) is None:
                self._unresolved.add(task_id)
        else:  # offered, rejected, missed, withdrawn, moved, wrapping: not (newly) accepted
            previous = self._accepted.pop(task_id, None)
            if previous is not None and previous != event.agent_id:
                self._released[task_id] = previous

    def _rescan(self, *, force: bool = False) -> None:
        """Note every task an agent holds that the index does not know (at start, and
        for a node that started after those tasks were accepted)."""
        now = time.monotonic()
        if not force and now - self._rescanned < RESCAN_EVERY:
            return
        self._rescanned = now
        router = self.center.router
        for view in router.agents():
            for task_id in view.held:
                if self._tasks.of(task_id) is None:
                    self._unresolved.add(task_id)

    async def holders(self, conversation_id: str) -> set[str]:
        """The agents working on a conversation now (assigned or wrapping)."""
        if not self._tasks.on(conversation_id):
            self._rescan()
        if self._unresolved:
            pending, self._unresolved = self._unresolved, set()
            await self._tasks.resolve(pending)
        router = self.center.router
        holders: set[str] = set()
        for task_id in list(self._tasks.on(conversation_id)):
            if not router.has_task(task_id):
                continue
            view = router.task(task_id)
            if view.agent_id and (view.status in WORKING or (
                    view.status is TaskStatus.RESERVED
                    and self._accepted.get(task_id) == view.agent_id)):
                holders.add(view.agent_id)
        return holders

    async def _message(self, event: MessageStored) -> None:
        payload = {"type": "message", "conversation_id": event.conversation_id,
                   "message_id": event.message_id, "seq": event.sequence,
                   "direction": event.direction, "author": event.author,
                   "author_name": event.author_name, "internal": event.internal,
                   "body": event.body}
        holders = await self.holders(event.conversation_id)
        sent: set[Connection] = set()
        for agent_id in holders:
            for conn in list(self._by_agent.get(agent_id, ())):
                sent.add(conn)
                await self._send(conn, payload)
        for conn in list(self._supervisors):
            if conn in sent:
                continue
            if event.conversation_id in conn.monitoring:
                await self._send(conn, payload)
            else:
                # The wall learns that a conversation moved, not what was said.
                await self._send(conn, {"type": "activity",
                                        "conversation_id": event.conversation_id})

    async def _delivery_failed(self, event: DeliveryFailed) -> None:
        """A reply could not be delivered (yet): tell whoever works on or monitors the
        conversation, so the citizen is not left believing they were answered."""
        payload = {"type": "delivery_failed", "conversation_id": event.conversation_id,
                   "message_id": event.message_id, "channel": event.channel,
                   "attempts": event.attempts, "final": event.final,
                   "error": event.error[:200]}
        holders = await self.holders(event.conversation_id)
        for conn in list(self.connections):
            if conn.staff.agent_id in holders or (
                    conn.supervisor and event.conversation_id in conn.monitoring):
                await self._send(conn, payload)

    async def _to_agent(self, agent_id: str | None, payload: dict[str, Any]) -> None:
        if agent_id is None:
            return
        for conn in list(self._by_agent.get(agent_id, ())):
            await self._send(conn, payload)

    async def _to_supervisors(self, payload: dict[str, Any]) -> None:
        for conn in list(self._supervisors):
            await self._send(conn, payload)

    def _wall_soon(self) -> None:
        if not self._supervisors:
            return
        if self._wall_pending is None or self._wall_pending.done():
            self._wall_pending = asyncio.create_task(self._send_wall())

    async def _send_wall(self) -> None:
        await asyncio.sleep(WALL_DELAY)
        await self._to_supervisors(await self.wall())

    async def wall(self) -> dict[str, Any]:
        """Queue figures and agents' states: what the supervisors' wall shows."""
        center = self.center
        now = center.clock.now().timestamp()
        agents: list[dict[str, Any]] = []
        for view in center.router.agents():
            if view.id not in self._names:
                with contextlib.suppress(Exception):
                    self._names[view.id] = (await center.agent_record(view.id)).display_name
            load: dict[str, int] = {}
            for channel in view.held.values():
                load[str(channel)] = load.get(str(channel), 0) + 1
            agents.append({
                "id": view.id, "name": self._names.get(view.id, view.id),
                "presence": str(view.presence), "reason": view.presence_reason,
                "activity": view.activity,
                "seconds_in_state": max(0.0, round(now - view.presence_since, 1)),
                "load": load})
        agents.sort(key=lambda a: str(a["name"]))
        return {"type": "wall", "server_time": now, "queues": queue_views(center),
                "agents": agents}

    async def _send(self, conn: Connection, payload: dict[str, Any]) -> None:
        if conn.ws.closed:
            self._drop(conn)
            return
        try:
            await conn.ws.send_json(payload)
        except (ConnectionError, RuntimeError):
            self._drop(conn)


def _is_router_event(event: Any) -> bool:
    return hasattr(event, "at") and hasattr(event, "agent_id") and hasattr(event, "task_id")
