"""How the hotline behaves when it is wired without Twilio credentials (a demo box)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import ivr
from agent_console.api import CENTER_KEY
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import Channel
from tests.ivr.walker import PUBLIC_URL, Phone
from tests.support.app import app_settings, bearer, login


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_without_credentials_nothing_outside_can_sign_and_extras_are_off(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path,
) -> None:
    app = build_app(app_settings(database_url, tmp_path), wire_rooms=False)
    ivr.setup(app, app[CENTER_KEY], public_url=PUBLIC_URL, auth_token=None)
    client: TestClient = await aiohttp_client(app)
    center = app[CENTER_KEY]
    await seed_demo(center)
    assert Channel.SMS not in center.adapters
    # An empty token is not a key: requests signed with it are refused.
    await Phone(client, token="").post(f"{PUBLIC_URL}/ivr/voice", expect=403)
    assert (await client.get("/ivr/simulator")).status == 404
    sign = await client.post("/ivr/simulator/sign", json={"url": f"{PUBLIC_URL}/ivr/voice",
                                                          "params": {}})
    assert sign.status in (404, 405)
    me = await login(client, "somsri", "demo-agent-1")
    token = await client.get("/ivr/token", headers=bearer(me["token"]))
    assert token.status == 503
    assert "TWILIO_API_KEY" in (await token.json())["error"]["message"]


async def test_the_simulator_signs_only_for_the_hotlines_own_webhooks(
    client: TestClient,
) -> None:
    ok = await client.post("/ivr/simulator/sign", json={
        "url": f"{PUBLIC_URL}/ivr/voice", "params": {"CallSid": "CA1"}})
    assert ok.status == 200 and (await ok.json())["signature"]
    for body in ({"url": "https://evil.example/ivr/voice", "params": {}},
                 {"url": f"{PUBLIC_URL}/api/v1/tasks", "params": {}},
                 {"url": f"{PUBLIC_URL}/ivr/voice", "params": {"n": 1}}):
        refused = await client.post("/ivr/simulator/sign", json=body)
        assert refused.status == 422
