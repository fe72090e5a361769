"""Rasa custom actions, served by the OneStop app itself (no rasa-sdk process).

Rasa calls its action endpoint with ``POST`` and a JSON body::

    {"next_action": "action_case_status", "sender_id": "...", "version": "3.6.21",
     "tracker": {"slots": {...}, "latest_message": {...}, "events": [...], ...},
     "domain": {...}}

and expects ``{"events": [...], "responses": [...]}`` back (the action server protocol that
rasa-sdk implements). ``create_actions_app`` returns an aiohttp sub-application with
``POST /webhook``; the composition root mounts it at ``/bot/actions`` so the URL matches
``bot/rasa/endpoints.yml``.

The core is reached only through the ``CaseDirectory`` and ``KnowledgeSearch`` protocols.
Requests must carry the shared ``token`` query parameter when one is configured: the tracker
says whether the citizen is verified, so a forged request must not reach case details.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

HANDOFF_VERIFY = "verify_identity"
HANDOFF_ACTION_FAILED = "action_failed"


# --- what the bot needs from the core ---------------------------------------------------------


@dataclass(frozen=True)
class CaseStatusInfo:
    """What a verified citizen may hear about one of their cases."""

    number: str
    status: str
    """Machine status, e.g. ``new``, ``in_progress``, ``waiting_citizen``, ``resolved``."""
    status_text_th: str
    status_text_en: str
    department: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class NewCaseRequest:
    """A complaint or request the bot collected and asks the core to open as a case."""

    sender_id: str
    category: str
    description: str
    contact_phone: str | None
    language: str
    channel_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KnowledgeHit:
    """One knowledge-base article that answers a citizen's question."""

    title: str
    snippet: str
    url: str | None = None
    score: float = 0.0


class CaseDirectory(Protocol):
    """The core's cases, as the bot sees them."""

    async def case_status(self, case_number: str, *, sender_id: str) -> CaseStatusInfo | None:
        """The case's status if it exists and belongs to the conversation's citizen."""
        ...

    async def open_case(self, request: NewCaseRequest) -> str:
        """Opens a case and returns its number (``OS-2026-000123``)."""
        ...


class KnowledgeSearch(Protocol):
    """The knowledge base's search, as the bot sees it."""

    async def search(self, query: str, *, language: str, limit: int = 3) -> Sequence[KnowledgeHit]:
        """Best articles for ``query`` in ``language`` (``th``/``en``), best first."""
        ...


# --- the action server protocol -----------------------------------------------------------------


class Tracker(BaseModel):
    """The part of Rasa's tracker the actions read."""

    model_config = ConfigDict(extra="allow")

    sender_id: str = ""
    slots: dict[str, Any] = Field(default_factory=dict)
    latest_message: dict[str, Any] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list)


class ActionRequest(BaseModel):
    """Rasa's request to run one custom action."""

    model_config = ConfigDict(extra="allow")

    next_action: str
    sender_id: str
    tracker: Tracker
    domain: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None


class ActionResult(BaseModel):
    """What an action returns: tracker events and bot messages."""

    events: list[dict[str, Any]] = Field(default_factory=list)
    responses: list[dict[str, Any]] = Field(default_factory=list)


class UnknownAction(LookupError):
    """Rasa asked for an action this server does not implement."""


def slot_set(name: str, value: Any) -> dict[str, Any]:
    """A ``slot`` event in Rasa's wire format."""
    return {"event": "slot", "timestamp": None, "name": name, "value": value}


def handoff_payload(reason: str, priority: str = "normal") -> dict[str, Any]:
    """The machine-readable hand-off marker, identical to the domain's ``custom`` payloads."""
    return {"handoff": True, "reason": reason, "priority": priority}


ActionFn = Callable[[ActionRequest], Awaitable[ActionResult]]


