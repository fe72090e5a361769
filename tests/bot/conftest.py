"""The real Rasa server for tests marked ``rasa``: built, trained and started once per session.

Nothing is skipped: if the venv cannot be built or the model cannot be trained, the tests error.
The app's side (the action server) runs with in-memory backends in a background event loop.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiohttp import web

from bot.actions import ActionServer, KnowledgeHit, create_actions_app
from bot.manager import RasaManager
from tests.bot.fakes import MemoryCases, MemoryKnowledge, in_progress

T = TypeVar("T")


@dataclass
class RunningBot:
    """A started Rasa server and the fake core behind its custom actions."""

    url: str
    api_token: str
    cases: MemoryCases
    knowledge: MemoryKnowledge
    timings: dict[str, float] = field(default_factory=dict)


class _LoopThread:
    """An event loop in a thread, so session-wide servers outlive each test's own loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 1800) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def rasa_bot() -> Iterator[RunningBot]:
    """ensure-venv → train if the project changed → action server + ``rasa run`` on free ports."""
    cases = MemoryCases()
    knowledge = MemoryKnowledge(
        [
            KnowledgeHit(
                title="ค่าธรรมเนียมคัดสำเนาทะเบียนบ้าน",
                snippet="คัดสำเนาทะเบียนบ้าน ฉบับละ 10 บาท",
                url="https://example.go.th/kb/42",
            )
        ]
    )
    token = secrets.token_urlsafe(16)
    root = web.Application()
    root.add_subapp("/bot/actions", create_actions_app(ActionServer(cases, knowledge, token=token)))
    runner = web.AppRunner(root)
    action_port = free_port()
    manager = RasaManager(port=free_port(), action_port=action_port, action_token=token)
    loop = _LoopThread()
    timings: dict[str, float] = {}
    try:
        loop.run(runner.setup())
        loop.run(web.TCPSite(runner, "127.0.0.1", action_port).start())
        for step, coro in (
            ("ensure_venv_s", manager.ensure_venv()),
            ("train_if_needed_s", manager.train_if_needed()),
            ("server_start_s", manager.start()),
        ):
            started = time.monotonic()
            loop.run(coro)
            timings[step] = round(time.monotonic() - started, 1)
        yield RunningBot(manager.base_url, manager.api_token, cases, knowledge, timings)
    finally:
        loop.run(manager.stop())
        loop.run(runner.cleanup())
        loop.close()


@pytest.fixture
def bot_cases(rasa_bot: RunningBot) -> MemoryCases:
    """The fake case directory, with one case owned by sender ``citizen-with-case``."""
    rasa_bot.cases.cases["OS-2026-000123"] = ("citizen-with-case", in_progress("OS-2026-000123"))
    return rasa_bot.cases
