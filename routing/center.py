"""The contact center: the core's public service that every adapter and screen calls.

It turns inbound traffic into citizens, conversations, cases and messages (stored
durably before anything is acknowledged), asks the bot, hands conversations to people
through the router, delivers outbound messages through the registered adapters with
retries, and publishes every step on the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from routing import citizens
from routing.aio import cancelling, stop_task
from routing.cluster import RedisCluster, RouterReplica, encode_event, router_state
from routing.config import Settings
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
    TaskStatus,
)
from routing.errors import Conflict, Forbidden, NotFound, Unavailable
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
)
from routing.hours import BusinessHours
from routing.identity import mask, normalise_hint
from routing.ports import (
    Bot,
    BotTurn,
    BotUnavailable,
    ChannelAdapter,
    Clock,
    DeliveryError,
    SystemClock,
)
from routing.router import (
    AgentProfile,
    OfferMissed,
    OfferWithdrawn,
    PresenceChanged,
    Router,
    RouterEvent,
    TaskAccepted,
    TaskFinished,
    TaskMoved,
    TaskOffered,
    TaskQueued,
    TaskRejected,
    TaskWrapping,
)
from routing.storage import Database
from routing.storage.blobs import BlobStore
from routing.storage.tables import (
    Agent,
    AuditEntry,
    Case,
    Consent,
    Consultation,
    Conversation,
    Counter,
    Identity,
    MergeSuggestion,
    Message,
    OutboxEntry,
    ProviderEvent,
    StateEntry,
    Task,
    TimelineEvent,
)
from routing.storage.types import new_id
from routing.texts import detect_language, say

log = logging.getLogger(__name__)
T = TypeVar("T")

OPEN_CASE_STATUSES = (
    CaseStatus.NEW, CaseStatus.OPEN, CaseStatus.PENDING_CITIZEN,
    CaseStatus.PENDING_BACK_OFFICE, CaseStatus.REOPENED,
)
#: Retry delays for outbound delivery (seconds); after the last the message is failed.
DELIVERY_BACKOFF = (1, 5, 30, 120, 600, 1800)
#: In a cluster, how stale followers' replicas may be between decisions (seconds).
STATE_EVERY = 0.1


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is doing something (for permissions and the audit log)."""

    id: str | None
    role: str
    request_id: str | None = None


SYSTEM = Actor(None, "system")


