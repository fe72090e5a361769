"""The real app with the hotline mounted, a local stand-in for Twilio's REST API that
records what it was sent, and a small bot."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import ivr
from agent_console.api import CENTER_KEY
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import BotReply, BotTurn, BotUnavailable, ContactCenter
from tests.conftest import ManualClock
from tests.ivr.walker import AUTH_TOKEN, OUR_NUMBER, PUBLIC_URL, new_sid
from tests.support.app import app_settings

ACCOUNT_SID = "AC" + "a" * 32


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    authorization: str | None
    status: int = 200  # what the stand-in answered


@dataclass
class TwilioApi:
    """Answers like api.twilio.com for the few resources the hotline uses."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    refuse_with: int | None = None
    #: path suffix → statuses to answer first, in order (e.g. [429, 500]), then normally
    scripted: dict[str, list[int]] = field(default_factory=dict)
    retry_after: str = "30"  # the Retry-After of a scripted 429
    #: path suffix → an event the stand-in waits for before answering (a slow Twilio)
    slow: dict[str, asyncio.Event] = field(default_factory=dict)

    def sent(self, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(suffix)]

    async def wait_for(self, suffix: str, count: int = 1) -> list[Recorded]:
        for _ in range(200):
            if len(self.sent(suffix)) >= count:
                return self.sent(suffix)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no request to {suffix}; got {[r.path for r in self.requests]}")


def conference_sid(name: str) -> str:
    """The SID Twilio gives the conference named `name` (the same for the same name)."""
    return "CF" + hashlib.sha256(name.encode()).hexdigest()[:32]


def conference_answer(request: web.Request, form: dict[str, str]) -> web.Response:
    """The Conference Participants API: create (by the conference's name or SID), update
    and delete (by the participant's label)."""
    parts = request.path.split("/")
    conference = parts[parts.index("Conferences") + 1]
    sid = conference if conference.startswith("CF") else conference_sid(conference)
    if request.method == "DELETE":
        return web.Response(status=204)
    if request.path.endswith("/Participants.json"):
        return web.json_response({"account_sid": ACCOUNT_SID, "conference_sid": sid,
                                  "call_sid": new_sid("CA"), "label": form.get("Label"),
                                  "status": "queued", "hold": False, "muted": False},
                                 status=201)
    label = parts[-1].removesuffix(".json")
    return web.json_response({"account_sid": ACCOUNT_SID, "conference_sid": sid,
                              "call_sid": new_sid("CA"), "label": label,
                              "status": "connected", "hold": form.get("Hold") == "true"})


def twilio_app(api: TwilioApi) -> web.Application:
    """The stand-in for api.twilio.com: records every request into `api` and answers as
    `api` says (scripted statuses, a held answer, a refusal) or as Twilio would."""

    async def handle(request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        recorded = Recorded(request.method, request.path, form,
                            request.headers.get("Authorization"))
        api.requests.append(recorded)
        for suffix, event in api.slow.items():
            if request.path.endswith(suffix):
                await event.wait()
        for suffix, statuses in api.scripted.items():
            if request.path.endswith(suffix) and statuses:
                recorded.status = status = statuses.pop(0)
                return web.json_response(
                    {"code": 20429 if status == 429 else 20500, "status": status,
                     "message": "Too Many Requests" if status == 429 else "Internal error"},
                    status=status, headers={"Retry-After": api.retry_after}
                    if status == 429 else None)
        if api.refuse_with:
            recorded.status = api.refuse_with
            return web.json_response({"code": 21211, "message": "Invalid 'To' Phone Number",
                                      "status": api.refuse_with}, status=api.refuse_with)
        recorded.status = 201 if request.method == "POST" and request.path.endswith(
            ("/Calls.json", "/Messages.json", "/Participants.json")) else 200
        if request.path.endswith("/Messages.json"):
            return web.json_response({"sid": new_sid("SM"), "status": "queued",
                                      "to": form.get("To"), "from": form.get("From"),
                                      "body": form.get("Body")}, status=201)
        if "/Conferences/" in request.path:
            return conference_answer(request, form)
        if request.path.endswith("/Calls.json"):
            return web.json_response({"sid": new_sid("CA"), "status": "queued",
                                      "to": form.get("To"), "from": form.get("From")},
                                     status=201)
        sid = request.path.rsplit("/", 1)[-1].removesuffix(".json")
        return web.json_response({"sid": sid, "status": "in-progress"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.fixture
async def twilio_api(aiohttp_server: Callable[..., Any]) -> AsyncIterator[TwilioApi]:
    api = TwilioApi("")
    server: TestServer = await aiohttp_server(twilio_app(api))
    api.url = str(server.make_url("")).rstrip("/")
    yield api
    for event in api.slow.values():  # let a held answer go before the server stops
        event.set()


class QuestionBot:
    """Answers office-hours questions; hands off when asked for a person; breaks on
    'boom' like a bot server that is down."""

    def __init__(self) -> None:
        self.turns: list[BotTurn] = []

    async def reply(self, turn: BotTurn) -> BotReply:
        self.turns.append(turn)
        text = turn.text.lower()
        if "boom" in text:
            raise BotUnavailable("down")
        if "เจ้าหน้าที่" in text or "person" in text:
            return BotReply(handoff=True, reason="asked_for_person", intent="human")
        if "เวลา" in text or "open" in text:
            return BotReply(messages=["สำนักงานเปิดวันจันทร์ถึงศุกร์ 8:30 ถึง 16:30 น."],
                            intent="office_hours", confidence=0.93)
        return BotReply(messages=["ขออภัย ไม่เข้าใจคำถาม"], understood=False,
                        intent="nlu_fallback", confidence=0.2)


@pytest.fixture
def bot() -> QuestionBot:
    return QuestionBot()


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path,
                 twilio_api: TwilioApi, bot: QuestionBot, clock: ManualClock
                 ) -> AsyncIterator[TestClient]:
    app = build_app(app_settings(database_url, tmp_path), clock=clock, bot=bot,
                    wire_rooms=False)
    ivr.setup(app, app[CENTER_KEY], public_url=PUBLIC_URL, auth_token=AUTH_TOKEN,
              account_sid=ACCOUNT_SID, phone_number=OUR_NUMBER, api_base_url=twilio_api.url,
              api_key="SK" + "b" * 32, api_secret="api-secret-for-tests-0123456789abcdef",
              twiml_app_sid="AP" + "c" * 32, simulator=True)
    test_client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    yield test_client


def center_of(client: TestClient) -> ContactCenter:
    app = client.app
    assert app is not None
    return app[CENTER_KEY]


def hotline_of(client: TestClient) -> ivr.Hotline:
    app = client.app
    assert app is not None
    return app[ivr.HOTLINE_KEY]
