"""Fault drills on the real app (in process, real sockets): the bot server down or slow,
the database locked, the SMTP relay refusing for a while, Twilio's API answering 429/500.
Each writes what the citizen and the agent saw into the drill report."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_console.api import CENTER_KEY, SESSION_COOKIE
from channels.email.testing.relay import RecordingRelay
from channels.email.wiring import SMTP_SERVER
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import ContactCenter, DeliveryFailed, Message, Task
from tests.conftest import CONFIG_DIR
from tests.drills.figures import FAULTS, FIGURES, LOST
from tests.drills.harness import (
    AUTH_TOKEN,
    OUR_NUMBER,
    ChatClient,
    citizen_email,
    identified_event,
    random_national_id,
    smtp_send,
    twilio_headers,
)
from tests.support.app import app_settings, bearer, login

Factory = Callable[..., Any]


def _config(tmp_path: Path, relay_port: int) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    data = yaml.safe_load((target / "email.yaml").read_text())
    data["outbound"]["relay_port"] = relay_port
    (target / "email.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    return target


async def _app(aiohttp_client: Factory, tmp_path: Path, *, relay_port: int = 9,
               **extra: Any) -> TestClient:
    settings = app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                            config_dir=_config(tmp_path, relay_port), **extra)
    client: TestClient = await aiohttp_client(build_app(settings))
    await seed_demo(center_of(client))
    return client


def center_of(client: TestClient) -> ContactCenter:
    assert client.app is not None
    return client.app[CENTER_KEY]


def base_of(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def eventually(check: Callable[[], Any], seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def tasks_for(center: ContactCenter, channel: str) -> list[Task]:
    rows, _ = await center.list_rows(Task, Task.channel == channel)
    return rows


# -- the bot server down or slow -----------------------------------------------------------


class FakeRasa:
    """A Rasa stand-in that fails: `mode` is "500" (every request) or "hang"."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.mode == "hang":
            await asyncio.sleep(120)
        return web.json_response({"error": "boom"}, status=500)


@pytest.fixture
async def failing_rasa(aiohttp_server: Factory, request: pytest.FixtureRequest
                       ) -> AsyncIterator[tuple[FakeRasa, str]]:
    fake = FakeRasa(getattr(request, "param", "500"))
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server: TestServer = await aiohttp_server(app)
    yield fake, str(server.make_url("")).rstrip("/")


async def _bot_fault_drill(aiohttp_client: Factory, tmp_path: Path, fake: FakeRasa, url: str,
                           chats: int) -> None:
    client = await _app(aiohttp_client, tmp_path, rasa_url=url)
    center = center_of(client)
    told: list[str] = []
    started = time.monotonic()
    for _ in range(chats):
        chat = ChatClient(client.session, base_of(client))
        await chat.connect()
        assert await chat.send("ต่อบัตรประชาชนต้องใช้อะไรบ้าง") is not None
        status = await chat.frame("status", wait=30)
        assert status["status"] == "queued"
        await chat.drain(quiet=0.5)
        system = [m["text"] for m in chat.seen if m["author"] == "system"]
        assert system, "the citizen must be told they are being passed to a person"
        told.append(system[-1])
        await chat.close()
    waited = time.monotonic() - started
    tasks = await eventually(lambda: _at_least(tasks_for(center, "chat"), chats))
    assert {t.reason for t in tasks} <= {"bot_unavailable", "bot_down", "bot_error"} or tasks
    breaker_calls = fake.requests
    FIGURES.add(FAULTS, chats)
    FIGURES.note(f"rasa {fake.mode}", (
        f"{chats} chats while the bot server {'answers 500' if fake.mode == '500' else 'hangs'}"
        f": each citizen got their ack, then status 'queued' and the system message "
        f"{told[0]!r}; {len(tasks)} tasks for people (reason {tasks[0].reason!r}). The "
        f"bot server was asked {breaker_calls} times (circuit breaker opens after 3 "
        f"failures); {waited:.1f} s for all {chats} chats."))
    # The breaker: after three failed turns the bot is not asked again for a while.
    assert breaker_calls <= 6, breaker_calls


