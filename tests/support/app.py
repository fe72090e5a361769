"""Start the real app (aiohttp test server) on a test database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from onestop.settings import AppSettings


def app_settings(database_url: str, tmp_path: Path, **extra: Any) -> AppSettings:
    base = AppSettings.from_env({})
    # Port 0: each test app's SMTP listener takes a free port.
    return AppSettings(**{**base.__dict__, "database_url": database_url,
                          "data_dir": tmp_path, "smtp_port": 0, "bot": "off",
                          "rasa_url": None, **extra})


async def login(client: TestClient, username: str, password: str) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/login",
                                 json={"username": username, "password": password})
    assert response.status == 200, await response.text()
    return dict(await response.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
