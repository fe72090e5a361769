"""The officer's leg in a Twilio conference, and warm transfers, walked as Twilio would
walk them; what Twilio's REST API is asked to do is read off the recording server."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient

from tests.ivr.conftest import Recorded, TwilioApi, center_of, conference_sid
from tests.ivr.test_calls import (
    available_agent,
    conversation_of,
    offered_task,
    queued_call,
    timeline,
)
from tests.ivr.walker import PUBLIC_URL, Phone
from tests.support.app import bearer, login

HOLD_MUSIC = f"{PUBLIC_URL}/ivr/static/hold.wav"


async def connected_call(client: TestClient, twilio_api: TwilioApi
                         ) -> tuple[Phone, dict[str, Any], dict[str, Any], Recorded]:
    """A caller put through to somsri: the caller's TwiML is the task's conference and
    somsri's browser is rung into it. Returns the phone, somsri, the task and the
    request that rang her."""
    phone = await queued_call(client)
    me = await available_agent(client)
    task = await offered_task(client, me)
    accepted = await client.post(f"/api/v1/tasks/{task['id']}/accept",
                                 headers=bearer(me["token"]))
    assert accepted.status == 200
    await twilio_api.wait_for(f"/Calls/{phone.sid}.json")
    await phone.hold()
    await phone.leave_queue("leave")
    (ring,) = twilio_api.sent("/Participants.json")
    return phone, me, task, ring


def conference_requests(twilio_api: TwilioApi, after: int) -> list[tuple[str, str, dict[str, str]]]:
    """(method, what, form) of the conference requests since `after`, with the
    conference's SID cut off the path."""
    out = []
    for r in twilio_api.requests[after:]:
        if "/Conferences/" in r.path:
            out.append((r.method, r.path.split("/Conferences/", 1)[1].split("/", 1)[1],
                        r.form))
    return out


async def transfer(client: TestClient, me: dict[str, Any], task_id: str, action: str = "",
                   body: dict[str, Any] | None = None, expect: int = 200) -> dict[str, Any]:
    path = f"/ivr/calls/{task_id}/transfer" + (f"/{action}" if action else "")
    response = await client.post(path, json=body if body is not None else {},
                                 headers=bearer(me["token"]))
    text = await response.text()
    assert response.status == expect, text
    return dict(await response.json())


