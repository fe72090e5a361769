"""Reports on real data made through the core (SQLite and PostgreSQL): chats the bot
answered alone, a chat it handed to a person, an email; bot containment by channel and
overall, every figure by queue, agent, category and channel, a chart per figure, the CSV
export — and dates and numbers written by Babel in Thai (Buddhist Era) and English."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from agent_console.reports import FIGURES, period, report
from onestop.demo import seed_demo
from routing import Case, Channel, ContactCenter, IdentityHint, IdentityKind, InboundMessage
from tests.agent_console.console_support import console_app, form_login
from tests.agent_console.test_console_transfer_wrap import Staff, offered, staff
from tests.channels.webchat.conftest import AnsweringBot

PERIOD = "from=2026-03-01&to=2026-03-03"  # the test clock stands on 2 March 2026


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path,
                 clock: Any) -> AsyncIterator[TestClient]:
    app = console_app(database_url, tmp_path, clock=clock, bot=AnsweringBot())
    test_client: TestClient = await aiohttp_client(app)
    center: ContactCenter = app[CENTER_KEY]
    await seed_demo(center)
    await make_traffic(test_client, center, clock)
    yield test_client


async def make_traffic(client: TestClient, center: ContactCenter, clock: Any) -> None:
    """Two chats the bot answers alone, one it hands to a person (answered, resolved on
    the spot), and one email (answered, completed)."""
    for key in ("bot-1", "bot-2"):
        await center.ingest(InboundMessage(Channel.CHAT, key, f"{key}:1", "ต่ออายุบัตรยังไง"))
    somsri: Staff = await staff(client, "somsri", "demo-agent-1")
    await somsri.available()
    chat = await center.ingest(InboundMessage(Channel.CHAT, "bot-3", "bot-3:1",
                                              "ขอคุยกับเจ้าหน้าที่ค่ะ"))
    task = (await offered(somsri))["task"]
    clock.advance(12)
    await somsri.call("POST", f"/tasks/{task['id']}/accept")
    await somsri.call("PATCH", f"/cases/{chat.case_id}", {
        "category": "id_card", "status": "resolved", "resolution": "แจ้งเอกสารแล้ว"})
    async with center.db.sessions() as s, s.begin():
        case = await s.get(Case, chat.case_id)
        assert case is not None
        case.csat = 5
    clock.advance(100)
    await somsri.call("POST", f"/tasks/{task['id']}/complete",
                      {"wrap_code": "resolved", "wrap_up": False})
    await center.ingest(InboundMessage(
        Channel.EMAIL, "mail-1", "<mail-1@mail.th>", "สอบถามภาษีป้าย", subject="ภาษีป้าย",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "tax@mail.th"),)))
    task = (await offered(somsri))["task"]
    clock.advance(30)
    await somsri.call("POST", f"/tasks/{task['id']}/accept")
    clock.advance(200)
    await somsri.call("POST", f"/tasks/{task['id']}/complete",
                      {"wrap_code": "informed", "wrap_up": False})


async def test_bot_containment_by_channel_and_overall_with_every_figure(
    client: TestClient, clock: Any,
) -> None:
    center: ContactCenter = client.server.app[CENTER_KEY]
    from datetime import date
    start, end = period(date(2026, 3, 1), date(2026, 3, 3))
    rows = {r.group: r for r in await report(center, start, end, "channel")}
    assert set(rows) == {"chat", "email"}
    chat, email = rows["chat"], rows["email"]
    assert (chat.conversations, chat.bot_handled, chat.bot_contained) == (3, 3, 2)
    assert chat.bot_containment == pytest.approx(2 / 3, abs=1e-4)
    assert (chat.volume, chat.answered, chat.abandoned) == (1, 1, 0)
    assert chat.asa_seconds == pytest.approx(12, abs=0.5)
    assert chat.aht_seconds == pytest.approx(100, abs=0.5)
    assert (chat.service_level, chat.one_stop, chat.csat) == (1.0, 1.0, 5.0)
    assert (email.conversations, email.bot_handled, email.bot_containment) == (1, 0, None)
    assert email.asa_seconds == pytest.approx(30, abs=0.5)
    assert email.aht_seconds == pytest.approx(200, abs=0.5)
    (total,) = await report(center, start, end, "all")
    assert (total.conversations, total.volume, total.answered) == (4, 2, 2)
    assert total.bot_containment == pytest.approx(2 / 3, abs=1e-4)
    assert total.asa_seconds == pytest.approx(21, abs=0.5)

    by_category = {r.group: r for r in await report(center, start, end, "category")}
    assert by_category["id_card"].bot_contained == 0
    assert by_category["id_card"].one_stop == 1.0
    assert by_category["—"].bot_contained == 2  # the bot's own chats have no category
    by_queue = {r.group: r for r in await report(center, start, end, "queue")}
    assert all(r.bot_containment is None for r in by_queue.values())  # no queue to contain
    assert sum(r.volume for r in by_queue.values()) == 2
    by_agent = {r.group: r for r in await report(center, start, end, "agent")}
    assert by_agent["สมศรี ใจดี (Somsri)"].answered == 2
    # Nothing before the period.
    assert await report(center, *period(date(2026, 2, 1), date(2026, 2, 2)), "channel") == []


async def test_the_report_page_shows_every_figure_charts_them_and_exports_them(
    client: TestClient,
) -> None:
    await form_login(client, "supervisor", "demo-supervisor")
    page = await client.get(f"/supervisor/reports?{PERIOD}&by=channel")
    html = await page.text()
    assert page.status == 200
    headers = re.findall(r'<th scope="col" data-figure="([a-z_]+)">', html)
    assert headers == [f for f, _, _ in FIGURES]
    assert "บอทตอบจบเอง" in html
    chat = re.search(r'<tr data-group="chat">(.*?)</tr>', html, re.S)
    assert chat and '<td data-figure="bot_containment">66.7%</td>' in chat.group(1)
    assert '<td data-figure="asa_seconds">12.0</td>' in chat.group(1)
    total = re.search(r'<tr data-group="all">(.*?)</tr>', html, re.S)
    assert total and '<td data-figure="conversations">4</td>' in total.group(1)
    for chart in ("volume", "service-level", "asa-seconds", "aht-seconds", "abandonment",
                  "one-stop", "bot-containment", "csat", "conversations"):
        assert f'<svg id="{chart}-chart" role="img"' in html, chart
    # The chart's accessible name carries its values.
    assert re.search(r'<title id="bot-containment-chart-title">[^<]*chat 66.7%', html)
    # Dates by Babel, in the Buddhist Era for Thai.
    assert "1 มีนาคม พ.ศ. 2569 – 3 มีนาคม พ.ศ. 2569" in html

    exported = await client.get(f"/supervisor/reports?{PERIOD}&by=channel&format=csv")
    rows = {r["channel"]: r for r in csv.DictReader(io.StringIO(await exported.text()))}
    assert rows["chat"]["bot_containment"] == "0.6667"
    assert rows["chat"]["bot_contained"] == "2" and rows["chat"]["conversations"] == "3"
    assert rows["email"]["bot_containment"] == ""
    for field, _, _ in FIGURES:
        assert field in rows["chat"], field

    client.session.cookie_jar.update_cookies({"onestop_lang": "en"})
    english = await (await client.get(f"/supervisor/reports?{PERIOD}&by=channel")).text()
    assert "1 March 2026 – 3 March 2026" in english and "Bot containment" in english
