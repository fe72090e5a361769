"""What the hotline says outside the menus, Thai first, English second.

`{name}` placeholders are filled with `str.format`; spoken numbers are spelt digit by
digit where a caller must write them down (case numbers).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

PHRASES: dict[str, tuple[str, str]] = {
    "press": ("{label} กด {key}", "For {label}, press {key}."),
    "no_input": ("ขออภัยค่ะ ไม่ได้ยินการตอบรับ", "Sorry, we did not hear anything."),
    "invalid": ("ขออภัยค่ะ ไม่มีตัวเลือกนี้", "Sorry, that is not one of the choices."),
    "to_person_after_failures": ("ขอโอนสายไปยังเจ้าหน้าที่เพื่อช่วยเหลือท่านค่ะ",
                                 "Let us put you through to an officer who can help."),
    "to_person": ("กรุณารอสักครู่ กำลังโอนสายไปยังเจ้าหน้าที่ค่ะ",
                  "Please hold, we are putting you through to an officer."),
    "open_case": ("ท่านมีคำร้องที่ยังดำเนินการอยู่ หมายเลข {number} สถานะ {status} "
                  "หากต้องการติดต่อเรื่องนี้กับเจ้าหน้าที่ กด 1 หากต้องการไปที่เมนูหลัก กด 2",
                  "You have an open case, number {number}, status {status}. To speak to an "
                  "officer about it, press 1. For the main menu, press 2."),
    "ask_case_number": ("กรุณากดหมายเลขคำร้อง สิบหลัก คือปี ค.ศ. สี่หลัก ตามด้วยเลขหกหลัก "
                        "แล้วกดเครื่องหมายสี่เหลี่ยม",
                        "Please key in your ten-digit case number: the four-digit year, then "
                        "the six digits, then press hash."),
    "case_number_malformed": ("หมายเลขคำร้องต้องมีสิบหลักค่ะ",
                              "A case number has ten digits."),
    "case_not_found": ("ไม่พบคำร้องหมายเลข {number} กรุณาตรวจสอบอีกครั้งค่ะ",
                       "We found no case numbered {number}. Please check the number."),
    "case_status": ("คำร้องหมายเลข {number} สถานะ {status} กำหนดแล้วเสร็จภายใน {due}",
                    "Case {number} is {status}. It is due to be resolved by {due}."),
    "case_private": ("เพื่อคุ้มครองข้อมูลส่วนบุคคล เราแจ้งรายละเอียดคำร้องได้เฉพาะเมื่อท่านโทรจาก"
                     "หมายเลขที่ลงทะเบียนไว้กับคำร้องเท่านั้น หากต้องการคุยกับเจ้าหน้าที่ กด 0 "
                     "ในเมนูหลักค่ะ",
                     "To protect personal data we can only give case details to the phone "
                     "number registered with the case. To speak to an officer, press 0 in "
                     "the main menu."),
    "ask_question": ("กรุณาพูดคำถามของท่านหลังเสียงสัญญาณค่ะ",
                     "Please ask your question after the tone."),
    "ask_more": ("หากมีคำถามอื่น พูดได้เลยค่ะ ต้องการคุยกับเจ้าหน้าที่ กด 0 กลับเมนูหลัก "
                 "กดดอกจัน",
                 "Ask another question, or press 0 for an officer, or star for the main "
                 "menu."),
    "closed": ("ขณะนี้อยู่นอกเวลาทำการ", "Our officers are not available right now."),
    "leave_message": ("กรุณาฝากข้อความหลังเสียงสัญญาณ พูดจบแล้วกดเครื่องหมายสี่เหลี่ยม "
                      "เจ้าหน้าที่จะติดต่อกลับในเวลาทำการค่ะ",
                      "Please leave a message after the tone and press hash when you are "
                      "done. An officer will get back to you during office hours."),
    "no_message": ("ไม่ได้รับข้อความ ขอบคุณที่ติดต่อวันสต็อปค่ะ",
                   "We did not receive a message. Thank you for calling OneStop."),
    "message_taken": ("ได้รับข้อความของท่านแล้ว เจ้าหน้าที่จะติดต่อกลับค่ะ ขอบคุณค่ะ",
                      "We have your message and an officer will get back to you. Thank you."),
    "queue_position": ("ท่านอยู่ลำดับที่ {position} ในคิว", "You are number {position} in the "
                       "queue."),
    "queue_wait": ("เวลารอโดยประมาณ {minutes} นาที", "The estimated wait is {minutes} minutes."),
    "queue_offer": ("หากต้องการให้เจ้าหน้าที่โทรกลับโดยไม่เสียลำดับคิว กด 1",
                    "To be called back without losing your place, press 1."),
    "callback_hidden": ("ขออภัยค่ะ ไม่สามารถโทรกลับหมายเลขที่ปิดการแสดงเบอร์ได้",
                        "Sorry, we cannot call back a hidden number."),
    "callback_promised": ("เจ้าหน้าที่จะโทรกลับทันทีที่ถึงลำดับของท่าน ขอบคุณค่ะ",
                          "An officer will call you back as soon as it is your turn. "
                          "Thank you."),
    "callback_greeting": ("สวัสดีค่ะ วันสต็อปโทรกลับตามที่ท่านขอไว้ กรุณารอสักครู่ค่ะ",
                          "Hello, this is OneStop calling you back as you asked. Please "
                          "hold."),
    "connecting": ("กำลังเชื่อมต่อกับเจ้าหน้าที่ค่ะ", "Connecting you to an officer."),
    "agent_unreachable": ("ขออภัยค่ะ เจ้าหน้าที่ไม่สามารถรับสายได้ในขณะนี้",
                          "Sorry, the officer could not take your call."),
    "agent_missed": ("ขออภัยค่ะ เจ้าหน้าที่ไม่ได้รับสาย กรุณารอสักครู่ ท่านยังอยู่ในลำดับคิวเดิม",
                     "Sorry, the officer could not answer. Please hold: you keep your place "
                     "in the queue."),
    "left_queue": ("ขออภัยค่ะ ไม่สามารถรอสายต่อได้", "Sorry, we could not keep you waiting."),
    "survey": ("กรุณาให้คะแนนความพึงพอใจต่อการบริการ จาก 1 ถึง 5 โดย 5 คือพอใจมากที่สุด",
               "Please rate our service from 1 to 5, where 5 is the best."),
    "survey_thanks": ("ขอบคุณสำหรับคะแนนค่ะ สวัสดีค่ะ", "Thank you for your rating. Goodbye."),
    "goodbye": ("ขอบคุณที่ติดต่อวันสต็อปค่ะ สวัสดีค่ะ", "Thank you for calling OneStop. Goodbye."),
    "office": ("{name} {address}", "{name}, {address}."),
    "office_hours": ("{name} เปิดทำการ {hours}", "{name} is open {hours}."),
}

KEY_NAMES = {
    "*": ("ดอกจัน", "star"),
    "#": ("เครื่องหมายสี่เหลี่ยม", "hash"),
}

CASE_STATUS = {
    "new": ("ได้รับเรื่องแล้ว", "received"),
    "open": ("กำลังดำเนินการ", "in progress"),
    "pending_citizen": ("รอข้อมูลเพิ่มเติมจากท่าน", "waiting for information from you"),
    "pending_back_office": ("อยู่ระหว่างการพิจารณาของหน่วยงาน", "with the responsible office"),
    "resolved": ("ดำเนินการเสร็จแล้ว", "resolved"),
    "closed": ("ปิดเรื่องแล้ว", "closed"),
    "reopened": ("เปิดเรื่องอีกครั้ง", "reopened"),
}

_THAI_MONTHS = ("มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน", "กรกฎาคม",
                "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม")
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
BANGKOK = ZoneInfo("Asia/Bangkok")


def say(phrase: str, language: str, **values: object) -> str:
    th, en = PHRASES[phrase]
    return (en if language == "en" else th).format(**values)


def key_name(key: str, language: str) -> str:
    names = KEY_NAMES.get(key)
    if names is None:
        return key
    return names[1] if language == "en" else names[0]


def case_status(status: str, language: str) -> str:
    th, en = CASE_STATUS.get(status, (status, status))
    return en if language == "en" else th


def spoken_case_number(number: str) -> str:
    """'OS-2026-000123' → 'O S 2 0 2 6 0 0 0 1 2 3' so that it is read digit by digit."""
    return " ".join(ch for ch in number if ch.isalnum())


def spoken_date(moment: datetime | None, language: str) -> str:
    """A date as people say it: Thai with the Buddhist year, English day month year."""
    if moment is None:
        return "-"
    local = moment.astimezone(BANGKOK)
    if language == "en":
        return f"{local.day} {_EN_MONTHS[local.month - 1]} {local.year}"
    return f"วันที่ {local.day} {_THAI_MONTHS[local.month - 1]} {local.year + 543}"
