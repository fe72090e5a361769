"""The domain language of OneStop (see docs/architecture.md): enums and value objects.

Everything here is plain data with no I/O, shared by the router, the storage layer and
every adapter through `routing`'s public API.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Channel(enum.StrEnum):
    """A way a citizen reaches the agency."""

    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"
    KIOSK = "kiosk"
    SMS = "sms"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Author(enum.StrEnum):
    """Who wrote a message."""

    CITIZEN = "citizen"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class ConversationStatus(enum.StrEnum):
    """Who the conversation is with right now."""

    BOT = "bot"
    QUEUED = "queued"
    AGENT = "agent"
    CLOSED = "closed"


class CaseStatus(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING_CITIZEN = "pending_citizen"
    PENDING_BACK_OFFICE = "pending_back_office"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


class TaskStatus(enum.StrEnum):
    """pending → reserved → assigned → wrapping → completed | canceled | abandoned."""

    PENDING = "pending"
    RESERVED = "reserved"
    ASSIGNED = "assigned"
    WRAPPING = "wrapping"
    COMPLETED = "completed"
    CANCELED = "canceled"
    ABANDONED = "abandoned"

    @property
    def is_final(self) -> bool:
        return self in FINAL_TASK_STATUSES


FINAL_TASK_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELED, TaskStatus.ABANDONED})
#: Task statuses that occupy an agent's capacity.
HELD_TASK_STATUSES = frozenset({TaskStatus.RESERVED, TaskStatus.ASSIGNED, TaskStatus.WRAPPING})


class Presence(enum.StrEnum):
    """What an agent has chosen; 'busy' and 'wrap-up' are derived from the tasks held."""

    OFFLINE = "offline"
    AVAILABLE = "available"
    AWAY = "away"


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class IdentityKind(enum.StrEnum):
    NATIONAL_ID = "national_id"
    PHONE = "phone"
    EMAIL = "email"
    CHAT_VISITOR = "chat_visitor"
    KIOSK_CARD = "kiosk_card"


@dataclass(frozen=True, slots=True)
class IdentityHint:
    """What an adapter knows about who is contacting us.

    `verified_by` names how the identifier was proven (``caller_id``, ``smart_card``,
    ``agent_check``, ``email_reply`` …); ``None`` means it is only a claim.
    """

    kind: IdentityKind
    value: str
    verified_by: str | None = None

    @property
    def verified(self) -> bool:
        return self.verified_by is not None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a message; the bytes live in the blob store under `ref`."""

    filename: str
    content_type: str
    size: int
    ref: str


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A provider's traffic normalised by an adapter: the one inbound seam of the core.

    `conversation_key` is the provider's key for the contact (CallSid, chat session id,
    email thread root, kiosk visit id); `message_id` is the provider's id for this message
    and makes redeliveries idempotent.
    """

    channel: Channel
    conversation_key: str
    message_id: str
    body: str
    identity_hints: tuple[IdentityHint, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    language: str | None = None
    case_number: str | None = None
    queue_hint: str | None = None
    subject: str | None = None
    author: Author = Author.CITIZEN
    metadata: Mapping[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What the core stored for an inbound message."""

    message_id: str
    conversation_id: str
    citizen_id: str
    case_id: str
    case_number: str
    duplicate: bool
    new_conversation: bool
    sequence: int


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message the core asks an adapter to deliver to the citizen."""

    message_id: str
    conversation_id: str
    channel: Channel
    conversation_key: str
    body: str
    author: Author
    author_name: str | None = None
    sequence: int = 0
    attachments: tuple[Attachment, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
