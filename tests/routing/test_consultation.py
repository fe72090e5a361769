"""Consulting a department: the case waits on the back office; answers become notes."""

from __future__ import annotations

import asyncio

import pytest

from routing import (
    SYSTEM,
    Actor,
    Channel,
    ConsultationRequested,
    ContactCenter,
    IdentityHint,
    IdentityKind,
    InboundMessage,
)

AGENT = Actor("agent-1", "agent")


async def test_a_consultation_round_trip_keeps_the_citizen_out_of_it(
    center: ContactCenter,
) -> None:
    requested: list[ConsultationRequested] = []

    async def record(event: ConsultationRequested) -> None:
        requested.append(event)

    center.bus.subscribe(record, ConsultationRequested)
    stored = await center.ingest(InboundMessage(
        Channel.VOICE, "CA-c", "CA-c:1", "call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0812345678", "caller_id"),)))
    await center.update_case(stored.case_id, SYSTEM, category="tax_refund")
    consultation_id = await center.consult(stored.case_id, "revenue",
                                           "ภ.ง.ด.90 ปี 2568 คืนเงินแล้วหรือยัง", AGENT)
    case = await center.case(stored.case_id)
    assert case.status == "pending_back_office" and case.escalations == 1
    event = requested[-1]
    assert event.case_number == stored.case_number and event.department == "revenue"
    assert "0812345678" not in repr(event) and stored.citizen_id not in repr(event)

    assert await center.consultation_reply(consultation_id, "คืนเงินแล้ว 12 พ.ย.", "คุณวิชัย",
                                           "1700000000.000100")
    assert not await center.consultation_reply(consultation_id, "คืนเงินแล้ว 12 พ.ย.",
                                               "คุณวิชัย", "1700000000.000100")
    notes = [m.body for m in await center.messages(stored.conversation_id) if m.internal]
    assert notes[-1] == "คุณวิชัย: คืนเงินแล้ว 12 พ.ย." and len(notes) == 2
    await center.close_consultation(consultation_id, AGENT, "answered")
    assert (await center.case(stored.case_id)).status == "open"
    resolved = await center.update_case(stored.case_id, AGENT, status="resolved")
    assert resolved.one_stop is False  # a back office was consulted
    await asyncio.sleep(0)


async def test_consulting_an_unknown_department_is_refused(center: ContactCenter) -> None:
    stored = await center.ingest(InboundMessage(
        Channel.VOICE, "CA-d", "CA-d:1", "call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0812345679", "caller_id"),)))
    with pytest.raises(ValueError, match="unknown department"):
        await center.consult(stored.case_id, "ministry_of_magic", "?", AGENT)
