"""Outbound traffic to Twilio through its official SDK: calls (callbacks, redirects) and
SMS (the `ChannelAdapter` for `Channel.SMS`).

The REST base URL is configurable so that tests (and air-gapped demos) point the SDK at
a local server that records what was sent; nothing else changes.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from routing import Channel, DeliveryError, OutboundMessage

log = logging.getLogger(__name__)

# The SDK logs whole requests (numbers, message bodies) at INFO: keep them out of our logs.
_sdk_log = logging.getLogger("ivr.twilio_sdk")
_sdk_log.setLevel(logging.WARNING)

_TWILIO_HOST = re.compile(r"^https://[a-z0-9.-]*twilio\.com")
#: Retry-After of the last 429 answer seen by this task (the SDK's exceptions drop headers).
_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "twilio_retry_after", default=None)
MAX_RETRY_AFTER = 600.0


class RateLimited(TwilioRestException):
    """Twilio answered 429; `retry_after` is its Retry-After in seconds, when it sent one."""

    def __init__(self, exc: TwilioRestException, retry_after: float | None) -> None:
        super().__init__(exc.status, exc.uri, exc.msg, exc.code, exc.method, exc.details)
        self.retry_after = retry_after


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER)) if value else None
    except ValueError:
        return None  # an HTTP date: use our own back-off


class RebasedHttpClient(AsyncTwilioHttpClient):
    """Twilio's own async HTTP client, sending to `base_url` instead of *.twilio.com."""

    def __init__(self, base_url: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(pool_connections=False, timeout=timeout, logger=_sdk_log)
        self.base_url = base_url.rstrip("/") if base_url else None

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None,
                      headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None,
                      timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature
                      allow_redirects: bool = False) -> Response:
        if self.base_url:
            url = _TWILIO_HOST.sub(self.base_url, url)
        if auth is not None:  # as a header: aiohttp deprecates its `auth` argument
            headers = {**(headers or {}),
                       "Authorization": aiohttp.encode_basic_auth(auth[0], auth[1])}
        response = await super().request(method, url, params, data, headers, None, timeout,
                                         allow_redirects)
        _retry_after.set(_seconds((response.headers or {}).get("Retry-After"))
                         if response.status_code == 429 else None)
        return response


@dataclass(frozen=True)
class Participant:
    """What Twilio answers when a participant is added: the conference's SID (needed to
    address its participants later) and the new leg's CallSid."""

    conference_sid: str
    call_sid: str
    label: str


class TwilioRest:
    """The few REST calls the hotline makes."""

    def __init__(self, account_sid: str, auth_token: str, *, base_url: str | None = None,
                 timeout: float = 10.0) -> None:
        self.client = Client(account_sid, auth_token,
                             http_client=RebasedHttpClient(base_url, timeout))

    async def place_call(self, *, to: str, from_: str, url: str, status_callback: str,
                         status_events: Sequence[str] = ("completed",)) -> str:
        """Ring `to`; when answered Twilio fetches TwiML from `url`. Returns the CallSid.
        A 429 is raised as `RateLimited` carrying Twilio's Retry-After."""
        try:
            call = await self.client.calls.create_async(
                to=to, from_=from_, url=url, method="POST", status_callback=status_callback,
                status_callback_method="POST", status_callback_event=list(status_events))
        except TwilioRestException as exc:
            if exc.status == 429:
                raise RateLimited(exc, _retry_after.get()) from None
            raise
        return str(call.sid)

    async def redirect_call(self, call_sid: str, url: str) -> None:
        """Make a live call fetch new TwiML from `url` (e.g. out of the queue to an agent)."""
        await self.client.calls(call_sid).update_async(url=url, method="POST")

    async def add_participant(self, conference: str, *, to: str, from_: str, label: str,
                              status_callback: str, start_conference_on_enter: bool,
                              end_conference_on_exit: bool, ring_seconds: int = 20) -> Participant:
        """Ring `to` (a number or `client:identity?params`) into `conference` (its SID, or
        its friendly name: Twilio creates the conference when it does not exist yet)."""
        created = await self.client.conferences(conference).participants.create_async(
            from_=from_, to=to, label=label, beep="false", early_media=True, timeout=ring_seconds,
            start_conference_on_enter=start_conference_on_enter,
            end_conference_on_exit=end_conference_on_exit,
            status_callback=status_callback, status_callback_method="POST",
            status_callback_event=["answered", "completed"])
        return Participant(str(created.conference_sid), str(created.call_sid), label)

    async def update_participant(self, conference_sid: str, label: str, *,
                                 hold: bool | None = None, hold_url: str | None = None,
                                 end_conference_on_exit: bool | None = None) -> None:
        """Hold or unhold a participant (by label), or change whether their leaving ends
        the conference."""
        kwargs: dict[str, Any] = {}
        if hold is not None:
            kwargs["hold"] = hold
            if hold and hold_url:
                kwargs.update(hold_url=hold_url, hold_method="GET")
        if end_conference_on_exit is not None:
            kwargs["end_conference_on_exit"] = end_conference_on_exit
        await self.client.conferences(conference_sid).participants(label).update_async(**kwargs)

    async def remove_participant(self, conference_sid: str, label: str) -> None:
        """Take a participant (by label) out of the conference: their call ends."""
        await self.client.conferences(conference_sid).participants(label).delete_async()

    async def send_sms(self, *, to: str, from_: str, body: str,
                       status_callback: str | None = None) -> str:
        kwargs: dict[str, Any] = {"to": to, "from_": from_, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        message = await self.client.messages.create_async(**kwargs)
        return str(message.sid)


class SmsAdapter:
    """Delivers the core's outbound messages on SMS conversations through Twilio Messaging.

    The conversation key of an SMS conversation is the citizen's number (E.164).
    Twilio's 4xx answers (bad number, opted out) are permanent; anything else is retried
    by the core.
    """

    channel = Channel.SMS

    def __init__(self, rest: TwilioRest, from_number: str,
                 status_callback: str | None = None) -> None:
        self.rest = rest
        self.from_number = from_number
        self.status_callback = status_callback

    async def deliver(self, message: OutboundMessage) -> str | None:
        try:
            return await self.rest.send_sms(to=message.conversation_key, from_=self.from_number,
                                            body=message.body,
                                            status_callback=self.status_callback)
        except TwilioRestException as exc:
            permanent = 400 <= exc.status < 500 and exc.status != 429
            log.warning("sms not taken by twilio", extra={"status": exc.status,
                                                          "code": exc.code})
            raise DeliveryError(f"twilio refused the SMS ({exc.status}, code {exc.code})",
                                permanent=permanent) from None
        except (TwilioException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"twilio unreachable ({type(exc).__name__})") from None
