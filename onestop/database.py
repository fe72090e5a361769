"""Schema migrations (Alembic) for every room's tables."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

import routing

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def target_metadata() -> list[MetaData]:
    """The metadata of every room that owns tables."""
    return [routing.metadata, *_room_metadata()]


#: Rooms that own tables of their own (each exports `metadata`).
ROOMS_WITH_TABLES = ("channels.kiosk", "knowledge")


def _room_metadata(rooms: tuple[str, ...] = ROOMS_WITH_TABLES) -> list[MetaData]:
    found = []
    for name in rooms:
        extra = getattr(importlib.import_module(name), "metadata", None)
        if isinstance(extra, MetaData):
            found.append(extra)
    return found


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def migrate(db: routing.Database, to: str = "head") -> None:
    """Bring the database schema to the newest revision (or to revision `to`)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade, to)


def _upgrade(connection: Any, to: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, to)


async def current_revision(db: routing.Database) -> str | None:
    """The revision the database is at (None when it has no schema yet)."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision()
        )


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
