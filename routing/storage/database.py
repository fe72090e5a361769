"""The storage engine: SQLite (WAL) by default, PostgreSQL through a URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


@dataclass
class Database:
    """An engine and its session factory."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_database(url: str, **engine_options: Any) -> Database:
    """Create the engine for `url` (``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://``).

    SQLite runs in WAL mode with full fsync (an acknowledged message survives power loss)
    and a busy timeout so readers never block the writer and a
    second process waits instead of failing; foreign keys are enforced.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **engine_options)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    else:
        engine_options.setdefault("pool_size", 10)
        engine_options.setdefault("pool_pre_ping", True)
        engine = create_async_engine(url, **engine_options)
    return Database(engine, async_sessionmaker(engine, expire_on_commit=False))
