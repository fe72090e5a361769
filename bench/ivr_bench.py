"""IVR webhooks: signed `POST /ivr/voice` (a new call each) against a bare TwiML handler.

Both servers run in their own process; the same client (aiohttp, `CONCURRENCY` requests in
flight, closed loop) signs every request with twilio's `RequestValidator` against the
app's `ONESTOP_PUBLIC_URL` and `TWILIO_AUTH_TOKEN` (the bare handler ignores signatures).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from bench.common import AppProcess, ScriptProcess, cpu_seconds, pct, rss_mb

CONCURRENCY = 16
TOKEN = "bench-twilio-token-" + "0" * 13


async def hammer(url: str, sign_url: str, seconds: float) -> dict[str, Any]:
    validator = RequestValidator(TOKEN)
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        nonlocal failures
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            params = {"CallSid": f"CA{w:04d}{n:08d}{secrets.token_hex(10)}",
                      "AccountSid": "AC" + "1" * 32, "From": f"+6681{w:03d}{n % 10000:04d}",
                      "To": "+6621234567", "CallStatus": "ringing", "Direction": "inbound"}
            headers = {"X-Twilio-Signature": validator.compute_signature(sign_url, params)}
            t0 = time.perf_counter()
            async with session.post(url, data=params, headers=headers) as r:
                body = await r.read()
                ok = r.status == 200 and b"<Response" in body
            if ok:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                failures += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(worker(session, w) for w in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "failures": failures,
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(pct(latencies, 0.5), 2), "p99_ms": round(pct(latencies, 0.99), 2)}


async def run_ivr(seconds: float, log: Callable[[str], None], profile: Path | None = None
                  ) -> dict[str, Any]:
    bare = ScriptProcess("bare_server.py")
    await bare.start()
    try:
        await hammer(bare.url + "/twiml", bare.url + "/twiml", 1.0)  # warm-up
        base = await hammer(bare.url + "/twiml", bare.url + "/twiml", seconds)
    finally:
        bare.stop()
    app = AppProcess(bot="off", smtp=False, env={"TWILIO_AUTH_TOKEN": TOKEN}, profile=profile)
    await app.start()
    try:
        await hammer(app.url + "/ivr/voice", app.url + "/ivr/voice", 1.0)
        cpu0 = cpu_seconds(app.pid)
        ours = await hammer(app.url + "/ivr/voice", app.url + "/ivr/voice", seconds)
        ours["server_cpu_ms_per_request"] = round(
            1000 * (cpu_seconds(app.pid) - cpu0) / max(1, ours["requests"]), 2)
        ours["rss_mb"] = round(rss_mb(app.pid), 1)
    finally:
        app.stop()
    result = {"concurrency": CONCURRENCY, "seconds": seconds, "onestop": ours, "bare": base,
              "ratio": round(ours["requests_per_s"] / base["requests_per_s"], 3)}
    log(f"  ivr: {result}")
    return result
