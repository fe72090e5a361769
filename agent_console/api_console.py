"""API routes the console screens need beyond the core REST API: the agent's desk with
offer deadlines, replies and notes, supervisors' reassignment, canned responses and
wrap-up codes. Registered on the same `api` object, so they are in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from pydantic import Field
from sqlalchemy import select

from agent_console.api import (
    AgentOut,
    MessageOut,
    TaskOut,
    _actor,
    _agent_out,
    _center,
    _staff,
    api,
    check_transfer_target,
)
from agent_console.data import canned_responses, wrap_codes
from agent_console.rest import Call, Out, Shape
from routing import (
    Attachment,
    Author,
    Citizen,
    Conflict,
    ContactCenter,
    Forbidden,
    Message,
    StaffIdentity,
    Task,
    TaskStatus,
    task_view,
)

HELD = (TaskStatus.RESERVED, TaskStatus.ASSIGNED, TaskStatus.WRAPPING)
#: A task in these states means its agent works on the conversation (sees and writes).
WORKING = (TaskStatus.ASSIGNED, TaskStatus.WRAPPING)


class DeskItem(Out):
    task: TaskOut
    expires_at: float | None = Field(description="offer deadline, seconds since the epoch")
    wrap_ends_at: float | None = Field(default=None, description="when after-contact work "
                                       "ends by itself (wrapping tasks), epoch seconds")
    case_number: str | None
    citizen_name: str | None


class DeskOut(Out):
    agent: AgentOut
    server_time: float
    items: list[DeskItem]


class AttachmentRef(Shape):
    ref: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field(min_length=3, max_length=100)
    size: int = Field(ge=0)


class MessageIn(Shape):
    body: str = Field(min_length=1, max_length=10000)
    internal: bool = False
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=10)


class ReassignIn(Shape):
    queue_id: str = Field(min_length=1, max_length=40)
    agent_id: str | None = Field(default=None, max_length=32)
    note: str | None = Field(default=None, max_length=2000)


class WordsOut(Out):
    th: str
    en: str


class CannedOut(Out):
    id: str
    title: WordsOut
    body: WordsOut


class WrapCodeOut(Out):
    code: str
    name: WordsOut


@api.route("GET", "/desk", summary="The signed-in agent's desk: offers (with their "
           "deadlines) and the tasks they hold", tag="console", response=DeskOut)
async def desk(call: Call) -> dict[str, Any]:
    center, staff = _center(call), _staff(call)
    agent = await center.agent_record(staff.agent_id)
    held = sorted(center.router.agent(staff.agent_id).held) if center.router.has_agent(
        staff.agent_id) else []
    items: list[dict[str, Any]] = []
    if held:
        async with center.db.sessions() as s:
            tasks = (await s.scalars(select(Task).where(Task.id.in_(held))
                                     .order_by(Task.created_at))).all()
            citizens = {c.id: c for c in (await s.scalars(select(Citizen).where(
                Citizen.id.in_({t.citizen_id for t in tasks})))).all()}
        for task in tasks:
            view = center.router.task(task.id) if center.router.has_task(task.id) else None
            citizen = citizens.get(task.citizen_id)
            items.append({
                "task": {**task_view(center, task),
                         "status": str(view.status) if view else task.status},
                "wrap_ends_at": _wrap_ends_at(center, task, view),
                "expires_at": view.reservation_deadline if view and (
                    view.status is TaskStatus.RESERVED) else None,
                "case_number": (task.attributes or {}).get("case_number"),
                "citizen_name": citizen and (citizen.name_th or citizen.name_en),
            })
    if items:  # citizens' names and task attributes: a read of citizen data
        await center.audit(_actor(call), "list", "desk", None, None, data={
            "count": len(items), "ids": [i["task"]["id"] for i in items],
            "citizens": sorted({t.citizen_id for t in tasks})})
    return {"agent": _agent_out(center, agent), "server_time": center.clock.now().timestamp(),
            "items": items}


def _wrap_ends_at(center: ContactCenter, task: Task, view: Any) -> float | None:
    """After-contact work ends on its own at wrap start + the channel's wrap-up time."""
    if view is None or view.status is not TaskStatus.WRAPPING or task.wrap_started_at is None:
        return None
    seconds = center.settings.channel(view.channel).wrap_up_seconds
    return task.wrap_started_at.timestamp() + seconds


@api.route("POST", "/conversations/{conversation_id}/messages", summary="Reply to the "
           "citizen, or add an internal note (the assigned agent or a supervisor)",
           tag="conversations", body=MessageIn, response=MessageOut, status=201)
async def post_message(call: Call) -> Message:
    center, staff = _center(call), _staff(call)
    conversation_id = call.params["conversation_id"]
    # The holder is checked in the router's memory; only someone who does not hold it
    # needs the store, to tell an unknown conversation (404) from another's (403).
    if not staff.has_role("supervisor") and not await holds_conversation(
            center, staff, conversation_id):
        await center.conversation(conversation_id)  # 404 when unknown
        raise Forbidden("only the agent working on this conversation or a supervisor may write")
    # `send` answers NotFound (404) for an unknown conversation and returns the stored
    # message as it is after the first delivery attempt: nothing is read back.
    message: Message = await center.send(
        conversation_id, call.body.body, author=Author.AGENT, author_id=staff.agent_id,
        author_name=staff.display_name, internal=call.body.internal,
        attachments=[Attachment(a.filename, a.content_type, a.size, a.ref)
                     for a in call.body.attachments])
    return message


