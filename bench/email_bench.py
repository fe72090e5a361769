"""Email ingest: the same N generated Thai/English messages into OneStop and django-helpdesk.

OneStop: through the app's own SMTP listener (a separate process, `python -m onestop run`):
`aiosmtplib` sends on `CONNECTIONS` parallel connections; the listener answers 250 only
after the message is parsed, threaded (conversation + case) and stored durably, so the
time until the last 250 is the ingest time. Acknowledgement emails are switched off
(`acknowledge: false` in a copy of config/email.yaml): no relay to send them to.

django-helpdesk: its management command `get_email` over a queue with
`email_box_type='local'` reading the same messages as files (its own venv and a throwaway
Django project on SQLite: `bench/peers/helpdesk_ingest.py`). It creates tickets and
follow-ups (replies carry the ticket id in In-Reply-To); its acknowledgement emails go to
Django's in-memory backend.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib

from bench.common import CACHE, ROOT, AppProcess, cpu_seconds, pct, rss_mb

CONNECTIONS = 4
HELPDESK_VENV = CACHE / "helpdesk-venv"
HELPDESK_REQUIREMENTS = ROOT / "bench" / "peers" / "helpdesk-requirements.txt"

SUBJECTS = [
    ("ขอคัดสำเนาทะเบียนบ้าน", "เรียน เจ้าหน้าที่\n\nดิฉันต้องการขอคัดสำเนาทะเบียนบ้านสำหรับ"
     "ยื่นกู้ธนาคาร ต้องใช้เอกสารอะไรบ้างคะ และใช้เวลากี่วัน\n\nขอบคุณค่ะ\n"),
    ("สอบถามเบี้ยยังชีพผู้สูงอายุ", "สวัสดีครับ\n\nคุณพ่ออายุครบ 60 ปีเดือนนี้ ต้องลงทะเบียน"
     "รับเบี้ยยังชีพที่ไหนครับ ยื่นออนไลน์ได้ไหม\n\nด้วยความเคารพ\n"),
    ("ร้องเรียนไฟถนนดับ", "ไฟถนนหน้าซอยลาดพร้าว 101 ดับมาสามคืนแล้ว อันตรายมากครับ "
     "ช่วยส่งเจ้าหน้าที่มาตรวจสอบด้วย\n"),
    ("ภาษีป้าย ภ.ป.1 ยื่นช้า", "ร้านของเรายื่นแบบ ภ.ป.1 ไม่ทันกำหนด จะมีค่าปรับเท่าไร "
     "และชำระออนไลน์ได้หรือไม่คะ\n"),
    ("Request for ID card replacement", "Dear officer,\n\nI lost my Thai ID card last "
     "week. Which documents do I need to bring to replace it, and can I book a slot?\n\n"
     "Best regards,\n"),
    ("Question about business registration", "Hello,\n\nWe are opening a small coffee "
     "shop in Chiang Mai. Do we need to register the business with the district office?"
     "\n\nThanks\n"),
]
NAMES = ["สมชาย ใจดี", "มาลี ศรีสุข", "Anan Wong", "John Smith", "วิภา รักไทย", "Nok Suda"]


def generate(count: int, seed: int = 11) -> list[bytes]:
    """`count` messages: ~70 % new matters, ~30 % replies threaded to an earlier one."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 2, 9, 0, tzinfo=timezone(timedelta(hours=7)))
    sent: list[tuple[str, str, str]] = []  # (message id, subject, sender)
    out = []
    for n in range(count):
        msg = EmailMessage()
        if sent and rng.random() < 0.3:
            parent_id, subject, sender = rng.choice(sent)
            msg["Subject"] = f"Re: {subject}"
            msg["In-Reply-To"] = parent_id
            msg["References"] = parent_id
            body = (f"เพิ่มเติมครับ/ค่ะ: เอกสารแนบตามที่ขอ เลขที่อ้างอิง {n}\n\n"
                    f"> ข้อความเดิม\n> {subject}\n")
        else:
            subject, body = rng.choice(SUBJECTS)
            subject = f"{subject} #{n}"
            sender = f"citizen{n % 350:03d}@example.co.th"
        name = NAMES[n % len(NAMES)]
        msg["From"] = f"{name} <{sender}>"
        msg["To"] = "help@onestop.go.th"
        msg["Date"] = format_datetime(start + timedelta(minutes=n))
        message_id = make_msgid(idstring=f"b{n}", domain="example.co.th")
        msg["Message-ID"] = message_id
        msg.set_content(body + f"\n{name}\nโทร 08{n % 10}-123-45{n % 100:02d}\n",
                        charset="utf-8", cte="base64")
        out.append(bytes(msg))
        sent.append((message_id, subject.removeprefix("Re: "), sender))
    return out