class ActionServer:
    """Runs OneStop's custom actions against the core's protocols."""

    def __init__(
        self,
        cases: CaseDirectory,
        knowledge: KnowledgeSearch,
        *,
        token: str | None = None,
        backend_timeout: float = 3.0,
    ) -> None:
        """``token``: when set, every request must carry ``?token=<token>`` (endpoints.yml)."""
        self._cases = cases
        self._knowledge = knowledge
        self._token = token
        self._timeout = backend_timeout
        self._actions: dict[str, ActionFn] = {
            "action_case_status": self.case_status,
            "action_open_case": self.open_case,
            "action_search_knowledge": self.search_knowledge,
        }

    @property
    def action_names(self) -> list[str]:
        """Names of the actions this server runs (they must be listed in domain.yml)."""
        return sorted(self._actions)

    def authorized(self, token: str | None) -> bool:
        """Whether a request's token matches the configured one (constant-time compare)."""
        if self._token is None:
            return True
        return token is not None and hmac.compare_digest(token, self._token)

    async def run(self, payload: dict[str, Any]) -> ActionResult:
        """Runs the action Rasa asked for. Raises ``UnknownAction`` or ``ValidationError``."""
        request = ActionRequest.model_validate(payload)
        action = self._actions.get(request.next_action)
        if action is None:
            raise UnknownAction(request.next_action)
        return await action(request)

    # --- actions ---

    async def case_status(self, request: ActionRequest) -> ActionResult:
        """Tells a verified citizen where their case stands; hands the others to a person."""
        tracker = request.tracker
        lang = language_of(tracker)
        number = case_number_of(tracker)
        if number is None:
            return ActionResult(responses=[{"response": "utter_ask_case_number"}])
        if not is_verified(tracker):
            # Do not even say whether the case exists: that is personal data too.
            text = _t(
                lang,
                f"เพื่อคุ้มครองข้อมูลส่วนบุคคล สถานะเรื่อง {number} แจ้งได้เฉพาะผู้ที่ยืนยันตัวตนแล้ว"
                " กำลังส่งต่อให้เจ้าหน้าที่ยืนยันตัวตนและแจ้งสถานะให้ค่ะ",
                f"To protect personal data, the status of {number} is only given to verified"
                " citizens. I'm passing you to an officer who will verify you and tell you.",
            )
            return ActionResult(
                responses=[{"text": text, "custom": handoff_payload(HANDOFF_VERIFY)}]
            )
        try:
            info = await asyncio.wait_for(
                self._cases.case_status(number, sender_id=request.sender_id), self._timeout
            )
        except Exception:
            log.exception("case directory failed for %s", number)
            return _failed(lang)
        if info is None:
            text = _t(
                lang,
                f"ไม่พบเรื่องเลขที่ {number} ของคุณ กรุณาตรวจสอบเลขที่เรื่องอีกครั้ง (รูปแบบ OS-2026-000123)",
                f"I could not find case {number} for you. Please check the number"
                " (format OS-2026-000123).",
            )
            return ActionResult(responses=[{"text": text}], events=[slot_set("case_number", None)])
        when = f" ({info.updated_at:%Y-%m-%d %H:%M})" if info.updated_at else ""
        dept_th = f" หน่วยงานที่ดูแล: {info.department}" if info.department else ""
        dept_en = f" Handled by: {info.department}." if info.department else ""
        text = _t(
            lang,
            f"เรื่อง {info.number}: {info.status_text_th}{when}{dept_th}",
            f"Case {info.number}: {info.status_text_en}{when}.{dept_en}",
        )
        return ActionResult(
            responses=[
                {"text": text, "custom": {"case_number": info.number, "status": info.status}}
            ]
        )

    async def open_case(self, request: ActionRequest) -> ActionResult:
        """Opens a complaint case from the complaint form's slots and tells its number."""
        tracker = request.tracker
        lang = language_of(tracker)
        detail = str(tracker.slots.get("complaint_detail") or "").strip()
        phone = tracker.slots.get("contact_phone")
        new_case = NewCaseRequest(
            sender_id=request.sender_id,
            category="complaint",
            description=detail,
            contact_phone=str(phone).strip() if phone else None,
            language=lang,
            channel_metadata=dict(tracker.latest_message.get("metadata") or {}),
        )
        try:
            number = await asyncio.wait_for(self._cases.open_case(new_case), self._timeout)
        except Exception:
            log.exception("opening a case failed for %s", request.sender_id)
            return _failed(lang)
        text = _t(
            lang,
            f"รับเรื่องร้องเรียนแล้วค่ะ เลขที่เรื่อง {number} ใช้เลขนี้ติดตามสถานะได้ทุกช่องทาง",
            f"Your complaint has been filed as case {number}. Use this number to follow it up"
            " on any channel.",
        )
        return ActionResult(
            events=[
                slot_set("opened_case_number", number),
                slot_set("complaint_detail", None),
                slot_set("contact_phone", None),
            ],
            responses=[{"text": text, "custom": {"case_opened": number}}],
        )

    async def search_knowledge(self, request: ActionRequest) -> ActionResult:
        """Answers a message the NLU was unsure about from the knowledge base, if it can."""
        tracker = request.tracker
        lang = language_of(tracker)
        query = str(tracker.latest_message.get("text") or "").strip()
        hits: Sequence[KnowledgeHit] = []
        if query:
            try:
                hits = await asyncio.wait_for(
                    self._knowledge.search(query, language=lang, limit=3), self._timeout
                )
            except Exception:
                log.exception("knowledge search failed")
        if not hits:
            return ActionResult(responses=[{"response": "utter_please_rephrase"}])
        best = hits[0]
        link = f"\n{best.url}" if best.url else ""
        text = _t(
            lang,
            f"อาจเป็นเรื่องนี้ค่ะ: {best.title}\n{best.snippet}{link}\n"
            'ถ้ายังไม่ตรงคำถาม พิมพ์ใหม่ หรือพิมพ์ "ขอคุยกับเจ้าหน้าที่" ได้ค่ะ',
            f"This might help: {best.title}\n{best.snippet}{link}\n"
            'If this is not what you asked, rephrase it or type "talk to a human".',
        )
        return ActionResult(responses=[{"text": text}])


