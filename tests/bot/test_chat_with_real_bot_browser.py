"""End to end in Chromium with the real Rasa bot behind the real app: a citizen asks an
FAQ in Thai, asks for a person, waits with a queue position, chats with the agent who
accepted, reloads, and finds the whole conversation once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from agent_console.api import CENTER_KEY
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import Author, ContactCenter, Task
from tests.bot.conftest import RunningBot
from tests.support.app import app_settings, bearer, login

pytestmark = [pytest.mark.rasa, pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
async def site(aiohttp_client: Callable[..., Any], tmp_path: Path,
               rasa_bot: RunningBot) -> AsyncIterator[TestClient]:
    settings = app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                            rasa_url=rasa_bot.url, rasa_token=rasa_bot.api_token,
                            bot="managed")
    client: TestClient = await aiohttp_client(build_app(settings))
    await seed_demo(client.server.app[CENTER_KEY])
    yield client




async def test_a_thai_faq_then_a_person_then_a_reload_with_the_real_bot(
    site: TestClient, browser: Browser,
) -> None:
    center: ContactCenter = site.server.app[CENTER_KEY]
    agent = await login(site, "somsri", "demo-agent-1")
    await site.put("/api/v1/agents/me/presence", json={"presence": "available"},
                   headers=bearer(agent["token"]))
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(str(site.make_url("/")))
    await page.get_by_role("button", name="แชทกับเรา").click()
    box = page.get_by_label("พิมพ์ข้อความถึงเรา")
    log = page.get_by_role("log")

    await box.fill("ทำบัตรประชาชนใหม่ต้องใช้อะไรบ้าง")
    await box.press("Enter")
    bot_answer = log.locator(".os-msg--bot .os-msg-text").first
    await expect(bot_answer).to_contain_text("บัตร", timeout=20_000)

    # Nobody is free yet: the agent goes away, so the citizen waits with a position.
    await site.put("/api/v1/agents/me/presence", json={"presence": "away", "reason": "break"},
                   headers=bearer(agent["token"]))
    await box.fill("ขอคุยกับเจ้าหน้าที่")
    await box.press("Enter")
    await expect(page.get_by_text("ลำดับที่ 1")).to_be_visible(timeout=20_000)

    await site.put("/api/v1/agents/me/presence", json={"presence": "available"},
                   headers=bearer(agent["token"]))
    tasks, _ = await center.list_rows(Task)
    assert tasks[0].attributes["intent"] == "request_human"
    accepted = await site.post(f"/api/v1/tasks/{tasks[0].id}/accept",
                               headers=bearer(agent["token"]))
    assert accepted.status == 200
    await center.send_message(tasks[0].conversation_id, "สวัสดีค่ะ สมศรีรับเรื่องค่ะ",
                              author=Author.AGENT, author_id=agent["me"]["agent_id"],
                              author_name="สมศรี")
    await expect(log).to_contain_text("สมศรีรับเรื่องค่ะ", timeout=10_000)

    await page.reload()
    reloaded = page.get_by_role("log")
    launcher = page.get_by_role("button", name="แชทกับเรา")
    await expect(reloaded.or_(launcher).first).to_be_visible()
    if not await reloaded.is_visible():  # the widget may remember it was open
        await launcher.click()
    await expect(reloaded).to_contain_text("สมศรีรับเรื่องค่ะ", timeout=10_000)
    texts = await reloaded.locator(".os-msg-text").all_inner_texts()
    assert texts.count("ขอคุยกับเจ้าหน้าที่") == 1
    assert texts.count("สวัสดีค่ะ สมศรีรับเรื่องค่ะ") == 1
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "chat-real-bot.png"))
