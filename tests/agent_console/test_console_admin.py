"""The admin screens on the real app (SQLite and PostgreSQL): edit and disable staff,
edit canned responses and business hours — each validated with an error next to the
field that is wrong, saved where the design keeps it (the database; the data directory
for canned responses; config/queues.yaml, written atomically, for business hours),
audited, and for admins only."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from agent_console.data import CANNED_FILE, use_canned_file
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import AuditEntry, Channel, ContactCenter, load_settings
from tests.agent_console.console_support import form_login, hidden
from tests.support.app import app_settings, bearer, login

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the project's configuration (the test edits it, never config/ itself)."""
    copy = tmp_path / "config"
    shutil.copytree(ROOT / "config", copy)
    return copy


@pytest.fixture
async def admin(aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path,
                config_dir: Path) -> AsyncIterator[TestClient]:
    app = build_app(app_settings(database_url, tmp_path, config_dir=config_dir))
    client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    await form_login(client, "admin", "demo-admin")
    yield client
    use_canned_file(None)


def center_of(client: TestClient) -> ContactCenter:
    return client.server.app[CENTER_KEY]


async def post_form(client: TestClient, path: str, data: dict[str, Any]) -> Any:
    page = await client.get(path)
    assert page.status == 200, await page.text()
    token = hidden(await page.text(), "csrf_token")
    return await client.post(path, data={**data, "csrf_token": token}, allow_redirects=False)


def field_error(html: str, name: str) -> str:
    """The error shown next to a field (and the field must be marked invalid)."""
    control = re.search(rf'<input id="f-{name}"[^>]*>|<textarea id="f-{name}"[^>]*>', html)
    assert control and 'aria-invalid="true"' in control.group(0), f"{name} not marked"
    assert f"e-{name}" in control.group(0), f"{name} does not point at its error"
    message = re.search(rf'<span class="error" id="e-{name}">([^<]+)</span>', html)
    assert message, f"no error for {name}"
    return message.group(1)


async def audit_of(center: ContactCenter, subject_type: str) -> list[AuditEntry]:
    rows, _ = await center.list_rows(AuditEntry, AuditEntry.subject_type == subject_type,
                                     AuditEntry.action.like("admin.%"))
    return rows


async def test_an_admin_edits_an_agents_skills_and_roles_and_the_router_follows(
    admin: TestClient,
) -> None:
    center = center_of(admin)
    anan = await center.agent_by_username("anan")
    assert anan is not None and "welfare" not in center.router.agent(anan.id).queues
    admin_page = await (await admin.get("/admin/")).text()
    assert f'href="/admin/agents/{anan.id}"' in admin_page

    bad = await post_form(admin, f"/admin/agents/{anan.id}", {
        "display_name": "", "roles": "agent", "languages": "th, fr",
        "skills": "tax=five", "capacity": "chat=3, fax=1", "active": "on",
        "password": "short"})
    html = await bad.text()
    assert bad.status == 422
    assert field_error(html, "display_name")
    assert field_error(html, "languages") == "ภาษาต้องเป็น th หรือ en"
    assert field_error(html, "skills") == "ใช้รูปแบบ ชื่อ=ตัวเลข คั่นด้วยจุลภาค"
    assert field_error(html, "capacity") == "ช่องทางไม่ถูกต้อง"
    assert field_error(html, "password")
    assert 'role="alert"' in html and 'href="#f-skills"' in html  # the summary links to it
    unchanged = await center.agent_record(anan.id)
    assert unchanged.skills == anan.skills and unchanged.display_name == anan.display_name

    saved = await post_form(admin, f"/admin/agents/{anan.id}", {
        "display_name": "อนันต์ รักงาน (Anan, welfare)", "roles": ["agent", "supervisor"],
        "languages": "th, en", "skills": "general=3, welfare=2", "capacity": "chat=2, email=4",
        "active": "on", "password": ""})
    assert saved.status == 303, await saved.text()
    record = await center.agent_record(anan.id)
    assert record.skills == {"general": 3, "welfare": 2}
    assert record.roles == ["agent", "supervisor"] and record.languages == ["th", "en"]
    assert record.capacity == {"chat": 2, "email": 4}
    assert record.password_hash == anan.password_hash  # empty password: kept
    assert {"welfare", "english"} <= center.router.agent(anan.id).queues
    listing = await (await admin.get("/admin/?saved=agent")).text()
    assert "บันทึกข้อมูลเจ้าหน้าที่แล้ว" in listing and "Anan, welfare" in listing
    (entry,) = await audit_of(center, "agent")
    assert entry.subject_id == anan.id and entry.action == "admin.update"
    assert set(entry.data["changed"]) == {"display_name", "roles", "languages", "skills",
                                          "capacity"}
    assert entry.data["changed"]["skills"]["to"] == {"general": 3, "welfare": 2}


