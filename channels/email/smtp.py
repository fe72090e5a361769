"""Inbound SMTP (aiosmtpd) on the application's own event loop.

Promise to senders: `250` only after `EmailSink.accept` returned, i.e. the message is stored
durably; any failure to store is `451 4.3.0` so the sending MTA keeps the message and
retries. Too-big messages get `552 5.3.4` (announced in EHLO SIZE, checked again while
reading DATA and once more before storing) and nothing is stored.

The server runs on the running loop (`loop.create_server`), not aiosmtpd's threaded
`Controller`, so the sink is awaited on the loop that owns the database connections.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import UTC, datetime
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from channels.email.config import ParseLimits, SmtpInboundConfig
from channels.email.model import Envelope
from channels.email.parsing import parse_email_off_loop
from channels.email.ports import EmailSink
from channels.email.ratelimit import SenderRateLimiter

log = logging.getLogger(__name__)
# aiosmtpd logs the SMTP dialogue on "mail.log": senders' and recipients' addresses at
# INFO, whole messages at DEBUG. Personal data must never reach the logs (docs/security.md;
# tests/drills/test_logs.py), so only its warnings and errors are kept.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class InboundSmtpHandler:
    """aiosmtpd handler: recipient → queue, per-sender rate limit, durable hand-off."""

    def __init__(
        self,
        sink: EmailSink,
        config: SmtpInboundConfig,
        limits: ParseLimits | None = None,
        rate_limiter: SenderRateLimiter | None = None,
    ) -> None:
        self.sink = sink
        self.config = config
        self.limits = limits
        self.rate_limiter = rate_limiter

    def queue_for(self, address: str) -> str | None:
        """The queue a recipient address feeds, or None if we do not serve its domain."""
        normalised = address.strip().strip("<>").lower()
        if normalised in self.config.recipient_queues:
            return self.config.recipient_queues[normalised]
        _, at, domain = normalised.rpartition("@")
        if at and domain in self.config.accepted_domains:
            return self.config.default_queue
        return None

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Apply the per-sender rate limit before the sender uploads anything."""
        if self.rate_limiter is not None and not self.rate_limiter.allow(address):
            wait = int(self.rate_limiter.retry_after(address)) + 1
            log.info("smtp: rate limited a sender (retry in %ss)", wait)  # no address: PDPA
            return f"451 4.7.1 Too many messages from this sender; try again in {wait} seconds"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept only recipients whose domain we serve (we are not an open relay)."""
        if self.queue_for(address) is None:
            domain = address.rpartition("@")[2] or address
            return f"550 5.7.1 We do not accept mail for {domain[:100]} (relaying denied)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope
    ) -> str:
        """Parse, hand to the sink, and answer 250 only once it returned."""
        content = envelope.original_content or b""
        limit = self.config.max_message_bytes
        if len(content) > limit:
            return too_big_reply(limit)
        parsed = await parse_email_off_loop(content, self.limits)
        queues = tuple(
            dict.fromkeys(q for q in (self.queue_for(r) for r in envelope.rcpt_tos) if q)
        )
        peer = session.peer
        inbound = Envelope(
            transport="smtp",
            queues=queues or (self.config.default_queue,),
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            received_at=datetime.now(UTC),
        )
        try:
            await self.sink.accept(parsed, inbound)
        except Exception:
            # Not stored: a temporary failure keeps the message with the sender, who retries.
            log.exception("smtp: sink refused %s", parsed.dedupe_key)
            return "451 4.3.0 Temporary failure storing the message; please try again later"
        log.info("smtp: stored %s for %s", parsed.dedupe_key, ",".join(inbound.queues))
        return "250 2.0.0 Message accepted"


def too_big_reply(limit: int) -> str:
    """The 552 reply for a message over the size limit."""
    return f"552 5.3.4 Message too big (limit {limit} bytes)"


class _SizeAwareSMTP(SMTP):
    """aiosmtpd's SMTP with our wording for its built-in size refusals."""

    def __init__(self, handler: InboundSmtpHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._size_limit = handler.config.max_message_bytes

    async def push(self, status: AnyStr) -> None:
        """Rewrite aiosmtpd's generic 552 texts into the enhanced-status one."""
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("552 Error:"):
            text = too_big_reply(self._size_limit)
        await super().push(text)


class InboundSmtpServer:
    """Listens for SMTP on `config.host:config.port` until `stop()`."""

    def __init__(
        self,
        sink: EmailSink,
        config: SmtpInboundConfig,
        limits: ParseLimits | None = None,
        rate_limiter: SenderRateLimiter | None = None,
    ) -> None:
        self.handler = InboundSmtpHandler(sink, config, limits, rate_limiter)
        self.config = config
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured with port 0)."""
        if self._server is None or not self._server.sockets:
            return self.config.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start accepting connections on the running loop."""
        loop = asyncio.get_running_loop()
        config = self.config
        tls_context: ssl.SSLContext | None = None
        if config.tls_cert_file and config.tls_key_file:
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(config.tls_cert_file, config.tls_key_file)

        def factory() -> SMTP:
            return _SizeAwareSMTP(
                self.handler,
                data_size_limit=config.max_message_bytes,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname=config.hostname,
                ident="OneStop ESMTP",
                timeout=config.timeout_seconds,
                tls_context=tls_context,
                require_starttls=config.require_starttls and tls_context is not None,
                loop=loop,
            )

        self._server = await loop.create_server(factory, host=config.host, port=config.port)
        log.info("smtp: listening on %s:%s", config.host, self.port)

    async def stop(self) -> None:
        """Stop listening and wait for the listener to close."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> InboundSmtpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
