"""Secrets and personal data never reach the logs: a full scenario on the real server
process with a recognisable citizen (national ID, phone, email, name, message text) and the
provider secrets set, then a grep of everything it wrote to stderr."""

from __future__ import annotations

import asyncio
import json
import secrets
import smtplib
from pathlib import Path

import aiohttp
import pytest

from channels.email.testing.relay import RecordingRelay
from tests.drills.figures import FIGURES
from tests.drills.harness import (
    AUTH_TOKEN,
    KIOSK_ID,
    OUR_NUMBER,
    SLACK_BOT_TOKEN,
    SLACK_SECRET,
    AppProcess,
    ChatClient,
    call_params,
    citizen_email,
    ivr_post,
    kiosk_post,
    login,
    national_id,
)

NID = national_id("380170020736")
PHONE_LOCAL = "0891234567"
PHONE = "+66891234567"
EMAIL = "thongdee.secret@mail.example.th"
NAME = "ทองดี ลับเฉพาะ"
TEXT = "ข้อความลับสุดยอด7731"


async def _scenario(app: AppProcess) -> list[str]:
    """Every channel and the staff screens touch the citizen; returns extra secrets seen."""
    seen: list[str] = [app.kiosk_secret]
    async with aiohttp.ClientSession() as http:
        visit = "log-visit-1"
        r = await kiosk_post(http, app.base, app.kiosk_secret, {"events": [
            {"id": "log-event-0001", "type": "citizen_identified", "visit_id": visit,
             "method": "smart_card", "national_id": NID, "name_th": NAME},
            {"id": "log-event-0002", "type": "service_request", "visit_id": visit,
             "category": "id_card", "details": TEXT},
            {"id": "log-event-0003", "type": "callback_request", "visit_id": visit,
             "phone": PHONE_LOCAL, "note": TEXT}]})
        assert r.status == 200
        bad = await kiosk_post(http, app.base, "wrong-secret", {"events": [
            {"id": "log-event-0004", "type": "citizen_identified", "visit_id": visit,
             "method": "typed", "national_id": NID, "name_th": NAME}]})
        assert bad.status == 401
        chat = ChatClient(http, app.base)
        seen.append(chat.visitor)
        await chat.connect()
        assert await chat.send(f"{TEXT} {NAME} {NID} {PHONE_LOCAL} {EMAIL}")
        assert chat.ws is not None
        await chat.ws.send_json({"type": "offline", "client_id": secrets.token_hex(8),
                                 "name": NAME, "email": EMAIL, "phone": PHONE_LOCAL,
                                 "text": TEXT})
        await chat.drain(0.5)
        await chat.ws.send_json({"type": "message", "client_id": "x", "text": TEXT,
                                 "bogus": NID})  # an invalid frame: the error is logged?
        await chat.drain(0.5)
        await chat.close()
        await asyncio.to_thread(_send_mail, app.smtp_port)
        await ivr_post(http, app.base, "/ivr/voice", call_params("CA" + "7" * 32, PHONE))
        await ivr_post(http, app.base, "/ivr/sms", {
            "MessageSid": "SM" + "7" * 32, "From": PHONE, "To": OUR_NUMBER, "Body": TEXT})
        staff = await login(http, app.base, "supervisor", "demo-supervisor")
        seen.append(staff["token"])
        auth = {"Authorization": f"Bearer {staff['token']}"}
        citizen = app.query("SELECT citizen_id FROM identities WHERE value = ?", NID)[0][0]
        for path in (f"/api/v1/citizens/{citizen}", f"/api/v1/citizens/{citizen}/export",
                     f"/api/v1/citizens/{citizen}/timeline", "/api/v1/cases",
                     "/api/v1/citizens/nope?reason=" + NAME):
            async with http.get(app.base + path, headers=auth) as r:
                await r.read()
        async with http.post(app.base + "/api/v1/auth/login",
                             json={"username": EMAIL, "password": TEXT}) as r:
            await r.read()
    return seen


def _send_mail(port: int) -> None:
    msg = citizen_email("<log-1@mail.example.th>", f"{TEXT}\nเลขบัตร {NID}\nโทร {PHONE_LOCAL}",
                        sender=f"{NAME} <{EMAIL}>", subject=f"เรื่องของ {NAME}")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg)


async def _drill(tmp_path: Path, level: str) -> None:
    relay = RecordingRelay()  # acknowledgements really go out (and log what they log)
    await relay.start()
    app = AppProcess(tmp_path / "node", relay_port=relay.port, env_extra={
        "ONESTOP_LOG_LEVEL": level, "ONESTOP_SMTP_RELAY_PASSWORD": "relay-pass-9f8e7d",
        "ONESTOP_IMAP_PASSWORD": "imap-pass-1a2b3c"})
    await asyncio.to_thread(app.prepare)
    await app.start()
    try:
        extra = await _scenario(app)
        await asyncio.sleep(2)  # background work (tasks, acknowledgements) logs too
    finally:
        app.stop()
        await relay.stop()
    assert relay.received, "the acknowledgement should have been sent"
    logs = app.logs()
    lines = [line for line in logs.splitlines() if line.strip()]
    assert len(lines) > 10, "the scenario should have logged requests"
    not_json = [line for line in lines if not line.startswith("{")]
    needles = {"national ID": NID, "phone": PHONE_LOCAL[1:], "email": EMAIL,
               "name": NAME, "message text": TEXT, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
               "SLACK_SIGNING_SECRET": SLACK_SECRET, "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
               "relay password": "relay-pass-9f8e7d", "IMAP password": "imap-pass-1a2b3c",
               "kiosk key": extra[0], "chat visitor token": extra[1],
               "staff session token": extra[2]}
    found = {what: next(line for line in lines if value in line)[:300]
             for what, value in needles.items() if value in logs}
    FIGURES.note(f"logs ({level})", (
        f"{len(lines)} log lines from a full scenario (kiosk, chat, offline form, email, call, "
        f"SMS, staff reads, a failed sign-in): {len(found)} of {len(needles)} secrets or "
        f"personal values found{': ' + ', '.join(found) if found else ''}; "
        f"{len(not_json)} non-JSON lines."))
    FIGURES.add("log lines grepped", len(lines))
    assert not found, json.dumps(found, ensure_ascii=False, indent=1)
    assert not not_json, not_json[:5]
    assert KIOSK_ID  # the device id itself is not secret and may be logged


async def test_no_secret_or_personal_data_in_the_logs(tmp_path: Path) -> None:
    await _drill(tmp_path, "INFO")


@pytest.mark.drill
async def test_no_secret_or_personal_data_in_debug_logs_either(tmp_path: Path) -> None:
    await _drill(tmp_path, "DEBUG")