async def test_a_disabled_agent_is_signed_out_everywhere_and_cannot_sign_in(
    admin: TestClient,
) -> None:
    center = center_of(admin)
    session = await login(admin, "malee", "demo-agent-3")
    headers = bearer(session["token"])
    await admin.put("/api/v1/agents/me/presence", json={"presence": "available"},
                    headers=headers)
    malee = await center.agent_by_username("malee")
    assert malee is not None
    await form_login(admin, "admin", "demo-admin")  # the login above replaced the cookie
    form = {"display_name": malee.display_name, "roles": "agent", "languages": "th, en",
            "skills": "general=3, welfare=5, social_work=5", "capacity": "chat=2"}
    saved = await post_form(admin, f"/admin/agents/{malee.id}", form)  # "active" unticked
    assert saved.status == 303
    assert (await center.agent_record(malee.id)).active is False
    assert str(center.router.agent(malee.id).presence) == "offline"
    assert (await admin.get("/api/v1/me", headers=headers)).status == 401
    refused = await admin.post("/api/v1/auth/login",
                               json={"username": "malee", "password": "demo-agent-3"})
    assert refused.status == 401
    listing = await (await admin.get("/admin/")).text()
    row = re.search(r'<tr data-username="malee">(.*?)</tr>', listing, re.S)
    assert row and "ระงับแล้ว" in row.group(1)
    (entry,) = await audit_of(center, "agent")
    assert entry.data["changed"]["active"] == {"from": True, "to": False}

    # An admin cannot lock themselves out.
    me = await center.agent_by_username("admin")
    assert me is not None
    own = await post_form(admin, f"/admin/agents/{me.id}", {
        "display_name": me.display_name, "roles": "agent", "languages": "th",
        "skills": "", "capacity": ""})
    html = await own.text()
    assert own.status == 422
    assert "ระงับบัญชีของตนเองไม่ได้" in html and "ถอดสิทธิ์ผู้ดูแลระบบของตนเองไม่ได้" in html
    assert (await center.agent_record(me.id)).active is True