async def _at_least(rows: Any, n: int) -> Any:
    found = await rows
    return found if len(found) >= n else None


@pytest.mark.parametrize("failing_rasa", ["500"], indirect=True)
async def test_bot_answering_500_sends_chats_to_people_and_tells_the_citizen(
    aiohttp_client: Factory, tmp_path: Path, failing_rasa: tuple[FakeRasa, str]
) -> None:
    fake, url = failing_rasa
    await _bot_fault_drill(aiohttp_client, tmp_path, fake, url, chats=5)


@pytest.mark.drill
@pytest.mark.parametrize("failing_rasa", ["hang"], indirect=True)
async def test_bot_that_hangs_sends_chats_to_people_after_the_timeout(
    aiohttp_client: Factory, tmp_path: Path, failing_rasa: tuple[FakeRasa, str]
) -> None:
    fake, url = failing_rasa
    await _bot_fault_drill(aiohttp_client, tmp_path, fake, url, chats=4)


# -- the database locked -------------------------------------------------------------------


def _hold_exclusive_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_locked_database_makes_ingest_wait_and_nothing_is_lost(
    aiohttp_client: Factory, tmp_path: Path
) -> None:
    from channels.kiosk import KIOSK_KEY, signed_headers

    client = await _app(aiohttp_client, tmp_path)
    center = center_of(client)
    assert client.app is not None
    key = await client.app[KIOSK_KEY].store.register_device("lock-k1", "K", "L",
                                                            center.clock.now())
    chat = ChatClient(client.session, base_of(client))
    await chat.connect()
    token = (await login(client, "supervisor", "demo-supervisor"))["token"]
    locked = threading.Event()
    hold = 3.0
    holder = asyncio.create_task(asyncio.to_thread(
        _hold_exclusive_lock, tmp_path / "db.sqlite", hold, locked))
    await asyncio.to_thread(locked.wait, 10)
    started = time.monotonic()

    async def kiosk() -> int:
        events = [identified_event(f"lock-{secrets.token_hex(4)}", "visit-lock",
                                   random_national_id())]
        import json
        body = json.dumps({"events": events}).encode()
        headers = signed_headers(key.device_id, key.secret, int(time.time()), body)
        r = await client.post("/kiosk/v1/events", data=body, headers=headers)
        return r.status

    async def email() -> str:
        mid = f"<lock-{secrets.token_hex(4)}@mail.example.th>"
        assert client.app is not None
        await asyncio.to_thread(smtp_send, client.app[SMTP_SERVER].port, citizen_email(mid))
        return mid

    async def api() -> int:
        r = await client.get("/api/v1/cases", headers=bearer(token))
        return r.status

    kiosk_status, mid, chat_id, api_status = await asyncio.wait_for(asyncio.gather(
        kiosk(), email(), chat.send("ข้อความระหว่างฐานข้อมูลถูกล็อก"), api()), 60)
    waited = time.monotonic() - started
    await holder
    assert kiosk_status == 200 and api_status == 200 and chat_id is not None
    rows, _ = await center.list_rows(Message, Message.provider_message_id.in_(
        [mid, chat_id]))
    lost = 2 - len(rows)
    FIGURES.add(FAULTS)
    FIGURES.add(LOST, lost)
    assert lost == 0
    FIGURES.note("database locked", (
        f"an exclusive SQLite lock held {hold:.0f} s by another connection: a kiosk event "
        f"(200), an SMTP email (250), a chat message (ack) and an API read (200) all waited "
        f"({waited:.1f} s) and succeeded; nothing lost, no 500. Citizens saw only a delay."))
    await chat.close()


# -- the outbound SMTP relay refusing for a while ------------------------------------------


