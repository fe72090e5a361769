"""The console's part of the chat relay: who works on a conversation comes from the
router's memory (no query per message), and a reply is answered with the message that was
stored (not read back)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from agent_console.api_console import holds_conversation
from agent_console.console import HUB_KEY
from agent_console.live import LiveHub
from routing import ContactCenter, Message, MessageStored, StaffIdentity
from tests.agent_console.test_console_live import (
    app_client,  # noqa: F401 - the fixture
    center_of,
    drain,
    email,
    next_of,
)


@contextmanager
def statements(center: ContactCenter) -> Iterator[list[str]]:
    seen: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    engine = center.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)


#: What the hub and the reply route used to run per message: the holders' query
#: (`agents_on`), a task's conversation, a message read back. (The router's own timers may
#: run other queries at the same moment, so only these shapes are looked for.)
RELAY_SHAPES = ("SELECT tasks.agent_id FROM tasks", "SELECT tasks.id, tasks.conversation_id FROM",
                "SELECT messages.")


def relay_queries(seen: list[str]) -> list[str]:
    flat = [" ".join(sql.split()) for sql in seen]
    return [sql for sql in flat if sql.startswith(RELAY_SHAPES)]


async def accepted_email(client: Any, ws: Any, key: str) -> tuple[str, str]:
    """An email conversation the signed-in agent of `client` accepted: (conversation, task)."""
    center = center_of(client)
    result = await email(center, key)
    offer = await next_of(ws, "offer")
    accepted = await client.post(f"/api/v1/tasks/{offer['task_id']}/accept",
                                 headers={"X-CSRF-Token": client.csrf})
    assert accepted.status == 200, await accepted.text()
    await next_of(ws, "task", event="TaskAccepted")
    return result.conversation_id, offer["task_id"]


def stored(conversation_id: str, seq: int, body: str) -> MessageStored:
    return MessageStored(f"m{seq}", conversation_id, "case", "citizen", "email", "inbound",
                         "citizen", seq, body)


async def test_a_message_reaches_the_agent_who_holds_it_without_a_query(
    app_client: Callable[[str, str], Any],  # noqa: F811
) -> None:
    somsri = await app_client("somsri", "demo-agent-1")
    anan = await app_client("anan", "demo-agent-2")
    ws_somsri = await somsri.ws_connect("/console/ws")
    ws_anan = await anan.ws_connect("/console/ws")
    await somsri.put("/api/v1/agents/me/presence", json={"presence": "available"},
                     headers={"X-CSRF-Token": somsri.csrf})
    await next_of(ws_somsri, "presence", presence="available")
    conversation_id, _ = await accepted_email(somsri, ws_somsri, "hot-1")
    center = center_of(somsri)
    hub = somsri.server.app[HUB_KEY]

    with statements(center) as seen:
        await hub.dispatch(stored(conversation_id, 7, "มาจากความจำ"))
        await hub.dispatch(stored("not-held-by-anyone", 1, "ไม่มีใครรับ"))
    assert relay_queries(seen) == []
    message = await next_of(ws_somsri, "message", conversation_id=conversation_id, seq=7)
    assert message["body"] == "มาจากความจำ"
    assert [e for e in await drain(ws_anan) if e["type"] == "message"] == []

    me = StaffIdentity(hub_agent(hub), "somsri", "Somsri", ("agent",), "csrf", "session")
    with statements(center) as seen:
        assert await holds_conversation(center, me, conversation_id)
        assert not await holds_conversation(center, me, "not-held-by-anyone")
    assert relay_queries(seen) == []
    for ws in (ws_somsri, ws_anan):
        await ws.close()


def hub_agent(hub: LiveHub) -> str:
    (agent_id,) = {c.staff.agent_id for c in hub.connections if c.staff.username == "somsri"}
    return agent_id


async def test_a_hub_started_after_the_acceptance_still_finds_the_holder(
    app_client: Callable[[str, str], Any],  # noqa: F811
) -> None:
    """A node whose console hub started late (it never saw the task accepted) learns the
    held tasks from the router, with one query for their conversations."""
    somsri = await app_client("somsri", "demo-agent-1")
    ws = await somsri.ws_connect("/console/ws")
    await somsri.put("/api/v1/agents/me/presence", json={"presence": "available"},
                     headers={"X-CSRF-Token": somsri.csrf})
    await next_of(ws, "presence", presence="available")
    conversation_id, task_id = await accepted_email(somsri, ws, "hot-2")
    center = center_of(somsri)
    late = LiveHub(center)
    late._tasks = type(late._tasks)(center)  # as on a node that never saw this task
    await late.start()
    try:
        holders = await late.holders(conversation_id)
        assert len(holders) == 1 and late._tasks.of(task_id) == conversation_id
        with statements(center) as seen:
            assert await late.holders(conversation_id) == holders
        assert relay_queries(seen) == []
    finally:
        await late.stop()
    await ws.close()


async def test_a_reply_is_answered_with_the_stored_message(
    app_client: Callable[[str, str], Any],  # noqa: F811
) -> None:
    somsri = await app_client("somsri", "demo-agent-1")
    anan = await app_client("anan", "demo-agent-2")
    ws = await somsri.ws_connect("/console/ws")
    await somsri.put("/api/v1/agents/me/presence", json={"presence": "available"},
                     headers={"X-CSRF-Token": somsri.csrf})
    await next_of(ws, "presence", presence="available")
    conversation_id, _ = await accepted_email(somsri, ws, "hot-3")
    center = center_of(somsri)

    with statements(center) as seen:
        posted = await somsri.post(f"/api/v1/conversations/{conversation_id}/messages",
                                   json={"body": "รับเรื่องแล้วค่ะ"},
                                   headers={"X-CSRF-Token": somsri.csrf})
    assert posted.status == 201, await posted.text()
    body = await posted.json()
    async with center.db.sessions() as s:
        row = await s.get(Message, body["id"])
    assert row is not None
    assert body["seq"] == row.seq and body["delivery"] == row.delivery
    assert body["body"] == "รับเรื่องแล้วค่ะ" and body["author"] == "agent"
    # Nothing reads the message back, nor the tasks to find the holder (the router's
    # timers may run their own queries meanwhile: only the reply's shapes are checked).
    flat = [" ".join(sql.split()) for sql in seen]
    assert not any("FROM messages WHERE messages.id = " in sql for sql in flat), flat
    assert not any(sql.startswith(RELAY_SHAPES[:2]) for sql in flat), flat

    # Someone else's conversation: 403; an unknown one: 404.
    other = await anan.post(f"/api/v1/conversations/{conversation_id}/messages",
                            json={"body": "x"}, headers={"X-CSRF-Token": anan.csrf})
    assert other.status == 403
    unknown = await somsri.post("/api/v1/conversations/nope/messages", json={"body": "x"},
                                headers={"X-CSRF-Token": somsri.csrf})
    assert unknown.status == 404
    await ws.close()
