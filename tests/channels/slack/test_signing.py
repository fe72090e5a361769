"""Only requests signed by Slack, within five minutes, reach the room."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.channels.slack.conftest import SIGNING_SECRET, Desk, signed_headers

# Slack's worked example (api.slack.com/authentication/verifying-requests-from-slack).
EXAMPLE_TIMESTAMP = "1531420618"
EXAMPLE_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    "command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    "%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015."
    "47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
EXAMPLE_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


class At:
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


def test_slacks_published_signing_example_verifies() -> None:
    verifier = SignatureVerifier(SIGNING_SECRET, clock=At(1531420618 + 30))  # type: ignore[arg-type]
    assert verifier.generate_signature(timestamp=EXAMPLE_TIMESTAMP,
                                       body=EXAMPLE_BODY) == EXAMPLE_SIGNATURE
    assert verifier.is_valid(EXAMPLE_BODY, EXAMPLE_TIMESTAMP, EXAMPLE_SIGNATURE)
    assert not verifier.is_valid(EXAMPLE_BODY.replace("roadrunner", "coyote"),
                                 EXAMPLE_TIMESTAMP, EXAMPLE_SIGNATURE)


def command(text: str, user: str = "USUPER") -> str:
    return urlencode({"token": "xyzz0WbapA4vBCDEFasx0q6G", "team_id": "T1",
                      "team_domain": "onestop", "channel_id": "CSUP",
                      "channel_name": "onestop-supervisors", "user_id": user,
                      "user_name": "someone", "command": "/onestop", "text": text,
                      "api_app_id": "A0ONESTOP",
                      "response_url": "https://hooks.slack.com/commands/T1/1/x",
                      "trigger_id": "1.2.3"})


async def test_the_published_example_is_refused_by_the_endpoint_because_it_is_old(
    desk: Desk,
) -> None:
    response = await desk.client.post("/slack/events", data=EXAMPLE_BODY, headers={
        "X-Slack-Request-Timestamp": EXAMPLE_TIMESTAMP, "X-Slack-Signature": EXAMPLE_SIGNATURE,
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 401


async def test_a_fresh_signed_command_is_answered(desk: Desk) -> None:
    body = command("help")
    response = await desk.client.post("/slack/events", data=body, headers=signed_headers(body))
    assert response.status == 200
    assert "/onestop case" in await response.text()


async def test_a_tampered_body_is_refused(desk: Desk) -> None:
    body = command("help")
    headers = signed_headers(body)
    response = await desk.client.post("/slack/events", data=command("case OS-2026-000001"),
                                      headers=headers)
    assert response.status == 401


async def test_a_signature_older_than_five_minutes_is_refused(desk: Desk) -> None:
    body = command("help")
    response = await desk.client.post("/slack/events", data=body, headers=signed_headers(
        body, timestamp=int(time.time()) - 6 * 60))
    assert response.status == 401


async def test_an_unsigned_request_is_refused(desk: Desk) -> None:
    response = await desk.client.post("/slack/events", data=command("help"), headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 401