class ContactCenter:
    """The routing core's public API. One instance per app node."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        bot: Bot | None = None,
        blobs: BlobStore | None = None,
        cluster: RedisCluster | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self.bus: EventBus = cluster.bus if cluster else (bus or InProcessBus())
        self.clock: Clock = clock or SystemClock()
        self.bot = bot
        self.cluster = cluster
        self._router = Router(settings)
        self._replica = RouterReplica()
        self._leading = cluster is None
        self._counter = 0  # routing decisions published (cluster mode)
        self._published_at = 0.0
        self._flush_later: asyncio.TimerHandle | None = None
        self.adapters: dict[Channel, ChannelAdapter] = {}
        self.hours = {name: BusinessHours(spec) for name, spec in settings.hours.items()}
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._started = False
        self._stopping = False

    # -- life cycle ---------------------------------------------------------------------

    @property
    def router(self) -> Router | RouterReplica:
        """The router's read queries: the router itself on the node that runs it (every
        node without a cluster), a replica of it on the others."""
        return self._router if self._leading else self._replica

    @property
    def node_name(self) -> str:
        """This node's name in a cluster ("" without one)."""
        return self.cluster.node_id if self.cluster else ""

    @property
    def leading(self) -> bool:
        """Whether this node runs the router (always, without a cluster). Work that must
        happen once in a cluster (alerts, mailbox polling) runs where this is true."""
        return self._leading and (self.cluster is None or self.cluster.leading)

    async def start(self) -> None:
        """Load agents and unfinished tasks into the router and start its timers.

        Tasks that were offered when the node stopped are offered again; tasks being
        worked on stay with their agents. In a cluster only the leader does this (now or
        when it takes over); the others follow.
        """
        if self.cluster is None:
            async with self._lock:
                await self._build_router()
        else:
            await self.cluster.start(self)
        self._started = True
        self._timer = asyncio.create_task(self._run_timers(), name="router-timers")
        self._spawn(self._deliver_pending(), "outbox-recovery")

    async def _build_router(self) -> None:
        """A fresh router from the database (the caller holds the routing lock)."""
        self._router = router = Router(self.settings)
        now = self.clock.now()
        ts = now.timestamp()
        async with self.db.sessions() as s:
            agents = (await s.scalars(select(Agent).where(Agent.active.is_(True)))).all()
            tasks = (
                await s.scalars(
                    select(Task)
                    .where(Task.status.in_([str(x) for x in TaskStatus if not x.is_final]))
                    # Ties in time go by id (time-ordered): first come, first served
                    # survives a take-over even for tasks queued in the same instant.
                    .order_by(Task.enqueued_at, Task.id)
                )
            ).all()
        events: list[RouterEvent] = []
        for agent in agents:
            router.upsert_agent(_profile(agent), ts)
        for task in tasks:
            status = TaskStatus(task.status)
            if status in (TaskStatus.ASSIGNED, TaskStatus.WRAPPING) and task.agent_id and (
                router.has_agent(task.agent_id)
            ):
                router.restore_held(
                    task.id, Channel(task.channel), task.attributes, task.queue_id,
                    task.agent_id, status, task.enqueued_at.timestamp(),
                    (task.assigned_at or now).timestamp(), ts,
                )
            else:
                events += router.submit(
                    task.id, Channel(task.channel), task.attributes, ts,
                    enqueued_at=task.enqueued_at.timestamp(),
                )
        for agent in agents:
            events += router.set_presence(
                agent.id, Presence(agent.presence), ts, agent.presence_reason
            )
        await self._apply(events, always_publish=True)

    # -- cluster membership (see routing/cluster.py) -------------------------------------

    async def lead(self) -> None:
        """This node took the lease: rebuild the router from the store and route."""
        async with self._lock:
            self._counter = 0
            await self._build_router()
            self._leading = True
        self._wake.set()

    async def follow(self) -> None:
        """This node lost the lease: stop routing; reads come from the replica."""
        async with self._lock:
            self._leading = False
            self._router = Router(self.settings)
            self._replica.reset()

    async def execute(self, op: str, args: Mapping[str, Any], *, flush: bool = False) -> int:
        """Carry out one routing command (here, or for a follower); the version after it.
        `flush`: publish the router's state now (a follower waits to read it)."""
        command = ROUTER_OPS.get(op)
        if command is None:
            raise Conflict(f"unknown routing command {op!r}")
        async with self._lock:
            if not self.leading:
                raise Unavailable("this node no longer runs the router; try again")
            await self._apply(command(self._router, self.clock.now().timestamp(), **args),
                              flush=flush)
            version = self._version()
        self._wake.set()
        return version

    async def router_changed(self, version: int, state: Mapping[str, Any] | None,
                             events: list[Any]) -> None:
        """The leader's decision reached this follower: replica first, then subscribers."""
        if self._leading:
            return
        if state is not None:
            self._replica.update(version, state)
        assert self.cluster is not None
        for event in events:
            await self.cluster.bus.dispatch_remote(event)

    def _version(self) -> int:
        return self.cluster.version(self._counter) if self.cluster else self._counter

    async def stop(self) -> None:
        """Stop the timers, wait for work in flight and (in a cluster) hand the lease on."""
        self._stopping = True
        if self._flush_later is not None:
            self._flush_later.cancel()
        self._wake.set()
        await stop_task(self._timer, "router timers")
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=30)
            if pending:
                log.warning("background work still running after 30 s; left behind",
                            extra={"tasks": sorted(t.get_name() for t in pending)})
        if self.cluster is not None:
            await self.cluster.stop()

    def register_adapter(self, adapter: ChannelAdapter) -> None:
        """Deliver outbound messages of `adapter.channel` through `adapter`."""
        self.adapters[adapter.channel] = adapter

    # -- inbound ------------------------------------------------------------------------

    async def ingest(self, inbound: InboundMessage) -> IngestResult:
        """Store an inbound message durably and return only then.

        Resolves the citizen from the identity hints, finds or opens the conversation
        and its case, and is idempotent on (channel, provider message id): the same
        message delivered twice is stored once. Invalid identity hints raise
        `InvalidIdentity` before anything is stored.
        """
        hints = tuple(normalise_hint(h) for h in inbound.identity_hints)
        inbound_now = inbound.received_at or self.clock.now()
        attempts = 0

        def store(s: AsyncSession) -> Awaitable[tuple[IngestResult,
                                                     ConversationChanged | None,
                                                     tuple[Message, Conversation, bool] | None]]:
            # The first attempt relies on the unique (channel, provider id) key to catch a
            # redelivery (its INSERT fails and the work is retried); a retry looks first.
            nonlocal attempts
            attempts += 1
            return self._store_inbound(s, inbound, hints, inbound_now,
                                       look_first=attempts > 1)

        result, created, stored = await self._retrying(store)
        if stored is not None:
            message, conv, open_task = stored
            await self.bus.publish(
                MessageStored(result.message_id, result.conversation_id, result.case_id,
                              result.citizen_id, str(inbound.channel), str(Direction.INBOUND),
                              str(inbound.author), result.sequence, inbound.body,
                              created_at=message.created_at,
                              provider_message_id=message.provider_message_id,
                              extra=dict(message.extra or {}))
            )
            if created is not None:
                await self.bus.publish(created)
            self._spawn(self._after_inbound(conv, inbound, open_task), "after-inbound")
        return result

    async def load_state(self, name: str) -> dict[str, Any] | None:
        """Named state saved with `save_state` (None if never saved)."""
        async with self.db.sessions() as s:
            entry = await s.get(StateEntry, name)
        return dict(entry.value) if entry else None

    async def save_state(self, name: str, value: Mapping[str, Any]) -> None:
        """Save small named state durably (an adapter's position in a provider's stream)."""
        now = self.clock.now()

        async def store(s: AsyncSession) -> None:
            entry = await s.get(StateEntry, name)
            if entry is None:
                s.add(StateEntry(name=name, value=dict(value), updated_at=now))
            else:
                entry.value, entry.updated_at = dict(value), now

        await self._retrying(store)

    async def record_event(self, source: str, event_id: str, data: Mapping[str, Any]) -> bool:
        """Remember a provider event (status callback, kiosk event); False if seen before."""
        now = self.clock.now()

        async def store(s: AsyncSession) -> bool:
            if await s.get(ProviderEvent, (source, event_id)) is not None:
                return False
            s.add(ProviderEvent(source=source, event_id=event_id, received_at=now,
                                data=dict(data)))
            return True

        try:
            return await self._retrying(store)
        except IntegrityError:
            return False

    async def _store_inbound(
        self, s: AsyncSession, inbound: InboundMessage, hints: Sequence[Any], now: datetime,
        *, look_first: bool = True,
    ) -> tuple[IngestResult, ConversationChanged | None,
               tuple[Message, Conversation, bool] | None]:
        """Store one inbound message (the caller's transaction). Returns the result, the
        conversation's change (opened or reopened) and, unless the message was a
        redelivery, the stored message, its conversation and whether the conversation has
        an unfinished task (read here only when `_after_inbound` needs it: a queued
        conversation), so that nothing is read again after the commit."""
        channel = str(inbound.channel)
        existing = await s.scalar(
            select(Message).where(Message.channel == channel,
                                  Message.provider_message_id == inbound.message_id)
        ) if look_first else None
        if existing is not None:
            known = await s.get_one(Conversation, existing.conversation_id)
            known_case = await s.get_one(Case, known.case_id)
            return IngestResult(existing.id, known.id, known.citizen_id, known_case.id,
                                known_case.number, True, False, existing.seq), None, None
        conv = await s.scalar(
            select(Conversation).where(Conversation.channel == channel,
                                       Conversation.provider_key == inbound.conversation_key)
        )
        language = inbound.language or detect_language(inbound.body)
        created: ConversationChanged | None = None
        if conv is None:
            resolution = await citizens.resolve(s, hints, now, self.settings.citizens)
            citizen = resolution.citizen
            case = None
            if inbound.case_number:
                case = await s.scalar(select(Case).where(Case.number == inbound.case_number,
                                                         Case.citizen_id == citizen.id))
            if case is None:
                case = await self._open_case(s, citizen.id, now, language, inbound.subject)
            status = self._entry_status(inbound.channel)
            conv = Conversation(
                id=new_id(), channel=channel, provider_key=inbound.conversation_key,
                citizen_id=citizen.id, case_id=case.id, status=str(status),
                language=language, subject=inbound.subject, started_at=now,
                attributes={"queue_hint": inbound.queue_hint,
                            "verified": resolution.verified, **dict(inbound.metadata)},
                message_count=0, bot_misses=0,
            )
            s.add(conv)
            case.conversation_count = (case.conversation_count or 0) + 1
            if case.first_conversation_id is None:
                case.first_conversation_id = conv.id
            self._timeline(s, "conversation_opened", now, citizen.id, case.id, conv.id,
                           data={"channel": channel})
            created = ConversationChanged(conv.id, channel, conv.status)
            new_conversation = True
        else:
            case = await s.get_one(Case, conv.case_id)
            await citizens.attach(s, conv.citizen_id, hints, now, self.settings.citizens)
            new_conversation = False
            if conv.status == ConversationStatus.CLOSED:
                conv.status, conv.ended_at = str(self._entry_status(inbound.channel)), None
                created = ConversationChanged(conv.id, channel, conv.status)
            if case.status in (CaseStatus.RESOLVED, CaseStatus.CLOSED):
                case.status, case.updated_at = str(CaseStatus.REOPENED), now
        seq = conv.message_count + 1
        conv.message_count, conv.last_message_at = seq, now
        message = Message(
            id=new_id(), conversation_id=conv.id, channel=channel, seq=seq,
            direction=str(Direction.INBOUND), author=str(inbound.author), body=inbound.body,
            subject=inbound.subject, provider_message_id=inbound.message_id,
            attachments=[_attachment(a) for a in inbound.attachments],
            extra={**dict(inbound.metadata), "language": language}, created_at=now,
            delivery="stored", internal=False,
        )
        s.add(message)
        if case.status == CaseStatus.PENDING_CITIZEN:
            case.status, case.updated_at = str(CaseStatus.OPEN), now
            self._sla_status_changed(case, CaseStatus.PENDING_CITIZEN, now)
        open_task = False
        if conv.status == ConversationStatus.QUEUED and not new_conversation and (
                inbound.author is Author.CITIZEN):
            open_task = await s.scalar(select(Task.id).where(
                Task.conversation_id == conv.id,
                Task.status.in_([str(x) for x in TaskStatus if not x.is_final])).limit(1)
            ) is not None
        return (IngestResult(message.id, conv.id, conv.citizen_id, case.id, case.number, False,
                             new_conversation, seq), created, (message, conv, open_task))

    async def _open_case(
        self, s: AsyncSession, citizen_id: str, now: datetime, language: str,
        subject: str | None, category: str | None = None,
    ) -> Case:
        number = await self._next_case_number(s, now.year)
        case = Case(
            id=new_id(), number=number, citizen_id=citizen_id, status=str(CaseStatus.NEW),
            priority=0, language=language, subject=subject, category=category,
            created_at=now, updated_at=now, conversation_count=0, transfers=0, escalations=0,
            sla_paused_seconds=0.0,
        )
        self._set_sla(case, now)
        s.add(case)
        await s.flush()
        self._timeline(s, "case_opened", now, citizen_id, case.id, None,
                       data={"number": number})
        return case

    def _set_sla(self, case: Case, start: datetime) -> None:
        """Due times on the business-hours clock of the case's queue, moved on by the open
        time the case spent waiting on the citizen."""
        spec = self.settings.categories.get(case.category or "general")
        first, resolution = (spec.first_response_hours, spec.resolution_hours) if spec else (8, 120)
        hours = self._case_hours(case)
        paused = case.sla_paused_seconds or 0.0
        case.first_response_due = hours.add_business_time(start, first * 3600 + paused)
        case.resolution_due = hours.add_business_time(start, resolution * 3600 + paused)

    def _case_hours(self, case: Case) -> BusinessHours:
        spec = self.settings.categories.get(case.category or "general")
        queue = self.settings.queues.get(spec.queue or "general") if spec and spec.queue else None
        return self.hours.get(queue.spec.hours if queue else "always") or self.hours["always"]

    def _sla_status_changed(self, case: Case, old: str, now: datetime) -> None:
        """Stop the SLA clocks while waiting on the citizen; start them again after."""
        if case.status == CaseStatus.PENDING_CITIZEN and case.sla_paused_at is None:
            case.sla_paused_at = now
        elif old == CaseStatus.PENDING_CITIZEN and case.sla_paused_at is not None:
            waited = self._case_hours(case).business_seconds_between(case.sla_paused_at, now)
            case.sla_paused_seconds = (case.sla_paused_seconds or 0.0) + waited
            case.sla_paused_at = None
            self._set_sla(case, case.created_at)

    async def _next_case_number(self, s: AsyncSession, year: int) -> str:
        name = f"case:{year}"
        value = await s.scalar(
            update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
            .returning(Counter.value)
        )
        if value is None:
            s.add(Counter(name=name, value=1))
            await s.flush()
            value = 1
        return f"OS-{year}-{value:06d}"

    def _entry_status(self, channel: Channel) -> ConversationStatus:
        entry = self.settings.channel(channel).entry
        return ConversationStatus.BOT if entry in ("bot", "ivr") else ConversationStatus.QUEUED

    async def _after_inbound(self, conv: Conversation, inbound: InboundMessage,
                             open_task: bool) -> None:
        """What happens once a message is safe: the bot answers, or people take over.

        `conv` is the conversation as the message's transaction left it and `open_task`
        whether it had an unfinished task then (no second read: a task finished in
        between is caught by the sweep's unanswered conversations, a task created in
        between by `hand_to_people`, which keeps one open task per conversation even
        when hand-offs race)."""
        entry = self.settings.channel(inbound.channel).entry
        if inbound.author is not Author.CITIZEN or entry == "ivr":
            return
        if conv.status == ConversationStatus.BOT:
            await self._ask_bot(conv, inbound)
        elif conv.status == ConversationStatus.QUEUED and not open_task:
            await self.hand_to_people(conv.id, reason="channel_entry",
                                      context={"queue": inbound.queue_hint})

    async def _ask_bot(self, conv: Conversation, inbound: InboundMessage) -> None:
        language = inbound.language or detect_language(inbound.body)
        case = await self.case(conv.case_id)
        if self.bot is None:
            await self._bot_down(conv, language, "bot_not_configured")
            return
        turn = BotTurn(conv.id, conv.citizen_id, case.number, inbound.channel, inbound.body,
                       language, bool(inbound.metadata.get("verified")), inbound.metadata)
        try:
            reply = await self.bot.reply(turn)
        except BotUnavailable as exc:
            log.warning("bot unavailable: %s", type(exc).__name__)
            await self._bot_down(conv, language, "bot_unavailable")
            return
        for text in reply.messages:
            await self.send_message(conv.id, text, author=Author.BOT, author_name="OneStop",
                                    extra={"buttons": list(reply.buttons)} if reply.buttons
                                    else None)
        misses = 0 if reply.understood else conv.bot_misses + 1
        await self._update_conversation(conv.id, bot_misses=misses,
                                        language=reply.language or language)
        if reply.category and case.category in (None, "general"):
            # The bot files the matter the first time it understands it; it never
            # overrides what an agent (or an earlier, clearer turn) decided.
            await self.update_case(conv.case_id, SYSTEM, category=reply.category)
        if reply.handoff or misses >= 2:
            await self.hand_to_people(
                conv.id,
                reason=reply.reason or ("bot_misunderstood" if misses >= 2 else "bot_handoff"),
                context={
                    "intent": reply.intent, "confidence": reply.confidence,
                    "intent_ranking": list(reply.intent_ranking),
                    "entities": list(reply.entities), "urgent": reply.urgent,
                    "category": reply.category, "language": reply.language or language,
                },
            )

    async def _bot_down(self, conv: Conversation, language: str, reason: str) -> None:
        await self.send_message(conv.id, say("bot_unavailable", language), author=Author.SYSTEM)
        await self.hand_to_people(conv.id, reason=reason, context={"language": language})

    # -- people -------------------------------------------------------------------------

    async def hand_to_people(
        self, conversation_id: str, *, reason: str, context: Mapping[str, Any] | None = None
    ) -> str:
        """Create a task for a person with everything an agent needs; return its id.

        The task carries the channel, language, category, urgency, the citizen's
        vulnerability flags, the agent who served them last, the case and the reason;
        the bot stops answering this conversation.
        """
        context = dict(context or {})
        now = self.clock.now()

        async def create(s: AsyncSession) -> Task:
            # One open task per conversation (a unique index): racing hand-offs queue on
            # the conversation's row (PostgreSQL) or lose on the index and retry (SQLite);
            # either way the later ones find the first one's task.
            conv = await s.get_one(Conversation, conversation_id,
                                   with_for_update={"key_share": True})  # NO KEY UPDATE
            open_task = await s.scalar(select(Task).where(
                Task.conversation_id == conversation_id,
                Task.status.in_([str(x) for x in TaskStatus if not x.is_final])))
            if open_task is not None:
                # Asked again while waiting (a callback after a chat request…): the agent
                # sees the newest context; the task keeps its place.
                extra = {k: v for k, v in context.items() if v is not None}
                if extra:
                    open_task.attributes = {**open_task.attributes, **extra,
                                            "reasons": [*open_task.attributes.get(
                                                "reasons", [open_task.reason]), reason]}
                return open_task
            case = await s.get_one(Case, conv.case_id)
            citizen = await citizens.live(s, conv.citizen_id)
            last_agent = await s.scalar(
                select(Task.agent_id).where(Task.citizen_id == citizen.id,
                                            Task.status == str(TaskStatus.COMPLETED))
                .order_by(Task.finished_at.desc()).limit(1)
            )
            category = context.get("category") or case.category
            spec = self.settings.categories.get(category or "")
            attributes = {
                "channel": conv.channel,
                "language": context.get("language") or conv.language or "th",
                "category": category,
                "urgent": bool(context.get("urgent") or (spec and spec.urgent)),
                "vulnerable": citizens.vulnerability(citizen, now.date(),
                                                     self.settings.citizens),
                "citizen_id": citizen.id,
                "case_id": case.id,
                "case_number": case.number,
                "conversation_id": conv.id,
                "last_agent_id": last_agent,
                "queue": context.get("queue") or (conv.attributes or {}).get("queue_hint"),
                "reason": reason,
                **{k: v for k, v in context.items() if k not in ("queue", "category")},
            }
            task = Task(
                id=new_id(), conversation_id=conv.id, case_id=case.id, citizen_id=citizen.id,
                channel=conv.channel, queue_id="", status=str(TaskStatus.PENDING),
                priority=int(context.get("priority") or 0), attributes=attributes,
                reason=reason, created_at=now, enqueued_at=now, missed_count=0,
            )
            s.add(task)
            conv.status = str(ConversationStatus.QUEUED)
            self._timeline(s, "handed_to_people", now, citizen.id, case.id, conv.id, task.id,
                           data={"reason": reason})
            return task

        task = await self._retrying(create)
        if self.router.has_task(task.id):
            return task.id
        await self.bus.publish(TaskCreated(task.id, conversation_id, task.case_id, task.channel,
                                           reason))
        try:
            await self._route("submit", task_id=task.id, channel=task.channel,
                              attributes=task.attributes, enqueued_at=now.timestamp())
        except Unavailable:
            # Stored as pending: the router takes it up when a node leads again.
            log.warning("task stored while routing is unavailable", extra={"task": task.id})
        await self.bus.publish(ConversationChanged(conversation_id, task.channel, "queued"))
        return task.id

    async def set_presence(self, agent_id: str, presence: Presence,
                           reason: str | None = None) -> None:
        """The agent goes available, away (with a reason) or offline."""
        await self._route("presence", agent_id=agent_id, presence=str(presence), reason=reason)

    async def accept_task(self, task_id: str, agent_id: str) -> None:
        """The agent takes the task offered to them; the conversation is now theirs."""
        await self._route("accept", task_id=task_id, agent_id=agent_id)

    async def reject_task(self, task_id: str, agent_id: str) -> None:
        """The agent declines the offer; it goes to someone else."""
        await self._route("reject", task_id=task_id, agent_id=agent_id)

    async def complete_task(self, task_id: str, agent_id: str, wrap_code: str | None = None,
                            *, wrap_up: bool = True) -> None:
        """The agent is done: wrap-up starts (if the channel has one) or the task completes."""
        self.router.task(task_id)  # NotFound when it is not being routed
        if wrap_code:
            await self._retrying(lambda s: _set(s, Task, task_id, wrap_code=wrap_code))
        await self._route("complete", task_id=task_id, agent_id=agent_id, wrap_up=wrap_up)

    async def transfer_task(self, task_id: str, agent_id: str, queue_id: str,
                            to_agent_id: str | None = None, note: str | None = None) -> None:
        """Pass the task to another queue (or a named agent in it), with a note."""
        view = self.router.task(task_id)
        if view.agent_id != agent_id or view.status is not TaskStatus.ASSIGNED:
            raise Conflict(f"task {task_id} is not assigned to agent {agent_id}")
        task = await self.task(task_id)
        if note:
            await self.send_message(task.conversation_id, note, author=Author.AGENT,
                                    author_id=agent_id, internal=True)
        await self._retrying(lambda s: _bump(s, task.case_id, "transfers"))
        await self._route("requeue", task_id=task_id, queue_id=queue_id,
                          to_agent_id=to_agent_id)

    async def requeue_task(self, task_id: str, reason: str) -> None:
        """Put a task its agent could not take after all (e.g. they did not answer the
        call they accepted) back in its own queue, keeping its place in time. Unlike
        `transfer_task` this is no transfer: the case's transfer count (and so its
        one-stop resolution) is unchanged; the timeline records the reason."""
        view = self.router.task(task_id)
        if view.status is not TaskStatus.ASSIGNED or not view.agent_id:
            raise Conflict(f"task {task_id} is {view.status}, not assigned")
        task = await self.task(task_id)
        now = self.clock.now()

        async def note(s: AsyncSession) -> None:
            self._timeline(s, "task_requeued", now, task.citizen_id, task.case_id,
                           task.conversation_id, task.id, actor_id=view.agent_id,
                           data={"reason": reason[:60]})

        await self._retrying(note)
        await self._route("requeue", task_id=task_id, queue_id=view.queue, to_agent_id=None)

    async def return_to_bot(self, conversation_id: str, actor: Actor) -> None:
        """An agent hands the conversation back to the bot: their task is finished (no
        wrap-up), the bot answers the citizen's next message."""
        conv = await self.conversation(conversation_id)
        if conv.channel not in (Channel.CHAT, Channel.SMS):
            raise Conflict(f"only chat and SMS conversations can go back to the bot, "
                           f"not {conv.channel}")
        async with self.db.sessions() as s:
            tasks = (await s.scalars(select(Task).where(
                Task.conversation_id == conversation_id,
                Task.status.in_([str(x) for x in TaskStatus if not x.is_final])))).all()
        for task in tasks:
            view = self.router.task(task.id) if self.router.has_task(task.id) else None
            if view is None:
                continue
            if view.agent_id and view.agent_id != actor.id and actor.role == "agent":
                raise Forbidden("this conversation is another agent's")
            await self._route("release", task_id=view.id, reason="returned_to_bot")
        await self._update_conversation(conversation_id, status=str(ConversationStatus.BOT),
                                        bot_misses=0, agent_id=None)
        await self.send_message(conversation_id, say("back_to_bot", conv.language),
                                author=Author.SYSTEM)
        await self.bus.publish(ConversationChanged(conversation_id, conv.channel, "bot"))

    async def close_conversation(self, conversation_id: str, reason: str = "ended",
                                 actor: Actor = SYSTEM) -> None:
        """End the contact; an agent's task goes to wrap-up, a waiting task is canceled."""
        now = self.clock.now()
        conv = await self.conversation(conversation_id)
        if conv.status == ConversationStatus.CLOSED:
            return
        await self._retrying(lambda s: _set(s, Conversation, conversation_id,
                                            status=str(ConversationStatus.CLOSED),
                                            ended_at=now, end_reason=reason))
        async with self.db.sessions() as s:
            tasks = (await s.scalars(select(Task).where(
                Task.conversation_id == conversation_id,
                Task.status.in_([str(x) for x in TaskStatus if not x.is_final])))).all()
        for task in tasks:
            if self.router.has_task(task.id):
                await self._route("end", task_id=task.id, reason=reason)
        await self.bus.publish(ConversationChanged(conversation_id, conv.channel, "closed"))

    # -- outbound -----------------------------------------------------------------------

    async def send_message(
        self,
        conversation_id: str,
        body: str,
        *,
        author: Author,
        author_id: str | None = None,
        author_name: str | None = None,
        internal: bool = False,
        extra: Mapping[str, Any] | None = None,
        subject: str | None = None,
        deliver_now: bool = True,
        attachments: Sequence[Attachment] = (),
    ) -> str:
        """Store an outbound message (or an internal note) and deliver it through the
        channel's adapter, retrying until the provider takes it. Returns the message id.

        With `deliver_now=False` the message is only queued: the delivery loop sends it
        within a second (for callers that must not wait on the provider)."""
        message = await self.send(
            conversation_id, body, author=author, author_id=author_id,
            author_name=author_name, internal=internal, extra=extra, subject=subject,
            deliver_now=deliver_now, attachments=attachments)
        return message.id

    async def send(
        self,
        conversation_id: str,
        body: str,
        *,
        author: Author,
        author_id: str | None = None,
        author_name: str | None = None,
        internal: bool = False,
        extra: Mapping[str, Any] | None = None,
        subject: str | None = None,
        deliver_now: bool = True,
        attachments: Sequence[Attachment] = (),
    ) -> Message:
        """`send_message`, returning the stored message (its `delivery` as it stands when
        the first attempt is over) instead of its id. `NotFound` for an unknown
        conversation.

        On a channel whose adapter delivers locally (`local_delivery = True`: its
        `deliver` only hands the message to this node's own sockets and cannot fail; the
        store stays the truth and a citizen who reconnects reads it from there), the
        message is stored as sent, with its outbox entry, in one transaction, and the
        adapter is called once, without claiming the entry first; its metadata then has
        no `in_reply_to`."""
        now = self.clock.now()
        channel_adapter: ChannelAdapter | None = None

        async def store(s: AsyncSession) -> tuple[Message, Conversation, Case]:
            nonlocal channel_adapter
            conv = await s.get(Conversation, conversation_id)
            if conv is None:
                raise NotFound("conversation", conversation_id)
            case = await s.get_one(Case, conv.case_id)
            adapter = self.adapters.get(Channel(conv.channel)) if not internal and (
                deliver_now) else None
            local = adapter is not None and getattr(adapter, "local_delivery", False) is True
            channel_adapter = adapter if local else None
            seq = conv.message_count + 1
            conv.message_count = seq
            message = Message(
                id=new_id(), conversation_id=conv.id, channel=conv.channel, seq=seq,
                direction=str(Direction.OUTBOUND), author=str(author), author_id=author_id,
                author_name=author_name, body=body, subject=subject, internal=internal,
                attachments=[_attachment(a) for a in attachments], extra=dict(extra or {}),
                created_at=now,
                delivery="internal" if internal else "sent" if local else "pending",
            )
            s.add(message)
            if local:
                s.add(OutboxEntry(id=new_id(), message_id=message.id, conversation_id=conv.id,
                                  channel=conv.channel, status="sent", attempts=1,
                                  next_attempt_at=now, created_at=now, sent_at=now,
                                  provider_message_id=message.id))
            elif not internal:
                s.add(OutboxEntry(id=new_id(), message_id=message.id, conversation_id=conv.id,
                                  channel=conv.channel, status="pending", attempts=0,
                                  # The first attempt is made right away below; the timer
                                  # only takes over if that attempt never finishes (crash).
                                  next_attempt_at=now + timedelta(
                                      seconds=10 if deliver_now else 0),
                                  created_at=now))
            if author is Author.AGENT and not internal and case.first_response_at is None:
                case.first_response_at = now
                if case.status == CaseStatus.NEW:
                    case.status = str(CaseStatus.OPEN)
            return message, conv, case

        message, conv, case = await self._retrying(store)
        await self.bus.publish(MessageStored(message.id, conv.id, case.id, conv.citizen_id,
                                             conv.channel, str(Direction.OUTBOUND), str(author),
                                             message.seq, body, author_name, internal,
                                             created_at=message.created_at,
                                             extra=dict(message.extra or {})))
        if channel_adapter is not None:
            await self._deliver_locally(channel_adapter, message, conv, case)
        elif not internal and deliver_now:
            outcome = await self._deliver(message.id)
            if outcome is not None:
                message.delivery = outcome
        elif not internal:
            self._wake.set()
        return message

    async def _deliver_locally(self, adapter: ChannelAdapter, message: Message,
                               conv: Conversation, case: Case) -> None:
        """Hand a message stored as sent to an adapter that delivers on this node."""
        try:
            await adapter.deliver(_outbound(message, conv, case.number, []))
        except Exception:  # stored and marked sent: the citizen reads it on reconnecting
            log.exception("local adapter %s failed", conv.channel)

    async def _deliver(self, message_id: str, *, first: bool = True) -> str | None:
        """One delivery attempt; the message's delivery state after it ("sent", "pending"
        for a retry, "failed"), or None when no attempt was made."""
        channels = [str(c) for c in self.adapters]
        if not channels:
            return None  # delivered when the adapter registers or the citizen reconnects
        now = self.clock.now()
        # One transaction claims the entry (only on a channel with an adapter: the others
        # wait for theirs) and reads everything the adapter needs; a second one, after
        # the provider answered, records the outcome.
        claimed = await self._retrying(lambda s: _claim(s, message_id, now, first, channels))
        if claimed is None:
            return None  # sent, no adapter, or another attempt (timer, other node) holds it
        entry_id, attempts, message, conv, case_number, inbound_ids = claimed
        adapter = self.adapters.get(Channel(conv.channel))
        if adapter is None:
            return None  # delivered when the adapter registers or the citizen reconnects
        outbound = _outbound(message, conv, case_number, inbound_ids)
        now = self.clock.now()
        try:
            provider_id = await adapter.deliver(outbound)
        except DeliveryError as exc:
            return await self._delivery_failed(entry_id, attempts, message, str(exc),
                                               exc.permanent, now)
        except Exception as exc:  # an adapter bug must not lose the message: retry it
            log.exception("adapter %s failed", conv.channel)
            return await self._delivery_failed(entry_id, attempts, message, type(exc).__name__,
                                               False, now)
        await self._retrying(lambda s: _mark_sent(s, entry_id, message.id, provider_id, now))
        return "sent"

    async def _delivery_failed(self, entry_id: str, attempts_before: int, message: Message,
                               error: str, permanent: bool, now: datetime) -> str:
        attempts = attempts_before + 1
        final = permanent or attempts > len(DELIVERY_BACKOFF)
        delay = DELIVERY_BACKOFF[min(attempts - 1, len(DELIVERY_BACKOFF) - 1)]

        async def record(s: AsyncSession) -> None:
            # One transaction, UPDATEs by primary key: the entry's next attempt (or its
            # end) and, when final, the message's delivery state.
            changes: list[tuple[Any, str, dict[str, Any]]] = [
                (OutboxEntry, entry_id, {"attempts": attempts, "last_error": error[:500],
                                         "status": "failed" if final else "pending",
                                         "next_attempt_at": now + timedelta(seconds=delay)})]
            if final:
                changes.append((Message, message.id, {"delivery": "failed"}))
            for model, key, values in changes:
                result = await s.execute(update(model).where(model.id == key).values(**values)
                                         .execution_options(synchronize_session=False))
                if getattr(result, "rowcount", 1) != 1:
                    raise NotFound(model.__tablename__, key)

        await self._retrying(record)
        await self.bus.publish(DeliveryFailed(message.id, message.conversation_id,
                                              message.channel, error, attempts, final))
        self._wake.set()
        return "failed" if final else "pending"

    async def _deliver_pending(self) -> None:
        """Deliver every outbox entry that is due (after a restart, or a retry delay)."""
        channels = [str(c) for c in self.adapters]
        if not channels:
            return  # nothing can be sent before an adapter registers
        now = self.clock.now()
        async with self.db.sessions() as s:
            due = (await s.scalars(
                select(OutboxEntry.message_id).where(OutboxEntry.status.in_(("pending", "sending")),
                                                     OutboxEntry.next_attempt_at <= now,
                                                     OutboxEntry.channel.in_(channels))
                .order_by(OutboxEntry.created_at).limit(500))).all()
        for message_id in due:
            await self._deliver(message_id, first=False)

    async def retry_deliveries(self) -> None:
        """Deliver what is due now (called by the timer loop; public for tests and ops)."""
        await self._deliver_pending()

    # -- cases and agents ---------------------------------------------------------------

    async def update_case(self, case_id: str, actor: Actor, **changes: Any) -> Case:
        """Change a case's category, status, priority, department, subject or resolution.

        Resolving computes one-stop resolution: resolved within its first conversation
        with no transfer and no back-office escalation.
        """
        allowed = {"category", "status", "priority", "department", "subject", "resolution",
                   "description", "csat"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
        now = self.clock.now()

        async def apply(s: AsyncSession) -> tuple[Case, dict[str, Any]]:
            case = await s.get(Case, case_id)
            if case is None:
                raise NotFound("case", case_id)
            done: dict[str, Any] = {}
            old_status = case.status
            for key, value in changes.items():
                if key == "status":
                    value = str(CaseStatus(value))
                if getattr(case, key) != value:
                    done[key] = value
                    setattr(case, key, value)
            if "category" in done:
                self._set_sla(case, case.created_at)
            if "status" in done:
                self._sla_status_changed(case, old_status, now)
            if done.get("status") == CaseStatus.RESOLVED:
                case.resolved_at = now
                case.one_stop = (case.conversation_count <= 1 and case.transfers == 0
                                 and case.escalations == 0)
            if done.get("status") == CaseStatus.CLOSED:
                case.closed_at = now
            if done:
                case.updated_at = now
                self._timeline(s, "case_changed", now, case.citizen_id, case.id, None,
                               actor_id=actor.id, data={"changes": done})
            return case, done

        case, done = await self._retrying(apply)
        if done:
            await self.bus.publish(CaseChanged(case.id, case.number, case.citizen_id,
                                               case.status, done))
        return case

    async def set_agent_phone(self, agent_id: str, *, device: str,
                              number: str | None = None) -> Agent:
        """Where the agent's calls ring: "browser" (the console's phone) or "phone" (their
        own number, given now or before; `Conflict` without one). A number given is kept
        either way (`""` forgets it), normalised to E.164 (`InvalidIdentity` when it is
        not a phone number)."""
        if device not in ("browser", "phone"):
            raise Conflict(f"device must be browser or phone, not {device!r}")
        if number:
            number = normalise_hint(IdentityHint(IdentityKind.PHONE, number)).value

        async def store(s: AsyncSession) -> Agent:
            agent = await s.get(Agent, agent_id)
            if agent is None:
                raise NotFound("agent", agent_id)
            if number is not None:
                agent.phone_number = number or None
            if device == "phone" and not agent.phone_number:
                raise Conflict("a phone number is needed to take calls on a phone")
            agent.voice_device = device
            return agent

        return await self._retrying(store)

    async def upsert_agent(
        self, *, username: str, display_name: str, password_hash: str, roles: Sequence[str],
        skills: Mapping[str, int], languages: Sequence[str], capacity: Mapping[str, int],
        department: str | None = None,
    ) -> str:
        """Create or update a staff user and tell the router; returns the agent id."""
        now = self.clock.now()

        async def store(s: AsyncSession) -> Agent:
            agent = await s.scalar(select(Agent).where(Agent.username == username))
            if agent is None:
                agent = Agent(id=new_id(), username=username, created_at=now,
                              presence=str(Presence.OFFLINE), presence_since=now, active=True,
                              failed_logins=0, password_hash=password_hash)
                s.add(agent)
            agent.display_name, agent.password_hash = display_name, password_hash
            agent.roles, agent.skills = list(roles), dict(skills)
            agent.languages, agent.capacity = list(languages), dict(capacity)
            agent.department = department
            return agent

        agent = await self._retrying(store)
        profile = _profile(agent)
        await self._route("agent", id=profile.id, skills=dict(profile.skills),
                          languages=list(profile.languages),
                          capacity={str(k): v for k, v in profile.capacity.items()},
                          attributes=dict(profile.attributes))
        return agent.id

    async def audit(self, actor: Actor, action: str, subject_type: str,
                    subject_id: str | None, citizen_id: str | None,
                    reason: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        """Record who viewed or changed a citizen's data."""
        now = self.clock.now()

        async def store(s: AsyncSession) -> None:
            s.add(AuditEntry(id=new_id(), at=now, actor_id=actor.id, actor_role=actor.role,
                             action=action, subject_type=subject_type, subject_id=subject_id,
                             citizen_id=citizen_id, reason=reason,
                             request_id=actor.request_id, data=dict(data or {})))

        await self._retrying(store)

    # -- the single citizen view ---------------------------------------------------------

    async def citizen_view(self, citizen_id: str, actor: Actor,
                           reason: str | None = None) -> dict[str, Any]:
        """The citizen 360: profile, identities (the national ID masked for roles that do
        not need it), vulnerability flags, cases, pending merge suggestions, consents.
        Every view is written to the audit log."""
        today = self.clock.now().date()
        rules = self.settings.citizens
        async with self.db.sessions() as s:
            citizen = await citizens.live(s, citizen_id)
            identities = (await s.scalars(select(Identity).where(
                Identity.citizen_id == citizen.id).order_by(Identity.created_at))).all()
            cases = (await s.scalars(select(Case).where(Case.citizen_id == citizen.id)
                                     .order_by(Case.created_at.desc()))).all()
            suggestions = (await s.scalars(select(MergeSuggestion).where(
                (MergeSuggestion.citizen_id == citizen.id)
                | (MergeSuggestion.other_id == citizen.id),
                MergeSuggestion.status == "pending"))).all()
            consents = (await s.scalars(select(Consent).where(
                Consent.citizen_id == citizen.id).order_by(Consent.at))).all()
        unmasked = actor.role in rules.national_id_visible_to or actor.role == "system"
        await self.audit(actor, "view", "citizen", citizen.id, citizen.id, reason)
        latest: dict[str, bool] = {}
        for consent in consents:
            latest[consent.purpose] = consent.granted
        return {
            "id": citizen.id,
            "name_th": citizen.name_th, "name_en": citizen.name_en,
            "birth_date": citizen.birth_date,
            "address": (citizen.attributes or {}).get("address"),
            "flags": citizens.vulnerability(citizen, today, rules),
            "erased": citizen.erased_at is not None,
            "identities": [
                {"id": i.id, "kind": i.kind, "verified": i.verified, "verified_by": i.verified_by,
                 "value": i.value if (unmasked or i.kind != IdentityKind.NATIONAL_ID)
                 else mask(i.kind, i.value)}
                for i in identities
            ],
            "cases": [{"id": c.id, "number": c.number, "status": c.status,
                       "category": c.category, "created_at": c.created_at,
                       "open": c.status in OPEN_CASE_STATUSES} for c in cases],
            "suggestions": [{"id": g.id, "other_id": g.other_id if g.citizen_id == citizen.id
                             else g.citizen_id, "evidence": g.evidence} for g in suggestions],
            "consents": latest,
        }

    async def timeline(self, citizen_id: str, actor: Actor, *, kinds: Sequence[str] = (),
                       channel: str | None = None, case_id: str | None = None,
                       since: datetime | None = None, until: datetime | None = None,
                       limit: int = 500) -> list[dict[str, Any]]:
        """Every conversation, message, hand-off, task step, case change, merge and rating
        of a citizen in one chronological list, with filters. Audited."""
        async with self.db.sessions() as s:
            citizen = await citizens.live(s, citizen_id)
            conversations = {c.id: c for c in (await s.scalars(select(Conversation).where(
                Conversation.citizen_id == citizen.id))).all()}
            events = (await s.scalars(select(TimelineEvent).where(
                TimelineEvent.citizen_id == citizen.id))).all()
            messages = (await s.scalars(select(Message).where(
                Message.conversation_id.in_(list(conversations))))).all()
        await self.audit(actor, "view_timeline", "citizen", citizen.id, citizen.id)
        entries: list[dict[str, Any]] = []
        for e in events:
            conv = conversations.get(e.conversation_id or "")
            entries.append({"at": e.at, "kind": e.kind, "case_id": e.case_id,
                            "conversation_id": e.conversation_id,
                            "channel": conv.channel if conv else None,
                            "actor_id": e.actor_id, "data": e.data})
        for m in messages:
            conv = conversations[m.conversation_id]
            entries.append({"at": m.created_at, "kind": "message", "case_id": conv.case_id,
                            "conversation_id": conv.id, "channel": m.channel,
                            "actor_id": m.author_id,
                            "data": {"direction": m.direction, "author": m.author,
                                     "internal": m.internal, "body": m.body, "seq": m.seq}})
        out = [
            e for e in entries
            if (not kinds or e["kind"] in kinds) and (channel is None or e["channel"] == channel)
            and (case_id is None or e["case_id"] == case_id)
            and (since is None or e["at"] >= since) and (until is None or e["at"] <= until)
        ]
        out.sort(key=lambda e: (e["at"], e["kind"] != "conversation_opened"))
        return out[:limit]

    async def add_identity(self, citizen_id: str, hint: IdentityHint, actor: Actor) -> list[str]:
        """An agent adds (and may verify) an identifier; one owned by another record
        merges it (verified) or proposes a merge. Returns merged record ids."""
        checked = normalise_hint(hint)
        now = self.clock.now()

        async def apply(s: AsyncSession) -> list[str]:
            citizen = await citizens.live(s, citizen_id)
            return await citizens.attach(s, citizen.id, [checked], now, self.settings.citizens)

        merged = await self._retrying(apply)
        await self.audit(actor, "add_identity", "citizen", citizen_id, citizen_id,
                         data={"kind": str(checked.kind), "verified_by": checked.verified_by})
        return merged

    async def merge_citizens(self, source_id: str, target_id: str, actor: Actor,
                             reason: str | None = None) -> str:
        """Fold one citizen record into another (audited; undo with `unmerge_citizens`)."""
        now = self.clock.now()
        record = await self._retrying(
            lambda s: citizens.merge(s, source_id, target_id, now, actor.id, reason))
        await self.audit(actor, "merge", "citizen", record.target_id, record.target_id, reason,
                         data={"merge_id": record.id, "source": record.source_id})
        await self.bus.publish(CitizensMerged(record.id, record.source_id, record.target_id))
        return record.id

    async def unmerge_citizens(self, merge_id: str, actor: Actor) -> None:
        """Undo a merge exactly (audited)."""
        now = self.clock.now()
        record = await self._retrying(lambda s: citizens.unmerge(s, merge_id, now, actor.id))
        await self.audit(actor, "unmerge", "citizen", record.target_id, record.target_id,
                         data={"merge_id": merge_id, "source": record.source_id})
        await self.bus.publish(CitizensMerged(record.id, record.source_id, record.target_id,
                                              undone=True))

    async def decide_suggestion(self, suggestion_id: str, confirm: bool, actor: Actor) -> None:
        """An agent confirms (merge) or rejects a merge suggestion."""
        async with self.db.sessions() as s:
            row = await s.get(MergeSuggestion, suggestion_id)
        if row is None:
            raise NotFound("suggestion", suggestion_id)
        if row.status != "pending":
            raise Conflict(f"suggestion already {row.status}")
        if confirm:
            await self.merge_citizens(row.other_id, row.citizen_id, actor, "suggestion confirmed")
        else:
            now = self.clock.now()
            await self._retrying(lambda s: _set(s, MergeSuggestion, suggestion_id,
                                                status="rejected", decided_at=now,
                                                decided_by=actor.id))
            await self.audit(actor, "reject_suggestion", "citizen", row.citizen_id,
                             row.citizen_id, data={"other": row.other_id})

    async def update_profile(self, citizen_id: str, changes: Mapping[str, Any], actor: Actor,
                             verified_by: str | None = None) -> list[str]:
        """Tell once: the change is recorded on the one citizen record, seen everywhere,
        and the departments interested in each field are told through the bus."""
        now = self.clock.now()

        async def apply(s: AsyncSession) -> tuple[str, list[str]]:
            citizen, changed = await citizens.update_profile(s, citizen_id, changes,
                                                             verified_by, now)
            if changed:
                self._timeline(s, "profile_changed", now, citizen.id, None, None,
                               actor_id=actor.id, data={"fields": changed})
                if {"name_th", "birth_date"} & set(changed):
                    await citizens.suggest_by_profile(s, citizen, now, self.settings.citizens)
            return citizen.id, changed

        live_id, changed = await self._retrying(apply)
        if changed:
            await self.audit(actor, "change", "citizen", live_id, live_id,
                             data={"fields": changed})
            interested = sorted({d for f in changed
                                 for d in self.settings.citizens.tell_once.get(f, [])})
            await self.bus.publish(CitizenChanged(live_id, tuple(changed), tuple(interested)))
        return changed

    async def set_flags(self, citizen_id: str, flags: Sequence[str], actor: Actor) -> None:
        """Set the vulnerable-group flags an agent or kiosk knows (disability card…)."""
        unknown = set(flags) - citizens.MANUAL_FLAGS
        if unknown:
            raise ValueError(f"flags: unknown {', '.join(sorted(unknown))}")

        async def apply(s: AsyncSession) -> str:
            citizen = await citizens.live(s, citizen_id)
            citizen.flags = sorted(set(flags))
            return citizen.id

        live_id = await self._retrying(apply)
        await self.audit(actor, "change", "citizen", live_id, live_id, data={"flags": list(flags)})

    async def record_consent(self, citizen_id: str, purpose: str, granted: bool, actor: Actor,
                             channel: str | None = None, note: str | None = None) -> None:
        """Record a consent given or withdrawn for one purpose."""
        if purpose not in self.settings.citizens.consent_purposes:
            raise ValueError(f"purpose: {purpose!r} is not one of "
                             f"{', '.join(self.settings.citizens.consent_purposes)}")
        now = self.clock.now()

        async def apply(s: AsyncSession) -> str:
            citizen = await citizens.live(s, citizen_id)
            s.add(Consent(id=new_id(), citizen_id=citizen.id, purpose=purpose, granted=granted,
                          channel=channel, actor_id=actor.id, note=note, at=now))
            return citizen.id

        live_id = await self._retrying(apply)
        await self.audit(actor, "consent", "citizen", live_id, live_id,
                         data={"purpose": purpose, "granted": granted})

    async def export_citizen(self, citizen_id: str, actor: Actor) -> dict[str, Any]:
        """Everything held about a citizen (PDPA subject access), audited."""
        async with self.db.sessions() as s:
            data = await citizens.export(s, citizen_id)
        await self.audit(actor, "export", "citizen", data["citizen"]["id"],
                         data["citizen"]["id"])
        return data

    async def erase_citizen(self, citizen_id: str, actor: Actor, reason: str) -> None:
        """Anonymise a citizen while keeping the statistics (PDPA erasure), audited."""
        now = self.clock.now()
        await self._retrying(lambda s: citizens.erase(s, citizen_id, now))
        await self.audit(actor, "erase", "citizen", citizen_id, citizen_id, reason)

    async def link_conversation(self, conversation_id: str, case_number: str,
                                actor: Actor) -> None:
        """Put a conversation under another case of the same citizen (e.g. a caller
        asking about a case opened by email)."""
        now = self.clock.now()

        async def apply(s: AsyncSession) -> tuple[str, str]:
            conv = await s.get(Conversation, conversation_id)
            if conv is None:
                raise NotFound("conversation", conversation_id)
            case = await s.scalar(select(Case).where(Case.number == case_number))
            if case is None:
                raise NotFound("case", case_number)
            owner = await citizens.live(s, conv.citizen_id)
            if (await citizens.live(s, case.citizen_id)).id != owner.id:
                raise Conflict("the case belongs to another citizen; merge the records first")
            old = await s.get_one(Case, conv.case_id)
            if old.id == case.id:
                return old.id, case.id
            conv.case_id = case.id
            old.conversation_count = max(0, old.conversation_count - 1)
            case.conversation_count += 1
            await s.execute(update(Task).where(Task.conversation_id == conv.id)
                            .values(case_id=case.id))
            if old.conversation_count == 0 and old.status in OPEN_CASE_STATUSES:
                old.status, old.closed_at = str(CaseStatus.CLOSED), now
                old.resolution = f"merged into {case.number}"
            self._timeline(s, "conversation_linked", now, owner.id, case.id, conv.id,
                           actor_id=actor.id, data={"from_case": old.number})
            return old.id, case.id

        old_id, new_id_ = await self._retrying(apply)
        await self.audit(actor, "link_conversation", "case", new_id_, None,
                         data={"conversation": conversation_id, "from_case": old_id})

    # -- back-office consultation ------------------------------------------------------

    async def consult(self, case_id: str, department: str, question: str, actor: Actor) -> str:
        """Consult a department on a case: the case waits on the back office (with its own
        SLA clock), counts as escalated, and `ConsultationRequested` tells the department's
        channel. Returns the consultation id."""
        spec = self.settings.departments.get(department)
        if spec is None:
            raise ValueError(f"department: unknown department {department!r}")
        if not question.strip():
            raise ValueError("question: empty")
        now = self.clock.now()

        async def apply(s: AsyncSession) -> tuple[Consultation, Case]:
            case = await s.get(Case, case_id)
            if case is None:
                raise NotFound("case", case_id)
            consultation = Consultation(
                id=new_id(), case_id=case.id, department=department, question=question,
                status="open", requested_by=actor.id, requested_at=now,
                due_at=self._case_hours(case).add_business_time(now, spec.consult_hours * 3600))
            s.add(consultation)
            old = case.status
            case.status, case.escalations = str(CaseStatus.PENDING_BACK_OFFICE), \
                case.escalations + 1
            case.department = case.department or department
            case.updated_at = now
            self._sla_status_changed(case, old, now)
            self._timeline(s, "consultation_requested", now, case.citizen_id, case.id, None,
                           actor_id=actor.id, data={"department": department,
                                                    "consultation_id": consultation.id})
            return consultation, case

        consultation, case = await self._retrying(apply)
        await self._case_note(case.id, f"ปรึกษา {spec.name.th} / Consulted {spec.name.en}: "
                              f"{question}", actor.id)
        await self.bus.publish(ConsultationRequested(
            consultation.id, case.id, case.number, case.category, department, question,
            actor.id, consultation.due_at.isoformat()))
        await self.bus.publish(CaseChanged(case.id, case.number, case.citizen_id, case.status,
                                           {"status": case.status}))
        return consultation.id

    async def consultation_reply(self, consultation_id: str, text: str, author: str,
                                 reply_id: str) -> bool:
        """A department's answer becomes an internal note on the case (idempotent on
        `reply_id`, e.g. the Slack message's ts). False when already recorded."""
        if not await self.record_event("consultation-reply", f"{consultation_id}:{reply_id}",
                                       {}):
            return False
        now = self.clock.now()

        async def apply(s: AsyncSession) -> Consultation:
            consultation = await s.get(Consultation, consultation_id)
            if consultation is None:
                raise NotFound("consultation", consultation_id)
            if consultation.answered_at is None:
                consultation.answered_at = now
            if consultation.status == "open":
                consultation.status = "answered"
            return consultation

        consultation = await self._retrying(apply)
        await self._case_note(consultation.case_id, f"{author}: {text}", None,
                              author_name=author)
        await self.bus.publish(ConsultationChanged(consultation.id, consultation.case_id,
                                                   consultation.status, text, author))
        return True

    async def close_consultation(self, consultation_id: str, actor: Actor,
                                 resolution: str | None = None) -> None:
        """Close a consultation; the case stops waiting on the back office when none is
        left open."""
        now = self.clock.now()

        async def apply(s: AsyncSession) -> tuple[Consultation, Case]:
            consultation = await s.get(Consultation, consultation_id)
            if consultation is None:
                raise NotFound("consultation", consultation_id)
            if consultation.status == "closed":
                raise Conflict("the consultation is already closed")
            consultation.status, consultation.closed_at = "closed", now
            consultation.resolution = resolution
            case = await s.get_one(Case, consultation.case_id)
            still_open = await s.scalar(select(func.count()).select_from(Consultation).where(
                Consultation.case_id == case.id, Consultation.status != "closed",
                Consultation.id != consultation.id))
            if not still_open and case.status == CaseStatus.PENDING_BACK_OFFICE:
                case.status, case.updated_at = str(CaseStatus.OPEN), now
            self._timeline(s, "consultation_closed", now, case.citizen_id, case.id, None,
                           actor_id=actor.id, data={"consultation_id": consultation.id})
            return consultation, case

        consultation, case = await self._retrying(apply)
        await self.bus.publish(ConsultationChanged(consultation.id, case.id, "closed",
                                                   resolution, actor.id))
        await self.bus.publish(CaseChanged(case.id, case.number, case.citizen_id, case.status,
                                           {"status": case.status}))

    async def set_consultation_ref(self, consultation_id: str, ref: str) -> None:
        """Remember where the consultation lives at the department (a Slack thread)."""
        await self._retrying(lambda s: _set(s, Consultation, consultation_id, external_ref=ref))

    async def consultation(self, consultation_id: str) -> Consultation:
        async with self.db.sessions() as s:
            row = await s.get(Consultation, consultation_id)
        if row is None:
            raise NotFound("consultation", consultation_id)
        return row

    async def consultation_by_ref(self, ref: str) -> Consultation | None:
        async with self.db.sessions() as s:
            return await s.scalar(select(Consultation).where(Consultation.external_ref == ref))

    async def _case_note(self, case_id: str, text: str, actor_id: str | None,
                         author_name: str | None = None) -> None:
        """An internal note on the case's most recent conversation (what agents read)."""
        async with self.db.sessions() as s:
            conversation_id = await s.scalar(
                select(Conversation.id).where(Conversation.case_id == case_id)
                .order_by(Conversation.started_at.desc()).limit(1))
        if conversation_id is not None:
            await self.send_message(conversation_id, text, author=Author.SYSTEM,
                                    author_id=actor_id, author_name=author_name, internal=True)

    async def open_cases(self, citizen_id: str) -> list[Case]:
        """The citizen's open cases, newest first (offered to a returning caller)."""
        async with self.db.sessions() as s:
            citizen = await citizens.live(s, citizen_id)
            return list((await s.scalars(select(Case).where(
                Case.citizen_id == citizen.id,
                Case.status.in_([str(x) for x in OPEN_CASE_STATUSES]))
                .order_by(Case.updated_at.desc()))).all())

    # -- queries ------------------------------------------------------------------------

    async def conversation(self, conversation_id: str) -> Conversation:
        async with self.db.sessions() as s:
            conv = await s.get(Conversation, conversation_id)
        if conv is None:
            raise NotFound("conversation", conversation_id)
        return conv

    async def case(self, case_id: str) -> Case:
        async with self.db.sessions() as s:
            case = await s.get(Case, case_id)
        if case is None:
            raise NotFound("case", case_id)
        return case

    async def case_by_number(self, number: str) -> Case:
        async with self.db.sessions() as s:
            case = await s.scalar(select(Case).where(Case.number == number))
        if case is None:
            raise NotFound("case", number)
        return case

    async def task(self, task_id: str) -> Task:
        async with self.db.sessions() as s:
            task = await s.get(Task, task_id)
        if task is None:
            raise NotFound("task", task_id)
        return task

    async def messages(self, conversation_id: str, after_seq: int = 0,
                       include_internal: bool = True) -> list[Message]:
        """Messages of a conversation in order, optionally only those after a sequence."""
        async with self.db.sessions() as s:
            query = select(Message).where(Message.conversation_id == conversation_id,
                                          Message.seq > after_seq).order_by(Message.seq)
            if not include_internal:
                query = query.where(Message.internal.is_(False))
            return list((await s.scalars(query)).all())

    async def agent_by_username(self, username: str) -> Agent | None:
        async with self.db.sessions() as s:
            return await s.scalar(select(Agent).where(Agent.username == username))

    async def agent_record(self, agent_id: str) -> Agent:
        async with self.db.sessions() as s:
            agent = await s.get(Agent, agent_id)
        if agent is None:
            raise NotFound("agent", agent_id)
        return agent

    async def list_rows(self, model: type[T], *conditions: Any, order_by: Any = None,
                        limit: int = 100, offset: int = 0) -> tuple[list[T], int]:
        """A page of rows of one table and the total count (for the REST API)."""
        async with self.db.sessions() as s:
            query = select(model).where(*conditions)
            total = await s.scalar(select(func.count()).select_from(query.subquery()))
            if order_by is not None:
                query = query.order_by(order_by)
            rows = (await s.scalars(query.limit(limit).offset(offset))).all()
        return list(rows), int(total or 0)

    def queue_position(self, task_id: str) -> tuple[int | None, float | None]:
        """Where a waiting task stands in its queue, and the estimated wait in seconds."""
        if not self.router.has_task(task_id):
            return None, None
        return self.router.queue_position(task_id), self.router.estimated_wait(task_id)

    # -- internals ----------------------------------------------------------------------

    async def _route(self, op: str, **args: Any) -> None:
        """A routing command: carried out here when this node runs the router, otherwise
        by the node that does; returns once this node's view of the router includes it."""
        if self.cluster is None or self.leading:
            await self.execute(op, args)
            return
        version = await self.cluster.call(op, args)
        await self._replica.caught_up(version)

    async def _apply(self, events: Sequence[RouterEvent], *,
                     always_publish: bool = False, flush: bool = False) -> None:
        """Persist what the router decided, then publish it (in a cluster, with the
        router's new state for the followers)."""
        if not events and not always_publish:
            return
        if events:
            await self._retrying(lambda s: self._persist(s, events))
        for event in events:
            await self.bus.publish_local(event)
            if isinstance(event, TaskFinished):
                self._router.forget(event.task_id or "")
        self._counter += 1
        if self.cluster is not None:
            encoded = [e for e in map(encode_event, events) if e is not None]
            await self._publish(encoded, flush=flush or always_publish)

    async def _publish(self, events: list[dict[str, Any]], *, flush: bool) -> None:
        """Send the decision's events now; the router's state with them when a follower
        waits for it, otherwise at most every 100 ms (computing it costs ~10 ms per 500
        tasks, and a busy floor makes dozens of decisions a second)."""
        assert self.cluster is not None
        now = time.monotonic()
        state = None
        if flush or now - self._published_at >= STATE_EVERY:
            state, self._published_at = self._state(), now
        elif self._flush_later is None:
            self._flush_later = asyncio.get_running_loop().call_later(
                STATE_EVERY, lambda: self._spawn(self._publish_state(), "router-state"))
        await self.cluster.publish_router(self._version(), state, events)

    async def _publish_state(self) -> None:
        self._flush_later = None
        async with self._lock:
            if self.leading and self.cluster is not None:
                self._published_at = time.monotonic()
                await self.cluster.publish_router(self._version(), self._state(), [])

    def _state(self) -> dict[str, Any]:
        return router_state(self._router, self.settings, self.clock.now().timestamp())

    async def _persist(self, s: AsyncSession, events: Sequence[RouterEvent]) -> None:
        for e in events:
            at = datetime.fromtimestamp(e.at, tz=self.clock.now().tzinfo)
            task = await s.get(Task, e.task_id) if e.task_id else None
            if isinstance(e, PresenceChanged):
                await _set(s, Agent, e.agent_id or "", presence=str(e.presence),
                           presence_reason=e.reason, presence_since=at)
                continue
            if task is None:
                continue
            if isinstance(e, TaskQueued | TaskMoved):
                task.queue_id = e.queue if isinstance(e, TaskQueued) else e.to_queue
                task.status, task.agent_id = str(TaskStatus.PENDING), None
                if isinstance(e, TaskQueued):
                    task.workflow_filter, task.priority = e.workflow_filter, e.priority
                await _set(s, Conversation, task.conversation_id, queue_id=task.queue_id)
            elif isinstance(e, TaskOffered):
                task.status, task.agent_id = str(TaskStatus.RESERVED), e.agent_id
                task.offered_at = at
            elif isinstance(e, OfferMissed | OfferWithdrawn | TaskRejected):
                task.status, task.agent_id = str(TaskStatus.PENDING), None
                if isinstance(e, OfferMissed):
                    task.missed_count += 1
                self._timeline(s, type(e).__name__, at, task.citizen_id, task.case_id,
                               task.conversation_id, task.id, actor_id=e.agent_id)
            elif isinstance(e, TaskAccepted):
                task.status, task.agent_id = str(TaskStatus.ASSIGNED), e.agent_id
                task.assigned_at = at
                task.wait_seconds = e.wait_seconds
                await _set(s, Conversation, task.conversation_id,
                           status=str(ConversationStatus.AGENT), agent_id=e.agent_id)
                case = await s.get_one(Case, task.case_id)
                if case.status == CaseStatus.NEW:
                    case.status = str(CaseStatus.OPEN)
                self._timeline(s, "task_accepted", at, task.citizen_id, task.case_id,
                               task.conversation_id, task.id, actor_id=e.agent_id,
                               data={"wait_seconds": round(e.wait_seconds, 1)})
            elif isinstance(e, TaskWrapping):
                task.status, task.wrap_started_at = str(TaskStatus.WRAPPING), at
            elif isinstance(e, TaskFinished):
                task.status, task.finished_at = str(e.status), at
                task.reason = e.reason or task.reason
                if e.wait_seconds is not None and task.wait_seconds is None:
                    task.wait_seconds = e.wait_seconds
                self._timeline(s, f"task_{e.status}", at, task.citizen_id, task.case_id,
                               task.conversation_id, task.id, actor_id=e.agent_id)

    async def _update_conversation(self, conversation_id: str, **values: Any) -> None:
        await self._retrying(lambda s: _set(s, Conversation, conversation_id, **values))

    def _timeline(self, s: AsyncSession, kind: str, at: datetime, citizen_id: str | None,
                  case_id: str | None, conversation_id: str | None, task_id: str | None = None,
                  *, actor_id: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        s.add(TimelineEvent(id=new_id(), at=at, kind=kind, citizen_id=citizen_id,
                            case_id=case_id, conversation_id=conversation_id, task_id=task_id,
                            actor_id=actor_id, data=dict(data or {})))

    async def _retrying(self, work: Callable[[AsyncSession], Awaitable[T]],
                        attempts: int = 6) -> T:
        """Run `work` in one transaction; retry on a lost race (unique key, busy SQLite)."""
        for attempt in range(attempts):
            try:
                async with self.db.sessions() as s, s.begin():
                    return await work(s)
            except DBAPIError as exc:  # IntegrityError, OperationalError, a deadlock…
                retryable = isinstance(exc, IntegrityError) or "locked" in str(exc) or (
                    "busy" in str(exc).lower()) or "could not serialize" in str(exc) or (
                    "deadlock detected" in str(exc))
                if not retryable or attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.01 * (2**attempt))
        raise AssertionError("unreachable")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)

    async def _run_timers(self) -> None:
        next_retry = next_sweep = next_beat = 0.0
        while not self._stopping:
            deadline = self._router.next_deadline() if self._leading else None
            now = self.clock.now().timestamp()
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - now))
            self._wake.clear()
            await wait_or_timeout(self._wake, timeout)
            try:
                if self.leading:
                    async with self._lock:
                        if self.leading:
                            await self._apply(self._router.tick(self.clock.now().timestamp()))
                    if now >= next_sweep:
                        next_sweep = now + 5.0
                        await self._sweep()
                    if self.cluster is not None and now >= next_beat:
                        next_beat = now + 1.0  # estimates and service levels drift
                        await self._publish_state()
                if now >= next_retry:
                    next_retry = now + 1.0
                    await self._deliver_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancelling():  # a library turned our cancellation into its own error
                    raise asyncio.CancelledError from None
                log.exception("router timer failed")
                await asyncio.sleep(1.0)

    async def _sweep(self) -> None:
        """Route every unfinished task the router does not know: one stored while no node
        led, or whose command was lost with a node. In a cluster only tasks older than a
        routing command may live: a younger one's submission may still be on its way from
        the node that stored it, and routing it here first would let that late command
        route it again once it is done."""
        async with self._lock:
            if not self.leading:
                return
            unfinished = [str(x) for x in TaskStatus if not x.is_final]
            query = select(Task.id).where(Task.status.in_(unfinished))
            if self.cluster is not None:
                query = query.where(Task.created_at < self.clock.now() - timedelta(
                    seconds=self.cluster.call_timeout))
            async with self.db.sessions() as s:
                ids = (await s.scalars(query)).all()
                missing = [i for i in ids if not self._router.has_task(i)]
                tasks = (await s.scalars(select(Task).where(
                    Task.id.in_(missing), Task.status.in_(unfinished))
                    .order_by(Task.enqueued_at, Task.id))).all() if missing else []
            ts = self.clock.now().timestamp()
            events: list[RouterEvent] = []
            for task in tasks:
                log.info("sweep: routing a stored task", extra={"task": task.id})
                events += self._router.submit(task.id, Channel(task.channel), task.attributes,
                                              ts, enqueued_at=task.enqueued_at.timestamp())
            await self._apply(events)
        for conversation_id in await self._unanswered():
            log.info("sweep: handing an unanswered conversation to people",
                     extra={"conversation": conversation_id})
            await self.hand_to_people(conversation_id, reason="unanswered")

    async def _unanswered(self) -> list[str]:
        """Conversations whose citizen's latest message, over a minute old, has had no answer
        from the bot or a person, and that nobody is taking up: the node that stored the
        message died before the bot answered or the hand-off was made (system notices such
        as "the assistant is unavailable" are not answers). Acknowledged means answered,
        eventually. Looks back one day."""
        now = self.clock.now()
        stale = now - timedelta(seconds=60)
        channels = [str(c) for c in self.settings.channels
                    if self.settings.channel(c).entry != "ivr"]
        open_task = select(Task.id).where(
            Task.conversation_id == Conversation.id,
            Task.status.in_([str(x) for x in TaskStatus if not x.is_final]))
        last = aliased(Message)
        last_citizen_seq = select(func.max(Message.seq)).where(
            Message.conversation_id == Conversation.id,
            Message.direction == str(Direction.INBOUND),
            Message.author == str(Author.CITIZEN)).correlate(Conversation).scalar_subquery()
        answered = select(Message.id).where(
            Message.conversation_id == Conversation.id, Message.seq > last.seq,
            Message.author.in_([str(Author.BOT), str(Author.AGENT)]))
        async with self.db.sessions() as s:
            return list((await s.scalars(
                select(Conversation.id)
                .join(last, (last.conversation_id == Conversation.id)
                      & (last.seq == last_citizen_seq))
                .where(Conversation.status.in_([str(ConversationStatus.BOT),
                                                str(ConversationStatus.QUEUED)]),
                       Conversation.channel.in_(channels),
                       Conversation.last_message_at > now - timedelta(days=1),
                       last.created_at < stale,
                       ~open_task.exists(),
                       ~answered.exists())
                .limit(100))).all())


