"""The officer's leg as a Twilio conference, and warm transfers.

A caller put through to an officer joins a conference named after the task
(`<Dial><Conference>`); the officer is rung into it through the REST Participants API.
A conference, unlike `<Dial><Client>`, can hold a third party: the officer consults a
colleague (or the next free officer of a queue, or a phone number) while the caller
hears hold music, then hands the call over and leaves — or cancels and takes the caller
back. What the hotline knows about a live conference is saved in the core's named state
(`ivr-conference:<task id>`), so every node and every restart sees the same thing.

Participants are addressed by label: `caller`, `agent_<id>` for officers, `external` for
a phone number.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioException

from routing import (
    AgentRecord,
    Author,
    Channel,
    ContactCenter,
    IdentityKind,
    InboundMessage,
    InvalidIdentity,
    NotFound,
    Presence,
    Task,
    TaskStatus,
    normalise,
)

if TYPE_CHECKING:
    from ivr.hotline import Hotline

log = logging.getLogger(__name__)

CALLER_LABEL = "caller"
EXTERNAL_LABEL = "external"
#: A leg that ended before anyone answered (Twilio's final call statuses).
UNANSWERED = frozenset({"no-answer", "busy", "failed", "canceled"})
HELD_STATUSES = [str(TaskStatus.RESERVED), str(TaskStatus.ASSIGNED), str(TaskStatus.WRAPPING)]
TWILIO_ERRORS = (TwilioException, aiohttp.ClientError, OSError, TimeoutError)


def agent_identity(agent_id: str) -> str:
    """The Twilio Client identity of an officer (no names: the agent id)."""
    return f"agent_{agent_id}"


def client_address(identity: str, parameters: Mapping[str, str]) -> str:
    """`client:<identity>?<params>`: Twilio hands the parameters to the Voice SDK as the
    incoming call's `customParameters` (the screen pop needs the task)."""
    return f"client:{identity}?{urlencode(parameters)}"


def agent_phone(agent: AgentRecord) -> str | None:
    """The officer's own number when they chose to take calls on it (else None: the
    console's browser phone)."""
    if getattr(agent, "voice_device", None) == "phone" and agent.phone_number:
        return str(agent.phone_number)
    return None


def agent_address(agent: AgentRecord, parameters: Mapping[str, str], *,
                  numbers: bool = True) -> str:
    """Where Twilio rings an officer: their own number (E.164) when they chose "phone"
    in their profile and we have a number to call from (`numbers`), otherwise their
    browser (`client:agent_<id>?<params>`)."""
    number = agent_phone(agent) if numbers else None
    return number or client_address(agent_identity(agent.id), parameters)


@dataclass(frozen=True)
class Consult:
    """The third party being consulted during a warm transfer."""

    kind: Literal["agent", "number"]
    label: str
    agent_id: str | None = None
    queue_id: str | None = None


@dataclass(frozen=True)
class ConferenceCall:
    """A caller's conference with an officer, as saved between requests."""

    task_id: str
    caller_call: str  # the CallSid of the caller's leg in the conference
    lang: str
    agent_id: str  # the officer the caller is (being) connected to
    sid: str | None = None  # the conference's SID (CF…), from Twilio
    origin: str | None = None  # the citizen's first CallSid, on a callback leg
    consult: Consult | None = None
    transfers: int = 0
    #: When Twilio was asked to ring the officer in (epoch seconds) and has not answered
    #: yet; None once the conference's SID is known.
    asked_at: float | None = None

    @property
    def name(self) -> str:
        return conference_name(self.task_id)

    @property
    def agent_label(self) -> str:
        return agent_identity(self.agent_id)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConferenceCall | None:
        if not data.get("task_id"):
            return None  # cleared
        consult = data.get("consult")
        return cls(**{**data, "consult": Consult(**consult) if consult else None})


def conference_name(task_id: str) -> str:
    return f"onestop-task-{task_id}"


class ConferenceStore:
    """Live conferences in the core's named state (shared by every node)."""

    def __init__(self, center: ContactCenter) -> None:
        self.center = center

    async def load(self, task_id: str) -> ConferenceCall | None:
        data = await self.center.load_state(_key(task_id))
        return ConferenceCall.from_json(data) if data else None

    async def save(self, call: ConferenceCall) -> None:
        await self.center.save_state(_key(call.task_id), call.to_json())

    async def clear(self, task_id: str) -> None:
        await self.center.save_state(_key(task_id), {})


def _key(task_id: str) -> str:
    return f"ivr-conference:{task_id}"


