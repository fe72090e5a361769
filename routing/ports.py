"""The seams between the core and the rooms around it (implemented outside `routing`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from routing.domain import Channel, OutboundMessage


class ChannelAdapter(Protocol):
    """The outbound seam of an adapter: deliver one message over its provider.

    Returns the provider's id for the sent message (or None). Raises
    `DeliveryError` when the provider refused or could not be reached; the core retries.

    An adapter whose delivery is local and cannot fail (the web chat: its sockets read the
    store) may set a class attribute `local_delivery = True`: the core then stores a reply
    as sent, outbox entry included, in the transaction that stores it, and calls `deliver`
    once without claiming the entry (a citizen who reconnects reads the store).
    """

    channel: Channel

    async def deliver(self, message: OutboundMessage) -> str | None: ...


class DeliveryError(Exception):
    """The provider did not take the message. `permanent` stops the retries."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class BotTurn:
    """One citizen message the bot is asked to answer."""

    conversation_id: str
    citizen_id: str
    case_number: str
    channel: Channel
    text: str
    language: str
    verified: bool
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BotReply:
    """What the bot said, what it understood, and whether a person must take over."""

    messages: Sequence[str] = ()
    handoff: bool = False
    reason: str | None = None
    intent: str | None = None
    confidence: float | None = None
    intent_ranking: Sequence[Mapping[str, Any]] = ()
    entities: Sequence[Mapping[str, Any]] = ()
    language: str | None = None
    urgent: bool = False
    category: str | None = None
    buttons: Sequence[Mapping[str, str]] = ()
    understood: bool = True


class Bot(Protocol):
    """The bot as the core sees it. Raise `BotUnavailable` when it cannot answer."""

    async def reply(self, turn: BotTurn) -> BotReply: ...


class BotUnavailable(Exception):
    """The bot is down, slow or broken: the conversation goes to people."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)
