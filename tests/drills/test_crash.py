"""Crash drill: the server process is SIGKILLed under mixed load (chat, SMTP, kiosk, IVR)
and restarted. Every acknowledged input is stored exactly once, reserved tasks are offered
again, and an open chat resumes with exactly the messages it missed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.drills.figures import ACKED, FIGURES, INPUTS, KILLS, LOST
from tests.drills.harness import (
    KIOSK_ID,
    AppProcess,
    ChatClient,
    call_params,
    citizen_email,
    identified_event,
    ivr_post,
    kiosk_post,
    login,
    random_national_id,
    smtp_send,
)

_n = itertools.count(1)


@dataclass
class Acked:
    """What the app acknowledged, by the provider id it is stored under."""

    chat: set[str] = field(default_factory=set)
    email: set[str] = field(default_factory=set)
    kiosk: set[str] = field(default_factory=set)
    ivr: set[str] = field(default_factory=set)
    tried: int = 0
    server_errors: int = 0

    def total(self) -> int:
        return len(self.chat) + len(self.email) + len(self.kiosk) + len(self.ivr)


async def _chat_worker(http: aiohttp.ClientSession, app: AppProcess, acked: Acked,
                       stop: asyncio.Event, keep: list[ChatClient]) -> None:
    client = ChatClient(http, app.base)
    keep.append(client)
    with contextlib.suppress(Exception):
        await client.connect()
        while not stop.is_set():
            acked.tried += 1
            client_id = await client.send(f"drill chat message {next(_n)}")
            if client_id:
                acked.chat.add(client_id)


async def _email_worker(app: AppProcess, acked: Acked, stop: asyncio.Event) -> None:
    while not stop.is_set():
        message_id = f"<drill-{secrets.token_hex(6)}@mail.example.th>"
        acked.tried += 1
        try:
            await asyncio.to_thread(smtp_send, app.smtp_port, citizen_email(message_id),
                                    "a@mail.example.th", 5)
        except Exception:  # refused, reset or timed out: not acknowledged
            await asyncio.sleep(0.2)
            continue
        acked.email.add(message_id)


async def _kiosk_worker(http: aiohttp.ClientSession, app: AppProcess, acked: Acked,
                        stop: asyncio.Event) -> None:
    while not stop.is_set():
        events = [identified_event(f"ev-{secrets.token_hex(6)}", f"v-{secrets.token_hex(4)}",
                                   random_national_id()) for _ in range(2)]
        acked.tried += len(events)
        try:
            r = await kiosk_post(http, app.base, app.kiosk_secret, {"events": events})
            body = await r.json()
        except Exception:
            await asyncio.sleep(0.2)
            continue
        if r.status >= 500:
            acked.server_errors += 1
        if r.status == 200:
            for event, result in zip(events, body["results"], strict=True):
                if result["status"] in ("accepted", "duplicate"):
                    acked.kiosk.add(f"{KIOSK_ID}:{event['id']}")


async def _ivr_worker(http: aiohttp.ClientSession, app: AppProcess, acked: Acked,
                      stop: asyncio.Event) -> None:
    while not stop.is_set():
        sid = "CA" + secrets.token_hex(16)
        acked.tried += 1
        try:
            r = await ivr_post(http, app.base, "/ivr/voice", call_params(sid))
        except Exception:
            await asyncio.sleep(0.2)
            continue
        if r.status >= 500:
            acked.server_errors += 1
        if r.status == 200:
            acked.ivr.add(f"{sid}:start")


def _stored(app: AppProcess, channel: str) -> dict[str, int]:
    rows = app.query("SELECT provider_message_id, count(*) FROM messages WHERE channel = ? "
                     "AND direction = 'inbound' AND provider_message_id IS NOT NULL "
                     "GROUP BY provider_message_id", channel)
    return {str(pid): int(n) for pid, n in rows}


def _check_exactly_once(app: AppProcess, acked: Acked) -> list[str]:
    problems: list[str] = []
    for channel, ids in (("chat", acked.chat), ("email", acked.email), ("kiosk", acked.kiosk),
                         ("voice", acked.ivr)):
        stored = _stored(app, channel)
        problems += [f"{channel} {i}: acknowledged, not stored" for i in ids if i not in stored]
        problems += [f"{channel} {i}: stored {n} times" for i, n in stored.items() if n != 1]
    return problems


async def _run_crash_drill(tmp_path: Path, *, cycles: int, load_seconds: float,
                           chats: int, emails: int, kiosks: int, calls: int) -> None:
    app = AppProcess(tmp_path / "node")
    await asyncio.to_thread(app.prepare)
    await app.start()
    acked = Acked()
    timeout = aiohttp.ClientTimeout(total=20)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            somsri = await login(http, app.base, "somsri", "demo-agent-1")
            for _cycle in range(cycles):
                auth = {"Authorization": f"Bearer {somsri['token']}"}
                async with http.put(app.base + "/api/v1/agents/me/presence", headers=auth,
                                    json={"presence": "available"}) as r:
                    assert r.status == 200, await r.text()
                stop = asyncio.Event()
                clients: list[ChatClient] = []
                workers = (
                    [_chat_worker(http, app, acked, stop, clients) for _ in range(chats)]
                    + [_email_worker(app, acked, stop) for _ in range(emails)]
                    + [_kiosk_worker(http, app, acked, stop) for _ in range(kiosks)]
                    + [_ivr_worker(http, app, acked, stop) for _ in range(calls)])
                running = [asyncio.create_task(w) for w in workers]
                await asyncio.sleep(load_seconds)
                app.kill()  # mid-flight: workers are sending right now
                FIGURES.add(KILLS)
                stop.set()
                await asyncio.wait(running, timeout=30)
                for task in running:
                    task.cancel()
                reserved = {r[0] for r in app.query(
                    "SELECT id FROM tasks WHERE status = 'reserved' AND agent_id = ?",
                    somsri["me"]["agent_id"])}
                if _cycle == 0:
                    assert reserved, "the drill should kill the server while tasks are offered"
                FIGURES.add("reserved tasks at the kill", len(reserved))
                chat = next((c for c in clients if c.conversation and c.acked), None)
                for c in clients:
                    with contextlib.suppress(Exception):
                        await c.close()
                await app.start()

                # 1. Every acknowledged input is stored exactly once.
                problems = _check_exactly_once(app, acked)
                FIGURES.add(LOST, len(problems))
                assert not problems, problems[:10]

                # 2. Tasks that were reserved are offered again. Older tasks may come first
                # (each returns to its place in the queue), so she accepts and finishes
                # whatever is offered until every one of them has been offered to her.
                somsri = await login(http, app.base, "somsri", "demo-agent-1")
                auth = {"Authorization": f"Bearer {somsri['token']}"}
                offered: set[str] = set()
                for _ in range(300):
                    async with http.get(app.base + "/api/v1/desk", headers=auth) as r:
                        desk = await r.json()
                    now_offered = {i["task"]["id"] for i in desk["items"]
                                   if i["task"]["status"] in ("reserved", "assigned")}
                    offered |= now_offered
                    for task_id in sorted(now_offered):
                        async with http.post(app.base + f"/api/v1/tasks/{task_id}/accept",
                                             headers=auth) as r:
                            assert r.status in (200, 409), await r.text()
                        async with http.post(app.base + f"/api/v1/tasks/{task_id}/complete",
                                             headers=auth, json={"wrap_up": False}) as r:
                            assert r.status == 200, await r.text()
                    if reserved <= offered:
                        break
                    await asyncio.sleep(0.1 if now_offered else 0.3)
                assert reserved <= offered, f"not offered again: {reserved - offered}"

                # 3. The open chat resumes: exactly the messages it missed, once each.
                assert chat is not None, "no chat had a message acknowledged before the kill"
                await _check_resume(http, app, chat)
            FIGURES.note("crash", f"{cycles} SIGKILL(s) under load; {acked.tried} inputs "
                         f"tried, {acked.total()} acknowledged (chat {len(acked.chat)}, email "
                         f"{len(acked.email)}, kiosk {len(acked.kiosk)}, IVR {len(acked.ivr)}); "
                         "each stored exactly once after restart; reserved tasks offered "
                         "again; the open chat resumed with exactly its missed messages.")
            FIGURES.add(INPUTS, acked.tried)
            FIGURES.add(ACKED, acked.total())
            assert acked.server_errors == 0
            assert acked.chat and acked.email and acked.kiosk and acked.ivr, acked
    finally:
        app.stop()


async def _check_resume(http: aiohttp.ClientSession, app: AppProcess, chat: ChatClient
                        ) -> None:
    seen_before = chat.last_seq
    conv_id = app.query("SELECT conversation_id FROM messages WHERE provider_message_id = ?",
                        next(iter(chat.acked)))[0][0]
    supervisor = await login(http, app.base, "supervisor", "demo-supervisor")
    async with http.post(app.base + f"/api/v1/conversations/{conv_id}/messages",
                         headers={"Authorization": f"Bearer {supervisor['token']}"},
                         json={"body": "drill: reply while you were away"}) as r:
        assert r.status == 201, await r.text()
    chat.seen.clear()
    ready = await chat.connect(after_seq=seen_before)
    assert ready["conversation"] == chat.conversation and not ready.get("reset")
    await chat.drain(quiet=1.5)
    await chat.close()
    expected = [r[0] for r in app.query(
        "SELECT seq FROM messages WHERE conversation_id = ? AND internal = 0 AND seq > ? "
        "ORDER BY seq", conv_id, seen_before)]
    got = [int(m["seq"]) for m in chat.seen]
    assert got == expected, (got, expected)
    assert any(m["text"] == "drill: reply while you were away" for m in chat.seen)


async def test_sigkill_under_mixed_load_loses_nothing(tmp_path: Path) -> None:
    await _run_crash_drill(tmp_path, cycles=1, load_seconds=4, chats=2, emails=1, kiosks=1,
                           calls=1)


@pytest.mark.drill
async def test_repeated_sigkills_under_heavier_load_lose_nothing(tmp_path: Path) -> None:
    await _run_crash_drill(tmp_path, cycles=3, load_seconds=8, chats=4, emails=3, kiosks=2,
                           calls=2)


# Redis lost in cluster mode is drilled in tests/routing/test_cluster.py
# (test_without_redis_nothing_is_lost_and_routing_resumes: Redis killed and restarted); a
# node of a two-process cluster killed under load in tests/drills/test_cluster_nodes.py.
