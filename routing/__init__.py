"""The routing core: OneStop's domain model, citizen view, cases, conversations, queues,
agents' presence and capacity, the router, SLA clocks, the event bus and storage.

This package imports no other room. Adapters and screens use only what is exported
here (checked by the import contract in tests/test_architecture.py).
"""

from routing.aio import cancelling, stop_task
from routing.center import SYSTEM, Actor, ContactCenter, wait_or_timeout
from routing.cluster import RedisCluster, RouterReplica, register_event
from routing.config import ConfigError, ConfigSource, Settings, load_settings
from routing.config import load_file as load_config_file
from routing.domain import (
    Attachment,
    Author,
    CaseStatus,
    Channel,
    ConversationStatus,
    Direction,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    IngestResult,
    OutboundMessage,
    Presence,
    Role,
    TaskStatus,
)
from routing.errors import (
    Conflict,
    Forbidden,
    InvalidIdentity,
    NotFound,
    OneStopError,
    Unavailable,
)
from routing.events import (
    CaseChanged,
    CitizenChanged,
    CitizensMerged,
    ConsultationChanged,
    ConsultationRequested,
    ConversationChanged,
    DeliveryFailed,
    EventBus,
    InProcessBus,
    MessageStored,
    TaskCreated,
    TypingChanged,
)
from routing.identity import mask, normalise
from routing.ports import (
    Bot,
    BotReply,
    BotTurn,
    BotUnavailable,
    ChannelAdapter,
    Clock,
    DeliveryError,
    SystemClock,
)
from routing.ratelimit import TokenBuckets
from routing.router import (
    OfferMissed,
    PresenceChanged,
    TaskAccepted,
    TaskFinished,
    TaskMoved,
    TaskOffered,
    TaskQueued,
)
from routing.staff import LoginFailed, StaffAuth, StaffIdentity, hash_password
from routing.storage import Database, create_database, metadata
from routing.storage.blobs import BlobStore, FileBlobStore
from routing.storage.tables import Agent as AgentRecord
from routing.storage.tables import (
    AuditEntry,
    Case,
    Citizen,
    Consultation,
    Conversation,
    Identity,
    Message,
    Task,
    TimelineEvent,
)
from routing.storage.types import UTCDateTime
from routing.texts import detect_language
from routing.views import queue_views, task_view

__all__ = [
    "SYSTEM",
    "Actor",
    "AgentRecord",
    "Attachment",
    "AuditEntry",
    "Author",
    "BlobStore",
    "Bot",
    "BotReply",
    "BotTurn",
    "BotUnavailable",
    "Case",
    "CaseChanged",
    "CaseStatus",
    "Channel",
    "ChannelAdapter",
    "Citizen",
    "CitizenChanged",
    "CitizensMerged",
    "Clock",
    "ConfigError",
    "ConfigSource",
    "Conflict",
    "Consultation",
    "ConsultationChanged",
    "ConsultationRequested",
    "ContactCenter",
    "Conversation",
    "ConversationChanged",
    "ConversationStatus",
    "Database",
    "DeliveryError",
    "DeliveryFailed",
    "Direction",
    "EventBus",
    "FileBlobStore",
    "Forbidden",
    "Identity",
    "IdentityHint",
    "IdentityKind",
    "InProcessBus",
    "InboundMessage",
    "IngestResult",
    "InvalidIdentity",
    "LoginFailed",
    "Message",
    "MessageStored",
    "NotFound",
    "OfferMissed",
    "OneStopError",
    "OutboundMessage",
    "Presence",
    "PresenceChanged",
    "RedisCluster",
    "Role",
    "RouterReplica",
    "Settings",
    "StaffAuth",
    "StaffIdentity",
    "SystemClock",
    "Task",
    "TaskAccepted",
    "TaskCreated",
    "TaskFinished",
    "TaskMoved",
    "TaskOffered",
    "TaskQueued",
    "TaskStatus",
    "TimelineEvent",
    "TokenBuckets",
    "TypingChanged",
    "UTCDateTime",
    "Unavailable",
    "cancelling",
    "create_database",
    "detect_language",
    "hash_password",
    "load_config_file",
    "load_settings",
    "mask",
    "metadata",
    "normalise",
    "queue_views",
    "register_event",
    "stop_task",
    "task_view",
    "wait_or_timeout",
]
