"""The issue's end-to-end test in real Chromium, three browsers at once: a citizen chats on
the demo site through the real widget, the bot hands her to a person; the agent (signed
in, available) gets the offer, accepts, replies — the citizen's browser shows it — resolves
with a wrap-up code, does her after-contact work (a visible timer, a Finish button) and
finishes; the supervisor's wall counts the answered chat, live and after a reload.

Then: two chats side by side, answered one after the other; and a transfer to a named
colleague with a note, from the desk's transfer form."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from agent_console.api import CENTER_KEY
from onestop.demo import seed_demo
from routing import Channel, ContactCenter, InboundMessage, Message, load_settings
from tests.agent_console.console_support import console_app
from tests.agent_console.test_console_browser import api_get, sign_in
from tests.channels.webchat.conftest import AnsweringBot
from tests.support.browser import NEEDS_CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "agent_console"
pytestmark = NEEDS_CHROMIUM
WRAP_SECONDS = 300  # after-contact work on chats in these tests (none in config/ by default)


def chat_wrap_settings(seconds: float) -> Any:
    settings = load_settings(ROOT / "config")
    chat = settings.channels[Channel.CHAT].model_copy(update={"wrap_up_seconds": seconds})
    return dataclasses.replace(settings, channels={**settings.channels, Channel.CHAT: chat})


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[str, ContactCenter]]:
    app = console_app(f"sqlite+aiosqlite:///{tmp_path / 'onestop.db'}", tmp_path,
                      bot=AnsweringBot(), routing_settings=chat_wrap_settings(WRAP_SECONDS))
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await seed_demo(app[CENTER_KEY])
    try:
        yield f"http://127.0.0.1:{port}", app[CENTER_KEY]
    finally:
        await runner.cleanup()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def watch(page: Page) -> list[str]:
    """Script errors and failed requests on a page (none expected)."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and "Failed to load resource" not in m.text else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            and not r.url.endswith(("/favicon.ico", "/twilio.min.js", "/ivr/token")) else None)
    return problems


async def go_available(page: Page) -> None:
    await page.get_by_label("พร้อมรับงาน").check()
    await page.get_by_role("button", name="เปลี่ยนสถานะ").click()
    await expect(page.locator("#activity")).to_have_text("พร้อมรับงาน")


async def citizen_says(page: Page, text: str) -> None:
    box = page.get_by_label("พิมพ์ข้อความถึงเรา")
    await box.fill(text)
    await box.press("Enter")


