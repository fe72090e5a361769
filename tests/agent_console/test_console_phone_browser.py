"""The desk's browser phone in real Chromium: the official Twilio Voice JS SDK is served
and constructed with the officer's token (Twilio itself cannot be reached here, so the
phone must say it is offline without breaking the desk); then, with a small stand-in for
`Twilio.Device` (the one fake: Twilio is unreachable), the screen pop and the controls
are driven and what they ask of the SDK and of the server is checked."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, expect

import ivr
from agent_console.api import CENTER_KEY
from agent_console.console import VOICE_SDK
from agent_console.console import setup as console_setup
from ivr.conference import ConferenceCall, ConferenceStore
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import (
    Author,
    Channel,
    ContactCenter,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    Presence,
)
from tests.agent_console.test_console_browser import artifacts  # noqa: F401 (fixture)
from tests.ivr.conftest import TwilioApi, twilio_api  # noqa: F401 (fixture)
from tests.support.app import app_settings
from tests.support.browser import NEEDS_CHROMIUM

pytestmark = NEEDS_CHROMIUM
API_KEY, API_SECRET = "SK" + "b" * 32, "api-secret-for-tests-0123456789abcdef"
ACCOUNT_SID = "AC" + "a" * 32
CALLER = "+66812345678"

FAKE_DEVICE = """
window.__phoneLog = [];
(() => {
  const log = (...args) => window.__phoneLog.push(args);
  class Emitter {
    constructor() { this.handlers = {}; }
    on(event, fn) { (this.handlers[event] = this.handlers[event] || []).push(fn); return this; }
    emit(event, ...args) { for (const fn of this.handlers[event] || []) fn(...args); }
  }
  class FakeCall extends Emitter {
    constructor(params) { super(); this.customParameters = new Map(Object.entries(params)); this.muted = false; }
    accept() { log("accept"); this.emit("accept", this); }
    reject() { log("reject"); this.emit("reject"); }
    disconnect() { log("disconnect"); this.emit("disconnect", this); }
    mute(on) { log("mute", on); this.muted = on; }
    isMuted() { return this.muted; }
  }
  class FakeDevice extends Emitter {
    constructor(token, options) { super(); log("new", token); this.token = token; this.state = "unregistered"; window.__device = this; }
    async register() { log("register"); this.state = "registered"; this.emit("registered"); }
    updateToken(token) { log("updateToken", token); this.token = token; }
  }
  window.Twilio = { Device: FakeDevice };
  window.__ring = (params) => { window.__device.emit("incoming", new FakeCall(params)); };
})();
"""


@pytest.fixture
async def phone_server(tmp_path: Path, twilio_api: TwilioApi,  # noqa: F811
                       ) -> AsyncIterator[tuple[str, ContactCenter]]:
    """The app with the hotline (REST to the recording server, voice tokens) and the
    console, on a real port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    app = build_app(app_settings(f"sqlite+aiosqlite:///{tmp_path / 'onestop.db'}", tmp_path),
                    wire_rooms=False)
    center = app[CENTER_KEY]
    ivr.setup(app, center, public_url=base, auth_token="test-auth-token-0123456789abcdef",
              account_sid=ACCOUNT_SID, phone_number="+6621234567",
              api_base_url=twilio_api.url, api_key=API_KEY, api_secret=API_SECRET,
              twiml_app_sid="AP" + "c" * 32)
    console_setup(app, center)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await seed_demo(center)
    try:
        yield base, center
    finally:
        await runner.cleanup()


async def desk(browser: Browser, base: str, *, fake: bool) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=base, viewport={"width": 1400, "height": 1100})
    if fake:
        await context.add_init_script(FAKE_DEVICE)
        # The real SDK would replace the stand-in: serve nothing in its place.
        await context.route("**/console/vendor/twilio.min.js", lambda route: route.fulfill(
            status=200, content_type="text/javascript", body="/* stand-in in use */"))
    page = await context.new_page()
    await page.goto("/console/login")
    await page.get_by_label("ชื่อผู้ใช้").fill("somsri")
    await page.get_by_label("รหัสผ่าน").fill("demo-agent-1")
    return context, page


