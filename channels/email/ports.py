"""What the email channel needs from the core, as Protocols (the core implements them).

The channel imports nothing from `routing` or `onestop`; `onestop/` wires real
implementations in. `channels.email.testing.memory` has in-memory ones for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from channels.email.model import Envelope, ParsedEmail


@runtime_checkable
class EmailSink(Protocol):
    """The inbound seam: where every received message goes.

    Contract:
    - `accept` returns only after the message is stored durably; SMTP answers 250 and the
      IMAP poller records the UID only after it returns.
    - It is idempotent on `message.dedupe_key` (the Message-ID, or a hash of the raw bytes
      when there is none): SMTP senders retry and IMAP delivery is at-least-once, so the same
      message may arrive more than once and must be stored once.
    - Raising means "not stored": SMTP answers 451 (the sender retries), IMAP retries later.
    """

    async def accept(self, message: ParsedEmail, envelope: Envelope) -> None:
        """Store `message` durably (idempotently), then return."""
        ...


@dataclass(frozen=True, slots=True)
class MailboxState:
    """How far the poller has read one mailbox: UIDs are only comparable within a UIDVALIDITY."""

    uidvalidity: int
    last_uid: int


@runtime_checkable
class ImapStateStore(Protocol):
    """Durable per-mailbox position of the IMAP poller (a row per account+mailbox)."""

    async def load(self, account: str, mailbox: str) -> MailboxState | None:
        """Return the saved position, or None the first time this mailbox is polled."""
        ...

    async def save(self, account: str, mailbox: str, state: MailboxState) -> None:
        """Persist the position durably before returning."""
        ...
