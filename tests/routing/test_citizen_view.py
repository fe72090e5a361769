"""One citizen, one timeline, one case across channels; merges that can be undone."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from routing import (
    SYSTEM,
    Actor,
    Channel,
    Citizen,
    ContactCenter,
    Conversation,
    Identity,
    IdentityHint,
    IdentityKind,
    InboundMessage,
)
from routing.events import CitizenChanged
from tests.routing.helpers import settle

AGENT = Actor("agent-1", "agent")
NID = "1101700230708"



async def state_of(center: ContactCenter, citizen_id: str) -> dict[str, Any]:
    async with center.db.sessions() as s:
        citizen = await s.get_one(Citizen, citizen_id)
        identities = sorted((i.kind, i.value, i.verified) for i in (await s.scalars(
            select(Identity).where(Identity.citizen_id == citizen_id))).all())
        conversations = sorted(c.id for c in (await s.scalars(
            select(Conversation).where(Conversation.citizen_id == citizen_id))).all())
    return {"identities": identities, "conversations": conversations,
            "name_th": citizen.name_th, "birth_date": citizen.birth_date,
            "attributes": citizen.attributes, "flags": citizen.flags,
            "merged_into": citizen.merged_into}


async def test_four_channels_end_in_one_citizen_with_one_timeline_and_one_case(
    center: ContactCenter,
) -> None:
    # 1. An anonymous chat.
    chat = await center.ingest(InboundMessage(
        Channel.CHAT, "chat-session-1", "c-1", "สอบถามเบี้ยผู้สูงอายุค่ะ",
        identity_hints=(IdentityHint(IdentityKind.CHAT_VISITOR, "visitor-0001-abcdef"),)))
    # 2. A call from a phone (caller ID is verified by the network).
    call = await center.ingest(InboundMessage(
        Channel.VOICE, "CA0001", "CA0001:start", "incoming call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "081-234-5678", "caller_id"),)))
    assert call.citizen_id != chat.citizen_id
    # 3. The smart card at a kiosk, with that phone typed in.
    kiosk = await center.ingest(InboundMessage(
        Channel.KIOSK, "kiosk-7:visit-1", "kiosk-7:e1", "citizen identified",
        identity_hints=(IdentityHint(IdentityKind.NATIONAL_ID, NID, "smart_card"),
                        IdentityHint(IdentityKind.PHONE, "+66 81 234 5678"))))
    assert kiosk.citizen_id == call.citizen_id  # the phone is a verified identity of the caller
    await center.update_profile(kiosk.citizen_id, {"name_th": "สมชาย ใจดี",
                                                   "birth_date": date(1950, 5, 1)},
                                SYSTEM, verified_by="smart_card")
    # 4. An email from an address nobody knows yet…
    mail = await center.ingest(InboundMessage(
        Channel.EMAIL, "<root@mail.th>", "<root@mail.th>", "ขอทราบความคืบหน้า",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "somchai@mail.th"),)))
    assert mail.citizen_id not in (call.citizen_id, chat.citizen_id)
    # …which the agent confirms belongs to the caller: the records merge.
    merged = await center.add_identity(call.citizen_id, IdentityHint(
        IdentityKind.EMAIL, "somchai@mail.th", "agent_check"), AGENT)
    assert merged == [mail.citizen_id]
    # In the chat the citizen gives the phone number, which the agent checks.
    await center.add_identity(chat.citizen_id, IdentityHint(
        IdentityKind.PHONE, "0812345678", "agent_check"), AGENT)
    # The agent files every conversation under the chat's case.
    for conversation in (call, kiosk, mail):
        await center.link_conversation(conversation.conversation_id, chat.case_number, AGENT)
    await settle(center)

    async with center.db.sessions() as s:
        live = (await s.scalars(select(Citizen).where(Citizen.merged_into.is_(None)))).all()
        conversations = (await s.scalars(select(Conversation))).all()
    assert len(live) == 1
    person = live[0]
    assert {c.citizen_id for c in conversations} == {person.id}
    assert {c.case_id for c in conversations} == {chat.case_id}
    assert (await center.case(chat.case_id)).conversation_count == 4
    timeline = await center.timeline(person.id, AGENT)
    opened = [e["channel"] for e in timeline if e["kind"] == "conversation_opened"]
    assert sorted(opened) == ["chat", "email", "kiosk", "voice"]
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
    view = await center.citizen_view(person.id, AGENT)
    assert view["name_th"] == "สมชาย ใจดี" and "elderly" in view["flags"]
    assert {i["kind"] for i in view["identities"]} == {
        "chat_visitor", "phone", "national_id", "email"}
    national = next(i for i in view["identities"] if i["kind"] == "national_id")
    assert national["value"] == "1-XXXX-XXXXX-70-8"  # agents do not need the full ID
    supervisor_view = await center.citizen_view(person.id, Actor("sup", "supervisor"))
    assert NID in [i["value"] for i in supervisor_view["identities"]]


async def test_an_unmerge_restores_both_records_exactly(center: ContactCenter) -> None:
    a = await center.ingest(InboundMessage(
        Channel.VOICE, "CA1", "CA1:start", "call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0812345678", "caller_id"),)))
    b = await center.ingest(InboundMessage(
        Channel.EMAIL, "t-1", "m-1", "mail",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "someone@mail.th"),)))
    await center.update_profile(a.citizen_id, {"address": "99 ถนนพหลโยธิน"}, SYSTEM)
    await center.update_profile(b.citizen_id, {"address": "1 ถนนสุขุมวิท"}, SYSTEM,
                                verified_by="agent_check")
    before = {a.citizen_id: await state_of(center, a.citizen_id),
              b.citizen_id: await state_of(center, b.citizen_id)}
    merge_id = await center.merge_citizens(b.citizen_id, a.citizen_id, AGENT, "same person")
    merged = await state_of(center, a.citizen_id)
    assert merged["conversations"] == sorted([a.conversation_id, b.conversation_id])
    # Most recent verified wins; the other address is kept in the history.
    assert merged["attributes"]["address"] == "1 ถนนสุขุมวิท"
    assert any(h["value"] == "99 ถนนพหลโยธิน" for h in merged["attributes"]["history"])
    await center.unmerge_citizens(merge_id, AGENT)
    after = {a.citizen_id: await state_of(center, a.citizen_id),
             b.citizen_id: await state_of(center, b.citizen_id)}
    assert after == before
    await settle(center)


async def test_weak_evidence_becomes_a_suggestion_an_agent_can_reject(
    center: ContactCenter,
) -> None:
    first = await center.ingest(InboundMessage(
        Channel.EMAIL, "t-a", "m-a", "a", identity_hints=(IdentityHint(IdentityKind.EMAIL, "a@mail.th"),)))
    second = await center.ingest(InboundMessage(
        Channel.EMAIL, "t-b", "m-b", "b", identity_hints=(IdentityHint(IdentityKind.EMAIL, "b@mail.th"),)))
    for citizen_id in (first.citizen_id, second.citizen_id):
        await center.update_profile(citizen_id, {"name_th": "มาลี ศรีสุข",
                                                 "birth_date": date(1980, 1, 2)}, SYSTEM)
    view = await center.citizen_view(first.citizen_id, AGENT)
    assert [s["other_id"] for s in view["suggestions"]] == [second.citizen_id]
    await center.decide_suggestion(view["suggestions"][0]["id"], False, AGENT)
    assert (await center.citizen_view(first.citizen_id, AGENT))["suggestions"] == []
    await settle(center)


async def test_telling_once_reaches_the_interested_departments(center: ContactCenter) -> None:
    seen: list[CitizenChanged] = []

    async def record(event: CitizenChanged) -> None:
        seen.append(event)

    center.bus.subscribe(record, CitizenChanged)
    r = await center.ingest(InboundMessage(
        Channel.KIOSK, "k:1", "k:1:e1", "id", identity_hints=(IdentityHint(
            IdentityKind.NATIONAL_ID, NID, "smart_card"),)))
    changed = await center.update_profile(r.citizen_id, {"address": "12 หมู่ 3 ต.บางพูด"}, AGENT,
                                          verified_by="agent_check")
    assert changed == ["address"]
    assert seen[-1].fields == ("address",)
    assert "registration_office" in seen[-1].departments and "revenue" in seen[-1].departments
    await settle(center)


async def test_export_holds_everything_and_erasure_keeps_only_statistics(
    center: ContactCenter,
) -> None:
    r = await center.ingest(InboundMessage(
        Channel.EMAIL, "t-x", "m-x", "เลขบัตร 1101700230708 ที่อยู่ 5 ซอยสุข",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "x@mail.th"),)))
    await center.update_profile(r.citizen_id, {"name_th": "ทดสอบ ลบข้อมูล",
                                               "birth_date": date(1960, 1, 1)}, SYSTEM)
    await center.record_consent(r.citizen_id, "satisfaction_survey", True, AGENT, "email")
    exported = await center.export_citizen(r.citizen_id, Actor("sup", "supervisor"))
    assert exported["citizen"]["name_th"] == "ทดสอบ ลบข้อมูล"
    assert exported["messages"][0]["body"].startswith("เลขบัตร")
    assert exported["consents"][0]["purpose"] == "satisfaction_survey"
    await settle(center)
    await center.update_case(r.case_id, SYSTEM, category="general", csat=4)
    await center.erase_citizen(r.citizen_id, Actor("admin", "admin"), "citizen asked")
    after = await center.export_citizen(r.citizen_id, Actor("admin", "admin"))
    assert after["citizen"]["name_th"] is None and after["identities"] == []
    assert {m["body"] for m in after["messages"]} == {"[erased]"}
    assert after["citizen"]["attributes"] == {"age_group": "60s"}
    case = await center.case(r.case_id)
    assert case.category == "general" and case.csat == 4


async def test_a_consent_for_an_unknown_purpose_is_refused(center: ContactCenter) -> None:
    r = await center.ingest(InboundMessage(
        Channel.EMAIL, "t-y", "m-y", "x", identity_hints=(IdentityHint(IdentityKind.EMAIL, "y@mail.th"),)))
    with pytest.raises(ValueError, match="purpose"):
        await center.record_consent(r.citizen_id, "marketing", True, AGENT)
    await settle(center)


async def test_a_vulnerable_citizen_is_routed_with_priority(center: ContactCenter) -> None:
    # A call: the IVR, not the core, decides when to hand it to people.
    r = await center.ingest(InboundMessage(
        Channel.VOICE, "CA-v", "CA-v:start", "call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0899999999", "caller_id"),)))
    await center.set_flags(r.citizen_id, ["disability"], AGENT)
    await settle(center)
    task_id = await center.hand_to_people(r.conversation_id, reason="test")
    task = await center.task(task_id)
    assert task.attributes["vulnerable"] == ["disability"]
    assert task.priority >= center.settings.workflow.vulnerable_priority_boost


async def test_sla_clocks_stop_while_waiting_on_the_citizen(center: ContactCenter,
                                                            clock: Any) -> None:
    r = await center.ingest(InboundMessage(
        Channel.VOICE, "CA-sla", "CA-sla:1", "call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0811111111", "caller_id"),)))
    case = await center.update_case(r.case_id, SYSTEM, category="id_card")
    due = case.resolution_due
    assert due is not None
    await center.update_case(r.case_id, SYSTEM, status="pending_citizen")
    clock.advance(2 * 3600)  # Monday 10:00 → 12:00 Bangkok: two open office hours
    # The citizen answers: the case opens again and the clock restarts two hours later.
    await center.ingest(InboundMessage(
        Channel.VOICE, "CA-sla", "CA-sla:2", "here are the documents",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0811111111", "caller_id"),)))
    reopened = await center.case(r.case_id)
    assert reopened.status == "open"
    assert reopened.sla_paused_seconds == 2 * 3600
    hours = center._case_hours(reopened)
    assert hours.business_seconds_between(due, reopened.resolution_due) == 2 * 3600
