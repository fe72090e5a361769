"""Transfers, rejects and after-contact work through the REST API the console uses, on the
real app (SQLite and PostgreSQL): a transfer to a named colleague or to a queue carries
its note to whoever takes the task next; a bad target is refused with the field and the
reason; a declined offer goes elsewhere; supervisors reassign to a named agent; resolving
starts after-contact work, which ends on Finish or when the wrap-up time runs out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from onestop.demo import seed_demo
from routing import Channel, ContactCenter, InboundMessage
from tests.agent_console.console_support import console_app
from tests.agent_console.test_console_chat_browser import chat_wrap_settings
from tests.channels.webchat.conftest import AnsweringBot
from tests.support.app import bearer, login

WRAP = 300.0


class Staff:
    """One signed-in staff member speaking to the API."""

    def __init__(self, client: TestClient, me: dict[str, Any]) -> None:
        self.client, self.id, self.headers = client, me["me"]["agent_id"], bearer(me["token"])

    async def call(self, method: str, path: str, json: Any = None,
                   status: int = 200) -> Any:
        response = await self.client.request(method, f"/api/v1{path}", json=json,
                                             headers=self.headers)
        text = await response.text()
        assert response.status == status, text
        return await response.json() if text else None

    async def available(self) -> None:
        await self.call("PUT", "/agents/me/presence", {"presence": "available"})

    async def desk(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/desk"))["items"])


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path,
                 clock: Any) -> AsyncIterator[TestClient]:
    app = console_app(database_url, tmp_path, clock=clock, bot=AnsweringBot(),
                      routing_settings=chat_wrap_settings(WRAP))
    test_client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    yield test_client


async def staff(client: TestClient, username: str, password: str) -> Staff:
    return Staff(client, await login(client, username, password))


async def eventually(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Wait until `check()` returns something true (the core works in the background)."""
    async with asyncio.timeout(seconds):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.05)


async def offered(agent: Staff) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        return next((i for i in await agent.desk() if i["task"]["status"] == "reserved"), None)
    return dict(await eventually(find))


async def chat_for_a_person(client: TestClient, key: str, text: str) -> str:
    center: ContactCenter = client.server.app[CENTER_KEY]
    result = await center.ingest(InboundMessage(Channel.CHAT, key, f"{key}:1", text))
    return result.conversation_id


async def test_transfer_to_a_named_agent_and_to_a_queue_each_with_a_note_that_arrives(
    client: TestClient,
) -> None:
    somsri = await staff(client, "somsri", "demo-agent-1")
    anan = await staff(client, "anan", "demo-agent-2")
    malee = await staff(client, "malee", "demo-agent-3")
    await somsri.available()
    conversation_id = await chat_for_a_person(client, "tr-1", "ขอคุยกับเจ้าหน้าที่ค่ะ")
    task_id = (await offered(somsri))["task"]["id"]
    await somsri.call("POST", f"/tasks/{task_id}/accept")
    await anan.available()

    # Only colleagues signed in are offered, with the queues they serve.
    colleagues = {c["id"]: c for c in await somsri.call("GET", "/colleagues")}
    assert set(colleagues) == {somsri.id, anan.id}
    assert "general" in colleagues[anan.id]["queues"]
    assert "welfare" not in colleagues[anan.id]["queues"]

    # Bad targets are refused, naming the field and the reason; nothing moves.
    for body, words in (
        ({"queue_id": "general", "agent_id": "nobody"}, "unknown agent"),
        ({"queue_id": "general", "agent_id": malee.id}, "not signed in"),
        ({"queue_id": "welfare", "agent_id": anan.id}, "does not serve queue 'welfare'"),
        ({"queue_id": "general", "agent_id": somsri.id}, "choose someone else"),
        ({"queue_id": "nowhere"}, "unknown queue"),
    ):
        refused = await somsri.call("POST", f"/tasks/{task_id}/transfer", body, status=400)
        assert words in refused["error"]["message"], refused
        assert refused["error"]["message"].startswith(("agent_id", "queue_id"))
    assert (await somsri.call("GET", f"/tasks/{task_id}"))["status"] == "assigned"

    # To a named colleague, with a note: it is offered to her alone, note included.
    await somsri.call("POST", f"/tasks/{task_id}/transfer",
                      {"queue_id": "general", "agent_id": anan.id,
                       "note": "ขอข้อมูลภาษีป้าย โปรดช่วยต่อ"})
    assert await somsri.desk() == []
    offer = await offered(anan)
    assert offer["task"]["id"] == task_id
    await anan.call("POST", f"/tasks/{task_id}/accept")
    conversation = await anan.call("GET", f"/conversations/{conversation_id}")
    (note,) = [m for m in conversation["messages"] if m["internal"]]
    assert (note["body"], note["author"]) == ("ขอข้อมูลภาษีป้าย โปรดช่วยต่อ", "agent")
    assert note["author_name"] == "สมศรี ใจดี (Somsri)"

    # To a queue, with a note: whoever serves it takes the task and reads both notes.
    await malee.available()
    await anan.call("POST", f"/tasks/{task_id}/transfer",
                    {"queue_id": "welfare", "note": "เรื่องเบี้ยผู้สูงอายุ ส่งต่อฝ่ายสวัสดิการ"})
    offer = await offered(malee)
    assert offer["task"]["id"] == task_id and offer["task"]["queue_id"] == "welfare"
    await malee.call("POST", f"/tasks/{task_id}/accept")
    conversation = await malee.call("GET", f"/conversations/{conversation_id}")
    assert [m["body"] for m in conversation["messages"] if m["internal"]] == [
        "ขอข้อมูลภาษีป้าย โปรดช่วยต่อ", "เรื่องเบี้ยผู้สูงอายุ ส่งต่อฝ่ายสวัสดิการ"]
    case = await malee.call("GET", f"/cases/{offer['task']['case_id']}")
    assert case["transfers"] == 2


