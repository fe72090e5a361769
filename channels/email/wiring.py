"""The email channel plugged into the core: inbound SMTP and IMAP feed
`ContactCenter.ingest`; agent replies and acknowledgements go out through the relay.

This is the only module of the room that knows the core, and it knows it only through
`routing`'s public API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from channels.email.config import ImapConfig, OutboundConfig, RateLimitConfig, SmtpInboundConfig
from channels.email.imap import ImapPoller
from channels.email.model import EmailAddress, Envelope, ParsedEmail
from channels.email.outbound import (
    AcknowledgementRenderer,
    OutboundSendError,
    OutgoingAttachment,
    OutgoingEmail,
    SmtpReplySender,
    reply_subject,
)
from channels.email.parsing import should_acknowledge
from channels.email.ports import MailboxState
from channels.email.ratelimit import SenderRateLimiter
from channels.email.smtp import InboundSmtpServer
from routing import (
    Attachment,
    Author,
    BlobStore,
    Channel,
    ContactCenter,
    DeliveryError,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    InvalidIdentity,
    MessageStored,
    OutboundMessage,
    load_config_file,
    normalise,
    wait_or_timeout,
)

log = logging.getLogger(__name__)
UNREADABLE = ("[ข้อความอ่านไม่ได้ เก็บต้นฉบับไว้ให้เจ้าหน้าที่ตรวจ] "
              "[Unreadable message: the original is kept for an officer]")


class ImapMailbox(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str
    port: int = 993
    use_tls: bool = True
    username: str
    mailbox: str = "INBOX"
    queue: str = "general"
    poll_interval_seconds: float = 60


class EmailChannelSettings(BaseModel):
    """config/email.yaml"""

    model_config = ConfigDict(extra="forbid", frozen=True)
    accepted_domains: list[str] = Field(default_factory=list)
    own_addresses: list[str] = Field(default_factory=list)
    recipient_queues: dict[str, str] = Field(default_factory=dict)
    default_queue: str = "general"
    max_message_mb: float = Field(default=25, gt=0)
    acknowledge: bool = True
    outbound: OutboundConfig = OutboundConfig()
    imap: list[ImapMailbox] = Field(default_factory=list)
    rate_limit: RateLimitConfig = RateLimitConfig()


def setup(app: web.Application, center: ContactCenter, settings: EmailChannelSettings, *,
          smtp_host: str = "127.0.0.1", smtp_port: int = 2525,
          secrets: dict[str, str] | None = None) -> None:
    """Listen for SMTP, poll the IMAP mailboxes, and deliver email replies."""
    secrets = dict(os.environ if secrets is None else secrets)
    outbound = settings.outbound
    if secrets.get("ONESTOP_SMTP_RELAY_PASSWORD"):
        outbound = outbound.model_copy(update={"password": secrets["ONESTOP_SMTP_RELAY_PASSWORD"]})
    sink = CoreEmailSink(center, settings)
    sender = SmtpReplySender(outbound)
    center.register_adapter(EmailAdapter(sender, center.blobs))
    transcripts = TranscriptMailer(center, sender)
    smtp = SmtpInboundConfig(
        host=smtp_host, port=smtp_port,
        max_message_bytes=int(settings.max_message_mb * 1024 * 1024),
        accepted_domains=frozenset(settings.accepted_domains),
        recipient_queues=settings.recipient_queues, default_queue=settings.default_queue,
    )
    pollers = [
        ImapPoller(ImapConfig(host=m.host, port=m.port, use_tls=m.use_tls,
                              username=m.username, mailbox=m.mailbox, queue=m.queue,
                              password=secrets.get("ONESTOP_IMAP_PASSWORD", ""),
                              poll_interval_seconds=m.poll_interval_seconds),
                   sink, CoreImapState(center))
        for m in settings.imap
    ]

    async def email_ctx(app: web.Application) -> AsyncIterator[None]:
        # Once in a cluster: on the node that stored the message.
        unsubscribe = center.bus.subscribe(transcripts.on_message, MessageStored,
                                           origin_only=True)
        server = InboundSmtpServer(sink, smtp, rate_limiter=SenderRateLimiter(settings.rate_limit))
        await server.start()
        app[SMTP_SERVER] = server
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_poll_while_leading(center, p, stop), name="imap-poller")
                 for p in pollers]
        yield
        stop.set()
        for task in tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        await server.stop()
        unsubscribe()
        await transcripts.drain()

    app.cleanup_ctx.append(email_ctx)


SMTP_SERVER = web.AppKey("email_smtp_server", InboundSmtpServer)


class CoreEmailSink:
    """Stores every email in the core before SMTP says 250 or IMAP moves on."""

    def __init__(self, center: ContactCenter, settings: EmailChannelSettings) -> None:
        self.center = center
        self.settings = settings
        self.own = frozenset(a.lower() for a in settings.own_addresses)
        self.renderer = AcknowledgementRenderer()

    async def accept(self, message: ParsedEmail, envelope: Envelope) -> None:
        """Keep the raw message and its attachments, then ingest it (idempotent on the
        Message-ID). Automatic mail, bounces and lists are recorded but open no case."""
        blobs = self._blobs()
        raw_ref = await blobs.put(message.raw)
        if message.kind != "personal":
            await self.center.record_event("email-noise", message.dedupe_key, {
                "kind": message.kind, "reasons": list(message.kind_reasons),
                "raw_ref": raw_ref, "queue": envelope.queue, "size": message.raw_size})
            return
        attachments = []
        for part in message.attachments:
            if part.content is not None:
                ref = await blobs.put(part.content)
                attachments.append(Attachment(part.filename, part.content_type, part.size, ref))
        reply = message.reply_address
        hints: tuple[IdentityHint, ...] = ()
        if reply is not None:
            try:
                address = normalise(IdentityKind.EMAIL, reply.address)
                # Answering one of our own messages proves the address reads our mail.
                verified = "email_reply" if _answers_us(message, self.settings) else None
                hints = (IdentityHint(IdentityKind.EMAIL, address, verified),)
            except InvalidIdentity:
                hints = ()  # an unusable From must not lose the message
        body = UNREADABLE if message.malformed else (message.body_text or message.body_full)
        result = await self.center.ingest(InboundMessage(
            channel=Channel.EMAIL, conversation_key=message.thread_key[:200],
            message_id=message.dedupe_key[:250], body=body, identity_hints=hints,
            attachments=tuple(attachments), case_number=message.case_number,
            queue_hint=envelope.queue or self.settings.default_queue,
            subject=message.subject[:300] or None,
            metadata={"reply_address": reply.address if reply else None,
                      "reply_name": reply.name if reply else None,
                      "raw_ref": raw_ref, "malformed": message.malformed,
                      "malformed_reasons": list(message.malformed_reasons),
                      "quoted": message.body_quoted[:20000]},
        ))
        if (not result.duplicate and result.new_conversation and self.settings.acknowledge
                and should_acknowledge(message, self.own)):
            text, _html = self.renderer.render(result.case_number,
                                               reply.name if reply else "",
                                               message.subject[:200])
            await self.center.send_message(
                result.conversation_id, text, author=Author.SYSTEM,
                extra={"email_kind": "acknowledgement"}, deliver_now=False)

    def _blobs(self) -> BlobStore:
        if self.center.blobs is None:
            raise RuntimeError("the email channel needs a blob store (ContactCenter blobs=)")
        return self.center.blobs


class EmailAdapter:
    """Delivers agent replies and acknowledgements, threaded under the citizen's mail."""

    channel = Channel.EMAIL

    def __init__(self, sender: SmtpReplySender, blobs: BlobStore | None = None) -> None:
        self.sender = sender
        self.blobs = blobs

    async def deliver(self, message: OutboundMessage) -> str | None:
        conversation = message.metadata.get("conversation") or {}
        address = conversation.get("reply_address")
        if not address:
            raise DeliveryError("the conversation has no address to reply to", permanent=True)
        replies_to = [str(i) for i in message.metadata.get("in_reply_to") or []]
        case_number = message.metadata.get("case_number")
        acknowledgement = message.metadata.get("email_kind") == "acknowledgement"
        email = OutgoingEmail(
            to=(EmailAddress(address, conversation.get("reply_name") or ""),),
            subject=reply_subject(str(message.metadata.get("subject") or ""), case_number),
            body_text=message.body,
            case_number=case_number,
            in_reply_to=replies_to[0] if replies_to else None,
            references=tuple(reversed(replies_to)),
            acknowledgement=acknowledgement,
            kind="ack" if acknowledgement else "reply",
            include_signature=not acknowledgement,
            attachments=await self._attachments(message),
        )
        try:
            sent = await self.sender.deliver(email)
        except OutboundSendError as exc:
            raise DeliveryError(str(exc), permanent=not exc.retryable) from exc
        return sent.message_id


    async def _attachments(self, message: OutboundMessage) -> tuple[OutgoingAttachment, ...]:
        if not message.attachments:
            return ()
        if self.blobs is None:
            raise DeliveryError("attachments need a blob store", permanent=True)
        files = []
        for a in message.attachments:
            try:
                content = await self.blobs.get(a.ref)
            except KeyError:
                raise DeliveryError(f"attachment {a.filename!r} is missing from the store",
                                    permanent=True) from None
            files.append(OutgoingAttachment(a.filename, a.content_type, content))
        return tuple(files)


