"""Prometheus metrics reflect what the service desk is doing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_console.api import CENTER_KEY
from onestop.app import build_app
from routing import Channel, IdentityHint, IdentityKind, InboundMessage
from tests.support.app import app_settings


async def test_metrics_show_queues_events_and_request_latency(
    aiohttp_client: Callable[..., Any], tmp_path: Path,
) -> None:
    app = build_app(app_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path))
    client = await aiohttp_client(app)
    center = app[CENTER_KEY]
    await center.ingest(InboundMessage(
        Channel.EMAIL, "t-metrics", "m-metrics", "ขอคืนภาษี",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "m@mail.example.th"),),
        queue_hint="tax_fines"))
    await asyncio.sleep(0.3)  # the task is created in the background
    await client.get("/healthz")
    text = await (await client.get("/metrics")).text()
    assert 'onestop_queue_waiting{channel="email",queue="tax_fines"} 1.0' in text
    assert 'onestop_events_total{type="MessageStored"}' in text
    assert 'onestop_http_request_seconds_count{route="/healthz"} 1.0' in text
    assert 'onestop_open_sockets{kind="chat"} 0.0' in text
    assert "ขอคืนภาษี" not in text and "m@mail.example.th" not in text
