"""Live updates over the staff WebSocket, supervisors' reassignment and the reports."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSServerHandshakeError
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from onestop.demo import seed_demo
from routing import Case, Channel, ContactCenter, IdentityHint, IdentityKind, InboundMessage
from tests.agent_console.console_support import console_app, csrf_of, form_login


@pytest.fixture
async def app_client(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path
) -> AsyncIterator[Callable[[str, str], Any]]:
    """Signed-in clients of one app, by user name."""
    app = console_app(database_url, tmp_path)
    first: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    clients: list[TestClient] = []

    async def signed_in(username: str, password: str) -> TestClient:
        client = first if not clients else await aiohttp_client(first.server)
        clients.append(client)
        await form_login(client, username, password)
        html = await (await client.get("/console/")).text()
        client.csrf = csrf_of(html)  # type: ignore[attr-defined]
        return client

    yield signed_in


async def next_of(ws: ClientWebSocketResponse, kind: str, within: float = 5.0,
                  **match: Any) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            event = await ws.receive_json()
            if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return dict(event)

    return await asyncio.wait_for(wait(), within)


async def drain(ws: ClientWebSocketResponse, seconds: float = 0.5) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    try:
        while True:
            seen.append(await asyncio.wait_for(ws.receive_json(), seconds))
    except TimeoutError:
        return seen


def center_of(client: TestClient) -> ContactCenter:
    return client.server.app[CENTER_KEY]


async def email(center: ContactCenter, key: str, body: str = "ขอคัดสำเนาทะเบียนบ้าน") -> Any:
    return await center.ingest(InboundMessage(
        Channel.EMAIL, key, f"<{key}@mail.th>", body,
        identity_hints=(IdentityHint(IdentityKind.EMAIL, f"{key}@mail.th"),)))


async def test_the_live_socket_needs_a_session_and_this_sites_origin(
    app_client: Callable[[str, str], Any],
) -> None:
    somsri = await app_client("somsri", "demo-agent-1")
    with pytest.raises(WSServerHandshakeError) as refused:
        await somsri.ws_connect("/console/ws", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
    somsri.session.cookie_jar.clear()
    with pytest.raises(WSServerHandshakeError) as anonymous:
        await somsri.ws_connect("/console/ws")
    assert anonymous.value.status == 401


async def test_an_offer_and_the_citizens_messages_reach_only_the_agent_concerned(
    app_client: Callable[[str, str], Any],
) -> None:
    somsri = await app_client("somsri", "demo-agent-1")
    anan = await app_client("anan", "demo-agent-2")
    supervisor = await app_client("supervisor", "demo-supervisor")
    ws_somsri = await somsri.ws_connect("/console/ws")
    ws_anan = await anan.ws_connect("/console/ws")
    ws_sup = await supervisor.ws_connect("/console/ws")
    origin = f"http://{somsri.host}:{somsri.port}"
    await (await somsri.ws_connect("/console/ws", headers={"Origin": origin})).close()
    await somsri.put("/api/v1/agents/me/presence", json={"presence": "available"},
                     headers={"X-CSRF-Token": somsri.csrf})
    await next_of(ws_somsri, "presence", presence="available")
    center = center_of(somsri)
    result = await email(center, "live-1", "บ้านเลขที่ 99 ขอย้ายออก")

    offer = await next_of(ws_somsri, "offer")
    assert offer["expires_at"] > offer["server_time"]
    wall = await next_of(ws_sup, "wall")
    assert sum(q["waiting"] for q in wall["queues"]) >= 0
    await somsri.post(f"/api/v1/tasks/{offer['task_id']}/accept",
                      headers={"X-CSRF-Token": somsri.csrf})
    await next_of(ws_somsri, "task", event="TaskAccepted")
    await center.ingest(
        InboundMessage(Channel.EMAIL, "live-1", "<live-1b@mail.th>", "ขอสอบถามเพิ่มเติม",
                       identity_hints=(IdentityHint(IdentityKind.EMAIL, "live-1@mail.th"),)))
    message = await next_of(ws_somsri, "message", conversation_id=result.conversation_id)
    assert message["body"] == "ขอสอบถามเพิ่มเติม" and message["direction"] == "inbound"

    activity = await next_of(ws_sup, "activity", conversation_id=result.conversation_id)
    assert "body" not in activity  # the wall learns that something moved, not what
    await ws_sup.send_json({"monitor": result.conversation_id})
    await asyncio.sleep(0.2)
    await somsri.post(f"/api/v1/conversations/{result.conversation_id}/messages",
                      json={"body": "รับเรื่องค่ะ"}, headers={"X-CSRF-Token": somsri.csrf})
    watched = await next_of(ws_sup, "message", conversation_id=result.conversation_id)
    assert watched["body"] == "รับเรื่องค่ะ" and watched["author"] == "agent"

    leaked = [e for e in await drain(ws_anan) if e["type"] in ("offer", "message", "task")]
    assert leaked == []
    for ws in (ws_somsri, ws_anan, ws_sup):
        await ws.close()


async def test_a_supervisor_reassigns_a_conversation_to_another_queue_with_a_note(
    app_client: Callable[[str, str], Any],
) -> None:
    somsri = await app_client("somsri", "demo-agent-1")
    supervisor = await app_client("supervisor", "demo-supervisor")
    await somsri.put("/api/v1/agents/me/presence", json={"presence": "available"},
                     headers={"X-CSRF-Token": somsri.csrf})
    center = center_of(somsri)
    result = await email(center, "re-1")
    for _ in range(100):
        desk = await (await somsri.get("/api/v1/desk")).json()
        if desk["items"]:
            break
        await asyncio.sleep(0.02)
    task_id = desk["items"][0]["task"]["id"]
    await somsri.post(f"/api/v1/tasks/{task_id}/accept", headers={"X-CSRF-Token": somsri.csrf})
    by_agent = await somsri.post(f"/api/v1/tasks/{task_id}/reassign",
                                 json={"queue_id": "tax_fines"},
                                 headers={"X-CSRF-Token": somsri.csrf})
    assert by_agent.status == 403
    moved = await supervisor.post(f"/api/v1/tasks/{task_id}/reassign",
                                  json={"queue_id": "tax_fines", "note": "เรื่องภาษี"},
                                  headers={"X-CSRF-Token": supervisor.csrf})
    assert moved.status == 200, await moved.text()
    body = await moved.json()
    assert body["queue_id"] == "tax_fines" and body["status"] in ("pending", "reserved")
    notes = [m for m in await center.messages(result.conversation_id) if m.internal]
    assert [(n.body, n.author_name) for n in notes] == [
        ("เรื่องภาษี", "วิภา หัวหน้าเวร (Wipa, supervisor)")]


async def test_reports_count_the_periods_tasks_by_channel_and_export_csv(
    app_client: Callable[[str, str], Any],
) -> None:
    somsri = await app_client("somsri", "demo-agent-1")
    supervisor = await app_client("supervisor", "demo-supervisor")
    center = center_of(somsri)
    await somsri.put("/api/v1/agents/me/presence", json={"presence": "available"},
                     headers={"X-CSRF-Token": somsri.csrf})
    result = await email(center, "rep-1")
    for _ in range(100):
        desk = await (await somsri.get("/api/v1/desk")).json()
        if desk["items"]:
            break
        await asyncio.sleep(0.02)
    task_id = desk["items"][0]["task"]["id"]
    headers = {"X-CSRF-Token": somsri.csrf}
    await somsri.post(f"/api/v1/tasks/{task_id}/accept", headers=headers)
    await somsri.patch(f"/api/v1/cases/{result.case_id}",
                       json={"status": "resolved", "resolution": "แจ้งขั้นตอนแล้ว"},
                       headers=headers)
    async with center.db.sessions() as s, s.begin():
        case = await s.get(Case, result.case_id)
        assert case is not None
        case.csat = 4
    await somsri.post(f"/api/v1/tasks/{task_id}/complete",
                      json={"wrap_code": "informed", "wrap_up": False}, headers=headers)
    today = center.clock.now().date()
    period = f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"
    page = await supervisor.get(f"/supervisor/reports?{period}&by=channel")
    html = await page.text()
    assert page.status == 200
    assert '<svg id="volume-chart" role="img"' in html and "<th scope=\"row\">email</th>" in html
    exported = await supervisor.get(f"/supervisor/reports?{period}&by=channel&format=csv")
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await exported.text())))
    assert len(rows) == 1
    row = rows[0]
    assert row["channel"] == "email" and row["volume"] == "1" and row["answered"] == "1"
    assert row["service_level"] == "1.0" and row["one_stop"] == "1.0" and row["csat"] == "4.0"
    assert float(row["aht_seconds"]) >= 0 and row["abandonment"] == "0.0"
    by_agent = await supervisor.get(f"/supervisor/reports?{period}&by=agent&format=csv")
    assert "สมศรี ใจดี (Somsri)" in await by_agent.text()
    empty = await supervisor.get("/supervisor/reports?from=2001-01-01&to=2001-01-02&by=queue")
    assert "ไม่มีข้อมูลในช่วงเวลานี้" in await empty.text()


async def test_signing_out_closes_the_live_socket(
    app_client: Callable[[str, str], Any],
) -> None:
    somsri = await app_client("somsri", "demo-agent-1")
    ws = await somsri.ws_connect("/console/ws")
    await next_of(ws, "hello")
    await somsri.post("/console/logout", data={"csrf_token": somsri.csrf},
                      allow_redirects=False)
    closing = await asyncio.wait_for(ws.receive(), 5)
    assert closing.type.name == "CLOSE" and closing.data == 4401
