"""The chat relay's hot path: a live message goes to the citizen's socket from its event,
and the store is read only on a gap in the sequence (or on resume)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from routing import Author, Conversation, Message, MessageStored
from tests.channels.webchat.conftest import center_of, hub_of, new_visitor, open_chat


def count_reads(client: TestClient) -> dict[str, int]:
    """Count the hub's reads of the store (`center.messages`) from now on."""
    center = center_of(client)
    reads = {"n": 0}
    original = center.messages

    async def messages(*args: Any, **kwargs: Any) -> list[Message]:
        reads["n"] += 1
        return await original(*args, **kwargs)

    center.messages = messages  # type: ignore[method-assign]
    return reads


async def test_live_messages_go_out_from_their_events_as_the_store_would_show_them(
    client: TestClient,
) -> None:
    center, hub = center_of(client), hub_of(client)
    sock, _ = await open_chat(client, new_visitor())
    await sock.say("สอบถามเรื่องบัตรค่ะ")
    await sock.message(lambda f: f["seq"] == 2)  # echo (1), the bot's answer (2)
    conversation_id = (await center.list_rows(Conversation))[0][0].id

    reads = count_reads(client)
    client_id = await sock.say("ต่ออายุที่ไหนคะ")
    echo = await sock.message(lambda f: f["seq"] == 3)
    ack = await sock.next("ack")
    answer = await sock.message(lambda f: f["seq"] == 4)
    await center.send_message(conversation_id, "บันทึกภายใน", author=Author.AGENT,
                              internal=True)  # seq 5: never shown
    await center.send_message(conversation_id, "ตอบจากเจ้าหน้าที่", author=Author.AGENT,
                              author_name="Somsri")
    reply = await sock.message(lambda f: f["seq"] == 6)
    await sock.drain(0.3)
    assert reads["n"] == 0  # echo, the bot's answer, the agent's reply: all from events
    assert echo["client_id"] == client_id and ack["seq"] == 3 and not ack["duplicate"]
    assert [b["title"] for b in answer["buttons"]] == ["ต่ออายุบัตร", "บัตรหาย"]
    assert [m["seq"] for m in sock.messages()] == [1, 2, 3, 4, 6]

    # Each frame is exactly what the store gives for that message.
    rows = {m.seq: m for m in await center.messages(conversation_id)}
    for frame in (echo, answer, reply):
        assert frame == await hub.message_frame(rows[frame["seq"]])


async def test_a_gap_in_the_sequence_makes_the_socket_read_the_store(
    client: TestClient,
) -> None:
    center, hub = center_of(client), hub_of(client)
    sock, _ = await open_chat(client, new_visitor())
    await sock.say("สอบถามค่ะ")
    await sock.message(lambda f: f["seq"] == 2)
    conversation_id = (await center.list_rows(Conversation))[0][0].id

    # Message 3 is stored, but neither its event nor its delivery reaches this node
    # (lost, or still on its way from another node).
    publish, deliver = center.bus.publish, hub.deliver

    async def drop_message_events(event: Any) -> None:
        if not isinstance(event, MessageStored):
            await publish(event)

    async def nowhere(message: Any) -> str | None:
        return None

    center.bus.publish = drop_message_events  # type: ignore[method-assign]
    hub.deliver = nowhere  # type: ignore[method-assign]
    await center.send_message(conversation_id, "ข้อความที่ 3", author=Author.AGENT,
                              author_name="Somsri")
    center.bus.publish, hub.deliver = publish, deliver  # type: ignore[method-assign]
    await sock.drain(0.3)
    assert [m["seq"] for m in sock.messages()] == [1, 2]

    reads = count_reads(client)
    await center.send_message(conversation_id, "ข้อความที่ 4", author=Author.AGENT,
                              author_name="Somsri")
    await sock.message(lambda f: f["seq"] == 4)
    await sock.drain(0.3)
    assert reads["n"] == 1  # 4 came after 2: one read brought 3 and 4, in order
    assert [(m["seq"], m["text"]) for m in sock.messages()][2:] == [
        (3, "ข้อความที่ 3"), (4, "ข้อความที่ 4")]

    # An event that arrives late (3 again) or twice is not sent again.
    (conn,) = hub._sockets[conversation_id]
    rows = {m.seq: m for m in await center.messages(conversation_id)}
    for seq in (3, 4):
        m = rows[seq]
        await hub._on_message_stored(MessageStored(
            m.id, conversation_id, "case", "citizen", "chat", m.direction, m.author, m.seq,
            m.body, m.author_name, False, created_at=m.created_at, extra=m.extra))
    await sock.drain(0.3)
    assert [m["seq"] for m in sock.messages()] == [1, 2, 3, 4]
    assert conn.sent_seq == 4


async def test_an_event_without_the_stored_row_falls_back_to_the_store(
    client: TestClient,
) -> None:
    """An older node's event (no `created_at`) or an agent's message without a name: the
    frame comes from the store, as before."""
    center = center_of(client)
    sock, _ = await open_chat(client, new_visitor())
    await sock.say("สอบถามค่ะ")
    await sock.message(lambda f: f["seq"] == 2)
    conversation_id = (await center.list_rows(Conversation))[0][0].id
    reads = count_reads(client)
    await center.send_message(conversation_id, "ไม่มีชื่อ", author=Author.AGENT)
    frame = await sock.message(lambda f: f["seq"] == 3)
    assert reads["n"] == 1 and frame["text"] == "ไม่มีชื่อ"
