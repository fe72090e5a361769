"""Secrets and personal data never reach the logs: a full scenario on the real server
process with a recognisable citizen (national ID, phone, email, name, message text) and the
provider secrets set, then a grep of everything it wrote to stderr."""

from __future__ import annotations

import asyncio
import html
import json
import re
import secrets
import smtplib
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from channels.email.testing.relay import RecordingRelay
from tests.channels.slack.conftest import FakeSlack
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
    free_port,
    ivr_post,
    kiosk_post,
    login,
    national_id,
    twilio_headers,
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
        chat_client_id = await chat.send(f"{TEXT} {NAME} {NID} {PHONE_LOCAL} {EMAIL}")
        assert chat_client_id
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
        await _ivr_menu_walk(http, app)
        await _slack_traffic(http, app)
        staff = await login(http, app.base, "supervisor", "demo-supervisor")
        seen.append(staff["token"])
        auth = {"Authorization": f"Bearer {staff['token']}"}
        await _staff_replies(http, app, auth, chat_client_id)
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


async def _ivr_menu_walk(http: aiohttp.ClientSession, app: AppProcess) -> None:
    """Three callers walk the menus the way Twilio drives them (following each Gather's
    action): the case status by key presses, a question by voice, an officer."""
    walks = [[{"Digits": "1"}, {"Digits": NID + "#"}, {"Digits": "2026000001#"}],
             [{"Digits": "3"}, {"SpeechResult": f"{TEXT} ชื่อ {NAME} โทร {PHONE_LOCAL}",
                                "Confidence": "0.9"}],
             [{"Digits": "0"}]]
    walked = 0
    for n, steps in enumerate(walks):
        params = call_params("CA" + f"{n}" * 32, PHONE)
        url = app.base + "/ivr/voice"
        for step in [{}, *steps]:
            form = {**params, "CallStatus": "in-progress", **step}
            async with http.post(url, data=form, headers=twilio_headers(url, form)) as r:
                assert r.status == 200, (url, r.status)
                twiml = await r.text()
            walked += 1
            action = re.search(r'<(?:Gather|Enqueue|Record)[^>]*action="([^"]+)"', twiml)
            if action is None:
                break
            url = html.unescape(action.group(1))
    assert walked >= 2 * len(walks), walked  # each caller got past the main menu
    FIGURES.add("IVR menu steps walked", walked)


async def _slack_traffic(http: aiohttp.ClientSession, app: AppProcess) -> None:
    """A back office writes in Slack about the citizen (signed as Slack signs)."""
    verifier = SignatureVerifier(SLACK_SECRET)
    event = {"type": "message", "channel": "CREG", "user": "UBACKOFFICE", "ts": "1.2",
             "thread_ts": "1.1", "text": f"{NAME} {NID} {PHONE_LOCAL} {TEXT}"}
    bodies = [json.dumps({"type": "url_verification", "challenge": "c", "token": "t"}),
              json.dumps({"type": "event_callback", "team_id": "T1", "event": event,
                          "event_id": "EvLOG1", "event_time": int(time.time())})]
    for body in bodies:
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                   "X-Slack-Signature": str(verifier.generate_signature(timestamp=stamp,
                                                                        body=body))}
        async with http.post(app.base + "/slack/events", data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
    form = urlencode({"command": "/onestop", "text": f"case {NID}", "user_id": "UBACKOFFICE",
                      "team_id": "T1", "channel_id": "CREG", "response_url": "https://x"})
    stamp = str(int(time.time()))
    async with http.post(app.base + "/slack/events", data=form, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(verifier.generate_signature(timestamp=stamp,
                                                                 body=form))}) as r:
        assert r.status < 500, await r.text()


async def _staff_replies(http: aiohttp.ClientSession, app: AppProcess, auth: dict[str, str],
                         chat_client_id: str) -> None:
    """An officer takes the chat and answers; a supervisor adds an internal note."""
    conversation = app.query("SELECT conversation_id FROM messages WHERE "
                             "provider_message_id = ?", chat_client_id)[0][0]
    agent = await login(http, app.base, "somsri", "demo-agent-1")
    mine = {"Authorization": f"Bearer {agent['token']}"}
    async with http.put(app.base + "/api/v1/agents/me/presence", headers=mine,
                        json={"presence": "available"}) as r:
        assert r.status == 200
    accepted = False
    for _ in range(100):
        async with http.get(app.base + "/api/v1/desk", headers=mine) as r:
            desk = await r.json()
        for item in desk["items"]:
            if item["task"]["conversation_id"] == conversation:
                async with http.post(app.base + f"/api/v1/tasks/{item['task']['id']}/accept",
                                     headers=mine) as r:
                    accepted = r.status == 200
        if accepted:
            break
        await asyncio.sleep(0.1)
    writer = mine if accepted else auth  # a supervisor may always write
    async with http.post(app.base + f"/api/v1/conversations/{conversation}/messages",
                         headers=writer, json={"body": f"เรียนคุณ{NAME} เรื่อง {TEXT}"}) as r:
        assert r.status == 201, await r.text()
    async with http.post(app.base + f"/api/v1/conversations/{conversation}/messages",
                         headers=auth, json={"body": f"โน้ต: {NID} {PHONE_LOCAL} {EMAIL}",
                                             "internal": True}) as r:
        assert r.status == 201, await r.text()
    async with http.get(app.base + "/api/v1/tasks", headers=auth) as r:
        assert r.status == 200
    FIGURES.add("agent replies in the log drill", 2)


def _send_mail(port: int) -> None:
    msg = citizen_email("<log-1@mail.example.th>", f"{TEXT}\nเลขบัตร {NID}\nโทร {PHONE_LOCAL}",
                        sender=f"{NAME} <{EMAIL}>", subject=f"เรื่องของ {NAME}")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg)


async def _drill(tmp_path: Path, level: str) -> None:
    relay = RecordingRelay()  # acknowledgements really go out (and log what they log)
    await relay.start()
    slack = FakeSlack()  # Slack's Web API, recording (bolt asks auth.test on each event)
    slack_api = web.Application()
    slack_api.router.add_post("/api/{method}", slack.handle)
    runner = web.AppRunner(slack_api)
    await runner.setup()
    slack_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", slack_port).start()
    app = AppProcess(tmp_path / "node", relay_port=relay.port, env_extra={
        "ONESTOP_LOG_LEVEL": level, "ONESTOP_SMTP_RELAY_PASSWORD": "relay-pass-9f8e7d",
        "ONESTOP_IMAP_PASSWORD": "imap-pass-1a2b3c",
        "SLACK_API_BASE_URL": f"http://127.0.0.1:{slack_port}/api/"})
    await asyncio.to_thread(app.prepare)
    await app.start()
    try:
        extra = await _scenario(app)
        await asyncio.sleep(2)  # background work (tasks, acknowledgements) logs too
    finally:
        app.stop()
        await runner.cleanup()
        await relay.stop()
    assert any(c.method == "auth.test" for c in slack.calls), "Slack traffic was handled"
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
        f"{len(lines)} log lines from a full scenario (kiosk, chat, offline form, email, "
        f"IVR menu walks by keys and by voice, SMS, Slack events and a slash command, an "
        f"officer's reply and a supervisor's note, staff reads, a failed sign-in): {len(found)} of {len(needles)} secrets or "
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