async def wait_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Wait for `event` at most `seconds`. Unlike `asyncio.wait_for` on Python 3.11, a
    cancellation arriving as the time runs out is never swallowed, so a loop built on this
    always stops when its task is cancelled."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


# ---------------------------------------------------------------------------------------
# Routing commands: what a node asks of the router, by name and with JSON-ready arguments,
# so that in a cluster a follower can send them to the leader.


def _op_submit(r: Router, now: float, task_id: str, channel: str,
               attributes: Mapping[str, Any], enqueued_at: float) -> list[RouterEvent]:
    if r.has_task(task_id) or r.finished_recently(task_id):
        return []  # already routed (the sweep or a takeover found it first), or done
    return r.submit(task_id, Channel(channel), attributes, now, enqueued_at=enqueued_at)


def _op_presence(r: Router, now: float, agent_id: str, presence: str,
                 reason: str | None) -> list[RouterEvent]:
    return r.set_presence(agent_id, Presence(presence), now, reason)


def _op_accept(r: Router, now: float, task_id: str, agent_id: str) -> list[RouterEvent]:
    if r.has_task(task_id):
        view = r.task(task_id)
        if view.status is TaskStatus.ASSIGNED and view.agent_id == agent_id:
            return []  # asked again after a lost answer: it is theirs already
    return r.accept(task_id, agent_id, now)


