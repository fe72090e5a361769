"""The phone hotline: Twilio Voice webhooks that walk callers through the menus, serve
them by themselves where they can, and put them through to people.

Every request is checked with Twilio's `RequestValidator` against the public URL it was
sent to. The state of a call between requests travels in the (signed) URLs Twilio is
told to fetch next: language, step number, failures so far, the path through the menus
and the task. Each step is stored as a message on the call's conversation (author
system) with a provider id made of the CallSid and the step number, so a webhook Twilio
retries records nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr.conference import (
    CALLER_LABEL,
    TWILIO_ERRORS,
    UNANSWERED,
    ConferenceCall,
    ConferenceStore,
    Transfers,
    agent_address,
    agent_identity,
    agent_phone,
)
from ivr.menus import Menu, MenusFile, Option
from ivr.phrases import PHRASES, case_status, key_name, say, spoken_case_number, spoken_date
from ivr.twilio_rest import RateLimited, TwilioRest
from routing import (
    SYSTEM,
    AgentRecord,
    Author,
    Bot,
    BotReply,
    BotTurn,
    BotUnavailable,
    Case,
    CaseStatus,
    Channel,
    Conflict,
    ContactCenter,
    Conversation,
    ConversationStatus,
    Identity,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    IngestResult,
    InvalidIdentity,
    Message,
    NotFound,
    Presence,
    Task,
    TaskAccepted,
    TaskStatus,
    cancelling,
    mask,
    normalise,
    stop_task,
)

log = logging.getLogger(__name__)

OPEN_CASE_STATUSES = [str(s) for s in (CaseStatus.NEW, CaseStatus.OPEN,
                                       CaseStatus.PENDING_CITIZEN,
                                       CaseStatus.PENDING_BACK_OFFICE, CaseStatus.REOPENED)]
OPEN_TASK_STATUSES = [str(s) for s in TaskStatus if not s.is_final]
ENDED_CALL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
#: Twilio's queue that holds callers waiting for a person (the router decides who).
HOLD_QUEUE = "onestop"
MAX_PATH = 30
#: A ring asked of Twilio that has not been answered for this long is asked again.
RING_STALE_SECONDS = 30.0
#: A callback attempt claimed this long ago without an outcome was lost with its node.
CLAIM_STALE_SECONDS = 120.0


def _callback_key(task_id: str) -> str:
    """The named state of a callback: requested → retrying → placed | failed."""
    return f"ivr-callback:{task_id}"


@dataclass(frozen=True)
class HotlineConfig:
    """Settings of the hotline (secrets come from the environment through the app)."""

    public_url: str
    auth_token: str
    account_sid: str | None = None
    phone_number: str | None = None  # our Twilio number: caller ID of callbacks, SMS sender
    hold_music_url: str | None = None
    bot_timeout: float = 5.0
    #: The most a webhook waits for Twilio's REST API (Twilio gives up on us at 15 s).
    twilio_budget: float = 5.0
    #: Callbacks: seconds before attempt 2, 3, … (a 429's Retry-After wins), and how many
    #: attempts before the officer is asked to call the citizen themselves.
    callback_backoff: tuple[float, ...] = (2, 10, 30, 60, 120)
    callback_attempts: int = 6
    #: How often the timer looks for callbacks that are due.
    retry_interval: float = 1.0


@dataclass(frozen=True)
class CallState:
    """Where a call stands, carried in the query string of the next webhook URL."""

    lang: str = "th"
    step: int = 0
    tries: int = 0
    path: tuple[str, ...] = ()
    task: str | None = None
    origin: str | None = None  # the CallSid of the citizen's call, on a callback leg

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> CallState:
        lang = query.get("l", "th")
        try:
            step = max(0, min(int(query.get("s", "0")), 100_000))
            tries = max(0, min(int(query.get("t", "0")), 100))
        except ValueError:
            step, tries = 0, 0
        path = tuple(p for p in query.get("p", "").split(",") if p)[-MAX_PATH:]
        return cls("en" if lang == "en" else "th", step, tries, path, query.get("task") or None,
                   query.get("o") or None)

    def query(self) -> dict[str, str]:
        out = {"l": self.lang, "s": str(self.step), "t": str(self.tries),
               "p": ",".join(self.path[-MAX_PATH:])}
        if self.task:
            out["task"] = self.task
        if self.origin:
            out["o"] = self.origin
        return out

    def next(self, *, visited: str | None = None, tries: int = 0, **changes: Any) -> CallState:
        path = (*self.path, visited) if visited else self.path
        return replace(self, step=self.step + 1, tries=tries, path=path, **changes)


@dataclass(frozen=True)
class Call:
    """The parameters of one Twilio voice request that the hotline uses."""

    sid: str
    caller: str | None  # E.164 when the caller ID is a valid number, else None
    params: Mapping[str, str] = field(default_factory=dict)

    def hints(self) -> tuple[IdentityHint, ...]:
        if self.caller is None:
            return ()
        return (IdentityHint(IdentityKind.PHONE, self.caller, verified_by="caller_id"),)


class BadRequest(web.HTTPBadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(text=message, content_type="text/plain")


Handler = Callable[["Hotline", web.Request, Mapping[str, str]], Awaitable[web.StreamResponse]]


class Hotline:
    """The hotline's behaviour; aiohttp handlers are thin wrappers around its methods."""

    def __init__(self, center: ContactCenter, menus: MenusFile, config: HotlineConfig, *,
                 bot: Bot | None = None, rest: TwilioRest | None = None) -> None:
        self.center = center
        self.menus = menus
        self.config = config
        self.bot = bot if bot is not None else center.bot
        self.rest = rest
        self.validator = RequestValidator(config.auth_token)
        self.public_url = config.public_url.rstrip("/")
        self._background: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._callback_locks: dict[str, asyncio.Lock] = {}
        self.conferences = ConferenceStore(center)
        self.transfers = Transfers(self)

    # -- plumbing -------------------------------------------------------------------------

    def url(self, path: str, state: CallState | None = None, **extra: str) -> str:
        query = {**(state.query() if state else {}), **extra}
        # Only unreserved characters (and ":" ","), which no client or proxy re-encodes:
        # Twilio signs the URL exactly as it requests it.
        return f"{self.public_url}{path}" + (f"?{urlencode(query, safe=':,')}" if query else "")

    async def verified_params(self, request: web.Request) -> Mapping[str, str]:
        """The request's parameters, if Twilio's signature over them and the public URL
        holds; otherwise 403. JSON bodies are checked through `bodySHA256`."""
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self.public_url + request.raw_path
        algorithm = get_signature_algorithm(
            request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
        params: Mapping[str, str]
        if "bodySHA256" in request.query:
            body = await request.text()
            ok = bool(signature) and self.validator.validate(url, body, signature, algorithm)
            params = _json_params(body) if ok else {}
        else:
            form = await request.post()
            strings: MultiDict[str] = MultiDict(
                (k, v) for k, v in form.items() if isinstance(v, str))
            ok = bool(signature) and self.validator.validate(
                url, MultiDictProxy(strings), signature, algorithm)
            params = MultiDictProxy(strings)
        if not ok:
            log.warning("twilio signature rejected", extra={"path": request.path})
            raise web.HTTPForbidden(text="invalid or missing X-Twilio-Signature",
                                    content_type="text/plain")
        return params

    def call(self, params: Mapping[str, str]) -> Call:
        sid = params.get("CallSid", "")
        if not sid or len(sid) > 64 or not sid.isascii():
            raise BadRequest("CallSid is required")
        caller = None
        # On a call we placed (a callback) the citizen is the one we called.
        outbound = params.get("Direction", "").startswith("outbound")
        raw = (params.get("To") if outbound else params.get("From") or params.get("Caller")) or ""
        if raw:
            try:
                caller = normalise(IdentityKind.PHONE, raw)
            except InvalidIdentity:
                caller = None  # withheld or not a number: the caller stays unknown
        return Call(sid, caller, params)

    async def record(self, call: Call, state: CallState, text: str, suffix: str = "",
                     author: Author = Author.SYSTEM) -> IngestResult:
        """Store one step of the call on its conversation (once, even if Twilio retries)."""
        key = state.origin or call.sid
        return await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=key,
            message_id=f"{call.sid}:{state.step}{suffix}", body=text, author=author,
            language=state.lang, identity_hints=call.hints(),
            metadata={"caller": call.caller, "called": call.params.get("To")},
        ))

    def spawn(self, work: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("hotline background %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)

    def start(self) -> None:
        """Start the timer that places callbacks that are due (retries, and any left by a
        restart)."""
        if self._timer is None and self.rest is not None:
            self._timer = asyncio.ensure_future(self._retry_loop())

    async def stop(self) -> None:
        await stop_task(self._timer, "hotline callback timer")
        self._timer = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.retry_interval)
            if not self.center.leading:
                continue  # in a cluster: the node that runs the router
            try:
                await self.retry_callbacks()
            except Exception:
                if cancelling():  # a library turned our cancellation into its own error
                    raise asyncio.CancelledError from None
                log.exception("hotline callback timer failed")

    # -- speaking -------------------------------------------------------------------------

    def say(self, parent: VoiceResponse | Gather, text: str, lang: str) -> None:
        voice = self.menus.voice(lang)
        kwargs: dict[str, str] = {"language": voice.language}
        if voice.voice:
            kwargs["voice"] = voice.voice
        parent.say(text, **kwargs)

    def menu_twiml(self, menu: Menu, state: CallState, intro: list[str] | None = None,
                   response: VoiceResponse | None = None) -> VoiceResponse:
        response = response or VoiceResponse()
        voice = self.menus.voice(state.lang)
        words = sorted({w for o in menu.options for w in o.speech.in_(state.lang)})
        gather = response.gather(
            # No finishing key: "#" and "*" are menu choices, not the end of input.
            input="dtmf speech", num_digits=1, finish_on_key="", timeout=self.menus.gather_timeout,
            speech_timeout="auto", language=voice.speech_language,
            action=self.url(f"/ivr/gather/{menu.id}", state), method="POST",
            action_on_empty_result=True, **({"hints": ", ".join(words)} if words else {}))
        for line in intro or []:
            self.say(gather, line, state.lang)
        self.say(gather, menu.prompt.in_(state.lang), state.lang)
        for option in menu.options:
            if option.action == "language":
                other = "en" if state.lang == "th" else "th"
                self.say(gather, say("press", other, label=option.label.in_(other),
                                     key=key_name(option.key, other)), other)
            else:
                self.say(gather, say("press", state.lang, label=option.label.in_(state.lang),
                                     key=key_name(option.key, state.lang)), state.lang)
        return response

    # -- the call -------------------------------------------------------------------------

    async def incoming(self, params: Mapping[str, str]) -> VoiceResponse:
        """A call comes in: it becomes a conversation; a caller with an open case is
        offered that case first, everyone else hears the main menu."""
        call = self.call(params)
        open_case = await self._open_case_of(call.caller)
        await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=call.sid, message_id=f"{call.sid}:start",
            body="สายเข้า: ระบบตอบรับอัตโนมัติ / Incoming call: automated menu",
            author=Author.SYSTEM, language="th", identity_hints=call.hints(),
            case_number=open_case.number if open_case else None,
            metadata={"caller": call.caller, "called": params.get("To")},
        ))
        state = CallState(step=1)
        start = self._menu(self.menus.start)
        if open_case is None:
            return self.menu_twiml(start, state)
        response = VoiceResponse()
        gather = response.gather(input="dtmf", num_digits=1, timeout=self.menus.gather_timeout,
                                 action=self.url("/ivr/open-case", state), method="POST",
                                 action_on_empty_result=True)
        status = case_status(open_case.status, state.lang)
        self.say(gather, start.prompt.in_(state.lang), state.lang)
        self.say(gather, say("open_case", state.lang,
                             number=spoken_case_number(open_case.number), status=status),
                 state.lang)
        return response

    async def open_case_choice(self, params: Mapping[str, str], state: CallState
                               ) -> VoiceResponse:
        call = self.call(params)
        digits = params.get("Digits", "")
        if digits == "1":
            step = await self.record(call, state, "เลือกติดต่อเรื่องคำร้องเดิม / Chose the open case")
            return await self.to_person(call, state.next(visited="open_case:1"), step,
                                        reason="open_case")
        await self.record(call, state, "ไปที่เมนูหลัก / Went to the main menu")
        return self.menu_twiml(self._menu(self.menus.start),
                               state.next(visited="open_case:2"))

    async def menu_choice(self, menu_id: str, params: Mapping[str, str], state: CallState
                          ) -> VoiceResponse:
        """The caller pressed a key or said something in a menu."""
        call = self.call(params)
        menu = self.menus.menu(menu_id)
        if menu is None:  # the menus changed during the call: start over
            return self.menu_twiml(self._menu(self.menus.start), state.next())
        digits = params.get("Digits", "").strip()
        speech = params.get("SpeechResult", "").strip()
        option = _choose(menu, digits, speech, state.lang)
        if option is None:
            problem = "no_input" if not digits and not speech else "invalid"
            return await self.failed(call, state, problem, lambda s, intro: self.menu_twiml(
                menu, s, intro), where=menu.id)
        how = f"กด {option.key}" if digits else "พูด"
        step = await self.record(
            call, state, f"เมนู {menu.id}: {how} → {option.label.th} / "
                         f"menu {menu.id}: {'pressed ' + option.key if digits else 'said'} → "
                         f"{option.label.en}")
        nxt = state.next(visited=f"{menu.id}:{_key_token(option.key)}")
        return await self.act(call, menu, option, nxt, step)

    async def act(self, call: Call, menu: Menu, option: Option, state: CallState,
                  step: IngestResult) -> VoiceResponse:
        lang = state.lang
        if option.action == "menu":
            return self.menu_twiml(self._menu(option.target or self.menus.start), state)
        if option.action == "language":
            other = "en" if lang == "th" else "th"
            return self.menu_twiml(self._menu(option.target or self.menus.start),
                                   replace(state, lang=other))
        if option.action == "repeat":
            return self.menu_twiml(menu, state)
        if option.action == "back":
            return self.menu_twiml(self._menu(self.menus.start), state)
        if option.action == "agent":
            return await self.to_person(call, state, step, reason="caller_asked",
                                        queue=option.queue, category=option.category)
        if option.action == "case_status":
            return self.ask_case_number(state)
        if option.action == "office_hours":
            lines = [say("office_hours", lang, name=o.name.in_(lang), hours=o.hours.in_(lang))
                     for o in self.menus.offices]
            return self.menu_twiml(menu, state, intro=lines)
        if option.action == "locations":
            lines = [say("office", lang, name=o.name.in_(lang), address=o.address.in_(lang))
                     for o in self.menus.offices]
            return self.menu_twiml(menu, state, intro=lines)
        if option.action == "faq":
            return self.ask_question(state)
        return self.voicemail_twiml(state)  # "voicemail"

    async def failed(self, call: Call, state: CallState, problem: str,
                     again: Callable[[CallState, list[str]], VoiceResponse], *, where: str
                     ) -> VoiceResponse:
        """No input or a wrong key: say so and ask again; after `max_failures`, a person."""
        tries = state.tries + 1
        step = await self.record(call, state, f"{where}: {problem} ({tries})")
        if tries >= self.menus.max_failures:
            return await self.to_person(
                call, state.next(visited=f"{where}:{problem}"), step, reason="ivr_failures",
                intro=[say("to_person_after_failures", state.lang)])
        return again(state.next(tries=tries),
                     [say(problem, state.lang)] if problem in PHRASES else [])

    # -- self-service ---------------------------------------------------------------------

    def ask_case_number(self, state: CallState, intro: list[str] | None = None
                        ) -> VoiceResponse:
        response = VoiceResponse()
        gather = response.gather(input="dtmf", num_digits=10, finish_on_key="#",
                                 timeout=self.menus.gather_timeout * 2,
                                 action=self.url("/ivr/case-status", state), method="POST",
                                 action_on_empty_result=True)
        for line in intro or []:
            self.say(gather, line, state.lang)
        self.say(gather, say("ask_case_number", state.lang), state.lang)
        return response

    async def case_status(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """Case status by keyed-in number; details only when the caller ID is the case's
        citizen's (verified) phone."""
        call = self.call(params)
        digits = "".join(ch for ch in params.get("Digits", "") if ch.isdigit())
        if len(digits) != 10:
            return await self.failed(call, state, "no_input" if not digits else "invalid",
                                     lambda s, intro: self.ask_case_number(
                                         s, [*intro, say("case_number_malformed", s.lang)]),
                                     where="case_status")
        number = f"OS-{digits[:4]}-{digits[4:]}"
        try:
            case = await self.center.case_by_number(number)
        except NotFound:
            spoken = spoken_case_number(number)
            return await self.failed(call, state, "not_found",
                                     lambda s, intro: self.ask_case_number(
                                         s, [say("case_not_found", s.lang, number=spoken)]),
                                     where="case_status")
        step = await self.record(call, state, f"ถามสถานะคำร้อง {number} / asked for the status "
                                              f"of case {number}")
        nxt = state.next(visited="case_status:found")
        if call.caller is None or step.citizen_id != case.citizen_id:
            await self.record(call, state, "ไม่แจ้งรายละเอียด: ผู้โทรไม่ใช่เจ้าของคำร้อง / "
                                           "details withheld: caller is not the case's citizen",
                              suffix=":withheld")
            return self.menu_twiml(self._menu(self.menus.start), nxt,
                                   intro=[say("case_private", state.lang)])
        await self.center.audit(SYSTEM, "view", "case", case.id, case.citizen_id,
                                reason="ivr self-service: verified caller ID",
                                data={"call": call.sid})
        line = say("case_status", state.lang, number=spoken_case_number(case.number),
                   status=case_status(case.status, state.lang),
                   due=spoken_date(case.resolution_due, state.lang))
        return self.menu_twiml(self._menu(self.menus.start), nxt, intro=[line])

    def ask_question(self, state: CallState, intro: list[str] | None = None,
                     follow_up: bool = False) -> VoiceResponse:
        response = VoiceResponse()
        voice = self.menus.voice(state.lang)
        gather = response.gather(input="dtmf speech" if follow_up else "speech",
                                 num_digits=1, language=voice.speech_language,
                                 speech_timeout="auto", timeout=self.menus.gather_timeout,
                                 action=self.url("/ivr/faq", state), method="POST",
                                 action_on_empty_result=True)
        for line in intro or []:
            self.say(gather, line, state.lang)
        self.say(gather, say("ask_more" if follow_up else "ask_question", state.lang),
                 state.lang)
        return response

    async def faq(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """A question by voice, answered by the bot; a person when it cannot."""
        call = self.call(params)
        digits = params.get("Digits", "").strip()
        question = params.get("SpeechResult", "").strip()[:1000]
        if digits == "0":
            step = await self.record(call, state, "FAQ: ขอคุยกับเจ้าหน้าที่ / asked for an officer")
            return await self.to_person(call, state.next(visited="faq:0"), step,
                                        reason="caller_asked")
        if digits == "*":
            await self.record(call, state, "FAQ: กลับเมนูหลัก / back to the main menu")
            return self.menu_twiml(self._menu(self.menus.start), state.next(visited="faq:star"))
        if not question:
            return await self.failed(call, state, "no_input" if not digits else "invalid",
                                     lambda s, intro: self.ask_question(s, intro),
                                     where="faq")
        asked = await self.record(call, state, question, suffix=":asked", author=Author.CITIZEN)
        reply = await self._ask_bot(asked, call, question, state.lang)
        nxt = state.next(visited="faq:speech")
        if reply is None:
            return await self.to_person(call, nxt, asked, reason="bot_unavailable")
        for i, text in enumerate(reply.messages):
            await self.record(call, state, text, suffix=f":bot{i}", author=Author.BOT)
        misses = 0 if reply.understood else state.tries + 1
        if reply.handoff or misses >= 2:
            return await self.to_person(
                call, nxt, asked,
                reason=reply.reason or ("bot_misunderstood" if misses >= 2 else "bot_handoff"),
                category=reply.category, intro=list(reply.messages),
                extra={"intent": reply.intent, "confidence": reply.confidence,
                       "intent_ranking": list(reply.intent_ranking),
                       "entities": list(reply.entities), "urgent": reply.urgent})
        return self.ask_question(replace(nxt, tries=misses), intro=list(reply.messages),
                                 follow_up=True)

    async def _ask_bot(self, asked: IngestResult, call: Call, question: str, lang: str
                       ) -> BotReply | None:
        if self.bot is None:
            return None
        turn = BotTurn(asked.conversation_id, asked.citizen_id, asked.case_number,
                       Channel.VOICE, question, lang, call.caller is not None,
                       {"verified": call.caller is not None, "channel": "voice"})
        try:
            return await asyncio.wait_for(self.bot.reply(turn), self.config.bot_timeout)
        except (BotUnavailable, TimeoutError) as exc:
            log.warning("bot unavailable for the hotline: %s", type(exc).__name__)
            return None

    # -- people ---------------------------------------------------------------------------

    async def to_person(self, call: Call, state: CallState, step: IngestResult, *,
                        reason: str, queue: str | None = None, category: str | None = None,
                        intro: list[str] | None = None,
                        extra: Mapping[str, Any] | None = None) -> VoiceResponse:
        """Hand the call to people and hold the caller in the queue (voicemail when the
        hotline's hours are closed)."""
        if not self._open_now():
            return self.voicemail_twiml(state, intro=[*(intro or []),
                                                      say("closed", state.lang)])
        context: dict[str, Any] = {"ivr_path": list(state.path), "language": state.lang,
                                   "call_sid": call.sid, **(extra or {})}
        if queue:
            context["queue"] = queue
        if category:
            context["category"] = category
        task_id = await self.center.hand_to_people(step.conversation_id, reason=reason,
                                                   context=context)
        return self.enqueue_twiml(replace(state, task=task_id),
                                  [*(intro or []), say("to_person", state.lang)])

    def enqueue_twiml(self, state: CallState, intro: list[str]) -> VoiceResponse:
        """Hold the caller in Twilio's queue; the router decides who takes the task."""
        response = VoiceResponse()
        for line in intro:
            self.say(response, line, state.lang)
        response.enqueue(HOLD_QUEUE, action=self.url("/ivr/queue-result", state),
                         method="POST", wait_url=self.url("/ivr/wait", state),
                         wait_url_method="POST")
        return response

    async def wait(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """Twilio's hold loop: where the caller stands, the estimated wait, the callback
        offer and music; `<Leave>` once an officer has accepted."""
        response = VoiceResponse()
        task = await self._task(state.task)
        if task is not None and task.status == TaskStatus.ASSIGNED and (
                await self._ringing(task.id)):
            # Twilio is slow to ring the officer in: music, then ask again.
            if self.config.hold_music_url:
                response.play(self.config.hold_music_url)
            else:
                response.pause(length=2)
            return response
        if task is None or task.status not in (TaskStatus.PENDING, TaskStatus.RESERVED):
            response.leave()
            return response
        position, wait = self.center.queue_position(task.id)
        gather = response.gather(input="dtmf", num_digits=1, timeout=1,
                                 action=self.url("/ivr/wait/key", state), method="POST")
        if position:
            self.say(gather, say("queue_position", state.lang, position=position), state.lang)
        if wait is not None and wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            self.say(gather, say("queue_wait", state.lang, minutes=minutes), state.lang)
        self.say(gather, say("queue_offer", state.lang), state.lang)
        if self.config.hold_music_url:
            gather.play(self.config.hold_music_url)
        return response

    async def wait_key(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """A key pressed on hold: 1 asks for a callback that keeps the caller's place."""
        call = self.call(params)
        response = VoiceResponse()
        if params.get("Digits") != "1":
            response.redirect(self.url("/ivr/wait", state), method="POST")
            return response
        if call.caller is None:
            self.say(response, say("callback_hidden", state.lang), state.lang)
            response.redirect(self.url("/ivr/wait", state), method="POST")
            return response
        await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=call.sid,
            message_id=f"{call.sid}:callback", author=Author.SYSTEM, language=state.lang,
            body="ผู้โทรขอให้โทรกลับ (คงลำดับคิว) / Caller asked to be called back (place kept)",
            identity_hints=call.hints()))
        task = await self._task(state.task)
        if task is not None and await self.center.load_state(_callback_key(task.id)) is None:
            await self.center.save_state(_callback_key(task.id), {
                "status": "requested", "task": task.id, "conversation_key": call.sid,
                "caller": call.caller, "lang": state.lang, "attempts": 0, "next_at": 0})
        response.leave()
        return response

    async def queue_result(self, params: Mapping[str, str], state: CallState
                           ) -> VoiceResponse:
        """The caller left the hold queue: to the officer, a callback promise, or gone."""
        call = self.call(params)
        result = params.get("QueueResult", "")
        response = VoiceResponse()
        task = await self._task(state.task)
        if result in ("hangup", "redirected"):
            if result == "hangup":
                await self._call_ended(call)
            return response
        if result == "bridged":
            return self.survey_twiml(state)
        if task is not None and task.status in (TaskStatus.ASSIGNED, TaskStatus.WRAPPING):
            return await self.connect_twiml(task, state, call)
        if await self._callback_requested(call.sid):
            self.say(response, say("callback_promised", state.lang), state.lang)
            response.hangup()
            return response
        return self.voicemail_twiml(state, intro=[say("left_queue", state.lang)])

    async def connect(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """TwiML that puts the caller through to the officer who accepted the task (used
        when Twilio is told to redirect a waiting call, and for callbacks)."""
        task = await self._task(state.task)
        if task is None or task.agent_id is None:
            response = VoiceResponse()
            self.say(response, say("agent_unreachable", state.lang), state.lang)
            response.hangup()
            return response
        intro = [say("callback_greeting", state.lang)] if params.get("Direction", "").startswith(
            "outbound") else []
        return await self.connect_twiml(task, state, self.call(params), intro)

    async def connect_twiml(self, task: Task, state: CallState, call: Call,
                            intro: list[str] | None = None) -> VoiceResponse:
        """Put the caller through to the task's officer: into a conference named after the
        task (so that the officer can consult someone and hand over), or — without the
        REST API, or when Twilio refuses to ring the officer — straight to their browser."""
        state = replace(state, task=task.id)
        agent = await self._agent(task.agent_id)
        conference = await self._conference_with_agent(task, state, call, agent)
        if conference == "slow":
            # Twilio has not answered within our budget (Twilio hangs up on a webhook
            # after 15 s): the caller waits in the hold queue, keeping their place, and
            # is put through once Twilio has rung the officer (see `wait`).
            return self.enqueue_twiml(state, [*(intro or []), say("connecting", state.lang)])
        response = VoiceResponse()
        for line in [*(intro or []), say("connecting", state.lang)]:
            self.say(response, line, state.lang)
        dial = response.dial(action=self.url("/ivr/after-agent", state), method="POST",
                             timeout=20, answer_on_bridge=True)
        if conference is None:
            number = agent_phone(agent) if agent and self.config.phone_number else None
            if number:
                dial.number(number)
                return response
            client = dial.client()
            client.identity(agent_identity(task.agent_id or ""))
            for name, value in self._leg_parameters(task, call, "agent").items():
                client.parameter(name=name, value=value)
            return response
        dial.conference(conference.name, participant_label="caller", beep=False,
                        start_conference_on_enter=False, end_conference_on_exit=True,
                        wait_url=self.config.hold_music_url, wait_method="GET",
                        status_callback=self.url("/ivr/conference", task=task.id),
                        status_callback_event="start end join leave",
                        status_callback_method="POST")
        return response

    async def _conference_with_agent(self, task: Task, state: CallState, call: Call,
                                     agent: AgentRecord | None
                                     ) -> ConferenceCall | Literal["slow"] | None:
        """Ring the officer into the task's conference (once, even if Twilio retries the
        webhook); None when that is not possible, "slow" when Twilio has not answered
        within `twilio_budget` (the request goes on in the background)."""
        if self.rest is None or agent is None or not self.config.hold_music_url:
            return None
        existing = await self.conferences.load(task.id)
        now = self.center.clock.now().timestamp()
        if existing is not None and existing.caller_call == call.sid and (
                existing.agent_id == agent.id):
            if existing.sid is not None:
                return existing
            if existing.asked_at is not None and now - existing.asked_at < RING_STALE_SECONDS:
                return "slow"  # still asking Twilio
        conference = ConferenceCall(task.id, call.sid, state.lang, agent.id,
                                    origin=state.origin, asked_at=now)
        await self.conferences.save(conference)
        ring = asyncio.ensure_future(self._ring_agent(conference, task, call, agent))
        self._background.add(ring)
        ring.add_done_callback(self._background.discard)
        try:
            async with asyncio.timeout(self.config.twilio_budget):
                return await asyncio.shield(ring)
        except TimeoutError:
            log.warning("twilio is slow to ring the officer; the caller waits in the queue",
                        extra={"task": task.id})
            return "slow"

    async def _ring_agent(self, conference: ConferenceCall, task: Task, call: Call,
                          agent: AgentRecord) -> ConferenceCall | None:
        """Ask Twilio to ring the officer (their browser, or their own phone) into the
        conference; remember the conference's SID, or forget the attempt if refused."""
        assert self.rest is not None
        try:
            joined = await self.rest.add_participant(
                conference.name, from_=self.config.phone_number or "client:onestop-hotline",
                to=agent_address(agent, self._leg_parameters(task, call, "agent"),
                                 numbers=bool(self.config.phone_number)),
                label=conference.agent_label,
                status_callback=self.url("/ivr/agent-leg", task=task.id, leg="agent",
                                         a=agent.id),
                start_conference_on_enter=True, end_conference_on_exit=True)
        except TWILIO_ERRORS as exc:
            log.warning("twilio did not ring the officer into the conference",
                        extra={"task": task.id, "error": type(exc).__name__})
            current = await self.conferences.load(task.id)
            if current is not None and current.asked_at == conference.asked_at and (
                    current.sid is None):
                await self.conferences.clear(task.id)
            return None
        done = replace(conference, sid=joined.conference_sid, asked_at=None)
        await self.conferences.save(done)
        return done

    async def _ringing(self, task_id: str) -> bool:
        """Whether Twilio is still being asked to ring the task's officer in."""
        conference = await self.conferences.load(task_id)
        return conference is not None and conference.sid is None and (
            conference.asked_at is not None
            and self.center.clock.now().timestamp() - conference.asked_at < RING_STALE_SECONDS)

    async def _agent(self, agent_id: str | None) -> AgentRecord | None:
        if not agent_id:
            return None
        try:
            return await self.center.agent_record(agent_id)
        except NotFound:
            return None

    @staticmethod
    def _leg_parameters(task: Task, call: Call, leg: str) -> dict[str, str]:
        """What the officer's browser gets with the incoming call (for the screen pop):
        ids, and the caller's number masked as everywhere in the console."""
        return {"task_id": task.id, "case_id": task.case_id, "leg": leg,
                "caller": mask(IdentityKind.PHONE, call.caller) if call.caller else ""}

    async def after_agent(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """The caller's officer leg ended: the survey after a conversation; back in the
        queue, in the same place, when the officer did not answer."""
        call = self.call(params)
        status = params.get("DialCallStatus", "")
        await self.record(call, state, f"สายกับเจ้าหน้าที่สิ้นสุด ({status}) / officer leg ended "
                                       f"({status})")
        if status == "completed":
            return self.survey_twiml(state.next(visited="agent"))
        task = await self._task(state.task)
        if task is not None and await self._requeue(task):
            return self.enqueue_twiml(state.next(visited="agent:" + status[:20]),
                                      [say("agent_missed", state.lang)])
        return self.voicemail_twiml(state.next(visited="agent:" + status[:20]),
                                    intro=[say("agent_unreachable", state.lang)])

    async def _requeue(self, task: Task) -> bool:
        """The officer did not answer the call they accepted: the task goes back to its
        queue keeping its place, and the officer is set away as for a missed offer (so it
        is not offered straight back to them). False if the task is no longer theirs."""
        if task.status != TaskStatus.ASSIGNED or not task.agent_id:
            return False
        await self.conferences.clear(task.id)
        if self.center.settings.on_missed_offer == "away":
            await self.center.set_presence(task.agent_id, Presence.AWAY, "missed_call")
        # Not a transfer: the case keeps its one-stop chance.
        await self.center.requeue_task(task.id, reason="missed_call")
        return True

    async def requeue(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """TwiML for a caller taken out of a conference whose officer did not answer."""
        self.call(params)
        return self.enqueue_twiml(state, [say("agent_missed", state.lang)])

    async def agent_leg(self, params: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Status callbacks of officers' (and consulted parties') legs into a conference."""
        sid, status = params.get("CallSid", ""), params.get("CallStatus", "")
        task_id = query.get("task", "")
        if not sid or not status or not task_id:
            raise BadRequest("CallSid, CallStatus and the task are required")
        if not await self.center.record_event("twilio-agent-leg", f"{sid}:{status}",
                                              {"task": task_id, "leg": query.get("leg")}):
            return
        if query.get("leg") == "consult":
            if status in UNANSWERED or status == "completed":
                await self.transfers.consult_ended(task_id, query.get("lb", ""), status)
            return
        if status in UNANSWERED:
            await self._agent_missed(task_id, query.get("a", ""))

    async def conference_event(self, params: Mapping[str, str], query: Mapping[str, str]
                               ) -> None:
        """Status callbacks of a task's conference (start, end, join, leave), recorded once
        each. The caller leaving, or the conference ending, while the officer still holds
        the task sends the task to wrap-up; an officer joining is on the timeline."""
        conference_sid = params.get("ConferenceSid", "")
        event = params.get("StatusCallbackEvent", "")
        task_id = query.get("task", "")
        if not conference_sid or not event or not task_id:
            raise BadRequest("ConferenceSid, StatusCallbackEvent and the task are required")
        if len(conference_sid) > 64 or len(event) > 40 or len(task_id) > 64:
            raise BadRequest("ConferenceSid, StatusCallbackEvent or the task is too long")
        label = params.get("ParticipantLabel", "")[:100]
        event_id = ":".join((conference_sid, event, params.get("CallSid", "")[:64],
                             params.get("SequenceNumber", "")[:12]))
        if not await self.center.record_event("twilio-conference", event_id, {
                "task": task_id, "event": event[:40], "label": label[:60],
                "reason": params.get("ReasonConferenceEnded") or params.get("Reason")}):
            return
        conference = await self.conferences.load(task_id)
        if conference is None or (conference.sid and conference.sid != conference_sid):
            return  # over already (requeued, handed over), or an earlier conference
        key = conference.origin or conference.caller_call
        caller_left = event == "participant-leave" and (
            label == CALLER_LABEL or params.get("CallSid") == conference.caller_call)
        if event == "participant-join" and label == conference.agent_label:
            await self._conference_note(key, conference_sid, f"join:{label}",
                                        "เจ้าหน้าที่เข้าสายแล้ว / the officer joined the call")
        elif caller_left or event == "conference-end":
            await self._conference_over(conference, conference_sid, "caller_left"
                                        if caller_left else "conference_end")

    async def _conference_over(self, conference: ConferenceCall, conference_sid: str,
                               why: str) -> None:
        """The call in the conference is over: forget the conference; the officer who
        still holds the task goes to wrap-up (the caller may still be answering the
        survey)."""
        await self.conferences.clear(conference.task_id)
        task = await self._task(conference.task_id)
        if task is not None and task.status == TaskStatus.ASSIGNED and task.agent_id and (
                task.agent_id == conference.agent_id):
            try:
                await self.center.complete_task(task.id, task.agent_id)
            except (NotFound, Conflict) as exc:
                log.warning("conference over, task not wrapped up",
                            extra={"task": task.id, "error": type(exc).__name__})
        text = ("ผู้โทรออกจากสายแล้ว / the caller left the call" if why == "caller_left"
                else "การสนทนาทางโทรศัพท์จบแล้ว / the call ended")
        await self._conference_note(conference.origin or conference.caller_call,
                                    conference_sid, why, text)

    async def _conference_note(self, key: str, conference_sid: str, what: str,
                               text: str) -> None:
        await self._note(key, f"{conference_sid}:{what}", text)

    async def _note(self, key: str, message_id: str, body: str) -> None:
        """A system line on the call's timeline (once per `message_id`); none once the
        call's conversation is closed (a note must not reopen it)."""
        conv = await self._conversation(key)
        if conv is not None and conv.status == ConversationStatus.CLOSED:
            return
        await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=key, author=Author.SYSTEM,
            message_id=message_id, body=body))

    async def _agent_missed(self, task_id: str, agent_id: str) -> None:
        """The officer's browser did not answer: take the caller out of the conference and
        back into the hold queue, in the same place."""
        conference = await self.conferences.load(task_id)
        task = await self._task(task_id)
        if conference is None or task is None or conference.agent_id != agent_id or (
                task.agent_id != agent_id):
            return  # a later leg, or the call moved on
        if not await self._requeue(task):
            return
        key = conference.origin or conference.caller_call
        await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=key, author=Author.SYSTEM,
            message_id=f"{conference.caller_call}:agent-missed:{task.id}:{agent_id}",
            body="เจ้าหน้าที่ไม่ได้รับสาย ผู้โทรกลับเข้าคิวลำดับเดิม / the officer did not answer; "
                 "the caller is back in the queue in the same place"))
        state = CallState(lang=conference.lang, step=20_000, task=task.id,
                          origin=conference.origin)
        url = self.url("/ivr/requeue", state)
        # Meanwhile the caller hears the conference's hold music; Twilio refusing (429,
        # 500) or slow is tried again in the background.
        assert self.rest is not None  # a conference exists only with the REST API
        try:
            async with asyncio.timeout(self.config.twilio_budget):
                await self.rest.redirect_call(conference.caller_call, url)
        except TWILIO_ERRORS as exc:
            log.warning("twilio did not take the caller back to the queue",
                        extra={"task": task.id, "error": _twilio_error(exc)})
            self.spawn(self._back_to_queue(task.id, conference, url, _twilio_error(exc)),
                       "back-to-queue")

    async def _back_to_queue(self, task_id: str, conference: ConferenceCall, url: str,
                             what: str, delays: tuple[float, ...] = (1, 3, 10)) -> None:
        """Redirect the caller out of the conference to the hold queue again while
        Twilio refuses; the timeline says so if it never takes it."""
        assert self.rest is not None
        for delay in delays:
            await asyncio.sleep(delay)
            task = await self._task(task_id)
            if task is None or task.status not in (TaskStatus.PENDING, TaskStatus.RESERVED):
                return  # the call moved on (an officer took it, or the caller left)
            try:
                async with asyncio.timeout(self.config.twilio_budget):
                    await self.rest.redirect_call(conference.caller_call, url)
                return
            except TWILIO_ERRORS as exc:
                what = _twilio_error(exc)
                log.warning("twilio did not take the caller back to the queue",
                            extra={"task": task_id, "error": what})
        await self._note(
            conference.origin or conference.caller_call,
            f"{conference.caller_call}:requeue-failed:{task_id}",
            f"Twilio ไม่รับคำขอย้ายผู้โทรกลับเข้าคิว ({what}) ผู้โทรยังฟังเพลงรอสายอยู่ "
            f"เจ้าหน้าที่คนถัดไปที่รับงานจะได้สายนี้ / Twilio did not take the caller back to "
            f"the queue ({what}); they still hear the hold music and the next officer who "
            f"accepts the task is put through")

    def survey_twiml(self, state: CallState, intro: list[str] | None = None) -> VoiceResponse:
        response = VoiceResponse()
        gather = response.gather(input="dtmf", num_digits=1, timeout=self.menus.gather_timeout,
                                 action=self.url("/ivr/survey", state), method="POST",
                                 action_on_empty_result=True)
        for line in intro or []:
            self.say(gather, line, state.lang)
        self.say(gather, say("survey", state.lang), state.lang)
        return response

    async def survey(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """Satisfaction 1–5 by keypad, stored on the case (CSAT)."""
        call = self.call(params)
        digits = params.get("Digits", "").strip()
        response = VoiceResponse()
        if digits not in ("1", "2", "3", "4", "5"):
            if state.tries >= 1:
                self.say(response, say("goodbye", state.lang), state.lang)
                response.hangup()
                return response
            return self.survey_twiml(state.next(tries=state.tries + 1),
                                     intro=[say("invalid" if digits else "no_input",
                                                state.lang)])
        step = await self.record(call, state, f"แบบสำรวจความพึงพอใจ: {digits} / "
                                              f"satisfaction survey: {digits}")
        await self.center.update_case(step.case_id, SYSTEM, csat=int(digits))
        self.say(response, say("survey_thanks", state.lang), state.lang)
        response.hangup()
        return response

    # -- voicemail ------------------------------------------------------------------------

    def voicemail_twiml(self, state: CallState, intro: list[str] | None = None
                        ) -> VoiceResponse:
        response = VoiceResponse()
        for line in [*(intro or []), say("leave_message", state.lang)]:
            self.say(response, line, state.lang)
        response.record(action=self.url("/ivr/voicemail", state), method="POST",
                        max_length=120, finish_on_key="#", play_beep=True, timeout=5,
                        transcribe=True,
                        transcribe_callback=self.url("/ivr/voicemail/transcription", state))
        self.say(response, say("no_message", state.lang), state.lang)
        response.hangup()
        return response

    async def voicemail(self, params: Mapping[str, str], state: CallState) -> VoiceResponse:
        """A recording is ready: it becomes a message on the conversation and a task for
        the next officer free (the case stays open for the next shift)."""
        call = self.call(params)
        response = VoiceResponse()
        recording = params.get("RecordingUrl", "")
        recording_sid = params.get("RecordingSid", "")
        if not recording.startswith(("https://", "http://")) or not recording_sid:
            self.say(response, say("no_message", state.lang), state.lang)
            response.hangup()
            return response
        seconds = params.get("RecordingDuration", "?")
        stored = await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=state.origin or call.sid,
            message_id=f"{call.sid}:voicemail:{recording_sid}", author=Author.CITIZEN,
            language=state.lang, identity_hints=call.hints(),
            body=f"ข้อความเสียง / Voicemail ({seconds} s): {recording}"))
        await self.center.hand_to_people(
            stored.conversation_id, reason="voicemail",
            context={"ivr_path": [*state.path, "voicemail"], "language": state.lang,
                     "voicemail_url": recording, "call_sid": call.sid})
        self.say(response, say("message_taken", state.lang), state.lang)
        response.hangup()
        return response

    async def transcription(self, params: Mapping[str, str], state: CallState) -> None:
        call = self.call(params)
        text = params.get("TranscriptionText", "").strip()
        recording_sid = params.get("RecordingSid", "")
        if params.get("TranscriptionStatus", "completed") != "completed" or not text:
            return
        await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=state.origin or call.sid,
            message_id=f"{call.sid}:transcription:{recording_sid}", author=Author.SYSTEM,
            language=state.lang, identity_hints=call.hints(),
            body=f"คำถอดความข้อความเสียง / Voicemail transcription: {text[:4000]}"))

    # -- call status ----------------------------------------------------------------------

    async def status(self, params: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Status callbacks, once each: an ended call closes its conversation; a caller
        who hangs up while waiting is recorded as abandoned (unless a callback or a
        voicemail keeps their place)."""
        call = self.call(params)
        status = params.get("CallStatus", "")
        if not status:
            raise BadRequest("CallStatus is required")
        event_id = ":".join((call.sid, status, params.get("SequenceNumber", "")))
        fresh = await self.center.record_event("twilio-status", event_id, {
            "status": status, "duration": params.get("CallDuration"),
            "direction": params.get("Direction"), "conversation": query.get("conversation"),
        })
        if not fresh or status not in ENDED_CALL_STATUSES:
            return
        if query.get("conversation"):  # the leg we placed to call someone back
            await self._callback_leg_ended(query["conversation"], status)
            return
        await self._call_ended(call)

    async def _call_ended(self, call: Call) -> None:
        conv = await self._conversation(call.sid)
        if conv is None or conv.status == ConversationStatus.CLOSED:
            return
        tasks, _ = await self.center.list_rows(
            Task, Task.conversation_id == conv.id, Task.status.in_(OPEN_TASK_STATUSES))
        waiting = [t for t in tasks if t.status in (TaskStatus.PENDING, TaskStatus.RESERVED)]
        if waiting and (any(t.reason == "voicemail" for t in waiting)
                        or await self._callback_requested(call.sid)):
            return  # the caller's place is kept: a person calls back or hears the message
        await self.center.close_conversation(conv.id,
                                             reason="citizen_left" if waiting else "ended")

    async def _callback_leg_ended(self, conversation_id: str, status: str) -> None:
        try:
            conv = await self.center.conversation(conversation_id)
        except NotFound:
            return
        if status == "completed":
            await self.center.close_conversation(conv.id, reason="ended")
            return
        await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=conv.provider_key,
            message_id=f"{conv.provider_key}:callback-{status}", author=Author.SYSTEM,
            body=f"โทรกลับไม่สำเร็จ ({status}) / Callback not answered ({status})"))

    # -- officers accept ------------------------------------------------------------------

    async def on_task_accepted(self, event: TaskAccepted) -> None:
        """An officer took a waiting call: ring the caller back, or pull them out of the
        hold queue at once (the hold loop would notice too, a little later)."""
        if self.rest is None or not event.task_id:
            return
        self.spawn(self._put_through(event.task_id, event.agent_id), "put-through")

    async def _put_through(self, task_id: str, agent_id: str | None = None) -> None:
        assert self.rest is not None
        task = await self.center.task(task_id)
        if task.channel != Channel.VOICE:
            return
        conference = await self.conferences.load(task_id)
        if conference is not None and conference.agent_id == agent_id:
            return  # a warm transfer: the new officer is on the call already
        conv = await self.center.conversation(task.conversation_id)
        lang = str(task.attributes.get("language") or "th")
        state = CallState(lang="en" if lang == "en" else "th", step=10_000, task=task.id,
                          origin=conv.provider_key)
        try:
            await self._ring_or_redirect(task, conv, state)
        except Exception as exc:  # Twilio refused or is unreachable: say so on the timeline
            log.warning("twilio did not take the call request",
                        extra={"task": task.id, "error": type(exc).__name__})
            await self.center.ingest(InboundMessage(
                channel=Channel.VOICE, conversation_key=conv.provider_key,
                message_id=f"{conv.provider_key}:put-through-failed:{task.id}",
                author=Author.SYSTEM,
                body="ต่อสายไม่สำเร็จ: Twilio ไม่รับคำขอ / Could not reach the caller: Twilio "
                     "refused the request"))

    async def _ring_or_redirect(self, task: Task, conv: Conversation, state: CallState
                                ) -> None:
        assert self.rest is not None
        if await self._callback_requested(conv.provider_key):
            saved = await self.center.load_state(_callback_key(task.id))
            if saved is None:  # asked for before the task was known: keep the intent now
                await self.center.save_state(_callback_key(task.id), {
                    "status": "requested", "task": task.id,
                    "conversation_key": conv.provider_key,
                    "caller": (conv.attributes or {}).get("caller"), "lang": state.lang,
                    "attempts": 0, "next_at": 0})
            elif saved.get("status") == "placed" and saved.get("call_sid"):
                # The citizen is on our callback leg (back in the queue after an officer
                # missed it): put that leg through.
                await self.rest.redirect_call(str(saved["call_sid"]),
                                              self.url("/ivr/connect", state))
                return
            await self._attempt_callback(task.id)
            return
        if conv.status == ConversationStatus.CLOSED or task.attributes.get("reason") == (
                "voicemail"):
            return
        await self.rest.redirect_call(conv.provider_key, self.url("/ivr/connect", state))

    # -- callbacks ------------------------------------------------------------------------

    async def retry_callbacks(self) -> int:
        """Place every callback that is due: its officer holds the task and the last
        attempt's back-off has run out (also those a restart interrupted). Returns how
        many calls were placed."""
        if self.rest is None:
            return 0
        tasks, _ = await self.center.list_rows(
            Task, Task.channel == str(Channel.VOICE), Task.status == str(TaskStatus.ASSIGNED),
            limit=500)
        placed = 0
        for task in tasks:
            if await self._attempt_callback(task.id):
                placed += 1
        return placed

    async def _attempt_callback(self, task_id: str) -> bool:
        """One attempt at calling the citizen back. The attempt is claimed (so that no
        other node makes it too) and counted before Twilio is asked, and the callback is
        marked placed only when Twilio took it; a refusal or an interruption leaves it
        due again after a back-off (429: Twilio's Retry-After). After
        `callback_attempts` the officer is told to call the citizen themselves."""
        lock = self._callback_locks.setdefault(task_id, asyncio.Lock())
        async with lock:
            key = _callback_key(task_id)
            saved = await self.center.load_state(key)
            if not saved or saved.get("status") not in ("requested", "retrying"):
                return False
            now = self.center.clock.now().timestamp()
            if float(saved.get("next_at") or 0) > now:
                return False
            task = await self._task(task_id)
            if task is None or task.status != TaskStatus.ASSIGNED or self.rest is None:
                return False  # only when an officer is there to take the call
            conv = await self.center.conversation(task.conversation_id)
            caller = saved.get("caller") or (conv.attributes or {}).get("caller")
            if not caller or not self.config.phone_number:
                return False
            attempt = int(saved.get("attempts") or 0) + 1
            if not await self.center.record_event("ivr-callback-attempt",
                                                  f"{task_id}:{attempt}", {"at": now}):
                # Someone else is making this attempt (they save its outcome), or it was
                # claimed by a node that died before saving: skip past it after a while.
                if now - float(saved.get("next_at") or 0) > CLAIM_STALE_SECONDS:
                    await self.center.save_state(key, {**saved, "attempts": attempt,
                                                       "next_at": now})
                return False
            backoff = self.config.callback_backoff or (10.0,)
            lease = {**saved, "task": task_id, "status": "retrying", "attempts": attempt,
                     "next_at": now + backoff[min(attempt - 1, len(backoff) - 1)]}
            await self.center.save_state(key, lease)
            lang = str(saved.get("lang") or task.attributes.get("language") or "th")
            state = CallState(lang="en" if lang == "en" else "th", step=10_000, task=task.id,
                              origin=conv.provider_key)
            try:
                sid = await self.rest.place_call(
                    to=str(caller), from_=self.config.phone_number,
                    url=self.url("/ivr/connect", state),
                    status_callback=self.url("/ivr/status", conversation=conv.id))
            except TWILIO_ERRORS as exc:
                await self._callback_refused(conv, lease, exc, now)
                return False
            await self.center.save_state(key, {**lease, "status": "placed", "call_sid": sid,
                                               "next_at": None})
            await self.center.record_event("ivr-callback", task_id, {"conversation": conv.id,
                                                                     "call": sid})
        await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=conv.provider_key,
            message_id=f"{conv.provider_key}:callback-call", author=Author.SYSTEM,
            body=f"โทรกลับหาผู้ติดต่อ / Calling the citizen back ({sid})"))
        return True

    async def _callback_refused(self, conv: Conversation, lease: Mapping[str, Any],
                                exc: BaseException, now: float) -> None:
        """Twilio did not place the callback: due again later, or — after the last
        attempt — a clear note for the officer who holds the task."""
        task_id, attempt = str(lease["task"]), int(lease["attempts"])
        what = _twilio_error(exc)
        log.warning("twilio did not place the callback",
                    extra={"task": task_id, "attempt": attempt, "error": what})
        key = _callback_key(task_id)
        if attempt >= self.config.callback_attempts:
            await self.center.save_state(key, {**lease, "status": "failed", "error": what,
                                               "next_at": None})
            body = (f"โทรกลับไม่สำเร็จหลังพยายาม {attempt} ครั้ง ({what}) กรุณาโทรหาผู้ติดต่อเอง "
                    f"/ The callback could not be placed after {attempt} attempts ({what}); "
                    f"please call the citizen yourself")
            suffix = "failed"
        else:
            delay = float(lease["next_at"]) - now
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                delay = max(1.0, exc.retry_after)
            await self.center.save_state(key, {**lease, "next_at": now + delay,
                                               "error": what})
            body = (f"Twilio ยังไม่รับคำขอโทรกลับ ({what}) จะลองใหม่ใน {delay:.0f} วินาที "
                    f"(ครั้งที่ {attempt}) / Twilio did not place the callback yet ({what}); "
                    f"trying again in {delay:.0f} s (attempt {attempt})")
            suffix = f"retry-{attempt}"
        await self._note(conv.provider_key, f"{conv.provider_key}:callback-{suffix}:{task_id}",
                         body)

    # -- SMS ------------------------------------------------------------------------------

    async def sms(self, params: Mapping[str, str]) -> MessagingResponse:
        """An SMS into the same core: the conversation is the sender's number."""
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        sender = params.get("From", "")
        if not sid or not sender:
            raise BadRequest("MessageSid and From are required")
        hints: tuple[IdentityHint, ...] = ()
        key = sender
        try:
            key = normalise(IdentityKind.PHONE, sender)
            hints = (IdentityHint(IdentityKind.PHONE, key, verified_by="sms_sender"),)
        except InvalidIdentity:
            pass
        body = params.get("Body", "")
        media = [params.get(f"MediaUrl{i}", "") for i in range(_int(params.get("NumMedia")))]
        if media:
            body = "\n".join([body, *(m for m in media if m)]).strip()
        await self.center.ingest(InboundMessage(
            channel=Channel.SMS, conversation_key=key, message_id=sid, body=body[:10_000],
            identity_hints=hints, metadata={"called": params.get("To")}))
        return MessagingResponse()

    # -- look-ups -------------------------------------------------------------------------

    def _menu(self, menu_id: str) -> Menu:
        menu = self.menus.menu(menu_id)
        assert menu is not None, menu_id  # checked when the menus were loaded
        return menu

    def _open_now(self) -> bool:
        hours = self.center.hours.get(self.menus.hours)
        return hours is None or hours.is_open(self.center.clock.now())

    async def _open_case_of(self, caller: str | None) -> Case | None:
        if caller is None:
            return None
        identities, _ = await self.center.list_rows(
            Identity, Identity.kind == str(IdentityKind.PHONE), Identity.value == caller,
            limit=1)
        if not identities:
            return None
        cases, _ = await self.center.list_rows(
            Case, Case.citizen_id == identities[0].citizen_id,
            Case.status.in_(OPEN_CASE_STATUSES), order_by=Case.updated_at.desc(), limit=1)
        return cases[0] if cases else None

    async def _conversation(self, call_sid: str) -> Conversation | None:
        rows, _ = await self.center.list_rows(
            Conversation, Conversation.channel == str(Channel.VOICE),
            Conversation.provider_key == call_sid, limit=1)
        return rows[0] if rows else None

    async def _task(self, task_id: str | None) -> Task | None:
        if not task_id:
            return None
        try:
            return await self.center.task(task_id)
        except NotFound:
            return None

    async def _callback_requested(self, call_sid: str) -> bool:
        rows, _ = await self.center.list_rows(
            Message, Message.channel == str(Channel.VOICE),
            Message.provider_message_id == f"{call_sid}:callback", limit=1)
        return bool(rows)


def _twilio_error(exc: BaseException) -> str:
    """What Twilio answered, for the timeline and the logs (no numbers, no bodies)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return f"HTTP {status}"
    return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__


def _key_token(key: str) -> str:
    return {"*": "star", "#": "hash"}.get(key, key)


def _choose(menu: Menu, digits: str, speech: str, lang: str) -> Option | None:
    if digits:
        return menu.option(digits[:1])
    said = speech.lower()
    if not said:
        return None
    for option in menu.options:
        for word in (*option.speech.th, *option.speech.en):
            if word.lower() in said:
                return option
    return None


def _json_params(body: str) -> dict[str, str]:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def _int(value: str | None) -> int:
    try:
        return max(0, min(int(value or 0), 10))
    except ValueError:
        return 0