async def test_a_citizens_chat_from_the_widget_to_wrap_up_with_the_wall_following(
    site: tuple[str, ContactCenter], browser: Browser, artifacts: Path,
) -> None:
    base, _ = site
    agent = await sign_in(browser, base, "somsri", "demo-agent-1")
    agent_problems = watch(agent)
    await expect(agent).to_have_url(f"{base}/console/")
    await expect(agent.locator("body[data-live=on]")).to_have_count(1)
    wall = await sign_in(browser, base, "supervisor", "demo-supervisor")
    await expect(wall).to_have_url(f"{base}/supervisor/")
    await expect(wall.locator("#queues tbody tr").first).to_be_visible()
    await go_available(agent)
    await expect(wall.locator("#agents tbody tr", has_text="สมศรี")).to_contain_text("พร้อมรับงาน")

    # The citizen, in her own browser, on the agency's site with the real widget.
    citizen_context = await browser.new_context(base_url=base,
                                                viewport={"width": 1000, "height": 800})
    citizen = await citizen_context.new_page()
    citizen_problems = watch(citizen)
    await citizen.goto("/demo-site")
    await citizen.get_by_role("button", name="แชทกับเรา").click()
    log = citizen.get_by_role("log")
    await citizen_says(citizen, "ต่ออายุบัตรประชาชนต้องทำอย่างไร")
    await expect(log).to_contain_text("ผู้ช่วยตอบ: ต่ออายุบัตรประชาชนต้องทำอย่างไร")
    await citizen_says(citizen, "ขอคุยกับเจ้าหน้าที่ค่ะ")

    offer = agent.locator(".offer")
    await expect(offer).to_be_visible(timeout=15000)
    await expect(offer).to_contain_text("chat")
    await expect(offer.locator(".countdown")).to_contain_text("เหลือเวลา")
    await agent.screenshot(path=str(artifacts / "chat-1-offer.png"), full_page=True)
    (task,) = (await api_get(base, "/tasks?status=reserved"))["items"]
    queue_row = wall.locator(f'#queues tr[data-queue="{task["queue_id"]}"]')
    answered_before = int(await queue_row.locator(".answered").inner_text())

    await offer.get_by_role("button", name="รับงาน").click()
    await expect(offer).to_have_count(0)
    pane = agent.locator(".pane:not([hidden])")
    await expect(pane.locator(".history")).to_contain_text("ขอคุยกับเจ้าหน้าที่ค่ะ")
    await expect(citizen.get_by_role("status").first).to_contain_text("สมศรี")

    reply = pane.get_by_label("ข้อความตอบกลับ")
    await reply.fill("สวัสดีค่ะ สมศรีรับเรื่องต่ออายุบัตรค่ะ")
    await pane.get_by_role("button", name="ส่ง", exact=True).click()
    await expect(pane.locator(".history .msg.outbound").last).to_contain_text("สมศรีรับเรื่อง")
    # The citizen's browser receives the agent's reply.
    await expect(log.locator(".os-msg--agent").last).to_contain_text(
        "สวัสดีค่ะ สมศรีรับเรื่องต่ออายุบัตรค่ะ")
    await citizen_says(citizen, "ขอบคุณค่ะ")
    await expect(pane.locator(".history .msg.inbound").last).to_contain_text("ขอบคุณค่ะ")
    await citizen.screenshot(path=str(artifacts / "chat-2-citizen.png"))
    await agent.screenshot(path=str(artifacts / "chat-3-conversation.png"), full_page=True)

    # Resolve with a wrap-up code: after-contact work starts, with a timer and Finish.
    await pane.get_by_label("รหัสสรุปงาน").select_option("resolved")
    await pane.get_by_role("button", name="สรุปและปิดงาน").click()
    acw = pane.locator(".acw")
    await expect(acw).to_be_visible()
    await expect(acw).to_contain_text("งานหลังการติดต่อ")
    timer = acw.get_by_role("timer")
    await expect(timer).to_contain_text("เหลือเวลา 4:")
    first = await timer.inner_text()
    await expect(timer).not_to_have_text(first)  # it counts down
    finish = acw.get_by_role("button", name="เสร็จสิ้น")
    await expect(finish).to_be_focused()  # reachable at once from the keyboard
    await expect(agent.locator("#activity")).to_have_text("กำลังสรุปงาน")
    await expect(wall.locator("#agents tbody tr", has_text="สมศรี")).to_contain_text(
        "กำลังสรุปงาน")
    wrapping = await api_get(base, f"/tasks/{task['id']}")
    assert wrapping["status"] == "wrapping" and wrapping["wrap_code"] == "resolved"
    await agent.screenshot(path=str(artifacts / "chat-4-after-contact-work.png"),
                           full_page=True)

    await agent.keyboard.press("Enter")  # Finish, by keyboard
    await expect(agent.locator(".pane")).to_have_count(0)
    done = await api_get(base, f"/tasks/{task['id']}")
    assert done["status"] == "completed" and done["wrap_code"] == "resolved"
    await expect(agent.locator("#activity")).to_have_text("พร้อมรับงาน")

    # The supervisor's figures change: live on the open wall, and after a reload.
    await expect(queue_row.locator(".answered")).to_have_text(str(answered_before + 1))
    await wall.screenshot(path=str(artifacts / "chat-5-wall.png"), full_page=True)
    await wall.reload()
    await expect(wall.locator(f'#queues tr[data-queue="{task["queue_id"]}"] .answered')
                 ).to_have_text(str(answered_before + 1))
    assert agent_problems == [] and citizen_problems == []


