"""The reference kiosk app in a real browser (Debian's Chromium through Playwright): a
citizen reads their card, asks for a service, gets a case number and a ticket, asks for a
call back, loses the network while rating, and everything lands on their timeline once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from agent_console.api import CENTER_KEY, authenticate
from channels.kiosk import setup
from onestop.app import build_app
from routing import Case, ContactCenter, Identity, Message, Task, TimelineEvent
from tests.support.app import app_settings
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
DEMO_CARD_ID = "1101700123456"  # the citizen on the simulated card (kiosk.js)


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One engine is enough here: the feed's storage is tested on both elsewhere."""
    return f"sqlite+aiosqlite:///{tmp_path / 'onestop.db'}"


@pytest.fixture
async def demo_client(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path,
) -> AsyncIterator[TestClient]:
    app = build_app(app_settings(database_url, tmp_path), wire_rooms=False)
    setup(app, app[CENTER_KEY], authenticate=authenticate, demo=True, create_tables=True)
    yield await aiohttp_client(app)


@pytest.fixture
async def page(demo_client: TestClient) -> AsyncIterator[Page]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1080, "height": 1600})
        yield await context.new_page()


async def buffered(page: Page) -> int:
    return int(await page.evaluate(
        "JSON.parse(localStorage.getItem('onestop.kiosk.buffer') || '[]').length"))


async def test_a_visit_at_the_kiosk_ends_on_the_citizens_timeline(
    demo_client: TestClient, page: Page,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    center: ContactCenter = demo_client.app[CENTER_KEY]
    await page.goto(str(demo_client.make_url("/kiosk/")))
    await expect(page.get_by_role("heading", name="ยินดีต้อนรับ")).to_be_visible()

    # Thai first; the toggle switches every text and the page language.
    await page.get_by_role("button", name="Switch to English").click()
    await expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "en"
    await page.get_by_role("button", name="เปลี่ยนเป็นภาษาไทย").click()
    await expect(page.get_by_role("heading", name="ยินดีต้อนรับ")).to_be_visible()
    font_px = await page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('#welcome-title + p')).fontSize)")
    assert font_px >= 24
    await page.screenshot(path=str(ARTIFACTS / "kiosk-1-welcome.png"))

    # Card read → services → a short form → the case number.
    await page.get_by_role("button", name=re.compile("เสียบบัตรประชาชน")).click()
    await expect(page.get_by_text("สวัสดีค่ะ คุณนายสมชาย ใจดี")).to_be_visible()
    await page.get_by_role("button", name=re.compile("^บัตรประจำตัวประชาชน")).click()
    await page.get_by_label("รายละเอียดคำขอ").fill("บัตรหายที่ตลาด ขอทำบัตรใหม่")
    await page.get_by_role("button", name="ส่งคำขอ").click()
    case_number = page.locator("#case-number")
    await expect(case_number).to_have_text(re.compile(r"^OS-\d{4}-\d{6}$"))
    number = await case_number.text_content()
    await expect(page.locator("#announce")).to_contain_text(str(number))

    await page.get_by_role("button", name="รับบัตรคิว").click()
    await expect(page.locator("#ticket-number")).to_have_text("B001")

    # The keyboard alone asks for a call back.
    await page.get_by_role("button", name="ขอให้เจ้าหน้าที่โทรกลับ").focus()
    await page.keyboard.press("Enter")
    await page.keyboard.type("0812345678")
    await page.keyboard.press("Enter")
    await expect(page.locator("#announce")).to_contain_text("เจ้าหน้าที่จะโทรกลับ")
    await page.screenshot(path=str(ARTIFACTS / "kiosk-2-case-number.png"))

    # The network drops while the citizen rates: the rating waits in the buffer.
    await page.get_by_role("button", name="ให้คะแนนบริการ").click()
    await page.context.set_offline(True)
    await page.get_by_role("button", name="5 คะแนน").click()
    await page.get_by_label("ความคิดเห็นเพิ่มเติม").fill("เจ้าหน้าที่ใจดีมาก")
    await page.get_by_role("button", name="ส่งคะแนน").click()
    await expect(page.get_by_role("heading", name="ขอบคุณที่ใช้บริการ")).to_be_visible()
    await expect(page.locator("#link-status")).to_contain_text("ออฟไลน์")
    assert await buffered(page) == 1
    await page.screenshot(path=str(ARTIFACTS / "kiosk-3-offline.png"))
    await page.context.set_offline(False)
    for _ in range(100):
        if await buffered(page) == 0:
            break
        await asyncio.sleep(0.1)
    assert await buffered(page) == 0

    # In the core: one verified citizen, one kiosk visit on their timeline, one case.
    [identity] = (await center.list_rows(Identity, Identity.value == DEMO_CARD_ID))[0]
    assert identity.verified_by == "smart_card"
    timeline, _ = await center.list_rows(TimelineEvent,
                                         TimelineEvent.citizen_id == identity.citizen_id)
    opened = [e for e in timeline if e.kind == "conversation_opened"]
    assert [e.data["channel"] for e in opened] == ["kiosk"]
    assert "handed_to_people" in {e.kind for e in timeline}
    case = (await center.list_rows(Case, Case.citizen_id == identity.citizen_id))[0][0]
    assert case.number == number and case.category == "id_card" and case.csat == 5
    tasks, _ = await center.list_rows(Task, Task.case_id == case.id)
    assert len(tasks) == 1
    bodies = [m.body for m in (await center.list_rows(
        Message, Message.conversation_id == opened[0].conversation_id))[0]]
    assert any("บัตรหายที่ตลาด" in b for b in bodies)
    assert any("เจ้าหน้าที่ใจดีมาก" in b for b in bodies)


async def test_a_mistyped_id_number_is_explained_and_nothing_is_sent(
    demo_client: TestClient, page: Page,
) -> None:
    center: ContactCenter = demo_client.app[CENTER_KEY]
    await page.goto(str(demo_client.make_url("/kiosk/")))
    field = page.get_by_label("หรือพิมพ์เลขประจำตัวประชาชน 13 หลัก")
    await field.fill("1101700123457")
    await page.get_by_role("button", name="ยืนยันเลขบัตร").click()
    await expect(page.locator("#typed-error")).to_have_text(
        "เลขประจำตัวประชาชนไม่ถูกต้อง กรุณาตรวจสอบอีกครั้ง")
    assert await field.get_attribute("aria-invalid") == "true"
    assert (await center.list_rows(Identity))[1] == 0
    await field.fill("3100500678905")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="เลือกบริการที่ต้องการ")).to_be_visible()
    for _ in range(50):
        if (await center.list_rows(Identity))[1]:
            break
        await asyncio.sleep(0.1)
    [identity] = (await center.list_rows(Identity))[0]
    assert identity.value == "3100500678905" and identity.verified is False
