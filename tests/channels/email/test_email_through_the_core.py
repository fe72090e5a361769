"""The email channel in the real app: SMTP and IMAP in, cases, acknowledgements, replies."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from channels.email.testing.dovecot import DovecotServer
from channels.email.testing.relay import RecordingRelay
from channels.email.wiring import SMTP_SERVER
from onestop.app import build_app
from routing import Author, ContactCenter, Message, Task
from tests.channels.email.test_email_imap_dovecot import _append
from tests.conftest import CONFIG_DIR
from tests.support.app import app_settings


def config_with(tmp_path: Path, **email: Any) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    data = yaml.safe_load((target / "email.yaml").read_text())
    data.update(email)
    (target / "email.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    return target


@pytest.fixture
async def mail_app(
    aiohttp_client: Callable[..., Any], tmp_path: Path, relay: RecordingRelay
) -> AsyncIterator[TestClient]:
    config = config_with(tmp_path, outbound={"relay_host": "127.0.0.1", "relay_port": relay.port,
                                             "from_address": "help@onestop.go.th",
                                             "message_id_domain": "onestop.go.th"})
    app = build_app(app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                                 config_dir=config))
    yield await aiohttp_client(app)


def send(port: int, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message)


def citizen_mail(subject: str, body: str, msg_id: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "สมหญิง <somying@mail.example.th>"
    message["To"] = "tax@onestop.go.th"
    message["Subject"] = subject
    message["Message-ID"] = msg_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


async def wait_for(predicate: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_an_email_becomes_a_case_is_acknowledged_and_a_reply_threads_back(
    mail_app: TestClient, relay: RecordingRelay
) -> None:
    app = mail_app.server.app
    center: ContactCenter = app[CENTER_KEY]
    port = app[SMTP_SERVER].port
    await asyncio.to_thread(send, port, citizen_mail(
        "ขอคืนภาษีปี 2568", "ยื่นขอคืนภาษีไปแล้ว ยังไม่ได้รับเงินค่ะ", "<q1@mail.example.th>"))
    messages, _ = await center.list_rows(Message)
    assert messages[0].body.startswith("ยื่นขอคืนภาษี")  # stored before 250
    ack = await wait_for(lambda: asyncio.sleep(0, relay.received))
    acknowledgement = message_from_bytes(ack[0].content, policy=policy.default)
    case_number = messages[0].conversation_id and (await center.case(
        (await center.conversation(messages[0].conversation_id)).case_id)).number
    assert case_number in acknowledgement["Subject"]
    assert acknowledgement["In-Reply-To"] == "<q1@mail.example.th>"
    assert acknowledgement["Auto-Submitted"] == "auto-replied"
    assert case_number in acknowledgement.get_body(("plain",)).get_content()

    # The citizen answers the acknowledgement: same case, and the address is now proven.
    await asyncio.to_thread(send, port, citizen_mail(
        f"Re: {acknowledgement['Subject']}", "แนบเอกสารเพิ่มเติมค่ะ", "<q2@mail.example.th>",
        In_Reply_To=acknowledgement["Message-ID"],
        References=f"<q1@mail.example.th> {acknowledgement['Message-ID']}"))
    rows, _ = await center.list_rows(Message, Message.direction == "inbound",
                                     order_by=Message.seq)
    conversations = {m.conversation_id for m in rows}
    assert len(rows) == 2 and len(conversations) == 1
    view = await center.citizen_view((await center.conversation(rows[0].conversation_id))
                                     .citizen_id, center_system())
    assert view["identities"][0]["verified_by"] == "email_reply"
    # Only the first message acknowledged.
    await asyncio.sleep(0.3)
    assert len(relay.received) == 1

    # An agent replies from the console: threaded under the citizen's last message.
    conversation_id = rows[0].conversation_id
    await center.send_message(conversation_id, "ได้รับเอกสารแล้วค่ะ จะดำเนินการภายใน 3 วัน",
                              author=Author.AGENT, author_name="Somsri")
    await wait_for(lambda: asyncio.sleep(0, len(relay.received) == 2))
    reply = message_from_bytes(relay.received[1].content, policy=policy.default)
    assert reply["In-Reply-To"] == "<q2@mail.example.th>"
    assert "<q1@mail.example.th>" in reply["References"]
    assert case_number in reply["Subject"]
    assert relay.received[1].rcpt_tos == ["somying@mail.example.th"]


async def test_automatic_mail_is_recorded_but_opens_no_case(mail_app: TestClient,
                                                           relay: RecordingRelay) -> None:
    app = mail_app.server.app
    center: ContactCenter = app[CENTER_KEY]
    vacation = citizen_mail("Out of office", "I am away", "<ooo@mail.example.th>",
                            Auto_Submitted="auto-replied")
    await asyncio.to_thread(send, app[SMTP_SERVER].port, vacation)
    assert (await center.list_rows(Message))[1] == 0
    assert not await center.record_event("email-noise", "<ooo@mail.example.th>", {})
    await asyncio.sleep(0.3)
    assert relay.received == []


async def test_a_malformed_message_is_kept_raw_and_goes_to_a_person(mail_app: TestClient) -> None:
    app = mail_app.server.app
    center: ContactCenter = app[CENTER_KEY]
    broken = (b"From: x@mail.example.th\r\nTo: help@onestop.go.th\r\nSubject: broken\r\n"
              b"Message-ID: <broken@mail.example.th>\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n")

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", app[SMTP_SERVER].port, timeout=10) as client:
            client.sendmail("x@mail.example.th", ["help@onestop.go.th"], broken)

    await asyncio.to_thread(deliver)
    messages, _ = await center.list_rows(Message)
    conversation = await center.conversation(messages[0].conversation_id)
    assert conversation.attributes["malformed"] is True
    raw = await center.blobs.get(conversation.attributes["raw_ref"])  # type: ignore[union-attr]
    assert raw.replace(b"\r\n", b"\n") == broken.replace(b"\r\n", b"\n")
    tasks = await wait_for(lambda: _tasks(center, 1))
    assert tasks[0].reason == "channel_entry"


async def test_a_mailbox_polled_over_imap_feeds_the_same_core(
    aiohttp_client: Callable[..., Any], tmp_path: Path, dovecot: DovecotServer
) -> None:
    config = config_with(tmp_path, imap=[{"host": dovecot.host, "port": dovecot.port,
                                          "use_tls": False, "username": dovecot.user,
                                          "queue": "welfare", "poll_interval_seconds": 0.5}],
                         acknowledge=False)
    app = build_app(app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                                 config_dir=config,
                                 secrets={"ONESTOP_IMAP_PASSWORD": dovecot.password}))
    client = await aiohttp_client(app)
    center: ContactCenter = client.server.app[CENTER_KEY]
    await _append(dovecot, 1, 2)
    rows = await wait_for(lambda: _inbound(center, 2))
    assert sorted(m.body.strip() for m in rows) == ["ข้อความที่ 1", "ข้อความที่ 2"]
    tasks = await wait_for(lambda: _tasks(center, 2))
    assert {t.attributes["queue"] for t in tasks} == {"welfare"}


async def _inbound(center: ContactCenter, n: int) -> list[Message] | None:
    rows, total = await center.list_rows(Message, Message.direction == "inbound")
    return rows if total >= n else None


async def _tasks(center: ContactCenter, n: int) -> list[Task] | None:
    rows, total = await center.list_rows(Task)
    return rows if total >= n else None


def center_system() -> Any:
    from routing import SYSTEM
    return SYSTEM



async def test_a_chat_transcript_asked_for_in_the_widget_is_emailed(
    mail_app: TestClient, relay: RecordingRelay
) -> None:
    from routing import Channel, IdentityHint, IdentityKind, InboundMessage

    center: ContactCenter = mail_app.server.app[CENTER_KEY]
    chat = await center.ingest(InboundMessage(
        Channel.CHAT, "chat-t", "c-1", "ขอเบอร์ติดต่อสำนักงานเขตค่ะ",
        identity_hints=(IdentityHint(IdentityKind.CHAT_VISITOR, "visitor-transcript"),)))
    await center.send_message(chat.conversation_id, "โทร 02-123-4567 ค่ะ", author=Author.AGENT,
                              author_name="สมศรี")
    # What the chat widget stores when the citizen asks for the transcript:
    await center.send_message(chat.conversation_id, "transcript requested",
                              author=Author.SYSTEM, internal=True,
                              extra={"kind": "transcript_request",
                                     "email": "citizen@mail.example.th", "language": "th"})
    await wait_for(lambda: asyncio.sleep(0, relay.received))
    mail = message_from_bytes(relay.received[0].content, policy=policy.default)
    assert relay.received[0].rcpt_tos == ["citizen@mail.example.th"]
    assert chat.case_number in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert "ขอเบอร์ติดต่อสำนักงานเขตค่ะ" in text and "สมศรี: โทร 02-123-4567 ค่ะ" in text


async def test_an_agent_reply_carries_an_uploaded_attachment(mail_app: TestClient,
                                                            relay: RecordingRelay) -> None:
    from aiohttp import FormData

    from onestop.demo import seed_demo
    from tests.support.app import bearer, login

    app = mail_app.server.app
    center: ContactCenter = app[CENTER_KEY]
    await seed_demo(center)
    await asyncio.to_thread(send, app[SMTP_SERVER].port, citizen_mail(
        "ขอแบบฟอร์ม", "ขอแบบฟอร์มคำร้องค่ะ", "<form@mail.example.th>"))
    await wait_for(lambda: asyncio.sleep(0, relay.received))  # the acknowledgement
    supervisor = await login(mail_app, "supervisor", "demo-supervisor")
    headers = bearer(supervisor["token"])
    refused = FormData()
    refused.add_field("file", b"MZ\x90\x00", filename="virus.exe",
                      content_type="application/x-msdownload")
    assert (await mail_app.post("/api/v1/attachments", data=refused, headers=headers)).status == 415
    form = FormData()
    form.add_field("file", b"%PDF-1.4 demo form", filename="kor-ror-1.pdf",
                   content_type="application/pdf")
    upload = await mail_app.post("/api/v1/attachments", data=form, headers=headers)
    assert upload.status == 201
    attachment = await upload.json()
    conversation_id = (await center.list_rows(Message))[0][0].conversation_id
    sent = await mail_app.post(f"/api/v1/conversations/{conversation_id}/messages", json={
        "body": "แนบแบบฟอร์มให้แล้วค่ะ", "attachments": [attachment]}, headers=headers)
    assert sent.status in (200, 201), await sent.text()
    await wait_for(lambda: asyncio.sleep(0, len(relay.received) == 2))
    reply = message_from_bytes(relay.received[1].content, policy=policy.default)
    files = [(p.get_filename(), p.get_content()) for p in reply.iter_attachments()]
    assert files == [("kor-ror-1.pdf", b"%PDF-1.4 demo form")]