async def test_canned_responses_are_edited_validated_saved_and_served(
    admin: TestClient, tmp_path: Path,
) -> None:
    packaged = CANNED_FILE.read_bytes()
    bad = await post_form(admin, "/admin/canned/greeting", {
        "title_th": "ทักทาย", "title_en": "Greeting", "body_th": "สวัสดีค่ะ คุณ{citizen_nam}",
        "body_en": ""})
    html = await bad.text()
    assert bad.status == 422
    assert field_error(html, "body_th").startswith("มีตัวแปรที่ไม่รู้จัก")
    assert field_error(html, "body_en") == "ต้องกรอกช่องนี้"

    saved = await post_form(admin, "/admin/canned/greeting", {
        "title_th": "ทักทาย", "title_en": "Greeting",
        "body_th": "สวัสดีค่ะ คุณ{citizen_name} ยินดีต้อนรับ", "body_en": "Hello {citizen_name}"})
    assert saved.status == 303, await saved.text()
    created = await post_form(admin, "/admin/canned/new", {
        "id": "closing_hours", "title_th": "เวลาทำการ", "title_en": "Opening hours",
        "body_th": "เปิด 08:30–16:30 น.", "body_en": "Open 08:30–16:30"})
    assert created.status == 303
    taken = await post_form(admin, "/admin/canned/new", {
        "id": "closing_hours", "title_th": "x", "title_en": "x", "body_th": "x", "body_en": "x"})
    assert field_error(await taken.text(), "id") == "มีรหัสนี้อยู่แล้ว"

    stored = yaml.safe_load((tmp_path / "console" / "canned.yaml").read_text(encoding="utf-8"))
    ids = [c["id"] for c in stored["responses"]]
    assert ids[-1] == "closing_hours" and "greeting" in ids
    assert CANNED_FILE.read_bytes() == packaged  # the packaged defaults are untouched
    served = await (await admin.get("/api/v1/canned-responses")).json()
    greeting = next(c for c in served if c["id"] == "greeting")
    assert greeting["body"]["th"] == "สวัสดีค่ะ คุณ{citizen_name} ยินดีต้อนรับ"
    assert any(c["id"] == "closing_hours" for c in served)
    desk = await (await admin.get("/console/")).text()
    data = re.search(r'<script type="application/json" id="console-data">(.*?)</script>', desk)
    assert data
    offered = {c["id"]: c for c in json.loads(data.group(1))["canned"]}
    assert offered["greeting"]["body"]["th"].endswith("ยินดีต้อนรับ")  # the desk offers it
    entries = await audit_of(admin.server.app[CENTER_KEY], "canned_response")
    assert {e.subject_id for e in entries} == {"greeting", "closing_hours"}


async def test_business_hours_are_edited_into_queues_yaml_and_used_at_once(
    admin: TestClient, config_dir: Path,
) -> None:
    center = center_of(admin)
    path = config_dir / "queues.yaml"
    before = path.read_text(encoding="utf-8")
    friday_10 = datetime(2026, 3, 6, 3, 0, tzinfo=UTC)  # 10:00 in Bangkok, not a holiday
    assert center.hours["office"].is_open(friday_10)
    form = {"mon": "08:00-17:00", "tue": "08:30-16:30", "wed": "08:30-12:00, 13:00-16:30",
            "thu": "08:30-16:30", "fri": "", "sat": "", "sun": "", "timezone": "Asia/Bangkok",
            "holidays": "TH", "extra_closed_dates": "2026-04-01"}

    bad = await post_form(admin, "/admin/hours/office", {
        **form, "mon": "8-5", "tue": "17:00-08:00", "timezone": "Mars/Base",
        "holidays": "XX", "extra_closed_dates": "1 เม.ย."})
    html = await bad.text()
    assert bad.status == 422
    assert field_error(html, "mon").startswith("ใช้รูปแบบ 08:30-16:30")
    assert field_error(html, "tue") == "เวลาสิ้นสุดต้องหลังเวลาเริ่ม"
    assert field_error(html, "timezone").startswith("ไม่รู้จักเขตเวลานี้")
    assert field_error(html, "holidays") == "ใช้ TH หรือเว้นว่าง"
    assert field_error(html, "extra_closed_dates") == "ใช้วันที่แบบ YYYY-MM-DD"
    assert path.read_text(encoding="utf-8") == before

    saved = await post_form(admin, "/admin/hours/office", form)
    assert saved.status == 303, await saved.text()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Queues, channels and business hours.")  # comments kept
    assert text.count("\n# ") == before.count("\n# ")
    office = load_settings(config_dir).hours["office"]  # what the next start will read
    assert office.weekly["mon"] == ["08:00-17:00"] and "fri" not in office.weekly
    assert office.weekly["wed"] == ["08:30-12:00", "13:00-16:30"]
    assert office.extra_closed_dates == ["2026-04-01"]
    assert load_settings(config_dir).hours["extended"] == load_settings(
        ROOT / "config").hours["extended"]
    assert not center.hours["office"].is_open(friday_10)  # this node uses it at once
    listing = await (await admin.get("/admin/")).text()
    row = re.search(r'<tr data-hours="office">(.*?)</tr>', listing, re.S)
    assert row and "08:00-17:00" in row.group(1)
    (entry,) = await audit_of(center, "business_hours")
    assert entry.subject_id == "office" and entry.data["to"]["weekly"]["mon"] == ["08:00-17:00"]
    assert (await admin.get("/admin/hours/always")).status == 404


