"""The browser phone plays Twilio's part against the real app, in Debian's Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Locator, Page, expect

from routing import Conversation, Message, Task
from tests.ivr.conftest import TwilioApi, center_of
from tests.ivr.test_calls import available_agent, offered_task
from tests.support.app import bearer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ivr"


async def simulator(client: TestClient, browser: Browser, caller: str = "+66812345678"
                    ) -> tuple[Page, Locator, list[str]]:
    """The browser phone, silent, with `caller` as the caller ID; errors collected."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await browser.new_page(locale="th-TH")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(str(client.make_url("/ivr/simulator")))
    await page.get_by_label("อ่านออกเสียง").uncheck()
    await page.get_by_label("หมายเลขผู้โทร").fill(caller)
    await page.get_by_role("button", name="โทร Call").click()
    log = page.locator("#log")
    await expect(log).to_contain_text("For English, press 9.")
    return page, log, errors


async def key(page: Page, digit: str) -> None:
    await page.get_by_role("button", name=digit, exact=True).click()


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


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_queued_caller_is_put_through_to_an_officer_and_rates_the_call(
    client: TestClient, browser: Browser, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    page, log, errors = await simulator(client, browser)
    await key(page, "0")
    await expect(log).to_contain_text("ท่านอยู่ลำดับที่ 1 ในคิว")
    await expect(log).to_contain_text("เวลารอโดยประมาณ")
    # An officer takes the call; the hold loop notices and the phone is put through.
    me = await available_agent(client)
    task = await offered_task(client, me)
    accepted = await client.post(f"/api/v1/tasks/{task['id']}/accept",
                                 headers=bearer(me["token"]))
    assert accepted.status == 200
    await expect(log).to_contain_text("กำลังเชื่อมต่อกับเจ้าหน้าที่ค่ะ")
    await expect(page.locator("#dial-who")).to_contain_text(f"onestop-task-{task['id']}")
    await expect(page.locator("#status")).to_contain_text("Talking to an officer")
    ring = await twilio_api.wait_for(f"/Conferences/onestop-task-{task['id']}"
                                     f"/Participants.json")
    assert ring[0].form["To"].startswith(f"client:agent_{me['me']['agent_id']}?")
    await page.screenshot(path=str(ARTIFACTS / "simulator-with-officer.png"), full_page=True)
    await page.get_by_role("button", name="เจ้าหน้าที่วางสาย Officer hangs up").click()
    # The survey, by keypad.
    await expect(log).to_contain_text("กรุณาให้คะแนนความพึงพอใจ")
    await key(page, "5")
    await expect(log).to_contain_text("ขอบคุณสำหรับคะแนนค่ะ")
    await expect(page.locator("#status")).to_contain_text("Call ended")
    (conv,), _ = await center.list_rows(Conversation)
    assert (await center.case(conv.case_id)).csat == 5
    assert conv.status == "closed"
    assert (await center.task(task["id"])).status in ("wrapping", "completed")
    assert errors == []


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_caller_on_hold_asks_for_a_callback_and_is_called_when_an_officer_is_free(
    client: TestClient, browser: Browser, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    page, log, errors = await simulator(client, browser, caller="0812223344")
    await key(page, "0")
    await expect(log).to_contain_text("กด 1")
    await expect(page.locator("#status")).to_contain_text("Waiting for keys")
    await key(page, "1")
    await expect(log).to_contain_text("เจ้าหน้าที่จะโทรกลับทันทีที่ถึงลำดับของท่าน")
    await expect(page.locator("#status")).to_contain_text("Call ended")
    (task,), _ = await center.list_rows(Task)
    assert task.status == "pending"  # the place in the queue is kept
    me = await available_agent(client)
    offered = await offered_task(client, me)
    assert offered["id"] == task.id
    await client.post(f"/api/v1/tasks/{task.id}/accept", headers=bearer(me["token"]))
    (call,) = await twilio_api.wait_for("/Calls.json")
    assert call.form["To"] == "+66812223344" and call.form["From"] == "+6621234567"
    assert errors == []


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_caller_leaves_a_voicemail_typed_into_the_browser_phone(
    client: TestClient, browser: Browser,
) -> None:
    center = center_of(client)
    page, log, errors = await simulator(client, browser)
    await key(page, "4")
    await expect(log).to_contain_text("ฝากข้อความ")
    await key(page, "8")
    await expect(page.get_by_label("ฝากข้อความ (พิมพ์)")).to_be_visible()
    await page.get_by_label("ฝากข้อความ (พิมพ์)").fill("Please call me about my welfare card")
    await page.get_by_role("button", name="ส่งข้อความเสียง Send message").click()
    await expect(log).to_contain_text("ได้รับข้อความของท่านแล้ว")
    await expect(page.locator("#status")).to_contain_text("Call ended")
    (task,), _ = await center.list_rows(Task)
    assert task.reason == "voicemail" and task.status == "pending"
    messages, _ = await center.list_rows(Message, Message.conversation_id == task
                                         .conversation_id)
    bodies = [m.body for m in messages]
    assert any(b.startswith("ข้อความเสียง / Voicemail") for b in bodies)
    assert any("welfare card" in b for b in bodies)
    (conv,), _ = await center.list_rows(Conversation)
    assert conv.status != "closed"  # the case waits for the next shift
    assert errors == []
