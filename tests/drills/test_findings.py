"""Bugs the drills found in rooms this work may not change (routing/, onestop/): each is a
regression test now that the fix is in (see docs/security.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from channels.email.wiring import SMTP_SERVER
from onestop.app import build_app
from routing import Message
from tests.drills.harness import citizen_email, smtp_send
from tests.support.app import app_settings


async def test_every_email_in_a_thread_keeps_its_raw_bytes_and_flags(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> None:
    app = build_app(app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path))
    client: TestClient = await aiohttp_client(app)
    port = app[SMTP_SERVER].port
    await asyncio.to_thread(smtp_send, port, citizen_email("<t1@mail.example.th>"))
    reply = citizen_email("<t2@mail.example.th>", "ตอบกลับค่ะ")
    reply["In-Reply-To"] = "<t1@mail.example.th>"
    reply["References"] = "<t1@mail.example.th>"
    await asyncio.to_thread(smtp_send, port, reply)
    rows, _ = await client.app[CENTER_KEY].list_rows(
        Message, Message.provider_message_id == "<t2@mail.example.th>")
    [second] = rows
    assert (second.extra or {}).get("raw_ref"), second.extra
