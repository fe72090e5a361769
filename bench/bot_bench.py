"""Bot turn: a chat turn through the app and the Rasa server, against the bare parse call.

The Rasa server is started by `bot.manager.RasaManager` as tests/bot/conftest.py does (the
model is cached under .cache/rasa-models); the app runs in its own process with
`ONESTOP_RASA_URL` pointing at it. A turn is timed from the citizen's `message` frame on
`/chat/ws` to the first bot (or system) message pushed back on the socket. The baseline
is `POST /model/parse` on the same server (NLU only, no dialogue, no app), then
`RasaClient.send` (the two calls the app makes per turn) from this process.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import ROOT, AppProcess, free_port, pct, rss_mb

QUESTIONS = ["คัดสำเนาทะเบียนบ้านต้องใช้อะไรบ้าง", "สวัสดีครับ", "ทำบัตรประชาชนใหม่ที่ไหน",
             "How do I renew my ID card?", "เบี้ยยังชีพผู้สูงอายุสมัครยังไง", "ขอบคุณค่ะ",
             "What documents do I need for house registration?", "ภาษีป้ายจ่ายออนไลน์ได้ไหม"]


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its descendants."""
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        value = rss_mb(p)
        total += 0 if value != value else value
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            stack.extend(int(c) for c in task.read_text().split())
    return total


async def run_bot(turns: int, log: Callable[[str], None]) -> dict[str, Any]:
    if not (ROOT / "bot" / ".venv" / "bin" / "rasa").exists():
        log("  bot: skipped — bot/.venv is missing (bot/scripts/ensure-venv.sh builds it)")
        return {"skipped": "bot/.venv missing"}
    from bot.client import RasaClient
    from bot.manager import RasaManager

    app_port = free_port()
    manager = RasaManager(port=free_port(), action_port=app_port)
    started = time.perf_counter()
    await manager.train_if_needed()
    await manager.start()
    start_s = time.perf_counter() - started
    try:
        assert manager._process is not None
        rasa_pid = manager._process.pid
        rasa_idle = tree_rss_mb(rasa_pid)
        parse: list[float] = []
        send: list[float] = []
        async with aiohttp.ClientSession() as http:
            url = f"{manager.base_url}/model/parse?token={manager.api_token}"
            for n in range(turns):
                t0 = time.perf_counter()
                async with http.post(url, json={"text": QUESTIONS[n % len(QUESTIONS)]}) as r:
                    await r.read()
                parse.append((time.perf_counter() - t0) * 1000)
        async with RasaClient(manager.base_url, token=manager.api_token) as client:
            for n in range(turns):
                t0 = time.perf_counter()
                await client.send(f"bench-{n // 6}", QUESTIONS[n % len(QUESTIONS)])
                send.append((time.perf_counter() - t0) * 1000)
        app = AppProcess(bot="off", smtp=False, env={
            "ONESTOP_RASA_URL": manager.base_url, "ONESTOP_RASA_TOKEN": manager.api_token})
        app.port, app.url = app_port, f"http://127.0.0.1:{app_port}"
        app.env["ONESTOP_HTTP_PORT"] = str(app_port)
        app.env["ONESTOP_PUBLIC_URL"] = app.url
        await app.start()
        try:
            through_app, failures = await _chat_turns(app.url, turns)
            app_rss = rss_mb(app.pid)
        finally:
            app.stop()
        rasa_loaded = tree_rss_mb(rasa_pid)
    finally:
        await manager.stop()
    result = {
        "server_start_s": round(start_s, 1),
        "parse_p50_ms": round(pct(parse, 0.5), 1), "parse_p95_ms": round(pct(parse, 0.95), 1),
        "client_send_p50_ms": round(pct(send, 0.5), 1),
        "client_send_p95_ms": round(pct(send, 0.95), 1),
        "chat_turn_p50_ms": round(pct(through_app, 0.5), 1),
        "chat_turn_p95_ms": round(pct(through_app, 0.95), 1),
        "chat_turns": len(through_app), "chat_turn_failures": failures,
        "ratio_turn_to_parse_p50": round(pct(through_app, 0.5) / pct(parse, 0.5), 2),
        "rasa_rss_idle_mb": round(rasa_idle, 1), "rasa_rss_after_mb": round(rasa_loaded, 1),
        "app_rss_with_bot_mb": round(app_rss, 1),
    }
    log(f"  bot: {json.dumps(result)}")
    return result


async def _chat_turns(url: str, turns: int) -> tuple[list[float], int]:
    """Sequential turns; a new visitor (and source address) every 6 turns (rate limits)."""
    timings: list[float] = []
    failures = 0
    for v in range((turns + 5) // 6):
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.9.{v + 1}", 0))
        async with aiohttp.ClientSession(connector=connector) as http, \
                http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "resume", "visitor": f"botbench{secrets.token_hex(8)}",
                                "conversation": None, "after_seq": 0, "language": "th"})
            await _next(ws, lambda f: f.get("type") == "ready")
            for k in range(min(6, turns - 6 * v)):
                await ws.send_json({"type": "message", "client_id": f"bot-{v}-{k}-bench",
                                    "text": QUESTIONS[(6 * v + k) % len(QUESTIONS)]})
                t0 = time.perf_counter()
                try:
                    await _next(ws, lambda f: f.get("type") == "message"
                                and f.get("author") in ("bot", "system"))
                    timings.append((time.perf_counter() - t0) * 1000)
                except TimeoutError:
                    failures += 1
    return timings, failures


async def _next(ws: aiohttp.ClientWebSocketResponse, want: Callable[[dict[str, Any]], bool],
                limit: float = 30.0) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            frame = dict(json.loads(await ws.receive_str()))
            if want(frame):
                return frame

    return await asyncio.wait_for(read(), limit)
