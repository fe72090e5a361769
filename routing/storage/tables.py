"""The core's tables. Names follow the domain language (docs/architecture.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from routing.domain import TaskStatus
from routing.storage.types import UTCDateTime, new_id

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON,
    }


def _id() -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=new_id)


class Citizen(Base):
    """The golden record of one person."""

    __tablename__ = "citizens"
    id: Mapped[str] = _id()
    name_th: Mapped[str | None] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[date | None] = mapped_column(Date)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    merged_into: Mapped[str | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    erased_at: Mapped[datetime | None]


class Identity(Base):
    """An identifier of a citizen: (kind, value, verified)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: Mapped[str] = _id()
    citizen_id: Mapped[str] = mapped_column(ForeignKey("citizens.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(254))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_by: Mapped[str | None] = mapped_column(String(40))
    verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Case(Base):
    """The citizen's matter, across conversations and channels."""

    __tablename__ = "cases"
    id: Mapped[str] = _id()
    number: Mapped[str] = mapped_column(String(20), unique=True)
    citizen_id: Mapped[str] = mapped_column(ForeignKey("citizens.id"), index=True)
    category: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(24), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    department: Mapped[str | None] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    csat: Mapped[int | None] = mapped_column(Integer)
    first_conversation_id: Mapped[str | None] = mapped_column(String(32))
    conversation_count: Mapped[int] = mapped_column(Integer, default=0)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    one_stop: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_due: Mapped[datetime | None]
    resolution_due: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: SLA clocks stop while the case waits on the citizen.
    sla_paused_at: Mapped[datetime | None]
    sla_paused_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Conversation(Base):
    """One contact on one channel: a call, a chat, an email thread, a kiosk visit."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "provider_key"),)
    id: Mapped[str] = _id()
    channel: Mapped[str] = mapped_column(String(12))
    provider_key: Mapped[str] = mapped_column(String(200))
    citizen_id: Mapped[str] = mapped_column(ForeignKey("citizens.id"), index=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    queue_id: Mapped[str | None] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(300))
    agent_id: Mapped[str | None] = mapped_column(String(32))
    bot_misses: Mapped[int] = mapped_column(Integer, default=0)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime]
    last_message_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(40))


class Message(Base):
    """One message of a conversation, inbound or outbound."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_message_id"),
        UniqueConstraint("conversation_id", "seq"),
    )
    id: Mapped[str] = _id()
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"))
    channel: Mapped[str] = mapped_column(String(12))
    seq: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(8))
    author: Mapped[str] = mapped_column(String(8))
    author_id: Mapped[str | None] = mapped_column(String(32))
    author_name: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(String(300))
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    provider_message_id: Mapped[str | None] = mapped_column(String(250))
    delivery: Mapped[str] = mapped_column(String(12), default="stored")
    created_at: Mapped[datetime]


#: The task statuses that are not final, as SQL: a conversation has at most one such task.
OPEN_TASK_SQL = "status IN ({})".format(
    ", ".join(f"'{status}'" for status in TaskStatus if not status.is_final))