async def test_the_desk_loads_the_real_sdk_with_the_officers_token_and_shows_it_offline(
    phone_server: tuple[str, ContactCenter], browser: Browser, artifacts: Path,  # noqa: F811
) -> None:
    assert VOICE_SDK.is_file(), "run scripts/ensure-voice-sdk.sh (make test does)"
    base, center = phone_server
    _, page = await desk(browser, base, fake=False)
    async with page.expect_response("**/ivr/token") as token_response, \
            page.expect_response("**/console/vendor/twilio.min.js") as sdk_response:
        await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    sdk = await sdk_response.value
    assert sdk.status == 200
    assert await sdk.body() == VOICE_SDK.read_bytes()  # the real file, byte for byte
    granted = await (await token_response.value).json()
    somsri = await center.agent_by_username("somsri")
    assert somsri is not None
    claims = jwt.decode(granted["token"], API_SECRET, algorithms=["HS256"])
    assert claims["iss"] == API_KEY and claims["sub"] == ACCOUNT_SID
    assert claims["grants"]["identity"] == f"agent_{somsri.id}" == granted["identity"]
    assert claims["grants"]["voice"]["incoming"]["allow"] is True
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == "AP" + "c" * 32

    # The SDK's own Device, built with exactly that token…
    assert await page.evaluate("typeof Twilio.Device") == "function"
    assert await page.evaluate("Twilio.Device.version") == "2.18.5"
    assert await page.evaluate("window.OneStopPhone.device.token") == granted["token"]
    # …cannot reach Twilio here: the panel says so, and the desk still works.
    await expect(page.locator("#phone")).to_have_attribute("data-state", "offline",
                                                           timeout=30_000)
    await expect(page.locator("#phone-status")).to_contain_text("โทรศัพท์ออฟไลน์")
    await expect(page.locator("#phone-answer")).to_be_disabled()
    await page.get_by_label("พร้อมรับงาน").check()
    await page.get_by_role("button", name="เปลี่ยนสถานะ").click()
    await expect(page.locator("#activity")).not_to_have_text("—")
    await page.screenshot(path=str(artifacts / "phone-offline.png"), full_page=True)


