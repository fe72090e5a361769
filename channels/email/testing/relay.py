"""A real SMTP server (aiosmtpd) that records what it receives: the relay for outbound tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class RecordingRelay:
    """Records every accepted envelope; `reply_to_rcpt`/`reply_to_data` force an answer."""

    port: int = 0
    received: list[Envelope] = field(default_factory=list)
    reply_to_rcpt: str | None = None
    reply_to_data: str | None = None
    _server: asyncio.Server | None = field(default=None, repr=False)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Accept the recipient unless told to refuse it."""
        if self.reply_to_rcpt:
            return self.reply_to_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message unless told to refuse it."""
        if self.reply_to_data:
            return self.reply_to_data
        self.received.append(envelope)
        return "250 2.0.0 queued"

    async def start(self, host: str = "127.0.0.1") -> None:
        """Listen on a free port of `host` on the running loop."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, enable_SMTPUTF8=True, loop=loop), host=host, port=0
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