async def test_admin_screens_are_for_admins_only(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path, config_dir: Path,
) -> None:
    app = build_app(app_settings(database_url, tmp_path, config_dir=config_dir))
    client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    somsri = await center_of(client).agent_by_username("somsri")
    assert somsri is not None
    for username, password in (("supervisor", "demo-supervisor"), ("somsri", "demo-agent-1")):
        await form_login(client, username, password)
        for path in (f"/admin/agents/{somsri.id}", "/admin/canned/greeting",
                     "/admin/hours/office", "/admin/queues/welfare", "/admin/channels/chat"):
            assert (await client.get(path)).status == 403
            assert (await client.post(path, data={"display_name": "x"})).status == 403
    await form_login(client, "admin", "demo-admin")
    no_token = await client.post("/admin/hours/office", data={"mon": "08:00-09:00"})
    assert no_token.status == 403  # without the form's CSRF token nothing changes
    assert "08:00-09:00" not in (config_dir / "queues.yaml").read_text(encoding="utf-8")
    no_token = await client.post("/admin/channels/chat", data={"wrap_up_seconds": "99"})
    assert no_token.status == 403
    assert load_settings(config_dir).channels["chat"].wrap_up_seconds == 0


QUEUE_FORM = {"name_th": "สวัสดิการสังคมและเบี้ยยังชีพ", "name_en": "Social welfare and allowances",
              "agents": "skills.welfare >= 2", "hours": "extended", "strategy": "most_skilled",
              "priority_aging": "2", "sl_chat_threshold": "45", "sl_chat_target": "0.85"}


async def test_an_admin_edits_a_queue_into_queues_yaml_for_the_next_start(
    admin: TestClient, config_dir: Path,
) -> None:
    center = center_of(admin)
    path = config_dir / "queues.yaml"
    before = path.read_text(encoding="utf-8")
    form_page = await (await admin.get("/admin/queues/welfare")).text()
    assert 'value="skills.welfare &gt;= 1"' in form_page  # the saved expression, to edit
    assert "มีผลกับการจัดสรรงานเมื่อเริ่มระบบครั้งถัดไป" in form_page

    bad_target = await post_form(admin, "/admin/queues/welfare", {
        **QUEUE_FORM, "sl_voice_threshold": "10", "sl_voice_target": "1.5", "name_en": ""})
    html = await bad_target.text()
    assert bad_target.status == 422
    assert field_error(html, "sl_voice_target").startswith("ใส่สัดส่วนที่มากกว่า 0 และไม่เกิน 1")
    assert field_error(html, "name_en") == "ต้องกรอกช่องนี้"
    assert 'href="#f-sl_voice_target"' in html  # the summary links to the field
    bad_expression = await post_form(admin, "/admin/queues/welfare", {
        **QUEUE_FORM, "agents": "skills.welfare >="})
    html = await bad_expression.text()
    assert bad_expression.status == 422
    message = field_error(html, "agents")
    assert message.startswith("นิพจน์ไม่ถูกต้อง:") and "syntax error" in message
    assert 'href="#f-agents"' in html
    assert path.read_text(encoding="utf-8") == before  # nothing written

    saved = await post_form(admin, "/admin/queues/welfare", QUEUE_FORM)
    assert saved.status == 303, await saved.text()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Queues, channels and business hours.")  # comments kept
    welfare = load_settings(config_dir).queues["welfare"].spec  # what the next start reads
    assert welfare.name.en == "Social welfare and allowances" and welfare.hours == "extended"
    assert welfare.agents == "skills.welfare >= 2" and welfare.strategy == "most_skilled"
    assert welfare.priority_aging == 2 and welfare.service_level["chat"].target == 0.85
    assert "voice" not in welfare.service_level
    shipped = load_settings(ROOT / "config")
    assert load_settings(config_dir).queues["social_work"].spec == shipped.queues[
        "social_work"].spec  # other queues as they were
    # The running router keeps its settings until the next start, and says so.
    assert center.settings.queues["welfare"].spec.agents == "skills.welfare >= 1"
    listing = await (await admin.get("/admin/?saved=queue")).text()
    assert "บันทึกคิวแล้ว จะมีผลเมื่อเริ่มระบบครั้งถัดไป" in listing
    row = re.search(r'<tr data-queue="welfare">(.*?)</tr>', listing, re.S)
    assert row and "Social welfare and allowances" in row.group(1)
    assert "skills.welfare &gt;= 2" in row.group(1) and "รอเริ่มระบบใหม่" in row.group(1)
    other = re.search(r'<tr data-queue="general">(.*?)</tr>', listing, re.S)
    assert other and "รอเริ่มระบบใหม่" not in other.group(1)
    (entry,) = await audit_of(center, "queue")
    assert entry.subject_id == "welfare" and entry.action == "admin.update"
    assert entry.data["from"]["agents"] == "skills.welfare >= 1"
    assert entry.data["to"]["agents"] == "skills.welfare >= 2"
    assert {"agents", "name", "hours", "strategy"} <= set(entry.data["changed"])
    assert (await admin.get("/admin/queues/nope")).status == 404


