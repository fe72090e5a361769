"""Domain events and the event bus.

Every step of a contact is an event; the console, the supervisor wall, metrics and
alerts subscribe instead of polling. The in-process bus is the default; a Redis-backed
bus with the same interface serves several app nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from routing.router import RouterEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Base of the core's own events (the router's events are published as they are)."""


@dataclass(frozen=True, slots=True)
class MessageStored(DomainEvent):
    message_id: str
    conversation_id: str
    case_id: str
    citizen_id: str
    channel: str
    direction: str
    author: str
    sequence: int
    body: str
    author_name: str | None = None
    internal: bool = False
    #: The rest of the stored row, so that a subscriber can show the message without
    #: reading it back (the chat widget's frame): when it was stored, the provider's id of
    #: an inbound message, the message's `extra`. None only from older publishers.
    created_at: datetime | None = None
    provider_message_id: str | None = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ConversationChanged(DomainEvent):
    conversation_id: str
    channel: str
    status: str
    agent_id: str | None = None
    queue_id: str | None = None


@dataclass(frozen=True, slots=True)
class CaseChanged(DomainEvent):
    case_id: str
    number: str
    citizen_id: str
    status: str
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TypingChanged(DomainEvent):
    """Someone started or stopped typing in a conversation (`author` is "citizen" or
    "agent"; `name` is the agent's display name shown to the citizen)."""

    conversation_id: str
    author: str
    active: bool
    name: str | None = None
    channel: str = "chat"


@dataclass(frozen=True, slots=True)
class CitizenChanged(DomainEvent):
    """A citizen's profile changed ("tell once"): the departments interested in each
    changed field are named, so their adapters can pass it on."""

    citizen_id: str
    fields: tuple[str, ...]
    departments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CitizensMerged(DomainEvent):
    merge_id: str
    source_id: str
    target_id: str
    undone: bool = False


@dataclass(frozen=True, slots=True)
class ConsultationRequested(DomainEvent):
    """An agent asked a department about a case. Only what the question needs travels:
    the case number, category, the question; never the citizen's identifiers."""

    consultation_id: str
    case_id: str
    case_number: str
    category: str | None
    department: str
    question: str
    requested_by: str | None
    due_at: str


@dataclass(frozen=True, slots=True)
class ConsultationChanged(DomainEvent):
    """A department answered (a note on the case) or the consultation was closed."""

    consultation_id: str
    case_id: str
    status: str
    note: str | None = None
    author: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryFailed(DomainEvent):
    message_id: str
    conversation_id: str
    channel: str
    error: str
    attempts: int
    final: bool


@dataclass(frozen=True, slots=True)
class TaskCreated(DomainEvent):
    task_id: str
    conversation_id: str
    case_id: str
    channel: str
    reason: str


Event = DomainEvent | RouterEvent
Handler = Callable[[Any], Awaitable[None]]


class EventBus(Protocol):
    """Publish events to every subscriber (on this node and, for Redis, on all nodes).

    A handler subscribed with `origin_only=True` sees only the events published on its
    own node (for the router's events: on the node running the router). Side effects that
    must happen once in a cluster (an email, a Slack post, a Twilio call) subscribe so;
    what only updates this node's sockets subscribes to everything.
    """

    def subscribe(self, handler: Handler, *types: type,
                  origin_only: bool = False) -> Callable[[], None]: ...

    async def publish(self, event: Any) -> None: ...

    async def publish_local(self, event: Any) -> None: ...

    def stream(self, *types: type, maxsize: int = 1000) -> AsyncIterator[Any]: ...


class InProcessBus:
    """The default bus: handlers are awaited in order of subscription; a failing handler
    is logged and does not stop the others."""

    def __init__(self) -> None:
        self._handlers: list[tuple[tuple[type, ...], Handler, bool]] = []

    def subscribe(self, handler: Handler, *types: type,
                  origin_only: bool = False) -> Callable[[], None]:
        """Call `handler` for every event that is an instance of one of `types` (all if
        none); with `origin_only`, only for events published on this node."""
        entry = (types or (object,), handler, origin_only)
        self._handlers.append(entry)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.remove(entry)

        return unsubscribe

    async def publish(self, event: Any) -> None:
        """Deliver `event` to the subscribers interested in it."""
        await self._dispatch(event, remote=False)

    async def publish_local(self, event: Any) -> None:
        """Deliver `event` on this node only (the same as `publish` without a cluster)."""
        await self._dispatch(event, remote=False)

    async def dispatch_remote(self, event: Any) -> None:
        """Deliver an event another node published (origin-only handlers skip it)."""
        await self._dispatch(event, remote=True)

    async def _dispatch(self, event: Any, *, remote: bool) -> None:
        for types, handler, origin_only in list(self._handlers):
            if isinstance(event, types) and not (remote and origin_only):
                try:
                    await handler(event)
                except Exception:
                    log.exception("event handler failed", extra={"event": type(event).__name__})

    async def stream(self, *types: type, maxsize: int = 1000) -> AsyncIterator[Any]:
        """Iterate over events as they come; a consumer too slow for `maxsize` events
        loses the oldest rather than slowing everyone down."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

        async def put(event: Any) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

        unsubscribe = self.subscribe(put, *types)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()
