"""A node always stops: its timer loop ends even when a library it was calling turns the
cancellation into an error of its own (as database and Redis clients may when a call is cut
short), instead of logging it and looping forever while `stop()` waits."""

from __future__ import annotations

import asyncio

import pytest

from routing import ContactCenter, InProcessBus, create_database, metadata
from routing.aio import stop_task
from routing.config import Settings
from tests.conftest import ManualClock


async def test_stop_ends_a_timer_whose_cancellation_a_library_swallowed(
        tmp_path: object, settings: Settings, clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = create_database(f"sqlite+aiosqlite:///{tmp_path}/stop.db")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    center = ContactCenter(db, settings, bus=InProcessBus(), clock=clock)
    inside = asyncio.Event()

    async def a_call_that_turns_cancel_into_an_error() -> None:
        inside.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise ConnectionError("connection lost") from None

    await center.start()
    monkeypatch.setattr(center, "_deliver_pending", a_call_that_turns_cancel_into_an_error)
    async with asyncio.timeout(10):
        await inside.wait()  # the timer loop is inside the call
    async with asyncio.timeout(10):
        await center.stop()
    await db.dispose()


async def test_stop_task_gives_up_on_a_task_that_will_not_end() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                continue  # refuses to stop

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await stop_task(task, "stubborn", seconds=0.5)
    assert 0.4 < asyncio.get_running_loop().time() - started < 5
    assert not task.done()
    release.set()
    await asyncio.wait_for(task, 5)
