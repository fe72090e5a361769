"""An automated accessibility check in Chromium (tests/agent_console/a11y.py) on every
console page: sign-in, the desk with a conversation open (and side by side, and in
after-contact work), the wall, reports with charts, admin and an admin form showing
errors — in Thai and in English, and with large text."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, expect

from routing import ContactCenter
from tests.agent_console.a11y import audit, focus_problems
from tests.agent_console.test_console_browser import sign_in
from tests.agent_console.test_console_chat_browser import (  # noqa: F401 (fixtures)
    _chat_for_a_person,
    artifacts,
    go_available,
    site,
)
from tests.support.browser import NEEDS_CHROMIUM

pytestmark = NEEDS_CHROMIUM


async def check(page: Page, where: str, *, focus: bool = True) -> list[str]:
    problems = [f"{where}: {p}" for p in await audit(page)]
    if focus:
        problems += [f"{where}: {p}" for p in await focus_problems(page)]
    return problems


async def test_every_console_page_passes_the_accessibility_check(
    site: tuple[str, ContactCenter], browser: Browser, artifacts: Path,  # noqa: F811
) -> None:
    base, center = site
    problems: list[str] = []
    context = await browser.new_context(base_url=base, viewport={"width": 1400, "height": 1000})
    login = await context.new_page()
    await login.goto("/console/login")
    problems += await check(login, "login")
    await login.get_by_label("ชื่อผู้ใช้").fill("somsri")
    await login.get_by_label("รหัสผ่าน").fill("wrong password")
    await login.get_by_role("button", name="เข้าสู่ระบบ").click()
    await expect(login.get_by_role("alert")).to_be_visible()
    problems += await check(login, "login with an error", focus=False)

    agent = await sign_in(browser, base, "somsri", "demo-agent-1")
    await expect(agent.locator("body[data-live=on]")).to_have_count(1)
    await go_available(agent)
    for key in ("a11y-1", "a11y-2"):
        await _chat_for_a_person(center, key, "ขอคุยกับเจ้าหน้าที่ค่ะ")
        await expect(agent.locator(".offer")).to_have_count(1, timeout=15000)
        problems += await check(agent, "desk with an offer", focus=False)
        await agent.locator(".offer .accept").click()
        await expect(agent.locator(".offer")).to_have_count(0)
    await expect(agent.locator(".pane:not([hidden]) .facts")).to_contain_text("OS-")
    problems += await check(agent, "desk")
    await agent.get_by_role("button", name="แสดงสองบทสนทนาคู่กัน").click()
    await expect(agent.locator(".pane:not([hidden])")).to_have_count(2)
    problems += await check(agent, "desk side by side", focus=False)
    pane = agent.locator(".pane.current")
    await pane.get_by_role("button", name="สรุปและปิดงาน").click()
    await expect(pane.locator(".acw")).to_be_visible()
    problems += await check(agent, "desk in after-contact work", focus=False)

    wall = await sign_in(browser, base, "supervisor", "demo-supervisor")
    await expect(wall.locator("#agents tbody tr").first).to_be_visible()
    await expect(wall.locator("#active tbody tr")).to_have_count(1)
    problems += await check(wall, "wall")
    await wall.goto("/supervisor/reports?from=2020-01-01&to=2030-12-31&by=channel")
    await expect(wall.locator("#bot-containment-chart")).to_be_visible()
    problems += await check(wall, "reports")

    admin = await sign_in(browser, base, "admin", "demo-admin")
    await expect(admin).to_have_url(f"{base}/admin/")
    problems += await check(admin, "admin")
    await admin.goto("/admin/hours/office")
    await admin.get_by_label("วันจันทร์").fill("8-5")
    await admin.get_by_role("button", name="บันทึก").click()
    await expect(admin.get_by_role("alert")).to_contain_text("วันจันทร์")
    problems += await check(admin, "admin form with errors")
    await admin.goto("/console/prefs?lang=en&text=large&next=/admin/canned/greeting")
    await expect(admin.locator("html")).to_have_attribute("lang", "en")
    problems += await check(admin, "admin form, English, large text")
    await admin.screenshot(path=str(artifacts / "admin-canned-large-en.png"), full_page=True)
    assert problems == []


async def test_the_check_catches_what_it_looks_for(browser: Browser) -> None:
    """The check itself: a page with every fault it knows is reported, fault by fault."""
    page = await browser.new_page()
    await page.set_content("""<html><body>
      <h1>One</h1><h3>skips a level</h3>
      <input id="n"><select aria-labelledby="ghost"></select>
      <button></button><a href="/x"></a><img src="data:,">
      <svg role="img"></svg>
      <p style="color:#999;background:#fff">too faint</p>
      <p id="d">one</p><p id="d">two</p>
      <button style="outline:none">no focus ring</button>
    </body></html>""")
    problems = "\n".join(await audit(page))
    for words in ("html has no lang", "exactly one <main>", "no banner landmark",
                  "heading level jumps from h1 to h3", "form control without a label: input#n",
                  "names missing id(s) ghost", "button without a name", "link without a name",
                  "image without alt", "chart without a name", "contrast 2.85 < 4.5",
                  "duplicate id d"):
        assert words in problems, words
    assert any("no focus ring" in p for p in await focus_problems(page))
