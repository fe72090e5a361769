"""The REST API over HTTP on the real app: sign-in, roles, presence, tasks, cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from agent_console.api import CENTER_KEY, api
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import AuditEntry, Channel, ContactCenter, IdentityHint, IdentityKind, InboundMessage
from tests.support.app import app_settings, bearer, login


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path
) -> AsyncIterator[TestClient]:
    app = build_app(app_settings(database_url, tmp_path))
    test_client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    yield test_client


def center_of(client: TestClient) -> ContactCenter:
    return client.server.app[CENTER_KEY]


async def test_the_openapi_document_is_valid_and_lists_every_route(client: TestClient) -> None:
    response = await client.get("/api/openapi.json")
    document = await response.json()
    validate(document)
    registered = {
        (r.method.lower(), r.resource.canonical)
        for r in client.server.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/v1")
    }
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert registered == documented


async def test_the_api_needs_a_sign_in(client: TestClient) -> None:
    response = await client.get("/api/v1/queues")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthenticated"


async def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_account(
    client: TestClient,
) -> None:
    for _ in range(5):
        bad = await client.post("/api/v1/auth/login",
                                json={"username": "anan", "password": "nope"})
        assert bad.status == 401
    locked = await client.post("/api/v1/auth/login",
                               json={"username": "anan", "password": "demo-agent-2"})
    assert locked.status == 423
    assert "locked" in (await locked.json())["error"]["message"]


async def test_an_agent_cannot_list_all_agents_but_a_supervisor_can(client: TestClient) -> None:
    agent = await login(client, "somsri", "demo-agent-1")
    supervisor = await login(client, "supervisor", "demo-supervisor")
    assert (await client.get("/api/v1/agents", headers=bearer(agent["token"]))).status == 403
    listing = await client.get("/api/v1/agents", headers=bearer(supervisor["token"]))
    assert listing.status == 200
    assert {a["username"] for a in await listing.json()} >= {"somsri", "anan", "malee"}


async def test_an_agent_goes_available_accepts_an_email_task_and_completes_it(
    client: TestClient,
) -> None:
    me = await login(client, "somsri", "demo-agent-1")
    headers = bearer(me["token"])
    response = await client.put("/api/v1/agents/me/presence", json={"presence": "available"},
                                headers=headers)
    assert response.status == 200 and (await response.json())["presence"] == "available"
    center = center_of(client)
    await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-x", "<x@mail.th>", "สอบถามเรื่องทะเบียนบ้าน",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "citizen@mail.th"),),
    ))
    for _ in range(100):
        tasks = await (await client.get("/api/v1/tasks", headers=headers)).json()
        if tasks["total"]:
            break
        await asyncio.sleep(0.02)
    task = tasks["items"][0]
    assert task["status"] == "reserved" and task["agent_id"] == me["me"]["agent_id"]
    accepted = await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=headers)
    assert (await accepted.json())["status"] == "assigned"
    done = await client.post(f"/api/v1/tasks/{task['id']}/complete",
                             json={"wrap_code": "informed", "wrap_up": False}, headers=headers)
    body = await done.json()
    assert body["status"] == "completed" and body["wrap_code"] == "informed"


async def test_accepting_a_task_not_offered_to_you_is_a_conflict(client: TestClient) -> None:
    me = await login(client, "anan", "demo-agent-2")
    response = await client.post("/api/v1/tasks/nope/accept", headers=bearer(me["token"]))
    assert response.status == 404
    assert "task" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not JSON"),
        (b'{"presence": "dancing"}', 422, "presence"),
        (b'{"presence": "away", "mood": "sleepy"}', 422, "mood"),
    ],
)
async def test_bad_input_gets_a_clear_4xx(
    client: TestClient, body: bytes, status: int, fragment: str
) -> None:
    me = await login(client, "somsri", "demo-agent-1")
    response = await client.put("/api/v1/agents/me/presence", data=body,
                                headers={**bearer(me["token"]),
                                         "Content-Type": "application/json"})
    assert response.status == status
    assert fragment in (await response.json())["error"]["message"]


async def test_cookie_sessions_need_the_csrf_token_to_change_anything(client: TestClient) -> None:
    me = await login(client, "somsri", "demo-agent-1")  # sets the session cookie
    without = await client.put("/api/v1/agents/me/presence", json={"presence": "available"})
    assert without.status == 403 and "CSRF" in (await without.json())["error"]["message"]
    with_token = await client.put("/api/v1/agents/me/presence", json={"presence": "available"},
                                  headers={"X-CSRF-Token": me["me"]["csrf_token"]})
    assert with_token.status == 200


async def test_reading_a_case_is_written_to_the_audit_log(client: TestClient) -> None:
    center = center_of(client)
    stored = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-audit", "<audit@mail.th>", "ขอคืนภาษี",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "taxpayer@mail.th"),),
    ))
    me = await login(client, "supervisor", "demo-supervisor")
    response = await client.get(f"/api/v1/cases/{stored.case_number}", headers=bearer(me["token"]))
    assert response.status == 200
    assert (await response.json())["number"] == stored.case_number
    entries, _ = await center.list_rows(AuditEntry, AuditEntry.subject_id == stored.case_id)
    assert [(e.action, e.actor_id, e.citizen_id) for e in entries] == [
        ("view", me["me"]["agent_id"], stored.citizen_id)
    ]


async def test_every_response_carries_security_headers_and_a_request_id(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"]


async def test_readiness_reflects_the_database(client: TestClient) -> None:
    response = await client.get("/readyz")
    assert response.status == 200 and (await response.json())["checks"]["database"] == "ok"


def test_every_write_route_in_the_api_declares_who_may_call_it() -> None:
    for route in api.routes:
        if route.method != "GET" and route.path != "/auth/login":
            assert route.roles, f"{route.method} {route.path} has no roles"


async def test_an_agent_hands_a_chat_back_to_the_bot(client: TestClient) -> None:
    center = center_of(client)
    me = await login(client, "somsri", "demo-agent-1")
    headers = bearer(me["token"])
    await client.put("/api/v1/agents/me/presence", json={"presence": "available"},
                     headers=headers)
    stored = await center.ingest(InboundMessage(
        Channel.CHAT, "chat-back", "c-1", "สวัสดี",
        identity_hints=(IdentityHint(IdentityKind.CHAT_VISITOR, "visitor-token-back"),)))
    for _ in range(100):  # no bot is configured: the chat goes to people
        tasks = await (await client.get("/api/v1/tasks", headers=headers)).json()
        if tasks["total"]:
            break
        await asyncio.sleep(0.02)
    task = tasks["items"][0]
    await client.post(f"/api/v1/tasks/{task['id']}/accept", headers=headers)
    response = await client.post(f"/api/v1/conversations/{stored.conversation_id}/bot",
                                 headers=headers)
    assert response.status == 204
    assert (await center.conversation(stored.conversation_id)).status == "bot"
    assert (await center.task(task["id"])).status == "completed"
    last = (await center.messages(stored.conversation_id))[-1]
    assert last.author == "system" and "ผู้ช่วยอัตโนมัติ" in last.body


async def test_many_failed_sign_ins_from_one_address_are_slowed_down(client: TestClient) -> None:
    statuses = []
    for n in range(60):  # different accounts: the per-account lockout never triggers
        response = await client.post("/api/v1/auth/login",
                                     json={"username": f"nobody{n}", "password": "guess"})
        statuses.append(response.status)
        if response.status == 429:
            break
    assert statuses[-1] == 429 and int(response.headers["Retry-After"]) >= 1
    assert len(statuses) > 20 and set(statuses[:20]) == {401}
    blocked = await client.post("/api/v1/auth/login",
                                json={"username": "somsri", "password": "demo-agent-1"})
    assert blocked.status == 429  # even the right password waits until the address cools down
