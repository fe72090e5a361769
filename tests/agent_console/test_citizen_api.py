"""The citizen view over the API: every read of citizen data leaves an audit entry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY, api
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import AuditEntry, Channel, IdentityHint, IdentityKind, InboundMessage
from tests.support.app import app_settings, bearer, login

CITIZEN_TAGS = {"cases", "conversations", "citizens"}


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path
) -> AsyncIterator[TestClient]:
    app = build_app(app_settings(database_url, tmp_path))
    test_client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    yield test_client


async def test_every_read_of_citizen_data_through_the_api_is_audited(client: TestClient) -> None:
    center = client.server.app[CENTER_KEY]
    stored = await center.ingest(InboundMessage(
        Channel.VOICE, "CA-audit", "CA-audit:1", "call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0812345678", "caller_id"),)))
    supervisor = await login(client, "supervisor", "demo-supervisor")
    values = {"citizen_id": stored.citizen_id, "case_ref": stored.case_number,
              "case_id": stored.case_id,
              "conversation_id": stored.conversation_id}
    reads = [r for r in api.routes if r.method == "GET" and r.tag in CITIZEN_TAGS
             and r.path != "/audit"]
    assert len(reads) >= 6
    for route in reads:
        path = "/api/v1" + route.path.format(**values)
        before = (await center.list_rows(AuditEntry))[1]
        response = await client.get(path, headers=bearer(supervisor["token"]))
        assert response.status == 200, (path, await response.text())
        entries, after = await center.list_rows(AuditEntry, order_by=AuditEntry.at.desc())
        assert after > before, f"GET {route.path} left no audit entry"
        assert entries[0].actor_id == supervisor["me"]["agent_id"]


async def test_an_agent_sees_the_national_id_masked_and_cannot_export(client: TestClient) -> None:
    center = client.server.app[CENTER_KEY]
    stored = await center.ingest(InboundMessage(
        Channel.KIOSK, "k-1:v", "k-1:e", "id", identity_hints=(IdentityHint(
            IdentityKind.NATIONAL_ID, "1101700230708", "smart_card"),)))
    agent = await login(client, "somsri", "demo-agent-1")
    view = await (await client.get(f"/api/v1/citizens/{stored.citizen_id}",
                                   headers=bearer(agent["token"]))).json()
    assert [i["value"] for i in view["identities"]] == ["1-XXXX-XXXXX-70-8"]
    export = await client.get(f"/api/v1/citizens/{stored.citizen_id}/export",
                              headers=bearer(agent["token"]))
    assert export.status == 403


async def test_an_agent_confirms_an_email_and_the_records_merge(client: TestClient) -> None:
    center = client.server.app[CENTER_KEY]
    call = await center.ingest(InboundMessage(
        Channel.VOICE, "CA-m", "CA-m:1", "call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0812345678", "caller_id"),)))
    mail = await center.ingest(InboundMessage(
        Channel.EMAIL, "t-m", "m-m", "mail",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "p@mail.th"),)))
    agent = await login(client, "somsri", "demo-agent-1")
    response = await client.post(f"/api/v1/citizens/{call.citizen_id}/identities",
                                 json={"kind": "email", "value": "p@mail.th",
                                       "verified_by": "agent_check"},
                                 headers=bearer(agent["token"]))
    assert response.status == 200
    view = await response.json()
    assert {c["number"] for c in view["cases"]} == {call.case_number, mail.case_number}
    timeline = await (await client.get(
        f"/api/v1/citizens/{call.citizen_id}/timeline?kind=conversation_opened",
        headers=bearer(agent["token"]))).json()
    assert sorted(e["channel"] for e in timeline) == ["email", "voice"]


@pytest.mark.parametrize(("body", "fragment"), [
    ({"kind": "national_id", "value": "1101700230709"}, "checksum"),
    ({"kind": "phone", "value": "12345"}, "phone"),
    ({"kind": "email", "value": "not-an-address"}, "email"),
    ({"kind": "fingerprint", "value": "x"}, "kind"),
])
async def test_invalid_identifiers_are_refused_with_the_reason(
    client: TestClient, body: dict[str, str], fragment: str
) -> None:
    center = client.server.app[CENTER_KEY]
    call = await center.ingest(InboundMessage(
        Channel.VOICE, "CA-i", "CA-i:1", "call",
        identity_hints=(IdentityHint(IdentityKind.PHONE, "0812345678", "caller_id"),)))
    agent = await login(client, "somsri", "demo-agent-1")
    response = await client.post(f"/api/v1/citizens/{call.citizen_id}/identities", json=body,
                                 headers=bearer(agent["token"]))
    assert response.status == 422
    assert fragment in (await response.json())["error"]["message"]
    view = await center.citizen_view(call.citizen_id, center_actor())
    assert [i["kind"] for i in view["identities"]] == ["phone"]


def center_actor() -> Any:
    from routing import SYSTEM
    return SYSTEM