async def test_an_admin_gives_chat_after_contact_work_for_the_next_start(
    admin: TestClient, config_dir: Path,
) -> None:
    center = center_of(admin)
    path = config_dir / "queues.yaml"
    before = path.read_text(encoding="utf-8")
    form = {"sl_threshold": "60", "sl_target": "0.8", "reservation_timeout": "30",
            "wrap_up_seconds": "90", "default_handle_seconds": "420"}
    bad = await post_form(admin, "/admin/channels/chat", {
        **form, "wrap_up_seconds": "-5", "sl_target": "1.5", "reservation_timeout": "soon"})
    html = await bad.text()
    assert bad.status == 422
    assert field_error(html, "wrap_up_seconds") == "ใส่จำนวนวินาทีตั้งแต่ 0 ขึ้นไป"
    assert field_error(html, "sl_target").startswith("ใส่สัดส่วนที่มากกว่า 0 และไม่เกิน 1")
    assert field_error(html, "reservation_timeout") == "ใส่จำนวนวินาทีที่มากกว่า 0"
    assert path.read_text(encoding="utf-8") == before

    saved = await post_form(admin, "/admin/channels/chat", form)
    assert saved.status == 303, await saved.text()
    assert path.read_text(encoding="utf-8").startswith("# Queues, channels and business hours.")
    configured = load_settings(config_dir)  # what the next start reads
    assert configured.channels["chat"].wrap_up_seconds == 90
    assert configured.channels["chat"].entry == "bot"  # fields not on the form are kept
    assert configured.channels["voice"] == load_settings(ROOT / "config").channels["voice"]
    assert center.settings.channel(Channel.CHAT).wrap_up_seconds == 0  # not yet
    listing = await (await admin.get("/admin/?saved=channel")).text()
    assert "บันทึกการตั้งค่าช่องทางแล้ว" in listing
    row = re.search(r'<tr data-channel="chat">(.*?)</tr>', listing, re.S)
    assert row and "<td>90</td>" in row.group(1) and "รอเริ่มระบบใหม่" in row.group(1)
    (entry,) = await audit_of(center, "channel_settings")
    assert entry.subject_id == "chat" and entry.data["changed"] == ["wrap_up_seconds"]
    assert entry.data["to"]["wrap_up_seconds"] == 90
    assert (await admin.get("/admin/channels/fax")).status == 404
