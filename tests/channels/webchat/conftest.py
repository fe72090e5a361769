"""The real app with the chat channel wired in, an in-test bot and a citizen's socket."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from channels.webchat import WEBCHAT_KEY, Limits, WebChat, setup
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import BotReply, BotTurn, ContactCenter
from tests.support.app import app_settings

PERSON_WORDS = ("เจ้าหน้าที่", "person", "officer")


class AnsweringBot:
    """A small stand-in for the Rasa bot: answers with quick replies, and hands off when
    the citizen asks for a person."""

    def __init__(self) -> None:
        self.turns: list[BotTurn] = []

    async def reply(self, turn: BotTurn) -> BotReply:
        self.turns.append(turn)
        if any(word in turn.text.lower() for word in PERSON_WORDS):
            return BotReply(messages=["กำลังโอนให้เจ้าหน้าที่ค่ะ"], handoff=True,
                            reason="asked_for_person", intent="human_handoff")
        return BotReply(
            messages=[f"ผู้ช่วยตอบ: {turn.text}"], intent="ask_id_card", confidence=0.9,
            buttons=[{"title": "ต่ออายุบัตร", "payload": "/renew_id_card"},
                     {"title": "บัตรหาย", "payload": "/lost_id_card"}],
        )


def build_chat_app(database_url: str, tmp_path: Path, clock: Any, bot: AnsweringBot,
                   **options: Any) -> Any:
    app = build_app(app_settings(database_url, tmp_path), clock=clock, bot=bot,
                    wire_rooms=False)
    setup(app, app[CENTER_KEY], **options)
    return app


@pytest.fixture
def bot() -> AnsweringBot:
    return AnsweringBot()


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path,
                 clock: Any, bot: AnsweringBot, limits: Limits) -> AsyncIterator[TestClient]:
    app = build_chat_app(database_url, tmp_path, clock, bot, limits=limits,
                         refresh_seconds=0.5)
    test_client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    yield test_client


def center_of(client: TestClient) -> ContactCenter:
    return client.server.app[CENTER_KEY]


def hub_of(client: TestClient) -> WebChat:
    return client.server.app[WEBCHAT_KEY]


class CitizenSocket:
    """A citizen's socket: every frame received is kept, in order."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._read = 0

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def say(self, text: str, client_id: str | None = None) -> str:
        client_id = client_id or uuid.uuid4().hex
        await self.send({"type": "message", "client_id": client_id, "text": text})
        return client_id

    async def next(self, kind: str, seconds: float = 10.0,
                   where: Callable[[dict[str, Any]], bool] = lambda f: True) -> dict[str, Any]:
        """The next frame of `kind` (matching `where`) not returned before."""
        async with asyncio.timeout(seconds):
            while True:
                while self._read < len(self.frames):
                    frame = self.frames[self._read]
                    self._read += 1
                    if (kind == "*" or frame["type"] == kind) and where(frame):
                        return frame
                msg = await self.ws.receive()
                if msg.type is not WSMsgType.TEXT:
                    raise AssertionError(f"socket ended: {msg.type} {msg.data!r}")
                self.frames.append(json.loads(msg.data))

    async def next_of(self, kinds: tuple[str, ...], seconds: float = 20.0) -> dict[str, Any]:
        """The next frame of any of `kinds`."""
        return await self.next("*", seconds, lambda f: f["type"] in kinds)

    async def message(self, where: Callable[[dict[str, Any]], bool],
                      seconds: float = 10.0) -> dict[str, Any]:
        return await self.next("message", seconds, where)

    async def drain(self, seconds: float = 0.3) -> None:
        """Collect whatever arrives in the next moment."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    msg = await self.ws.receive()
                    if msg.type is not WSMsgType.TEXT:
                        return
                    self.frames.append(json.loads(msg.data))
        except TimeoutError:
            pass

    def messages(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "message"]

    async def close(self) -> None:
        await self.ws.close()


async def open_chat(client: TestClient, visitor: str, conversation: str | None = None,
                    after_seq: int = 0, language: str = "th") -> tuple[CitizenSocket,
                                                                        dict[str, Any]]:
    """Connect and resume; returns the socket and its `ready` frame."""
    ws = await client.ws_connect("/chat/ws")
    sock = CitizenSocket(ws)
    await sock.send({"type": "resume", "visitor": visitor, "conversation": conversation,
                     "after_seq": after_seq, "language": language})
    ready = await sock.next("ready")
    return sock, ready


def new_visitor() -> str:
    return uuid.uuid4().hex