class TranscriptMailer:
    """Sends a conversation's transcript to the address a citizen asked for (the chat
    widget records the request as an internal note with `kind: transcript_request`)."""

    def __init__(self, center: ContactCenter, sender: SmtpReplySender) -> None:
        self.center = center
        self.sender = sender
        self._pending: set[asyncio.Task[None]] = set()

    async def on_message(self, event: MessageStored) -> None:
        if not (event.internal and event.author == "system"):
            return
        task = asyncio.create_task(self._send(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _send(self, event: MessageStored) -> None:
        messages = await self.center.messages(event.conversation_id)
        request = next((m for m in messages if m.id == event.message_id), None)
        if request is None or (request.extra or {}).get("kind") != "transcript_request":
            return
        if not await self.center.record_event("email-transcript", request.id, {}):
            return
        language = (request.extra or {}).get("language", "th")
        lines = [f"[{m.created_at:%Y-%m-%d %H:%M} UTC] {_who(m.author, m.author_name, language)}:"
                 f" {m.body}" for m in messages if not m.internal and m.seq < request.seq]
        case = await self.center.case(
            (await self.center.conversation(event.conversation_id)).case_id)
        title = ("บันทึกการสนทนา" if language == "th" else "Chat transcript")
        try:
            await self.sender.deliver(OutgoingEmail(
                to=(EmailAddress(str(request.extra["email"])),),
                subject=f"{title} [{case.number}]", body_text="\n".join(lines),
                case_number=case.number, kind="transcript"))
        except OutboundSendError as exc:
            log.warning("transcript not sent: %s", exc)
            await self.center.send_message(
                event.conversation_id, f"transcript not sent: {exc}", author=Author.SYSTEM,
                internal=True)


def _who(author: str, name: str | None, language: str) -> str:
    labels = {"citizen": ("ท่าน", "You"), "bot": ("ผู้ช่วยอัตโนมัติ", "Assistant"),
              "system": ("ระบบ", "System")}
    if author == "agent":
        return name or ("เจ้าหน้าที่" if language == "th" else "Officer")
    th, en = labels.get(author, (author, author))
    return th if language == "th" else en


class CoreImapState:
    """IMAP positions kept in the core's named state (survives restarts)."""

    def __init__(self, center: ContactCenter) -> None:
        self.center = center

    async def load(self, account: str, mailbox: str) -> MailboxState | None:
        value = await self.center.load_state(f"imap:{account}:{mailbox}")
        if value is None:
            return None
        return MailboxState(uidvalidity=int(value["uidvalidity"]), last_uid=int(value["last_uid"]))

    async def save(self, account: str, mailbox: str, state: MailboxState) -> None:
        await self.center.save_state(f"imap:{account}:{mailbox}",
                                     {"uidvalidity": state.uidvalidity, "last_uid": state.last_uid})


def _answers_us(message: ParsedEmail, settings: EmailChannelSettings) -> bool:
    domain = "@" + settings.outbound.message_id_domain.lower() + ">"
    return any(i.lower().endswith(domain) for i in (*message.in_reply_to, *message.references))


def load_settings(path: Path) -> EmailChannelSettings:
    """Read config/email.yaml (errors name the file and line)."""
    return load_config_file(path, EmailChannelSettings)


async def _poll_while_leading(center: ContactCenter, poller: ImapPoller,
                              stop: asyncio.Event) -> None:
    """Read a mailbox on one node only: the one that runs the router (every node without
    a cluster). When another node takes over, this one stops and that one starts."""
    while not stop.is_set():
        if not center.leading:
            await wait_or_timeout(stop, 1.0)
            continue
        lost = asyncio.Event()
        reader = asyncio.create_task(poller.run(lost), name="imap-reader")
        while center.leading and not stop.is_set():
            await wait_or_timeout(stop, 1.0)
        lost.set()
        await reader
