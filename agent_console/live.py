"""Live updates for staff: one WebSocket per open console or wall, fed by the event bus.

Nothing is polled. Each event is sent only to the staff who may see it: offers and task
changes to the agent concerned, message bodies to the agent working on the conversation
and to supervisors monitoring it, queue and agent figures to supervisors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from agent_console.api_console import agents_on
from routing import (
    Actor,
    CaseChanged,
    ContactCenter,
    DeliveryFailed,
    MessageStored,
    NotFound,
    PresenceChanged,
    StaffIdentity,
    TaskOffered,
    queue_views,
)

log = logging.getLogger(__name__)
#: How long supervisors' figures may lag behind a burst of events.
WALL_DELAY = 0.3


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
        self._names: dict[str, str] = {}
        self._wall_pending: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        ready = asyncio.Event()
        self._pump = asyncio.create_task(self._run(ready), name="console-live")
        await ready.wait()

    async def stop(self) -> None:
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
        self.connections.add(conn)
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
            self.connections.discard(conn)
        return ws

    async def disconnect(self, *, agent_id: str, session_id: str | None = None) -> None:
        """Close the sockets of a session (or all of an agent's) when they sign out."""
        for conn in list(self.connections):
            if conn.staff.agent_id == agent_id and session_id in (None, conn.staff.session_id):
                self.connections.discard(conn)
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
            self._wall_soon()

    async def _message(self, event: MessageStored) -> None:
        payload = {"type": "message", "conversation_id": event.conversation_id,
                   "message_id": event.message_id, "seq": event.sequence,
                   "direction": event.direction, "author": event.author,
                   "author_name": event.author_name, "internal": event.internal,
                   "body": event.body}
        holders = await agents_on(self.center, event.conversation_id)
        for conn in list(self.connections):
            if conn.staff.agent_id in holders or (
                    conn.supervisor and event.conversation_id in conn.monitoring):
                await self._send(conn, payload)
            elif conn.supervisor:
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
        holders = await agents_on(self.center, event.conversation_id)
        for conn in list(self.connections):
            if conn.staff.agent_id in holders or (
                    conn.supervisor and event.conversation_id in conn.monitoring):
                await self._send(conn, payload)

    async def _to_agent(self, agent_id: str | None, payload: dict[str, Any]) -> None:
        for conn in list(self.connections):
            if agent_id is not None and conn.staff.agent_id == agent_id:
                await self._send(conn, payload)

    async def _to_supervisors(self, payload: dict[str, Any]) -> None:
        for conn in list(self.connections):
            if conn.supervisor:
                await self._send(conn, payload)

    def _wall_soon(self) -> None:
        if not any(c.supervisor for c in self.connections):
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
            self.connections.discard(conn)
            return
        try:
            await conn.ws.send_json(payload)
        except (ConnectionError, RuntimeError):
            self.connections.discard(conn)


def _is_router_event(event: Any) -> bool:
    return hasattr(event, "at") and hasattr(event, "agent_id") and hasattr(event, "task_id")
