"""The knowledge base in the running app: citizens' help pages, the staff API, the bot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY, KNOWLEDGE_KEY
from onestop.app import build_app
from onestop.demo import seed_demo
from tests.support.app import app_settings, bearer, login


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[TestClient]:
    app = build_app(app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path))
    test_client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    yield test_client


async def test_a_citizen_finds_an_answer_on_the_help_pages(client: TestClient) -> None:
    page = await client.get("/help", params={"q": "บัตรประชาชนหาย ทำไง"})
    html = await page.text()
    assert page.status == 200 and "บัตร" in html
    link = html.split('href="/help/', 1)[1].split('"', 1)[0]
    article = await client.get(f"/help/{link}".replace("&amp;", "&"))
    assert article.status == 200 and "<h1>" in await article.text()
    assert (await client.get("/help/no-such-article")).status == 404


async def test_html_in_a_query_is_shown_as_text(client: TestClient) -> None:
    page = await client.get("/help", params={"q": "<script>alert(1)</script>"})
    assert "<script>alert(1)</script>" not in await page.text()


async def test_staff_search_the_knowledge_base_and_gaps_are_reported(client: TestClient) -> None:
    agent = await login(client, "somsri", "demo-agent-1")
    found = await client.get("/api/v1/knowledge/search", params={"q": "เบี้ยผู้สูงอายุ"},
                             headers=bearer(agent["token"]))
    hits = await found.json()
    assert found.status == 200 and hits and hits[0]["url"].endswith(hits[0]["slug"])
    await client.get("/api/v1/knowledge/search", params={"q": "ดาวอังคารมีวีซ่าไหม"},
                     headers=bearer(agent["token"]))
    assert (await client.get("/api/v1/knowledge/gaps", headers=bearer(agent["token"]))
            ).status == 403
    supervisor = await login(client, "supervisor", "demo-supervisor")
    gaps = await (await client.get("/api/v1/knowledge/gaps",
                                   headers=bearer(supervisor["token"]))).json()
    assert any("ดาวอังคาร" in g["query"] for g in gaps)


async def test_the_bot_gets_answers_only_above_the_score_floor(client: TestClient) -> None:
    adapter = client.server.app[KNOWLEDGE_KEY]
    good = await adapter.search("ต่อบัตรประชาชนต้องใช้อะไร", language="th")  # type: ignore[attr-defined]
    assert good and good[0].url.startswith("http")
    nonsense = await adapter.search("ดาวอังคารมีวีซ่าไหม", language="th")  # type: ignore[attr-defined]
    assert nonsense == []
