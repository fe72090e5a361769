"""Readiness (`/readyz`) reflects the database, Redis (in a cluster) and the bot: a load
balancer stops sending work to a node whose database or Redis is gone, and sends it again
once they are back; the bot's state is shown but never takes a node out (chats then go to
people)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from onestop.app import build_app
from routing.storage.database import create_database
from tests.support.app import app_settings
from tests.support.postgres import fresh_database
from tests.support.redis import redis_server


async def _ready(client: Any) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status, dict(await response.json())


async def test_a_schema_behind_the_code_makes_the_node_not_ready(
        aiohttp_client: Callable[..., Any], tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    client = await aiohttp_client(build_app(app_settings(url, tmp_path)))
    assert await _ready(client) == (200, {"status": "ready", "checks": {"database": "ok"}})
    db = create_database(url)
    async with db.engine.begin() as conn:
        head = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    await db.dispose()
    status, body = await _ready(client)
    assert status == 503 and body["status"] == "not ready"
    assert body["checks"]["database"] == "schema at 0001"
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head}'")
    await db.dispose()
    assert (await _ready(client))[0] == 200


@pytest.mark.postgres
async def test_a_cluster_node_is_not_ready_without_its_database_or_redis(
        aiohttp_client: Callable[..., Any], tmp_path: Path, postgres_admin_url: str) -> None:
    url = await fresh_database(postgres_admin_url)
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_admin_url.replace("postgresql+asyncpg", "postgresql"))
    with redis_server() as redis:
        client = await aiohttp_client(build_app(app_settings(
            url, tmp_path, redis_url=redis.url, redis_prefix="r" + secrets.token_hex(4),
            node_name="node-r")))
        status, body = await _ready(client)
        assert status == 200, body
        assert body["checks"] == {"database": "ok", "redis": "ok"}
        assert body["node"] == {"id": "node-r", "role": "leader"}

        redis.kill()
        status, body = await _ready(client)
        assert status == 503 and body["checks"]["redis"] == "error: unreachable"
        assert body["checks"]["database"] == "ok"
        redis.start()
        for _ in range(50):  # the client reconnects on its own
            if (status := (await _ready(client))[0]) == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200

        # The database refuses connections (as when it is down or full).
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
        try:
            status, body = await _ready(client)
            assert status == 503 and body["checks"]["database"].startswith("error: ")
            assert body["checks"]["redis"] == "ok"
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        for _ in range(50):
            if (status := (await _ready(client))[0]) == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200
    await admin.close()


async def test_the_bot_is_reported_but_does_not_take_the_node_out(
        aiohttp_client: Callable[..., Any], aiohttp_server: Callable[..., Any],
        tmp_path: Path) -> None:
    rasa = web.Application()
    answering = {"model": True}

    async def status(request: web.Request) -> web.Response:
        if not answering["model"]:
            return web.Response(status=500)
        return web.json_response({"model_file": "models/onestop.tar.gz"})

    rasa.router.add_get("/status", status)
    server = await aiohttp_server(rasa)
    client = await aiohttp_client(build_app(app_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
        rasa_url=str(server.make_url("")).rstrip("/"))))
    status_code, body = await _ready(client)
    assert (status_code, body["bot"]) == (200, "ok")
    answering["model"] = False
    status_code, body = await _ready(client)
    assert status_code == 200 and body["status"] == "ready"
    assert body["bot"] == "unreachable"
