"""The browser phone plays Twilio's part against the real app, in Debian's Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from routing import Conversation, Task
from tests.ivr.conftest import center_of

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ivr"




@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_person_calls_walks_the_menus_queues_and_hangs_up_in_the_browser_phone(
    client: TestClient, browser: Browser,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await browser.new_page(locale="th-TH")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(str(client.make_url("/ivr/simulator")))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("โทรศัพท์จำลอง")
    await page.get_by_label("อ่านออกเสียง").uncheck()
    await page.get_by_role("button", name="โทร Call").click()
    log = page.locator("#log")
    await expect(log).to_contain_text("ศูนย์บริการประชาชนแบบเบ็ดเสร็จ")
    await expect(log).to_contain_text("For English, press 9.")

    await page.get_by_role("button", name="2", exact=True).click()
    await expect(log).to_contain_text("ฟังเวลาทำการ กด 1")
    await page.get_by_role("button", name="1", exact=True).click()
    await expect(log).to_contain_text("เปิดทำการ วันจันทร์ถึงวันศุกร์")
    await page.get_by_role("button", name="สี่เหลี่ยม hash").click()
    await expect(log.locator("li").last).to_contain_text("กด")

    await page.get_by_role("button", name="0", exact=True).click()
    await expect(log).to_contain_text("กำลังโอนสายไปยังเจ้าหน้าที่")
    await expect(log).to_contain_text("ท่านอยู่ลำดับที่ 1 ในคิว")
    await expect(page.locator("#status")).to_contain_text("Waiting for keys")
    await page.screenshot(path=str(ARTIFACTS / "simulator-on-hold.png"), full_page=True)

    await page.get_by_role("button", name="วางสาย Hang up").click()
    await expect(page.locator("#status")).to_contain_text("Call ended")
    center = center_of(client)
    conversations, _ = await center.list_rows(Conversation)
    (conv,) = conversations
    assert conv.status == "closed" and conv.end_reason == "citizen_left"
    (task,), _ = await center.list_rows(Task)
    assert task.status == "abandoned"
    assert task.attributes["ivr_path"] == ["main:2", "offices:1", "offices:hash", "main:0"]
    assert errors == []
