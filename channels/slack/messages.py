"""Block Kit messages. Only what a department needs to answer travels to Slack: the case
number, its category, the question and the due time — never a citizen's name, national
ID, phone number or address."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from routing import Case, ContactCenter

TAKE, REPLY, RESOLVE = "onestop_take", "onestop_reply", "onestop_resolve"
REPLY_VIEW = "onestop_reply_view"
REPLY_BLOCK, REPLY_INPUT = "answer", "text"
BANGKOK = ZoneInfo("Asia/Bangkok")

Block = dict[str, Any]


def escape(text: str) -> str:
    """Slack's mrkdwn control characters (&, <, >) as Slack wants them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def local_time(when: datetime | str) -> str:
    """`2026-03-02 17:00 (เวลาประเทศไทย)` style, in Bangkok time."""
    at = datetime.fromisoformat(when) if isinstance(when, str) else when
    return at.astimezone(BANGKOK).strftime("%Y-%m-%d %H:%M") + " (ICT)"


def category_name(center: ContactCenter, code: str | None) -> str:
    spec = center.settings.categories.get(code or "")
    if spec is None:
        return code or "ไม่ระบุหมวด / Uncategorised"
    return f"{spec.name.th} / {spec.name.en}"


def department_name(center: ContactCenter, department: str) -> str:
    spec = center.settings.departments.get(department)
    return f"{spec.name.th} / {spec.name.en}" if spec else department


def consultation_blocks(center: ContactCenter, *, consultation_id: str, case_number: str,
                        category: str | None, question: str, due_at: str,
                        status: str = "open", closed_by: str | None = None) -> list[Block]:
    """The message posted in the department's channel (and updated when closed)."""
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": False,
                                    "text": f"ขอคำปรึกษา / Consultation · {case_number}"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*เรื่อง / Case*\n{escape(case_number)}"},
            {"type": "mrkdwn",
             "text": f"*หมวด / Category*\n{escape(category_name(center, category))}"},
            {"type": "mrkdwn", "text": f"*ตอบภายใน / Due*\n{local_time(due_at)}"},
            {"type": "mrkdwn", "text": f"*สถานะ / Status*\n{status_label(status)}"},
        ]},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"*คำถาม / Question*\n{escape(question)}"}},
    ]
    if status == "closed":
        who = f" · {escape(closed_by)}" if closed_by else ""
        blocks.append({"type": "context", "elements": [{
            "type": "mrkdwn", "text": f":white_check_mark: ปิดแล้ว / Closed{who}"}]})
        return blocks
    blocks += [
        {"type": "context", "elements": [{
            "type": "mrkdwn",
            "text": "ตอบในเธรดนี้ คำตอบจะถึงเจ้าหน้าที่ศูนย์ทันที / Reply in this thread: "
                    "the answer reaches the contact-centre agent at once"}]},
        {"type": "actions", "block_id": f"consultation:{consultation_id}", "elements": [
            {"type": "button", "action_id": TAKE, "value": consultation_id, "style": "primary",
             "text": {"type": "plain_text", "text": "รับเรื่อง / Take"}},
            {"type": "button", "action_id": REPLY, "value": consultation_id,
             "text": {"type": "plain_text", "text": "ตอบ / Reply"}},
            {"type": "button", "action_id": RESOLVE, "value": consultation_id,
             "text": {"type": "plain_text", "text": "ปิดเรื่อง / Resolve"},
             "confirm": {"title": {"type": "plain_text", "text": "ปิดเรื่อง / Resolve"},
                         "text": {"type": "plain_text",
                                  "text": "ปิดการปรึกษานี้? / Close this consultation?"},
                         "confirm": {"type": "plain_text", "text": "ปิด / Close"},
                         "deny": {"type": "plain_text", "text": "ยกเลิก / Cancel"}}},
        ]},
    ]
    return blocks


def status_label(status: str) -> str:
    return {"open": "รอคำตอบ / Waiting for an answer", "answered": "ตอบแล้ว / Answered",
            "closed": "ปิดแล้ว / Closed"}.get(status, status)


def reply_view(consultation_id: str, case_number: str) -> dict[str, Any]:
    """The modal behind the Reply button."""
    return {
        "type": "modal", "callback_id": REPLY_VIEW, "private_metadata": consultation_id,
        "title": {"type": "plain_text", "text": "ตอบ / Reply"},
        "submit": {"type": "plain_text", "text": "ส่ง / Send"},
        "close": {"type": "plain_text", "text": "ยกเลิก / Cancel"},
        "blocks": [{
            "type": "input", "block_id": REPLY_BLOCK,
            "label": {"type": "plain_text", "text": f"คำตอบ / Answer · {case_number}"},
            "element": {"type": "plain_text_input", "action_id": REPLY_INPUT,
                        "multiline": True, "max_length": 3000},
        }],
    }


def alert_blocks(title: str, detail: str, *, resolved: bool = False) -> list[Block]:
    icon = ":white_check_mark:" if resolved else ":rotating_light:"
    state = "คลี่คลายแล้ว / Resolved" if resolved else "เปิดอยู่ / Open"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{escape(title)}*"}},
        {"type": "context", "elements": [{"type": "mrkdwn",
                                          "text": f"{escape(detail)} · {state}"}]},
    ]


def case_summary_blocks(center: ContactCenter, case: Case, consultations: int) -> list[Block]:
    """What `/onestop case …` shows (ephemeral): the case, not the citizen."""
    department = department_name(center, case.department) if case.department else "—"
    fields = [
        ("เรื่อง / Case", case.number),
        ("หมวด / Category", category_name(center, case.category)),
        ("สถานะ / Status", case.status),
        ("ความสำคัญ / Priority", str(case.priority)),
        ("หน่วยงาน / Department", department),
        ("เปิดเมื่อ / Opened", local_time(case.created_at)),
        ("ครบกำหนดตอบครั้งแรก / First response due",
         local_time(case.first_response_due) if case.first_response_due else "—"),
        ("ครบกำหนดแก้ไข / Resolution due",
         local_time(case.resolution_due) if case.resolution_due else "—"),
        ("การติดต่อ / Conversations", str(case.conversation_count)),
        ("ปรึกษาหน่วยงาน / Consultations", str(consultations)),
    ]
    return [
        {"type": "header", "text": {"type": "plain_text", "text": case.number}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{label}*\n{escape(value)}"} for label, value in fields]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            "การเปิดดูนี้ถูกบันทึกไว้ / This look-up is recorded in the audit log"}]},
    ]