def _op_reject(r: Router, now: float, task_id: str, agent_id: str) -> list[RouterEvent]:
    return r.reject(task_id, agent_id, now)


def _op_complete(r: Router, now: float, task_id: str, agent_id: str,
                 wrap_up: bool) -> list[RouterEvent]:
    if r.task(task_id).status is TaskStatus.ASSIGNED and wrap_up:
        return r.wrap_up(task_id, agent_id, now)
    return r.complete(task_id, agent_id, now)


def _op_requeue(r: Router, now: float, task_id: str, queue_id: str,
                to_agent_id: str | None) -> list[RouterEvent]:
    return r.requeue(task_id, queue_id, now, agent_id=to_agent_id)


def _op_release(r: Router, now: float, task_id: str, reason: str) -> list[RouterEvent]:
    """Back to the bot: the agent's task completes (no wrap-up), a waiting one is canceled."""
    if not r.has_task(task_id):
        return []
    view = r.task(task_id)
    if view.status in (TaskStatus.ASSIGNED, TaskStatus.WRAPPING) and view.agent_id:
        return r.complete(task_id, view.agent_id, now)
    return r.cancel(task_id, now, reason)


def _op_end(r: Router, now: float, task_id: str, reason: str) -> list[RouterEvent]:
    """The contact ended: the agent's task goes to wrap-up, a waiting one is canceled (or
    abandoned, when the citizen left)."""
    if not r.has_task(task_id):
        return []
    view = r.task(task_id)
    if view.status is TaskStatus.ASSIGNED and view.agent_id:
        return r.wrap_up(task_id, view.agent_id, now)
    if view.status in (TaskStatus.PENDING, TaskStatus.RESERVED):
        if reason == "citizen_left":
            return r.abandon(task_id, now)
        return r.cancel(task_id, now, reason)
    return []


