"""The kiosk feed: a batch of events from one signed-in kiosk → the core's commands.

Each event is checked against the published JSON Schema, then against the catalogue and
the identity rules, and handled on its own: a bad event gets its own error (index, id,
JSON path, why) and the others are still accepted. Every event is handled once: its
answer is stored under (device, event id) and given again when the kiosk replays it.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from channels.kiosk.events import KioskBack
from channels.kiosk.store import DeviceView, KioskStore
from routing import (
    SYSTEM,
    Author,
    Channel,
    ContactCenter,
    Conversation,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    InvalidIdentity,
    normalise,
)

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "kiosk-events.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
#: Ticket numbers restart every day, counted in the offices' time zone.
LOCAL_ZONE = ZoneInfo("Asia/Bangkok")
#: How many errors of one event are reported (the first ones, by position).
MAX_ERRORS = 10

_FORMATS = Draft202012Validator.FORMAT_CHECKER
_ENVELOPE = Draft202012Validator(
    {**{k: v for k, v in SCHEMA.items() if k != "properties"},
     "properties": {"events": {k: v for k, v in SCHEMA["properties"]["events"].items()
                               if k != "items"}}},
    format_checker=_FORMATS,
)
_EVENT = Draft202012Validator(
    {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"], "$ref": "#/$defs/event"},
    format_checker=_FORMATS,
)


@dataclass
class EventError(Exception):
    """Why one event was refused, and where in it."""

    path: str
    message: str
    code: str = "invalid"


@dataclass
class Outcome:
    """The answer about one event."""

    index: int
    id: str | None
    type: str | None
    status: str  # accepted | duplicate | rejected | failed
    result: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "id": self.id, "type": self.type,
                                "status": self.status, **self.result}
        if self.errors:
            body["errors"] = self.errors
        if self.status == "failed":
            body["retry"] = True
        return body


def published_schema(center: ContactCenter) -> dict[str, Any]:
    """The schema as served: the catalogue's category codes filled in."""
    schema = copy.deepcopy(SCHEMA)
    codes = sorted(center.settings.categories)
    for name in ("service_request", "queue_ticket"):
        schema["$defs"][name]["properties"]["category"]["enum"] = codes
    return schema


def envelope_errors(payload: Any) -> list[dict[str, str]]:
    """What is wrong with the batch as a whole (not an object with 1–100 events)."""
    return [_error(e, "$") for e in sorted(_ENVELOPE.iter_errors(payload), key=_order)]


