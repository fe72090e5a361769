"""The citizen socket on the real app: send, bot replies, hand-off, queue, agent, resume."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from channels.webchat import Limits, TypingChanged, visitor_identity
from routing import (
    Author,
    Case,
    Conversation,
    IdentityKind,
    InboundMessage,
    Message,
    Task,
    TaskStatus,
)
from tests.channels.webchat.conftest import (
    AnsweringBot,
    center_of,
    hub_of,
    new_visitor,
    open_chat,
)
from tests.support.app import bearer, login


async def test_a_citizen_message_is_stored_echoed_and_answered_by_the_bot_with_quick_replies(
    client: TestClient, bot: AnsweringBot
) -> None:
    sock, ready = await open_chat(client, new_visitor())
    assert ready["status"] == "new" and ready["last_seq"] == 0
    client_id = await sock.say("ต่ออายุบัตรประชาชนต้องใช้อะไรบ้าง")

    echo = await sock.message(lambda f: f["author"] == "citizen")
    ack = await sock.next("ack")
    answer = await sock.message(lambda f: f["author"] == "bot")

    assert echo["client_id"] == client_id and echo["seq"] == 1
    assert ack == {"type": "ack", "client_id": client_id, "seq": 1, "duplicate": False}
    assert answer["seq"] == 2
    assert answer["text"] == "ผู้ช่วยตอบ: ต่ออายุบัตรประชาชนต้องใช้อะไรบ้าง"
    assert [b["title"] for b in answer["buttons"]] == ["ต่ออายุบัตร", "บัตรหาย"]
    assert bot.turns[0].text == "ต่ออายุบัตรประชาชนต้องใช้อะไรบ้าง"


async def test_asking_for_a_person_shows_the_queue_position_then_the_agent_joins_and_replies(
    client: TestClient,
) -> None:
    center = center_of(client)
    sock, _ = await open_chat(client, new_visitor())
    await sock.say("ขอคุยกับเจ้าหน้าที่ค่ะ")
    await sock.message(lambda f: f["author"] == "bot")
    assert (await sock.next("status"))["status"] == "queued"
    queue = await sock.next("queue", where=lambda f: f["position"] is not None)
    assert queue["position"] == 1 and queue["state"] == "waiting"
    assert queue["estimated_wait_seconds"] > 0

    # A second citizen waits behind the first.
    other, _ = await open_chat(client, new_visitor())
    await other.say("ขอสายเจ้าหน้าที่")
    assert (await other.next("queue", where=lambda f: f["position"] is not None))["position"] == 2

    me = await login(client, "somsri", "demo-agent-1")
    headers = bearer(me["token"])
    went = await client.put("/api/v1/agents/me/presence", json={"presence": "available"},
                            headers=headers)
    assert went.status == 200, await went.text()
    await sock.next("queue", where=lambda f: f["state"] == "offered")
    tasks = await (await client.get("/api/v1/tasks?status=reserved", headers=headers)).json()
    (first,), _ = await center.list_rows(Message, Message.body == "ขอคุยกับเจ้าหน้าที่ค่ะ")
    (task,) = [t for t in tasks["items"] if t["conversation_id"] == first.conversation_id]
    accepted = await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=headers)
    assert accepted.status == 200, await accepted.text()

    joined = await sock.next("status", where=lambda f: f["status"] == "agent")
    assert joined["agent_name"] == "สมศรี ใจดี (Somsri)"
    announcement = await sock.message(lambda f: f.get("event") == "agent_joined")
    assert "สมศรี" in announcement["text"] and announcement["author"] == "system"
    # Somsri may hold three chats: the second citizen's chat is being offered too.
    assert (await other.next("queue", where=lambda f: f["state"] == "offered"))

    await center.send_message(task["conversation_id"], "สวัสดีค่ะ ดิฉันสมศรี ยินดีช่วยค่ะ",
                              author=Author.AGENT, author_id=me["me"]["agent_id"])
    reply = await sock.message(lambda f: f["author"] == "agent")
    assert reply["text"] == "สวัสดีค่ะ ดิฉันสมศรี ยินดีช่วยค่ะ"
    assert reply["author_name"] == "สมศรี ใจดี (Somsri)"


async def test_reconnecting_with_after_seq_replays_exactly_the_missed_messages(
    client: TestClient,
) -> None:
    visitor = new_visitor()
    sock, ready = await open_chat(client, visitor)
    session = ready["conversation"]
    await sock.say("สอบถามเรื่องบัตรค่ะ")
    await sock.message(lambda f: f["seq"] == 2)
    conversation_id = (await center_of(client).list_rows(Conversation))[0][0].id
    await sock.close()

    center = center_of(client)
    # While the citizen is away: an agent writes twice, and writes one internal note.
    await center.send_message(conversation_id, "ข้อความที่ 3", author=Author.AGENT)
    await center.send_message(conversation_id, "บันทึกภายใน ห้ามเห็น", author=Author.AGENT,
                              internal=True)
    await center.send_message(conversation_id, "ข้อความที่ 5", author=Author.AGENT)

    again, ready = await open_chat(client, visitor, session, after_seq=2)
    assert ready["conversation"] == session and ready["last_seq"] == 5
    await again.drain(0.5)
    assert [(m["seq"], m["text"]) for m in again.messages()] == [
        (3, "ข้อความที่ 3"), (5, "ข้อความที่ 5")]

    # A fresh page (after_seq 0) gets the whole history, internal notes left out.
    fresh, _ = await open_chat(client, visitor, session)
    await fresh.drain(0.5)
    assert [m["seq"] for m in fresh.messages()] == [1, 2, 3, 5]


async def test_a_message_sent_again_after_a_reconnect_is_stored_once(client: TestClient) -> None:
    visitor = new_visitor()
    sock, ready = await open_chat(client, visitor)
    client_id = await sock.say("ส่งครั้งเดียวพอ")
    await sock.next("ack")
    await sock.close()  # the ack was lost on the way, say: the widget sends it again

    again, _ = await open_chat(client, visitor, ready["conversation"], after_seq=0)
    await again.say("ส่งครั้งเดียวพอ", client_id=client_id)
    ack = await again.next("ack")
    assert ack["duplicate"] is True and ack["seq"] == 1
    await again.drain(0.5)
    rows, _ = await center_of(client).list_rows(Message, Message.body == "ส่งครั้งเดียวพอ")
    assert len(rows) == 1
    assert [m["seq"] for m in again.messages() if m["author"] == "citizen"] == [1]


async def test_a_100_kb_frame_and_an_over_long_message_get_errors_and_the_socket_stays_open(
    client: TestClient,
) -> None:
    sock, _ = await open_chat(client, new_visitor())
    await sock.ws.send_str(json.dumps({"type": "message", "client_id": "c" * 12,
                                       "text": "ก" * 100_000}))
    big = await sock.next("error")
    assert big["code"] == "frame_too_large"

    client_id = await sock.say("x" * 4001)
    long = await sock.next("error")
    assert long["code"] == "message_too_long" and long["client_id"] == client_id
    assert long["max_chars"] == 4000

    await sock.say("ยังคุยต่อได้")
    assert (await sock.next("ack"))["seq"] == 1
    rows, _ = await center_of(client).list_rows(Message)
    assert all(len(m.body) <= 4000 for m in rows)


async def test_unknown_fields_types_and_bad_json_get_error_frames(client: TestClient) -> None:
    sock, _ = await open_chat(client, new_visitor())
    await sock.send({"type": "message", "client_id": "abcdefgh1", "text": "hi", "admin": True})
    assert (await sock.next("error"))["code"] == "unknown_field"
    await sock.send({"type": "delete_everything"})
    assert (await sock.next("error"))["code"] == "unknown_type"
    await sock.ws.send_str("{not json")
    assert (await sock.next("error"))["code"] == "malformed_json"
    await sock.send({"type": "rating", "score": 9})
    assert (await sock.next("error"))["code"] == "invalid_frame"
    await sock.ws.send_bytes(b"\x00\x01")
    assert (await sock.next("error"))["code"] == "text_only"
    await sock.send({"type": "ping"})
    assert (await sock.next("pong"))["type"] == "pong"


async def test_nothing_is_accepted_before_the_socket_resumes(client: TestClient) -> None:
    ws = await client.ws_connect("/chat/ws")
    await ws.send_str(json.dumps({"type": "message", "client_id": "abcdefgh1", "text": "hi"}))
    frame = await ws.receive_json(timeout=5)
    assert frame["code"] == "resume_first"
    assert (await center_of(client).list_rows(Message))[1] == 0


@pytest.mark.parametrize("limits", [Limits(visitor_burst=10, visitor_per_second=0.01)])
async def test_a_flood_from_one_visitor_is_rate_limited(client: TestClient) -> None:
    sock, _ = await open_chat(client, new_visitor())
    sent = [await sock.say(f"ข้อความ {n}") for n in range(30)]
    answered: dict[str, str] = {}
    while len(answered) < len(sent):
        frame = await sock.next_of(("ack", "error"))
        answered[frame["client_id"]] = frame.get("code", "ack")
    assert list(answered.values()).count("ack") == 10
    assert list(answered.values()).count("rate_limited") == 20
    limited = [f for f in sock.frames if f["type"] == "error"]
    assert all(f["retry_after"] > 0 and "too many" in f["message"] for f in limited)
    # The socket is still open and answers.
    await sock.send({"type": "ping"})
    assert (await sock.next("pong"))["type"] == "pong"


async def test_html_in_a_message_is_stored_and_sent_back_as_plain_text(client: TestClient) -> None:
    sock, _ = await open_chat(client, new_visitor())
    text = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    await sock.say(text)
    echo = await sock.message(lambda f: f["author"] == "citizen")
    answer = await sock.message(lambda f: f["author"] == "bot")
    assert echo["text"] == text
    assert answer["text"] == f"ผู้ช่วยตอบ: {text}"


async def test_another_visitor_cannot_resume_someone_elses_conversation(
    client: TestClient,
) -> None:
    sock, ready = await open_chat(client, new_visitor())
    await sock.say("เรื่องส่วนตัวของฉัน")
    await sock.message(lambda f: f["seq"] == 2)

    stranger, theirs = await open_chat(client, new_visitor(), ready["conversation"])
    await stranger.drain(0.5)
    assert theirs["status"] == "new" and stranger.messages() == []


async def test_the_citizen_identity_is_a_hash_of_the_visitor_token(client: TestClient) -> None:
    visitor = new_visitor()
    sock, _ = await open_chat(client, visitor)
    await sock.say("สวัสดีค่ะ")
    await sock.next("ack")
    center = center_of(client)
    conv = (await center.list_rows(Conversation))[0][0]
    from routing import Identity

    (identity,), _ = await center.list_rows(Identity, Identity.citizen_id == conv.citizen_id)
    assert identity.kind == IdentityKind.CHAT_VISITOR
    assert identity.value == visitor_identity(visitor) and visitor not in identity.value
    assert visitor not in conv.provider_key


async def test_rating_the_chat_sets_the_case_satisfaction_score(client: TestClient) -> None:
    sock, _ = await open_chat(client, new_visitor())
    await sock.send({"type": "rating", "score": 4})
    assert (await sock.next("error"))["code"] == "no_conversation"
    await sock.say("ขอบคุณค่ะ")
    await sock.next("ack")
    await sock.send({"type": "end"})
    assert (await sock.next("status", where=lambda f: f["status"] == "closed"))
    await sock.send({"type": "rating", "score": 4})
    assert (await sock.next("rated"))["score"] == 4
    (case,), _ = await center_of(client).list_rows(Case)
    assert case.csat == 4


async def test_a_transcript_request_is_kept_for_the_email_room_and_hidden_from_the_citizen(
    client: TestClient,
) -> None:
    sock, _ = await open_chat(client, new_visitor())
    await sock.say("ขอสำเนาด้วยค่ะ")
    await sock.message(lambda f: f["seq"] == 2)
    await sock.send({"type": "transcript", "email": "not-an-address"})
    assert (await sock.next("error"))["code"] == "invalid_email"
    await sock.send({"type": "transcript", "email": "Somchai@Example.COM"})
    done = await sock.next("transcript_requested")
    assert "Somchai@example.com" not in done["email"]  # masked on screen
    await sock.drain(0.3)
    assert [m["seq"] for m in sock.messages()] == [1, 2]

    rows, _ = await center_of(client).list_rows(Message, Message.internal.is_(True))
    (request,) = rows
    assert request.author == Author.SYSTEM
    assert request.extra["kind"] == "transcript_request"
    assert request.extra["email"] == "Somchai@example.com"


async def test_the_offline_form_becomes_a_case_and_a_task_with_the_contact_details(
    client: TestClient, bot: AnsweringBot,
) -> None:
    sock, ready = await open_chat(client, new_visitor())
    assert ready["availability"]["officers"] is False  # nobody signed in yet
    form = {"type": "offline", "client_id": uuid.uuid4().hex, "name": "สมชาย ใจงาม",
            "email": "somchai@example.com", "phone": "12", "text": "ขอให้ติดต่อกลับเรื่องภาษี"}
    await sock.send(form)
    bad = await sock.next("error")
    assert bad["code"] == "invalid_phone" and bad["field"] == "phone"

    await sock.send({**form, "phone": "081 234 5678"})
    received = await sock.next("offline_received")
    assert received["case_number"].startswith("OS-")
    await sock.send({**form, "phone": "081 234 5678"})  # sent again after a lost reply
    assert (await sock.next("offline_received"))["case_number"] == received["case_number"]

    center = center_of(client)
    (task,), _ = await center.list_rows(Task)
    assert task.reason == "offline_message" and task.status == TaskStatus.PENDING
    from routing import Identity

    identities, _ = await center.list_rows(Identity, Identity.citizen_id == task.citizen_id)
    assert {(i.kind, i.value) for i in identities} >= {
        ("email", "somchai@example.com"), ("phone", "+66812345678")}
    messages = await center.messages(task.conversation_id)
    assert [m.author for m in messages] == ["system", "citizen"]
    assert "สมชาย ใจงาม" in messages[0].body
    assert messages[1].body == "ขอให้ติดต่อกลับเรื่องภาษี"
    await asyncio.sleep(0.2)
    assert bot.turns == []  # the bot does not answer a message left for people


async def test_typing_goes_both_ways_through_the_bus(client: TestClient) -> None:
    center = center_of(client)
    seen: list[TypingChanged] = []

    async def record(event: Any) -> None:
        seen.append(event)

    center.bus.subscribe(record, TypingChanged)
    sock, _ = await open_chat(client, new_visitor())
    await sock.say("สวัสดีค่ะ")
    await sock.next("ack")
    await sock.send({"type": "typing", "active": True})
    await sock.send({"type": "ping"})
    await sock.next("pong")
    conv = (await center.list_rows(Conversation))[0][0]
    assert seen[0] == TypingChanged(conv.id, "citizen", True)

    await hub_of(client).agent_typing(conv.id, True, "สมศรี")
    typing = await sock.next("typing")
    assert typing == {"type": "typing", "who": "agent", "active": True, "name": "สมศรี"}


async def test_messages_of_other_channels_do_not_reach_chat_sockets(client: TestClient) -> None:
    from routing import Channel, IdentityHint

    sock, _ = await open_chat(client, new_visitor())
    await sock.say("สวัสดี")
    await sock.message(lambda f: f["seq"] == 2)
    await center_of(client).ingest(InboundMessage(
        Channel.EMAIL, "thread-1", "mail-1", "อีเมลของคนอื่น",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "other@example.com"),)))
    await sock.drain(0.5)
    assert all("อีเมล" not in m["text"] for m in sock.messages())