async def _chat_for_a_person(center: ContactCenter, key: str, text: str) -> str:
    result = await center.ingest(InboundMessage(Channel.CHAT, key, f"{key}:1", text))
    return result.conversation_id


async def test_two_chats_side_by_side_each_answered_in_its_own_pane(
    site: tuple[str, ContactCenter], browser: Browser, artifacts: Path,
) -> None:
    base, center = site
    agent = await sign_in(browser, base, "somsri", "demo-agent-1")
    problems = watch(agent)
    await expect(agent.locator("body[data-live=on]")).to_have_count(1)
    await go_available(agent)
    first = await _chat_for_a_person(center, "side-1", "ขอคุยกับเจ้าหน้าที่ เรื่องภาษี")
    await expect(agent.locator(".offer")).to_have_count(1, timeout=15000)
    await agent.locator(".offer .accept").first.click()
    await expect(agent.locator(".offer")).to_have_count(0)
    await expect(agent.get_by_role("tab")).to_have_count(1)
    second = await _chat_for_a_person(center, "side-2", "ขอคุยกับเจ้าหน้าที่ เรื่องบัตรหาย")
    await expect(agent.locator(".offer")).to_have_count(1, timeout=15000)
    await agent.locator(".offer .accept").first.click()
    await expect(agent.get_by_role("tab")).to_have_count(2)
    await expect(agent.locator(".pane:not([hidden])")).to_have_count(1)  # one at a time

    toggle = agent.get_by_role("button", name="แสดงสองบทสนทนาคู่กัน")
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await toggle.focus()
    await agent.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    panes = agent.locator(".pane:not([hidden])")
    await expect(panes).to_have_count(2)
    await expect(agent.locator('[role="tab"][aria-selected="true"]')).to_have_count(2)
    left, right = await panes.nth(0).bounding_box(), await panes.nth(1).bounding_box()
    assert left and right and right["x"] > left["x"] + left["width"] - 1  # side by side

    for conversation_id, words in ((first, "ภาษี"), (second, "บัตรหาย")):
        pane = agent.locator(".pane:not([hidden])").filter(
            has=agent.locator(".history", has_text=words))
        answer = f"ตอบเรื่อง{words}ค่ะ"
        await pane.get_by_label("ข้อความตอบกลับ").fill(answer)
        await pane.get_by_role("button", name="ส่ง", exact=True).click()
        await expect(pane.locator(".history .msg.outbound").last).to_have_text(
            f"สมศรี ใจดี (Somsri){answer}")
        stored, _ = await center.list_rows(Message, Message.conversation_id == conversation_id,
                                           Message.author == "agent")
        assert [m.body for m in stored] == [answer]
    await agent.screenshot(path=str(artifacts / "side-by-side.png"), full_page=True)

    # The choice is remembered; turning it off shows one pane again.
    await agent.reload()
    await expect(agent.get_by_role("button", name="แสดงสองบทสนทนาคู่กัน")).to_have_attribute(
        "aria-pressed", "true")
    await expect(agent.locator(".pane:not([hidden])")).to_have_count(2)
    await agent.get_by_role("button", name="แสดงสองบทสนทนาคู่กัน").click()
    await expect(agent.locator(".pane:not([hidden])")).to_have_count(1)
    assert problems == []