class KioskFeed:
    """Handles batches of events for the kiosks."""

    def __init__(self, center: ContactCenter, store: KioskStore) -> None:
        self.center = center
        self.store = store

    async def handle(self, device: DeviceView, events: list[Any]) -> list[Outcome]:
        """Handle a batch in order (a visit's events depend on the ones before)."""
        outcomes = []
        for index, event in enumerate(events):
            outcomes.append(await self._one(device, index, event))
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        log.info("kiosk batch", extra={"device": device.id, **counts})
        return outcomes

    async def _one(self, device: DeviceView, index: int, event: Any) -> Outcome:
        event_id = _safe_id(event)
        kind = event.get("type") if isinstance(event, dict) else None
        kind = kind if isinstance(kind, str) and len(kind) <= 40 else None
        where = f"$.events[{index}]"
        problems = sorted(_EVENT.iter_errors(event), key=_order)
        if problems:
            return Outcome(index, event_id, kind, "rejected",
                           errors=[_error(e, where) for e in problems[:MAX_ERRORS]])
        assert event_id is not None and kind is not None
        if kind != "heartbeat":
            known = await self.store.result_of(device.id, event_id)
            if known is not None:
                return Outcome(index, event_id, kind, "duplicate", result=known)
        try:
            result = await getattr(self, "_" + kind)(device, event)
        except EventError as exc:
            return Outcome(index, event_id, kind, "rejected", errors=[
                {"path": where + exc.path, "code": exc.code, "message": exc.message}])
        except Exception:
            log.exception("kiosk event failed", extra={"device": device.id, "type": kind})
            return Outcome(index, event_id, kind, "failed", errors=[
                {"path": where, "code": "internal",
                 "message": "not stored because of a problem on our side; send it again"}])
        duplicate = bool(result.pop("duplicate", False))
        return Outcome(index, event_id, kind, "duplicate" if duplicate else "accepted",
                       result=result)

    # -- one handler per event type ---------------------------------------------------

    async def _citizen_identified(self, device: DeviceView, e: dict[str, Any]) -> dict[str, Any]:
        by_card = e["method"] == "smart_card"
        hint = IdentityHint(IdentityKind.NATIONAL_ID, e["national_id"],
                            verified_by="smart_card" if by_card else None)
        card: dict[str, Any] = {
            k: e[k] for k in ("name_th", "name_en", "birth_date", "address") if k in e}
        body = ("ระบุตัวตนด้วยบัตรประชาชนแบบสมาร์ทการ์ดที่ตู้บริการ / "
                "Identified with the Thai ID smart card at the kiosk") if by_card else (
                "แจ้งเลขประจำตัวประชาชนที่ตู้บริการ (ยังไม่ได้ยืนยัน) / "
                "Typed an ID number at the kiosk (not verified)")
        try:
            stored = await self.center.ingest(self._inbound(
                device, e, body, message_id=f"{device.id}:{e['id']}", author=Author.SYSTEM,
                hints=(hint,), metadata={"verified": by_card, "smart_card": card}))
        except InvalidIdentity as exc:
            raise EventError(".national_id", exc.reason, "invalid_identity") from exc
        if by_card and card:
            # The chip's data is the state's record of the person: tell it once, verified.
            await self.center.update_profile(stored.citizen_id, _profile(card), SYSTEM,
                                             verified_by="smart_card")
        return await self._finish(device, e, {"case_number": stored.case_number,
                                              "verified": by_card})

    async def _service_request(self, device: DeviceView, e: dict[str, Any]) -> dict[str, Any]:
        spec = self.center.settings.categories.get(e["category"])
        if spec is None:
            raise EventError(".category", f"unknown category {e['category']!r}; "
                             "see GET /kiosk/v1/catalogue", "unknown_category")
        conv = await self._visit(device, e, open_if_missing=True)
        assert conv is not None
        case = await self.center.case(conv.case_id)
        language = e.get("language") or "th"
        name = spec.name.en if language == "en" else spec.name.th
        # The category is set before the citizen's message is stored, so that the task the
        # message creates (kiosks go straight to people) is routed by it.
        changes: dict[str, Any] = {"category": spec.code}
        if not case.subject:
            changes["subject"] = name
        await self.center.update_case(case.id, SYSTEM, **changes)
        lines = [name]
        if e.get("details"):
            lines.append(e["details"])
        lines += [f"{key}: {value}" for key, value in sorted((e.get("form") or {}).items())]
        stored = await self.center.ingest(self._inbound(
            device, e, "\n".join(lines), message_id=f"{device.id}:{e['id']}",
            author=Author.CITIZEN, queue_hint=spec.queue, subject=name))
        return await self._finish(device, e, {"case_number": stored.case_number,
                                              "category": spec.code})

    async def _queue_ticket(self, device: DeviceView, e: dict[str, Any]) -> dict[str, Any]:
        code = e.get("category") or "general"
        spec = self.center.settings.categories.get(code)
        if spec is None:
            raise EventError(".category", f"unknown category {code!r}; "
                             "see GET /kiosk/v1/catalogue", "unknown_category")
        queue = spec.queue or "general"
        queues = list(self.center.settings.queues)
        prefix = chr(ord("A") + queues.index(queue) % 26) if queue in queues else "Z"
        now = self.center.clock.now()
        day = now.astimezone(LOCAL_ZONE).date().isoformat()
        conv = await self._visit(device, e, open_if_missing=False)
        base: dict[str, Any] = {"queue": queue}
        if conv is not None:
            base["case_number"] = (await self.center.case(conv.case_id)).number
        result = await self.store.issue_ticket(
            device.id, e["id"], e.get("visit_id"), f"{device.location}|{day}|{prefix}", prefix,
            base, now)
        if result.pop("duplicate", False):
            return {**result, "duplicate": True}
        if conv is not None:
            await self.center.ingest(self._inbound(
                device, e, f"ออกบัตรคิว {result['ticket_number']} / "
                f"Queue ticket {result['ticket_number']} issued",
                message_id=f"{device.id}:{e['id']}", author=Author.SYSTEM))
        await self._record(device, e, result)
        return result

    async def _callback_request(self, device: DeviceView, e: dict[str, Any]) -> dict[str, Any]:
        try:
            phone = normalise(IdentityKind.PHONE, e["phone"])
        except InvalidIdentity as exc:
            raise EventError(".phone", exc.reason, "invalid_identity") from exc
        when = e.get("preferred_time", "any")
        body = f"ขอให้เจ้าหน้าที่โทรกลับที่ {phone} (ช่วงเวลา: {when}) / " \
               f"Call back requested at {phone} (preferred time: {when})"
        if e.get("note"):
            body += "\n" + e["note"]
        return await self._to_people(device, e, body, "callback_request",
                                     {"callback_phone": phone, "preferred_time": when},
                                     hints=(IdentityHint(IdentityKind.PHONE, phone),))

    async def _chat_request(self, device: DeviceView, e: dict[str, Any]) -> dict[str, Any]:
        body = "ขอแชทกับเจ้าหน้าที่จากตู้บริการ / Asked to chat with an officer from the kiosk"
        if e.get("note"):
            body += "\n" + e["note"]
        return await self._to_people(device, e, body, "chat_request", {})

    async def _feedback(self, device: DeviceView, e: dict[str, Any]) -> dict[str, Any]:
        conv = await self._visit(device, e, open_if_missing=False)
        if conv is None:
            # Feedback without a visit still counts: kept in the core's provider-event log.
            return await self._finish(device, e, {"recorded": True},
                                      extra={"rating": e["rating"],
                                             "comment": e.get("comment")})
        case = await self.center.update_case(conv.case_id, SYSTEM, csat=e["rating"])
        result = {"case_number": case.number}
        if not await self.store.save_result(device.id, e["id"], e["type"], e.get("visit_id"),
                                            result, self.center.clock.now()):
            return {**result, "duplicate": True}
        if e.get("comment"):
            await self.center.send_message(
                conv.id, f"ความคิดเห็นจากตู้บริการ ({e['rating']}/5) / "
                f"Kiosk feedback ({e['rating']}/5):\n{e['comment']}",
                author=Author.SYSTEM, internal=True)
        await self._record(device, e, result)
        return result

    async def _heartbeat(self, device: DeviceView, e: dict[str, Any]) -> dict[str, Any]:
        # Heartbeats change only the device's status: a replay is harmless, so they are not
        # kept in the event log (a kiosk sends one a minute, for years).
        now = self.center.clock.now()
        status = {k: v for k, v in e.items() if k not in ("id", "type")}
        if await self.store.seen(device.id, now, status):
            await self.center.bus.publish(KioskBack(device.id, device.name, device.location, now))
        return {"server_time": now.isoformat()}

    # -- helpers ----------------------------------------------------------------------

    async def _to_people(self, device: DeviceView, e: dict[str, Any], body: str, reason: str,
                         context: Mapping[str, Any],
                         hints: tuple[IdentityHint, ...] = ()) -> dict[str, Any]:
        conv = await self._visit(device, e, open_if_missing=True)
        assert conv is not None
        # Stored as the kiosk's own note (author system) so that the core does not also
        # open a task for it: the hand-off below is the one, with its reason.
        stored = await self.center.ingest(self._inbound(
            device, e, body, message_id=f"{device.id}:{e['id']}", author=Author.SYSTEM,
            hints=hints))
        language = e.get("language") or conv.language or "th"
        await self.center.hand_to_people(conv.id, reason=reason,
                                         context={**context, "language": language})
        return await self._finish(device, e, {"case_number": stored.case_number})

    async def _visit(self, device: DeviceView, e: Mapping[str, Any], *,
                     open_if_missing: bool) -> Conversation | None:
        """The visit's conversation; an anonymous one is opened when asked and missing."""
        key = f"{device.id}:{e['visit_id']}"
        rows, _ = await self.center.list_rows(
            Conversation, Conversation.channel == str(Channel.KIOSK),
            Conversation.provider_key == key, limit=1)
        if rows or not open_if_missing:
            return rows[0] if rows else None
        stored = await self.center.ingest(self._inbound(
            device, e, "เริ่มใช้บริการที่ตู้บริการ (ไม่ระบุตัวตน) / "
            "Visit started at the kiosk (not identified)",
            message_id=f"{key}:start", author=Author.SYSTEM, metadata={"verified": False}))
        return await self.center.conversation(stored.conversation_id)

    def _inbound(self, device: DeviceView, e: Mapping[str, Any], body: str, *,
                 message_id: str, author: Author, hints: tuple[IdentityHint, ...] = (),
                 metadata: Mapping[str, Any] | None = None, queue_hint: str | None = None,
                 subject: str | None = None) -> InboundMessage:
        return InboundMessage(
            channel=Channel.KIOSK, conversation_key=f"{device.id}:{e['visit_id']}",
            message_id=message_id, body=body, identity_hints=hints,
            language=e.get("language") or "th", author=author, queue_hint=queue_hint,
            subject=subject, received_at=_occurred(e, self.center.clock.now()),
            metadata={"kiosk": device.id, "kiosk_location": device.location,
                      "visit_id": e["visit_id"], **(metadata or {})},
        )

    async def _finish(self, device: DeviceView, e: dict[str, Any], result: dict[str, Any],
                      extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Keep the answer for replays; a concurrent twin that stored first wins."""
        if not await self.store.save_result(device.id, e["id"], e["type"], e.get("visit_id"),
                                            result, self.center.clock.now()):
            known = await self.store.result_of(device.id, e["id"])
            return {**(known or result), "duplicate": True}
        await self._record(device, e, result, extra)
        return result

    async def _record(self, device: DeviceView, e: Mapping[str, Any],
                      result: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> None:
        await self.center.record_event(f"kiosk:{device.id}", e["id"], {
            "type": e["type"], "visit_id": e.get("visit_id"), **result, **(extra or {})})


def _occurred(e: Mapping[str, Any], now: datetime) -> datetime:
    """When it happened at the kiosk, but never in the future of the server's clock."""
    text = e.get("occurred_at")
    if not text:
        return now
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return now
    return now if at.tzinfo is None or at > now else at


def _safe_id(event: Any) -> str | None:
    value = event.get("id") if isinstance(event, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def _order(error: ValidationError) -> tuple[str, ...]:
    return tuple(str(p) for p in error.absolute_path)


def _error(error: ValidationError, where: str) -> dict[str, str]:
    path = where
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    if error.validator == "required" and isinstance(error.instance, dict):
        # Point at the missing field itself, not at the event that lacks it.
        missing = [p for p in error.validator_value
                   if p not in error.instance and error.message.startswith(repr(p))]
        path += f".{missing[0]}" if missing else ""
    if error.validator == "required" or error.validator == "additionalProperties":
        code = "missing" if error.validator == "required" else "unexpected"
    else:
        code = "invalid"
    return {"path": path, "code": code, "message": error.message}


def _profile(card: dict[str, Any]) -> dict[str, Any]:
    profile = dict(card)
    if isinstance(profile.get("birth_date"), str):
        profile["birth_date"] = date.fromisoformat(profile["birth_date"])
    return profile