async def onestop_ingest(messages: list[bytes]) -> dict[str, Any]:
    def no_ack(text: str) -> str:
        return text.replace("acknowledge: true", "acknowledge: false")

    app = AppProcess(bot="off", edits={"email.yaml": no_ack})
    await app.start()
    latencies: list[float] = []
    failures: list[str] = []
    queue = list(enumerate(messages))
    try:
        cpu0 = cpu_seconds(app.pid)

        async def connection() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.smtp_port, timeout=60)
            await smtp.connect()
            try:
                while queue:
                    n, raw = queue.pop(0)
                    sender = f"citizen{n % 350:03d}@example.co.th"
                    t0 = time.perf_counter()
                    try:
                        await smtp.sendmail(sender, ["help@onestop.go.th"], raw)
                        latencies.append((time.perf_counter() - t0) * 1000)
                    except aiosmtplib.SMTPException as exc:
                        failures.append(type(exc).__name__)
            finally:
                await smtp.quit()

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(app.pid) - cpu0
        rss = rss_mb(app.pid)
    finally:
        app.stop()
    return {"path": "SMTP listener of the running app (parse → thread → store, 250 after "
                    "commit)",
            "messages": len(latencies), "failures": len(failures), "seconds": round(elapsed, 2),
            "messages_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(pct(latencies, 0.5), 1), "p99_ms": round(pct(latencies, 0.99), 1),
            "server_cpu_ms_per_message": round(1000 * cpu / max(1, len(latencies)), 2),
            "rss_mb": round(rss, 1)}


def ensure_helpdesk_venv(log: Callable[[str], None]) -> Path:
    """Create `.cache/bench/helpdesk-venv` from the pinned requirements (idempotent)."""
    python = HELPDESK_VENV / "bin" / "python"
    stamp = HELPDESK_VENV / ".requirements"
    wanted = HELPDESK_REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted and subprocess.run(
            [str(python), "-c", "import ssl, helpdesk"], capture_output=True, check=False,
            timeout=60).returncode == 0:
        return python
    log("  building .cache/bench/helpdesk-venv (django-helpdesk, pinned) …")
    shutil.rmtree(HELPDESK_VENV, ignore_errors=True)
    base_python = getattr(sys, "_base_executable", sys.executable)  # the interpreter of .venv
    subprocess.run([base_python, "-m", "venv", str(HELPDESK_VENV)], check=True, timeout=300)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                    str(HELPDESK_REQUIREMENTS)], check=True, timeout=600)
    stamp.write_text(wanted)
    return python


def helpdesk_ingest(messages: list[bytes], log: Callable[[str], None]) -> dict[str, Any]:
    python = ensure_helpdesk_venv(log)
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        maildir = Path(tmp) / "mail"
        maildir.mkdir()
        for n, raw in enumerate(messages):
            (maildir / f"{n:06d}.eml").write_bytes(raw)
        done = subprocess.run([str(python), str(ROOT / "bench" / "peers" / "helpdesk_ingest.py"),
                               tmp, str(maildir)], capture_output=True, text=True, timeout=900,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"helpdesk get_email failed: {done.stderr.strip()[-600:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    processed = result["files"] - result["left"]
    result["messages_per_s"] = round(processed / result["seconds"], 1)
    result["seconds"] = round(result["seconds"], 2)
    result["path"] = "manage.py get_email, queue email_box_type='local' (SQLite)"
    return dict(result)


async def run_email(count: int, log: Callable[[str], None]) -> dict[str, Any]:
    messages = generate(count)
    ours = await onestop_ingest(messages)
    try:
        peer = helpdesk_ingest(messages, log)
        ratio: float | None = round(ours["messages_per_s"] / peer["messages_per_s"], 2)
    except Exception as exc:  # the peer's failure is reported, not fatal
        peer, ratio = {"error": f"{type(exc).__name__}: {exc}"}, None
    result = {"messages": count, "onestop": ours, "django_helpdesk": peer, "ratio": ratio}
    log(f"  email: {json.dumps(result)[:500]}")
    return result
