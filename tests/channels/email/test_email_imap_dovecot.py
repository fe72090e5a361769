"""IMAP poller against a real, private Dovecot: exactly once, across restarts, with IDLE."""

from __future__ import annotations

import asyncio
import time

import aioimaplib
import pytest

from channels.email.config import ImapConfig
from channels.email.imap import ImapPoller
from channels.email.testing.dovecot import DovecotServer
from channels.email.testing.memory import MemoryImapState, MemorySink, SinkUnavailable


def _config(server: DovecotServer, **overrides: object) -> ImapConfig:
    values: dict[str, object] = {
        "host": server.host, "port": server.port, "use_tls": False, "username": server.user,
        "password": server.password, "queue": "imap-general", "poll_interval_seconds": 0.2,
        "command_timeout_seconds": 10,
    }
    values.update(overrides)
    return ImapConfig.model_validate(values)


def _message(number: int) -> bytes:
    return (
        f"From: citizen{number}@example.co.th\r\nTo: help@onestop.go.th\r\n"
        f"Subject: =?utf-8?B?4LiX4LiU4Liq4Lit4Lia?= {number}\r\n"
        f"Message-ID: <imap-{number}@example.co.th>\r\n\r\nข้อความที่ {number}\r\n"
    ).encode()


async def _append(server: DovecotServer, *numbers: int, mailbox: str = "INBOX") -> None:
    client = aioimaplib.IMAP4(server.host, server.port, timeout=10)
    await client.wait_hello_from_server()
    assert (await client.login(server.user, server.password)).result == "OK"
    for number in numbers:
        response = await client.append(_message(number), mailbox=mailbox)
        assert response.result == "OK", response
    await client.logout()


async def _admin(server: DovecotServer, *commands: str) -> None:
    client = aioimaplib.IMAP4(server.host, server.port, timeout=10)
    await client.wait_hello_from_server()
    await client.login(server.user, server.password)
    for command in commands:
        verb, _, name = command.partition(" ")
        response = await (client.create(name) if verb == "CREATE" else client.delete(name))
        assert response.result == "OK", (command, response)
    await client.logout()


async def test_each_message_is_fetched_exactly_once_and_survives_restart(
    dovecot: DovecotServer, sink: MemorySink, imap_state: MemoryImapState
) -> None:
    await _append(dovecot, 1, 2, 3)
    first = ImapPoller(_config(dovecot), sink, imap_state)
    assert await first.poll_once() == 3
    assert await first.poll_once() == 0
    assert sink.calls == 3
    assert [m.body_text for m in sink.messages] == [f"ข้อความที่ {n}" for n in (1, 2, 3)]
    assert sink.messages[0].subject == "ทดสอบ 1"
    _, envelope = sink.stored["<imap-1@example.co.th>"]
    assert envelope.transport == "imap" and envelope.uid == 1 and envelope.queue == "imap-general"

    # "Restart": a new poller with the same durable state fetches nothing old, only new mail.
    await _append(dovecot, 4, 5)
    second = ImapPoller(_config(dovecot), sink, imap_state)
    assert await second.poll_once() == 2
    assert sink.calls == 5 and len(sink.stored) == 5
    state = next(iter(imap_state.positions.values()))
    assert state.last_uid == 5


async def test_sink_failure_does_not_advance_the_position(
    dovecot: DovecotServer, sink: MemorySink, imap_state: MemoryImapState
) -> None:
    await _append(dovecot, 1, 2)
    poller = ImapPoller(_config(dovecot), sink, imap_state)
    sink.fail = True
    with pytest.raises(SinkUnavailable):
        await poller.poll_once()
    assert imap_state.positions == {}
    sink.fail = False
    assert await poller.poll_once() == 2
    assert len(sink.stored) == 2


async def test_running_poller_survives_a_sink_outage(
    dovecot: DovecotServer, sink: MemorySink, imap_state: MemoryImapState
) -> None:
    await _append(dovecot, 1)
    sink.fail = True
    poller = ImapPoller(_config(dovecot), sink, imap_state)
    stop = asyncio.Event()
    running = asyncio.create_task(poller.run(stop))
    try:
        deadline = time.monotonic() + 10
        while sink.calls == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert not running.done()
        sink.fail = False  # storage is back; the poller retries after its backoff
        await asyncio.wait_for(sink.arrived.wait(), 10)
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
    assert list(sink.stored) == ["<imap-1@example.co.th>"]


async def test_uidvalidity_change_rereads_and_sink_dedupes(
    dovecot: DovecotServer, sink: MemorySink, imap_state: MemoryImapState
) -> None:
    await _admin(dovecot, "CREATE Citizens")
    await _append(dovecot, 1, 2, mailbox="Citizens")
    poller = ImapPoller(_config(dovecot, mailbox="Citizens"), sink, imap_state)
    assert await poller.poll_once() == 2
    before = next(iter(imap_state.positions.values()))
    # The mailbox is recreated (as after a restore): new UIDVALIDITY, UIDs start again at 1.
    await _admin(dovecot, "DELETE Citizens", "CREATE Citizens")
    await _append(dovecot, 1, 2, 3, mailbox="Citizens")
    assert await poller.poll_once() == 3  # everything in the new mailbox is re-read …
    assert len(sink.stored) == 3 and sink.calls == 5  # … and the two old ones deduped
    after = next(iter(imap_state.positions.values()))
    assert after.uidvalidity != before.uidvalidity and after.last_uid == 3


async def test_idle_picks_up_a_new_message_quickly(
    dovecot: DovecotServer, sink: MemorySink, imap_state: MemoryImapState
) -> None:
    await _append(dovecot, 1)
    poller = ImapPoller(_config(dovecot, poll_interval_seconds=600), sink, imap_state)
    stop = asyncio.Event()
    running = asyncio.create_task(poller.run(stop))
    try:
        await asyncio.wait_for(sink.arrived.wait(), 10)
        # Wait until the poller sits in IDLE (a 600 s poll interval would never find it).
        deadline = time.monotonic() + 10
        while not (poller._client is not None and poller._client.has_pending_idle()):
            assert time.monotonic() < deadline, "poller never entered IDLE"
            await asyncio.sleep(0.05)
        sink.arrived.clear()
        started = time.monotonic()
        await _append(dovecot, 2)
        await asyncio.wait_for(sink.arrived.wait(), 10)
        latency = time.monotonic() - started
        print(f"IDLE delivery latency {latency:.2f}s")
        assert latency < 5
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
    assert len(sink.stored) == 2 and sink.calls == 2


async def test_polling_without_idle_picks_up_new_mail(
    dovecot: DovecotServer, sink: MemorySink, imap_state: MemoryImapState
) -> None:
    poller = ImapPoller(_config(dovecot, use_idle=False), sink, imap_state)
    stop = asyncio.Event()
    running = asyncio.create_task(poller.run(stop))
    try:
        await asyncio.sleep(0.5)
        await _append(dovecot, 7)
        await asyncio.wait_for(sink.arrived.wait(), 10)
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
    assert list(sink.stored) == ["<imap-7@example.co.th>"]


async def test_wrong_password_is_reported_and_retried(
    dovecot: DovecotServer, sink: MemorySink, imap_state: MemoryImapState
) -> None:
    poller = ImapPoller(_config(dovecot, password="wrong"), sink, imap_state)
    with pytest.raises(Exception, match="LOGIN failed"):
        await poller.poll_once()
