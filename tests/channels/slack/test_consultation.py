"""Consulting a department through its Slack channel, from the agent's request to the
department's answer on the case."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from routing import Consultation, ContactCenter
from tests.channels.slack.conftest import (
    Desk,
    block_actions,
    eventually,
    message_event,
    open_case,
    post_event,
    post_form,
)
from tests.support.app import bearer, login

QUESTION = "ผู้ร้องย้ายเข้าได้หรือไม่ หากเจ้าบ้านยังไม่ลงนาม / Can the move-in proceed without the householder's signature?"
PERSONAL = ("สมหญิง", "ใจดี", "081", "0812345678", "+66812345678", "somying@mail.th")


async def consult(desk: Desk, case_id: str) -> dict[str, Any]:
    me = await login(desk.client, "somsri", "demo-agent-1")
    response = await desk.client.post(f"/api/v1/cases/{case_id}/consultations",
                                      json={"department": "registration_office",
                                            "question": QUESTION},
                                      headers=bearer(me["token"]))
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def posted_thread(desk: Desk, consultation_id: str) -> str:
    async def ref() -> str | None:
        return (await desk.center.consultation(consultation_id)).external_ref
    return str(await eventually(ref))


async def notes(center: ContactCenter, case_id: str) -> list[str]:
    case = await center.case(case_id)
    assert case.first_conversation_id
    return [m.body for m in await center.messages(case.first_conversation_id) if m.internal]


async def test_a_consultation_is_posted_in_the_departments_channel_without_personal_data(
    desk: Desk,
) -> None:
    case_id, number = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    ref = await posted_thread(desk, consultation["id"])

    [post] = [p for p in desk.slack.posted() if p["channel"] == "#bo-registration"]
    assert ref.startswith("CREG:")
    text = json.dumps(post["blocks"], ensure_ascii=False)
    assert number in text
    assert "ทะเบียนบ้าน (ย้ายเข้า/ย้ายออก)" in text and "House registration" in text
    assert "Can the move-in proceed" in text
    assert "(ICT)" in text  # the due time, in Thai time
    for detail in PERSONAL:
        assert detail not in text, detail
    actions = next(b for b in post["blocks"] if b["type"] == "actions")["elements"]
    assert [a["action_id"] for a in actions] == ["onestop_take", "onestop_reply",
                                                 "onestop_resolve"]
    assert all(a["value"] == consultation["id"] for a in actions)
    case = await desk.center.case(case_id)
    assert case.status == "pending_back_office"


async def test_a_reply_in_the_thread_becomes_a_note_on_the_case_once_despite_retries(
    desk: Desk,
) -> None:
    case_id, _ = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    channel, thread_ts = (await posted_thread(desk, consultation["id"])).split(":")
    answer = message_event(channel=channel, thread_ts=thread_ts, ts="1700000100.000200",
                           text="ย้ายได้ &amp; ไม่ต้องให้เจ้าบ้านมาเอง", event_id="Ev0ANSWER")

    assert await post_event(desk, answer) == 200
    assert await post_event(desk, answer, retry=1) == 200  # Slack did not hear us in time
    assert await post_event(desk, answer, retry=2) == 200

    async def noted() -> list[str]:
        return [n for n in await notes(desk.center, case_id) if "ย้ายได้" in n]
    found = await eventually(noted)
    await asyncio.sleep(0.3)  # give duplicates every chance to arrive
    assert found == await noted()
    assert len(found) == 1
    assert "ย้ายได้ & ไม่ต้องให้เจ้าบ้านมาเอง" in found[0]
    assert "back office" in found[0]  # the officer is not mapped to an agent
    assert (await desk.center.consultation(consultation["id"])).status == "answered"


async def test_messages_outside_a_consultation_thread_and_the_bots_own_are_not_notes(
    desk: Desk,
) -> None:
    case_id, _ = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    channel, thread_ts = (await posted_thread(desk, consultation["id"])).split(":")
    top_level = message_event(channel=channel, thread_ts=None, ts="1700000200.1",
                              text="general chatter", event_id="Ev0TOP")
    other_thread = message_event(channel=channel, thread_ts="1600000000.1", ts="1700000200.2",
                                 text="another thread", event_id="Ev0OTHER")
    own = message_event(channel=channel, thread_ts=thread_ts, ts="1700000200.3",
                        text="our own post", event_id="Ev0OWN")
    own["event"]["bot_id"] = "BBOT"
    marker = message_event(channel=channel, thread_ts=thread_ts, ts="1700000200.4",
                           text="the real answer", event_id="Ev0REAL")
    for payload in (top_level, other_thread, own, marker):
        assert await post_event(desk, payload) == 200

    async def answered() -> bool:
        return any("the real answer" in n for n in await notes(desk.center, case_id))
    await eventually(answered)
    bodies = " ".join(await notes(desk.center, case_id))
    assert "general chatter" not in bodies
    assert "another thread" not in bodies
    assert "our own post" not in bodies


async def test_take_posts_who_took_it_in_the_thread(desk: Desk) -> None:
    case_id, _ = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    channel, ts = (await posted_thread(desk, consultation["id"])).split(":")
    status, _ = await post_form(desk, block_actions(
        action_id="onestop_take", value=consultation["id"], channel=channel, message_ts=ts,
        user="USOMSRI"))
    assert status == 200

    async def took() -> list[dict[str, Any]]:
        return [p for p in desk.slack.posted() if p.get("thread_ts") == ts]
    [post] = await eventually(took)
    assert post["channel"] == channel
    assert "<@USOMSRI>" in post["text"] and "took this" in post["text"]


async def test_resolve_closes_the_consultation_and_the_message_loses_its_buttons(
    desk: Desk,
) -> None:
    case_id, _ = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    channel, ts = (await posted_thread(desk, consultation["id"])).split(":")
    status, _ = await post_form(desk, block_actions(
        action_id="onestop_resolve", value=consultation["id"], channel=channel, message_ts=ts))
    assert status == 200

    async def updated() -> list[dict[str, Any]]:
        return desk.slack.posted("chat.update")
    [update] = await eventually(updated)
    assert (update["channel"], update["ts"]) == (channel, ts)
    assert not [b for b in update["blocks"] if b["type"] == "actions"]
    assert "Closed" in json.dumps(update["blocks"])
    closed = await desk.center.consultation(consultation["id"])
    assert closed.status == "closed"
    assert (await desk.center.case(case_id)).status == "open"

    async def said_so() -> list[dict[str, Any]]:
        return [p for p in desk.slack.posted()
                if p.get("thread_ts") == ts and "Closed by" in p["text"]]
    await eventually(said_so)


async def test_a_button_on_another_message_does_nothing(desk: Desk) -> None:
    case_id, _ = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    channel, _ = (await posted_thread(desk, consultation["id"])).split(":")
    status, _ = await post_form(desk, block_actions(
        action_id="onestop_resolve", value=consultation["id"], channel=channel,
        message_ts="1234.5678"))
    assert status == 200
    await asyncio.sleep(0.3)
    assert (await desk.center.consultation(consultation["id"])).status == "open"


async def test_closing_in_the_console_updates_the_slack_message(desk: Desk) -> None:
    case_id, _ = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    channel, ts = (await posted_thread(desk, consultation["id"])).split(":")
    me = await login(desk.client, "somsri", "demo-agent-1")
    response = await desk.client.post(f"/api/v1/consultations/{consultation['id']}/close",
                                      json={"resolution": "ได้คำตอบแล้ว"},
                                      headers=bearer(me["token"]))
    assert response.status == 200

    async def updated() -> list[dict[str, Any]]:
        return desk.slack.posted("chat.update")
    [update] = await eventually(updated)
    assert (update["channel"], update["ts"]) == (channel, ts)
    assert not [b for b in update["blocks"] if b["type"] == "actions"]
    assert "Closed · สมศรี ใจดี (Somsri)" in json.dumps(update["blocks"], ensure_ascii=False)


async def test_the_reply_button_opens_a_form_whose_answer_reaches_the_case(desk: Desk) -> None:
    case_id, _ = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    channel, ts = (await posted_thread(desk, consultation["id"])).split(":")
    await post_form(desk, block_actions(action_id="onestop_reply", value=consultation["id"],
                                        channel=channel, message_ts=ts))

    async def opened() -> list[dict[str, Any]]:
        return desk.slack.posted("views.open")
    [call] = await eventually(opened)
    assert call["trigger_id"] == "12345.98765.abcd2358fdea"
    view = json.loads(call["view"]) if isinstance(call["view"], str) else call["view"]
    submission = {
        "type": "view_submission", "team": {"id": "T1", "domain": "onestop"},
        "user": {"id": "UBACKOFFICE", "username": "officer", "team_id": "T1"},
        "api_app_id": "A0ONESTOP", "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "trigger_id": "12345.98765.efgh", "view": {
            **view, "id": "V0REPLY", "team_id": "T1", "hash": "1.abc",
            "state": {"values": {"answer": {"text": {
                "type": "plain_text_input", "value": "ใช้หนังสือมอบอำนาจแทนได้"}}}}},
    }
    status, _ = await post_form(desk, {"payload": json.dumps(submission)})
    assert status == 200

    async def noted() -> list[str]:
        return [n for n in await notes(desk.center, case_id) if "หนังสือมอบอำนาจ" in n]
    await eventually(noted)

    async def echoed() -> list[dict[str, Any]]:
        return [p for p in desk.slack.posted()
                if p.get("thread_ts") == ts and "หนังสือมอบอำนาจ" in p["text"]]
    await eventually(echoed)


async def test_a_rate_limited_post_is_retried_after_retry_after_and_arrives_once(
    desk: Desk,
) -> None:
    desk.slack.scripted["chat.postMessage"] = [
        (429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"})]
    case_id, _ = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    await posted_thread(desk, consultation["id"])
    methods = [c.method for c in desk.slack.calls if c.method.startswith("chat.postMessage")]
    assert methods == ["chat.postMessage!429", "chat.postMessage"]
    assert len(desk.slack.posted()) == 1


async def test_posts_survive_slack_errors_and_a_restart(desk: Desk) -> None:
    await desk.room.outbox.stop()  # the node goes down with Slack failing
    desk.slack.scripted["chat.postMessage"] = [
        (500, {}, {"ok": False, "error": "internal_error"})]
    case_id, number = await open_case(desk.center)
    consultation = await consult(desk, case_id)
    assert desk.slack.posted() == []
    pending = await desk.room.outbox.pending()
    assert [p["method"] for p in pending] == ["chat.postMessage"]

    from channels.slack import SlackOutbox
    restarted = SlackOutbox(desk.center, desk.room.client, backoff=(0.05,),
                            on_ref=desk.room._remembered)
    restarted.start()
    try:
        async with asyncio.timeout(10):
            await restarted.drain()
    finally:
        await restarted.stop()
    [post] = desk.slack.posted()
    assert number in json.dumps(post["blocks"])
    assert [c.method for c in desk.slack.calls if "postMessage" in c.method] == [
        "chat.postMessage!500", "chat.postMessage"]
    rows, _ = await desk.center.list_rows(Consultation, Consultation.id == consultation["id"])
    assert rows[0].external_ref and rows[0].external_ref.startswith("CREG:")
