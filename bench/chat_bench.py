"""Chat relay: citizen ↔ agent conversations through the whole stack, against a bare relay.

OneStop (its own process, `python -m onestop run`, bot off): each citizen opens `/chat/ws`
(resume, then messages); the conversation becomes a task; agents (one staff WebSocket
`/console/ws` each, holding up to `PER_AGENT` chats) accept their offers through
`POST /api/v1/tasks/{id}/accept`. A round trip is: the citizen sends `c<i>:<k>` → it is
stored, published on the bus and pushed to the agent's console socket → the agent answers
with `POST /api/v1/conversations/{id}/messages` → stored → pushed to the citizen's socket.

Baseline (its own process, `bench/peers/bare_server.py`): two sockets per conversation,
each text frame forwarded to the other; the same client, the same round trips.

Phases per level (N conversations, all sockets open):
* burst: every conversation does `K` round trips back to back (closed loop) — throughput.
  K stays within the widget's per-visitor burst (10 messages) so no rate limit is hit;
  citizens connect from many loopback addresses (127.0.x.y) so the per-address limit
  (60 then 5/s) is not hit either: as many distinct citizens would.
* paced: each conversation sends on average one message every `THINK` seconds (Poisson
  arrivals over all conversations) — latency at a realistic load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import AppProcess, PeakRss, ScriptProcess, cpu_seconds, pct, rss_mb

PER_AGENT = 20            # chats one agent holds at once (the agent's chat capacity)
CITIZENS_PER_ADDRESS = 5  # citizens sharing one loopback source address
THINK = 20.0              # paced phase: mean seconds between a citizen's messages
SETUP_IN_FLIGHT = 50      # conversations being set up at once (see open_citizen)
SETUP_SECONDS_PER_CONVERSATION = 0.5  # longest set-up wait, per conversation
WAIT = 60.0               # longest wait for one leg before it counts as lost
BURST_IN_FLIGHT = 1_000   # burst phase: conversations doing round trips at once (see burst)
#: Every HTTP request of the client (sign-in, presence, accept, replies) and every socket
#: handshake gives up after this long, with a message naming what timed out.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=30)
AGENT_PASSWORD = "bench-agent-password"


def source_address(i: int) -> str:
    n = i // CITIZENS_PER_ADDRESS
    return f"127.{1 + n // 62500 % 250}.{n // 250 % 250}.{1 + n % 250}"


class Waiters:
    """Futures keyed by (side, text): a reader resolves the one its frame answers."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str], asyncio.Future[float]] = {}

    def expect(self, side: str, text: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.pending[(side, text)] = fut
        return fut

    def arrived(self, side: str, text: str) -> None:
        fut = self.pending.pop((side, text), None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())


@dataclass
class Stack:
    """What the round-trip driver needs from either server."""

    citizen_send: Callable[[int, str, int], Awaitable[None]]
    agent_send: Callable[[int, str], Awaitable[None]]
    waiters: Waiters
    pid: int
    close: Callable[[], Awaitable[None]]
    notes: dict[str, Any] = field(default_factory=dict)
    #: the conversations set up (empty: all of them)
    ready: list[int] = field(default_factory=list)


async def _connect_many(n: int, opener: Callable[[int], Awaitable[None]],
                        parallel: int = 100) -> None:
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        async with gate:
            await opener(i)

    await asyncio.gather(*(one(i) for i in range(n)))


def _session(i: int, sessions: dict[str, aiohttp.ClientSession]) -> aiohttp.ClientSession:
    address = source_address(i)
    if address not in sessions:
        sessions[address] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            local_addr=(address, 0), limit=0), timeout=REQUEST_TIMEOUT)
    return sessions[address]


async def _reader(ws: aiohttp.ClientWebSocketResponse,
                  handle: Callable[[Any], Awaitable[None] | None]) -> None:
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            result = handle(msg.data)
            if result is not None:
                await result


# ----------------------------------------------------------------------------- bare relay


