"""Two real app processes (`python -m onestop run`) on one real PostgreSQL and one real
Redis: 500 chats spread over both nodes, each assigned exactly once; the leader is killed
with SIGKILL mid-run; no acknowledged message is lost and the tasks it had offered are
offered again by the other node. Citizens and agents on different nodes see each other's
messages live."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.drills.figures import ACKED, FAULTS, FIGURES, INPUTS, KILLS, LOST
from tests.drills.harness import AppProcess, ChatClient, login
from tests.support.postgres import fresh_database
from tests.support.redis import RedisServer

# In `make test` (≈ 2–3 minutes on a 2-core machine) and in `make drill`'s report.
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHATS = int(os.environ.get("ONESTOP_TEST_CLUSTER_CHATS", "500"))
AGENTS = [("somsri", "demo-agent-1"), ("anan", "demo-agent-2"), ("malee", "demo-agent-3"),
          ("supervisor", "demo-supervisor")]
REPLY = "เจ้าหน้าที่ตอบ: "


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


class Floor:
    """What the run saw: acknowledged messages, replies seen live, accepts per task."""

    def __init__(self) -> None:
        self.acked: dict[str, str] = {}  # client id → the node's name
        # client id → (the citizen's node, the replying agent's node)
        self.live_replies: dict[str, tuple[str, str]] = {}
        self.accepted: dict[str, int] = {}
        self.errors: list[str] = []


async def _citizen(i: int, nodes: dict[str, AppProcess], floor: Floor,
                   sessions: list[aiohttp.ClientSession], alive: set[str]) -> None:
    """A widget: sends one message and retries it (same client id, so a redelivery is
    stored once) on a live node until it is acknowledged, as the real widget does; then
    waits for the officer's reply, resuming its conversation on the other node if its own
    dies meanwhile."""
    message_id = secrets.token_hex(8)
    name = "a" if i % 2 else "b"
    # One widget for all attempts: like the real one, it keeps its visitor key and resumes
    # its conversation on whichever node answers.
    chat = ChatClient(sessions[i % len(sessions)], nodes[name].base)
    for attempt in range(6):
        if name not in alive:
            name = next(iter(alive))
        chat.base = nodes[name].base
        try:
            await chat.connect()
            assert chat.ws is not None
            if message_id not in floor.acked:
                await chat.ws.send_json({"type": "message", "client_id": message_id,
                                         "text": f"แชตที่ {i} ขอคุยกับเจ้าหน้าที่"})
                while message_id not in floor.acked:
                    frame = await chat.frame_any(wait=20)
                    if frame["type"] == "ack" and frame.get("client_id") == message_id:
                        floor.acked[message_id] = name
            while True:  # the officer's reply, whichever node the officer works on
                for frame in chat.seen:
                    text = str(frame.get("text", ""))
                    if frame.get("author") == "agent" and text.startswith(REPLY):
                        floor.live_replies[message_id] = (name, text.rsplit("@", 1)[1])
                        return
                await chat.frame("message", wait=240)
        except (ConnectionError, aiohttp.ClientError, TimeoutError) as exc:
            if attempt == 5:
                floor.errors.append(f"chat {i} on node {name}: {exc!r} (attempt {attempt})")
                return
            await asyncio.sleep(1)
        finally:
            with contextlib.suppress(Exception):
                await chat.close()


async def _agent(username: str, password: str, home: str, nodes: dict[str, AppProcess],
                 alive: set[str], floor: Floor, stop: asyncio.Event) -> None:
    """An officer: glances at her desk, and works every chat on it at once (accept, reply,
    resolve), as the console lets her; on the other node when hers has died."""
    working: set[str] = set()
    done: set[str] = set()  # resolved: a stale desk read must not have it worked twice

    async def work(http: aiohttp.ClientSession, auth: dict[str, str], base: str, name: str,
                   task: dict[str, Any]) -> None:
        try:
            if task["status"] == "reserved":
                async with http.post(base + f"/api/v1/tasks/{task['id']}/accept",
                                     headers=auth) as r:
                    if r.status != 200:
                        return  # withdrawn meanwhile, or another node's restart
                floor.accepted[task["id"]] = floor.accepted.get(task["id"], 0) + 1
            async with http.post(
                    base + f"/api/v1/conversations/{task['conversation_id']}/messages",
                    headers=auth, json={"body": f"{REPLY}{task['id']}@{name}"}) as r:
                await r.read()
            async with http.post(base + f"/api/v1/tasks/{task['id']}/complete",
                                 headers=auth, json={"wrap_up": False}) as r:
                if r.status == 200:
                    done.add(task["id"])
        except (aiohttp.ClientError, TimeoutError):
            pass  # her node just died: the task is still on her desk on the other one
        finally:
            working.discard(task["id"])

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        me = await login(http, nodes[home].base, username, password)
        auth = {"Authorization": f"Bearer {me['token']}"}
        jobs: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            name = home if home in alive else next(iter(alive))
            base = nodes[name].base  # sessions live in the database: any node knows her
            try:
                async with http.get(base + "/api/v1/desk", headers=auth) as r:
                    desk = await r.json() if r.status == 200 else {"items": []}
                if desk.get("agent", {}).get("presence", "available") != "available":
                    # A missed offer (her node died holding it) may have set her away.
                    async with http.put(base + "/api/v1/agents/me/presence", headers=auth,
                                        json={"presence": "available"}) as put:
                        await put.read()
                for item in desk["items"]:
                    if item["task"]["id"] not in working | done:
                        working.add(item["task"]["id"])
                        job = asyncio.create_task(work(http, auth, base, name, item["task"]))
                        jobs.add(job)
                        job.add_done_callback(jobs.discard)
            except (aiohttp.ClientError, TimeoutError, KeyError):
                pass  # her node just died: the next round goes to the other
            # A person glancing at the desk, not a load generator (the console itself is
            # pushed its offers over a WebSocket).
            await asyncio.sleep(0.3)
        await asyncio.gather(*jobs, return_exceptions=True)


async def test_two_nodes_share_500_chats_and_survive_the_leader_being_killed(
        tmp_path: Path, postgres_admin_url: str, redis: RedisServer) -> None:
    db_url = await fresh_database(postgres_admin_url)
    prefix = "c" + secrets.token_hex(4)
    nodes = {name: AppProcess(tmp_path / name, env_extra={
        "ONESTOP_DATABASE_URL": db_url, "ONESTOP_REDIS_URL": redis.url,
        "ONESTOP_REDIS_PREFIX": prefix, "ONESTOP_NODE_NAME": f"node-{name}",
        "ONESTOP_SMTP_PORT": "-1", "ONESTOP_LOG_LEVEL": "WARNING"}) for name in ("a", "b")}
    await asyncio.to_thread(nodes["a"].prepare)  # demo staff, in the shared database
    nodes["b"].workdir.mkdir(parents=True)
    await nodes["a"].start()
    await nodes["b"].start()
    alive = {"a", "b"}
    floor, stop = Floor(), asyncio.Event()
    pg = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    # Citizens come from ten addresses (127.0.0.x), as they would from many homes.
    agents: list[asyncio.Task[None]] = []
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        local_addr=(f"127.0.0.{10 + k}", 0), limit=0)) for k in range(10)]
    try:
        roles = {}
        async with aiohttp.ClientSession() as http:
            for name, node in nodes.items():
                async with http.get(node.base + "/readyz") as r:
                    roles[name] = (await r.json())["node"]["role"]
        assert sorted(roles.values()) == ["follower", "leader"], roles
        leader = next(n for n, role in roles.items() if role == "leader")

        agents += [asyncio.create_task(_agent(u, p, "ab"[k % 2], nodes, alive, floor, stop))
                  for k, (u, p) in enumerate(AGENTS)]
        citizens: list[asyncio.Task[None]] = []
        for i in range(CHATS):
            citizens.append(asyncio.create_task(_citizen(i, nodes, floor, sessions, alive)))
            await asyncio.sleep(0.04)  # ~25 new chats a second, a busy hotline's peak
            if i == CHATS * 2 // 5:
                # Live across nodes first: a citizen got a reply typed on the other node.
                await _until(lambda: _crossed(floor), 90)
                # Mid-run, with offers out: the leader dies without a word.
                await _until(lambda: _count(pg, "SELECT count(*) FROM tasks "
                                                "WHERE status = 'reserved'"), 20)
                reserved_at_kill = {r["id"] for r in await pg.fetch(
                    "SELECT id FROM tasks WHERE status = 'reserved'")}
                alive.discard(leader)
                nodes[leader].kill()
                killed_at = await pg.fetchval("SELECT now()")
        try:
            async with asyncio.timeout(300):
                await asyncio.gather(*citizens)
        except TimeoutError:
            raise AssertionError(f"citizens still waiting: {await _floor_state(pg, floor)}") \
                from None

        # Everything acknowledged is stored exactly once...
        rows = await pg.fetch("SELECT provider_message_id, count(*) AS n FROM messages "
                              "WHERE provider_message_id = ANY($1::text[]) "
                              "GROUP BY provider_message_id", list(floor.acked))
        FIGURES.add(KILLS)
        FIGURES.add(FAULTS)
        FIGURES.add(INPUTS, CHATS)
        FIGURES.add(ACKED, len(floor.acked))
        FIGURES.add(LOST, len(floor.acked) - sum(1 for r in rows if r["n"] == 1))
        FIGURES.note("cluster", f"two nodes on PostgreSQL and Redis, {CHATS} chats; the leader "
                     f"(node {leader}) SIGKILLed with {len(reserved_at_kill)} offers out; "
                     f"{len(floor.acked)} acknowledged, {len(floor.live_replies)} answered live")
        assert not floor.errors, floor.errors[:5]
        assert len(floor.acked) == CHATS
        assert len(rows) == len(floor.acked) and all(r["n"] == 1 for r in rows)
        # ...and every conversation was answered by a person, its task accepted once.
        await _until(lambda: _count(pg, "SELECT count(*) FROM tasks WHERE status NOT IN "
                                        "('completed', 'canceled', 'abandoned')", want=0), 120)
        accepts = await pg.fetch("SELECT task_id, count(*) AS n FROM timeline_events "
                                 "WHERE kind = 'task_accepted' GROUP BY task_id")
        assert accepts and all(r["n"] == 1 for r in accepts), [
            r for r in accepts if r["n"] != 1][:5]
        conversations = await pg.fetchval("SELECT count(DISTINCT conversation_id) FROM tasks "
                                          "WHERE status = 'completed'")
        assert conversations == len(floor.acked) == len(accepts)

        # What the dead leader had offered was offered again, by the survivor, after it died.
        assert reserved_at_kill
        re_accepted = await pg.fetch(
            "SELECT task_id FROM timeline_events WHERE kind = 'task_accepted' "
            "AND task_id = ANY($1::text[]) AND at > $2", list(reserved_at_kill), killed_at)
        assert {r["task_id"] for r in re_accepted} == reserved_at_kill

        # Live across nodes: citizens on one node got replies typed on the other (waited
        # for before the kill).
        assert await _crossed(floor)
        # Open chats resume: citizens the dead node had acknowledged got their reply on
        # the survivor.
        survivor = next(iter(alive))
        resumed = [m for m, node in floor.acked.items()
                   if node == leader and floor.live_replies[m][0] == survivor]
        assert resumed
        async with aiohttp.ClientSession() as http, http.get(
                nodes[survivor].base + "/readyz") as r:
            assert (await r.json())["node"]["role"] == "leader"
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*agents, return_exceptions=True), 30)
        for session in sessions:
            await session.close()
        await pg.close()
        for node in nodes.values():
            node.stop()


async def _floor_state(pg: asyncpg.Connection, floor: Floor) -> dict[str, Any]:
    """What the floor looks like, for a failure message."""
    tasks = {r["status"]: r["n"] for r in await pg.fetch(
        "SELECT status, count(*) AS n FROM tasks GROUP BY status")}
    without = await pg.fetchval("SELECT count(*) FROM conversations c WHERE NOT EXISTS "
                                "(SELECT 1 FROM tasks t WHERE t.conversation_id = c.id)")
    agents = [tuple(r) for r in await pg.fetch("SELECT username, presence FROM agents")]
    return {"tasks": tasks, "conversations_without_task": without, "agents": agents,
            "acked": len(floor.acked), "answered": len(floor.live_replies),
            "errors": floor.errors[:5]}


async def _crossed(floor: Floor) -> bool:
    return any(citizen != agent for citizen, agent in floor.live_replies.values())


async def _count(pg: asyncpg.Connection, sql: str, want: int | None = None) -> bool:
    n = await pg.fetchval(sql)
    return bool(n) if want is None else n == want


async def _until(check: Any, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