async def test_the_caller_waits_in_the_tasks_conference_and_the_officer_is_rung_into_it(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    phone, me, task, ring = await connected_call(client, twilio_api)
    conference = phone.doc.find("Dial/Conference")
    assert conference is not None, phone.verbs()
    name = f"onestop-task-{task['id']}"
    assert conference.text == name
    assert conference.attrib == {
        "participantLabel": "caller", "beep": "false", "startConferenceOnEnter": "false",
        "endConferenceOnExit": "true", "waitUrl": HOLD_MUSIC, "waitMethod": "GET",
        # Twilio tells us when the conference starts and ends and who joins and leaves.
        "statusCallback": f"{PUBLIC_URL}/ivr/conference?task={task['id']}",
        "statusCallbackEvent": "start end join leave", "statusCallbackMethod": "POST"}
    assert phone.doc.find("Dial").attrib["action"].startswith(f"{PUBLIC_URL}/ivr/after-agent?")
    # The officer: by the conference's name, labelled, starting it, ending it on leaving.
    assert ring.method == "POST"
    assert ring.path.endswith(f"/Conferences/{name}/Participants.json")
    to = urlsplit(ring.form["To"])
    assert f"{to.scheme}:{to.path}" == f"client:agent_{me['me']['agent_id']}"
    parameters = {k: v[0] for k, v in parse_qs(to.query).items()}
    assert parameters == {"task_id": task["id"], "case_id": task["case_id"], "leg": "agent",
                          "caller": "••••••••5678"}  # masked, as in the console
    assert ring.form["From"] == "+6621234567"
    assert ring.form["Label"] == f"agent_{me['me']['agent_id']}"
    assert ring.form["StartConferenceOnEnter"] == "true"
    assert ring.form["EndConferenceOnExit"] == "true"
    assert ring.form["Beep"] == "false" and ring.form["Timeout"] == "20"
    assert ring.form["StatusCallback"].startswith(f"{PUBLIC_URL}/ivr/agent-leg?")
    # Twilio retrying the webhook does not ring the officer twice.
    (redirect,) = twilio_api.sent(f"/Calls/{phone.sid}.json")
    again = await phone.post(redirect.form["Url"])
    assert again.find("Dial/Conference") is not None
    assert len(twilio_api.sent("/Participants.json")) == 1
    view = await (await client.get(f"/ivr/calls/{task['id']}",
                                   headers=bearer(me["token"]))).json()
    assert view == {"task_id": task["id"], "conference": name,
                    "agent_id": me["me"]["agent_id"], "consult": None}


async def test_a_warm_transfer_to_another_officer_holds_the_caller_then_hands_over(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    phone, me, task, _ = await connected_call(client, twilio_api)
    other = await available_agent(client, "anan", "demo-agent-2")
    anan, somsri = other["me"]["agent_id"], me["me"]["agent_id"]
    sid = conference_sid(f"onestop-task-{task['id']}")
    before = len(twilio_api.requests)

    view = await transfer(client, me, task["id"], body={"agent_id": anan})
    assert view["consult"] == {"kind": "agent", "agent_id": anan, "queue_id": None}
    (create, hold) = conference_requests(twilio_api, before)
    assert twilio_api.requests[before].path.endswith(f"/Conferences/{sid}/Participants.json")
    assert create[0] == "POST" and create[1] == "Participants.json"
    assert create[2]["To"].startswith(f"client:agent_{anan}?")
    assert "leg=consult" in create[2]["To"]
    assert create[2]["Label"] == f"agent_{anan}"
    assert create[2]["StartConferenceOnEnter"] == "true"
    assert create[2]["EndConferenceOnExit"] == "false"  # a consult that fails ends nothing
    assert "lb=agent_" in create[2]["StatusCallback"]
    assert hold == ("POST", "Participants/caller.json",
                    {"Hold": "true", "HoldUrl": HOLD_MUSIC, "HoldMethod": "GET"})

    # One transfer at a time; the consulted officer cannot complete someone else's call.
    await transfer(client, me, task["id"], body={"agent_id": anan}, expect=409)
    await transfer(client, other, task["id"], "complete", expect=403)

    before = len(twilio_api.requests)
    view = await transfer(client, me, task["id"], "complete")
    assert view["agent_id"] == anan and view["consult"] is None
    assert conference_requests(twilio_api, before) == [
        ("POST", f"Participants/agent_{anan}.json", {"EndConferenceOnExit": "true"}),
        ("POST", f"Participants/agent_{somsri}.json", {"EndConferenceOnExit": "false"}),
        ("POST", "Participants/caller.json", {"Hold": "false"}),
        ("DELETE", f"Participants/agent_{somsri}.json", {}),
    ]
    # In the core the task moved to anan, who is on the call already.
    moved = await center.task(task["id"])
    assert moved.agent_id == anan and moved.status == "assigned"
    conv = await conversation_of(center, phone.sid)
    case = await center.case(conv.case_id)
    assert case.transfers == 1
    # Nobody pulls the caller out of the conference when anan's acceptance is published.
    await asyncio.sleep(0.2)
    assert len(twilio_api.sent(f"/Calls/{phone.sid}.json")) == 1
    bodies = [m.body for m in await timeline(center, phone.sid)]
    assert any("warm transfer started" in b for b in bodies)
    assert any("warm transfer completed" in b for b in bodies)

    # Completing twice: somsri no longer holds the call; anan has no transfer going.
    await transfer(client, me, task["id"], "complete", expect=403)
    error = await transfer(client, other, task["id"], "complete", expect=409)
    assert error["error"]["code"] == "no_transfer"

    # anan hangs up: the conference ends, the caller's <Dial> ends, the survey follows.
    await phone.dial_ends("completed")
    assert "คะแนนความพึงพอใจ" in phone.said()


async def test_a_warm_transfer_to_a_number_can_be_canceled_and_the_caller_comes_back(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    _, me, task, _ = await connected_call(client, twilio_api)
    before = len(twilio_api.requests)
    view = await transfer(client, me, task["id"], body={"number": "02 123 4599"})
    assert view["consult"] == {"kind": "number", "agent_id": None, "queue_id": None}
    (create, _hold) = conference_requests(twilio_api, before)
    assert create[2]["To"] == "+6621234599" and create[2]["Label"] == "external"
    before = len(twilio_api.requests)
    view = await transfer(client, me, task["id"], "cancel")
    assert view["consult"] is None
    assert conference_requests(twilio_api, before) == [
        ("DELETE", "Participants/external.json", {}),
        ("POST", "Participants/caller.json", {"Hold": "false"}),
    ]
    await transfer(client, me, task["id"], "cancel", expect=409)
    # Still somsri's call.
    assert (await center_of(client).task(task["id"])).agent_id == me["me"]["agent_id"]


async def test_a_queue_target_rings_its_next_free_officer(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    _, me, task, _ = await connected_call(client, twilio_api)
    error = await transfer(client, me, task["id"], body={"queue_id": "tax_fines"}, expect=409)
    assert error["error"]["code"] == "no_agent_available"
    anan = (await available_agent(client, "anan", "demo-agent-2"))["me"]["agent_id"]
    before = len(twilio_api.requests)
    view = await transfer(client, me, task["id"], body={"queue_id": "tax_fines"})
    assert view["consult"] == {"kind": "agent", "agent_id": anan, "queue_id": "tax_fines"}
    (create, _hold) = conference_requests(twilio_api, before)
    assert create[2]["Label"] == f"agent_{anan}"


async def test_bad_transfer_requests_are_refused_and_ask_nothing_of_twilio(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    _, me, task, _ = await connected_call(client, twilio_api)
    before = len(twilio_api.requests)
    anan = await center.agent_by_username("anan")
    assert anan is not None and anan.presence == "offline"
    error = await transfer(client, me, task["id"], body={"agent_id": anan.id}, expect=409)
    assert error["error"]["code"] == "agent_unavailable"
    error = await transfer(client, me, "no-such-task", body={"agent_id": anan.id}, expect=404)
    assert error["error"]["code"] == "not_found"
    await transfer(client, me, task["id"], body={"agent_id": "nobody"}, expect=404)
    await transfer(client, me, task["id"], body={"agent_id": me["me"]["agent_id"]}, expect=422)
    await transfer(client, me, task["id"], body={"agent_id": anan.id, "number": "021234567"},
                   expect=422)
    await transfer(client, me, task["id"], body={"number": "not a number"}, expect=422)
    await transfer(client, me, task["id"], body={"queue_id": "nope"}, expect=404)
    await transfer(client, me, task["id"], "complete", expect=409)
    other = await login(client, "malee", "demo-agent-3")
    error = await transfer(client, other, task["id"], body={"number": "021234567"},
                           expect=403)
    assert error["error"]["code"] == "not_your_call"
    # Not signed in; signed in by cookie without the CSRF token.
    client.session.cookie_jar.clear()
    assert (await client.post(f"/ivr/calls/{task['id']}/transfer",
                              json={"agent_id": anan.id})).status == 401
    client.session.cookie_jar.update_cookies({"onestop_session": me["token"]})
    try:
        refused = await client.post(f"/ivr/calls/{task['id']}/transfer",
                                    json={"number": "021234567"})
        assert refused.status == 403 and (await refused.json())["error"]["code"] == "csrf"
    finally:
        client.session.cookie_jar.clear()
    assert twilio_api.requests[before:] == []


async def test_a_consulted_officer_who_does_not_answer_brings_the_caller_back(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    _, me, task, _ = await connected_call(client, twilio_api)
    anan = (await available_agent(client, "anan", "demo-agent-2"))["me"]["agent_id"]
    before = len(twilio_api.requests)
    await transfer(client, me, task["id"], body={"agent_id": anan})
    create = twilio_api.requests[before]
    leg = Phone(client, call_sid="CA" + "4" * 32, direction="outbound-api")
    await leg.status("no-answer", url=create.form["StatusCallback"])
    assert conference_requests(twilio_api, before + 2) == [
        ("POST", "Participants/caller.json", {"Hold": "false"})]
    view = await (await client.get(f"/ivr/calls/{task['id']}",
                                   headers=bearer(me["token"]))).json()
    assert view["consult"] is None and view["agent_id"] == me["me"]["agent_id"]
    # The same callback again changes nothing.
    await leg.status("no-answer", url=create.form["StatusCallback"])
    assert len(twilio_api.requests) == before + 3


async def test_an_officer_who_does_not_answer_puts_the_caller_back_in_the_queue(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    phone, me, task, ring = await connected_call(client, twilio_api)
    leg = Phone(client, call_sid="CA" + "5" * 32, direction="outbound-api")
    await leg.status("no-answer", url=ring.form["StatusCallback"])
    # The task waits again in its queue, the officer is away (not offered it again at once)…
    waiting = await center.task(task["id"])
    assert waiting.status in ("pending", "reserved") and waiting.agent_id in (None, "")
    agent = await center.agent_record(me["me"]["agent_id"])
    assert agent.presence == "away" and agent.presence_reason == "missed_call"
    # …and Twilio is told to take the caller out of the conference back to the queue.
    redirects = twilio_api.sent(f"/Calls/{phone.sid}.json")
    assert len(redirects) == 2
    assert redirects[-1].form["Url"].startswith(f"{PUBLIC_URL}/ivr/requeue?")
    phone.doc = await phone.post(redirects[-1].form["Url"])
    assert "ยังอยู่ในลำดับคิวเดิม" in phone.said()
    assert phone.doc.find("Enqueue") is not None
    phone.queue = phone.doc.find("Enqueue")
    await phone.hold()
    assert "ลำดับที่ 1" in phone.said()
    conv = await conversation_of(center, phone.sid)
    assert any("did not answer" in m.body for m in await center.messages(conv.id))
    assert (await center.case(conv.case_id)).status != "closed"


async def test_an_unanswered_dial_requeues_the_caller_instead_of_offering_voicemail(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    center = center_of(client)
    phone, _me, task, _ = await connected_call(client, twilio_api)
    await phone.dial_ends("no-answer")
    assert phone.doc.find("Record") is None
    assert phone.doc.find("Enqueue") is not None, phone.verbs()
    assert "ยังอยู่ในลำดับคิวเดิม" in phone.said()
    assert (await center.task(task["id"])).status in ("pending", "reserved")
