"""The Slack app manifest an admin pastes matches what the room serves."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from channels.slack import EVENTS_PATH, setup
from onestop.app import build_app
from tests.channels.slack.conftest import Desk, signed_headers
from tests.support.app import app_settings

MANIFEST = Path(__file__).resolve().parents[3] / "channels" / "slack" / "manifest.yaml"


def test_the_manifest_asks_for_what_the_room_needs_and_points_at_one_url() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "chat:write", "commands", "channels:history", "groups:history"}
    settings = manifest["settings"]
    assert "message.channels" in settings["event_subscriptions"]["bot_events"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is False  # HTTP mode: Slack calls us
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/onestop"
    urls = {settings["event_subscriptions"]["request_url"],
            settings["interactivity"]["request_url"], command["url"]}
    assert urls == {"ONESTOP_PUBLIC_URL" + EVENTS_PATH}


async def test_slacks_url_verification_challenge_is_answered(desk: Desk) -> None:
    """What Slack sends when the admin saves the manifest's request URL."""
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    raw = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge,
                      "type": "url_verification"})
    response = await desk.client.post("/slack/events", data=raw, headers=signed_headers(
        raw, content_type="application/json"))
    assert response.status == 200
    assert challenge in await response.text()


async def test_without_credentials_slack_is_off_and_says_so(
    aiohttp_client: Callable[..., Awaitable[TestClient]], database_url: str, tmp_path: Path,
) -> None:
    app = build_app(app_settings(database_url, tmp_path), wire_rooms=False)
    assert setup(app, app[CENTER_KEY], signing_secret=None, bot_token=None) is None
    client = await aiohttp_client(app)
    response = await client.post("/slack/events", data="{}")
    assert response.status == 503
