"""The real Rasa bot behind the core: answers in the citizen's language, hands off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from onestop.app import build_app
from routing import Channel, ContactCenter, IdentityHint, IdentityKind, InboundMessage, Task
from tests.bot.conftest import RunningBot
from tests.support.app import app_settings

pytestmark = pytest.mark.rasa


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], tmp_path: Path,
                 rasa_bot: RunningBot) -> AsyncIterator[TestClient]:
    settings = app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                            rasa_url=rasa_bot.url, rasa_token=rasa_bot.api_token,
                            bot="managed")
    yield await aiohttp_client(build_app(settings))


async def chat(center: ContactCenter, session: str, n: int, text: str) -> str:
    stored = await center.ingest(InboundMessage(
        Channel.CHAT, session, f"{session}-{n}", text,
        identity_hints=(IdentityHint(IdentityKind.CHAT_VISITOR, f"visitor-{session}"),)))
    for _ in range(400):
        if not center._background:
            break
        await asyncio.sleep(0.025)
    return stored.conversation_id


async def bot_lines(center: ContactCenter, conversation_id: str) -> list[str]:
    return [m.body for m in await center.messages(conversation_id) if m.author == "bot"]


async def test_a_thai_question_gets_a_thai_answer_from_the_bot(client: TestClient) -> None:
    center: ContactCenter = client.server.app[CENTER_KEY]
    conversation = await chat(center, "s-th", 1, "ทำบัตรประชาชนใหม่ต้องใช้อะไรบ้าง")
    lines = await bot_lines(center, conversation)
    assert lines and any("\u0e00" <= ch <= "\u0e7f" for ch in lines[0])
    assert (await center.conversation(conversation)).status == "bot"
    case = await center.case((await center.conversation(conversation)).case_id)
    assert case.category == "id_card"


async def test_an_english_question_gets_an_english_answer(client: TestClient) -> None:
    center: ContactCenter = client.server.app[CENTER_KEY]
    conversation = await chat(center, "s-en", 1, "How do I renew my ID card?")
    lines = await bot_lines(center, conversation)
    assert lines and not any("\u0e00" <= ch <= "\u0e7f" for ch in lines[0])


async def test_asking_for_a_person_hands_the_chat_to_people_with_the_intent(
    client: TestClient,
) -> None:
    center: ContactCenter = client.server.app[CENTER_KEY]
    conversation = await chat(center, "s-human", 1, "ขอคุยกับเจ้าหน้าที่ค่ะ")
    tasks, _ = await center.list_rows(Task, Task.conversation_id == conversation)
    assert len(tasks) == 1
    assert tasks[0].attributes["intent"] == "request_human"
    assert tasks[0].attributes["intent_ranking"][0]["name"] == "request_human"
    assert (await center.conversation(conversation)).status == "queued"


async def test_an_urgent_cry_for_help_goes_to_social_work_at_once(client: TestClient) -> None:
    center: ContactCenter = client.server.app[CENTER_KEY]
    conversation = await chat(center, "s-urgent", 1, "ช่วยด้วย ถูกสามีทำร้ายร่างกาย")
    tasks, _ = await center.list_rows(Task, Task.conversation_id == conversation)
    assert tasks and tasks[0].attributes["urgent"] is True
    assert tasks[0].queue_id == "social_work"
