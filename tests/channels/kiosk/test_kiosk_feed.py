"""The kiosk feed over HTTP on the real app: signatures, per-event errors, replays,
key rotation, disabled kiosks, what the visit becomes in the core."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jsonschema import Draft202012Validator

from channels.kiosk import KioskBack, KioskSilent, signed_headers
from routing import (
    Case,
    Channel,
    Conversation,
    Identity,
    Message,
    Task,
    TimelineEvent,
)
from tests.support.app import bearer, login

Driver = Any  # the KioskDriver fixture of conftest.py


async def counts(kd: Driver) -> dict[str, int]:
    c = kd.center
    return {
        "conversations": (await c.list_rows(Conversation))[1],
        "messages": (await c.list_rows(Message))[1],
        "cases": (await c.list_rows(Case))[1],
        "tasks": (await c.list_rows(Task))[1],
        "identities": (await c.list_rows(Identity))[1],
    }


async def tasks_of(kd: Driver, conversation_id: str, expected: int = 1) -> list[Task]:
    """The conversation's tasks, once the core's background hand-off has made them."""
    for _ in range(200):
        rows, _ = await kd.center.list_rows(Task, Task.conversation_id == conversation_id)
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.02)
    return rows


async def visit_conversation(kd: Driver, visit: str) -> Conversation:
    rows, _ = await kd.center.list_rows(
        Conversation, Conversation.provider_key == f"{kd.key.device_id}:{visit}")
    assert len(rows) == 1
    return rows[0]


# -- signatures ----------------------------------------------------------------------------


async def test_a_smart_card_read_and_a_service_request_open_a_case_with_its_number(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    visit = kd.visit_id()
    reply = await kd.send(kd.identified(visit), kd.service_request(visit, "id_card"))
    assert reply["accepted"] == 2 and reply["rejected"] == 0
    first, second = reply["results"]
    assert first["status"] == "accepted" and first["verified"] is True
    assert second["case_number"] == first["case_number"]
    assert second["case_number"].startswith("OS-2026-")

    conv = await visit_conversation(kd, visit)
    assert conv.channel == Channel.KIOSK
    identities, _ = await kd.center.list_rows(Identity, Identity.citizen_id == conv.citizen_id)
    assert [(i.kind, i.value, i.verified_by) for i in identities] == [
        ("national_id", kd.SOMCHAI_ID, "smart_card")]
    case = await kd.center.case(conv.case_id)
    assert case.category == "id_card" and case.number == second["case_number"]
    # Kiosks go straight to people: the request is a task, routed by its category.
    [task] = await tasks_of(kd, conv.id)
    assert task.attributes["category"] == "id_card"
    assert task.attributes["queue"] == "registration"
    timeline, _ = await kd.center.list_rows(TimelineEvent,
                                            TimelineEvent.citizen_id == conv.citizen_id)
    assert {"conversation_opened", "case_opened", "case_changed"} <= {t.kind for t in timeline}


async def test_an_unsigned_request_is_refused_and_stores_nothing(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    before = await counts(kd)
    response = await kd.client.post("/kiosk/v1/events",
                                    json={"events": [kd.identified(kd.visit_id())]})
    assert response.status == 401
    error = (await response.json())["error"]
    assert error["code"] == "unsigned" and "X-Kiosk-Signature" in error["message"]
    assert await counts(kd) == before


async def test_a_request_signed_more_than_five_minutes_ago_is_refused_as_stale(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    now = int(kd.clock.now().timestamp())
    stale = await kd.post({"events": [kd.identified(kd.visit_id())]}, timestamp=now - 301)
    assert stale.status == 401
    body = await stale.json()
    assert body["error"]["code"] == "stale_timestamp"
    assert body["error"]["details"]["server_time"] == now
    future = await kd.post({"events": [kd.identified(kd.visit_id())]}, timestamp=now + 301)
    assert future.status == 401
    within = await kd.post({"events": [kd.identified(kd.visit_id())]}, timestamp=now - 290)
    assert within.status == 200


async def test_a_tampered_body_or_a_wrong_key_is_refused(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    before = await counts(kd)
    visit = kd.visit_id()
    payload = {"events": [kd.identified(visit)]}
    tampered = json.dumps({"events": [kd.identified(visit, kd.MALEE_ID)]}).encode()
    response = await kd.post(payload, body=tampered)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "bad_signature"
    wrong_key = await kd.post(payload, secret="not-the-kiosk-secret")
    assert wrong_key.status == 401
    unknown = await kd.post(payload, device_id="nobody-99")
    assert unknown.status == 401
    assert (await unknown.json())["error"]["code"] == "unknown_device"
    assert await counts(kd) == before


async def test_a_replayed_request_creates_nothing_twice_and_gets_the_same_answer(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    visit = kd.visit_id()
    body = json.dumps({"events": [kd.identified(visit), kd.service_request(visit)]}).encode()
    headers = signed_headers(kd.key.device_id, kd.key.secret,
                             int(kd.clock.now().timestamp()), body)
    first = await kd.client.post("/kiosk/v1/events", data=body, headers=headers)
    assert first.status == 200
    await tasks_of(kd, (await visit_conversation(kd, visit)).id)
    after_first = await counts(kd)
    again = await kd.client.post("/kiosk/v1/events", data=body, headers=headers)
    assert again.status == 200
    replay = await again.json()
    assert replay["duplicate"] == 2 and replay["accepted"] == 0
    assert [r["case_number"] for r in replay["results"]] == [
        r["case_number"] for r in (await first.json())["results"]]
    assert await counts(kd) == after_first


# -- per-event errors ----------------------------------------------------------------------


async def test_a_batch_with_bad_events_keeps_the_good_ones_and_says_what_is_wrong(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    visit = kd.visit_id()
    unknown_field = kd.service_request(visit, colour="blue")
    no_category = kd.service_request(visit)
    del no_category["category"]
    bad_id = kd.identified(kd.visit_id(), kd.BAD_CHECKSUM_ID)
    unknown_category = kd.service_request(visit, "flying_licence")
    bad_rating = {"id": kd.new_id(), "type": "feedback", "visit_id": visit, "rating": 6}
    reply = await kd.send(kd.identified(visit), unknown_field, no_category, bad_id,
                          unknown_category, bad_rating, kd.service_request(visit))
    statuses = [r["status"] for r in reply["results"]]
    assert statuses == ["accepted", "rejected", "rejected", "rejected", "rejected",
                        "rejected", "accepted"]
    errors = {r["index"]: r["errors"] for r in reply["results"] if r["status"] == "rejected"}
    assert reply["results"][1]["id"] == unknown_field["id"]
    assert errors[1][0]["path"] == "$.events[1]" and "'colour'" in errors[1][0]["message"]
    assert errors[2][0] == {"path": "$.events[2].category", "code": "missing",
                            "message": "'category' is a required property"}
    assert errors[3][0]["path"] == "$.events[3].national_id"
    assert "checksum" in errors[3][0]["message"]
    assert errors[4][0]["path"] == "$.events[4].category"
    assert "flying_licence" in errors[4][0]["message"]
    assert errors[5][0]["path"] == "$.events[5].rating"
    # The bad national ID stored nothing: no citizen, no conversation for that visit.
    identities, _ = await kd.center.list_rows(Identity, Identity.value == kd.BAD_CHECKSUM_ID)
    assert identities == []
    case = await kd.center.case((await visit_conversation(kd, visit)).case_id)
    assert case.category == "id_card"


async def test_a_batch_where_every_event_is_refused_is_a_400(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    response = await kd.post({"events": [{"id": "short", "type": "teleport"}]})
    assert response.status == 400
    body = await response.json()
    assert body["rejected"] == 1
    paths = {e["path"] for e in body["results"][0]["errors"]}
    assert paths == {"$.events[0].id", "$.events[0].type"}


async def test_malformed_json_and_a_malformed_batch_are_clear_400s(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    # The signature covers the bytes sent, so sign the garbled body itself.
    headers = signed_headers(kd.key.device_id, kd.key.secret,
                             int(kd.clock.now().timestamp()), b"{not json")
    garbled = await kd.client.post("/kiosk/v1/events", data=b"{not json", headers=headers)
    assert garbled.status == 400
    assert (await garbled.json())["error"]["code"] == "malformed_json"
    empty = await kd.post({"events": []})
    assert empty.status == 400
    error = (await empty.json())["error"]
    assert error["code"] == "invalid_batch" and error["errors"][0]["path"] == "$.events"
    too_many = await kd.post({"events": [kd.identified(kd.visit_id())] * 101})
    assert too_many.status == 400


# -- offline buffer, tickets, hand-offs, feedback ------------------------------------------


async def test_an_offline_buffer_replayed_twice_creates_nothing_twice(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    visit = kd.visit_id()
    buffer = [
        kd.identified(visit, occurred_at="2026-03-02T09:50:00+07:00"),
        kd.service_request(visit, "elderly_allowance"),
        {"id": kd.new_id(), "type": "queue_ticket", "visit_id": visit,
         "category": "elderly_allowance"},
        {"id": kd.new_id(), "type": "callback_request", "visit_id": visit,
         "phone": "081-234-5678", "preferred_time": "morning"},
        {"id": kd.new_id(), "type": "feedback", "visit_id": visit, "rating": 4,
         "comment": "บริการรวดเร็ว"},
        {"id": kd.new_id(), "type": "heartbeat", "status": "ok", "buffered_events": 6},
    ]
    first = await kd.send(*buffer)
    assert first["accepted"] == 6, first
    conv = await visit_conversation(kd, visit)
    await tasks_of(kd, conv.id)
    after_first = await counts(kd)
    kd.clock.advance(30)  # the kiosk retries later, with a fresh signature
    second = await kd.send(*buffer)
    kd.clock.advance(30)
    third = await kd.send(*buffer)
    for again in (second, third):
        assert [r["status"] for r in again["results"]] == ["duplicate"] * 5 + ["accepted"]
        assert again["results"][2]["ticket_number"] == first["results"][2]["ticket_number"]
    assert first["results"][2]["ticket_number"] == "D001"  # welfare is the 4th queue
    assert await counts(kd) == after_first
    tasks = await tasks_of(kd, conv.id)
    assert len(tasks) == 1
    case = await kd.center.case(conv.case_id)
    assert case.csat == 4
    notes = [m.body for m in await kd.center.messages(conv.id) if m.internal]
    assert len(notes) == 1 and "บริการรวดเร็ว" in notes[0]


async def test_ticket_numbers_count_up_per_queue(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    tickets = [{"id": kd.new_id(), "type": "queue_ticket", "visit_id": kd.visit_id(),
                "category": c} for c in ("id_card", "general", "id_card")]
    reply = await kd.send(*tickets)
    assert [r["ticket_number"] for r in reply["results"]] == ["B001", "A001", "B002"]
    assert "case_number" not in reply["results"][0]  # a ticket alone opens no case


async def test_a_callback_request_hands_the_visit_to_people_with_the_phone_number(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    visit = kd.visit_id()
    reply = await kd.send(kd.identified(visit), {
        "id": kd.new_id(), "type": "callback_request", "visit_id": visit,
        "phone": "081 234 5678", "preferred_time": "afternoon", "language": "en"})
    assert reply["accepted"] == 2
    conv = await visit_conversation(kd, visit)
    [task] = await tasks_of(kd, conv.id)
    assert task.reason == "callback_request"
    assert task.attributes["callback_phone"] == "+66812345678"
    assert task.attributes["language"] == "en"
    phones, _ = await kd.center.list_rows(Identity, Identity.kind == "phone")
    assert [(p.value, p.verified, p.citizen_id) for p in phones] == [
        ("+66812345678", False, conv.citizen_id)]


async def test_a_chat_request_without_a_card_read_opens_an_anonymous_visit_for_people(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    visit = kd.visit_id()
    reply = await kd.send({"id": kd.new_id(), "type": "chat_request", "visit_id": visit})
    assert reply["results"][0]["case_number"].startswith("OS-")
    conv = await visit_conversation(kd, visit)
    [task] = await tasks_of(kd, conv.id)
    assert task.reason == "chat_request" and task.channel == "kiosk"
    bad_phone = await kd.send({"id": kd.new_id(), "type": "callback_request",
                               "visit_id": visit, "phone": "12345678901"})
    assert bad_phone["results"][0]["errors"][0]["path"] == "$.events[0].phone"


# -- keys and devices ----------------------------------------------------------------------


async def test_two_keys_sign_during_a_rotation_and_a_retired_key_no_longer_does(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    store, now = kd.kiosk.store, kd.clock.now()
    new = await store.add_key(kd.key.device_id, now)
    heartbeat = {"events": [{"id": kd.new_id(), "type": "heartbeat", "status": "ok"}]}
    assert (await kd.post(heartbeat)).status == 200
    assert (await kd.post(heartbeat, secret=new.secret)).status == 200
    try:
        await store.add_key(kd.key.device_id, now)
    except Exception as exc:
        assert "retire one first" in str(exc)
    else:
        raise AssertionError("a third active key was accepted")
    await store.retire_key(kd.key.device_id, kd.key.key_id, now)
    old = await kd.post(heartbeat)
    assert old.status == 401
    assert (await old.json())["error"]["code"] == "bad_signature"
    assert (await kd.post(heartbeat, secret=new.secret)).status == 200


async def test_a_disabled_kiosk_is_refused_until_enabled_again(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    store = kd.kiosk.store
    await store.set_enabled(kd.key.device_id, False, kd.clock.now())
    before = await counts(kd)
    refused = await kd.post({"events": [kd.identified(kd.visit_id())]})
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "device_disabled"
    assert await counts(kd) == before
    await store.set_enabled(kd.key.device_id, True, kd.clock.now())
    assert (await kd.post({"events": [kd.identified(kd.visit_id())]})).status == 200


# -- monitoring ----------------------------------------------------------------------------


async def test_a_silent_kiosk_raises_one_alert_and_its_return_another(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    seen: list[Any] = []

    async def collect(event: Any) -> None:
        seen.append(event)

    kd.center.bus.subscribe(collect, KioskSilent, KioskBack)
    await kd.send({"id": kd.new_id(), "type": "heartbeat", "status": "degraded",
                   "printer": "paper_low"})
    kd.clock.advance(4 * 60)
    assert await kd.kiosk.watch.check() == []
    kd.clock.advance(2 * 60)
    [alert] = await kd.kiosk.watch.check()
    assert alert.device_id == kd.key.device_id
    assert await kd.kiosk.watch.check() == []  # raised once, not on every check
    await kd.send({"id": kd.new_id(), "type": "heartbeat", "status": "ok"})
    assert [type(e).__name__ for e in seen] == ["KioskSilent", "KioskBack"]


async def test_supervisors_see_each_kiosks_last_heartbeat_and_nobody_sees_secrets(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    await kd.send({"id": kd.new_id(), "type": "heartbeat", "status": "degraded",
                   "printer": "paper_out", "app_version": "1.4.2"})
    kd.clock.advance(90)
    assert (await kd.client.get("/kiosk/v1/devices")).status == 401
    agent = await login(kd.client, "somsri", "demo-agent-1")
    refused = await kd.client.get("/kiosk/v1/devices", headers=bearer(agent["token"]))
    assert refused.status == 403
    supervisor = await login(kd.client, "supervisor", "demo-supervisor")
    response = await kd.client.get("/kiosk/v1/devices", headers=bearer(supervisor["token"]))
    assert response.status == 200
    text = await response.text()
    assert kd.key.secret not in text
    [device] = json.loads(text)["devices"]
    assert device["id"] == kd.key.device_id
    assert device["status"]["printer"] == "paper_out"
    assert device["seconds_since_heartbeat"] == 90 and device["silent"] is False
    assert device["active_keys"] == [kd.key.key_id]


# -- published documents -------------------------------------------------------------------


async def test_the_published_schema_is_draft_2020_12_and_names_the_catalogue(
    kiosk_driver: Driver,
) -> None:
    kd = kiosk_driver
    response = await kd.client.get("/kiosk/v1/schema.json")
    assert response.status == 200
    schema = await response.json()
    Draft202012Validator.check_schema(schema)
    assert "id_card" in schema["$defs"]["service_request"]["properties"]["category"]["enum"]
    visit = kd.visit_id()
    Draft202012Validator(schema).validate({"events": [kd.identified(visit),
                                                      kd.service_request(visit)]})
    catalogue = await (await kd.client.get("/kiosk/v1/catalogue")).json()
    names = {c["code"]: c["name"] for c in catalogue["categories"]}
    assert names["id_card"]["en"].startswith("ID card")


async def test_the_demo_key_is_not_served_unless_demo_mode_is_on(kiosk_driver: Driver) -> None:
    response = await kiosk_driver.client.get("/kiosk/demo/device")
    assert response.status == 404


async def test_a_kiosk_flooding_the_feed_is_told_to_slow_down(kiosk_driver: Driver) -> None:
    kd = kiosk_driver
    statuses = []
    for _ in range(70):
        response = await kd.post({"events": [{"id": kd.new_id(), "type": "heartbeat",
                                              "status": "ok"}]})
        statuses.append(response.status)
        if response.status == 429:
            break
    assert statuses[-1] == 429 and len(statuses) > 60
    assert int(response.headers["Retry-After"]) >= 1
    assert "too many requests" in (await response.json())["error"]["message"]
