"""Whole calls through the hotline, walked as Twilio would walk them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from routing import (
    Case,
    Channel,
    ContactCenter,
    Conversation,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    Message,
    Task,
)
from tests.conftest import ManualClock
from tests.ivr.conftest import QuestionBot, TwilioApi, center_of
from tests.ivr.walker import PUBLIC_URL, Phone
from tests.support.app import bearer, login


async def conversation_of(center: ContactCenter, call_sid: str) -> Conversation:
    rows, _ = await center.list_rows(Conversation, Conversation.provider_key == call_sid)
    assert rows, f"no conversation for {call_sid}"
    return rows[0]


async def tasks_of(center: ContactCenter, conversation_id: str) -> list[Task]:
    rows, _ = await center.list_rows(Task, Task.conversation_id == conversation_id)
    return rows


async def timeline(center: ContactCenter, call_sid: str) -> list[Message]:
    return await center.messages((await conversation_of(center, call_sid)).id)


async def available_agent(client: TestClient, username: str = "somsri",
                          password: str = "demo-agent-1") -> dict[str, Any]:
    me = await login(client, username, password)
    response = await client.put("/api/v1/agents/me/presence", json={"presence": "available"},
                                headers=bearer(me["token"]))
    assert response.status == 200
    return me


async def offered_task(client: TestClient, me: dict[str, Any]) -> dict[str, Any]:
    for _ in range(200):
        page = await (await client.get("/api/v1/tasks?status=reserved",
                                       headers=bearer(me["token"]))).json()
        if page["total"]:
            return dict(page["items"][0])
        await asyncio.sleep(0.02)
    raise AssertionError("no task was offered")


async def queued_call(client: TestClient, caller: str = "+66812345678") -> Phone:
    phone = Phone(client, caller=caller)
    await phone.dial_in()
    await phone.press("0")
    assert phone.queue is not None, phone.verbs()
    return phone


# -- menus --------------------------------------------------------------------------------


async def test_the_caller_walks_nested_menus_and_hears_office_hours_and_locations(
    client: TestClient,
) -> None:
    phone = Phone(client)
    await phone.dial_in()
    assert "วันสต็อป" in phone.said()
    await phone.press("2")
    assert "เวลาทำการและที่ตั้ง" in phone.said()
    await phone.press("1")
    assert "ศาลากลางจังหวัด เปิดทำการ วันจันทร์ถึงวันศุกร์" in phone.said()
    await phone.press("2")
    assert "ถนนราชดำเนิน" in phone.said()
    await phone.press("#")
    assert "ตรวจสอบสถานะคำร้อง กด 1" in phone.said()
    steps = [m.body for m in await timeline(center_of(client), phone.sid)]
    assert any("offices" in s and "1" in s for s in steps)
    assert all(m.author in ("system", "citizen") for m in await timeline(center_of(client),
                                                                           phone.sid))


async def test_a_caller_can_switch_to_english_and_choose_by_voice(client: TestClient) -> None:
    phone = Phone(client)
    await phone.dial_in()
    await phone.press("9")
    assert {s.attrib["language"] for s in phone.doc.iter("Say")} >= {"en-US"}
    assert "For check the status of a case, press 1." in phone.said()
    assert phone.gather().attrib["language"] == "en-US"
    await phone.speak("I want the office hours please")
    assert "Office hours and locations." in phone.said()


async def test_wrong_keys_and_silence_are_explained_and_the_third_failure_reaches_a_person(
    client: TestClient,
) -> None:
    phone = Phone(client)
    await phone.dial_in()
    await phone.press("7")
    assert "ไม่มีตัวเลือกนี้" in phone.said()
    await phone.stay_silent()
    assert "ไม่ได้ยิน" in phone.said()
    await phone.press("5")
    assert phone.queue is not None
    center = center_of(client)
    conv = await conversation_of(center, phone.sid)
    (task,) = await tasks_of(center, conv.id)
    assert task.reason == "ivr_failures"
    assert task.attributes["ivr_path"] == ["main:invalid"]


async def test_a_redelivered_menu_request_records_the_step_once(client: TestClient) -> None:
    phone = Phone(client)
    await phone.dial_in()
    action = phone.gather().attrib["action"]
    first = await phone.post(action, {"Digits": "2"})
    again = await phone.post(action, {"Digits": "2"})
    assert phone.said(first) == phone.said(again)
    bodies = [m.body for m in await timeline(center_of(client), phone.sid)]
    assert len([b for b in bodies if "menu main" in b]) == 1


async def test_a_caller_who_hangs_up_mid_menu_ends_the_conversation_without_a_task(
    client: TestClient,
) -> None:
    phone = Phone(client)
    await phone.dial_in()
    await phone.press("2")
    await phone.hang_up()
    center = center_of(client)
    conv = await conversation_of(center, phone.sid)
    assert conv.status == "closed" and conv.end_reason == "ended"
    assert await tasks_of(center, conv.id) == []


# -- self-service -------------------------------------------------------------------------


async def case_for(center: ContactCenter, phone_number: str) -> Case:
    stored = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-1", "<1@mail.th>", "ขอทราบความคืบหน้าเรื่องบัตรประชาชน",
        identity_hints=(IdentityHint(IdentityKind.PHONE, phone_number, "agent_check"),
                        IdentityHint(IdentityKind.EMAIL, "citizen@mail.th"))))
    return await center.case(stored.case_id)


def keyed(number: str) -> str:
    return number.replace("OS-", "").replace("-", "")


async def test_a_caller_with_an_open_case_is_offered_it_first_and_hears_its_status(
    client: TestClient,
) -> None:
    center = center_of(client)
    case = await case_for(center, "0812345678")
    phone = Phone(client, caller="+66812345678")
    await phone.dial_in()
    spoken = " ".join(ch for ch in case.number if ch.isalnum())
    assert f"หมายเลข {spoken}" in phone.said() and "ได้รับเรื่องแล้ว" in phone.said()
    await phone.press("2")  # not about that case: the main menu
    await phone.press("1")
    await phone.press(keyed(case.number))
    assert f"คำร้องหมายเลข {spoken} สถานะ ได้รับเรื่องแล้ว กำหนดแล้วเสร็จภายใน วันที่" in (
        phone.said())
    conv = await conversation_of(center, phone.sid)
    assert conv.case_id == case.id  # the call joined the open case


async def test_case_details_are_withheld_from_a_caller_whose_number_is_not_on_the_case(
    client: TestClient,
) -> None:
    center = center_of(client)
    case = await case_for(center, "0812345678")
    phone = Phone(client, caller="+66898765432")
    await phone.dial_in()
    await phone.press("1")
    await phone.press(keyed(case.number))
    assert "คุ้มครองข้อมูลส่วนบุคคล" in phone.said()
    assert "ได้รับเรื่องแล้ว" not in phone.said()


async def test_a_mistyped_case_number_is_explained_and_can_be_keyed_again(
    client: TestClient,
) -> None:
    phone = Phone(client)
    await phone.dial_in()
    await phone.press("1")
    await phone.press("12*4")
    assert "สิบหลัก" in phone.said()
    await phone.press("2026999999")
    assert "ไม่พบคำร้องหมายเลข" in phone.said()
    assert phone.gather().attrib["numDigits"] == "10"


async def test_a_question_by_voice_is_answered_by_the_bot(client: TestClient,
                                                         bot: QuestionBot) -> None:
    phone = Phone(client)
    await phone.dial_in()
    await phone.press("3")
    assert phone.gather().attrib["input"] == "speech"
    await phone.speak("สำนักงานเปิดกี่โมง เวลาทำการ")
    assert "เปิดวันจันทร์ถึงศุกร์" in phone.said()
    assert bot.turns[0].channel == Channel.VOICE and bot.turns[0].verified
    messages = await timeline(center_of(client), phone.sid)
    assert [m.author for m in messages if "เวลาทำการ" in m.body or "เปิดวัน" in m.body] == [
        "citizen", "bot"]
    await phone.press("*")
    assert "วันสต็อป" in phone.said()


async def test_the_bot_hands_a_voice_question_to_a_person_when_asked_or_down(
    client: TestClient,
) -> None:
    center = center_of(client)
    for words, reason in (("ขอคุยกับเจ้าหน้าที่", "asked_for_person"),
                          ("boom", "bot_unavailable")):
        phone = Phone(client, caller="+66811111111" if reason == "asked_for_person"
                      else "+66822222222")
        await phone.dial_in()
        await phone.press("3")
        await phone.speak(words)
        assert phone.queue is not None
        (task,) = await tasks_of(center, (await conversation_of(center, phone.sid)).id)
        assert task.reason == reason
        assert task.attributes["ivr_path"] == ["main:3", "faq:speech"]


# -- people -------------------------------------------------------------------------------


async def test_a_queued_caller_hears_position_and_wait_and_an_agent_takes_the_call(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    phone = await queued_call(client)
    assert "กำลังโอนสาย" in phone.said()
    await phone.hold()
    assert "ลำดับที่ 1" in phone.said()
    assert phone.doc.find("Gather/Play") is not None
    me = await available_agent(client)
    task = await offered_task(client, me)
    assert task["attributes"]["ivr_path"] == ["main:0"]
    accepted = await client.post(f"/api/v1/tasks/{task['id']}/accept",
                                 headers=bearer(me["token"]))
    assert accepted.status == 200
    # Twilio is told at once to take the caller out of the queue to the officer…
    (redirect,) = await twilio_api.wait_for(f"/Calls/{phone.sid}.json")
    assert redirect.form["Url"].startswith(f"{PUBLIC_URL}/ivr/connect?")
    # …and the hold loop would notice too.
    await phone.hold()
    assert phone.verbs() == ["Leave"]
    await phone.leave_queue("leave")
    # The caller waits in the task's conference; the officer's browser is rung into it.
    conference = phone.doc.find("Dial/Conference")
    assert conference is not None and conference.text == f"onestop-task-{task['id']}"
    (ring,) = await twilio_api.wait_for(f"/Conferences/onestop-task-{task['id']}"
                                        f"/Participants.json")
    assert ring.form["To"].startswith(f"client:agent_{me['me']['agent_id']}?")
    assert f"task_id={task['id']}" in ring.form["To"]
    await phone.dial_ends("completed")
    assert "คะแนนความพึงพอใจ" in phone.said()
    await phone.press("4")
    assert phone.verbs()[-1] == "Hangup"
    conv = await conversation_of(center, phone.sid)
    assert (await center.case(conv.case_id)).csat == 4
    await phone.hang_up()
    conv = await conversation_of(center, phone.sid)
    assert conv.status == "closed"
    assert (await center.task(task["id"])).status in ("wrapping", "completed")


async def test_a_caller_who_hangs_up_while_queued_is_an_abandoned_call_counted_once(
    client: TestClient, clock: ManualClock,
) -> None:
    center = center_of(client)
    phone = await queued_call(client)
    await phone.hold()
    clock.advance(45)
    await phone.hang_up()
    await phone.status("completed")  # Twilio redelivers the status callback
    conv = await conversation_of(center, phone.sid)
    assert conv.status == "closed" and conv.end_reason == "citizen_left"
    (task,) = await tasks_of(center, conv.id)
    assert task.status == "abandoned"
    assert task.wait_seconds is not None and task.wait_seconds >= 45


async def test_a_callback_keeps_the_callers_place_and_rings_them_when_an_agent_accepts(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    phone = await queued_call(client, caller="+66812223333")
    await phone.hold()
    await phone.press("1")
    assert phone.verbs() == ["Leave"]
    await phone.leave_queue("leave")
    assert "โทรกลับ" in phone.said() and phone.verbs()[-1] == "Hangup"
    await phone.status("completed")
    conv = await conversation_of(center, phone.sid)
    assert conv.status != "closed"
    (task,) = await tasks_of(center, conv.id)
    assert task.status == "pending"  # still in the queue, in the same place

    me = await available_agent(client)
    offered = await offered_task(client, me)
    assert offered["id"] == task.id
    await client.post(f"/api/v1/tasks/{task.id}/accept", headers=bearer(me["token"]))
    (call,) = await twilio_api.wait_for("/Calls.json")
    assert call.form["To"] == "+66812223333" and call.form["From"] == "+6621234567"
    assert call.form["Url"].startswith(f"{PUBLIC_URL}/ivr/connect?")
    assert call.authorization and call.authorization.startswith("Basic ")

    # Twilio places the call; the citizen answers; the officer's browser rings.
    callback = Phone(client, caller="+6621234567", called="+66812223333",
                     call_sid="CA" + "9" * 32, direction="outbound-api")
    callback.doc = await callback.post(call.form["Url"])
    assert "โทรกลับตามที่ท่านขอไว้" in callback.said()
    assert callback.doc.find("Dial/Conference") is not None
    await callback.dial_ends("completed")
    await callback.press("5")
    await callback.status("completed", url=call.form["StatusCallback"])
    conv = await conversation_of(center, phone.sid)
    assert conv.status == "closed"
    assert (await center.case(conv.case_id)).csat == 5
    # Everything of the callback leg is on the citizen's one conversation.
    _, voice_conversations = await center.list_rows(Conversation)
    assert voice_conversations == 1
    assert any("แบบสำรวจ" in m.body for m in await center.messages(conv.id))
    # The accepted event arriving twice does not ring the citizen twice.
    assert len(twilio_api.sent("/Calls.json")) == 1


async def test_a_voicemail_becomes_a_message_and_a_task_for_the_next_shift(
    client: TestClient,
) -> None:
    center = center_of(client)
    phone = Phone(client)
    await phone.dial_in()
    await phone.press("4")
    await phone.press("8")
    assert phone.doc.find("Record") is not None
    await phone.record()
    assert "ได้รับข้อความของท่านแล้ว" in phone.said()
    await phone.transcribed("Please call me about my welfare card")
    await phone.status("completed")
    conv = await conversation_of(center, phone.sid)
    bodies = [m.body for m in await center.messages(conv.id)]
    assert any("Voicemail (14 s): https://api.twilio.com/" in b for b in bodies)
    assert any("welfare card" in b for b in bodies)
    (task,) = await tasks_of(center, conv.id)
    assert task.reason == "voicemail" and task.status == "pending"
    assert task.attributes["voicemail_url"].startswith("https://api.twilio.com/")
    assert conv.status != "closed"
    assert (await center.case(conv.case_id)).status == "new"


async def test_after_hours_a_caller_asking_for_a_person_is_offered_voicemail(
    client: TestClient, clock: ManualClock,
) -> None:
    clock.advance(timedelta(days=5).total_seconds())  # Saturday
    phone = Phone(client)
    await phone.dial_in()
    await phone.press("0")
    assert "นอกเวลาทำการ" in phone.said()
    assert phone.doc.find("Record") is not None and phone.queue is None


async def test_an_empty_recording_is_not_a_voicemail(client: TestClient) -> None:
    phone = Phone(client)
    await phone.dial_in()
    await phone.press("4")
    await phone.press("8")
    record = phone.doc.find("Record")
    assert record is not None
    phone.doc = await phone.post(record.attrib["action"], {"RecordingDuration": "0"})
    assert "ไม่ได้รับข้อความ" in phone.said()
    conv = await conversation_of(center_of(client), phone.sid)
    assert await tasks_of(center_of(client), conv.id) == []


async def test_a_survey_answer_outside_1_to_5_is_asked_again_once(client: TestClient) -> None:
    center = center_of(client)
    phone = await queued_call(client)
    me = await available_agent(client)
    task = await offered_task(client, me)
    await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=bearer(me["token"]))
    await phone.hold()
    await phone.leave_queue()
    await phone.dial_ends()
    await phone.press("9")
    assert "ไม่มีตัวเลือกนี้" in phone.said()
    await phone.press("#")
    assert phone.verbs()[-1] == "Hangup"
    conv = await conversation_of(center, phone.sid)
    assert (await center.case(conv.case_id)).csat is None


async def test_no_phone_number_or_spoken_words_reach_the_logs(
    client: TestClient, twilio_api: TwilioApi, caplog: Any,
) -> None:
    caplog.set_level("INFO")  # the production level (ONESTOP_LOG_LEVEL)
    phone = Phone(client, caller="+66834567890")
    await phone.dial_in()
    await phone.press("3")
    await phone.speak("ลับเฉพาะ เวลาทำการ")
    await phone.press("0")
    me = await available_agent(client)
    task = await offered_task(client, me)
    await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=bearer(me["token"]))
    await twilio_api.wait_for(f"/Calls/{phone.sid}.json")
    await phone.hang_up()
    text = caplog.text
    assert caplog.records, "the app logs requests"
    for secret in ("834567890", "ลับเฉพาะ"):
        assert secret not in text