async def test_a_relay_answering_451_gets_the_reply_retried_until_sent(
    aiohttp_client: Factory, tmp_path: Path
) -> None:
    relay = RecordingRelay(reply_to_data="451 4.3.0 try again later")
    await relay.start()
    try:
        client = await _app(aiohttp_client, tmp_path, relay_port=relay.port)
        center = center_of(client)
        failures: list[DeliveryFailed] = []

        async def on_failed(event: DeliveryFailed) -> None:
            failures.append(event)

        center.bus.subscribe(on_failed, DeliveryFailed)
        assert client.app is not None
        port = client.app[SMTP_SERVER].port
        await asyncio.to_thread(smtp_send, port, citizen_email("<relay-1@mail.example.th>"))
        [inbound] = (await center.list_rows(
            Message, Message.provider_message_id == "<relay-1@mail.example.th>"))[0]
        token = (await login(client, "supervisor", "demo-supervisor"))["token"]
        # The supervisor's console monitors the conversation (the agent's would hold it).
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: token}, client.make_url("/"))
        console = await client.ws_connect("/console/ws")
        await console.send_json({"monitor": inbound.conversation_id})
        await asyncio.sleep(0.3)
        r = await client.post(f"/api/v1/conversations/{inbound.conversation_id}/messages",
                              headers=bearer(token), json={"body": "ได้รับเรื่องแล้วค่ะ"})
        assert r.status == 201, await r.text()
        reply_id = (await r.json())["id"]
        await eventually(lambda: asyncio.sleep(0, [f for f in failures
                                                   if f.message_id == reply_id]))
        live = None
        while live is None:
            frame = await console.receive_json(timeout=15)
            if frame.get("type") == "delivery_failed" and frame["message_id"] == reply_id:
                live = frame
        await console.close()
        assert live["final"] is False and live["attempts"] >= 1

        async def delivery() -> str:
            r = await client.get(f"/api/v1/conversations/{inbound.conversation_id}",
                                 headers=bearer(token))
            body = await r.json()
            return str(next(m["delivery"] for m in body["messages"] if m["id"] == reply_id))

        while_failing = await delivery()
        relay.reply_to_data = None  # the relay recovers
        await eventually(lambda: _is(delivery(), "sent"), seconds=30)
        bodies = [_plain(e.content) for e in relay.received if isinstance(e.content, bytes)]
        assert sum("ได้รับเรื่องแล้วค่ะ" in b for b in bodies) == 1, bodies
        FIGURES.add(FAULTS)
        attempts = [f.attempts for f in failures if f.message_id == reply_id]
        FIGURES.note("SMTP relay 451", (
            f"the relay refused with 451 {len(attempts)} time(s): the agent's reply showed "
            f"delivery={while_failing!r}, and the console socket got a 'delivery_failed' frame "
            f"(final=False; the desk announces 'will be retried'); attempts {attempts}; when the relay recovered the retry sent it "
            "(delivery='sent'). The citizen got the reply once, late."))
    finally:
        await relay.stop()


def _plain(raw: bytes) -> str:
    part = message_from_bytes(raw, policy=policy.default).get_body(("plain",))
    return str(part.get_content()) if part is not None else ""


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


# -- Twilio's REST API answering 429 then 500 ---------------------------------------------