def _op_agent(r: Router, now: float, id: str, skills: Mapping[str, int],
              languages: Sequence[str], capacity: Mapping[str, int],
              attributes: Mapping[str, Any]) -> list[RouterEvent]:
    return r.upsert_agent(AgentProfile(id, dict(skills), list(languages),
                                       {Channel(k): v for k, v in capacity.items()},
                                       dict(attributes)), now)


def _op_tick(r: Router, now: float) -> list[RouterEvent]:
    return r.tick(now)


ROUTER_OPS: dict[str, Callable[..., list[RouterEvent]]] = {
    "submit": _op_submit, "presence": _op_presence, "accept": _op_accept,
    "reject": _op_reject, "complete": _op_complete, "requeue": _op_requeue,
    "release": _op_release, "end": _op_end, "agent": _op_agent, "tick": _op_tick,
}


def _profile(agent: Agent) -> AgentProfile:
    capacity: dict[Channel, int] = {}
    for key, value in (agent.capacity or {}).items():
        with contextlib.suppress(ValueError):
            capacity[Channel(key)] = int(value)
    return AgentProfile(
        agent.id, dict(agent.skills or {}), list(agent.languages or []), capacity,
        {"department": agent.department, "username": agent.username,
         "roles": list(agent.roles or [])},
    )


