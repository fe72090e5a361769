"""The real app with the kiosk room wired in, and a driver that signs like a kiosk."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY, authenticate
from channels.kiosk import KIOSK_KEY, DeviceKey, Kiosk, setup, signed_headers
from onestop.app import build_app
from onestop.demo import seed_demo
from routing import ContactCenter
from tests.support.app import app_settings


@dataclass
class KioskDriver:
    """Speaks to the feed as kiosk `key.device_id` would."""

    #: Valid Thai national IDs (checksum digit right) and one with a wrong checksum.
    SOMCHAI_ID: ClassVar[str] = "1101700123456"
    MALEE_ID: ClassVar[str] = "3100500678905"
    BAD_CHECKSUM_ID: ClassVar[str] = "1101700123457"

    client: TestClient
    key: DeviceKey
    clock: Any

    @property
    def kiosk(self) -> Kiosk:
        return self.client.app[KIOSK_KEY]

    @property
    def center(self) -> ContactCenter:
        return self.client.app[CENTER_KEY]

    async def post(self, payload: Any, *, secret: str | None = None,
                   timestamp: int | None = None, device_id: str | None = None,
                   body: bytes | None = None) -> ClientResponse:
        """Sign and send; `body` (if given) is sent instead of what was signed."""
        signed = json.dumps(payload, ensure_ascii=False).encode()
        stamp = int(self.clock.now().timestamp()) if timestamp is None else timestamp
        headers = signed_headers(device_id or self.key.device_id,
                                 secret or self.key.secret, stamp, signed)
        return await self.client.post("/kiosk/v1/events", data=body or signed, headers=headers)

    async def send(self, *events: dict[str, Any], **options: Any) -> dict[str, Any]:
        response = await self.post({"events": list(events)}, **options)
        assert response.status in (200, 400), await response.text()
        return dict(await response.json())

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    @staticmethod
    def identified(visit: str, national_id: str = "1101700123456", **extra: Any) -> dict[str, Any]:
        return {"id": KioskDriver.new_id(), "type": "citizen_identified", "visit_id": visit,
                "method": "smart_card", "national_id": national_id, "name_th": "สมชาย ใจดี",
                "name_en": "Somchai Jaidee", "birth_date": "1980-05-14",
                "address": "99 ถนนราชดำเนิน แขวงบวรนิเวศ เขตพระนคร กรุงเทพมหานคร 10200",
                "language": "th", **extra}

    @staticmethod
    def service_request(visit: str, category: str = "id_card", **extra: Any) -> dict[str, Any]:
        return {"id": KioskDriver.new_id(), "type": "service_request", "visit_id": visit,
                "category": category, "details": "บัตรหาย ขอทำใหม่",
                "form": {"reason": "lost"}, **extra}

    @staticmethod
    def visit_id() -> str:
        return "v-" + uuid.uuid4().hex[:16]


@pytest.fixture
async def kiosk_driver(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path, clock: Any,
) -> AsyncIterator[KioskDriver]:
    app = build_app(app_settings(database_url, tmp_path), clock=clock, wire_rooms=False)
    setup(app, app[CENTER_KEY], authenticate=authenticate, create_tables=True,
          check_every_seconds=3600)
    client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    key = await app[KIOSK_KEY].store.register_device(
        "bkk-dusit-01", "ตู้บริการเขตดุสิต 1", "สำนักงานเขตดุสิต", clock.now())
    yield KioskDriver(client, key, clock)
