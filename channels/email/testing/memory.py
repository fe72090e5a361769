"""In-memory implementations of the channel's seams, for tests and local experiments."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from channels.email.model import Envelope, ParsedEmail
from channels.email.ports import MailboxState


class SinkUnavailable(RuntimeError):
    """Raised by `MemorySink` when told to fail, like a database that is down."""


@dataclass
class MemorySink:
    """Stores messages in a dict keyed by `dedupe_key` (idempotent like the real core)."""

    stored: dict[str, tuple[ParsedEmail, Envelope]] = field(default_factory=dict)
    calls: int = 0
    fail: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def accept(self, message: ParsedEmail, envelope: Envelope) -> None:
        """Record the message once per dedupe key; raise if `fail` is set."""
        self.calls += 1
        if self.fail:
            raise SinkUnavailable("storage is down (test)")
        self.stored.setdefault(message.dedupe_key, (message, envelope))
        self.arrived.set()

    @property
    def messages(self) -> list[ParsedEmail]:
        """Stored messages in arrival order."""
        return [message for message, _ in self.stored.values()]


@dataclass
class MemoryImapState:
    """An `ImapStateStore` in a dict; share one instance to simulate a restart."""

    positions: dict[tuple[str, str], MailboxState] = field(default_factory=dict)

    async def load(self, account: str, mailbox: str) -> MailboxState | None:
        """Return the saved position or None."""
        return self.positions.get((account, mailbox))

    async def save(self, account: str, mailbox: str, state: MailboxState) -> None:
        """Remember the position."""
        self.positions[(account, mailbox)] = state