def _outbound(message: Message, conv: Conversation, case_number: str | None,
              inbound_ids: Sequence[str | None]) -> OutboundMessage:
    return OutboundMessage(
        message_id=message.id, conversation_id=conv.id, channel=Channel(conv.channel),
        conversation_key=conv.provider_key, body=message.body, author=Author(message.author),
        author_name=message.author_name, sequence=message.seq,
        attachments=tuple(Attachment(a["filename"], a["content_type"], int(a["size"]), a["ref"])
                          for a in message.attachments or []),
        metadata={**(message.extra or {}), "subject": message.subject or conv.subject,
                  "language": conv.language, "case_number": case_number,
                  "conversation": dict(conv.attributes or {}),
                  # The provider ids of the citizen's messages, newest first: what a
                  # reply answers (email threading headers, for instance).
                  "in_reply_to": list(inbound_ids)},
    )


def _attachment(a: Any) -> dict[str, Any]:
    return {"filename": a.filename, "content_type": a.content_type, "size": a.size, "ref": a.ref}


async def _set(s: AsyncSession, model: Any, key: str, **values: Any) -> None:
    row = await s.get(model, key)
    if row is None:
        raise NotFound(model.__tablename__, key)
    for name, value in values.items():
        setattr(row, name, value)


async def _bump(s: AsyncSession, case_id: str, field_name: str) -> None:
    case = await s.get_one(Case, case_id)
    setattr(case, field_name, getattr(case, field_name) + 1)


