"""The real app with the Slack room wired to a local server that records Slack Web API
calls (and can answer 429 or 500), and helpers that sign requests exactly as Slack does."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.signature import SignatureVerifier

from agent_console.api import CENTER_KEY
from channels.slack import SLACK_KEY, AlertRules, SlackRoom, StaffDirectory, setup
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import (
    SYSTEM,
    Channel,
    ContactCenter,
    IdentityHint,
    IdentityKind,
    InboundMessage,
)
from tests.conftest import ManualClock
from tests.support.app import app_settings

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"
#: Slack channel ids the fake workspace gives the configured channel names.
CHANNEL_IDS = {"#bo-registration": "CREG", "#bo-revenue": "CREV",
               "#onestop-supervisors": "CSUP"}
STAFF = {"USOMSRI": "somsri", "USUPER": "supervisor"}


@dataclass
class Call:
    method: str
    body: dict[str, Any]
    authorization: str | None


@dataclass
class FakeSlack:
    """Slack's Web API as far as this room uses it: records every call."""

    calls: list[Call] = field(default_factory=list)
    #: method → responses to give first: (status, headers, body).
    scripted: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = field(
        default_factory=dict)
    ts: Any = field(default_factory=lambda: itertools.count(1))

    def posted(self, method: str = "chat.postMessage") -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == method]

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        if request.content_type == "application/json":
            body = json.loads(raw or b"{}")
        else:
            body = dict((await request.post()).items())
        script = self.scripted.get(method)
        if script:
            status, headers, answer = script.pop(0)
            self.calls.append(Call(method + f"!{status}", body,
                                   request.headers.get("Authorization")))
            return web.json_response(answer, status=status, headers=headers)
        self.calls.append(Call(method, body, request.headers.get("Authorization")))
        if method == "auth.test":
            return web.json_response({"ok": True, "user_id": "UBOT", "bot_id": "BBOT",
                                      "team_id": "T1", "user": "onestop", "team": "OneStop",
                                      "url": "https://onestop.slack.com/"})
        if method in ("chat.postMessage", "chat.update"):
            channel = str(body.get("channel", ""))
            channel = CHANNEL_IDS.get(channel, channel)
            ts = str(body.get("ts") or f"1700000000.{next(self.ts):06d}")
            return web.json_response({"ok": True, "channel": channel, "ts": ts})
        return web.json_response({"ok": True})


@pytest.fixture
async def fake_slack(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[
        tuple[FakeSlack, str]]:
    fake = FakeSlack()
    app = web.Application()
    app.router.add_post("/api/{method}", fake.handle)
    server = await aiohttp_server(app)
    yield fake, str(server.make_url("/api/"))


@dataclass
class Desk:
    client: TestClient
    center: ContactCenter
    room: SlackRoom
    slack: FakeSlack
    clock: ManualClock


@pytest.fixture
async def desk(aiohttp_client: Callable[..., Awaitable[TestClient]], database_url: str,
               tmp_path: Path, fake_slack: tuple[FakeSlack, str]) -> AsyncIterator[Desk]:
    slack, base_url = fake_slack
    clock = ManualClock()
    app = build_app(app_settings(database_url, tmp_path), clock=clock, wire_rooms=False)
    center = app[CENTER_KEY]
    setup(app, center, signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN,
          api_base_url=base_url, staff_directory=StaffDirectory(STAFF),
          alert_rules=AlertRules(min_sample=3, max_waiting=2, bot_quiet_seconds=300,
                                 check_interval=3600),
          backoff=(0.05, 0.1, 0.2))
    client = await aiohttp_client(app)
    await seed_demo(center)
    yield Desk(client, center, app[SLACK_KEY], slack, clock)


def signed_headers(body: str, *, timestamp: int | None = None, retry: int | None = None,
                   content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": str(signature),
               "Content-Type": content_type}
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return headers


async def post_event(desk: Desk, payload: dict[str, Any], *, retry: int | None = None) -> int:
    body = json.dumps(payload)
    response = await desk.client.post("/slack/events", data=body, headers=signed_headers(
        body, retry=retry, content_type="application/json"))
    return response.status


async def post_form(desk: Desk, fields: dict[str, str]) -> tuple[int, str]:
    body = urlencode(fields)
    response = await desk.client.post("/slack/events", data=body,
                                      headers=signed_headers(body))
    return response.status, await response.text()


def message_event(*, channel: str, text: str, ts: str, thread_ts: str | None,
                  user: str = "UBACKOFFICE", event_id: str = "Ev0001") -> dict[str, Any]:
    """An Events API `event_callback` carrying a `message` event, as Slack documents it."""
    event: dict[str, Any] = {"type": "message", "channel": channel, "user": user, "text": text,
                             "ts": ts, "event_ts": ts, "channel_type": "channel"}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "team_id": "T1", "api_app_id": "A0ONESTOP",
            "event": event, "type": "event_callback", "event_id": event_id,
            "event_time": int(time.time()), "authorizations": [{
                "enterprise_id": None, "team_id": "T1", "user_id": "UBOT",
                "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": False, "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ"}


def block_actions(*, action_id: str, value: str, channel: str, message_ts: str,
                  user: str = "UBACKOFFICE") -> dict[str, str]:
    """An interactivity request: a `block_actions` payload, form-encoded as Slack sends it."""
    payload = {
        "type": "block_actions", "user": {"id": user, "username": "officer", "team_id": "T1"},
        "api_app_id": "A0ONESTOP", "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": "12345.98765.abcd2358fdea", "team": {"id": "T1", "domain": "onestop"},
        "channel": {"id": channel, "name": "bo-registration"},
        "message": {"type": "message", "ts": message_ts, "user": "UBOT", "bot_id": "BBOT"},
        "response_url": "https://hooks.slack.com/actions/T1/1/abc",
        "actions": [{"action_id": action_id, "block_id": f"consultation:{value}",
                     "value": value, "type": "button", "action_ts": "1700000001.1"}],
    }
    return {"payload": json.dumps(payload)}


async def open_case(center: ContactCenter, key: str = "thread-1",
                    category: str = "house_registration") -> tuple[str, str]:
    """A citizen writes in (with their name, phone and email); returns (case id, number)."""
    stored = await center.ingest(InboundMessage(
        Channel.EMAIL, key, f"<{key}@mail.th>",
        "สวัสดีค่ะ ดิฉันสมหญิง ใจดี โทร 081-234-5678 ขอย้ายทะเบียนบ้าน",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "somying@mail.th"),
                        IdentityHint(IdentityKind.PHONE, "0812345678")),
        subject="ย้ายทะเบียนบ้าน สมหญิง ใจดี",
    ))
    await center.update_case(stored.case_id, SYSTEM, category=category)
    return stored.case_id, stored.case_number


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 5.0) -> Any:
    """Wait for background work (bolt runs listeners after acknowledging)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not so after {within} s")
        await asyncio.sleep(0.02)
