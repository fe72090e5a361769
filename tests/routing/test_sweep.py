"""The leader's sweep: a citizen's message that was acknowledged but never answered (its node
died before the bot replied or the hand-off was made) is handed to people after a minute;
answered conversations and fresh messages are left alone."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from routing import (
    Author,
    Channel,
    ContactCenter,
    InboundMessage,
    Presence,
    Task,
    TaskOffered,
)
from tests.conftest import ManualClock
from tests.routing.helpers import settle


async def _stored_then_crashed(center: ContactCenter, monkeypatch: pytest.MonkeyPatch,
                               text: str = "ขอคุยกับเจ้าหน้าที่") -> str:
    """A chat message stored and acknowledged by a node that died right after."""

    async def died(*args: object) -> None:
        return None

    with monkeypatch.context() as patch:
        patch.setattr(center, "_after_inbound", died)
        result = await center.ingest(InboundMessage(
            channel=Channel.CHAT, message_id=secrets.token_hex(8),
            conversation_key=secrets.token_hex(8), body=text))
    return result.conversation_id


async def _tasks(center: ContactCenter, conversation_id: str) -> list[Task]:
    async with center.db.sessions() as s:
        return list((await s.scalars(select(Task).where(
            Task.conversation_id == conversation_id))).all())


async def test_an_unanswered_message_goes_to_people_after_a_minute(
        center: ContactCenter, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = await _stored_then_crashed(center, monkeypatch)
    # Died between the "assistant unavailable" notice and the hand-off: the notice is the
    # conversation's last message, and it is no answer.
    noticed = await _stored_then_crashed(center, monkeypatch)
    await center.send_message(noticed, "ระบบผู้ช่วยอัตโนมัติไม่พร้อมใช้งาน", author=Author.SYSTEM)
    answered = await _stored_then_crashed(center, monkeypatch)
    await center.send_message(answered, "สวัสดีค่ะ มีอะไรให้ช่วยคะ", author=Author.BOT)

    clock.current += timedelta(seconds=30)
    await center._sweep()
    assert await _tasks(center, plain) == [] and await _tasks(center, noticed) == []

    clock.current += timedelta(seconds=31)
    await center._sweep()
    for conversation in (plain, noticed):
        tasks = await _tasks(center, conversation)
        assert [t.reason for t in tasks] == ["unanswered"], conversation
    assert await _tasks(center, answered) == []

    await center._sweep()  # once only
    assert len(await _tasks(center, plain)) == 1


async def test_a_late_duplicate_submission_of_a_finished_task_routes_nothing(
        center: ContactCenter) -> None:
    """In a cluster a task's submission can reach the leader after the sweep routed the task
    and an officer finished it: it must not be offered (and accepted) a second time."""
    agent_id = await center.upsert_agent(
        username="late-dup", display_name="Late Dup", password_hash="x", roles=["agent"],
        skills={"general": 5}, languages=["th", "en"], capacity={"chat": 2})
    await center.set_presence(agent_id, Presence.AVAILABLE)
    result = await center.ingest(InboundMessage(
        channel=Channel.CHAT, message_id=secrets.token_hex(8),
        conversation_key=secrets.token_hex(8), body="ขอคุยกับเจ้าหน้าที่"))
    conversation = result.conversation_id
    task_id = await center.hand_to_people(conversation, reason="asked_for_agent")
    await center.accept_task(task_id, agent_id)
    await center.complete_task(task_id, agent_id, wrap_up=False)
    assert not center.router.has_task(task_id)
    offers: list[object] = []

    async def offered(event: object) -> None:
        if isinstance(event, TaskOffered):
            offers.append(event)

    center.bus.subscribe(offered)
    await center.execute("submit", {"task_id": task_id, "channel": "chat",
                                    "attributes": {}, "enqueued_at": 0.0})
    assert offers == [] and not center.router.has_task(task_id)


async def test_hand_offs_racing_for_one_conversation_make_one_task(
        center: ContactCenter) -> None:
    """The citizen asks for an officer while the bot's own hand-off (or the sweep, or a
    second node) is under way: however many hand-offs race, the conversation gets one open
    task, so no two officers are offered the same citizen."""
    agent_id = await center.upsert_agent(
        username="race", display_name="Race", password_hash="x", roles=["agent"],
        skills={"general": 5}, languages=["th", "en"], capacity={"chat": 4})
    await center.set_presence(agent_id, Presence.AVAILABLE)
    for _ in range(3):
        result = await center.ingest(InboundMessage(
            channel=Channel.CHAT, message_id=secrets.token_hex(8),
            conversation_key=secrets.token_hex(8), body="ขอคุยกับเจ้าหน้าที่"))
        conversation = result.conversation_id
        ids = await asyncio.gather(*(
            center.hand_to_people(conversation, reason=reason)
            for reason in ("asked_for_agent", "bot_handoff", "unanswered", "citizen_asked")))
        await settle(center)
        async with center.db.sessions() as s:
            rows = (await s.scalars(select(Task).where(
                Task.conversation_id == conversation))).all()
        assert [row.id for row in rows] == [ids[0]], (ids, [row.id for row in rows])
        assert set(ids) == {ids[0]}
        assert center.router.task(ids[0]).agent_id == agent_id
    assert len(center.router.agent(agent_id).held) == 3
