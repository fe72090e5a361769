"""The outbound path after a message is routed: the outbox, its claims and its retries.

(Kept beside the router tests: the delivery functions of `ContactCenter` — `_deliver`,
`_claim`, `_mark_sent`, `_delivery_failed`, `_deliver_pending` — were collapsed into two
transactions per attempt, and these tests pin what that must not change: a message is
never sent twice, another attempt's or node's claim is respected until its lease ends,
failures back off and end, a channel without an adapter waits, the adapter gets the
threading ids and the case number.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, select

from routing import (
    Author,
    Channel,
    ContactCenter,
    DeliveryError,
    DeliveryFailed,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    OutboundMessage,
)
from routing.center import DELIVERY_BACKOFF, DELIVERY_LEASE
from routing.storage.tables import Message, OutboxEntry
from tests.conftest import ManualClock
from tests.routing.test_center import settle


class Adapter:
    """Records deliveries; can fail (`fail`), fail for good (`permanent`), or hold every
    delivery until `gate` is set."""

    def __init__(self, *, fail: int = 0, permanent: bool = False,
                 gate: asyncio.Event | None = None) -> None:
        self.channel = Channel.EMAIL
        self.fail, self.permanent, self.gate = fail, permanent, gate
        self.sent: list[OutboundMessage] = []
        self.attempts = 0
        self.entered = asyncio.Event()

    async def deliver(self, message: OutboundMessage) -> str | None:
        self.attempts += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise DeliveryError("provider answered 503", permanent=self.permanent)
        self.sent.append(message)
        return f"p-{len(self.sent)}"


def email(msg_id: str, body: str = "ขอต่ออายุบัตรประชาชนค่ะ") -> InboundMessage:
    return InboundMessage(
        channel=Channel.EMAIL, conversation_key="thread-outbox", message_id=msg_id, body=body,
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "somchai@example.co.th"),),
        subject="บัตรประชาชน",
    )


async def conversation(center: ContactCenter) -> str:
    result = await center.ingest(email("<first@x.th>"))
    await settle(center)
    await center.stop()  # the tests move the clock and retry by hand, not the timer
    return result.conversation_id


async def outbox(center: ContactCenter, message_id: str) -> OutboxEntry:
    async with center.db.sessions() as s:
        entry = await s.scalar(select(OutboxEntry).where(OutboxEntry.message_id == message_id))
    assert entry is not None
    return entry


async def delivery(center: ContactCenter, message_id: str) -> str:
    async with center.db.sessions() as s:
        message = await s.get_one(Message, message_id)
    return message.delivery


async def test_racing_attempts_deliver_a_message_once(
    center: ContactCenter, clock: ManualClock
) -> None:
    conv = await conversation(center)
    gate = asyncio.Event()
    adapter = Adapter(gate=gate)
    center.register_adapter(adapter)
    message_id = await center.send_message(conv, "reply", author=Author.AGENT,
                                           deliver_now=False)
    clock.advance(1)
    first = asyncio.ensure_future(center.retry_deliveries())
    await asyncio.wait_for(adapter.entered.wait(), 10)
    # While the first attempt is with the provider: the timer again, twice, and a
    # direct attempt find the entry claimed.
    await asyncio.gather(center.retry_deliveries(), center.retry_deliveries(),
                         center._deliver(message_id))
    gate.set()
    await first
    clock.advance(DELIVERY_LEASE.total_seconds() + 1)
    await center.retry_deliveries()  # sent: nothing left to take
    assert adapter.attempts == 1 and [m.body for m in adapter.sent] == ["reply"]
    entry = await outbox(center, message_id)
    assert entry.status == "sent" and entry.attempts == 1 and entry.provider_message_id == "p-1"
    assert await delivery(center, message_id) == "sent"


async def test_another_nodes_claim_holds_until_its_lease_ends(
    center: ContactCenter, clock: ManualClock
) -> None:
    conv = await conversation(center)
    stuck = Adapter(gate=asyncio.Event())  # this node claims, then dies mid-delivery
    center.register_adapter(stuck)
    other = ContactCenter(center.db, center.settings, clock=center.clock)
    taker = Adapter()
    other.register_adapter(taker)
    message_id = await center.send_message(conv, "reply", author=Author.AGENT,
                                           deliver_now=False)
    clock.advance(1)
    dying = asyncio.ensure_future(center.retry_deliveries())
    await asyncio.wait_for(stuck.entered.wait(), 10)
    dying.cancel()
    await asyncio.gather(dying, return_exceptions=True)
    assert (await outbox(center, message_id)).status == "sending"
    clock.advance(DELIVERY_LEASE.total_seconds() - 5)
    await other.retry_deliveries()
    assert taker.sent == [], "the other node took a message still under another's lease"
    clock.advance(10)
    await other.retry_deliveries()
    assert [m.body for m in taker.sent] == ["reply"]
    assert (await outbox(center, message_id)).status == "sent"
    await other.retry_deliveries()
    assert len(taker.sent) == 1


async def test_failures_back_off_and_the_last_one_is_final(
    center: ContactCenter, clock: ManualClock
) -> None:
    conv = await conversation(center)
    failed: list[DeliveryFailed] = []

    async def note(e: Any) -> None:
        failed.append(e)

    center.bus.subscribe(note, DeliveryFailed)
    adapter = Adapter(fail=100)
    center.register_adapter(adapter)
    message_id = await center.send_message(conv, "reply", author=Author.AGENT)
    assert adapter.attempts == 1
    for attempt, delay in enumerate(DELIVERY_BACKOFF, start=1):
        entry = await outbox(center, message_id)
        assert entry.status == "pending" and entry.attempts == attempt
        assert entry.last_error == "provider answered 503"
        clock.advance(delay - 0.5)
        await center.retry_deliveries()
        assert adapter.attempts == attempt, "retried before its back-off ran out"
        clock.advance(0.5)
        await center.retry_deliveries()
        assert adapter.attempts == attempt + 1
    entry = await outbox(center, message_id)
    assert entry.status == "failed" and entry.attempts == len(DELIVERY_BACKOFF) + 1
    assert await delivery(center, message_id) == "failed"
    assert [e.attempts for e in failed] == list(range(1, len(DELIVERY_BACKOFF) + 2))
    assert [e.final for e in failed] == [False] * len(DELIVERY_BACKOFF) + [True]
    clock.advance(3600)
    await center.retry_deliveries()
    assert adapter.attempts == len(DELIVERY_BACKOFF) + 1


async def test_a_permanent_failure_ends_at_once(center: ContactCenter, clock: ManualClock) -> None:
    conv = await conversation(center)
    adapter = Adapter(fail=1, permanent=True)
    center.register_adapter(adapter)
    message_id = await center.send_message(conv, "reply", author=Author.AGENT)
    entry = await outbox(center, message_id)
    assert entry.status == "failed" and entry.attempts == 1
    assert await delivery(center, message_id) == "failed"
    clock.advance(3600)
    await center.retry_deliveries()
    assert adapter.attempts == 1


async def test_without_an_adapter_the_message_waits_for_one(
    center: ContactCenter, clock: ManualClock
) -> None:
    conv = await conversation(center)
    message_id = await center.send_message(conv, "reply", author=Author.AGENT)
    clock.advance(60)
    await center.retry_deliveries()
    entry = await outbox(center, message_id)
    assert entry.status == "pending" and entry.attempts == 0
    assert await delivery(center, message_id) == "pending"
    adapter = Adapter()
    center.register_adapter(adapter)
    await center.retry_deliveries()
    assert [m.body for m in adapter.sent] == ["reply"]
    assert await delivery(center, message_id) == "sent"


async def test_the_adapter_gets_the_thread_and_the_case_number(
    center: ContactCenter, clock: ManualClock
) -> None:
    first = await center.ingest(email("<first@x.th>"))
    second = await center.ingest(email("<second@x.th>", body="ตามเรื่องค่ะ"))
    await settle(center)
    await center.stop()
    adapter = Adapter()
    center.register_adapter(adapter)
    await center.send_message(first.conversation_id, "ได้รับเรื่องแล้วค่ะ", author=Author.AGENT,
                              author_name="Somsri", extra={"cc": ["x@x.th"]})
    (sent,) = adapter.sent
    assert second.conversation_id == first.conversation_id
    assert sent.metadata["in_reply_to"] == ["<second@x.th>", "<first@x.th>"]
    assert sent.metadata["case_number"] == first.case_number
    assert sent.metadata["subject"] == "บัตรประชาชน" and sent.metadata["cc"] == ["x@x.th"]
    assert sent.author is Author.AGENT and sent.author_name == "Somsri"
    assert sent.conversation_key == "thread-outbox" and sent.channel is Channel.EMAIL


async def test_a_delivery_takes_two_transactions(center: ContactCenter, clock: ManualClock) -> None:
    """Claim and read in one transaction, record the outcome in another (it was five
    sessions and eleven statements)."""
    conv = await conversation(center)
    adapter = Adapter()
    center.register_adapter(adapter)
    await center.send_message(conv, "queued", author=Author.AGENT, deliver_now=False)
    clock.advance(1)
    counts = {"statements": 0, "transactions": 0}

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    def begin(*_: Any) -> None:
        counts["transactions"] += 1

    engine = center.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "begin", begin)
    try:
        await center.retry_deliveries()
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "begin", begin)
    assert [m.body for m in adapter.sent] == ["queued"]
    # the due list (1 read), claim + message/conversation/case + thread ids (3), sent (2)
    assert counts["transactions"] <= 3 and counts["statements"] <= 6, counts
