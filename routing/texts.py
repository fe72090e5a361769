"""What the core itself says to citizens, Thai first then English."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "queued": {
        "th": "กำลังโอนเรื่องของท่านให้เจ้าหน้าที่ กรุณารอสักครู่ค่ะ",
        "en": "We are passing you to an officer. Please wait a moment.",
    },
    "bot_unavailable": {
        "th": "ขออภัย ระบบตอบอัตโนมัติขัดข้องชั่วคราว กำลังโอนให้เจ้าหน้าที่ดูแลค่ะ",
        "en": "Sorry, our automatic assistant is unavailable. An officer will help you.",
    },
    "agent_joined": {
        "th": "เจ้าหน้าที่ {name} เข้าร่วมการสนทนาแล้ว",
        "en": "{name} has joined the conversation.",
    },
    "back_to_bot": {
        "th": "ผู้ช่วยอัตโนมัติกลับมาดูแลต่อแล้วค่ะ พิมพ์คำถามได้เลย หรือพิมพ์ \"ขอคุยกับเจ้าหน้าที่\" "
              "เมื่อต้องการเจ้าหน้าที่",
        "en": "The assistant is back. Ask your question, or type \"talk to a person\" to "
              "reach an officer again.",
    },
    "closed": {
        "th": "การสนทนาสิ้นสุดแล้ว ขอบคุณที่ใช้บริการค่ะ",
        "en": "The conversation has ended. Thank you.",
    },
}


def say(key: str, language: str | None, **values: str) -> str:
    """The text for `key` in the citizen's language (Thai when unknown)."""
    forms = TEXTS[key]
    return forms.get(language or "th", forms["th"]).format(**values)


def detect_language(text: str) -> str:
    """'th' when the text has Thai letters, else 'en' (good enough for routing)."""
    return "th" if any("\u0e00" <= ch <= "\u0e7f" for ch in text) else "en"