async def bare_stack(n: int, server: ScriptProcess) -> Stack:
    waiters = Waiters()
    sessions: dict[str, aiohttp.ClientSession] = {}
    agent_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    citizens: dict[int, aiohttp.ClientWebSocketResponse] = {}
    agents: dict[int, aiohttp.ClientWebSocketResponse] = {}
    readers: list[asyncio.Task[None]] = []

    async def open_pair(i: int) -> None:
        c = await _session(i, sessions).ws_connect(f"{server.url}/ws?pair={i}&role=citizen")
        a = await agent_session.ws_connect(f"{server.url}/ws?pair={i}&role=agent")
        citizens[i], agents[i] = c, a
        readers.append(asyncio.create_task(_reader(c, lambda t: waiters.arrived("citizen", t))))
        readers.append(asyncio.create_task(_reader(a, lambda t: waiters.arrived("agent", t))))

    await _connect_many(n, open_pair)

    async def citizen_send(i: int, text: str, k: int) -> None:
        await citizens[i].send_str(text)

    async def agent_send(i: int, text: str) -> None:
        await agents[i].send_str(text)

    async def close() -> None:
        for task in readers:
            task.cancel()
        for s in [*sessions.values(), agent_session]:
            await s.close()

    return Stack(citizen_send, agent_send, waiters, server.pid, close)


# ----------------------------------------------------------------------------- OneStop


async def seed_agents(app: AppProcess, count: int) -> list[str]:
    """Create `count` agents (chat capacity PER_AGENT) in the app's database, before start."""
    import routing

    db = routing.create_database(app.database_url)
    try:
        center = routing.ContactCenter(db, routing.load_settings(app.tmp / "config"))
        password_hash = routing.hash_password(AGENT_PASSWORD)
        names = []
        for a in range(count):
            name = f"bench{a:04d}"
            await center.upsert_agent(
                username=name, display_name=f"Bench agent {a}", password_hash=password_hash,
                roles=["agent"], skills={"general": 5}, languages=["th", "en"],
                capacity={"chat": PER_AGENT, "email": 5, "voice": 1})
            names.append(name)
        return names
    finally:
        await db.dispose()


