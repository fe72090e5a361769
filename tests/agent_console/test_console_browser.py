"""End to end in real Chromium: an agent signs in, goes available, an email arrives, the
offer counts down, she accepts with the keyboard, replies, resolves the case, wraps up;
the supervisor's wall shows the answered contact."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from agent_console.api import CENTER_KEY
from onestop.demo import seed_demo
from routing import Channel, ContactCenter, IdentityHint, IdentityKind, InboundMessage
from tests.agent_console.console_support import console_app
from tests.support.browser import NEEDS_CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "agent_console"
pytestmark = NEEDS_CHROMIUM
BODY = 'ขอย้ายทะเบียนบ้าน <img src=x onerror="window.__xss=1">'


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, ContactCenter]]:
    app = console_app(f"sqlite+aiosqlite:///{tmp_path / 'onestop.db'}", tmp_path)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    await seed_demo(app[CENTER_KEY])
    try:
        yield f"http://127.0.0.1:{port}", app[CENTER_KEY]
    finally:
        await runner.cleanup()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS




async def sign_in(browser: Browser, base: str, username: str, password: str) -> Page:
    context = await browser.new_context(base_url=base, viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto("/console/login")
    await page.get_by_label("ชื่อผู้ใช้").fill(username)
    await page.get_by_label("รหัสผ่าน").fill(password)
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    return page


async def api_get(base: str, path: str) -> Any:
    async with aiohttp.ClientSession(base) as http:
        login = await http.post("/api/v1/auth/login",
                                json={"username": "supervisor", "password": "demo-supervisor"})
        token = (await login.json())["token"]
        response = await http.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200, await response.text()
        return await response.json()


async def test_an_agent_answers_an_email_from_offer_to_wrap_up_and_the_wall_follows(
    server: tuple[str, ContactCenter], browser: Browser, artifacts: Path,
) -> None:
    base, center = server
    agent = await sign_in(browser, base, "somsri", "demo-agent-1")
    await expect(agent).to_have_url(f"{base}/console/")
    await expect(agent.locator("body[data-live=on]")).to_have_count(1)
    wall = await sign_in(browser, base, "supervisor", "demo-supervisor")
    await expect(wall).to_have_url(f"{base}/supervisor/")
    await expect(wall.locator("#queues tbody tr").first).to_be_visible()

    await agent.get_by_label("พร้อมรับงาน").check()
    await agent.get_by_role("button", name="เปลี่ยนสถานะ").click()
    await expect(wall.locator("#agents tbody tr", has_text="สมศรี")).to_contain_text("พร้อมรับงาน")

    result = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-e2e", "<e2e@mail.th>", BODY, subject="ย้ายทะเบียนบ้าน",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "citizen.e2e@mail.th"),)))
    offer = agent.locator(".offer")
    await expect(offer).to_be_visible()
    countdown = offer.locator(".countdown")
    await expect(countdown).to_contain_text("เหลือเวลา")
    first = int((await countdown.inner_text()).split()[1])
    await expect(countdown).not_to_have_text(f"เหลือเวลา {first} วินาที")  # it counts down
    await agent.screenshot(path=str(artifacts / "1-offer.png"), full_page=True)
    task = (await api_get(base, "/tasks?limit=1"))["items"][0]
    answered = wall.locator(f'#queues tr[data-queue="{task["queue_id"]}"] .answered')
    before = int(await answered.inner_text())

    await agent.keyboard.press("Alt+KeyA")  # accept (documented on the page)
    await expect(offer).to_have_count(0)
    pane = agent.locator(".pane:not([hidden])")
    await expect(pane.locator(".history .body").first).to_have_text(BODY)  # text, not HTML
    await expect(pane.locator(".facts")).to_contain_text(result.case_number)
    assert await agent.evaluate("window.__xss") is None

    await agent.keyboard.press("Alt+KeyR")
    reply = pane.get_by_label("ข้อความตอบกลับ")
    await expect(reply).to_be_focused()
    await pane.get_by_label("ข้อความสำเร็จรูป").select_option("greeting")
    await pane.get_by_role("button", name="ใส่ข้อความ").click()
    await expect(reply).to_have_value(f"สวัสดีค่ะ คุณ ดิฉันสมศรี ใจดี (Somsri) ยินดีให้บริการเรื่องเลขที่ {result.case_number} ค่ะ")
    await reply.fill("รับเรื่องย้ายทะเบียนบ้านแล้วค่ะ")
    await pane.get_by_role("button", name="ส่ง", exact=True).click()
    await expect(pane.locator(".history .msg.outbound")).to_contain_text("รับเรื่องย้ายทะเบียนบ้านแล้วค่ะ")
    conversation = await api_get(base, f"/conversations/{result.conversation_id}")
    outbound = [m for m in conversation["messages"] if m["direction"] == "outbound"]
    assert [(m["body"], m["author"], m["internal"]) for m in outbound] == [
        ("รับเรื่องย้ายทะเบียนบ้านแล้วค่ะ", "agent", False)]

    await pane.get_by_label("หมวดบริการ").select_option("house_registration")
    await pane.get_by_label("สถานะเรื่อง").select_option("resolved")
    await pane.get_by_label("ผลการดำเนินการ").fill("แจ้งเอกสารที่ต้องใช้แล้ว")
    await pane.get_by_role("button", name="บันทึกเรื่อง").click()
    await expect(pane.locator(".case-status")).to_have_text("บันทึกแล้ว")
    await agent.screenshot(path=str(artifacts / "2-conversation.png"), full_page=True)

    await agent.keyboard.press("Alt+KeyW")
    wrap = pane.get_by_label("รหัสสรุปงาน")
    await expect(wrap).to_be_focused()
    await wrap.select_option("resolved")
    await pane.get_by_role("button", name="สรุปและปิดงาน").click()
    await expect(agent.locator(".pane")).to_have_count(0)

    case = await api_get(base, f"/cases/{result.case_id}")
    assert case["status"] == "resolved" and case["category"] == "house_registration"
    assert case["one_stop"] is True
    done = await api_get(base, f"/tasks/{task['id']}")
    assert done["status"] == "completed" and done["wrap_code"] == "resolved"
    await expect(answered).to_have_text(str(before + 1))
    await wall.screenshot(path=str(artifacts / "3-wall.png"), full_page=True)