async def test_the_phone_pops_the_caller_and_its_buttons_drive_the_sdk_and_the_transfer(
    phone_server: tuple[str, ContactCenter], browser: Browser, artifacts: Path,  # noqa: F811
    twilio_api: TwilioApi,  # noqa: F811
) -> None:
    base, center = phone_server
    _, page = await desk(browser, base, fake=True)
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    await expect(page.locator("#phone")).to_have_attribute("data-state", "ready")
    await expect(page.locator("#phone-status")).to_have_text("โทรศัพท์พร้อมรับสาย")
    log: list[Any] = await page.evaluate("window.__phoneLog")
    token = (await (await page.request.get("/ivr/token")).json())["token"]
    assert log[0][0] == "new" and jwt.decode(log[0][1], API_SECRET, algorithms=["HS256"])[
        "grants"]["identity"] == jwt.decode(token, API_SECRET, algorithms=["HS256"])[
        "grants"]["identity"]
    assert ["register"] in log

    # A caller came through the menus and waits; somsri takes the task.
    stored = await center.ingest(InboundMessage(
        Channel.VOICE, "CA" + "1" * 32, "CA" + "1" * 32 + ":start", "สายเข้า",
        author=Author.SYSTEM, language="th",
        identity_hints=(IdentityHint(IdentityKind.PHONE, CALLER, "caller_id"),)))
    task_id = await center.hand_to_people(stored.conversation_id, reason="caller_asked",
                                          context={"ivr_path": ["main:4", "services:2"],
                                                   "language": "th", "category": None,
                                                   "call_sid": "CA" + "1" * 32})
    await page.get_by_label("พร้อมรับงาน").check()
    await page.get_by_role("button", name="เปลี่ยนสถานะ").click()
    await page.locator(".offer").get_by_role("button", name="รับงาน").click()
    await expect(page.locator(".pane")).to_have_count(1)
    somsri = await center.agent_by_username("somsri")
    assert somsri is not None
    # The hotline put the caller into the task's conference and rang somsri's browser.
    await ConferenceStore(center).save(ConferenceCall(
        task_id, "CA" + "1" * 32, "th", somsri.id, sid="CF" + "e" * 32))
    await page.evaluate("(p) => window.__ring(p)", {
        "task_id": task_id, "case_id": stored.case_id, "leg": "agent",
        "caller": "••••••••5678"})

    pop = page.locator("#phone-pop")
    await expect(pop).to_be_visible()
    await expect(page.locator("#phone-status")).to_have_text("สายเข้า")
    await expect(page.locator("#phone-caller")).to_have_text("••••••••5678")
    await expect(page.locator("#phone-path li")).to_have_text(["main:4", "services:2"])
    await expect(page.locator("#phone-case")).to_have_text(stored.case_number)
    await expect(page.locator("#phone-collected")).to_contain_text("th")
    assert CALLER not in await page.locator("#phone").inner_text()
    await expect(page.locator("#phone-answer")).to_be_focused()
    await page.screenshot(path=str(artifacts / "phone-ringing.png"), full_page=True)

    await page.keyboard.press("Enter")  # Answer, from the keyboard
    await expect(page.locator("#phone-status")).to_have_text("กำลังสนทนา")
    mute = page.get_by_role("button", name="ปิดเสียง")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#phone-status")).to_have_text("ปิดเสียงไมโครโฟนแล้ว")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "false")
    log = await page.evaluate("window.__phoneLog")
    assert log[-3:] == [["accept"], ["mute", True], ["mute", False]]

    # Warm transfer to a phone number: the caller is held while somsri consults.
    await page.get_by_label("หมายเลขโทรศัพท์").fill("02 123 4599")
    async with page.expect_request(f"**/ivr/calls/{task_id}/transfer") as started:
        await page.get_by_role("button", name="เริ่มโอนสาย (พักสายผู้โทร)").click()
    request = await started.value
    assert request.method == "POST" and request.post_data_json == {"number": "02 123 4599"}
    assert request.headers["x-csrf-token"]
    await expect(page.locator("#phone-status")).to_have_text("กำลังปรึกษา ผู้โทรถูกพักสาย")
    (create,) = await twilio_api.wait_for("/Participants.json")
    assert create.path.endswith(f"/Conferences/{'CF' + 'e' * 32}/Participants.json")
    assert create.form["To"] == "+6621234599" and create.form["Label"] == "external"
    (hold,) = twilio_api.sent("/Participants/caller.json")
    assert hold.form["Hold"] == "true"
    await page.screenshot(path=str(artifacts / "phone-consulting.png"), full_page=True)

    async with page.expect_request(f"**/ivr/calls/{task_id}/transfer/complete"):
        await page.get_by_role("button", name="ส่งต่อสายและออกจากสาย").click()
    await expect(page.locator("#phone-status")).to_have_text("โอนสายเรียบร้อย")
    await twilio_api.wait_for(f"/Participants/agent_{somsri.id}.json", 2)
    removed = [r for r in twilio_api.sent(f"/Participants/agent_{somsri.id}.json")
               if r.method == "DELETE"]
    assert len(removed) == 1
    for _ in range(50):
        if (await center.task(task_id)).status in ("wrapping", "completed"):
            break
        await asyncio.sleep(0.05)
    assert (await center.task(task_id)).status in ("wrapping", "completed")

    # Twilio drops somsri's leg (she left the conference); or she hangs up herself.
    await page.get_by_role("button", name="วางสาย").click()
    await expect(page.locator("#phone-status")).to_have_text("วางสายแล้ว")
    await expect(pop).to_be_hidden()
    assert (await page.evaluate("window.__phoneLog"))[-1] == ["disconnect"]

    # Another call rings and is declined.
    await page.evaluate("(p) => window.__ring(p)", {"task_id": "", "leg": "agent",
                                                   "caller": ""})
    await page.get_by_role("button", name="ปฏิเสธสาย").click()
    assert (await page.evaluate("window.__phoneLog"))[-1] == ["reject"]
    await expect(page.locator("#phone")).to_have_attribute("data-state", "ready")


