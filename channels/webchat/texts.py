"""What the chat channel itself says to citizens and agents, Thai first then English."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "agent_joined": {
        "th": "เจ้าหน้าที่ {name} เข้าร่วมการสนทนาแล้ว",
        "en": "{name} has joined the conversation.",
    },
    "transcript_requested": {
        "th": "ประชาชนขอรับสำเนาบทสนทนาทางอีเมล {email} (ระบบอีเมลจะส่งให้)",
        "en": "The citizen asked for the transcript by email to {email} (sent by the email room).",
    },
    "offline_form": {
        "th": "ฝากข้อความถึงเจ้าหน้าที่ (ไม่มีเจ้าหน้าที่ออนไลน์หรือนอกเวลาทำการ)",
        "en": "Message left for officers (no one online or after hours)",
    },
}

#: Field labels for the offline form's summary message, Thai / English.
LABELS = {"name": "ชื่อ / Name", "email": "อีเมล / Email", "phone": "โทรศัพท์ / Phone"}


def say(key: str, language: str | None, **values: str) -> str:
    """The text for `key` in the citizen's language (Thai when unknown)."""
    forms = TEXTS[key]
    return forms.get(language or "th", forms["th"]).format(**values)
