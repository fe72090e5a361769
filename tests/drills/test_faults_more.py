"""More fault drills: the database slow (PostgreSQL tables locked by another connection;
SQLite busy for longer), and — so that they count in the drill report — the Slack API
answering 429/500 and Redis lost in cluster mode, drilled with the fixtures of the rooms'
own tests (tests/channels/slack, tests/routing/test_cluster.py), which stay the place
where those behaviours are specified."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from agent_console.api import CENTER_KEY
from channels.email.wiring import SMTP_SERVER
from channels.kiosk import KIOSK_KEY, signed_headers
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import ContactCenter, Message, create_database
from tests.channels.slack import test_consultation as slack_drills
from tests.channels.slack.conftest import Desk, desk, fake_slack  # noqa: F401 (fixtures)
from tests.conftest import CONFIG_DIR
from tests.drills.figures import FAULTS, FIGURES, LOST
from tests.drills.harness import ChatClient, citizen_email, identified_event, random_national_id
from tests.drills.harness import smtp_send as _smtp_send
from tests.routing import test_cluster as cluster_drills
from tests.routing.test_cluster import Cluster, cluster, redis  # noqa: F401 (fixtures)
from tests.support.app import app_settings, bearer, login
from tests.support.postgres import fresh_database
from tests.support.redis import RedisServer

Factory = Callable[..., Any]

# -- the database slow ---------------------------------------------------------------------

#: Tables every citizen input and every agent read below touches.
LOCKED = ("messages", "conversations", "cases", "tasks")


async def _app(aiohttp_client: Factory, tmp_path: Path, database_url: str) -> TestClient:
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    email = yaml.safe_load((config / "email.yaml").read_text())
    email["outbound"]["relay_port"] = 9  # acknowledgements go nowhere (not this drill)
    (config / "email.yaml").write_text(yaml.safe_dump(email, allow_unicode=True))
    client: TestClient = await aiohttp_client(build_app(app_settings(
        database_url, tmp_path, config_dir=config)))
    assert client.app is not None
    await seed_demo(client.app[CENTER_KEY])
    return client


async def _hold_postgres_locks(url: str, seconds: float, locked: asyncio.Event) -> None:
    """Another connection takes the busiest tables (ACCESS EXCLUSIVE: no reads either)
    and sits on them in a slow statement (`pg_sleep`)."""
    db = create_database(url)
    try:
        async with db.engine.connect() as conn, conn.begin():
            await conn.execute(text(f"LOCK TABLE {', '.join(LOCKED)} IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            await conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
    finally:
        await db.dispose()


def _hold_sqlite_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _timed(work: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await work
    return result, time.monotonic() - started


async def _slow_database_drill(client: TestClient, hold: float,
                               take_lock: Callable[[], Awaitable[Awaitable[None]]],
                               what: str) -> None:
    """While the database is held for `hold` seconds, a citizen writes by chat, kiosk and
    email and an agent and a supervisor use their screens. Every answer must come (no
    500, no 503 without Retry-After), within the hold plus a bound, and nothing
    acknowledged may be missing afterwards."""
    assert client.app is not None
    center: ContactCenter = client.app[CENTER_KEY]
    key = await client.app[KIOSK_KEY].store.register_device("slow-k1", "K", "L",
                                                            center.clock.now())
    chat = ChatClient(client.session, str(client.make_url("")).rstrip("/"))
    await chat.connect()
    agent = (await login(client, "somsri", "demo-agent-1"))["token"]
    supervisor = (await login(client, "supervisor", "demo-supervisor"))["token"]
    event_id = f"slow-{secrets.token_hex(4)}"
    mid = f"<slow-{secrets.token_hex(4)}@mail.example.th>"

    async def kiosk() -> int:
        body = json.dumps({"events": [identified_event(event_id, "visit-slow",
                                                       random_national_id())]}).encode()
        r = await client.post("/kiosk/v1/events", data=body, headers=signed_headers(
            key.device_id, key.secret, int(time.time()), body))
        return r.status

    async def email() -> str:
        assert client.app is not None
        await asyncio.to_thread(_smtp_send, client.app[SMTP_SERVER].port, citizen_email(mid),
                                "a@mail.example.th", 120)
        return "250"

    async def get(path: str, token: str) -> tuple[int, str | None]:
        r = await client.get(path, headers=bearer(token))
        await r.read()
        return r.status, r.headers.get("Retry-After")

    holder = await take_lock()  # everyone is signed in and connected: now the fault
    bound = hold + 30  # the lock's length, plus generous time on a loaded 2-core machine
    async with asyncio.timeout(bound):
        results = await asyncio.gather(
            _timed(chat.send("ข้อความระหว่างฐานข้อมูลช้า")), _timed(kiosk()), _timed(email()),
            _timed(get("/api/v1/desk", agent)), _timed(get("/api/v1/cases", supervisor)),
            _timed(get("/api/v1/queues", supervisor)))
        await holder
    (chat_id, t_chat), (kiosk_status, t_kiosk), (_mail, t_mail), (desk_r, t_desk), (
        cases_r, t_cases), (queues_r, t_queues) = results
    staff = {"agent's desk": desk_r, "supervisor's cases": cases_r,
             "supervisor's queues": queues_r}
    for name, (status, retry_after) in staff.items():
        assert status == 200 or (status == 503 and retry_after), (name, status)
    assert kiosk_status == 200 and chat_id is not None
    # The fault was real: the citizen's writes had to wait for the lock.
    assert max(t_chat, t_kiosk, t_mail) >= hold / 2, (t_chat, t_kiosk, t_mail)
    rows, _ = await center.list_rows(Message, Message.provider_message_id.in_(
        [mid, chat_id, f"slow-k1:{event_id}"]))
    lost = 3 - len(rows)
    FIGURES.add(FAULTS)
    FIGURES.add(LOST, max(lost, 0))
    assert lost == 0, [r.provider_message_id for r in rows]
    await chat.close()
    FIGURES.note("database slow", (
        f"{what}, {hold:.0f} s: the citizen's chat message was acknowledged after "
        f"{t_chat:.1f} s, the kiosk event (200) after {t_kiosk:.1f} s, the email (250) after "
        f"{t_mail:.1f} s; the agent's desk answered {desk_r[0]} after {t_desk:.1f} s, the "
        f"supervisor's cases {cases_r[0]} after {t_cases:.1f} s and queues {queues_r[0]} "
        f"after {t_queues:.1f} s (bound {bound:.0f} s). Nothing lost, no 500: they see a "
        "delay as long as the lock."))


@pytest.mark.postgres
async def test_postgres_tables_locked_by_another_connection_delay_but_lose_nothing(
    aiohttp_client: Factory, tmp_path: Path, postgres_admin_url: str
) -> None:
    url = await fresh_database(postgres_admin_url)
    client = await _app(aiohttp_client, tmp_path, url)
    hold = 4.0

    async def take_lock() -> Awaitable[None]:
        locked = asyncio.Event()
        holding = asyncio.create_task(_hold_postgres_locks(url, hold, locked))
        async with asyncio.timeout(30):
            await locked.wait()
        return holding

    await _slow_database_drill(client, hold, take_lock,
                               f"PostgreSQL: {', '.join(LOCKED)} locked (ACCESS EXCLUSIVE) "
                               "by another connection sitting in pg_sleep")


@pytest.mark.drill
async def test_sqlite_busy_for_many_seconds_delays_but_loses_nothing(
    aiohttp_client: Factory, tmp_path: Path
) -> None:
    """Longer than test_faults.py's 3 s: 12 s of an exclusive lock (busy_timeout is 30 s)."""
    client = await _app(aiohttp_client, tmp_path,
                        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    hold = 12.0

    async def take_lock() -> Awaitable[None]:
        locked = threading.Event()
        holding = asyncio.create_task(asyncio.to_thread(
            _hold_sqlite_lock, tmp_path / "db.sqlite", hold, locked))
        assert await asyncio.to_thread(locked.wait, 30)
        return holding

    await _slow_database_drill(client, hold, take_lock,
                               "SQLite: an exclusive lock held by another connection")


# -- the Slack API answering 429 and 500 (the Slack room's own drills) ---------------------


@pytest.mark.drill
async def test_slack_answering_429_is_retried_after_retry_after(desk: Desk) -> None:  # noqa: F811
    await slack_drills.test_a_rate_limited_post_is_retried_after_retry_after_and_arrives_once(
        desk)
    FIGURES.add(FAULTS)
    FIGURES.note("slack 429", "Slack answered chat.postMessage with 429 Retry-After 1: the "
                 "consultation was posted again after it, once; the agent saw it posted.")


@pytest.mark.drill
async def test_slack_answering_500_across_a_restart_loses_no_post(desk: Desk) -> None:  # noqa: F811
    await slack_drills.test_posts_survive_slack_errors_and_a_restart(desk)
    FIGURES.add(FAULTS)
    FIGURES.note("slack 500", "Slack answered 500 while the node went down: the post waited "
                 "in the outbox (in the database) and a restarted outbox sent it, once.")


# -- Redis lost in cluster mode (the routing room's own drill) -----------------------------


@pytest.mark.drill
@pytest.mark.postgres
async def test_redis_lost_in_cluster_mode_loses_nothing(cluster: Cluster,  # noqa: F811
                                                        redis: RedisServer) -> None:  # noqa: F811
    await cluster_drills.test_without_redis_nothing_is_lost_and_routing_resumes(cluster, redis)
    FIGURES.add(FAULTS)
    FIGURES.note("redis lost", (
        "Redis killed under a two-node cluster: the leader stopped routing, a follower's "
        "presence change was refused with a retryable error (503 Retry-After in the API), "
        "a citizen's chat message was still stored and its task waited in the database; "
        "Redis restarted: a node took the lead and offered the task. Nothing lost."))
