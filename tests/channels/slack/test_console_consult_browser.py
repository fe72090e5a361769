"""End to end in real Chromium: an agent consults a department from the desk, the
department answers in the Slack thread, the answer appears live on the desk and the
agent sends it on to the citizen."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from agent_console import console
from agent_console.api import CENTER_KEY
from channels.slack import StaffDirectory, setup
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import (
    Channel,
    Consultation,
    ContactCenter,
    IdentityHint,
    IdentityKind,
    InboundMessage,
)
from tests.channels.slack.conftest import (
    STAFF,
    FakeSlack,
    eventually,
    message_event,
    signed_headers,
)
from tests.support.app import app_settings
from tests.support.browser import NEEDS_CHROMIUM

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "slack"
pytestmark = NEEDS_CHROMIUM
ANSWER = "ย้ายเข้าได้ โดยใช้หนังสือยินยอมของเจ้าบ้านแทนการมาด้วยตนเอง"


@pytest.fixture
async def server(tmp_path: Path, fake_slack: tuple[FakeSlack, str]) -> AsyncIterator[
        tuple[str, ContactCenter, FakeSlack]]:
    slack, base_url = fake_slack
    app = build_app(app_settings(f"sqlite+aiosqlite:///{tmp_path / 'onestop.db'}", tmp_path),
                    wire_rooms=False)
    console.setup(app, app[CENTER_KEY])
    setup(app, app[CENTER_KEY], signing_secret="8f742231b10e8888abcd99yyyzzz85a5",
          bot_token="xoxb-test", api_base_url=base_url, staff_directory=StaffDirectory(STAFF))
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    await seed_demo(app[CENTER_KEY])
    try:
        yield f"http://127.0.0.1:{port}", app[CENTER_KEY], slack
    finally:
        await runner.cleanup()




async def sign_in(browser: Browser, base: str) -> Page:
    context = await browser.new_context(base_url=base, viewport={"width": 1400, "height": 1200})
    page = await context.new_page()
    await page.goto("/console/login")
    await page.get_by_label("ชื่อผู้ใช้").fill("somsri")
    await page.get_by_label("รหัสผ่าน").fill("demo-agent-1")
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    await expect(page.locator("body[data-live=on]")).to_have_count(1)
    return page


async def conversation(base: str, conversation_id: str) -> Any:
    async with aiohttp.ClientSession(base) as http:
        login = await http.post("/api/v1/auth/login",
                                json={"username": "supervisor", "password": "demo-supervisor"})
        token = (await login.json())["token"]
        response = await http.get(f"/api/v1/conversations/{conversation_id}",
                                  headers={"Authorization": f"Bearer {token}"})
        return await response.json()


async def test_an_agent_consults_a_department_and_passes_its_answer_to_the_citizen(
    server: tuple[str, ContactCenter, FakeSlack], browser: Browser,
) -> None:
    base, center, slack = server
    agent = await sign_in(browser, base)
    await agent.get_by_label("พร้อมรับงาน").check()
    await agent.get_by_role("button", name="เปลี่ยนสถานะ").click()
    stored = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-consult", "<consult@mail.th>", "ขอย้ายทะเบียนบ้านเข้าบ้านญาติ",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "citizen.consult@mail.th"),)))
    await expect(agent.locator(".offer")).to_be_visible()
    await agent.keyboard.press("Alt+KeyA")
    pane = agent.locator(".pane:not([hidden])")

    await pane.get_by_label("หน่วยงาน", exact=True).select_option("registration_office")
    await pane.get_by_label("คำถามถึงหน่วยงาน").fill("ย้ายเข้าได้หรือไม่ถ้าเจ้าบ้านอยู่ต่างจังหวัด")
    await pane.get_by_role("button", name="ส่งคำถาม").click()
    await expect(pane.locator(".consult-status")).to_contain_text("ส่งคำถามแล้ว")
    await expect(pane.locator(".consultations")).to_contain_text("รอคำตอบ")
    await expect(pane.locator(".facts").first).to_contain_text("รอหน่วยงาน")

    async def posted() -> str | None:
        rows, _ = await center.list_rows(Consultation, Consultation.case_id == stored.case_id)
        return rows[0].external_ref if rows else None
    consultation_ref = await eventually(posted)
    [post] = [p for p in slack.posted() if p["channel"] == "#bo-registration"]
    assert "ต่างจังหวัด" in json.dumps(post["blocks"], ensure_ascii=False)
    channel, ts = consultation_ref.split(":")
    payload = json.dumps(message_event(channel=channel, thread_ts=ts, ts="1700000500.000100",
                                       text=ANSWER, event_id="Ev0BROWSER"))
    async with aiohttp.ClientSession(base) as http:
        response = await http.post("/slack/events", data=payload, headers=signed_headers(
            payload, content_type="application/json"))
        assert response.status == 200

    note = pane.locator(".history .msg.internal", has_text=ANSWER)
    await expect(note).to_be_visible()
    await expect(pane.locator(".consultations")).to_contain_text("ตอบแล้ว")
    await note.get_by_role("button", name="ส่งคำตอบนี้ถึงประชาชน").click()
    await expect(note.locator(".forward-status")).to_have_text("ส่งถึงประชาชนแล้ว")
    citizen_sees = pane.locator(".history .msg.outbound:not(.internal)", has_text=ANSWER)
    await expect(citizen_sees).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await agent.screenshot(path=str(ARTIFACTS / "consult-panel.png"), full_page=True)

    messages = (await conversation(base, stored.conversation_id))["messages"]
    sent = [m for m in messages if m["direction"] == "outbound" and not m["internal"]]
    assert [(m["body"], m["author"]) for m in sent] == [(ANSWER, "agent")]
