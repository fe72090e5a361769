"""The REST API `/api/v1`: queues, agents, tasks, cases, conversations (read); sign-in,
presence and task accept/reject/complete (write). Documented at `/api/openapi.json`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

from aiohttp import MultipartReader, web
from pydantic import Field

from agent_console.rest import (
    REQUEST_ID,
    Api,
    Call,
    Out,
    Shape,
    error_response,
    throttle_of,
)
from routing import (
    Actor,
    AgentRecord,
    AuditEntry,
    Author,
    Case,
    CaseStatus,
    Conflict,
    Consultation,
    ContactCenter,
    Conversation,
    Forbidden,
    IdentityHint,
    IdentityKind,
    LoginFailed,
    NotFound,
    Presence,
    StaffAuth,
    StaffIdentity,
    Task,
    TaskStatus,
    queue_views,
    task_view,
)


class KnowledgeDesk(Protocol):
    """The knowledge base as staff use it (wired by the composition root)."""

    async def find(self, query: str, language: str | None, limit: int
                   ) -> list[dict[str, Any]]: ...

    async def propose(self, *, case_summary: str, resolution: str, category: str,
                      author: str, title_th: str | None, title_en: str | None) -> str: ...

    async def publish(self, slug: str, reviewer: str) -> None: ...

    async def gaps(self, since: datetime) -> list[dict[str, Any]]: ...

    async def overdue(self) -> list[dict[str, Any]]: ...


CENTER_KEY = web.AppKey("center", ContactCenter)
KNOWLEDGE_KEY = web.AppKey("knowledge_desk", KnowledgeDesk)
AUTH_KEY = web.AppKey("staff_auth", StaffAuth)
SESSION_COOKIE = "onestop_session"

api = Api("OneStop API", "1.0.0", "/api/v1")

# ---------------------------------------------------------------------------------------
# Shapes


class LoginIn(Shape):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class Me(Out):
    agent_id: str
    username: str
    display_name: str
    roles: list[str]
    csrf_token: str


class LoginOut(Out):
    token: str
    me: Me


class QueueOut(Out):
    id: str
    name_th: str
    name_en: str
    hours: str
    open_now: bool
    waiting: int
    waiting_by_channel: dict[str, int]
    longest_wait_seconds: float
    agents_available: int
    agents_logged_in: int
    service_level: float | None
    answered: int
    abandoned: int


class AgentOut(Out):
    id: str
    username: str
    display_name: str
    roles: list[str]
    skills: dict[str, int]
    languages: list[str]
    capacity: dict[str, int]
    presence: str
    presence_reason: str | None
    activity: str
    tasks: list[str]


class PresenceIn(Shape):
    presence: Presence
    reason: str | None = Field(default=None, max_length=60)


class TaskOut(Out):
    id: str
    status: str
    channel: str
    queue_id: str
    priority: int
    agent_id: str | None
    reason: str | None
    conversation_id: str
    case_id: str
    created_at: datetime
    assigned_at: datetime | None
    finished_at: datetime | None
    wait_seconds: float | None
    queue_position: int | None
    estimated_wait_seconds: float | None
    wrap_code: str | None
    attributes: dict[str, Any]


class CompleteIn(Shape):
    wrap_code: str | None = Field(default=None, max_length=40)
    wrap_up: bool = True


class TransferIn(Shape):
    queue_id: str
    agent_id: str | None = None
    note: str | None = Field(default=None, max_length=2000)


class CaseOut(Out):
    id: str
    number: str
    citizen_id: str
    category: str | None
    status: str
    priority: int
    department: str | None
    subject: str | None
    resolution: str | None
    language: str | None
    conversation_count: int
    transfers: int
    escalations: int
    one_stop: bool | None
    created_at: datetime
    updated_at: datetime
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None


class CaseUpdateIn(Shape):
    category: str | None = Field(default=None, max_length=40)
    status: CaseStatus | None = None
    priority: int | None = Field(default=None, ge=0, le=1000)
    resolution: str | None = Field(default=None, max_length=10000)
    subject: str | None = Field(default=None, max_length=300)


class AttachmentOut(Out):
    filename: str
    content_type: str
    size: int
    ref: str


class MessageOut(Out):
    id: str
    seq: int
    direction: str
    author: str
    author_name: str | None
    body: str
    internal: bool
    delivery: str
    created_at: datetime
    attachments: list[AttachmentOut] = Field(default_factory=list)


class ConversationOut(Out):
    id: str
    channel: str
    status: str
    citizen_id: str
    case_id: str
    language: str | None
    queue_id: str | None
    agent_id: str | None
    subject: str | None
    started_at: datetime
    ended_at: datetime | None
    messages: list[MessageOut]


E = TypeVar("E", TaskStatus, CaseStatus)


class TaskPage(Out):
    items: list[TaskOut]
    total: int


class CasePage(Out):
    items: list[CaseOut]
    total: int


class CategoryOut(Out):
    code: str
    name_th: str
    name_en: str
    department: str | None
    queue: str | None


# ---------------------------------------------------------------------------------------
# Sign-in


@api.route("POST", "/auth/login", summary="Sign in; returns a bearer token (and sets a "
           "session cookie for the console)", tag="auth", body=LoginIn, response=LoginOut,
           roles=None)
async def login(call: Call) -> web.StreamResponse:
    auth = call.request.app[AUTH_KEY]
    throttle, address = throttle_of(call.request), call.request.remote or "?"
    wait = throttle.retry_after(address)
    if wait:
        response = error_response(429, "too_many_attempts", f"too many failed sign-ins from "
                                  f"this address; try again in {wait} s", call.request)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        token, who = await auth.login(call.body.username, call.body.password)
    except LoginFailed as exc:
        throttle.failed(address)
        status = 423 if exc.locked_until else 401
        return error_response(status, "login_failed", str(exc), call.request)
    response = web.json_response({"token": token, "me": _me(who)})
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict",
                        secure=call.request.secure, path="/")
    return response


@api.route("POST", "/auth/logout", summary="End this session", tag="auth")
async def logout(call: Call) -> web.StreamResponse:
    token = _token(call.request)
    if token:
        await call.request.app[AUTH_KEY].logout(token)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@api.route("POST", "/auth/logout-everywhere", summary="End every session of the signed-in "
           "staff member", tag="auth")
async def logout_everywhere(call: Call) -> web.StreamResponse:
    assert call.staff is not None
    await call.request.app[AUTH_KEY].logout_everywhere(call.staff.agent_id)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@api.route("GET", "/me", summary="Who is signed in", tag="auth", response=Me)
async def me(call: Call) -> dict[str, Any]:
    assert call.staff is not None
    return _me(call.staff)


# ---------------------------------------------------------------------------------------
# Queues, agents, tasks


@api.route("GET", "/queues", summary="Queues with live figures", tag="queues",
           response=list[QueueOut])
async def list_queues(call: Call) -> list[dict[str, Any]]:
    return queue_views(_center(call))


@api.route("GET", "/queues/{queue_id}", summary="One queue with live figures", tag="queues",
           response=QueueOut)
async def get_queue(call: Call) -> dict[str, Any]:
    for queue in queue_views(_center(call)):
        if queue["id"] == call.params["queue_id"]:
            return queue
    raise NotFound("queue", call.params["queue_id"])


@api.route("GET", "/catalogue", summary="The service catalogue (case categories)",
           tag="queues", response=list[CategoryOut])
async def catalogue(call: Call) -> list[dict[str, Any]]:
    return [
        {"code": c.code, "name_th": c.name.th, "name_en": c.name.en,
         "department": c.department, "queue": c.queue}
        for c in _center(call).settings.categories.values()
    ]


@api.route("GET", "/agents", summary="Every agent with presence and load (supervisors)",
           tag="agents", response=list[AgentOut], roles=("supervisor",))
async def list_agents(call: Call) -> list[dict[str, Any]]:
    center = _center(call)
    rows, _ = await center.list_rows(AgentRecord, order_by=AgentRecord.username, limit=1000)
    return [_agent_out(center, a) for a in rows]


@api.route("GET", "/agents/{agent_id}", summary="One agent (themselves, or any for "
           "supervisors)", tag="agents", response=AgentOut)
async def get_agent(call: Call) -> dict[str, Any]:
    agent_id = _self_or_supervisor(call)
    center = _center(call)
    return _agent_out(center, await center.agent_record(agent_id))


@api.route("PUT", "/agents/{agent_id}/presence", summary="Go available, away or offline",
           tag="agents", body=PresenceIn, response=AgentOut)
async def set_presence(call: Call) -> dict[str, Any]:
    agent_id = _self_or_supervisor(call)
    center = _center(call)
    if not center.router.has_agent(agent_id):
        raise NotFound("agent", agent_id)
    await center.set_presence(agent_id, call.body.presence, call.body.reason)
    return _agent_out(center, await center.agent_record(agent_id))


@api.route("GET", "/tasks", summary="Tasks (agents see their own; supervisors all)",
           tag="tasks", response=TaskPage,
           query={"status": "filter by status", "queue": "filter by queue id",
                  "limit": "page size (≤ 200)", "offset": "rows to skip"})
async def list_tasks(call: Call) -> dict[str, Any]:
    center = _center(call)
    conditions: list[Any] = []
    status = call.query.get("status")
    if status:
        conditions.append(Task.status == str(_enum(TaskStatus, status, "status")))
    if call.query.get("queue"):
        conditions.append(Task.queue_id == call.query["queue"])
    assert call.staff is not None
    if not call.staff.has_role("supervisor"):
        conditions.append(Task.agent_id == call.staff.agent_id)
    limit, offset = _paging(call)
    rows, total = await center.list_rows(Task, *conditions, order_by=Task.created_at.desc(),
                                         limit=limit, offset=offset)
    if rows:  # attributes carry citizen data (a kiosk callback's phone number)
        await center.audit(_actor(call), "list", "task", None, None, data={
            "count": len(rows), "ids": [t.id for t in rows],
            "citizens": sorted({t.citizen_id for t in rows if t.citizen_id})})
    return {"items": [task_view(center, t) for t in rows], "total": total}


@api.route("GET", "/tasks/{task_id}", summary="One task with queue position and estimated "
           "wait", tag="tasks", response=TaskOut)
async def get_task(call: Call) -> dict[str, Any]:
    center = _center(call)
    task = await center.task(call.params["task_id"])
    _own_task(call, task)
    await center.audit(_actor(call), "view", "task", task.id, task.citizen_id)
    return task_view(center, task)


@api.route("POST", "/tasks/{task_id}/accept", summary="Accept the task offered to you",
           tag="tasks", response=TaskOut)
async def accept_task(call: Call) -> dict[str, Any]:
    center, staff = _center(call), _staff(call)
    await center.accept_task(call.params["task_id"], staff.agent_id)
    return task_view(center, await center.task(call.params["task_id"]))


@api.route("POST", "/tasks/{task_id}/reject", summary="Decline the task offered to you",
           tag="tasks", response=TaskOut)
async def reject_task(call: Call) -> dict[str, Any]:
    center, staff = _center(call), _staff(call)
    await center.reject_task(call.params["task_id"], staff.agent_id)
    return task_view(center, await center.task(call.params["task_id"]))


@api.route("POST", "/tasks/{task_id}/complete", summary="Finish a task (wrap-up first, "
           "unless wrap_up is false)", tag="tasks", body=CompleteIn, response=TaskOut)
async def complete_task(call: Call) -> dict[str, Any]:
    center, staff = _center(call), _staff(call)
    await center.complete_task(call.params["task_id"], staff.agent_id, call.body.wrap_code,
                               wrap_up=call.body.wrap_up)
    return task_view(center, await center.task(call.params["task_id"]))


@api.route("POST", "/tasks/{task_id}/transfer", summary="Transfer a task to a queue or an "
           "agent, with a note", tag="tasks", body=TransferIn, response=TaskOut)
async def transfer_task(call: Call) -> dict[str, Any]:
    center, staff = _center(call), _staff(call)
    task_id = call.params["task_id"]
    check_transfer_target(center, call.body.queue_id, call.body.agent_id,
                          exclude=staff.agent_id)
    view = center.router.task(task_id)
    if view.agent_id != staff.agent_id or view.status is not TaskStatus.ASSIGNED:
        raise Conflict(f"task {task_id} is not assigned to you")
    if call.body.note:  # signed with the sender's name, for whoever takes the task next
        task = await center.task(task_id)
        await center.send_message(task.conversation_id, call.body.note, author=Author.AGENT,
                                  author_id=staff.agent_id, author_name=staff.display_name,
                                  internal=True)
    await center.transfer_task(task_id, staff.agent_id, call.body.queue_id,
                               call.body.agent_id)
    return task_view(center, await center.task(task_id))


def check_transfer_target(center: ContactCenter, queue_id: str, agent_id: str | None,
                          exclude: str | None = None) -> None:
    """A transfer goes to a known queue, and to a named agent only if they are signed in
    and serve that queue (else the task would wait for someone who cannot take it)."""
    if queue_id not in center.settings.queues:
        raise ValueError(f"queue_id: unknown queue {queue_id!r}")
    if agent_id is None:
        return
    if agent_id == exclude:
        raise ValueError("agent_id: choose someone else (the task is already yours)")
    if not center.router.has_agent(agent_id):
        raise ValueError(f"agent_id: unknown agent {agent_id!r}")
    view = center.router.agent(agent_id)
    if view.presence is Presence.OFFLINE:
        raise ValueError("agent_id: that agent is not signed in (offline)")
    if queue_id not in view.queues:
        raise ValueError(f"agent_id: that agent does not serve queue {queue_id!r}; "
                         f"their queues: {', '.join(sorted(view.queues)) or 'none'}")


class ColleagueOut(Out):
    id: str
    display_name: str
    presence: str
    activity: str
    queues: list[str]


@api.route("GET", "/colleagues", summary="Staff signed in now (not offline), with the queues "
           "they serve: whom a task can be transferred to", tag="agents",
           response=list[ColleagueOut])
async def list_colleagues(call: Call) -> list[dict[str, Any]]:
    center = _center(call)
    views = {v.id: v for v in center.router.agents() if v.presence is not Presence.OFFLINE}
    if not views:
        return []
    rows, _ = await center.list_rows(AgentRecord, AgentRecord.id.in_(list(views)),
                                     AgentRecord.active.is_(True),
                                     order_by=AgentRecord.display_name, limit=1000)
    return [{"id": a.id, "display_name": a.display_name, "presence": str(views[a.id].presence),
             "activity": views[a.id].activity, "queues": sorted(views[a.id].queues)}
            for a in rows]


# ---------------------------------------------------------------------------------------
# Cases and conversations (citizen data: every read is audited)


@api.route("GET", "/cases", summary="Cases, newest first", tag="cases", response=CasePage,
           query={"status": "filter by status", "limit": "page size (≤ 200)",
                  "offset": "rows to skip"})
async def list_cases(call: Call) -> dict[str, Any]:
    center = _center(call)
    conditions: list[Any] = []
    if call.query.get("status"):
        conditions.append(Case.status == str(_enum(CaseStatus, call.query["status"], "status")))
    limit, offset = _paging(call)
    rows, total = await center.list_rows(Case, *conditions, order_by=Case.created_at.desc(),
                                         limit=limit, offset=offset)
    await center.audit(_actor(call), "list", "case", None, None,
                       data={"count": len(rows), "ids": [c.id for c in rows]})
    return {"items": rows, "total": total}


@api.route("GET", "/cases/{case_ref}", summary="One case, by id or number (OS-2026-000123)",
           tag="cases", response=CaseOut)
async def get_case(call: Call) -> Case:
    center = _center(call)
    ref = call.params["case_ref"]
    case = await (center.case_by_number(ref) if ref.startswith("OS-") else center.case(ref))
    await center.audit(_actor(call), "view", "case", case.id, case.citizen_id)
    return case


@api.route("PATCH", "/cases/{case_id}", summary="Change a case's category, status, priority "
           "or resolution", tag="cases", body=CaseUpdateIn, response=CaseOut)
async def update_case(call: Call) -> Case:
    center = _center(call)
    changes = call.body.model_dump(exclude_unset=True)
    cleared = sorted(k for k in ("status", "priority") if k in changes and changes[k] is None)
    if cleared:  # columns that always hold a value (null would fail in the database)
        raise ValueError(f"{cleared[0]}: may not be null")
    if "category" in changes and changes["category"] not in center.settings.categories:
        raise ValueError(f"category: unknown category {changes['category']!r}")
    case = await center.update_case(call.params["case_id"], _actor(call), **changes)
    await center.audit(_actor(call), "change", "case", case.id, case.citizen_id,
                       data={"fields": sorted(changes)})
    return case


@api.route("GET", "/conversations/{conversation_id}", summary="A conversation with its "
           "messages", tag="conversations", response=ConversationOut)
async def get_conversation(call: Call) -> dict[str, Any]:
    center = _center(call)
    conv: Conversation = await center.conversation(call.params["conversation_id"])
    messages = await center.messages(conv.id)
    await center.audit(_actor(call), "view", "conversation", conv.id, conv.citizen_id)
    return {**{c: getattr(conv, c) for c in ConversationOut.model_fields if c != "messages"},
            "messages": messages}


# ---------------------------------------------------------------------------------------
# The single citizen view (every read and change is audited by the core)


class IdentityOut(Out):
    id: str
    kind: str
    value: str
    verified: bool
    verified_by: str | None


class CaseSummaryOut(Out):
    id: str
    number: str
    status: str
    category: str | None
    created_at: datetime
    open: bool


class SuggestionOut(Out):
    id: str
    other_id: str
    evidence: list[str]


class CitizenOut(Out):
    id: str
    name_th: str | None
    name_en: str | None
    birth_date: date | None
    address: str | None
    flags: list[str]
    erased: bool
    identities: list[IdentityOut]
    cases: list[CaseSummaryOut]
    suggestions: list[SuggestionOut]
    consents: dict[str, bool]


class TimelineEntryOut(Out):
    at: datetime
    kind: str
    case_id: str | None
    conversation_id: str | None
    channel: str | None
    actor_id: str | None
    data: dict[str, Any]


class ProfileIn(Shape):
    name_th: str | None = Field(default=None, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    birth_date: date | None = None
    address: str | None = Field(default=None, max_length=500)
    verified_by: str | None = Field(default=None, max_length=40)


class IdentityIn(Shape):
    kind: IdentityKind
    value: str = Field(min_length=1, max_length=254)
    verified_by: str | None = Field(default=None, max_length=40)


class FlagsIn(Shape):
    flags: list[str] = Field(max_length=10)


class MergeIn(Shape):
    other_id: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=200)


class MergeOut(Out):
    merge_id: str


class ConsentIn(Shape):
    purpose: str = Field(min_length=1, max_length=60)
    granted: bool
    channel: str | None = Field(default=None, max_length=12)
    note: str | None = Field(default=None, max_length=300)


class EraseIn(Shape):
    reason: str = Field(min_length=1, max_length=200)


class LinkIn(Shape):
    case_number: str = Field(pattern=r"^OS-\d{4}-\d{6}$")


@api.route("GET", "/citizens/{citizen_id}", summary="The citizen 360: profile, identities "
           "(national ID masked unless your role needs it), flags, cases, merge suggestions",
           tag="citizens", response=CitizenOut, query={"reason": "why you are looking"})
async def get_citizen(call: Call) -> dict[str, Any]:
    return await _center(call).citizen_view(call.params["citizen_id"], _actor(call),
                                            call.query.get("reason"))


@api.route("GET", "/citizens/{citizen_id}/timeline", summary="Everything that happened with "
           "a citizen across channels, oldest first", tag="citizens",
           response=list[TimelineEntryOut],
           query={"kind": "comma-separated kinds (message, conversation_opened, …)",
                  "channel": "voice, chat, email, kiosk, sms", "case": "a case id",
                  "since": "ISO time", "until": "ISO time"})
async def get_timeline(call: Call) -> list[dict[str, Any]]:
    kinds = [k for k in call.query.get("kind", "").split(",") if k]
    return await _center(call).timeline(
        call.params["citizen_id"], _actor(call), kinds=kinds,
        channel=call.query.get("channel"), case_id=call.query.get("case"),
        since=_time(call, "since"), until=_time(call, "until"))


@api.route("PATCH", "/citizens/{citizen_id}", summary="Tell once: change name, birth date or "
           "address, seen everywhere and passed to the departments concerned",
           tag="citizens", body=ProfileIn, response=CitizenOut)
async def update_citizen(call: Call) -> dict[str, Any]:
    changes = call.body.model_dump(exclude_unset=True)
    verified_by = changes.pop("verified_by", None)
    center = _center(call)
    await center.update_profile(call.params["citizen_id"], changes, _actor(call), verified_by)
    return await center.citizen_view(call.params["citizen_id"], _actor(call))


@api.route("POST", "/citizens/{citizen_id}/identities", summary="Add an identifier (verified "
           "by you: merges a record that holds it)", tag="citizens", body=IdentityIn,
           response=CitizenOut)
async def add_identity(call: Call) -> dict[str, Any]:
    center = _center(call)
    await center.add_identity(call.params["citizen_id"], IdentityHint(
        call.body.kind, call.body.value, call.body.verified_by), _actor(call))
    return await center.citizen_view(call.params["citizen_id"], _actor(call))


@api.route("PUT", "/citizens/{citizen_id}/flags", summary="Vulnerable-group flags known to "
           "staff (disability card, welfare card…)", tag="citizens", body=FlagsIn,
           response=CitizenOut)
async def set_flags(call: Call) -> dict[str, Any]:
    center = _center(call)
    await center.set_flags(call.params["citizen_id"], call.body.flags, _actor(call))
    return await center.citizen_view(call.params["citizen_id"], _actor(call))


@api.route("POST", "/citizens/{citizen_id}/merge", summary="Merge another record into this "
           "citizen (undo with /merges/{id}/undo)", tag="citizens", body=MergeIn,
           response=MergeOut)
async def merge_citizens(call: Call) -> dict[str, Any]:
    merge_id = await _center(call).merge_citizens(call.body.other_id, call.params["citizen_id"],
                                                  _actor(call), call.body.reason)
    return {"merge_id": merge_id}


@api.route("POST", "/merges/{merge_id}/undo", summary="Undo a merge exactly", tag="citizens",
           roles=("supervisor",))
async def undo_merge(call: Call) -> None:
    await _center(call).unmerge_citizens(call.params["merge_id"], _actor(call))


@api.route("POST", "/suggestions/{suggestion_id}/confirm", summary="Confirm a merge "
           "suggestion (the records merge)", tag="citizens")
async def confirm_suggestion(call: Call) -> None:
    await _center(call).decide_suggestion(call.params["suggestion_id"], True, _actor(call))


@api.route("POST", "/suggestions/{suggestion_id}/reject", summary="Reject a merge suggestion",
           tag="citizens")
async def reject_suggestion(call: Call) -> None:
    await _center(call).decide_suggestion(call.params["suggestion_id"], False, _actor(call))


@api.route("POST", "/citizens/{citizen_id}/consents", summary="Record consent given or "
           "withdrawn for a purpose", tag="citizens", body=ConsentIn, response=CitizenOut)
async def record_consent(call: Call) -> dict[str, Any]:
    center = _center(call)
    await center.record_consent(call.params["citizen_id"], call.body.purpose,
                                call.body.granted, _actor(call), call.body.channel,
                                call.body.note)
    return await center.citizen_view(call.params["citizen_id"], _actor(call))


@api.route("GET", "/citizens/{citizen_id}/export", summary="Everything held about a citizen "
           "(PDPA subject access)", tag="citizens", roles=("supervisor",))
async def export_citizen(call: Call) -> web.StreamResponse:
    data = await _center(call).export_citizen(call.params["citizen_id"], _actor(call))
    return web.json_response(data, headers={
        "Content-Disposition": f'attachment; filename="citizen-{data["citizen"]["id"]}.json"'})


@api.route("POST", "/citizens/{citizen_id}/erase", summary="Anonymise a citizen, keeping "
           "statistics (PDPA erasure)", tag="citizens", body=EraseIn, roles=("admin",))
async def erase_citizen(call: Call) -> None:
    await _center(call).erase_citizen(call.params["citizen_id"], _actor(call), call.body.reason)


@api.route("PUT", "/conversations/{conversation_id}/case", summary="File a conversation "
           "under another case of the same citizen", tag="conversations", body=LinkIn)
async def link_conversation(call: Call) -> None:
    await _center(call).link_conversation(call.params["conversation_id"],
                                          call.body.case_number, _actor(call))


class ConsultIn(Shape):
    department: str = Field(min_length=1, max_length=40)
    question: str = Field(min_length=1, max_length=4000)


class ConsultationOut(Out):
    id: str
    case_id: str
    department: str
    question: str
    status: str
    requested_by: str | None
    requested_at: datetime
    due_at: datetime
    answered_at: datetime | None
    closed_at: datetime | None
    resolution: str | None


class CloseConsultationIn(Shape):
    resolution: str | None = Field(default=None, max_length=4000)


@api.route("POST", "/cases/{case_id}/consultations", summary="Consult a back-office "
           "department on a case (posted to its Slack channel)", tag="cases", body=ConsultIn,
           response=ConsultationOut, status=201)
async def consult(call: Call) -> Consultation:
    center = _center(call)
    consultation_id = await center.consult(call.params["case_id"], call.body.department,
                                           call.body.question, _actor(call))
    return await center.consultation(consultation_id)


@api.route("GET", "/cases/{case_id}/consultations", summary="The departments consulted on a "
           "case and their answers' state", tag="cases", response=list[ConsultationOut])
async def list_consultations(call: Call) -> list[Consultation]:
    center = _center(call)
    case = await center.case(call.params["case_id"])
    await center.audit(_actor(call), "view", "case", case.id, case.citizen_id,
                       data={"part": "consultations"})
    rows, _ = await center.list_rows(Consultation, Consultation.case_id == case.id,
                                     order_by=Consultation.requested_at)
    return rows


@api.route("POST", "/consultations/{consultation_id}/close", summary="Close a consultation",
           tag="cases", body=CloseConsultationIn, response=ConsultationOut)
async def close_consultation(call: Call) -> Consultation:
    center = _center(call)
    await center.close_consultation(call.params["consultation_id"], _actor(call),
                                    call.body.resolution)
    return await center.consultation(call.params["consultation_id"])


@api.route("POST", "/conversations/{conversation_id}/bot", summary="Hand a chat back to the "
           "bot (the agent's task ends)", tag="conversations")
async def return_to_bot(call: Call) -> None:
    await _center(call).return_to_bot(call.params["conversation_id"], _actor(call))


#: What agents may attach to replies (types citizens can open; no executables).
UPLOAD_TYPES = frozenset({"application/pdf", "image/jpeg", "image/png", "text/plain",
                          "application/vnd.openxmlformats-officedocument.wordprocessingml"
                          ".document"})
UPLOAD_LIMIT = 10 * 1024 * 1024


class UploadOut(Out):
    ref: str
    filename: str
    content_type: str
    size: int


@api.route("POST", "/attachments", summary="Upload a file to attach to a reply "
           "(multipart field `file`; PDF, JPEG, PNG, text or DOCX up to 10 MB)",
           tag="conversations", response=UploadOut, status=201)
async def upload_attachment(call: Call) -> dict[str, Any] | web.StreamResponse:
    center = _center(call)
    if center.blobs is None or not call.request.content_type.startswith("multipart/"):
        raise ValueError("send the file as multipart/form-data in a field named 'file'")
    reader = await call.request.multipart()
    part = await reader.next()
    if part is None or isinstance(part, MultipartReader) or part.name != "file":
        raise ValueError("send the file in a multipart field named 'file'")
    content_type = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type not in UPLOAD_TYPES:
        return error_response(415, "unsupported_type",
                              f"{content_type or 'no type'} cannot be attached; allowed: "
                              f"{', '.join(sorted(UPLOAD_TYPES))}", call.request)
    data = bytearray()
    while chunk := await part.read_chunk(65536):
        data += chunk
        if len(data) > UPLOAD_LIMIT:
            return error_response(413, "too_large", f"attachments are limited to "
                                  f"{UPLOAD_LIMIT // (1024 * 1024)} MB", call.request)
    filename = unquote(part.filename or "attachment").replace("/", "_").replace("\\", "_")
    filename = filename[:200]
    ref = await center.blobs.put(bytes(data))
    return {"ref": ref, "filename": filename, "content_type": content_type, "size": len(data)}


class KnowledgeHitOut(Out):
    slug: str
    title: str
    snippet: str
    score: float
    language: str
    url: str


class ProposalIn(Shape):
    case_id: str = Field(min_length=1, max_length=32)
    title_th: str | None = Field(default=None, max_length=200)
    title_en: str | None = Field(default=None, max_length=200)


class ProposalOut(Out):
    slug: str


class GapOut(Out):
    query: str
    language: str | None
    count: int
    last: datetime


class OverdueOut(Out):
    slug: str
    title: str
    department: str
    review_by: date | None


@api.route("GET", "/knowledge/search", summary="Search the knowledge base (answers to insert "
           "in a reply)", tag="knowledge", response=list[KnowledgeHitOut],
           query={"q": "what to look for", "language": "th or en", "limit": "≤ 20"})
async def knowledge_search(call: Call) -> list[dict[str, Any]]:
    query = call.query.get("q", "").strip()[:500]
    language = call.query.get("language") or None
    if language not in (None, "th", "en"):
        raise ValueError("language: th or en")
    limit = min(20, max(1, int(call.query.get("limit", "5")) if call.query.get(
        "limit", "5").isdigit() else 5))
    return await _knowledge(call).find(query, language, limit) if query else []


@api.route("POST", "/knowledge/proposals", summary="Propose a draft article from a resolved "
           "case", tag="knowledge", body=ProposalIn, response=ProposalOut, status=201)
async def propose_article(call: Call) -> dict[str, Any]:
    center = _center(call)
    case = await center.case(call.body.case_id)
    if case.status not in ("resolved", "closed"):
        raise Conflict("resolve the case before proposing an article from it")
    slug = await _knowledge(call).propose(
        case_summary=case.subject or case.description or case.number,
        resolution=case.resolution or "", category=case.category or "general",
        author=_staff(call).username, title_th=call.body.title_th, title_en=call.body.title_en)
    return {"slug": slug}


@api.route("POST", "/knowledge/articles/{slug}/publish", summary="Publish a reviewed article",
           tag="knowledge", roles=("supervisor",))
async def publish_article(call: Call) -> None:
    await _knowledge(call).publish(call.params["slug"], _staff(call).username)


@api.route("GET", "/knowledge/gaps", summary="What people searched for and did not find",
           tag="knowledge", response=list[GapOut], roles=("supervisor",),
           query={"days": "look back this many days (default 30)"})
async def knowledge_gaps(call: Call) -> list[dict[str, Any]]:
    days = call.query.get("days", "30")
    if not days.isdigit() or not 1 <= int(days) <= 366:
        raise ValueError("days: a whole number from 1 to 366")
    since = _center(call).clock.now() - timedelta(days=int(days))
    return await _knowledge(call).gaps(since)


@api.route("GET", "/knowledge/overdue", summary="Articles past their review date, by owner",
           tag="knowledge", response=list[OverdueOut], roles=("supervisor",))
async def knowledge_overdue(call: Call) -> list[dict[str, Any]]:
    return await _knowledge(call).overdue()


def _knowledge(call: Call) -> KnowledgeDesk:
    desk = call.request.config_dict.get(KNOWLEDGE_KEY)
    if desk is None:
        raise web.HTTPServiceUnavailable(reason="the knowledge base is not configured")
    return desk


class AuditOut(Out):
    at: datetime
    actor_id: str | None
    actor_role: str | None
    action: str
    subject_type: str
    subject_id: str | None
    citizen_id: str | None
    reason: str | None


@api.route("GET", "/audit", summary="Who viewed or changed citizens' data", tag="citizens",
           response=list[AuditOut], roles=("supervisor",),
           query={"citizen_id": "only this citizen", "limit": "page size (≤ 200)",
                  "offset": "rows to skip"})
async def list_audit(call: Call) -> list[AuditEntry]:
    conditions = []
    if call.query.get("citizen_id"):
        conditions.append(AuditEntry.citizen_id == call.query["citizen_id"])
    limit, offset = _paging(call)
    rows, _ = await _center(call).list_rows(AuditEntry, *conditions,
                                            order_by=AuditEntry.at.desc(),
                                            limit=limit, offset=offset)
    return rows


# ---------------------------------------------------------------------------------------
# Helpers


def _time(call: Call, name: str) -> datetime | None:
    value = call.query.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: not an ISO time ({value!r})") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _center(call: Call) -> ContactCenter:
    return call.request.app[CENTER_KEY]


def _staff(call: Call) -> StaffIdentity:
    assert call.staff is not None
    return call.staff


def _actor(call: Call) -> Actor:
    staff = _staff(call)
    role = "admin" if "admin" in staff.roles else staff.roles[0] if staff.roles else "agent"
    return Actor(staff.agent_id, role, call.request.get(REQUEST_ID))


def _me(who: StaffIdentity) -> dict[str, Any]:
    return {"agent_id": who.agent_id, "username": who.username,
            "display_name": who.display_name, "roles": list(who.roles),
            "csrf_token": who.csrf_token}


def _self_or_supervisor(call: Call) -> str:
    staff = _staff(call)
    agent_id = call.params["agent_id"]
    if agent_id == "me":
        return staff.agent_id
    if agent_id != staff.agent_id and not staff.has_role("supervisor"):
        raise Forbidden("agents may only see and change themselves")
    return agent_id


def _own_task(call: Call, task: Task) -> None:
    staff = _staff(call)
    if task.agent_id != staff.agent_id and not staff.has_role("supervisor"):
        raise Forbidden("this task is not yours")


def _agent_out(center: ContactCenter, agent: AgentRecord) -> dict[str, Any]:
    view = center.router.agent(agent.id) if center.router.has_agent(agent.id) else None
    return {
        "id": agent.id, "username": agent.username, "display_name": agent.display_name,
        "roles": agent.roles, "skills": agent.skills, "languages": agent.languages,
        "capacity": agent.capacity, "presence": agent.presence,
        "presence_reason": agent.presence_reason,
        "activity": view.activity if view else agent.presence,
        "tasks": sorted(view.held) if view else [],
    }


def _paging(call: Call) -> tuple[int, int]:
    try:
        limit = int(call.query.get("limit", "50"))
        offset = int(call.query.get("offset", "0"))
    except ValueError:
        raise ValueError("limit and offset must be whole numbers") from None
    if not 1 <= limit <= 200 or offset < 0:
        raise ValueError("limit must be 1–200 and offset ≥ 0")
    return limit, offset


def _enum(kind: type[E], value: str, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(x) for x in kind)
        raise ValueError(f"{name}: {value!r} is not one of {allowed}") from None


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE)


async def authenticate(request: web.Request) -> StaffIdentity | None:
    """The staff member behind a request: a bearer token, or the console's session cookie
    (which also needs the CSRF token on every request that changes something)."""
    header = request.headers.get("Authorization", "")
    bearer = header.lower().startswith("bearer ")
    token = _token(request)
    if not token:
        return None
    staff = await request.config_dict[AUTH_KEY].authenticate(token)
    if staff is None:
        return None
    unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
    if not bearer and unsafe and request.headers.get("X-CSRF-Token") != staff.csrf_token:
        raise Forbidden("missing or wrong CSRF token (X-CSRF-Token)")
    return staff


__all__ = ["AUTH_KEY", "CENTER_KEY", "Conflict", "api", "authenticate"]