async def onestop_stack(n: int, app: AppProcess, usernames: list[str]) -> Stack:
    waiters = Waiters()
    sessions: dict[str, aiohttp.ClientSession] = {}
    # The API calls share a pool of 200 connections; the agents' console sockets have a
    # session of their own. (They used to share the pool: an open WebSocket holds its
    # connection, so at 5,000 conversations the 250 agents' sockets took all 200 and the
    # 201st socket — and every API call after it — waited for a free connection until
    # aiohttp's default 5-minute total timeout raised a bare TimeoutError in set-up.)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200),
                                 timeout=REQUEST_TIMEOUT)
    sockets = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                    timeout=REQUEST_TIMEOUT)
    readers: list[asyncio.Task[None]] = []
    tokens: dict[str, str] = {}
    conversation_of: dict[int, tuple[str, str]] = {}  # citizen → (conversation id, token)
    assigned: dict[int, asyncio.Event] = {i: asyncio.Event() for i in range(n)}
    citizens: dict[int, aiohttp.ClientWebSocketResponse] = {}
    mapped = asyncio.Event()
    errors: list[str] = []
    api = f"{app.url}/api/v1"

    async def login(a: int) -> None:
        async with http.post(f"{api}/auth/login", json={
                "username": usernames[a], "password": AGENT_PASSWORD}) as r:
            r.raise_for_status()
            tokens[usernames[a]] = (await r.json())["token"]

    await _connect_many(len(usernames), login, parallel=4)

    async def accept(token: str, task_id: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        try:
            async with http.post(f"{api}/tasks/{task_id}/accept", headers=auth) as r:
                if r.status != 200:
                    errors.append(f"accept {r.status}")
                    return
                conversation_id = (await r.json())["conversation_id"]
            async with http.get(f"{api}/conversations/{conversation_id}", headers=auth) as r:
                body = await r.json()
        except (TimeoutError, aiohttp.ClientError) as exc:
            errors.append(f"accept {type(exc).__name__}")
            return
        for m in body.get("messages", []):
            text = str(m.get("body") or "")
            if text.startswith("c") and text.endswith(":0"):
                conversation_of[int(text[1:-2])] = (conversation_id, token)
                assigned[int(text[1:-2])].set()
        if len(conversation_of) >= n:
            mapped.set()

    pending: set[asyncio.Task[None]] = set()

    def agent_frame(token: str) -> Callable[[str], None]:
        def handle(data: str) -> None:
            frame = json.loads(data)
            if frame.get("type") == "offer":
                task = asyncio.create_task(accept(token, frame["task_id"]))
                pending.add(task)
                task.add_done_callback(pending.discard)
            elif frame.get("type") == "message" and frame.get("author") == "citizen":
                waiters.arrived("agent", str(frame.get("body")))
        return handle

    async def open_agent(a: int) -> None:
        token = tokens[usernames[a]]
        ws = await sockets.ws_connect(f"{app.url}/console/ws",
                                      headers={"Cookie": f"onestop_session={token}"})
        readers.append(asyncio.create_task(_reader(ws, agent_frame(token))))
        async with http.put(f"{api}/agents/me/presence", json={"presence": "available"},
                            headers={"Authorization": f"Bearer {token}"}) as r:
            r.raise_for_status()

    await _connect_many(len(usernames), open_agent, parallel=20)

    def citizen_frame(ready: asyncio.Future[None]) -> Callable[[str], None]:
        def handle(data: str) -> None:
            frame = json.loads(data)
            kind = frame.get("type")
            if kind == "message" and frame.get("author") == "agent":
                waiters.arrived("citizen", str(frame.get("text")))
            elif kind == "ready" and not ready.done():
                ready.set_result(None)
            elif kind == "error":
                errors.append(str(frame.get("code")))
        return handle

    async def open_citizen(i: int) -> None:
        try:
            ws = await _session(i, sessions).ws_connect(f"{app.url}/chat/ws")
        except (TimeoutError, aiohttp.ClientError) as exc:
            errors.append(f"citizen socket {type(exc).__name__}")  # lost, the others go on
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        readers.append(asyncio.create_task(_reader(ws, citizen_frame(ready))))
        await ws.send_json({"type": "resume", "visitor": f"v{i:06d}{secrets.token_hex(10)}",
                            "conversation": None, "after_seq": 0, "language": "th"})
        try:
            await asyncio.wait_for(ready, WAIT)
        except TimeoutError:
            # An overloaded server: this citizen is lost, the others carry on (one slow
            # socket used to abort the whole level).
            errors.append("ready timeout")
            return
        citizens[i] = ws
        await ws.send_json({"type": "message", "client_id": f"first-{i:06d}", "text": f"c{i}:0"})
        # Set-up is paced by the server: a slot is freed once this conversation is assigned,
        # so no more than SETUP_IN_FLIGHT offers wait at once (an offer not accepted within
        # the reservation timeout sets the agent away, which would stall the run).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(assigned[i].wait(), WAIT)

    await _connect_many(n, open_citizen, parallel=SETUP_IN_FLIGHT)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(mapped.wait(), max(120.0, n * SETUP_SECONDS_PER_CONVERSATION))

    async def citizen_send(i: int, text: str, k: int) -> None:
        await citizens[i].send_json({"type": "message", "client_id": f"msg-{i:06d}-{k:04d}",
                                     "text": text})

    async def agent_send(i: int, text: str) -> None:
        conversation_id, token = conversation_of[i]
        async with http.post(f"{api}/conversations/{conversation_id}/messages",
                             json={"body": text},
                             headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status != 201:
                errors.append(f"reply {r.status}")

    async def close() -> None:
        for task in readers:
            task.cancel()
        for s in [*sessions.values(), http, sockets]:
            await s.close()

    stack = Stack(citizen_send, agent_send, waiters, app.pid, close)
    stack.notes = {"agents": len(usernames), "conversations_assigned": len(conversation_of),
                   "errors": errors}
    stack.ready = sorted(conversation_of)
    return stack


# ----------------------------------------------------------------------------- driver


async def round_trip(stack: Stack, i: int, k: int, inbound: list[float],
                     rtt: list[float]) -> bool:
    text, reply = f"c{i}:{k}", f"r{i}:{k}"
    got_agent = stack.waiters.expect("agent", text)
    got_citizen = stack.waiters.expect("citizen", reply)
    t0 = time.perf_counter()
    try:
        await stack.citizen_send(i, text, k)
        t1 = await asyncio.wait_for(got_agent, WAIT)
        await stack.agent_send(i, reply)
        t2 = await asyncio.wait_for(got_citizen, WAIT)
    except (TimeoutError, aiohttp.ClientError, ConnectionError, KeyError):
        stack.waiters.pending.pop(("agent", text), None)
        stack.waiters.pending.pop(("citizen", reply), None)
        return False
    inbound.append((t1 - t0) * 1000)
    rtt.append((t2 - t0) * 1000)
    return True


async def burst(stack: Stack, n: int, rounds: int) -> dict[str, Any]:
    """Closed loop: each conversation does `rounds` round trips back to back, at most
    BURST_IN_FLIGHT conversations at once (all of them up to 1,000; at 5,000 the others
    wait their turn, so a slow server's queue does not time the round trips out)."""
    inbound: list[float] = []
    rtt: list[float] = []
    lost = 0
    gate = asyncio.Semaphore(BURST_IN_FLIGHT)

    async def conversation(i: int) -> None:
        nonlocal lost
        async with gate:
            for k in range(1, rounds + 1):
                if not await round_trip(stack, i, k, inbound, rtt):
                    lost += 1
                    return

    started = time.perf_counter()
    await asyncio.gather(*(conversation(i) for i in stack.ready or range(n)))
    elapsed = time.perf_counter() - started
    return {"round_trips": len(rtt), "lost": lost, "seconds": round(elapsed, 2),
            "messages_per_s": round(2 * len(rtt) / elapsed, 1),
            "rtt_p50_ms": round(pct(rtt, 0.5), 1), "rtt_p99_ms": round(pct(rtt, 0.99), 1),
            "inbound_p50_ms": round(pct(inbound, 0.5), 1),
            "inbound_p99_ms": round(pct(inbound, 0.99), 1)}


async def paced(stack: Stack, n: int, seconds: float, first_k: int, seed: int = 5
                ) -> dict[str, Any]:
    """Poisson arrivals at n / THINK round trips per second, for `seconds`."""
    rng = random.Random(seed)
    ready = stack.ready or list(range(n))
    rate = len(ready) / THINK
    inbound: list[float] = []
    rtt: list[float] = []
    busy: set[int] = set()
    tasks: list[asyncio.Task[bool]] = []
    k = first_k
    started = time.perf_counter()
    next_at = started
    while True:
        next_at += rng.expovariate(rate)
        if next_at - started > seconds:
            break
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        i = rng.choice(ready)
        if i in busy:
            continue
        busy.add(i)
        k += 1
        task = asyncio.create_task(round_trip(stack, i, k, inbound, rtt))
        task.add_done_callback(lambda _t, i=i: busy.discard(i))
        tasks.append(task)
    done = await asyncio.gather(*tasks)
    return {"offered_round_trips_per_s": round(rate, 1), "round_trips": len(rtt),
            "lost": done.count(False),
            "rtt_p50_ms": round(pct(rtt, 0.5), 1), "rtt_p99_ms": round(pct(rtt, 0.99), 1),
            "inbound_p50_ms": round(pct(inbound, 0.5), 1),
            "inbound_p99_ms": round(pct(inbound, 0.99), 1)}


def rounds_for(n: int) -> int:
    """Round trips per conversation in the burst phase (≤ 8: the per-visitor burst)."""
    return max(1, min(8, 800 // n))


async def measure(kind: str, n: int, paced_seconds: float, profile: Path | None = None
                  ) -> dict[str, Any]:
    """One server, one level: set up N conversations, burst, paced; memory and CPU."""
    server: AppProcess | ScriptProcess
    if kind == "onestop":
        server = AppProcess(bot="off", smtp=False, profile=profile)
        server.migrate()
        usernames = await seed_agents(server, math.ceil(n / PER_AGENT))
    else:
        server = ScriptProcess("bare_server.py")
    try:
        await server.start()
        await asyncio.sleep(1.0)
        idle = rss_mb(server.pid)
        setup_started = time.perf_counter()
        stack = (await onestop_stack(n, server, usernames) if isinstance(server, AppProcess)
                 else await bare_stack(n, server))
        setup_s = time.perf_counter() - setup_started
        try:
            connected = rss_mb(server.pid)
            rounds = rounds_for(n)
            cpu0 = cpu_seconds(server.pid)
            with PeakRss(server.pid) as peak:
                b = await burst(stack, n, rounds)
                server_cpu = cpu_seconds(server.pid) - cpu0
                p = await paced(stack, n, paced_seconds, rounds)
            errors = stack.notes.pop("errors", [])
            return {"server": kind, "connections": n, "setup_s": round(setup_s, 1),
                    "rss_idle_mb": round(idle, 1), "rss_connected_mb": round(connected, 1),
                    "rss_peak_mb": round(peak.peak, 1),
                    "kb_per_connection": round((connected - idle) * 1024 / n, 1),
                    "burst_rounds": rounds, "burst": b, "paced": p,
                    "server_cpu_s_burst": round(server_cpu, 1),
                    "server_cpu_per_message_ms": round(
                        1000 * server_cpu / max(1, 2 * b["round_trips"]), 2),
                    "errors": {e: errors.count(e) for e in set(errors)}, **stack.notes}
        finally:
            await stack.close()
    finally:
        server.stop()