class TransferError(Exception):
    """A warm-transfer request that cannot be done: HTTP status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Target:
    """Whom to consult: exactly one of an agent, a queue's next free agent, a number."""

    agent_id: str | None = None
    queue_id: str | None = None
    number: str | None = None

    @classmethod
    def parse(cls, body: Any) -> Target:
        if not isinstance(body, dict) or set(body) - {"agent_id", "queue_id", "number"}:
            raise TransferError(422, "invalid", "send one of agent_id, queue_id, number")
        given = {k: v for k, v in body.items() if v not in (None, "")}
        if len(given) != 1 or not all(isinstance(v, str) and len(v) <= 64
                                      for v in given.values()):
            raise TransferError(422, "invalid", "send exactly one of agent_id, queue_id, "
                                                "number (a string)")
        return cls(**given)


class Transfers:
    """Warm transfers on a live conference, asked for by the officer who holds the call."""

    def __init__(self, hotline: Hotline) -> None:
        self.hotline = hotline
        self.center = hotline.center
        self.store = hotline.conferences
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, task_id: str) -> asyncio.Lock:
        return self._locks.setdefault(task_id, asyncio.Lock())

    # -- the officer's requests -----------------------------------------------------------

    async def view(self, task_id: str, agent_id: str) -> dict[str, Any]:
        """What the console shows: whether the call is in a conference and who is being
        consulted."""
        call = await self._owned(task_id, agent_id)
        return _view(call)

    async def targets(self, task_id: str, agent_id: str) -> dict[str, Any]:
        """Whom the officer on the call can consult now: the officers who are available
        and hold nothing (a call is exclusive), longest available first."""
        try:
            task = await self.center.task(task_id)
        except NotFound:
            raise TransferError(404, "not_found", f"no task {task_id}") from None
        if task.channel != Channel.VOICE or task.agent_id != agent_id:
            raise TransferError(403, "not_your_call", "only the officer on the call can "
                                                      "transfer it")
        agents, _ = await self.center.list_rows(
            AgentRecord, AgentRecord.presence == str(Presence.AVAILABLE),
            AgentRecord.active.is_(True), AgentRecord.id != agent_id,
            order_by=AgentRecord.presence_since, limit=200)
        free = [a for a in agents if not await self._holds_tasks(a.id)]
        return {"task_id": task_id,
                "agents": [{"id": a.id, "display_name": a.display_name,
                            "languages": list(a.languages or [])} for a in free]}

    async def start(self, task_id: str, agent_id: str, target: Target) -> dict[str, Any]:
        """Ring the target into the conference and put the caller on hold."""
        async with self._lock(task_id):
            call = await self._owned(task_id, agent_id)
            if call.consult is not None:
                raise TransferError(409, "transfer_in_progress",
                                    "a transfer is already in progress; complete or cancel it")
            consult, to = await self._resolve(target, agent_id, call)
            rest = self._rest()
            try:
                await rest.add_participant(
                    call.sid or "", to=to, from_=self._from(), label=consult.label,
                    status_callback=self.hotline.url("/ivr/agent-leg", task=task_id,
                                                     leg="consult", lb=consult.label),
                    start_conference_on_enter=True, end_conference_on_exit=False)
            except TWILIO_ERRORS as exc:
                raise _twilio_refused(exc, task_id) from None
            try:
                await rest.update_participant(call.sid or "", CALLER_LABEL, hold=True,
                                              hold_url=self.hotline.config.hold_music_url)
            except TWILIO_ERRORS as exc:
                await self._quietly(rest.remove_participant(call.sid or "", consult.label))
                raise _twilio_refused(exc, task_id) from None
            call = replace(call, consult=consult)
            await self.store.save(call)
        await self._note(call, "start", f"เริ่มโอนสายแบบปรึกษา ({_who(consult)}) ผู้โทรถูกพักสาย / "
                                        f"warm transfer started ({_who(consult)}); caller on hold")
        return _view(call)

    async def complete(self, task_id: str, agent_id: str) -> dict[str, Any]:
        """Hand the caller to the consulted party and leave: the task moves to the new
        officer in the core (or, for a phone number, goes to wrap-up)."""
        async with self._lock(task_id):
            call = await self._owned(task_id, agent_id)
            consult = self._consulting(call)
            rest = self._rest()
            sid = call.sid or ""
            try:
                # The new party's leaving now ends the call; the first officer's does not.
                await rest.update_participant(sid, consult.label, end_conference_on_exit=True)
                await rest.update_participant(sid, call.agent_label,
                                              end_conference_on_exit=False)
                await rest.update_participant(sid, CALLER_LABEL, hold=False)
                await rest.remove_participant(sid, call.agent_label)
            except TWILIO_ERRORS as exc:
                raise _twilio_refused(exc, task_id) from None
            if consult.kind == "number" or consult.agent_id is None:
                await self.store.save(replace(call, consult=None, transfers=call.transfers + 1))
                await self.center.complete_task(task_id, agent_id)
            else:
                moved = replace(call, agent_id=consult.agent_id, consult=None,
                                transfers=call.transfers + 1)
                # Saved first: the hotline must not pull the caller out of the conference
                # when the new officer's acceptance is published.
                await self.store.save(moved)
                await self._move_task(task_id, agent_id, consult)
                call = moved
        await self._note(call, "complete", f"โอนสายเรียบร้อย ({_who(consult)}) / warm transfer "
                                           f"completed ({_who(consult)})")
        return _view(call)

    async def cancel(self, task_id: str, agent_id: str) -> dict[str, Any]:
        """Let the consulted party go and take the caller off hold."""
        async with self._lock(task_id):
            call = await self._owned(task_id, agent_id)
            consult = self._consulting(call)
            rest = self._rest()
            try:
                await rest.remove_participant(call.sid or "", consult.label)
                await rest.update_participant(call.sid or "", CALLER_LABEL, hold=False)
            except TWILIO_ERRORS as exc:
                raise _twilio_refused(exc, task_id) from None
            call = replace(call, consult=None)
            await self.store.save(call)
        await self._note(call, "cancel", f"ยกเลิกการโอนสาย ({_who(consult)}) / warm transfer "
                                         f"canceled ({_who(consult)})")
        return _view(call)

    # -- Twilio tells us about a consulted leg ----------------------------------------------

    async def consult_ended(self, task_id: str, label: str, status: str) -> None:
        """The consulted party did not answer or hung up before the hand-over: the caller
        comes off hold and stays with the first officer."""
        async with self._lock(task_id):
            call = await self.store.load(task_id)
            if call is None or call.consult is None or call.consult.label != label:
                return  # already completed or canceled
            if self.hotline.rest is not None and call.sid:
                await self._quietly(self.hotline.rest.update_participant(
                    call.sid, CALLER_LABEL, hold=False))
            await self.store.save(replace(call, consult=None))
        await self._note(call, f"gone-{status}", f"ผู้รับโอนไม่ได้อยู่ในสาย ({status}) "
                                                 f"ผู้โทรกลับมาคุยกับเจ้าหน้าที่เดิม / the consulted "
                                                 f"party left ({status}); caller back with the "
                                                 f"first officer")

    # -- helpers ----------------------------------------------------------------------------

    async def _owned(self, task_id: str, agent_id: str) -> ConferenceCall:
        try:
            task = await self.center.task(task_id)
        except NotFound:
            raise TransferError(404, "not_found", f"no task {task_id}") from None
        call = await self.store.load(task_id)
        if task.channel != Channel.VOICE or call is None:
            raise TransferError(404, "no_call", f"task {task_id} has no call in a conference")
        if task.agent_id != agent_id or call.agent_id != agent_id:
            raise TransferError(403, "not_your_call", "only the officer on the call can "
                                                      "transfer it")
        if task.status != TaskStatus.ASSIGNED:
            raise TransferError(409, "not_assigned", f"task {task_id} is {task.status}")
        if not call.sid:
            raise TransferError(409, "not_connected", "the call is not connected yet")
        return call

    def _consulting(self, call: ConferenceCall) -> Consult:
        if call.consult is None:
            raise TransferError(409, "no_transfer", "no transfer is in progress")
        return call.consult

    def _rest(self) -> Any:
        if self.hotline.rest is None:
            raise TransferError(503, "not_configured", "the Twilio REST API is not configured")
        return self.hotline.rest

    def _from(self) -> str:
        return self.hotline.config.phone_number or "client:onestop-hotline"

    async def _resolve(self, target: Target, agent_id: str, call: ConferenceCall
                       ) -> tuple[Consult, str]:
        """The consulted party and the address Twilio rings."""
        if target.number is not None:
            try:
                number = normalise(IdentityKind.PHONE, target.number)
            except InvalidIdentity:
                raise TransferError(422, "invalid_number", "not a phone number") from None
            return Consult("number", EXTERNAL_LABEL), number
        if target.queue_id is not None:
            if target.queue_id not in self.center.settings.queues:
                raise TransferError(404, "unknown_queue", f"no queue {target.queue_id}")
            chosen = await self._next_free_agent(target.queue_id, exclude=agent_id)
            if chosen is None:
                raise TransferError(409, "no_agent_available",
                                    f"nobody in queue {target.queue_id} is free")
            other, queue_id = chosen, target.queue_id
        else:
            other = await self._free_agent(target.agent_id or "", exclude=agent_id)
            queue_id = None
        consult = Consult("agent", agent_identity(other.id), other.id, queue_id)
        task = await self.center.task(call.task_id)
        return consult, agent_address(other, {
            "task_id": call.task_id, "case_id": task.case_id, "leg": "consult",
            "from_agent": agent_id}, numbers=bool(self.hotline.config.phone_number))

    async def _free_agent(self, agent_id: str, *, exclude: str) -> AgentRecord:
        """The named officer, if they can take a call now."""
        try:
            agent = await self.center.agent_record(agent_id)
        except NotFound:
            raise TransferError(404, "unknown_agent", f"no agent {agent_id}") from None
        if agent.id == exclude:
            raise TransferError(422, "invalid", "you cannot transfer a call to yourself")
        if not agent.active or agent.presence != str(Presence.AVAILABLE):
            raise TransferError(409, "agent_unavailable",
                                f"agent {agent_id} is {agent.presence}, not available")
        if await self._holds_tasks(agent.id):
            raise TransferError(409, "agent_busy", f"agent {agent_id} is busy")
        return agent

    async def _next_free_agent(self, queue_id: str, *, exclude: str) -> AgentRecord | None:
        """The queue's member who has been available longest and holds nothing (a call is
        exclusive)."""
        queue = self.center.settings.queues[queue_id]
        agents, _ = await self.center.list_rows(
            AgentRecord, AgentRecord.presence == str(Presence.AVAILABLE),
            AgentRecord.active.is_(True), AgentRecord.id != exclude,
            order_by=AgentRecord.presence_since, limit=500)
        for agent in agents:
            if _member(queue.agents, agent) and not await self._holds_tasks(agent.id):
                return agent
        return None

    async def _holds_tasks(self, agent_id: str) -> bool:
        _, held = await self.center.list_rows(Task, Task.agent_id == agent_id,
                                              Task.status.in_(HELD_STATUSES), limit=1)
        return held > 0

    async def _move_task(self, task_id: str, agent_id: str, consult: Consult) -> None:
        """In the core: the task leaves the first officer for the consulted one, who took
        the call already, so they accept it at once."""
        new_agent = consult.agent_id or ""
        task = await self.center.task(task_id)
        queue_id = consult.queue_id or await self._queue_of(new_agent, task.queue_id)
        await self.center.transfer_task(task_id, agent_id, queue_id, to_agent_id=new_agent,
                                        note=None)
        try:
            await self.center.accept_task(task_id, new_agent)
        except Exception as exc:  # not offered (they changed presence meanwhile)
            log.warning("transferred call not accepted at once",
                        extra={"task": task_id, "error": type(exc).__name__})

    async def _queue_of(self, agent_id: str, preferred: str | None) -> str:
        """The task's own queue when the new officer is in it, else one of theirs."""
        agent = await self.center.agent_record(agent_id)
        queues = self.center.settings.queues
        if preferred is not None and preferred in queues and _member(
                queues[preferred].agents, agent):
            return preferred
        for queue_id, queue in queues.items():
            if _member(queue.agents, agent):
                return queue_id
        return preferred or next(iter(queues))

    async def _note(self, call: ConferenceCall, what: str, text: str) -> None:
        """The transfer on the call's timeline (the supervisor and the next officer see it)."""
        key = call.origin or await self._conversation_key(call)
        await self.center.ingest(InboundMessage(
            channel=Channel.VOICE, conversation_key=key, author=Author.SYSTEM,
            message_id=f"{call.caller_call}:transfer:{call.transfers}:{what}", body=text))

    async def _conversation_key(self, call: ConferenceCall) -> str:
        task = await self.center.task(call.task_id)
        return (await self.center.conversation(task.conversation_id)).provider_key

    @staticmethod
    async def _quietly(work: Any) -> None:
        try:
            await work
        except TWILIO_ERRORS as exc:
            log.warning("twilio did not take a conference request",
                        extra={"error": type(exc).__name__})


def _member(evaluator: Any, agent: AgentRecord) -> bool:
    """Whether the queue's agent expression admits this officer (as the router decides)."""
    if evaluator is None:
        return True
    context = {"id": agent.id, "skills": dict(agent.skills or {}),
               "languages": list(agent.languages or []),
               "capacity": dict(agent.capacity or {}), "department": agent.department}
    try:
        return bool(evaluator(context))
    except (TypeError, ValueError, KeyError, AttributeError):
        return False


def _view(call: ConferenceCall) -> dict[str, Any]:
    consult = call.consult
    return {"task_id": call.task_id, "conference": call.name, "agent_id": call.agent_id,
            "consult": None if consult is None else {
                "kind": consult.kind, "agent_id": consult.agent_id,
                "queue_id": consult.queue_id}}


def _who(consult: Consult) -> str:
    if consult.kind == "number":
        return "external number"
    return f"agent {consult.agent_id}" + (f", queue {consult.queue_id}" if consult.queue_id
                                          else "")


def _twilio_refused(exc: BaseException, task_id: str) -> TransferError:
    log.warning("twilio refused a transfer request",
                extra={"task": task_id, "error": type(exc).__name__})
    return TransferError(502, "twilio_refused", "Twilio did not take the request; try again")
