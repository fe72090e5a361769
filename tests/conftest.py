"""Shared fixtures: databases on SQLite and a real PostgreSQL, a contact center, config."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser

from routing import ContactCenter, Database, InProcessBus, create_database, load_settings, metadata
from routing.config import Settings
from tests.support.browser import chromium
from tests.support.postgres import fresh_database, postgres_server

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A real PostgreSQL server for the whole run (or ONESTOP_TEST_POSTGRES_URL)."""
    url = os.environ.get("ONESTOP_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with postgres_server() as started:
        yield started


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'onestop.db'}"
    admin = request.getfixturevalue("postgres_admin_url")
    return await fresh_database(admin)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A database with the current schema."""
    db = create_database(database_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(CONFIG_DIR)


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.current = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # a Monday, 10:00 in Bangkok

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def center(database: Database, settings: Settings, clock: ManualClock) -> AsyncIterator[ContactCenter]:
    """A started contact center on a fresh database with a manual clock."""
    cc = ContactCenter(database, settings, bus=InProcessBus(), clock=clock)
    await cc.start()
    yield cc
    await cc.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for one test."""
    async with chromium() as launched:
        yield launched
