"""What the hotline does when Twilio refuses or is slow, the conference's own status
callbacks, a missed officer leg that is no transfer, officers who take calls on their own
phone, and the pieces of the call that had no test: the estimated wait, SMS to a person."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from ivr import Hotline
from ivr.phrases import say
from routing import SYSTEM, Channel, Conversation
from tests.conftest import ManualClock
from tests.ivr.conftest import TwilioApi, center_of, conference_sid, hotline_of
from tests.ivr.test_calls import (
    available_agent,
    conversation_of,
    offered_task,
    queued_call,
    timeline,
)
from tests.ivr.test_sms_and_tokens import post_sms, sms_messages
from tests.ivr.test_warm_transfer import connected_call
from tests.ivr.walker import PUBLIC_URL, Phone
from tests.support.app import bearer, login

CITIZEN = "+66812223333"


async def callback_requested(client: TestClient) -> Phone:
    """A caller on hold presses 1 to be called back, then hangs up."""
    phone = await queued_call(client, caller=CITIZEN)
    await phone.hold()
    await phone.press("1")
    await phone.leave_queue("leave")
    assert "โทรกลับ" in phone.said()
    await phone.status("completed")
    return phone


async def notes(client: TestClient, phone: Phone) -> list[str]:
    return [m.body for m in await timeline(center_of(client), phone.sid)]


# -- callbacks when Twilio refuses -----------------------------------------------------------


async def test_a_callback_twilio_refuses_with_429_then_500_is_placed_once_in_the_end(
    client: TestClient, twilio_api: TwilioApi, clock: ManualClock,
) -> None:
    center = center_of(client)
    hotline = hotline_of(client)
    twilio_api.scripted["/Calls.json"] = [429, 500]  # Retry-After: 30 on the 429
    phone = await callback_requested(client)
    me = await available_agent(client)
    task = await offered_task(client, me)
    await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=bearer(me["token"]))

    # Attempt 1: 429. The officer sees it on the call's timeline; the task stays theirs.
    (first,) = await twilio_api.wait_for("/Calls.json")
    assert first.status == 429 and first.form["To"] == CITIZEN
    for _ in range(100):
        if any("HTTP 429" in b for b in await notes(client, phone)):
            break
        await asyncio.sleep(0.02)
    assert any("HTTP 429" in b and "30 s" in b for b in await notes(client, phone))
    assert (await center.task(task["id"])).status == "assigned"
    # Twilio's Retry-After is honoured: nothing is asked before 30 s have passed.
    clock.advance(20)
    assert await hotline.retry_callbacks() == 0
    assert len(twilio_api.sent("/Calls.json")) == 1

    # A restart: a new hotline over the same database finds the callback still due.
    restarted = Hotline(center, hotline.menus, hotline.config, rest=hotline.rest)
    clock.advance(11)
    await restarted.retry_callbacks()
    (_, second) = await twilio_api.wait_for("/Calls.json", 2)
    assert second.status == 500
    clock.advance(hotline.config.callback_backoff[1] + 1)
    await restarted.retry_callbacks()
    calls = await twilio_api.wait_for("/Calls.json", 3)
    assert [c.status for c in calls] == [429, 500, 201]
    # Placed: never again, however long the timer runs.
    clock.advance(3600)
    assert await restarted.retry_callbacks() == 0
    assert await hotline.retry_callbacks() == 0
    assert len(twilio_api.sent("/Calls.json")) == 3

    # The citizen answers and is put through to the officer.
    callback = Phone(client, caller="+6621234567", called=CITIZEN, call_sid="CA" + "8" * 32,
                     direction="outbound-api")
    callback.doc = await callback.post(calls[-1].form["Url"])
    assert "โทรกลับตามที่ท่านขอไว้" in callback.said()
    assert callback.doc.find("Dial/Conference") is not None
    bodies = await notes(client, phone)
    assert any("HTTP 500" in b for b in bodies)
    assert sum("Calling the citizen back" in b for b in bodies) == 1


async def test_a_callback_that_keeps_failing_is_handed_to_the_officer_with_a_clear_note(
    client: TestClient, twilio_api: TwilioApi, clock: ManualClock,
) -> None:
    center = center_of(client)
    hotline = hotline_of(client)
    hotline.config = replace(hotline.config, callback_attempts=3, callback_backoff=(5,))
    twilio_api.refuse_with = 500
    phone = await callback_requested(client)
    me = await available_agent(client)
    task = await offered_task(client, me)
    await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=bearer(me["token"]))
    await twilio_api.wait_for("/Calls.json")
    for _ in range(3):
        clock.advance(6)
        await hotline.retry_callbacks()
    assert len(twilio_api.sent("/Calls.json")) == 3  # and no more
    conv = await conversation_of(center, phone.sid)
    # What the officer's console shows: the conversation's last line says what to do.
    view = await (await client.get(f"/api/v1/conversations/{conv.id}",
                                   headers=bearer(me["token"]))).json()
    last = view["messages"][-1]["body"]
    assert "กรุณาโทรหาผู้ติดต่อเอง" in last and "after 3 attempts (HTTP 500)" in last
    assert (await center.task(task["id"])).status == "assigned"
    assert (await center.task(task["id"])).agent_id == me["me"]["agent_id"]
    state = await center.load_state(f"ivr-callback:{task['id']}")
    assert state is not None and state["status"] == "failed"


async def test_a_callback_attempt_lost_with_its_node_is_skipped_and_the_next_one_placed(
    client: TestClient, twilio_api: TwilioApi, clock: ManualClock,
) -> None:
    center = center_of(client)
    hotline = hotline_of(client)
    await callback_requested(client)
    me = await available_agent(client)
    task = await offered_task(client, me)
    # Another node claimed attempt 1 and died before asking Twilio or saving anything.
    assert await center.record_event("ivr-callback-attempt", f"{task['id']}:1", {})
    hotline.rest, rest = None, hotline.rest  # (this node does not react to the accept)
    await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=bearer(me["token"]))
    hotline.rest = rest
    restarted = Hotline(center, hotline.menus, hotline.config, rest=rest)
    assert await restarted.retry_callbacks() == 0  # the claim is fresh: someone may be on it
    assert twilio_api.sent("/Calls.json") == []
    clock.advance(121)
    await restarted.retry_callbacks()  # stale: skipped
    await restarted.retry_callbacks()
    (call,) = await twilio_api.wait_for("/Calls.json")
    assert call.form["To"] == CITIZEN and call.status == 201
    state = await center.load_state(f"ivr-callback:{task['id']}")
    assert state is not None and state["status"] == "placed" and state["attempts"] == 2


# -- /ivr/connect within Twilio's 15 seconds ------------------------------------------------


async def test_a_slow_twilio_keeps_the_caller_queued_and_puts_them_through_when_it_answers(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    hotline = hotline_of(client)
    hotline.config = replace(hotline.config, twilio_budget=0.5)
    twilio_api.slow["/Participants.json"] = asyncio.Event()
    phone = await queued_call(client)
    me = await available_agent(client)
    task = await offered_task(client, me)
    await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=bearer(me["token"]))
    (redirect,) = await twilio_api.wait_for(f"/Calls/{phone.sid}.json")

    started = time.monotonic()
    phone.doc = await phone.post(redirect.form["Url"])  # Twilio fetches /ivr/connect
    assert time.monotonic() - started < 10  # Twilio would give up at 15 s
    # Not put through yet: back in the hold queue, in the same place.
    assert phone.verbs() == ["Say", "Enqueue"] and "กำลังเชื่อมต่อ" in phone.said()
    phone.queue = phone.doc.find("Enqueue")
    await phone.hold()
    assert phone.verbs() == ["Play"]  # hold music while Twilio rings the officer
    assert len(twilio_api.sent("/Participants.json")) == 1

    twilio_api.slow["/Participants.json"].set()  # Twilio answers at last
    for _ in range(200):
        conference = await hotline.conferences.load(task["id"])
        if conference is not None and conference.sid:
            break
        await asyncio.sleep(0.02)
    await phone.hold()
    assert phone.verbs() == ["Leave"]
    await phone.leave_queue("leave")
    assert phone.doc.find("Dial/Conference") is not None
    assert len(twilio_api.sent("/Participants.json")) == 1  # the officer rung once


# -- the conference's status callbacks --------------------------------------------------------


async def conference_event(phone: Phone, url: str, event: str, **extra: str) -> None:
    await phone.post(url, {"ConferenceSid": extra.pop("sid", ""), "StatusCallbackEvent": event,
                           "FriendlyName": "onestop", "Timestamp": "now", **extra})


async def test_conference_callbacks_are_recorded_once_and_the_caller_leaving_ends_the_task(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    phone, me, task, _ = await connected_call(client, twilio_api)
    conference = phone.doc.find("Dial/Conference")
    assert conference is not None
    url = conference.attrib["statusCallback"]
    sid = conference_sid(f"onestop-task-{task['id']}")
    somsri = f"agent_{me['me']['agent_id']}"
    twilio = Phone(client, call_sid="CA" + "6" * 32, direction="outbound-api")
    await conference_event(twilio, url, "conference-start", sid=sid, SequenceNumber="1")
    await conference_event(twilio, url, "participant-join", sid=sid, SequenceNumber="2",
                           ParticipantLabel=somsri)
    await conference_event(twilio, url, "participant-join", sid=sid, SequenceNumber="2",
                           ParticipantLabel=somsri)  # redelivered
    bodies = await notes(client, phone)
    assert sum("the officer joined the call" in b for b in bodies) == 1
    assert (await center.task(task["id"])).status == "assigned"

    # An event of another conference (an earlier one of the task) changes nothing.
    await conference_event(twilio, url, "conference-end", sid="CF" + "0" * 32,
                           SequenceNumber="9")
    assert (await center.task(task["id"])).status == "assigned"

    # The caller hangs up: they leave the conference; the officer goes to wrap-up.
    await conference_event(Phone(client, call_sid=phone.sid), url, "participant-leave",
                           sid=sid, SequenceNumber="3", ParticipantLabel="caller")
    assert (await center.task(task["id"])).status == "wrapping"
    assert await hotline_of(client).conferences.load(task["id"]) is None
    await conference_event(twilio, url, "conference-end", sid=sid, SequenceNumber="4",
                           ReasonConferenceEnded="participant-with-end-conference-on-exit-left")
    bodies = await notes(client, phone)
    assert sum("the caller left the call" in b for b in bodies) == 1

    # Unsigned or incomplete callbacks are refused.
    await twilio.post(url, {"StatusCallbackEvent": "conference-end"}, expect=400)
    response = await client.post(url.removeprefix(PUBLIC_URL), data={
        "ConferenceSid": sid, "StatusCallbackEvent": "conference-end"})
    assert response.status == 403


async def test_the_conference_ending_sends_the_officers_task_to_wrap_up(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    phone, _me, task, _ = await connected_call(client, twilio_api)
    conference = phone.doc.find("Dial/Conference")
    assert conference is not None
    sid = conference_sid(f"onestop-task-{task['id']}")
    await conference_event(Phone(client, call_sid="CA" + "7" * 32), conference.attrib[
        "statusCallback"], "conference-end", sid=sid, SequenceNumber="5")
    assert (await center.task(task["id"])).status == "wrapping"


# -- a missed officer leg is no transfer -----------------------------------------------------


async def test_an_officer_who_misses_the_call_does_not_cost_the_case_its_one_stop_resolution(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    phone, _me, task, ring = await connected_call(client, twilio_api)
    leg = Phone(client, call_sid="CA" + "5" * 32, direction="outbound-api")
    await leg.status("no-answer", url=ring.form["StatusCallback"])
    assert (await center.task(task["id"])).status in ("pending", "reserved")
    conv = await conversation_of(center, phone.sid)
    assert (await center.case(conv.case_id)).transfers == 0
    # anan takes it and resolves the matter on this first call: a one-stop resolution.
    anan = await available_agent(client, "anan", "demo-agent-2")
    offered = await offered_task(client, anan)
    assert offered["id"] == task["id"]
    await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=bearer(anan["token"]))
    case = await center.update_case(conv.case_id, SYSTEM, status="resolved")
    assert case.transfers == 0 and case.one_stop is True
    rows, _ = await center.list_rows(Conversation)
    assert len(rows) == 1


# -- the officer's own phone ------------------------------------------------------------------


async def test_an_officer_who_chose_their_phone_is_rung_there_instead_of_the_browser(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    me = await login(client, "somsri", "demo-agent-1")
    url = "/ivr/agents/me/phone"
    bad = await client.put(url, json={"device": "phone", "number": "not a number"},
                           headers=bearer(me["token"]))
    assert bad.status == 422
    missing = await client.put(url, json={"device": "phone"}, headers=bearer(me["token"]))
    assert missing.status == 422
    chosen = await client.put(url, json={"device": "phone", "number": "081 999 8888"},
                              headers=bearer(me["token"]))
    assert chosen.status == 200, await chosen.text()
    assert await chosen.json() == {"agent_id": me["me"]["agent_id"], "device": "phone",
                                   "number": "+66819998888"}
    # Only an admin may change someone else's.
    anan = await center_of(client).agent_by_username("anan")
    assert anan is not None
    other = await client.put(f"/ivr/agents/{anan.id}/phone", json={"device": "browser"},
                             headers=bearer(me["token"]))
    assert other.status == 403
    admin = await login(client, "admin", "demo-admin")
    set_by_admin = await client.put(f"/ivr/agents/{anan.id}/phone",
                                    json={"device": "phone", "number": "0829998888"},
                                    headers=bearer(admin["token"]))
    assert set_by_admin.status == 200 and (await set_by_admin.json())["number"] == (
        "+66829998888")

    phone, _, task, ring = await connected_call(client, twilio_api)
    assert ring.form["To"] == "+66819998888"  # her phone, not client:agent_…
    assert ring.form["From"] == "+6621234567"
    # Without the conference (Twilio refuses the participant), <Dial><Number>.
    twilio_api.refuse_with = 500
    again = Phone(client, call_sid=phone.sid)
    await hotline_of(client).conferences.clear(task["id"])
    (redirect,) = twilio_api.sent(f"/Calls/{phone.sid}.json")
    again.doc = await again.post(redirect.form["Url"])
    number = again.doc.find("Dial/Number")
    assert number is not None and number.text == "+66819998888"
    assert again.doc.find("Dial/Client") is None


async def test_the_transfer_form_lists_the_officers_free_to_take_the_call(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    _, me, task, _ = await connected_call(client, twilio_api)
    anan = await available_agent(client, "anan", "demo-agent-2")
    listed = await (await client.get(f"/ivr/calls/{task['id']}/targets",
                                     headers=bearer(me["token"]))).json()
    ids = [a["id"] for a in listed["agents"]]
    assert ids == [anan["me"]["agent_id"]]  # not somsri herself; malee is offline
    assert listed["agents"][0]["display_name"]
    refused = await client.get(f"/ivr/calls/{task['id']}/targets",
                               headers=bearer(anan["token"]))
    assert refused.status == 403


# -- what the queue says -----------------------------------------------------------------------


async def test_callers_on_hold_hear_their_estimated_wait_in_their_language(
    client: TestClient,
) -> None:
    center = center_of(client)
    handle = center.settings.channel(Channel.VOICE).default_handle_seconds
    first = await queued_call(client, caller="+66811110001")
    await first.hold()
    expected = say("queue_wait", "th", minutes=max(1, math.ceil(handle / 60)))
    assert expected in first.said()  # "เวลารอโดยประมาณ 4 นาที"
    english = Phone(client, caller="+66811110002")
    await english.dial_in()
    await english.press("9")
    await english.press("0")
    await english.hold()
    assert "You are number 2 in the queue." in english.said()
    assert (f"The estimated wait is {max(1, math.ceil(2 * handle / 60))} minutes."
            in english.said())


# -- SMS: the bot, then a person ---------------------------------------------------------------


async def test_an_sms_asking_for_a_person_reaches_an_officer_whose_reply_goes_out_by_sms(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    assert await post_sms(client, "SM" + "4" * 32, "ขอคุยกับเจ้าหน้าที่ครับ",
                          sender="+66855556666") == 200
    me = await available_agent(client)
    task = await offered_task(client, me)
    assert task["channel"] == "sms"
    accepted = await client.post(f"/api/v1/tasks/{task['id']}/accept",
                                 headers=bearer(me["token"]))
    assert accepted.status == 200
    before = len(twilio_api.sent("/Messages.json"))
    reply = await client.post(f"/api/v1/conversations/{task['conversation_id']}/messages",
                              json={"body": "สวัสดีค่ะ เจ้าหน้าที่สมศรีรับเรื่องแล้วค่ะ"},
                              headers=bearer(me["token"]))
    assert reply.status == 201, await reply.text()
    sent = await twilio_api.wait_for("/Messages.json", before + 1)
    answer: Any = sent[-1]
    assert answer.form["Body"] == "สวัสดีค่ะ เจ้าหน้าที่สมศรีรับเรื่องแล้วค่ะ"
    assert answer.form["To"] == "+66855556666" and answer.form["From"] == "+6621234567"
    for _ in range(100):
        outbound = [m for m in await sms_messages(client, "+66855556666")
                    if m.direction == "outbound" and m.author == "agent"]
        if outbound and outbound[0].delivery == "sent":
            break
        await asyncio.sleep(0.02)
    assert [m.delivery for m in outbound] == ["sent"]