async def test_a_transfer_to_a_named_colleague_from_the_form_reaches_her_with_the_note(
    site: tuple[str, ContactCenter], browser: Browser, artifacts: Path,
) -> None:
    base, center = site
    somsri = await sign_in(browser, base, "somsri", "demo-agent-1")
    malee = await sign_in(browser, base, "malee", "demo-agent-3")
    for page in (somsri, malee):
        await expect(page.locator("body[data-live=on]")).to_have_count(1)
    await go_available(somsri)
    await _chat_for_a_person(center, "transfer-1", "ขอคุยกับเจ้าหน้าที่ เรื่องเบี้ยผู้สูงอายุ")
    await expect(somsri.locator(".offer")).to_have_count(1, timeout=15000)
    await somsri.locator(".offer .accept").click()
    pane = somsri.locator(".pane:not([hidden])")
    await expect(pane.locator(".history")).to_contain_text("เบี้ยผู้สูงอายุ")
    await go_available(malee)
    await asyncio.sleep(0)

    person = pane.get_by_label("เจ้าหน้าที่ (เฉพาะที่ออนไลน์)")
    await person.focus()  # the list is fetched again when it gets focus
    await expect(person.locator("option", has_text="มาลี")).to_have_count(1)
    await expect(person.locator("option", has_text="สมศรี")).to_have_count(0)  # not herself
    await expect(person.locator("option", has_text="อนันต์")).to_have_count(0)  # offline
    await person.select_option(label="มาลี ช่วยเหลือ (Malee) · พร้อมรับงาน")
    await pane.get_by_label("หมายเหตุถึงผู้รับ").fill("ผู้สูงอายุ ขอข้อมูลเบี้ยยังชีพ")
    await somsri.screenshot(path=str(artifacts / "transfer-form.png"), full_page=True)
    await pane.get_by_role("button", name="โอนงาน", exact=True).click()
    await expect(somsri.locator(".pane")).to_have_count(0)

    offer = malee.locator(".offer")
    await expect(offer).to_be_visible(timeout=15000)
    await offer.get_by_role("button", name="รับงาน").click()
    received = malee.locator(".pane:not([hidden])")
    note = received.locator(".history .msg.internal")
    await expect(note).to_contain_text("ผู้สูงอายุ ขอข้อมูลเบี้ยยังชีพ")
    await expect(received.locator(".history")).to_contain_text("เบี้ยผู้สูงอายุ")


async def test_a_supervisor_reassigns_a_chat_to_a_named_agent_from_the_wall(
    site: tuple[str, ContactCenter], browser: Browser, artifacts: Path,
) -> None:
    base, center = site
    somsri = await sign_in(browser, base, "somsri", "demo-agent-1")
    await expect(somsri.locator("body[data-live=on]")).to_have_count(1)
    await go_available(somsri)
    conversation_id = await _chat_for_a_person(center, "wall-1", "ขอคุยกับเจ้าหน้าที่ เรื่องภาษีรถ")
    await expect(somsri.locator(".offer")).to_have_count(1, timeout=15000)
    await somsri.locator(".offer .accept").click()
    await expect(somsri.locator(".pane")).to_have_count(1)
    anan = await sign_in(browser, base, "anan", "demo-agent-2")
    await expect(anan.locator("body[data-live=on]")).to_have_count(1)
    await go_available(anan)

    wall = await sign_in(browser, base, "supervisor", "demo-supervisor")
    row = wall.locator("#active tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("สมศรี")
    person = row.get_by_label("เจ้าหน้าที่ (เฉพาะที่ออนไลน์)", exact=False)
    await expect(person.locator("option", has_text="อนันต์")).to_have_count(1)
    await expect(person.locator("option", has_text="สมศรี")).to_have_count(0)  # holds it now
    await person.select_option(label="อนันต์ รักงาน (Anan) · พร้อมรับงาน")
    await row.get_by_label("หมายเหตุถึงผู้รับ", exact=False).fill("อนันต์ดูแลเรื่องภาษีต่อ")
    await row.get_by_role("button", name="มอบหมายใหม่").click()
    await expect(wall.locator("#active tbody tr")).to_have_count(0)
    await expect(somsri.locator(".pane")).to_have_count(0)
    offer = anan.locator(".offer")
    await expect(offer).to_be_visible(timeout=15000)
    await offer.get_by_role("button", name="รับงาน").click()
    pane = anan.locator(".pane:not([hidden])")
    await expect(pane.locator(".history .msg.internal")).to_contain_text("อนันต์ดูแลเรื่องภาษีต่อ")
    await expect(wall.locator("#active tbody tr")).to_contain_text("อนันต์")
    await wall.screenshot(path=str(artifacts / "wall-reassigned.png"), full_page=True)
    messages, _ = await center.list_rows(Message, Message.conversation_id == conversation_id,
                                         Message.internal.is_(True))
    assert [m.author_name for m in messages] == ["วิภา หัวหน้าเวร (Wipa, supervisor)"]
