"""Inbound SMTP against a real client (stdlib smtplib): 250 only after durable storage."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session

from channels.email.config import RateLimitConfig, SmtpInboundConfig
from channels.email.model import Envelope, ParsedEmail
from channels.email.ratelimit import SenderRateLimiter
from channels.email.smtp import InboundSmtpHandler, InboundSmtpServer
from channels.email.testing.memory import MemorySink

CONFIG = SmtpInboundConfig(
    host="127.0.0.1",
    port=0,
    accepted_domains=frozenset({"onestop.go.th"}),
    recipient_queues={"tax@onestop.go.th": "tax", "Licence@OneStop.go.th": "licence"},
    default_queue="general",
)
MESSAGE = (
    b"From: citizen@example.co.th\r\nTo: tax@onestop.go.th\r\nSubject: tax question\r\n"
    b"Message-ID: <m1@example.co.th>\r\n\r\nHello\r\n"
)


@pytest.fixture
async def server(sink: MemorySink) -> AsyncIterator[InboundSmtpServer]:
    async with InboundSmtpServer(sink, CONFIG) as running:
        yield running


def _send(port: int, rcpts: list[str], data: bytes, sender: str = "citizen@example.co.th") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.sendmail(sender, rcpts, data)


async def test_message_is_stored_and_mapped_to_queues(
    server: InboundSmtpServer, sink: MemorySink
) -> None:
    await asyncio.to_thread(
        _send, server.port, ["tax@onestop.go.th", "licence@onestop.go.th", "x@onestop.go.th"],
        MESSAGE,
    )
    message, envelope = sink.stored["<m1@example.co.th>"]
    assert message.subject == "tax question"
    assert message.raw == MESSAGE
    assert envelope.transport == "smtp"
    assert envelope.queues == ("tax", "licence", "general")
    assert envelope.mail_from == "citizen@example.co.th"


async def test_250_only_after_the_sink_returned(server: InboundSmtpServer) -> None:
    release = asyncio.Event()
    stored: list[str] = []

    class SlowSink:
        async def accept(self, message: ParsedEmail, envelope: Envelope) -> None:
            await release.wait()
            stored.append(message.dedupe_key)

    server.handler.sink = SlowSink()
    sending = asyncio.create_task(asyncio.to_thread(_send, server.port, ["tax@onestop.go.th"],
                                                    MESSAGE))
    await asyncio.sleep(0.5)
    assert not sending.done(), "the client got its reply before the message was stored"
    release.set()
    await asyncio.wait_for(sending, 10)
    assert stored == ["<m1@example.co.th>"]


async def test_30_mb_message_gets_552_and_nothing_is_stored(
    server: InboundSmtpServer, sink: MemorySink
) -> None:
    line = b"x" * 998 + b"\r\n"
    big = MESSAGE + line * (30 * 1024 * 1024 // len(line))
    limit = CONFIG.max_message_bytes
    expected = f"5.3.4 Message too big (limit {limit} bytes)".encode()

    # smtplib announces SIZE=…, so a compliant client is refused at MAIL FROM …
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await asyncio.to_thread(_send, server.port, ["tax@onestop.go.th"], big)
    assert refused.value.smtp_code == 552 and refused.value.smtp_error == expected

    # … and one that does not announce it is refused after DATA.
    def send_without_size() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=120) as client:
            client.ehlo()
            client.mail("citizen@example.co.th")
            client.rcpt("tax@onestop.go.th")
            try:
                return client.data(big)
            except smtplib.SMTPDataError as exc:
                return exc.smtp_code, exc.smtp_error

    started = time.monotonic()
    code, text = await asyncio.to_thread(send_without_size)
    print(f"30 MB DATA refused in {time.monotonic() - started:.1f}s")
    assert (code, text) == (552, expected)
    assert sink.calls == 0 and not sink.stored


async def test_handle_data_refuses_oversize_even_without_the_protocol_limit(
    sink: MemorySink,
) -> None:
    handler = InboundSmtpHandler(sink, CONFIG.model_copy(update={"max_message_bytes": 10}))
    envelope = SmtpEnvelope()
    envelope.original_content = MESSAGE
    envelope.rcpt_tos = ["tax@onestop.go.th"]
    reply = await handler.handle_DATA(None, Session(asyncio.get_running_loop()), envelope)  # type: ignore[arg-type]
    assert reply == "552 5.3.4 Message too big (limit 10 bytes)"
    assert sink.calls == 0


async def test_unknown_recipient_domain_is_refused_with_a_reason(
    server: InboundSmtpServer, sink: MemorySink
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await asyncio.to_thread(_send, server.port, ["someone@elsewhere.example"], MESSAGE)
    code, text = refused.value.recipients["someone@elsewhere.example"]
    assert code == 550
    assert b"elsewhere.example" in text and b"relaying denied" in text
    assert not sink.stored


async def test_sink_failure_is_a_temporary_451_and_the_retry_is_stored_once(
    server: InboundSmtpServer, sink: MemorySink
) -> None:
    sink.fail = True
    with pytest.raises(smtplib.SMTPDataError) as failed:
        await asyncio.to_thread(_send, server.port, ["tax@onestop.go.th"], MESSAGE)
    assert failed.value.smtp_code == 451
    assert failed.value.smtp_error.startswith(b"4.3.0")
    sink.fail = False
    await asyncio.to_thread(_send, server.port, ["tax@onestop.go.th"], MESSAGE)
    await asyncio.to_thread(_send, server.port, ["tax@onestop.go.th"], MESSAGE)  # a resend
    assert len(sink.stored) == 1


async def test_null_sender_bounce_is_accepted_and_classified(
    server: InboundSmtpServer, sink: MemorySink
) -> None:
    bounce = (
        b"From: MAILER-DAEMON@mx.example.org\r\nTo: help@onestop.go.th\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx>\r\n\r\nsorry\r\n"
    )
    await asyncio.to_thread(_send, server.port, ["help@onestop.go.th"], bounce, "<>")
    message, envelope = sink.stored["<b1@mx>"]
    assert message.kind == "bounce"
    assert envelope.queues == ("general",)


async def test_sender_rate_limit_defers_with_451(sink: MemorySink) -> None:
    limiter = SenderRateLimiter(RateLimitConfig(burst=2, per_minute=1))
    async with InboundSmtpServer(sink, CONFIG, rate_limiter=limiter) as running:
        for index in range(2):
            data = MESSAGE.replace(b"<m1@", f"<m{index + 10}@".encode())
            await asyncio.to_thread(_send, running.port, ["tax@onestop.go.th"], data)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            await asyncio.to_thread(_send, running.port, ["tax@onestop.go.th"], MESSAGE)
        assert refused.value.smtp_code == 451
        assert refused.value.smtp_error.startswith(b"4.7.1")
        # Another sender is not affected.
        await asyncio.to_thread(_send, running.port, ["tax@onestop.go.th"], MESSAGE,
                                "other@example.org")
    assert len(sink.stored) == 3


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


async def test_starttls_is_offered_and_required_when_configured(
    sink: MemorySink, self_signed: tuple[Path, Path]
) -> None:
    cert, key = self_signed
    config = CONFIG.model_copy(
        update={"tls_cert_file": str(cert), "tls_key_file": str(key), "require_starttls": True}
    )

    def send_over_tls(port: int) -> None:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=context)
            client.sendmail("citizen@example.co.th", ["tax@onestop.go.th"], MESSAGE)

    def send_plain(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("citizen@example.co.th", ["tax@onestop.go.th"], MESSAGE)

    async with InboundSmtpServer(sink, config) as running:
        with pytest.raises(smtplib.SMTPException):
            await asyncio.to_thread(send_plain, running.port)  # required: plain text refused
        assert not sink.stored
        await asyncio.to_thread(send_over_tls, running.port)
    assert list(sink.stored) == ["<m1@example.co.th>"]
