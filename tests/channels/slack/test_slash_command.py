"""`/onestop case OS-…`: a case's summary for mapped staff only, and audited."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from routing import AuditEntry
from tests.channels.slack.conftest import Desk, open_case, signed_headers
from tests.channels.slack.test_consultation import PERSONAL


async def slash(desk: Desk, text: str, user: str) -> dict[str, object]:
    body = urlencode({"token": "xyzz0WbapA4vBCDEFasx0q6G", "team_id": "T1",
                      "team_domain": "onestop", "channel_id": "CSUP",
                      "channel_name": "onestop-supervisors", "user_id": user,
                      "user_name": "someone", "command": "/onestop", "text": text,
                      "api_app_id": "A0ONESTOP", "is_enterprise_install": "false",
                      "response_url": "https://hooks.slack.com/commands/T1/1/x",
                      "trigger_id": "1.2.3"})
    response = await desk.client.post("/slack/events", data=body, headers=signed_headers(body))
    assert response.status == 200
    return dict(json.loads(await response.text()))


async def test_a_supervisor_sees_the_case_summary_privately_and_it_is_audited(
    desk: Desk,
) -> None:
    case_id, number = await open_case(desk.center)
    answer = await slash(desk, f"case {number.lower()}", "USUPER")
    assert answer["response_type"] == "ephemeral"
    shown = json.dumps(answer["blocks"], ensure_ascii=False)
    assert number in shown and "House registration" in shown
    for detail in PERSONAL:
        assert detail not in shown, detail
    supervisor = await desk.center.agent_by_username("supervisor")
    assert supervisor is not None
    entries, _ = await desk.center.list_rows(AuditEntry, AuditEntry.subject_id == case_id,
                                             AuditEntry.actor_id == supervisor.id)
    assert [(e.action, e.actor_role, e.data.get("via")) for e in entries] == [
        ("view", "supervisor", "slack")]


async def test_an_agent_may_look_up_a_case_too(desk: Desk) -> None:
    _, number = await open_case(desk.center)
    answer = await slash(desk, f"case {number}", "USOMSRI")
    assert number in json.dumps(answer["blocks"])


async def test_an_unmapped_slack_user_is_politely_refused_and_nothing_is_read(
    desk: Desk,
) -> None:
    case_id, number = await open_case(desk.center)
    answer = await slash(desk, f"case {number}", "USTRANGER")
    assert answer["response_type"] == "ephemeral"
    assert "Sorry" in str(answer["text"]) and number not in str(answer["text"])
    assert "blocks" not in answer
    _entries, total = await desk.center.list_rows(AuditEntry, AuditEntry.subject_id == case_id)
    assert total == 0


async def test_an_unknown_case_number_is_said_so(desk: Desk) -> None:
    answer = await slash(desk, "case OS-2026-999999", "USUPER")
    assert "OS-2026-999999" in str(answer["text"])
