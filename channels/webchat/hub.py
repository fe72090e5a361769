"""The live chat hub: citizen sockets, the chat `ChannelAdapter`, and the bus listeners.

Every message of a conversation reaches the citizen in sequence order, and each socket
remembers the last sequence it sent (`sent_seq`). A stored message arrives with its
`MessageStored` event, which carries the whole row: when its sequence is the next one
the socket expects, the writer sends it as it is, without reading the store. On a gap
(an event that overtook an earlier one, a message stored before the socket attached,
a resume, an event from an older node) the writer *pumps*: it reads the stored messages
after `sent_seq` and sends them in order. So a message can neither be lost (the store is
the truth; a reconnect resumes from the client's last sequence) nor sent twice on one
socket (anything at or below `sent_seq` is dropped).

Bus handlers never wait on the network: they put frames on each socket's own outbox,
which a writer task drains, so a slow phone cannot slow down the core.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from channels.webchat.protocol import (
    Ack,
    End,
    FrameError,
    Handoff,
    Limits,
    Offline,
    Ping,
    Rating,
    Resume,
    Send,
    Transcript,
    Typing,
)
from channels.webchat.texts import LABELS, say
from routing import (
    SYSTEM,
    Author,
    Channel,
    ContactCenter,
    Conversation,
    ConversationChanged,
    Direction,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    InvalidIdentity,
    Message,
    MessageStored,
    OfferMissed,
    OutboundMessage,
    PresenceChanged,
    Task,
    TaskAccepted,
    TaskCreated,
    TaskFinished,
    TaskMoved,
    TaskOffered,
    TaskQueued,
    TokenBuckets,
    TypingChanged,
    mask,
    normalise,
)

log = logging.getLogger(__name__)

_PUMP = object()  # outbox marker: "send the stored messages this socket does not have yet"


class _Stored:
    """Outbox item: message `seq` of a conversation is stored. With `event` (a message
    the widget shows) the writer sends it when it is the next one the socket expects;
    `internal` (a note: never shown) only moves the socket past its sequence; neither
    (an adapter's delivery, the citizen's own message after `ingest`) makes sure the
    socket has sent up to `seq`. One object is shared by every socket of the
    conversation, so the frame is built once."""

    __slots__ = ("conversation_id", "event", "frame", "internal", "seq")

    def __init__(self, conversation_id: str, seq: int, event: MessageStored | None = None,
                 *, internal: bool = False) -> None:
        self.conversation_id, self.seq, self.event = conversation_id, seq, event
        self.internal = internal
        self.frame: dict[str, Any] | None = None
WAITING = ("pending", "reserved")
ROUTER_EVENTS = (TaskQueued, TaskOffered, TaskAccepted, TaskFinished, TaskMoved, OfferMissed,
                 PresenceChanged)


@dataclass(eq=False)
class Connection:
    """One citizen socket (a visitor may have several: tabs, phone and laptop)."""

    ws: web.WebSocketResponse
    ip: str
    visitor_id: str = ""
    session: str | None = None
    key: str | None = None
    conversation_id: str | None = None
    language: str = "th"
    sent_seq: int = 0
    acked_seq: int = 0
    last_queue: tuple[Any, ...] | None = None
    outbox: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(1000))
    closing: asyncio.Future[Any] | None = None

    def push(self, item: Any) -> None:
        """Queue a frame (or a pump) for the writer; a socket that stopped reading is closed."""
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("webchat socket too slow; closing it")
            self.closing = asyncio.ensure_future(self.ws.close(code=1008, message=b"too slow"))


class WebChat:
    """The chat channel: `ChannelAdapter` for `Channel.CHAT` and the citizen sockets."""

    channel = Channel.CHAT
    #: `deliver` only queues frames for this node's sockets and cannot fail: the core
    #: marks chat replies sent when it stores them (the store is what a socket reads on
    #: a gap or a resume).
    local_delivery = True

    def __init__(self, center: ContactCenter, *, limits: Limits | None = None,
                 queue_id: str = "general") -> None:
        self.center = center
        self.limits = limits or Limits()
        self.queue_id = queue_id
        self._sockets: dict[str, set[Connection]] = defaultdict(set)
        self._all: set[Connection] = set()
        self._waiting: dict[str, str] = {}  # conversation id → task id (waiting for a person)
        self._task_conversation: dict[str, str] = {}
        self._agent_names: dict[str, str] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._last_availability: dict[str, Any] | None = None
        self._refresh_pending: asyncio.TimerHandle | None = None
        self.visitor_buckets = TokenBuckets(self.limits.visitor_burst,
                                            self.limits.visitor_per_second)
        self.ip_buckets = TokenBuckets(self.limits.ip_burst, self.limits.ip_per_second)

    # -- life cycle -----------------------------------------------------------------------

    def subscribe(self) -> None:
        """Listen on the center's bus (called when the app starts)."""
        bus = self.center.bus
        self._unsubscribe = [
            bus.subscribe(self._on_message_stored, MessageStored),
            bus.subscribe(self._on_task_created, TaskCreated),
            bus.subscribe(self._on_router_event, *ROUTER_EVENTS),
            bus.subscribe(self._on_conversation_changed, ConversationChanged),
            bus.subscribe(self._on_typing, TypingChanged),
        ]

    async def close(self) -> None:
        """Stop listening, close every socket (they reconnect to another node) and wait."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._refresh_pending is not None:
            self._refresh_pending.cancel()
        for conn in list(self._all):
            await conn.ws.close(code=1001, message=b"server going away")
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def refresh_loop(self, every: float) -> None:
        """Push queue positions and availability every `every` seconds (estimates drift)."""
        while True:
            await asyncio.sleep(every)
            try:
                self.refresh_queue_positions()
                self.refresh_availability()
            except Exception:
                log.exception("webchat refresh failed")

    # -- the ChannelAdapter seam ----------------------------------------------------------

    async def deliver(self, message: OutboundMessage) -> str | None:
        """Push to the citizen's open sockets; with none open, the message waits in the
        store and reaches them on `resume`. Returns the message id. (The message's
        `MessageStored` normally reached the sockets first; then this costs nothing.)"""
        sockets = self._sockets.get(message.conversation_id, ())
        if sockets:
            item: Any = (_Stored(message.conversation_id, message.sequence)
                         if message.sequence > 0 else _PUMP)
            for conn in sockets:
                conn.push(item)
        return message.message_id

    # -- agent side -----------------------------------------------------------------------

    async def agent_typing(self, conversation_id: str, active: bool,
                           name: str | None = None) -> None:
        """For the console: show (or hide) "the officer is typing" to the citizen."""
        await self.center.bus.publish(TypingChanged(conversation_id, "agent", active, name))

    # -- sockets --------------------------------------------------------------------------

    def open_sockets(self) -> int:
        """How many citizen sockets are open on this node (for metrics)."""
        return sum(len(conns) for conns in self._sockets.values())

    def connected(self, ws: web.WebSocketResponse, ip: str) -> Connection:
        conn = Connection(ws, ip)
        self._all.add(conn)
        return conn

    def disconnected(self, conn: Connection) -> None:
        self._all.discard(conn)
        if conn.conversation_id:
            self._detach(conn)

    async def writer(self, conn: Connection) -> None:
        """Drain one socket's outbox in order (runs for the socket's lifetime)."""
        while not conn.ws.closed:
            item = await conn.outbox.get()
            try:
                if item is _PUMP:
                    await self._pump(conn)
                elif isinstance(item, _Stored):
                    await self._send_stored(conn, item)
                else:
                    await conn.ws.send_json(item)
            except (ConnectionResetError, RuntimeError):
                return  # the socket closed under us; the client resumes elsewhere

    async def handle(self, conn: Connection, frame: Any) -> None:
        """Act on one validated client frame; refusals raise `FrameError`."""
        if isinstance(frame, Ping):
            conn.push({"type": "pong"})
            return
        if isinstance(frame, Resume):
            await self._resume(conn, frame)
            return
        if conn.key is None:
            raise FrameError("resume_first", "send a resume frame first")
        handler = self._handlers.get(type(frame))
        assert handler is not None
        await handler(self, conn, frame)

    # -- frames ---------------------------------------------------------------------------

    async def _resume(self, conn: Connection, frame: Resume) -> None:
        if conn.conversation_id:
            self._detach(conn)
        conn.visitor_id = visitor_identity(frame.visitor)
        conn.session = frame.conversation or secrets.token_urlsafe(12)
        conn.key = f"{conn.visitor_id[3:23]}.{conn.session}"
        conn.language = frame.language
        conn.conversation_id, conn.last_queue = None, None
        conv = await self._conversation_by_key(conn.key)
        last_seq = conv.message_count if conv else 0
        reset = frame.after_seq > last_seq
        conn.sent_seq = conn.acked_seq = 0 if reset else frame.after_seq
        status, agent_name = "new", None
        if conv is not None:
            status = conv.status
            if conv.agent_id and conv.status == "agent":
                agent_name = await self._agent_name(conv.agent_id)
            await self._remember_open_task(conv.id)
            self._attach(conn, conv.id)
        conn.push({
            "type": "ready", "conversation": conn.session, "after_seq": conn.sent_seq,
            "last_seq": last_seq, "reset": reset, "status": status, "agent_name": agent_name,
            "availability": self.availability(),
            "limits": {"max_chars": self.limits.max_chars},
        })
        conn.push(_PUMP)
        if conv is not None:
            self._push_queue(conn, force=True)

    async def _send(self, conn: Connection, frame: Send) -> None:
        text = frame.text.strip()
        if not text:
            raise FrameError("empty_message", "the message is empty", client_id=frame.client_id)
        self._rate_limit(conn, frame.client_id)
        result = await self.center.ingest(self._inbound(
            conn, frame.client_id, text, metadata={"payload": frame.payload}
            if frame.payload else {}))
        attached = conn.conversation_id is None
        await self._check_owner(conn, result.conversation_id, frame.client_id)
        # The message itself went out with its event (a socket attached by this very
        # message, or a redelivery, reads it from the store, up to this message); then the
        # acknowledgement; then, for a socket this message attached, whatever was stored
        # before it was attached (the bot's answer may already be there).
        conn.push(_Stored(result.conversation_id, result.sequence))
        conn.push({"type": "ack", "client_id": frame.client_id, "seq": result.sequence,
                   "duplicate": result.duplicate})
        if attached:
            conn.push(_PUMP)

    async def _ack(self, conn: Connection, frame: Ack) -> None:
        conn.acked_seq = max(conn.acked_seq, min(frame.seq, conn.sent_seq))

    async def _typing(self, conn: Connection, frame: Typing) -> None:
        if conn.conversation_id:
            await self.center.bus.publish(TypingChanged(conn.conversation_id, "citizen",
                                                        frame.active))

    async def _handoff(self, conn: Connection, frame: Handoff) -> None:
        conversation_id = self._need_conversation(conn)
        await self.center.hand_to_people(conversation_id, reason="citizen_asked",
                                         context={"language": conn.language})

    async def _rating(self, conn: Connection, frame: Rating) -> None:
        conv = await self.center.conversation(self._need_conversation(conn))
        await self.center.update_case(conv.case_id, SYSTEM, csat=frame.score)
        conn.push({"type": "rated", "score": frame.score})

    async def _transcript(self, conn: Connection, frame: Transcript) -> None:
        conversation_id = self._need_conversation(conn)
        try:
            email = normalise(IdentityKind.EMAIL, frame.email)
        except InvalidIdentity as exc:
            raise FrameError("invalid_email", str(exc)) from None
        await self.center.send_message(
            conversation_id, say("transcript_requested", conn.language, email=email),
            author=Author.SYSTEM, internal=True,
            extra={"kind": "transcript_request", "email": email, "language": conn.language},
        )
        conn.push({"type": "transcript_requested", "email": mask(IdentityKind.EMAIL, email)})

    async def _offline(self, conn: Connection, frame: Offline) -> None:
        text = frame.text.strip()
        if not text:
            raise FrameError("empty_message", "the message is empty", client_id=frame.client_id)
        hints: list[IdentityHint] = []
        lines = [say("offline_form", conn.language)]
        name = " ".join(frame.name.split())
        if name:
            lines.append(f"{LABELS['name']}: {name}")
        for kind, value in ((IdentityKind.EMAIL, frame.email), (IdentityKind.PHONE, frame.phone)):
            if not value or not value.strip():
                continue
            try:
                normalised = normalise(kind, value)
            except InvalidIdentity as exc:
                raise FrameError(f"invalid_{kind}", str(exc), client_id=frame.client_id,
                                 field=str(kind)) from None
            hints.append(IdentityHint(kind, normalised))
            lines.append(f"{LABELS[str(kind)]}: {normalised}")
        if not hints:
            raise FrameError("contact_needed", "give an email address or a phone number",
                             client_id=frame.client_id)
        self._rate_limit(conn, frame.client_id)
        # The form is stored as a system-authored inbound message first: that opens the
        # conversation without asking the bot, so the task below is the only thing that
        # answers; the citizen's own words follow, authored by them (see README.md).
        form = await self.center.ingest(self._inbound(
            conn, f"{frame.client_id}:form", "\n".join(lines), author=Author.SYSTEM,
            hints=tuple(hints), metadata={"offline_form": True}))
        await self._check_owner(conn, form.conversation_id, frame.client_id)
        await self.center.hand_to_people(form.conversation_id, reason="offline_message",
                                         context={"language": conn.language})
        result = await self.center.ingest(self._inbound(conn, frame.client_id, text))
        conn.push(_PUMP)
        conn.push({"type": "offline_received", "client_id": frame.client_id,
                   "case_number": result.case_number, "seq": result.sequence})

    async def _end(self, conn: Connection, frame: End) -> None:
        conversation_id = self._need_conversation(conn)
        conv = await self.center.conversation(conversation_id)
        reason = "citizen_left" if conv.status == "queued" else "ended"
        await self.center.close_conversation(conversation_id, reason)

    _handlers: ClassVar[dict[type, Callable[[WebChat, Connection, Any], Awaitable[None]]]] = {
        Send: _send, Ack: _ack, Typing: _typing, Handoff: _handoff, Rating: _rating,
        Transcript: _transcript, Offline: _offline, End: _end,
    }

    # -- bus listeners --------------------------------------------------------------------

    async def _on_message_stored(self, event: MessageStored) -> None:
        if event.channel != Channel.CHAT:
            return
        sockets = self._sockets.get(event.conversation_id, ())
        if sockets:
            item = _Stored(event.conversation_id, event.sequence,
                           None if event.internal else event, internal=event.internal)
            for conn in sockets:
                conn.push(item)

    async def _on_task_created(self, event: TaskCreated) -> None:
        if event.channel != Channel.CHAT:
            return
        self._waiting[event.conversation_id] = event.task_id
        self._task_conversation[event.task_id] = event.conversation_id
        for conn in self._sockets.get(event.conversation_id, ()):
            conn.push({"type": "status", "status": "queued", "agent_name": None})

    async def _on_router_event(self, event: Any) -> None:
        if isinstance(event, TaskAccepted) and event.task_id and self.center.leading:
            # Said once, by the node that runs the router (every node sees the event).
            self._spawn(self._agent_joined(event.task_id, event.agent_id or ""))
        if isinstance(event, TaskFinished | TaskAccepted) and event.task_id:
            conversation_id = self._task_conversation.pop(event.task_id, None)
            if conversation_id and self._waiting.get(conversation_id) == event.task_id:
                del self._waiting[conversation_id]
        if isinstance(event, PresenceChanged):
            self.refresh_availability()
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        """Queue positions after a burst of routing events: once per 200 ms, not once per
        event (with hundreds waiting, every event would otherwise move every socket)."""
        if self._refresh_pending is None:
            self._refresh_pending = asyncio.get_running_loop().call_later(
                0.2, self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh_pending = None
        self.refresh_queue_positions()

    async def _on_conversation_changed(self, event: ConversationChanged) -> None:
        if event.channel == Channel.CHAT and event.status == "closed":
            for conn in self._sockets.get(event.conversation_id, ()):
                conn.push({"type": "status", "status": "closed", "agent_name": None})

    async def _on_typing(self, event: TypingChanged) -> None:
        if event.author != "agent":
            return
        for conn in self._sockets.get(event.conversation_id, ()):
            conn.push({"type": "typing", "who": "agent", "active": event.active,
                       "name": event.name})

    async def _agent_joined(self, task_id: str, agent_id: str) -> None:
        task = await self.center.task(task_id)
        if task.channel != Channel.CHAT:
            return
        name = await self._agent_name(agent_id)
        for conn in self._sockets.get(task.conversation_id, ()):
            conn.last_queue = None
            conn.push({"type": "queue", "position": None, "estimated_wait_seconds": None,
                       "state": "assigned"})
            conn.push({"type": "status", "status": "agent", "agent_name": name})
        conv = await self.center.conversation(task.conversation_id)
        done = await self.center.messages(task.conversation_id, after_seq=0,
                                          include_internal=False)
        if any((m.extra or {}).get("task_id") == task_id for m in done):
            return  # already announced (this event seen twice)
        await self.center.send_message(
            task.conversation_id, say("agent_joined", conv.language, name=name),
            author=Author.SYSTEM,
            extra={"event": "agent_joined", "agent_name": name, "task_id": task_id},
        )

    # -- queue position and availability --------------------------------------------------

    def refresh_queue_positions(self) -> None:
        for conversation_id in list(self._waiting):
            for conn in self._sockets.get(conversation_id, ()):
                self._push_queue(conn)

    def _push_queue(self, conn: Connection, *, force: bool = False) -> None:
        task_id = self._waiting.get(conn.conversation_id or "")
        if task_id is None:
            return
        position, wait = self.center.queue_position(task_id)
        router = self.center.router
        state = str(router.task(task_id).status) if router.has_task(task_id) else "pending"
        frame_key = (position, None if wait is None else round(wait), state)
        if frame_key == conn.last_queue and not force:
            return
        conn.last_queue = frame_key
        conn.push({"type": "queue", "position": position,
                   "estimated_wait_seconds": None if wait is None else round(wait),
                   "state": "offered" if state == "reserved" else "waiting"})

    def availability(self) -> dict[str, Any]:
        """Whether officers can chat now: the queue's business hours and who is available."""
        center = self.center
        queue = center.settings.queues.get(self.queue_id)
        hours = center.hours.get(queue.spec.hours) if queue else None
        open_now = bool(hours and hours.is_open(center.clock.now()))
        available = 0
        if queue is not None:
            snapshot = center.router.queue_snapshot(self.queue_id, center.clock.now().timestamp())
            available = snapshot.agents_available
        return {"open": open_now, "agents_available": available,
                "officers": open_now and available > 0}

    def refresh_availability(self) -> None:
        now = self.availability()
        if now == self._last_availability:
            return
        self._last_availability = now
        frame = {"type": "availability", **now}
        for conn in list(self._all):
            if conn.key is not None:
                conn.push(frame)

    # -- helpers --------------------------------------------------------------------------

    async def _pump(self, conn: Connection, upto: int | None = None) -> None:
        """Send the stored messages after the socket's `sent_seq` (up to `upto`)."""
        if conn.conversation_id is None:
            return
        for message in await self.center.messages(conn.conversation_id,
                                                  after_seq=conn.sent_seq,
                                                  include_internal=False):
            if upto is not None and message.seq > upto:
                break
            await conn.ws.send_json(await self.message_frame(message))
            conn.sent_seq = message.seq

    async def _send_stored(self, conn: Connection, item: _Stored) -> None:
        """Send a stored message from its event when it is the next one this socket
        expects; read the store only on a gap."""
        if item.conversation_id != conn.conversation_id or item.seq <= conn.sent_seq:
            return  # another conversation (the socket resumed elsewhere), or sent already
        if item.seq == conn.sent_seq + 1:
            if item.internal:
                conn.sent_seq = item.seq
                return
            frame = self._event_frame(item)
            if frame is not None:
                await conn.ws.send_json(frame)
                conn.sent_seq = item.seq
                return
        # A gap. An event's message and those before it; for a marker (an adapter's
        # delivery, the citizen's own message) only up to its message: later ones come
        # with their own events, or with the pump that attaching a socket always queues.
        await self._pump(conn, upto=None if item.event is not None else item.seq)

    def _event_frame(self, item: _Stored) -> dict[str, Any] | None:
        """The widget's frame for the message an event carries (None: read the store)."""
        if item.frame is None and item.event is not None:
            e = item.event
            if e.created_at is None or (e.author == Author.AGENT and not e.author_name):
                return None  # an older node's event, or a name only the store can give
            item.frame = _frame(e.sequence, e.message_id, e.author, e.direction, e.body,
                                e.author_name, e.created_at, e.provider_message_id, e.extra)
        return item.frame

    async def message_frame(self, m: Message) -> dict[str, Any]:
        """What the widget gets for one stored message (never internal notes)."""
        name = m.author_name
        if m.author == Author.AGENT and not name and m.author_id:
            name = await self._agent_name(m.author_id)
        return _frame(m.seq, m.id, m.author, m.direction, m.body, name, m.created_at,
                      m.provider_message_id, m.extra)

    def _inbound(self, conn: Connection, message_id: str, body: str, *,
                 author: Author = Author.CITIZEN, hints: tuple[IdentityHint, ...] = (),
                 metadata: dict[str, Any] | None = None) -> InboundMessage:
        assert conn.key is not None
        return InboundMessage(
            channel=Channel.CHAT, conversation_key=conn.key, message_id=message_id, body=body,
            identity_hints=(IdentityHint(IdentityKind.CHAT_VISITOR, conn.visitor_id), *hints),
            author=author, metadata={"source": "webchat", "ui_language": conn.language,
                                     **(metadata or {})},
        )

    def _rate_limit(self, conn: Connection, client_id: str) -> None:
        wait = max(self.visitor_buckets.take(conn.visitor_id), self.ip_buckets.take(conn.ip))
        if wait > 0:
            raise FrameError("rate_limited", "too many messages; wait a moment and try again",
                             client_id=client_id, retry_after=round(wait, 1))

    async def _check_owner(self, conn: Connection, conversation_id: str, client_id: str) -> None:
        """Attach the socket to the conversation it wrote to — only if it is its own (a
        client id reused from another conversation must not open that one)."""
        if conn.conversation_id is None:
            conv = await self._conversation_by_key(conn.key or "")
            if conv is not None:
                self._attach(conn, conv.id)
        if conn.conversation_id != conversation_id:
            raise FrameError("client_id_in_use", "this client_id belongs to another message",
                             client_id=client_id)

    def _need_conversation(self, conn: Connection) -> str:
        if conn.conversation_id is None:
            raise FrameError("no_conversation", "send a message first")
        return conn.conversation_id

    def _attach(self, conn: Connection, conversation_id: str) -> None:
        conn.conversation_id = conversation_id
        self._sockets[conversation_id].add(conn)

    def _detach(self, conn: Connection) -> None:
        sockets = self._sockets.get(conn.conversation_id or "")
        if sockets is not None:
            sockets.discard(conn)
            if not sockets:
                del self._sockets[conn.conversation_id or ""]

    async def _conversation_by_key(self, key: str) -> Conversation | None:
        rows, _ = await self.center.list_rows(
            Conversation, Conversation.channel == str(Channel.CHAT),
            Conversation.provider_key == key, limit=1)
        return rows[0] if rows else None

    async def _remember_open_task(self, conversation_id: str) -> None:
        rows, _ = await self.center.list_rows(
            Task, Task.conversation_id == conversation_id, Task.status.in_(WAITING), limit=1)
        if rows:
            self._waiting[conversation_id] = rows[0].id
            self._task_conversation[rows[0].id] = conversation_id

    async def _agent_name(self, agent_id: str) -> str:
        if agent_id not in self._agent_names:
            try:
                self._agent_names[agent_id] = (await self.center.agent_record(agent_id)
                                               ).display_name
            except Exception:
                return "เจ้าหน้าที่ / Officer"
        return self._agent_names[agent_id]

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("webchat background work failed", exc_info=t.exception())

        task.add_done_callback(done)


def _frame(seq: int, message_id: str, author: str, direction: str, body: str,
           author_name: str | None, created_at: datetime, provider_message_id: str | None,
           extra: dict[str, Any] | None) -> dict[str, Any]:
    extra = extra or {}
    frame: dict[str, Any] = {
        "type": "message", "seq": seq, "id": message_id, "author": author,
        "direction": direction, "text": body, "author_name": author_name,
        "created_at": created_at.astimezone(UTC).isoformat(),
    }
    if direction == Direction.INBOUND and provider_message_id:
        frame["client_id"] = provider_message_id
    buttons = extra.get("buttons")
    if isinstance(buttons, list) and buttons:
        frame["buttons"] = [
            {"title": str(b.get("title", ""))[:80], "payload": str(b.get("payload", ""))[:200]}
            for b in buttons if isinstance(b, dict)
        ]
    if extra.get("event"):
        frame["event"] = str(extra["event"])
    return frame


def visitor_identity(token: str) -> str:
    """The stored identity of a visitor: a hash, so that the token (the visitor's only
    credential, kept in their browser) is never stored or shown to staff."""
    return "wv_" + hashlib.sha256(token.encode()).hexdigest()[:40]


__all__ = ["Connection", "WebChat", "visitor_identity"]
