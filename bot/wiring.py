"""The Rasa bot plugged into the core: the `routing.Bot` port, the action endpoint
`/bot/actions/webhook`, and the Rasa server's life cycle.

If Rasa is down, slow or still starting, the port raises `routing.BotUnavailable` and
the core hands the conversation to people (and tells the citizen). A circuit breaker
stops asking a failing server for a while, so citizens are not kept waiting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

import routing
from bot.actions import (
    ActionServer,
    CaseStatusInfo,
    KnowledgeHit,
    KnowledgeSearch,
    NewCaseRequest,
    create_actions_app,
)
from bot.client import BotUnavailable, RasaClient
from bot.manager import BotSetupError, RasaManager

log = logging.getLogger(__name__)

#: Intents that name a service in the catalogue (config/catalogue.yaml).
INTENT_CATEGORY = {
    "id_card_new": "id_card", "id_card_renew": "id_card", "id_card_lost": "id_card",
    "house_registration_move_in": "house_registration",
    "house_registration_move_out": "house_registration",
    "change_name": "name_change", "change_address": "name_change",
    "birth_registration": "birth_registration", "death_registration": "death_registration",
    "tax_payment": "tax", "tax_refund": "tax_refund", "traffic_fine": "traffic_fine",
    "business_registration": "business_registration",
    "elderly_allowance": "elderly_allowance", "disability_allowance": "disability",
    "child_support": "child_support", "welfare_card": "welfare_card",
    "social_work_help": "social_work", "urgent_help": "social_work", "complaint": "complaint",
    "case_status": "case_status", "office_hours": "office_info",
    "office_locations": "office_info", "appointment_booking": "appointment",
    "public_feedback": "feedback",
}
NOT_UNDERSTOOD = frozenset({"nlu_fallback", "out_of_scope"})
STATUS_TEXT = {
    "new": ("รับเรื่องแล้ว รอเจ้าหน้าที่ตรวจสอบ", "received, waiting for an officer"),
    "open": ("อยู่ระหว่างดำเนินการ", "in progress"),
    "pending_citizen": ("รอข้อมูลเพิ่มเติมจากท่าน", "waiting for information from you"),
    "pending_back_office": ("ส่งหน่วยงานที่เกี่ยวข้องพิจารณา",
                            "with the department concerned"),
    "resolved": ("ดำเนินการเสร็จแล้ว", "resolved"),
    "closed": ("ปิดเรื่องแล้ว", "closed"),
    "reopened": ("เปิดเรื่องอีกครั้ง อยู่ระหว่างดำเนินการ", "reopened, in progress"),
}


@dataclass
class CircuitBreaker:
    """Opens after `threshold` failures in a row; lets one try through after `cool_down`."""

    threshold: int = 3
    cool_down: float = 30.0
    failures: int = 0
    opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        return time.monotonic() - self.opened_at >= self.cool_down

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


class RasaBot:
    """`routing.Bot` on a Rasa server: NLU for the intent ranking, the REST channel for
    the dialogue, hand-off markers turned into the core's hand-off."""

    def __init__(self, client: RasaClient | None = None,
                 breaker: CircuitBreaker | None = None) -> None:
        self.client = client
        self.breaker = breaker or CircuitBreaker()

    async def health(self) -> str:
        """For readiness: "ok", "starting" (no server yet), "resting" (the breaker is
        open) or "unreachable" (the server does not answer its status call)."""
        if self.client is None:
            return "starting"
        if not self.breaker.allow():
            return "resting"
        try:
            async with asyncio.timeout(2):
                return "ok" if await self.client.health() else "unreachable"
        except (TimeoutError, OSError, BotUnavailable):
            return "unreachable"

    async def reply(self, turn: routing.BotTurn) -> routing.BotReply:
        """Answer one citizen message (raises `routing.BotUnavailable`)."""
        if self.client is None:
            raise routing.BotUnavailable("the bot is starting")
        if not self.breaker.allow():
            raise routing.BotUnavailable("the bot failed repeatedly; resting")
        try:
            parsed = await self.client.parse(turn.text)
            answer = await self.client.send(
                turn.conversation_id, turn.text, turn.language,
                {"channel": str(turn.channel), "case_number": turn.case_number},
                verified=turn.verified)
        except BotUnavailable as exc:
            self.breaker.failure()
            raise routing.BotUnavailable(str(exc)) from exc
        self.breaker.success()
        handoff = answer.handoff
        intent = parsed.intent
        return routing.BotReply(
            messages=answer.texts,
            handoff=handoff is not None,
            reason=handoff.reason if handoff else None,
            intent=intent.name,
            confidence=intent.confidence,
            intent_ranking=[{"name": i.name, "confidence": round(i.confidence, 4)}
                            for i in parsed.ranking[:5]],
            entities=[{"entity": e.entity, "value": e.value} for e in parsed.entities],
            language=turn.language,
            urgent=bool(handoff and handoff.priority == "urgent"),
            category=INTENT_CATEGORY.get(intent.name),
            buttons=[{"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                     for r in answer.replies for b in r.buttons],
            understood=intent.name not in NOT_UNDERSTOOD,
        )


class CoreCases:
    """The bot's view of cases: only the citizen of the conversation hears about them."""

    def __init__(self, center: routing.ContactCenter) -> None:
        self.center = center

    async def case_status(self, case_number: str, *, sender_id: str) -> CaseStatusInfo | None:
        try:
            conversation = await self.center.conversation(sender_id)
            case = await self.center.case_by_number(case_number.strip().upper())
        except routing.NotFound:
            return None
        owner = await self.center.open_cases(conversation.citizen_id)
        mine = {c.id for c in owner} | {conversation.case_id}
        if case.id not in mine and case.citizen_id != conversation.citizen_id:
            return None
        th, en = STATUS_TEXT.get(case.status, (case.status, case.status))
        return CaseStatusInfo(case.number, case.status, th, en, case.department,
                              case.updated_at)

    async def open_case(self, request: NewCaseRequest) -> str:
        conversation = await self.center.conversation(request.sender_id)
        category = request.category if request.category in self.center.settings.categories \
            else "complaint"
        case = await self.center.update_case(
            conversation.case_id, routing.SYSTEM, category=category,
            description=request.description[:10000])
        if request.contact_phone:
            with contextlib.suppress(routing.InvalidIdentity):
                await self.center.add_identity(
                    conversation.citizen_id,
                    routing.IdentityHint(routing.IdentityKind.PHONE, request.contact_phone),
                    routing.SYSTEM)
        return case.number


class NoKnowledge:
    """Used until a knowledge base is wired: finds nothing."""

    async def search(self, query: str, *, language: str,
                     limit: int = 3) -> Sequence[KnowledgeHit]:
        return []


BOT_KEY = web.AppKey("rasa_bot", RasaBot)
MANAGER_KEY = web.AppKey("rasa_manager", RasaManager)


def setup(app: web.Application, center: routing.ContactCenter, *, rasa_url: str | None,
          http_port: int, rasa_token: str | None = None,
          knowledge: KnowledgeSearch | None = None,
          manage_server: bool = True, cache_dir: Path | None = None) -> RasaBot:
    """Give the core its bot and serve the bot's actions.

    With `rasa_url` the app talks to that server (a separate service); otherwise, when
    `manage_server` is set, it builds the Rasa environment, trains if the bot's data
    changed and starts a local server in the background: until it is ready, chats go to
    people.
    """
    manager = RasaManager(port=_free_port(), action_port=http_port, cache_dir=cache_dir) \
        if rasa_url is None and manage_server else None
    rasa = RasaBot()
    center.bot = rasa
    app[BOT_KEY] = rasa
    action_server = ActionServer(CoreCases(center), knowledge or NoKnowledge(),
                                 token=manager.action_token if manager else None)
    app.add_subapp("/bot/actions", create_actions_app(action_server))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        starter: asyncio.Task[None] | None = None
        if rasa_url is not None:
            rasa.client = RasaClient(rasa_url, token=rasa_token)
        elif manager is not None:
            app[MANAGER_KEY] = manager
            starter = asyncio.create_task(_start(manager, rasa), name="rasa-start")
        yield
        if starter is not None:
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starter
        if rasa.client is not None:
            await rasa.client.close()
        if manager is not None:
            await manager.stop()

    app.cleanup_ctx.append(lifecycle)
    return rasa


async def _start(manager: RasaManager, rasa: RasaBot) -> None:
    try:
        await manager.ensure_venv()
        model = await manager.train_if_needed()
        await manager.start(model)
    except (BotSetupError, OSError) as exc:
        log.error("the Rasa bot could not start; chats go to people: %s", exc)
        return
    rasa.client = RasaClient(manager.base_url, token=manager.api_token)
    log.info("the Rasa bot is ready")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