#: How long a delivery attempt holds an outbox entry before another may take it over
#: (longer than any adapter's own timeout, so a slow attempt is never doubled).
DELIVERY_LEASE = timedelta(minutes=5)


async def _claim(
    s: AsyncSession, message_id: str, now: datetime, first: bool, channels: Sequence[str]
) -> tuple[str, int, Message, Conversation, str | None, list[str | None]] | None:
    """Take the outbox entry for one delivery attempt, so that no two attempts (timer,
    immediate send, another node) deliver the same message at once, and read what the
    adapter needs, in the caller's transaction.

    Only an entry on one of `channels` (those with an adapter) is taken. Returns None when
    the entry is not there to take (sent, failed, leased by another attempt, not due, no
    adapter); else (entry id, attempts so far, message, conversation, case number, the
    provider ids of the citizen's latest messages, newest first)."""
    conditions = [OutboxEntry.message_id == message_id, OutboxEntry.channel.in_(channels)]
    if first:
        conditions.append(OutboxEntry.status == "pending")
    else:
        conditions += [OutboxEntry.status.in_(("pending", "sending")),
                       OutboxEntry.next_attempt_at <= now]
    taken = (await s.execute(
        update(OutboxEntry).where(*conditions)
        .values(status="sending", next_attempt_at=now + DELIVERY_LEASE)
        .returning(OutboxEntry.id, OutboxEntry.attempts)
        .execution_options(synchronize_session=False))).all()
    if len(taken) != 1:
        return None
    entry_id, attempts = taken[0]
    message, conv, case_number = (await s.execute(
        select(Message, Conversation, Case.number)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .outerjoin(Case, Case.id == Conversation.case_id)
        .where(Message.id == message_id))).one()
    inbound_ids = (await s.scalars(
        select(Message.provider_message_id).where(
            Message.conversation_id == conv.id,
            Message.direction == str(Direction.INBOUND),
            Message.provider_message_id.is_not(None))
        .order_by(Message.seq.desc()).limit(20))).all()
    return entry_id, attempts, message, conv, case_number, list(inbound_ids)


async def _mark_sent(s: AsyncSession, entry_id: str, message_id: str, provider_id: str | None,
                     now: datetime) -> None:
    # Two UPDATEs by primary key, no reads first (as `_set` would).
    for model, key, values in (
        (OutboxEntry, entry_id, {"status": "sent", "sent_at": now,
                                 "provider_message_id": provider_id,
                                 "attempts": OutboxEntry.attempts + 1}),
        (Message, message_id, {"delivery": "sent"}),
    ):
        result = await s.execute(update(model).where(model.id == key).values(**values)
                                 .execution_options(synchronize_session=False))
        if getattr(result, "rowcount", 1) != 1:
            raise NotFound(model.__tablename__, key)