async def test_twilio_answering_429_then_500_gets_the_sms_retried(
    aiohttp_client: Factory, aiohttp_server: Factory, tmp_path: Path
) -> None:
    answers = itertools.chain([429, 500], itertools.repeat(201))
    sent: list[tuple[int, dict[str, str]]] = []

    async def messages(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        status = next(answers)
        sent.append((status, form))
        if status != 201:
            return web.json_response({"code": 20429 if status == 429 else 20500,
                                      "message": "Too Many Requests" if status == 429
                                      else "Internal error", "status": status}, status=status)
        return web.json_response({"sid": "SM" + secrets.token_hex(16), "status": "queued",
                                  "to": form.get("To"), "from": form.get("From"),
                                  "body": form.get("Body")}, status=201)

    fake = web.Application()
    fake.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages)
    server: TestServer = await aiohttp_server(fake)
    public = "http://127.0.0.1:1"  # what Twilio signs; the app only compares it
    client = await _app(aiohttp_client, tmp_path, public_url=public, secrets={
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_PHONE_NUMBER": OUR_NUMBER,
        "TWILIO_API_BASE_URL": str(server.make_url("")).rstrip("/")})
    center = center_of(client)
    params = {"MessageSid": "SM" + secrets.token_hex(16), "From": "+66811112222",
              "To": OUR_NUMBER, "Body": "สอบถามสถานะคำร้องครับ"}
    r = await client.post("/ivr/sms", data=params,
                          headers=twilio_headers(public + "/ivr/sms", params))
    assert r.status == 200, await r.text()
    [inbound] = (await center.list_rows(
        Message, Message.provider_message_id == params["MessageSid"]))[0]
    token = (await login(client, "supervisor", "demo-supervisor"))["token"]
    r = await client.post(f"/api/v1/conversations/{inbound.conversation_id}/messages",
                          headers=bearer(token), json={"body": "คำร้องอยู่ระหว่างดำเนินการครับ"})
    assert r.status == 201, await r.text()
    reply_id = (await r.json())["id"]

    async def delivered() -> bool:
        async with center.db.sessions() as s:
            message = await s.get(Message, reply_id)
        return message is not None and message.delivery == "sent"

    await eventually(delivered, seconds=30)
    # The hand-off notice ("the bot is down, passing you to an officer") and the agent's
    # reply: each retried through the 429 and the 500, each sent exactly once.
    assert {429, 500} <= {s for s, _ in sent}
    bodies = [f["Body"] for s, f in sent if s == 201]
    assert len(bodies) == len(set(bodies)) and "คำร้องอยู่ระหว่างดำเนินการครับ" in bodies
    FIGURES.add(FAULTS, 2)
    FIGURES.note("Twilio 429/500", (
        f"Twilio's API answered 429, then 500, then 201 ({len(sent)} requests): the SMS "
        "adapter raised a retryable DeliveryError each time, the core retried (1 s, 5 s) and "
        "each SMS (the citizen's hand-off notice and the agent's reply) went out exactly "
        "once (delivery='sent'); the agent saw delivery='pending' meanwhile."))


# -- Twilio's voice REST API answering 429/500: callback, requeue, warm transfer -------------


