"""The Slack room: a slack-bolt app (HTTP mode) behind `/slack/events`, the
consultation threads in the departments' channels, supervisor alerts and `/onestop`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from channels.slack.alerts import AlertBoard, AlertRules, SupervisorAlerts
from channels.slack.directory import StaffDirectory, StaffMember
from channels.slack.messages import (
    REPLY,
    REPLY_BLOCK,
    REPLY_INPUT,
    REPLY_VIEW,
    RESOLVE,
    TAKE,
    case_summary_blocks,
    consultation_blocks,
    escape,
    reply_view,
)
from channels.slack.outbox import SlackOutbox
from routing import (
    Actor,
    Conflict,
    Consultation,
    ConsultationChanged,
    ConsultationRequested,
    ContactCenter,
    NotFound,
)

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
DEFAULT_API_BASE_URL = "https://slack.com/api/"
BACK_OFFICE_ROLE = "back_office"
#: Message subtypes that are a person writing in a thread (everything else — edits,
#: deletions, joins, bots — is not an answer).
ANSWER_SUBTYPES = (None, "thread_broadcast", "file_share")


class SlackRoom:
    """Everything Slack: built by `setup`, reachable as `app[SLACK_KEY]`."""

    def __init__(self, center: ContactCenter, *, signing_secret: str, bot_token: str,
                 api_base_url: str | None = None,
                 supervisors_channel: str = "#onestop-supervisors",
                 directory: StaffDirectory | None = None,
                 alert_rules: AlertRules | None = None,
                 backoff: tuple[float, ...] | None = None) -> None:
        self.center = center
        self.directory = directory or StaffDirectory()
        base_url = api_base_url or DEFAULT_API_BASE_URL
        self.client = AsyncWebClient(token=bot_token, base_url=base_url.rstrip("/") + "/",
                                     timeout=10, retry_handlers=[])
        self.outbox = SlackOutbox(center, self.client, on_ref=self._remembered,
                                  resolver=self._resolve_ref,
                                  **({"backoff": backoff} if backoff else {}))
        self.board = AlertBoard(center, self.outbox, supervisors_channel)
        self.alerts = SupervisorAlerts(center, self.board, alert_rules or AlertRules())
        self.bolt = AsyncApp(signing_secret=signing_secret, client=self.client,
                             process_before_response=False, name="onestop")
        self._closed_by: dict[str, str] = {}
        self._unsubscribe: list[Any] = []
        self._register()

    # -- wiring -------------------------------------------------------------------------

    def subscribe(self) -> None:
        bus = self.center.bus
        self._unsubscribe = [
            # Once in a cluster: on the node where the agent or department acted.
            bus.subscribe(self.on_consultation_requested, ConsultationRequested,
                          origin_only=True),
            bus.subscribe(self.on_consultation_changed, ConsultationChanged, origin_only=True),
            bus.subscribe(self.alerts.on_event),  # every event: kiosk ones by class name
        ]

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self.outbox.start()
        self.alerts.start()
        yield
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        await self.alerts.stop()
        await self.outbox.stop()

    async def handle(self, request: web.Request) -> web.Response:
        """Events, interactivity and slash commands all arrive here; bolt checks the
        signature and the 5-minute window, answers within Slack's 3 seconds and runs
        the listeners after."""
        response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    def _register(self) -> None:
        self.bolt.event("message")(self.on_message)
        self.bolt.action(TAKE)(self.on_take)
        self.bolt.action(REPLY)(self.on_reply_button)
        self.bolt.action(RESOLVE)(self.on_resolve)
        self.bolt.view(REPLY_VIEW)(self.on_reply_submitted)
        self.bolt.command("/onestop")(self.on_command)

    # -- consultations: OneStop → Slack ----------------------------------------------------

    def _lane(self, department: str) -> str | None:
        spec = self.center.settings.departments.get(department)
        return spec.slack_channel if spec else None

    async def on_consultation_requested(self, event: ConsultationRequested) -> None:
        channel = self._lane(event.department)
        if not channel:
            log.warning("department has no Slack channel", extra={"department": event.department})
            return
        await self.outbox.enqueue("chat.postMessage", {
            "channel": channel, "unfurl_links": False, "unfurl_media": False,
            "text": f"ขอคำปรึกษา / Consultation · {event.case_number}",
            "blocks": consultation_blocks(
                self.center, consultation_id=event.consultation_id,
                case_number=event.case_number, category=event.category,
                question=event.question, due_at=event.due_at),
        }, lane=channel, remember=f"consultation:{event.consultation_id}")

    async def on_consultation_changed(self, event: ConsultationChanged) -> None:
        if event.status != "closed":
            return  # answers come from Slack: nothing to send back
        consultation = await self.center.consultation(event.consultation_id)
        channel = self._lane(consultation.department)
        if not channel:
            return
        case = await self.center.case(consultation.case_id)
        closed_by = self._closed_by.pop(consultation.id, None) or await self._staff_name(
            event.author) or "OneStop"
        key = f"consultation:{consultation.id}"
        await self.outbox.enqueue("chat.update", {
            "text": f"ปิดแล้ว / Closed · {case.number}",
            "blocks": consultation_blocks(
                self.center, consultation_id=consultation.id, case_number=case.number,
                category=case.category, question=consultation.question,
                due_at=consultation.due_at.isoformat(), status="closed", closed_by=closed_by),
        }, lane=channel, update_ref=key)
        await self.outbox.enqueue("chat.postMessage", {
            "channel": channel, "text": f":white_check_mark: ปิดเรื่องแล้ว / Closed by {closed_by}",
        }, lane=channel, thread_ref=key, forget=(key,))

    async def _remembered(self, key: str, ref: str) -> None:
        kind, _, ident = key.partition(":")
        if kind == "consultation":
            await self.center.set_consultation_ref(ident, ref)

    async def _resolve_ref(self, key: str) -> str | None:
        kind, _, ident = key.partition(":")
        if kind == "consultation":
            try:
                return (await self.center.consultation(ident)).external_ref
            except NotFound:
                return None
        return None

    # -- consultations: Slack → OneStop ----------------------------------------------------

    async def on_message(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """A reply in a consultation's thread becomes an internal note on the case."""
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        if not thread_ts or thread_ts == ts or event.get("bot_id"):
            return
        if event.get("subtype") not in ANSWER_SUBTYPES:
            return
        text = unescape(str(event.get("text") or "")).strip()
        if not text:
            return
        consultation = await self.center.consultation_by_ref(f"{event.get('channel')}:{thread_ts}")
        if consultation is None:
            return  # chatter in other threads is not ours to keep
        event_id = str(body.get("event_id") or f"{event.get('channel')}:{ts}")
        if not await self.center.record_event("slack", event_id, {"type": "message"}):
            return  # a retry (X-Slack-Retry-Num) of an event already taken in
        author, _ = await self._author(event.get("user"), consultation.department)
        await self.center.consultation_reply(consultation.id, text, author, reply_id=str(ts))

    async def on_take(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        consultation = await self._consultation_of(body, action)
        if consultation is None:
            return
        user = body["user"]["id"]
        author, _ = await self._author(user, consultation.department)
        lane = self._lane(consultation.department) or body["channel"]["id"]
        await self.outbox.enqueue("chat.postMessage", {
            "channel": body["channel"]["id"],
            "text": f":raised_hand: <@{user}> รับเรื่องนี้แล้ว / took this ({escape(author)})",
        }, lane=lane, thread_ref=f"consultation:{consultation.id}")

    async def on_reply_button(self, ack: Any, body: dict[str, Any],
                              action: dict[str, Any]) -> None:
        await ack()
        consultation = await self._consultation_of(body, action)
        if consultation is None:
            return
        case = await self.center.case(consultation.case_id)
        # The trigger expires after 3 seconds: this call cannot wait in the outbox.
        await self.client.views_open(trigger_id=body["trigger_id"],
                                     view=reply_view(consultation.id, case.number))

    async def on_reply_submitted(self, ack: Any, body: dict[str, Any],
                                 view: dict[str, Any]) -> None:
        value = view["state"]["values"][REPLY_BLOCK][REPLY_INPUT].get("value") or ""
        if not value.strip():
            await ack(response_action="errors",
                      errors={REPLY_BLOCK: "โปรดพิมพ์คำตอบ / Please write an answer"})
            return
        await ack()
        consultation_id, user = view["private_metadata"], body["user"]["id"]
        try:
            consultation = await self.center.consultation(consultation_id)
        except NotFound:
            return
        author, _ = await self._author(user, consultation.department)
        if await self.center.consultation_reply(consultation.id, value.strip(), author,
                                                reply_id=f"view:{view['id']}"):
            lane = self._lane(consultation.department)
            if lane:  # the department sees the answer in the thread too
                await self.outbox.enqueue("chat.postMessage", {
                    "channel": lane, "text": f"<@{user}>: {escape(value.strip())}",
                }, lane=lane, thread_ref=f"consultation:{consultation.id}")

    async def on_resolve(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        consultation = await self._consultation_of(body, action)
        if consultation is None:
            return
        user = body["user"]["id"]
        author, member = await self._author(user, consultation.department)
        actor = Actor(member.agent_id, member.role) if member else Actor(None, BACK_OFFICE_ROLE)
        self._closed_by[consultation.id] = f"<@{user}> ({escape(author)})"
        try:
            await self.center.close_consultation(
                consultation.id, actor, resolution=f"ปิดใน Slack / closed in Slack: {author}")
        except Conflict:
            self._closed_by.pop(consultation.id, None)

    async def _consultation_of(self, body: dict[str, Any],
                               action: dict[str, Any]) -> Consultation | None:
        """The consultation a button belongs to, only if the button sits on the very
        message OneStop posted for it."""
        try:
            consultation = await self.center.consultation(str(action.get("value")))
        except NotFound:
            return None
        channel = (body.get("channel") or {}).get("id")
        ts = (body.get("container") or {}).get("message_ts") or \
            (body.get("message") or {}).get("ts")
        if consultation.external_ref != f"{channel}:{ts}":
            log.warning("button not on the consultation's message",
                        extra={"consultation": consultation.id})
            return None
        return consultation

    async def _author(self, slack_user: str | None,
                      department: str) -> tuple[str, StaffMember | None]:
        member = await self.directory.lookup(self.center, slack_user)
        if member is not None:
            return member.display_name, member
        spec = self.center.settings.departments.get(department)
        return f"{spec.name.th if spec else department} (back office)", None

    async def _staff_name(self, agent_id: str | None) -> str | None:
        if not agent_id:
            return None
        try:
            return (await self.center.agent_record(agent_id)).display_name
        except NotFound:
            return None

    # -- /onestop ---------------------------------------------------------------------

    async def on_command(self, ack: Any, command: dict[str, Any]) -> None:
        """`/onestop case OS-2026-000123`: the case's summary, only for mapped agents and
        supervisors, only to them (ephemeral), written to the audit log."""
        words = str(command.get("text") or "").split()
        if len(words) != 2 or words[0].lower() != "case":
            await ack(response_type="ephemeral",
                      text="ใช้ / Usage: `/onestop case OS-2026-000123`")
            return
        member = await self.directory.lookup(self.center, command.get("user_id"))
        if member is None or not member.may_look_up_cases:
            await ack(response_type="ephemeral", text=(
                "ขออภัย คำสั่งนี้สำหรับเจ้าหน้าที่ศูนย์ OneStop ที่ลงทะเบียนบัญชี Slack ไว้เท่านั้น "
                "/ Sorry, this command is only for OneStop staff whose Slack account is "
                "registered. Please ask your supervisor."))
            return
        number = words[1].upper()
        try:
            case = await self.center.case_by_number(number)
        except NotFound:
            await ack(response_type="ephemeral",
                      text=f"ไม่พบเรื่อง / No case {escape(number)}")
            return
        await self.center.audit(Actor(member.agent_id, member.role), "view", "case", case.id,
                                case.citizen_id, data={"via": "slack", "part": "summary"})
        _, consultations = await self.center.list_rows(
            Consultation, Consultation.case_id == case.id, limit=1)
        await ack(response_type="ephemeral", text=f"{case.number}: {case.status}",
                  blocks=case_summary_blocks(self.center, case, consultations))


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


SLACK_KEY = web.AppKey("slack", SlackRoom)


def setup(app: web.Application, center: ContactCenter, *, signing_secret: str | None,
          bot_token: str | None, api_base_url: str | None = None,
          supervisors_channel: str = "#onestop-supervisors",
          staff_directory: StaffDirectory | Path | str | None = None,
          alert_rules: AlertRules | None = None,
          backoff: tuple[float, ...] | None = None) -> SlackRoom | None:
    """Mount `POST /slack/events` (events, interactivity and `/onestop`, one URL) and
    subscribe to the bus. Without a signing secret and a bot token Slack is off: the
    route answers 503 and nothing is posted (consultations still work in the console).

    `staff_directory`: a `StaffDirectory`, or the path of a users YAML file (default
    `channels/slack/users.yaml`)."""
    if not signing_secret or not bot_token:
        log.info("Slack is not configured (SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN)")
        app.router.add_post(EVENTS_PATH, _not_configured)
        return None
    directory = staff_directory if isinstance(staff_directory, StaffDirectory) else (
        StaffDirectory.from_file(staff_directory) if staff_directory else
        StaffDirectory.from_file())
    room = SlackRoom(center, signing_secret=signing_secret, bot_token=bot_token,
                     api_base_url=api_base_url, supervisors_channel=supervisors_channel,
                     directory=directory, alert_rules=alert_rules, backoff=backoff)
    app[SLACK_KEY] = room
    app.router.add_post(EVENTS_PATH, room.handle)
    room.subscribe()
    app.cleanup_ctx.append(room.lifecycle)
    return room


async def _not_configured(request: web.Request) -> web.Response:
    return web.json_response({"error": "slack is not configured"}, status=503)
