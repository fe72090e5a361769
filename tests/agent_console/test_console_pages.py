"""The console's pages on the real app: sign-in, lockout, role gates, CSRF, escaping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from onestop.demo import seed_demo
from routing import Channel, Citizen, ContactCenter, IdentityHint, IdentityKind, InboundMessage
from tests.agent_console.console_support import console_app, csrf_of, form_login

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path
) -> AsyncIterator[TestClient]:
    app = console_app(database_url, tmp_path)
    test_client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    yield test_client


def center_of(client: TestClient) -> ContactCenter:
    return client.server.app[CENTER_KEY]


async def test_console_pages_send_strangers_to_the_login_page(client: TestClient) -> None:
    for path in ("/console/", "/supervisor/", "/admin/", "/supervisor/reports"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"].startswith("/console/login?next=")


async def test_signing_in_with_the_form_opens_the_desk_in_thai(client: TestClient) -> None:
    response = await form_login(client, "somsri", "demo-agent-1")
    assert response.status == 303 and response.headers["Location"] == "/console/"
    desk = await client.get("/console/")
    html = await desk.text()
    assert desk.status == 200
    assert 'lang="th"' in html and "พร้อมรับงาน" in html and "สมศรี" in html
    assert "<script src=" in html and "<script>" not in html  # no inline scripts (CSP)


async def test_the_language_switch_shows_the_desk_in_english(client: TestClient) -> None:
    await form_login(client, "somsri", "demo-agent-1")
    switched = await client.get("/console/prefs?lang=en&next=/console/", allow_redirects=False)
    assert switched.headers["Location"] == "/console/"
    html = await (await client.get("/console/")).text()
    assert 'lang="en"' in html and "Available" in html and "Keyboard shortcuts" in html
    assert 'class="large-text"' not in html
    await client.get("/console/prefs?text=large&next=/console/")
    assert 'class="large-text"' in await (await client.get("/console/")).text()


async def test_the_preferences_switch_never_redirects_off_site(client: TestClient) -> None:
    response = await client.get("/console/prefs?lang=en&next=//evil.example/",
                                allow_redirects=False)
    assert response.headers["Location"] == "/console/"


async def test_a_wrong_password_shows_an_error_and_five_lock_the_account(
    client: TestClient,
) -> None:
    wrong = await form_login(client, "anan", "nope")
    assert wrong.status == 401
    assert "ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง" in await wrong.text()
    for _ in range(4):
        await form_login(client, "anan", "nope")
    locked = await form_login(client, "anan", "demo-agent-2")
    assert locked.status == 423
    text = await locked.text()
    assert "บัญชีถูกล็อก" in text and 'role="alert"' in text
    await client.get("/console/prefs?lang=en")
    locked_en = await form_login(client, "anan", "demo-agent-2")
    assert "locked after repeated failures" in await locked_en.text()


async def test_the_login_form_refuses_a_post_without_its_token(client: TestClient) -> None:
    response = await client.post("/console/login", data={"username": "somsri",
                                                         "password": "demo-agent-1"},
                                 allow_redirects=False)
    assert response.status == 403
    assert "onestop_session" not in {c.key for c in client.session.cookie_jar}


async def test_agents_get_a_403_page_on_supervisor_and_admin_screens(client: TestClient) -> None:
    await form_login(client, "somsri", "demo-agent-1")
    for path in ("/supervisor/", "/supervisor/reports", "/admin/"):
        response = await client.get(path)
        assert response.status == 403, path
        assert "ไม่มีสิทธิ์เข้าถึงหน้านี้" in await response.text()


async def test_supervisors_open_the_wall_and_reports_but_not_admin(client: TestClient) -> None:
    response = await form_login(client, "supervisor", "demo-supervisor")
    assert response.headers["Location"] == "/supervisor/"
    assert (await client.get("/supervisor/")).status == 200
    assert (await client.get("/supervisor/reports")).status == 200
    assert (await client.get("/admin/")).status == 403


async def test_logout_ends_the_session(client: TestClient) -> None:
    await form_login(client, "somsri", "demo-agent-1")
    html = await (await client.get("/console/")).text()
    without = await client.post("/console/logout", data={}, allow_redirects=False)
    assert (await client.get("/console/", allow_redirects=False)).status == 200, \
        "a logout without the CSRF token must not sign anyone out"
    assert without.status == 403
    await client.post("/console/logout", data={"csrf_token": csrf_of(html)},
                      allow_redirects=False)
    assert (await client.get("/console/", allow_redirects=False)).status == 303


async def test_logout_everywhere_ends_the_other_sessions_too(
    client: TestClient, aiohttp_client: Callable[..., Any]
) -> None:
    await form_login(client, "somsri", "demo-agent-1")
    other = await aiohttp_client(client.server)
    await form_login(other, "somsri", "demo-agent-1")
    assert (await other.get("/console/", allow_redirects=False)).status == 200
    html = await (await client.get("/console/")).text()
    await client.post("/console/logout-everywhere", data={"csrf_token": csrf_of(html)},
                      allow_redirects=False)
    assert (await other.get("/console/", allow_redirects=False)).status == 303


async def test_a_console_api_write_without_the_csrf_token_is_refused(client: TestClient) -> None:
    await form_login(client, "somsri", "demo-agent-1")
    html = await (await client.get("/console/")).text()
    body = {"presence": "available"}
    refused = await client.put("/api/v1/agents/me/presence", json=body)
    assert refused.status == 403
    accepted = await client.put("/api/v1/agents/me/presence", json=body,
                                headers={"X-CSRF-Token": csrf_of(html)})
    assert accepted.status == 200


async def test_the_admin_form_refuses_a_post_without_the_csrf_token(client: TestClient) -> None:
    await form_login(client, "admin", "demo-admin")
    response = await client.post("/admin/agents", data={
        "username": "newbie", "display_name": "N", "password": "a-long-password-1",
        "roles": "agent"})
    assert response.status == 403
    assert await center_of(client).agent_by_username("newbie") is None


async def test_the_admin_creates_an_agent_and_sees_clear_errors_first(client: TestClient) -> None:
    await form_login(client, "admin", "demo-admin")
    html = await (await client.get("/admin/")).text()
    csrf = csrf_of(html)
    assert "somsri" in html and "greeting" in html  # agents and canned responses listed
    bad = await client.post("/admin/agents", data={
        "csrf_token": csrf, "username": "Bad Name!", "display_name": "", "password": "short",
        "capacity": "fax=2"})
    text = await bad.text()
    assert bad.status == 422
    assert 'aria-invalid="true"' in text
    for message in ("ชื่อผู้ใช้ต้องเป็น", "โปรดใส่ชื่อที่แสดง", "อย่างน้อย 12 ตัวอักษร",
                    "เลือกบทบาท", "ช่องทางไม่ถูกต้อง"):
        assert message in text, message
    taken = await client.post("/admin/agents", data={
        "csrf_token": csrf, "username": "somsri", "display_name": "X",
        "password": "a-long-password-1", "roles": "agent"})
    assert "ชื่อผู้ใช้นี้มีอยู่แล้ว" in await taken.text()
    good = await client.post("/admin/agents", data={
        "csrf_token": csrf, "username": "preecha", "display_name": "ปรีชา",
        "password": "a-long-password-1", "roles": "agent", "languages": "th, en",
        "skills": "general=3", "capacity": "chat=2, email=4"})
    assert good.status == 201
    record = await center_of(client).agent_by_username("preecha")
    assert record is not None and record.capacity == {"chat": 2, "email": 4}
    assert center_of(client).router.has_agent(record.id)


async def test_html_in_a_citizen_name_and_a_message_is_shown_as_text(client: TestClient) -> None:
    center = center_of(client)
    result = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-evil", "<evil@mail.th>", EVIL,
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "evil@mail.th"),)))
    async with center.db.sessions() as s, s.begin():
        citizen = await s.get(Citizen, result.citizen_id)
        assert citizen is not None
        citizen.name_th = EVIL
    await form_login(client, "supervisor", "demo-supervisor")
    page = await client.get(f"/supervisor/conversations/{result.conversation_id}")
    html = await page.text()
    assert page.status == 200
    assert EVIL not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") == 2  # the name and the message


async def test_the_offer_deadline_and_a_reply_go_through_the_console_api(
    client: TestClient,
) -> None:
    await form_login(client, "somsri", "demo-agent-1")
    csrf = csrf_of(await (await client.get("/console/")).text())
    headers = {"X-CSRF-Token": csrf}
    await client.put("/api/v1/agents/me/presence", json={"presence": "available"},
                     headers=headers)
    center = center_of(client)
    result = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-d", "<d@mail.th>", "ขอเปลี่ยนที่อยู่",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "d@mail.th"),)))
    for _ in range(100):
        desk = await (await client.get("/api/v1/desk")).json()
        if desk["items"]:
            break
        await asyncio.sleep(0.02)
    offer = desk["items"][0]
    assert offer["task"]["status"] == "reserved"
    assert 0 < offer["expires_at"] - desk["server_time"] <= 60  # email reservation timeout
    conversation = f"/api/v1/conversations/{result.conversation_id}/messages"
    early = await client.post(conversation, json={"body": "hi"}, headers=headers)
    assert early.status == 403  # not theirs until accepted
    await client.post(f"/api/v1/tasks/{offer['task']['id']}/accept", headers=headers)
    sent = await client.post(conversation, json={"body": "รับเรื่องแล้วค่ะ"}, headers=headers)
    assert sent.status == 201
    note = await client.post(conversation, json={"body": "ตรวจสอบบ้านเลขที่", "internal": True},
                             headers=headers)
    assert (await note.json())["internal"] is True
    stored = await center.messages(result.conversation_id)
    assert [(m.direction, m.body, m.internal, m.author_name) for m in stored[1:]] == [
        ("outbound", "รับเรื่องแล้วค่ะ", False, "สมศรี ใจดี (Somsri)"),
        ("outbound", "ตรวจสอบบ้านเลขที่", True, "สมศรี ใจดี (Somsri)")]