@api.route("POST", "/tasks/{task_id}/reassign", summary="Move a task someone is working on "
           "to another queue or agent, with a note (supervisors)", tag="tasks",
           body=ReassignIn, response=TaskOut, roles=("supervisor",))
async def reassign_task(call: Call) -> dict[str, Any]:
    center, staff = _center(call), _staff(call)
    task_id = call.params["task_id"]
    task = await center.task(task_id)
    if call.body.queue_id not in center.settings.queues:
        raise ValueError(f"queue_id: unknown queue {call.body.queue_id!r}")
    view = center.router.task(task_id) if center.router.has_task(task_id) else None
    if view is None or view.status is not TaskStatus.ASSIGNED or view.agent_id is None:
        raise Conflict(f"task {task_id} is not being worked on")
    check_transfer_target(center, call.body.queue_id, call.body.agent_id, view.agent_id)
    if call.body.note:
        await center.send_message(task.conversation_id, call.body.note, author=Author.AGENT,
                                  author_id=staff.agent_id, author_name=staff.display_name,
                                  internal=True)
    # The core's transfer acts for the agent holding the task; the supervisor's own note
    # above says who moved it.
    await center.transfer_task(task_id, view.agent_id, call.body.queue_id, call.body.agent_id)
    return task_view(center, await center.task(task_id))


@api.route("GET", "/canned-responses", summary="Canned responses in Thai and English "
           "(variables: {citizen_name}, {case_number}, {agent_name})", tag="console",
           response=list[CannedOut])
async def list_canned(call: Call) -> list[Any]:
    return [c.model_dump() for c in canned_responses()]


@api.route("GET", "/wrap-codes", summary="Wrap-up codes", tag="console",
           response=list[WrapCodeOut])
async def list_wrap_codes(call: Call) -> list[Any]:
    return [c.model_dump() for c in wrap_codes()]


class TaskConversations:
    """Which conversation each task serves, for the router's in-memory task state (which
    knows tasks and agents, not conversations): the task → conversation pairs are fixed
    once a task exists, so they are cached; each is taken from the router's task
    attributes where the router runs, else read once from the store (a follower's
    replica has no attributes). Also kept backwards: conversation → its known tasks."""

    def __init__(self, center: ContactCenter) -> None:
        self.center = center
        self._of: dict[str, str] = {}
        self._on: dict[str, set[str]] = {}

    def of(self, task_id: str) -> str | None:
        return self._of.get(task_id)

    def on(self, conversation_id: str) -> set[str]:
        """The tasks known to serve a conversation (unfinished ones, mostly)."""
        return self._on.get(conversation_id, set())

    def add(self, task_id: str, conversation_id: str) -> None:
        if self._of.get(task_id) != conversation_id:
            self.forget(task_id)
            self._of[task_id] = conversation_id
            self._on.setdefault(conversation_id, set()).add(task_id)

    def forget(self, task_id: str) -> None:
        """A finished task: its pair is no longer needed."""
        conversation_id = self._of.pop(task_id, None)
        if conversation_id is not None:
            tasks = self._on.get(conversation_id)
            if tasks is not None:
                tasks.discard(task_id)
                if not tasks:
                    del self._on[conversation_id]

    async def resolve(self, task_ids: Iterable[str]) -> None:
        """Learn the conversation of each of `task_ids` not known yet (one query at most)."""
        router = self.center.router
        missing: list[str] = []
        for task_id in task_ids:
            if task_id in self._of:
                continue
            conversation_id = router.task(task_id).attributes.get(
                "conversation_id") if router.has_task(task_id) else None
            if isinstance(conversation_id, str):
                self.add(task_id, conversation_id)
            else:
                missing.append(task_id)
        if missing:
            async with self.center.db.sessions() as s:
                rows = (await s.execute(select(Task.id, Task.conversation_id).where(
                    Task.id.in_(missing)))).all()
            for task_id, conversation_id in rows:
                self.add(task_id, conversation_id)


_TASK_CONVERSATIONS: WeakKeyDictionary[ContactCenter, TaskConversations] = WeakKeyDictionary()


def task_conversations(center: ContactCenter) -> TaskConversations:
    """The node's one `TaskConversations` for `center`."""
    index = _TASK_CONVERSATIONS.get(center)
    if index is None:
        index = _TASK_CONVERSATIONS[center] = TaskConversations(center)
    return index


async def holds_conversation(center: ContactCenter, staff: StaffIdentity,
                             conversation_id: str) -> bool:
    """Whether the agent is working on the conversation now (assigned or wrapping), from
    the router's task state (no query, except once per task on a follower node)."""
    router = center.router
    if not router.has_agent(staff.agent_id):
        return False
    held = list(router.agent(staff.agent_id).held)
    index = task_conversations(center)
    await index.resolve(held)
    for task_id in held:
        if index.of(task_id) == conversation_id and router.has_task(task_id) and (
                router.task(task_id).status in WORKING):
            return True
    return False


async def agents_on(center: ContactCenter, conversation_id: str) -> set[str]:
    """The agents working on a conversation now, from the store (the live hub and
    `holds_conversation` use the router's memory instead)."""
    async with center.db.sessions() as s:
        rows = (await s.scalars(select(Task.agent_id).where(
            Task.conversation_id == conversation_id,
            Task.status.in_([str(TaskStatus.ASSIGNED), str(TaskStatus.WRAPPING)])))).all()
    return {r for r in rows if r}