async def test_the_transfer_form_offers_the_officers_who_are_free_and_hands_over_to_one(
    phone_server: tuple[str, ContactCenter], browser: Browser, artifacts: Path,  # noqa: F811
    twilio_api: TwilioApi,  # noqa: F811
) -> None:
    base, center = phone_server
    _, page = await desk(browser, base, fake=True)
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    await expect(page.locator("#phone")).to_have_attribute("data-state", "ready")
    anan = await center.agent_by_username("anan")
    malee = await center.agent_by_username("malee")
    somsri = await center.agent_by_username("somsri")
    assert anan is not None and malee is not None and somsri is not None

    stored = await center.ingest(InboundMessage(
        Channel.VOICE, "CA" + "2" * 32, "CA" + "2" * 32 + ":start", "สายเข้า",
        author=Author.SYSTEM, language="th",
        identity_hints=(IdentityHint(IdentityKind.PHONE, CALLER, "caller_id"),)))
    await page.get_by_label("พร้อมรับงาน").check()
    await page.get_by_role("button", name="เปลี่ยนสถานะ").click()
    await expect(page.locator("#phone-status")).to_have_text("โทรศัพท์พร้อมรับสาย")
    task_id = await center.hand_to_people(stored.conversation_id, reason="caller_asked",
                                          context={"ivr_path": ["main:0"], "language": "th",
                                                   "call_sid": "CA" + "2" * 32})
    await page.locator(".offer").get_by_role("button", name="รับงาน").click()
    await expect(page.locator(".pane")).to_have_count(1)
    assert (await center.task(task_id)).agent_id == somsri.id
    await center.set_presence(anan.id, Presence.AVAILABLE)  # malee stays offline
    await ConferenceStore(center).save(ConferenceCall(
        task_id, "CA" + "2" * 32, "th", somsri.id, sid="CF" + "d" * 32))
    await page.evaluate("(p) => window.__ring(p)", {
        "task_id": task_id, "case_id": stored.case_id, "leg": "agent",
        "caller": "••••••••5678"})
    await page.get_by_role("button", name="รับสาย").click()
    await expect(page.locator("#phone-status")).to_have_text("กำลังสนทนา")

    # Only anan is offered: available and holding nothing (not somsri, not offline malee).
    picker = page.get_by_label("เจ้าหน้าที่ที่ว่างอยู่")
    await expect(picker.locator("option")).to_have_text(["—", anan.display_name])
    await picker.select_option(label=anan.display_name)
    async with page.expect_request(f"**/ivr/calls/{task_id}/transfer") as started:
        await page.get_by_role("button", name="เริ่มโอนสาย (พักสายผู้โทร)").click()
    assert (await started.value).post_data_json == {"agent_id": anan.id}
    await expect(page.locator("#phone-status")).to_have_text("กำลังปรึกษา ผู้โทรถูกพักสาย")
    (create,) = await twilio_api.wait_for("/Participants.json")
    assert create.form["To"].startswith(f"client:agent_{anan.id}?")
    assert "leg=consult" in create.form["To"]
    await page.screenshot(path=str(artifacts / "phone-transfer-to-officer.png"), full_page=True)

    async with page.expect_request(f"**/ivr/calls/{task_id}/transfer/complete"):
        await page.get_by_role("button", name="ส่งต่อสายและออกจากสาย").click()
    await expect(page.locator("#phone-status")).to_have_text("โอนสายเรียบร้อย")
    moved = await center.task(task_id)
    assert moved.agent_id == anan.id and moved.status == "assigned"


async def test_an_officer_chooses_to_take_calls_on_their_own_phone_from_the_desk(
    phone_server: tuple[str, ContactCenter], browser: Browser,
) -> None:
    base, center = phone_server
    _, page = await desk(browser, base, fake=True)
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    await expect(page.locator("#phone")).to_have_attribute("data-state", "ready")
    await expect(page.get_by_label("โทรศัพท์บนหน้านี้ (เบราว์เซอร์)")).to_be_checked()
    await page.get_by_label("โทรศัพท์ของฉัน", exact=True).check()
    await page.get_by_label("เบอร์โทรของฉัน").fill("081 999 8888")
    async with page.expect_request("**/ivr/agents/me/phone") as saved:
        await page.get_by_role("button", name="บันทึกการตั้งค่าโทรศัพท์").click()
    request = await saved.value
    assert request.method == "PUT" and request.headers["x-csrf-token"]
    assert request.post_data_json == {"device": "phone", "number": "081 999 8888"}
    await expect(page.locator("#phone-status")).to_contain_text("+66819998888")
    somsri = await center.agent_by_username("somsri")
    assert somsri is not None
    assert (somsri.voice_device, somsri.phone_number) == ("phone", "+66819998888")
    # The choice is shown again on the next visit.
    await page.reload()
    await expect(page.get_by_label("โทรศัพท์ของฉัน", exact=True)).to_be_checked()
    await expect(page.get_by_label("เบอร์โทรของฉัน")).to_have_value("+66819998888")
    # A number that is not one is refused, and said so.
    await page.get_by_label("เบอร์โทรของฉัน").fill("12")
    await page.get_by_role("button", name="บันทึกการตั้งค่าโทรศัพท์").click()
    await expect(page.locator("#phone-status")).to_contain_text("not a phone number")