async def test_a_rejected_offer_goes_to_someone_else_and_a_supervisor_reassigns_to_a_name(
    client: TestClient,
) -> None:
    somsri = await staff(client, "somsri", "demo-agent-1")
    anan = await staff(client, "anan", "demo-agent-2")
    supervisor = await staff(client, "supervisor", "demo-supervisor")
    await anan.available()
    conversation_id = await chat_for_a_person(client, "rj-1", "ขอคุยกับเจ้าหน้าที่ค่ะ")
    task_id = (await offered(anan))["task"]["id"]
    await somsri.available()
    await anan.call("POST", f"/tasks/{task_id}/reject")
    assert task_id not in [i["task"]["id"] for i in await anan.desk()]
    assert (await offered(somsri))["task"]["id"] == task_id  # the next agent gets it
    # Someone else's offer cannot be taken or declined.
    await anan.call("POST", f"/tasks/{task_id}/accept", status=409)
    await somsri.call("POST", f"/tasks/{task_id}/accept")

    # The supervisor moves it to a named agent: an agent may not, and a bad name is refused.
    body = {"queue_id": "general", "agent_id": anan.id, "note": "อนันต์ช่วยรับต่อ"}
    await anan.call("POST", f"/tasks/{task_id}/reassign", body, status=403)
    refused = await supervisor.call("POST", f"/tasks/{task_id}/reassign",
                                    {**body, "agent_id": "ghost"}, status=400)
    assert refused["error"]["message"].startswith("agent_id: unknown agent")
    await supervisor.call("POST", f"/tasks/{task_id}/reassign", body)
    assert (await offered(anan))["task"]["id"] == task_id
    await anan.call("POST", f"/tasks/{task_id}/accept")
    conversation = await anan.call("GET", f"/conversations/{conversation_id}")
    notes = [(m["body"], m["author_name"]) for m in conversation["messages"] if m["internal"]]
    assert notes == [("อนันต์ช่วยรับต่อ", "วิภา หัวหน้าเวร (Wipa, supervisor)")]


async def test_after_contact_work_ends_on_finish_or_when_the_wrap_up_time_runs_out(
    client: TestClient, clock: Any,
) -> None:
    somsri = await staff(client, "somsri", "demo-agent-1")
    await somsri.available()
    tasks = []
    for key in ("acw-1", "acw-2"):
        await chat_for_a_person(client, key, "ขอคุยกับเจ้าหน้าที่ค่ะ")
        task_id = (await offered(somsri))["task"]["id"]
        await somsri.call("POST", f"/tasks/{task_id}/accept")
        tasks.append(task_id)
    finish_me, time_out = tasks

    # Resolving (what the console sends) starts after-contact work with a deadline.
    wrapping = await somsri.call("POST", f"/tasks/{finish_me}/complete",
                                 {"wrap_code": "resolved", "wrap_up": True})
    assert wrapping["status"] == "wrapping"
    item = next(i for i in await somsri.desk() if i["task"]["id"] == finish_me)
    assert item["task"]["status"] == "wrapping"
    assert item["wrap_ends_at"] == pytest.approx(clock.now().timestamp() + WRAP, abs=1)
    # Finish ends it at once.
    done = await somsri.call("POST", f"/tasks/{finish_me}/complete", {"wrap_up": False})
    assert done["status"] == "completed" and done["wrap_code"] == "resolved"

    await somsri.call("POST", f"/tasks/{time_out}/complete",
                      {"wrap_code": "informed", "wrap_up": True})
    me = await somsri.call("GET", "/agents/me")
    assert me["activity"] == "wrap-up"
    clock.advance(WRAP - 5)
    await asyncio.sleep(1.5)  # the core's timer runs at least once a second
    assert (await somsri.call("GET", f"/tasks/{time_out}"))["status"] == "wrapping"
    clock.advance(10)

    async def completed() -> bool:
        return bool((await somsri.call("GET", f"/tasks/{time_out}"))["status"] == "completed")
    await eventually(completed)
    assert await somsri.desk() == []
    assert (await somsri.call("GET", "/agents/me"))["activity"] == "available"