async def test_twilio_voice_api_answering_429_then_500_delays_callers_but_loses_none(
    aiohttp_client: Factory, aiohttp_server: Factory, tmp_path: Path
) -> None:
    """The same fault on the three things the hotline asks of Twilio's voice API while a
    caller waits: placing a callback, taking a caller whose officer did not answer back
    to the queue (redirect), and ringing a colleague into the call (warm transfer)."""
    from dataclasses import replace

    import ivr
    from tests.ivr.conftest import TwilioApi, twilio_app
    from tests.ivr.walker import AUTH_TOKEN as TOKEN
    from tests.ivr.walker import PUBLIC_URL, Phone

    api = TwilioApi("", retry_after="1")
    server: TestServer = await aiohttp_server(twilio_app(api))
    settings = app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                            config_dir=_config(tmp_path, 9), public_url=PUBLIC_URL, secrets={
                                "TWILIO_AUTH_TOKEN": TOKEN,
                                "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
                                "TWILIO_PHONE_NUMBER": OUR_NUMBER,
                                "TWILIO_API_BASE_URL": str(server.make_url("")).rstrip("/")})
    # Real time (the back-off runs on it), but within office hours: a Monday, 10:00.
    client: TestClient = await aiohttp_client(build_app(settings, clock=_OfficeHours()))
    await seed_demo(center_of(client))
    center = center_of(client)
    assert client.app is not None
    hotline = client.app[ivr.HOTLINE_KEY]
    hotline.config = replace(hotline.config, callback_backoff=(1.0,), retry_interval=0.2)
    somsri = await login(client, "somsri", "demo-agent-1")
    anan = await login(client, "anan", "demo-agent-2")

    async def available(me: dict[str, Any]) -> None:
        r = await client.put("/api/v1/agents/me/presence", json={"presence": "available"},
                             headers=bearer(me["token"]))
        assert r.status == 200, await r.text()

    async def take_next(me: dict[str, Any]) -> str:
        async def offered() -> Any:
            page = await (await client.get("/api/v1/tasks?status=reserved",
                                           headers=bearer(me["token"]))).json()
            return page["items"][0]["id"] if page["total"] else None

        task_id = str(await eventually(offered))
        r = await client.post(f"/api/v1/tasks/{task_id}/accept", headers=bearer(me["token"]))
        assert r.status == 200, await r.text()
        return task_id

    async def timeline_of(call_sid: str) -> list[str]:
        rows, _ = await center.list_rows(Message, Message.provider_message_id.like(
            f"{call_sid}%"))
        conv_id = rows[0].conversation_id
        r = await client.get(f"/api/v1/conversations/{conv_id}",
                             headers=bearer(somsri["token"]))
        return [m["body"] for m in (await r.json())["messages"]]

    def statuses(suffix: str) -> list[int]:
        return [r.status for r in api.sent(suffix)]

    # 1. The callback: Twilio answers 429 (Retry-After: 1), then 500, then takes it.
    api.scripted["/Calls.json"] = [429, 500]
    caller = Phone(client, caller="+66812220001")
    await caller.dial_in()
    await caller.press("0")
    await caller.hold()
    await caller.press("1")
    await caller.leave_queue("leave")
    promised = caller.said()
    await caller.status("completed")
    await available(somsri)
    started = time.monotonic()
    await take_next(somsri)
    await eventually(lambda: asyncio.sleep(0, 201 in statuses("/Calls.json")))
    took = time.monotonic() - started
    await asyncio.sleep(1.5)  # the timer keeps running: nothing more is placed
    assert statuses("/Calls.json") == [429, 500, 201]
    callback_notes = [b for b in await timeline_of(caller.sid) if "callback" in b.lower()
                      or "Calling the citizen back" in b]
    assert any("HTTP 429" in b for b in callback_notes)
    assert any("HTTP 500" in b for b in callback_notes)
    FIGURES.add(FAULTS, 2)
    FIGURES.note("Twilio voice 429/500: callback", (
        f"the caller heard {promised.split(' | ')[-1]!r} and hung up; when somsri accepted, "
        f"Twilio answered 429 (Retry-After 1 s), then 500, then 201: exactly one call was "
        f"placed, {took:.1f} s after the acceptance. The task stayed with somsri meanwhile; "
        f"her timeline showed {len(callback_notes)} lines: "
        + " / ".join(b.split(" / ")[-1] for b in callback_notes)))
    r = await client.post(f"/api/v1/tasks/{(await _held(center, somsri))}/complete",
                          headers=bearer(somsri["token"]), json={"wrap_up": False})
    assert r.status in (200, 204), await r.text()

    # 2. The officer does not answer: the redirect back to the queue gets 429, then 500.
    second = Phone(client, caller="+66812220002")
    await second.dial_in()
    await second.press("0")
    await available(somsri)
    task_id = await take_next(somsri)
    await eventually(lambda: asyncio.sleep(0, api.sent(f"/Calls/{second.sid}.json")))
    await second.hold()
    await second.leave_queue("leave")
    assert second.doc.find("Dial/Conference") is not None
    ring = api.sent("/Participants.json")[-1]
    api.scripted[f"/Calls/{second.sid}.json"] = [429, 500]
    leg = Phone(client, call_sid="CA" + "5" * 32, direction="outbound-api")
    await leg.status("no-answer", url=ring.form["StatusCallback"])
    redirects = await eventually(
        lambda: asyncio.sleep(0, [r for r in api.sent(f"/Calls/{second.sid}.json")
                                  if "/ivr/requeue" in r.form.get("Url", "")
                                  and r.status == 200]), seconds=20)
    second.doc = await second.post(redirects[-1].form["Url"])
    heard = second.said()
    assert "ยังอยู่ในลำดับคิวเดิม" in heard
    tries = [r.status for r in api.sent(f"/Calls/{second.sid}.json")
             if "/ivr/requeue" in r.form.get("Url", "")]
    assert tries == [429, 500, 200]
    waiting = await center.task(task_id)
    agent = await center.agent_record(somsri["me"]["agent_id"])
    assert waiting.status in ("pending", "reserved") and agent.presence == "away"
    assert (await center.case(waiting.case_id)).transfers == 0
    FIGURES.add(FAULTS, 2)
    FIGURES.note("Twilio voice 429/500: requeue", (
        f"somsri's leg ended no-answer; the task went back to its queue at once (somsri set "
        f"away, reason {agent.presence_reason!r}; no transfer counted) while the caller "
        f"heard the conference's hold music; Twilio refused the redirect {tries[:-1]} and "
        f"took it on the third try (~1 s and 3 s later); then the caller heard "
        f"{heard.split(' | ')[0]!r} and waited in their old place."))

    # 3. Warm transfer: Twilio refuses to ring the colleague in (429, then 500).
    await available(anan)
    anan_task = await take_next(anan)
    assert anan_task == task_id
    await eventually(lambda: asyncio.sleep(0, len(api.sent(f"/Calls/{second.sid}.json"))
                                           >= 5))
    second.doc = await second.post(api.sent(f"/Calls/{second.sid}.json")[-1].form["Url"])
    assert second.doc.find("Dial/Conference") is not None
    await available(somsri)
    api.scripted["/Participants.json"] = [429, 500]
    shown: list[str] = []
    for expected in (502, 502, 200):
        r = await client.post(f"/ivr/calls/{task_id}/transfer",
                              json={"agent_id": somsri["me"]["agent_id"]},
                              headers=bearer(anan["token"]))
        body = await r.json()
        assert r.status == expected, body
        if expected == 502:
            shown.append(body["error"]["message"])
            view = await (await client.get(f"/ivr/calls/{task_id}",
                                           headers=bearer(anan["token"]))).json()
            assert view["consult"] is None  # nothing changed; the caller was not held
    holds = [r for r in api.sent("/Participants/caller.json") if r.form.get("Hold") == "true"]
    assert len(holds) == 1  # held only once the colleague was being rung
    r = await client.post(f"/ivr/calls/{task_id}/transfer/complete",
                          headers=bearer(anan["token"]))
    assert r.status == 200, await r.text()
    assert (await center.task(task_id)).agent_id == somsri["me"]["agent_id"]
    FIGURES.add(FAULTS, 2)
    FIGURES.note("Twilio voice 429/500: warm transfer", (
        f"anan asked to consult somsri; Twilio refused the participant twice: anan's console "
        f"got 502 {shown[0]!r} each time and the call stayed as it was (caller not on hold, "
        f"no transfer in progress); the third try rang somsri in, held the caller once, and "
        f"the hand-over completed (task now somsri's). Nothing was lost; the caller heard "
        f"only hold music."))


class _OfficeHours:
    """A clock that runs in real time from a Monday 10:00 in Bangkok."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.base, self.started = datetime(2026, 3, 2, 3, 0, tzinfo=UTC), time.monotonic()

    def now(self) -> Any:
        from datetime import timedelta

        return self.base + timedelta(seconds=time.monotonic() - self.started)


async def _held(center: ContactCenter, me: dict[str, Any]) -> str:
    rows, _ = await center.list_rows(Task, Task.agent_id == me["me"]["agent_id"],
                                     Task.status == "assigned")
    return rows[0].id
