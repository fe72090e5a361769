"""Outbound replies and acknowledgements through a real local SMTP relay (aiosmtpd)."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from channels.email.config import OutboundConfig
from channels.email.model import EmailAddress
from channels.email.outbound import (
    AcknowledgementRenderer,
    OutboundSendError,
    OutgoingAttachment,
    OutgoingEmail,
    SmtpReplySender,
    acknowledgement_for,
    reply_subject,
    reply_to,
)
from channels.email.parsing import parse_email
from channels.email.testing.relay import RecordingRelay

CITIZEN_MAIL = (
    "From: =?utf-8?B?4Liq4Lih4LiK4Liy4LiiIOC5g+C4iOC4lOC4tQ==?= <somchai@example.co.th>\r\n"
    "To: help@onestop.go.th\r\nSubject: ขอต่อใบขับขี่\r\nMessage-ID: <c1@example.co.th>\r\n"
    "References: <older@example.co.th>\r\n\r\nสวัสดีครับ\r\n"
).encode()


def _config(port: int) -> OutboundConfig:
    return OutboundConfig(relay_host="127.0.0.1", relay_port=port, timeout_seconds=5)


def _received(relay: RecordingRelay) -> EmailMessage:
    envelope = relay.received[-1]
    parsed = message_from_bytes(envelope.original_content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_acknowledgement_is_threaded_bilingual_and_auto_submitted(relay: RecordingRelay) -> None:
    citizen = parse_email(CITIZEN_MAIL)
    ack = acknowledgement_for(citizen, "OS-2026-000123")
    sent = await SmtpReplySender(_config(relay.port)).deliver(ack)

    message = _received(relay)
    assert relay.received[-1].rcpt_tos == ["somchai@example.co.th"]
    assert message["Message-ID"] == sent.message_id
    assert sent.message_id.startswith("<OS-2026-000123.ack.")
    assert sent.message_id.endswith("@onestop.go.th>")
    assert message["In-Reply-To"] == "<c1@example.co.th>"
    assert message["References"] == "<older@example.co.th> <c1@example.co.th>"
    assert message["Subject"] == "Re: ขอต่อใบขับขี่ [OS-2026-000123]"
    assert message["Auto-Submitted"] == "auto-replied"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "OS-2026-000123" in text and "สมชาย ใจดี" in text
    assert text.index("ได้รับข้อความของท่านแล้ว") < text.index("has received your message")
    assert "-- \nศูนย์บริการประชาชน OneStop" in text
    html = message.get_body(("html",))
    assert html is not None and "[OS-2026-000123]" in html.get_content()

    # The citizen answers the acknowledgement: same thread, same case.
    answer = parse_email(
        (
            f"From: somchai@example.co.th\r\nSubject: {message['Subject']}\r\n"
            f"Message-ID: <c2@example.co.th>\r\nIn-Reply-To: {sent.message_id}\r\n"
            f"References: {message['References']} {sent.message_id}\r\n\r\nขอบคุณครับ\r\n"
        ).encode()
    )
    assert answer.thread_key == citizen.thread_key
    assert answer.case_number == "OS-2026-000123"


async def test_agent_reply_with_attachment_keeps_case_tag(relay: RecordingRelay) -> None:
    citizen = parse_email(CITIZEN_MAIL.replace(b"Subject: ", b"Subject: Re: [OS-2026-000124] "))
    reply = reply_to(
        citizen, "เอกสารที่ต้องใช้แนบมาในไฟล์ครับ", None,
        attachments=(OutgoingAttachment("แบบฟอร์ม.pdf", "application/pdf", b"%PDF-1.4 x"),),
    )
    await SmtpReplySender(_config(relay.port)).deliver(reply)
    message = _received(relay)
    assert message["Subject"] == "Re: [OS-2026-000124] ขอต่อใบขับขี่"
    assert "Auto-Submitted" not in message
    attachments = list(message.iter_attachments())
    assert attachments[0].get_filename() == "แบบฟอร์ม.pdf"
    assert attachments[0].get_content() == b"%PDF-1.4 x"
    assert parse_email(relay.received[-1].original_content).case_number == "OS-2026-000124"


def test_reply_subject_rules() -> None:
    assert reply_subject("Re: RE: Fwd: help", "OS-2026-000001") == "Re: help [OS-2026-000001]"
    assert reply_subject("ตอบกลับ: help [OS-2026-000001]", "OS-2026-000001") == (
        "Re: help [OS-2026-000001]")
    assert reply_subject("", "OS-2026-000001") == "Re: [OS-2026-000001]"


def test_html_template_escapes_citizen_supplied_text() -> None:
    text, html = AcknowledgementRenderer().render(
        "OS-2026-000001", "<script>alert(1)</script>", "<img src=x onerror=alert(2)>"
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html
    assert "<script>alert(1)</script>" in text  # plain text is not HTML: shown as typed


async def test_unreachable_relay_is_retryable() -> None:
    email = OutgoingEmail(to=(EmailAddress("a@example.org"),), subject="x", body_text="y")
    sender = SmtpReplySender(OutboundConfig(relay_host="127.0.0.1", relay_port=1,
                                            timeout_seconds=2))
    with pytest.raises(OutboundSendError) as failed:
        await sender.deliver(email)
    assert failed.value.retryable


@pytest.mark.parametrize(("stage", "reply", "retryable"), [
    ("rcpt", "550 5.1.1 No such user", False),
    ("rcpt", "450 4.2.0 Mailbox busy", True),
    ("data", "554 5.6.0 Rejected", False),
    ("data", "451 4.3.0 Try later", True),
])
async def test_relay_refusals_say_whether_to_retry(
    relay: RecordingRelay, stage: str, reply: str, retryable: bool
) -> None:
    setattr(relay, f"reply_to_{stage}", reply)
    email = OutgoingEmail(to=(EmailAddress("a@example.org"),), subject="x", body_text="y")
    with pytest.raises(OutboundSendError) as failed:
        await SmtpReplySender(_config(relay.port)).deliver(email)
    assert failed.value.retryable is retryable
    assert failed.value.smtp_code == int(reply[:3])
