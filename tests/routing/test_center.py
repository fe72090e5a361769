"""The core's public API on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from routing import (
    Author,
    Channel,
    ContactCenter,
    DeliveryError,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    InvalidIdentity,
    OutboundMessage,
    Presence,
    TaskStatus,
)
from routing.storage.tables import Citizen, Identity, Message, Task
from tests.routing.helpers import settle


class RecordingAdapter:
    """An adapter that records deliveries; can be told to fail the first N."""

    def __init__(self, channel: Channel, failures: int = 0) -> None:
        self.channel = channel
        self.failures = failures
        self.sent: list[OutboundMessage] = []

    async def deliver(self, message: OutboundMessage) -> str | None:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("provider answered 503")
        self.sent.append(message)
        return f"p-{len(self.sent)}"


def email(msg_id: str, thread: str = "thread-1", body: str = "ขอต่ออายุบัตรประชาชนค่ะ",
          sender: str = "Somchai@Example.CO.TH") -> InboundMessage:
    return InboundMessage(
        channel=Channel.EMAIL, conversation_key=thread, message_id=msg_id, body=body,
        identity_hints=(IdentityHint(IdentityKind.EMAIL, sender),), subject="บัตรประชาชน",
    )


async def add_agent(center: ContactCenter, username: str = "somsri", **overrides: object) -> str:
    values: dict = {
        "username": username, "display_name": username.title(), "password_hash": "x",
        "roles": ["agent"], "skills": {"general": 5, "registration": 3},
        "languages": ["th", "en"], "capacity": {"voice": 1, "chat": 3, "email": 5},
    }
    values.update(overrides)
    return await center.upsert_agent(**values)



async def test_the_same_provider_message_twice_is_stored_once(center: ContactCenter) -> None:
    first = await center.ingest(email("<m1@example.co.th>"))
    again = await center.ingest(email("<m1@example.co.th>"))
    assert again.duplicate and not first.duplicate
    assert again.message_id == first.message_id
    async with center.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Message)) == 1


async def test_concurrent_redeliveries_store_one_message(center: ContactCenter) -> None:
    results = await asyncio.gather(*(center.ingest(email("<race@x.th>")) for _ in range(8)))
    assert len({r.message_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    await settle(center)


async def test_messages_of_one_thread_share_conversation_case_and_citizen(
    center: ContactCenter,
) -> None:
    a = await center.ingest(email("<a@x.th>"))
    b = await center.ingest(email("<b@x.th>", sender="somchai@example.co.th"))
    assert (a.conversation_id, a.case_id, a.citizen_id) == (b.conversation_id, b.case_id, b.citizen_id)
    assert (a.sequence, b.sequence) == (1, 2)
    assert a.case_number.startswith("OS-2026-")
    async with center.db.sessions() as s:
        identity = await s.scalar(select(Identity))
        assert identity is not None and identity.value == "Somchai@example.co.th"
    await settle(center)


async def test_case_numbers_count_up_per_year(center: ContactCenter) -> None:
    one = await center.ingest(email("<1@x.th>", thread="t1"))
    two = await center.ingest(email("<2@x.th>", thread="t2", sender="other@x.th"))
    assert one.case_number == "OS-2026-000001"
    assert two.case_number == "OS-2026-000002"
    await settle(center)


async def test_an_invalid_identity_is_refused_and_nothing_is_stored(center: ContactCenter) -> None:
    bad = InboundMessage(Channel.KIOSK, "visit-1", "e1", "hello",
                         identity_hints=(IdentityHint(IdentityKind.NATIONAL_ID, "1234567890123",
                                                      "smart_card"),))
    with pytest.raises(InvalidIdentity, match="checksum"):
        await center.ingest(bad)
    async with center.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Citizen)) == 0
        assert await s.scalar(select(func.count()).select_from(Message)) == 0


async def test_email_goes_to_people_and_the_agent_reply_is_delivered(center: ContactCenter) -> None:
    adapter = RecordingAdapter(Channel.EMAIL)
    center.register_adapter(adapter)
    agent = await add_agent(center)
    await center.set_presence(agent, Presence.AVAILABLE)
    result = await center.ingest(email("<hello@x.th>"))
    await settle(center)
    async with center.db.sessions() as s:
        task = await s.scalar(select(Task))
    assert task is not None and task.status == "reserved" and task.agent_id == agent
    assert task.attributes["case_number"] == result.case_number
    await center.accept_task(task.id, agent)
    await center.send_message(result.conversation_id, "ได้รับเรื่องแล้วค่ะ", author=Author.AGENT,
                              author_id=agent, author_name="Somsri")
    assert [m.body for m in adapter.sent] == ["ได้รับเรื่องแล้วค่ะ"]
    case = await center.case(result.case_id)
    assert case.first_response_at is not None and case.status == "open"
    await center.complete_task(task.id, agent, wrap_code="answered", wrap_up=False)
    done = await center.task(task.id)
    assert done.status == "completed" and done.wrap_code == "answered"


async def test_a_failed_delivery_is_retried_until_the_provider_takes_it(
    center: ContactCenter, clock: object
) -> None:
    adapter = RecordingAdapter(Channel.EMAIL, failures=2)
    center.register_adapter(adapter)
    result = await center.ingest(email("<retry@x.th>"))
    await settle(center)
    await center.stop()  # the test moves the clock and retries by hand, not the timer
    await center.send_message(result.conversation_id, "reply", author=Author.AGENT)
    assert adapter.sent == []
    for _ in range(3):
        clock.advance(60)  # type: ignore[attr-defined]
        await center.retry_deliveries()
    assert [m.body for m in adapter.sent] == ["reply"]
    messages = await center.messages(result.conversation_id)
    assert messages[-1].delivery == "sent"


async def test_an_offer_nobody_answers_goes_back_and_the_miss_is_recorded(
    center: ContactCenter, clock: object
) -> None:
    first = await add_agent(center, "first")
    await center.set_presence(first, Presence.AVAILABLE)
    await center.ingest(email("<miss@x.th>"))
    await settle(center)
    async with center.db.sessions() as s:
        task = await s.scalar(select(Task))
    assert task is not None and task.agent_id == first
    second = await add_agent(center, "second")
    await center.set_presence(second, Presence.AVAILABLE)
    clock.advance(61)  # type: ignore[attr-defined]  # email reservation timeout is 60 s
    await center._route("tick")
    reloaded = await center.task(task.id)
    assert reloaded.status == "reserved" and reloaded.agent_id == second
    assert reloaded.missed_count == 1
    assert (await center.agent_record(first)).presence == "away"


async def test_after_a_restart_offered_tasks_are_offered_again(
    center: ContactCenter, settings: object, clock: object
) -> None:
    agent = await add_agent(center)
    await center.set_presence(agent, Presence.AVAILABLE)
    await center.ingest(email("<restart@x.th>"))
    await settle(center)
    await center.stop()
    restarted = ContactCenter(center.db, center.settings, clock=center.clock)
    await restarted.start()
    try:
        task = (await restarted.list_rows(Task))[0][0]
        assert task.status == "reserved" and task.agent_id == agent
        assert restarted.router.task(task.id).status is TaskStatus.RESERVED
    finally:
        await restarted.stop()


async def test_after_a_restart_citizens_who_came_in_the_same_instant_keep_their_order(
    center: ContactCenter,
) -> None:
    """The manual clock stands still, so every task is queued at the same instant: the
    router rebuilt at start (or on a take-over) must still serve them first come, first
    served, whatever order the database returns ties in (rows edited since come last)."""
    ids = []
    for n in range(5):
        await center.ingest(email(f"<tie{n}@x.th>", thread=f"tie{n}", sender=f"t{n}@x.th"))
        await settle(center)
        ids.append((await center.list_rows(Task, order_by=Task.created_at))[0][-1].id)
    for task_id in ids[:3]:  # edited: PostgreSQL now keeps these rows last
        await center.hand_to_people((await center.task(task_id)).conversation_id,
                                    reason="asked_again", context={"note": "again"})
    await center.stop()
    restarted = ContactCenter(center.db, center.settings, clock=center.clock)
    await restarted.start()
    try:
        assert [restarted.router.queue_position(i) for i in ids] == [1, 2, 3, 4, 5]
        agent = await add_agent(restarted)
        await restarted.set_presence(agent, Presence.AVAILABLE)
        assert restarted.router.task(ids[0]).status is TaskStatus.RESERVED
    finally:
        await restarted.stop()


async def test_waiting_citizens_get_a_position_and_an_estimated_wait(center: ContactCenter) -> None:
    ids = []
    for n in range(3):
        r = await center.ingest(email(f"<q{n}@x.th>", thread=f"q{n}", sender=f"c{n}@x.th"))
        ids.append(r.conversation_id)
    await settle(center)
    tasks, _ = await center.list_rows(Task, order_by=Task.created_at)
    positions = [center.queue_position(t.id)[0] for t in tasks]
    assert positions == [1, 2, 3]
    assert all(center.queue_position(t.id)[1] for t in tasks)


async def test_chat_without_a_bot_goes_to_people_and_the_citizen_is_told(
    center: ContactCenter,
) -> None:
    chat = RecordingAdapter(Channel.CHAT)
    center.register_adapter(chat)
    r = await center.ingest(InboundMessage(Channel.CHAT, "visit-abc", "c1", "สวัสดีค่ะ",
                                           identity_hints=(IdentityHint(
                                               IdentityKind.CHAT_VISITOR, "visitor-token-1"),)))
    await settle(center)
    assert chat.sent and "เจ้าหน้าที่" in chat.sent[0].body
    conv = await center.conversation(r.conversation_id)
    assert conv.status == "queued"
