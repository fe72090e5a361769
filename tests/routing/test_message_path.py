"""The message hot path of the core: how many transactions and statements an inbound
message and a reply cost, and what an adapter that delivers locally gets.

(`ingest` reads nothing after its transaction for a conversation an agent works on; a reply
on a channel whose adapter delivers on this node — the web chat — is stored as sent in the
one transaction that stores it: no claim, no second commit.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select

from routing import (
    Author,
    Channel,
    ContactCenter,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    MessageStored,
    NotFound,
    OutboundMessage,
    Presence,
)
from routing.storage.tables import Message, OutboxEntry, Task
from tests.routing.test_center import RecordingAdapter, add_agent, settle


class LocalAdapter:
    """Delivers on this node and cannot fail (as the web chat)."""

    local_delivery = True

    def __init__(self) -> None:
        self.channel = Channel.CHAT
        self.sent: list[OutboundMessage] = []

    async def deliver(self, message: OutboundMessage) -> str | None:
        self.sent.append(message)
        return message.message_id


@contextmanager
def counting(center: ContactCenter) -> Iterator[dict[str, int]]:
    counts = {"statements": 0, "transactions": 0, "commits": 0}

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    def begin(*_: Any) -> None:
        counts["transactions"] += 1

    def commit(*_: Any) -> None:
        counts["commits"] += 1

    engine = center.db.engine.sync_engine
    listeners = (("before_cursor_execute", statement), ("begin", begin), ("commit", commit))
    for name, fn in listeners:
        event.listen(engine, name, fn)
    try:
        yield counts
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)


def chat(msg_id: str, body: str = "สอบถามเรื่องบัตรค่ะ") -> InboundMessage:
    return InboundMessage(
        channel=Channel.CHAT, conversation_key="visitor.session", message_id=msg_id, body=body,
        identity_hints=(IdentityHint(IdentityKind.CHAT_VISITOR, "wv_" + "a" * 40),),
    )


async def chat_with_agent(center: ContactCenter) -> tuple[str, str]:
    """A chat conversation an agent has accepted; (conversation id, agent id)."""
    agent = await add_agent(center)
    await center.set_presence(agent, Presence.AVAILABLE)
    first = await center.ingest(chat("c-1"))
    await settle(center)  # no bot: the citizen is told, and the chat goes to people
    async with center.db.sessions() as s:
        task = await s.scalar(select(Task).where(Task.conversation_id == first.conversation_id))
    assert task is not None and task.agent_id == agent
    await center.accept_task(task.id, agent)
    return first.conversation_id, agent


async def test_a_reply_through_a_local_adapter_is_one_transaction_and_stored_as_sent(
    center: ContactCenter,
) -> None:
    adapter = LocalAdapter()
    center.register_adapter(adapter)
    conversation_id, agent = await chat_with_agent(center)
    seen: list[MessageStored] = []

    async def keep(e: MessageStored) -> None:
        seen.append(e)

    center.bus.subscribe(keep, MessageStored)
    with counting(center) as counts:
        message = await center.send(conversation_id, "สวัสดีค่ะ", author=Author.AGENT,
                                    author_id=agent, author_name="Somsri")
    # conversation, case, message, outbox entry, conversation's count, case's first
    # response: one transaction, one commit (it was three transactions and ten statements)
    assert counts["transactions"] == 1 and counts["commits"] == 1, counts
    assert counts["statements"] <= 6, counts
    assert message.delivery == "sent" and message.body == "สวัสดีค่ะ"
    (sent,) = [m for m in adapter.sent if m.body == "สวัสดีค่ะ"]
    assert sent.message_id == message.id and sent.sequence == message.seq
    assert sent.author is Author.AGENT and sent.author_name == "Somsri"
    assert sent.metadata["case_number"] and sent.metadata["in_reply_to"] == []
    async with center.db.sessions() as s:
        stored = await s.get(Message, message.id)
        entry = await s.scalar(select(OutboxEntry).where(OutboxEntry.message_id == message.id))
    assert stored is not None and stored.delivery == "sent"
    assert entry is not None and entry.status == "sent" and entry.attempts == 1
    assert entry.sent_at is not None
    # The event carries the whole row, so that a subscriber need not read it back.
    (stored_event,) = [e for e in seen if e.message_id == message.id]
    assert stored_event.created_at == stored.created_at and stored_event.extra == {}
    # Nothing is left for the retry timer.
    with counting(center) as counts:
        await center.retry_deliveries()
    assert len([m for m in adapter.sent if m.body == "สวัสดีค่ะ"]) == 1
    assert counts["statements"] == 1  # the due list, empty


async def test_a_reply_through_a_remote_adapter_still_claims_and_reports_its_outcome(
    center: ContactCenter,
) -> None:
    adapter = RecordingAdapter(Channel.CHAT)
    center.register_adapter(adapter)
    conversation_id, agent = await chat_with_agent(center)
    adapter.failures = 1
    failed = await center.send(conversation_id, "ลองใหม่", author=Author.AGENT, author_id=agent)
    assert failed.delivery == "pending"  # the provider refused; the timer retries it
    sent = await center.send(conversation_id, "ได้แล้ว", author=Author.AGENT, author_id=agent)
    assert sent.delivery == "sent" and [m.body for m in adapter.sent][-1] == "ได้แล้ว"
    assert adapter.sent[-1].metadata["in_reply_to"] == ["c-1"]


async def test_sending_to_an_unknown_conversation_is_not_found(center: ContactCenter) -> None:
    with pytest.raises(NotFound):
        await center.send("nope", "hello", author=Author.AGENT)


async def test_an_inbound_message_to_an_agents_chat_is_one_transaction(
    center: ContactCenter,
) -> None:
    center.register_adapter(LocalAdapter())
    conversation_id, _ = await chat_with_agent(center)
    seen: list[MessageStored] = []

    async def keep(e: MessageStored) -> None:
        seen.append(e)

    center.bus.subscribe(keep, MessageStored)
    with counting(center) as counts:
        result = await center.ingest(chat("c-2", "ขอบคุณค่ะ"))
        await settle(center)  # what runs after the message is safe reads nothing more
    assert result.conversation_id == conversation_id and not result.duplicate
    assert counts["transactions"] == 1 and counts["commits"] == 1, counts
    # conversation, the citizen's identity and record, case, message, conversation's
    # count (a redelivery is caught by the unique key, not looked for first)
    assert counts["statements"] <= 6, counts
    (stored,) = seen
    assert stored.provider_message_id == "c-2" and stored.created_at is not None
    assert stored.extra and stored.extra["language"] == "th"
    # A redelivery is stored once and publishes nothing.
    again = await center.ingest(chat("c-2", "ขอบคุณค่ะ"))
    assert again.duplicate and again.message_id == result.message_id and len(seen) == 1


async def test_a_queued_conversation_without_a_task_is_handed_to_people_again(
    center: ContactCenter,
) -> None:
    """The open-task check moved into the message's transaction: a citizen who writes to
    a queued conversation whose task ended still gets a new task."""
    email = InboundMessage(
        channel=Channel.EMAIL, conversation_key="t-1", message_id="<1@x.th>", body="ขอเอกสาร",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "a@x.th"),))
    first = await center.ingest(email)
    await settle(center)
    async with center.db.sessions() as s:
        task = await s.scalar(select(Task).where(Task.conversation_id == first.conversation_id))
    assert task is not None
    await center.ingest(_again(email, "<2@x.th>"))
    await settle(center)
    async with center.db.sessions() as s:
        count = len((await s.scalars(select(Task).where(
            Task.conversation_id == first.conversation_id))).all())
    assert count == 1  # the open task is found: no second one
    await center._route("end", task_id=task.id, reason="canceled")
    await center.ingest(_again(email, "<3@x.th>"))
    await settle(center)
    async with center.db.sessions() as s:
        count = len((await s.scalars(select(Task).where(
            Task.conversation_id == first.conversation_id))).all())
    assert count == 2


def _again(message: InboundMessage, message_id: str) -> InboundMessage:
    return dataclasses.replace(message, message_id=message_id)
