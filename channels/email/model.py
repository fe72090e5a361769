"""The shapes the email channel hands to the core: a parsed message and its envelope.

These are plain frozen dataclasses so that the core can store them however it likes; the
original bytes always travel with them (`ParsedEmail.raw`), so nothing a citizen sent is
lost even when our reading of it is incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

EmailKind = Literal["personal", "auto_reply", "bounce", "list"]
"""personal: a human wrote it; the rest must never get an automatic acknowledgement."""

Transport = Literal["smtp", "imap"]

PartRole = Literal["container", "body_text", "body_html", "attachment", "inline", "skipped"]


@dataclass(frozen=True, slots=True)
class EmailAddress:
    """One mailbox: decoded display name and the address as written (lower-cased domain)."""

    address: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment or inline image.

    `content` is None when the policy refused it (`rejected_reason` says why); its bytes are
    still inside `ParsedEmail.raw`.
    """

    filename: str
    content_type: str
    size: int
    content: bytes | None
    inline: bool = False
    content_id: str | None = None
    rejected_reason: str | None = None
    part_path: str = ""


@dataclass(frozen=True, slots=True)
class PartSummary:
    """One node of the MIME tree and what the parser did with it (so every part is counted)."""

    path: str
    content_type: str
    size: int
    role: PartRole
    note: str = ""


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """Everything the channel read from one message, plus the untouched original."""

    raw: bytes
    raw_size: int
    sha256: str
    message_id: str | None
    dedupe_key: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    thread_key: str
    case_number: str | None
    subject: str
    from_addr: EmailAddress | None
    to: tuple[EmailAddress, ...]
    cc: tuple[EmailAddress, ...]
    reply_to: tuple[EmailAddress, ...]
    date: datetime | None
    body_full: str
    body_text: str
    body_quoted: str
    html_only: bool
    attachments: tuple[Attachment, ...]
    parts: tuple[PartSummary, ...]
    kind: EmailKind
    kind_reasons: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    defects: tuple[str, ...]
    malformed: bool
    malformed_reasons: tuple[str, ...]

    @property
    def reply_address(self) -> EmailAddress | None:
        """Where a reply should go: Reply-To when given, else From."""
        if self.reply_to:
            return self.reply_to[0]
        return self.from_addr


@dataclass(frozen=True, slots=True)
class Envelope:
    """How a message reached us: SMTP envelope or IMAP mailbox position, and the queue(s)."""

    transport: Transport
    queues: tuple[str, ...]
    mail_from: str | None = None
    rcpt_tos: tuple[str, ...] = ()
    peer: str | None = None
    mailbox: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    received_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def queue(self) -> str:
        """The queue of the first recipient (a message may be addressed to several)."""
        return self.queues[0] if self.queues else ""
