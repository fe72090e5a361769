"""Async client for the OneStop Rasa server (Rasa's HTTP API and REST channel).

The app talks to Rasa only through this class. Every connection error, timeout or 5xx becomes
``BotUnavailable`` so the caller can send the conversation to people instead.

What ``send`` does for one citizen message:

1. ``POST /conversations/{sender_id}/tracker/events`` with ``slot`` events for ``language``
   (and ``verified`` when given), so the domain's conditional responses answer in the
   citizen's language and ``action_case_status`` knows whether it may give details;
2. ``POST /webhooks/rest/webhook`` with ``{"sender", "message", "metadata"}``; Rasa answers
   with a list of messages such as ``{"recipient_id": "...", "text": "..."}`` and
   ``{"recipient_id": "...", "custom": {"handoff": true, "reason": "urgent", ...}}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

_THAI = re.compile(r"[\u0E00-\u0E7F]")
HANDOFF_NO_REPLY = "no_reply"


class BotUnavailable(RuntimeError):
    """Rasa could not be reached or failed; route the conversation to people."""


@dataclass(frozen=True)
class IntentScore:
    """One intent and the model's confidence in it."""

    name: str
    confidence: float


@dataclass(frozen=True)
class Entity:
    """An entity found in the message (e.g. ``case_number``)."""

    entity: str
    value: str
    start: int | None = None
    end: int | None = None
    extractor: str | None = None


@dataclass(frozen=True)
class ParseResult:
    """What the NLU made of one text (``/model/parse``)."""

    text: str
    intent: IntentScore
    ranking: list[IntentScore]
    entities: list[Entity]


@dataclass(frozen=True)
class Handoff:
    """The bot's request to hand the conversation to a person."""

    reason: str
    """``request_human``, ``urgent``, ``social_work``, ``fallback``, ``verify_identity``,
    ``action_failed``, ``no_reply``."""
    priority: str
    """``normal``, ``high`` or ``urgent``."""


@dataclass(frozen=True)
class BotReply:
    """One message from the bot."""

    text: str | None = None
    custom: dict[str, Any] | None = None
    buttons: list[dict[str, Any]] = field(default_factory=list)
    image: str | None = None


@dataclass(frozen=True)
class BotTurn:
    """Everything the bot said in answer to one message."""

    replies: list[BotReply]
    handoff: Handoff | None

    @property
    def texts(self) -> list[str]:
        """The text replies, in order."""
        return [reply.text for reply in self.replies if reply.text]


def detect_language(text: str) -> str:
    """``th`` if the text contains any Thai letter, else ``en``."""
    return "th" if _THAI.search(text) else "en"


class RasaClient:
    """Talks to one Rasa server. Use as ``async with RasaClient(url) as bot: ...``."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``token``: Rasa's ``--auth-token``, needed for the HTTP API when set."""
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token = token
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> RasaClient:
        """Opens the HTTP session."""
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Closes the HTTP session."""
        await self.close()

    async def close(self) -> None:
        """Closes the HTTP session if this client opened it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def health(self) -> bool:
        """True when the server answers and has a model loaded."""
        try:
            status = await self._request("GET", "/status", auth=True)
        except BotUnavailable:
            return False
        return isinstance(status, dict) and bool(status.get("model_file"))

    async def parse(self, text: str) -> ParseResult:
        """Runs the NLU on ``text`` (intent ranking and entities) without changing any tracker."""
        data = await self._request("POST", "/model/parse", json={"text": text}, auth=True)
        intent = data.get("intent") or {}
        return ParseResult(
            text=data.get("text", text),
            intent=IntentScore(str(intent.get("name")), float(intent.get("confidence") or 0.0)),
            ranking=[
                IntentScore(str(item.get("name")), float(item.get("confidence") or 0.0))
                for item in data.get("intent_ranking") or []
            ],
            entities=[
                Entity(
                    entity=str(item.get("entity")),
                    value=str(item.get("value")),
                    start=item.get("start"),
                    end=item.get("end"),
                    extractor=item.get("extractor"),
                )
                for item in data.get("entities") or []
            ],
        )

    async def set_slots(self, sender_id: str, slots: dict[str, Any]) -> None:
        """Sets slots on the conversation's tracker (``language``, ``verified``…)."""
        events = [{"event": "slot", "name": name, "value": value} for name, value in slots.items()]
        path = f"/conversations/{quote(sender_id, safe='')}/tracker/events"
        await self._request("POST", path, json=events, auth=True, params={"include_events": "NONE"})

    async def send(
        self,
        sender_id: str,
        text: str,
        language: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        verified: bool | None = None,
    ) -> BotTurn:
        """Sends one citizen message and returns the bot's replies and any hand-off marker.

        ``language`` is ``th`` or ``en``; when None it is detected from the text.
        ``verified`` (when not None) tells the bot whether the citizen's identity is verified.
        """
        lang = language if language in ("th", "en") else detect_language(text)
        slots: dict[str, Any] = {"language": lang}
        if verified is not None:
            slots["verified"] = verified
        await self.set_slots(sender_id, slots)
        meta = {**(metadata or {}), "language": lang}
        if verified is not None:
            meta["verified"] = verified
        data = await self._request(
            "POST",
            "/webhooks/rest/webhook",
            json={"sender": sender_id, "message": text, "metadata": meta},
        )
        turn = parse_webhook_reply(data if isinstance(data, list) else [])
        if not turn.replies:
            # Rasa answers nothing when a custom action failed: never leave a citizen in silence.
            return BotTurn(replies=[], handoff=Handoff(reason=HANDOFF_NO_REPLY, priority="normal"))
        return turn

    # --- helpers ---

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        auth: bool = False,
        params: dict[str, str] | None = None,
    ) -> Any:
        query = dict(params or {})
        if auth and self._token:
            query["token"] = self._token
        session = self._ensure_session()
        try:
            async with session.request(
                method, self.base_url + path, json=json, params=query, timeout=self._timeout
            ) as response:
                if response.status >= 500:
                    body = await response.text()
                    raise BotUnavailable(
                        f"Rasa {method} {path}: HTTP {response.status}: {body[:200]}"
                    )
                if response.status >= 400:
                    body = await response.text()
                    raise BotUnavailable(
                        f"Rasa refused {method} {path}: HTTP {response.status}: {body[:200]}"
                    )
                return await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise BotUnavailable(f"Rasa {method} {path} failed: {exc!r}") from exc


def parse_webhook_reply(messages: list[dict[str, Any]]) -> BotTurn:
    """Turns the REST channel's list of messages into replies and the hand-off marker."""
    replies: list[BotReply] = []
    handoff: Handoff | None = None
    for message in messages:
        custom = message.get("custom")
        if not isinstance(custom, dict):
            custom = None
        if custom and custom.get("handoff") is True and handoff is None:
            handoff = Handoff(
                reason=str(custom.get("reason") or "unknown"),
                priority=str(custom.get("priority") or "normal"),
            )
        replies.append(
            BotReply(
                text=message.get("text"),
                custom=custom,
                buttons=list(message.get("buttons") or []),
                image=message.get("image"),
            )
        )
    return BotTurn(replies=replies, handoff=handoff)