class Task(Base):
    """Routable work for a person; mirrors the router's state durably. A conversation has
    at most one open task (a unique partial index): hand-offs that race (the citizen's
    request, the bot's, the sweep's, another node's) end with one, never two offers."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("uq_tasks_open_conversation", "conversation_id", unique=True,
              sqlite_where=text(OPEN_TASK_SQL), postgresql_where=text(OPEN_TASK_SQL)),
    )
    id: Mapped[str] = _id()
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    citizen_id: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(12))
    queue_id: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    agent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    workflow_filter: Mapped[str | None] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(String(60))
    wrap_code: Mapped[str | None] = mapped_column(String(40))
    missed_count: Mapped[int] = mapped_column(Integer, default=0)
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]
    enqueued_at: Mapped[datetime]
    offered_at: Mapped[datetime | None]
    assigned_at: Mapped[datetime | None]
    wrap_started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Agent(Base):
    """A staff user: roles, skills, languages, capacity, presence."""

    __tablename__ = "agents"
    id: Mapped[str] = _id()
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    skills: Mapped[dict[str, Any]] = mapped_column(default=dict)
    languages: Mapped[list[Any]] = mapped_column(default=list)
    capacity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    department: Mapped[str | None] = mapped_column(String(40))
    presence: Mapped[str] = mapped_column(String(12), default="offline")
    presence_reason: Mapped[str | None] = mapped_column(String(60))
    presence_since: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    #: The agent's own phone (E.164), and where their calls ring: "phone" (this
    #: number) or "browser"/None (the console's phone).
    phone_number: Mapped[str | None] = mapped_column(String(20))
    voice_device: Mapped[str | None] = mapped_column(String(10))


class StaffSession(Base):
    """A server-side login session; only the hash of the token is stored."""

    __tablename__ = "staff_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AuditEntry(Base):
    """Who viewed or changed a citizen's data, when, what and why."""

    __tablename__ = "audit_log"
    id: Mapped[str] = _id()
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor_role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str | None] = mapped_column(String(32))
    citizen_id: Mapped[str | None] = mapped_column(String(32), index=True)
    reason: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TimelineEvent(Base):
    """Something that happened to a citizen, case or conversation (the timeline)."""

    __tablename__ = "timeline_events"
    __table_args__ = (Index("ix_timeline_citizen_at", "citizen_id", "at"),)
    id: Mapped[str] = _id()
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    citizen_id: Mapped[str | None] = mapped_column(String(32))
    case_id: Mapped[str | None] = mapped_column(String(32), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(32))
    task_id: Mapped[str | None] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Counter(Base):
    """Named counters (case numbers per year)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class OutboxEntry(Base):
    """An outbound message waiting to be delivered, retried with back-off until sent."""

    __tablename__ = "outbox"
    id: Mapped[str] = _id()
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(500))
    provider_message_id: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class ProviderEvent(Base):
    """Provider events already processed (status callbacks, kiosk events): idempotency."""

    __tablename__ = "provider_events"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CitizenMerge(Base):
    """One merge of two citizen records, with what moved, so it can be undone exactly."""

    __tablename__ = "citizen_merges"
    id: Mapped[str] = _id()
    source_id: Mapped[str] = mapped_column(String(32), index=True)
    target_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime]
    actor_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(200))
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(32))


class MergeSuggestion(Base):
    """Weak evidence that two records are one person, for an agent to confirm or reject."""

    __tablename__ = "merge_suggestions"
    __table_args__ = (UniqueConstraint("citizen_id", "other_id"),)
    id: Mapped[str] = _id()
    citizen_id: Mapped[str] = mapped_column(String(32), index=True)
    other_id: Mapped[str] = mapped_column(String(32), index=True)
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(32))


class Consent(Base):
    """A citizen's consent (or its withdrawal) for one purpose (Thai PDPA)."""

    __tablename__ = "consents"
    id: Mapped[str] = _id()
    citizen_id: Mapped[str] = mapped_column(String(32), index=True)
    purpose: Mapped[str] = mapped_column(String(60))
    granted: Mapped[bool] = mapped_column(Boolean)
    channel: Mapped[str | None] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(300))
    at: Mapped[datetime]


class StateEntry(Base):
    """Small named state that must survive restarts (e.g. an IMAP mailbox position)."""

    __tablename__ = "state_entries"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class Consultation(Base):
    """A back-office department consulted on a case (the citizen is not passed around)."""

    __tablename__ = "consultations"
    id: Mapped[str] = _id()
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    department: Mapped[str] = mapped_column(String(40), index=True)
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="open")
    requested_by: Mapped[str | None] = mapped_column(String(32))
    requested_at: Mapped[datetime]
    due_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)
    #: Where the consultation lives at the department's end (e.g. a Slack channel + thread).
    external_ref: Mapped[str | None] = mapped_column(String(200), index=True)