def create_actions_app(server: ActionServer) -> web.Application:
    """An aiohttp sub-application with ``POST /webhook`` (mount it at ``/bot/actions``)."""
    app = web.Application()
    app[ACTION_SERVER_KEY] = server
    app.router.add_post("/webhook", _handle_webhook)
    app.router.add_get("/actions", _handle_list)
    return app


ACTION_SERVER_KEY = web.AppKey("bot_action_server", ActionServer)


async def _handle_webhook(request: web.Request) -> web.Response:
    server = request.app[ACTION_SERVER_KEY]
    if not server.authorized(request.query.get("token")):
        return web.json_response({"error": "unauthorized"}, status=401)
    try:
        payload = await request.json()
    except ValueError:
        return web.json_response({"error": "body is not JSON"}, status=400)
    name = payload.get("next_action") if isinstance(payload, dict) else None
    try:
        result = await server.run(payload)
    except UnknownAction:
        # Same shape rasa-sdk uses; Rasa logs it and carries on.
        return web.json_response(
            {"error": f"No registered action found for name '{name}'.", "action_name": name},
            status=404,
        )
    except ValidationError as exc:
        return web.json_response(
            {"error": "invalid action request", "detail": exc.errors(include_url=False)},
            status=400,
        )
    return web.json_response(result.model_dump())


async def _handle_list(request: web.Request) -> web.Response:
    server = request.app[ACTION_SERVER_KEY]
    return web.json_response([{"name": name} for name in server.action_names])


# --- tracker helpers -----------------------------------------------------------------------------


def language_of(tracker: Tracker) -> str:
    """``en`` when the app said the citizen writes English, otherwise ``th``."""
    metadata = tracker.latest_message.get("metadata") or {}
    value = tracker.slots.get("language") or metadata.get("language")
    return "en" if value == "en" else "th"


def is_verified(tracker: Tracker) -> bool:
    """True only when the app marked the citizen verified (slot, or message metadata)."""
    metadata = tracker.latest_message.get("metadata") or {}
    return tracker.slots.get("verified") is True or metadata.get("verified") is True


def case_number_of(tracker: Tracker) -> str | None:
    """The case number from the slot or the latest message's entities, upper-cased."""
    value = tracker.slots.get("case_number")
    if not value:
        for entity in tracker.latest_message.get("entities") or []:
            if entity.get("entity") == "case_number":
                value = entity.get("value")
                break
    return str(value).strip().upper() if value else None


def _t(lang: str, th: str, en: str) -> str:
    return en if lang == "en" else th


def _failed(lang: str) -> ActionResult:
    text = _t(
        lang,
        "ขออภัยค่ะ ระบบขัดข้องชั่วคราว กำลังส่งต่อให้เจ้าหน้าที่ดูแลค่ะ",
        "Sorry, something went wrong on our side. I'm passing you to an officer.",
    )
    return ActionResult(
        responses=[{"text": text, "custom": handoff_payload(HANDOFF_ACTION_FAILED)}]
    )
