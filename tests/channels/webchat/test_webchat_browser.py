"""End to end in Debian's Chromium: a citizen on the demo site chats, waits, talks to an
agent, reloads mid-conversation, and sees the whole history once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from routing import Author, Message
from tests.channels.webchat.conftest import AnsweringBot, build_chat_app, center_of
from tests.support.app import bearer, login
from tests.support.browser import NEEDS_CHROMIUM

pytestmark = NEEDS_CHROMIUM

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"




@pytest.fixture
async def site(aiohttp_client: Callable[..., Any], tmp_path: Path, clock: Any) -> TestClient:
    from onestop.demo import seed_demo

    url = f"sqlite+aiosqlite:///{tmp_path / 'onestop.db'}"
    app = build_chat_app(url, tmp_path, clock, AnsweringBot(), refresh_seconds=0.5)
    client: TestClient = await aiohttp_client(app)
    await seed_demo(center_of(client))
    return client


async def say(page: Page, text: str) -> None:
    box = page.get_by_label("พิมพ์ข้อความถึงเรา")
    await box.fill(text)
    await box.press("Enter")


async def test_a_citizen_chats_waits_talks_to_an_agent_and_reloads_without_losing_anything(
    site: TestClient, browser: Browser,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(str(site.make_url("/demo-site")))

    await page.get_by_role("button", name="แชทกับเรา").click()
    log = page.get_by_role("log")
    await say(page, "ต่ออายุบัตรประชาชนต้องทำอย่างไร")
    await expect(log).to_contain_text("ผู้ช่วยตอบ: ต่ออายุบัตรประชาชนต้องทำอย่างไร")
    await page.get_by_role("button", name="ต่ออายุบัตร").click()  # a quick reply
    await expect(log).to_contain_text("ผู้ช่วยตอบ: ต่ออายุบัตร")

    attack = '<img src=x onerror="document.title=\'pwned\'">'
    await say(page, attack)
    await expect(log.locator(".os-msg--citizen .os-msg-text").last).to_have_text(attack)
    assert await log.locator("img").count() == 0

    await say(page, "ขอคุยกับเจ้าหน้าที่ค่ะ")
    notice = page.get_by_role("status").first
    await expect(notice).to_contain_text("ท่านอยู่ลำดับที่ 1 ในคิว")
    await expect(notice).to_contain_text("รอประมาณ")
    await page.screenshot(path=str(ARTIFACTS / "webchat-queue.png"))

    me = await login(site, "somsri", "demo-agent-1")
    headers = bearer(me["token"])
    await site.put("/api/v1/agents/me/presence", json={"presence": "available"}, headers=headers)
    tasks = await (await site.get("/api/v1/tasks?status=reserved", headers=headers)).json()
    (task,) = tasks["items"]
    accepted = await site.post(f"/api/v1/tasks/{task['id']}/accept", headers=headers)
    assert accepted.status == 200
    await expect(notice).to_contain_text("ท่านกำลังคุยกับ สมศรี ใจดี (Somsri)")
    await center_of(site).send_message(task["conversation_id"], "สวัสดีค่ะ สมศรีรับเรื่องค่ะ",
                                       author=Author.AGENT, author_id=me["me"]["agent_id"])
    await expect(log).to_contain_text("สวัสดีค่ะ สมศรีรับเรื่องค่ะ")
    await page.screenshot(path=str(ARTIFACTS / "webchat-agent.png"))

    stored = await center_of(site).messages(task["conversation_id"], include_internal=False)
    before = await log.locator("li").all_inner_texts()
    assert len(before) == len(stored)

    await page.reload()
    await expect(log.locator("li")).to_have_count(len(stored))
    seqs = [int(s) for s in await log.locator("li").evaluate_all(
        "items => items.map(i => i.dataset.seq)")]
    assert seqs == [m.seq for m in stored]
    texts = await log.locator(".os-msg-text").all_inner_texts()
    assert texts == [m.body for m in stored]
    assert await page.title() != "pwned"

    # After the reload the citizen can go on, and the agent still reaches them.
    await say(page, "ขอบคุณค่ะ")
    await expect(log).to_contain_text("ขอบคุณค่ะ")
    await center_of(site).send_message(task["conversation_id"], "ยินดีค่ะ",
                                       author=Author.AGENT, author_id=me["me"]["agent_id"])
    await expect(log.locator(".os-msg--agent").last).to_contain_text("ยินดีค่ะ")
    rows, _ = await center_of(site).list_rows(Message, Message.body == "ขอบคุณค่ะ")
    assert len(rows) == 1
    assert problems == []


async def test_the_widget_works_by_keyboard_alone_on_a_phone_screen_in_english(
    site: TestClient, browser: Browser,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
    await page.goto(str(site.make_url("/demo-site?lang=en")))
    launcher = page.get_by_role("button", name="Chat with us")
    await launcher.focus()
    await page.keyboard.press("Enter")
    box = page.get_by_label("Type a message to us")
    await expect(box).to_be_focused()
    panel = page.get_by_role("dialog")
    size = await panel.bounding_box()
    assert size is not None and size["width"] >= 370  # the whole phone screen

    await page.keyboard.type("hello, I lost my ID card")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("log")).to_contain_text("ผู้ช่วยตอบ: hello, I lost my ID card")
    await page.get_by_role("button", name="Larger text").click()
    await expect(page.get_by_role("button", name="Larger text")).to_have_attribute(
        "aria-pressed", "true")
    await page.screenshot(path=str(ARTIFACTS / "webchat-phone.png"))
    await page.keyboard.press("Escape")
    await expect(launcher).to_be_focused()


async def test_after_hours_the_citizen_leaves_a_message_with_the_offline_form(
    site: TestClient, browser: Browser,
) -> None:
    page = await browser.new_page()
    await page.goto(str(site.make_url("/demo-site?lang=en")))
    await page.get_by_role("button", name="Chat with us").click()
    notice = page.get_by_role("status").first
    await expect(notice).to_contain_text(re.compile("No officer is online"))
    await page.get_by_role("button", name="Leave a message").click()
    await page.get_by_label("Name").fill("Somchai")
    await page.get_by_label("Phone number").fill("081 234 5678")
    await page.get_by_label("Message", exact=True).fill("Please call me about my tax refund")
    await page.get_by_role("button", name="Send message").click()
    await expect(notice).to_contain_text(re.compile(r"case OS-\d{4}-\d{6}"))
    case = re.search(r"OS-\d{4}-\d{6}", await notice.inner_text())
    assert case is not None
    # The form waits in the queue for an officer, but the queue's updates and a reload
    # (which replays them) keep the citizen's case number in view: it is what they quote
    # when the officer calls back.
    await page.reload()
    notice = page.get_by_role("status").first
    await expect(page.get_by_role("log")).to_contain_text("Please call me about my tax refund")
    await expect(notice).to_contain_text(case.group(0))
