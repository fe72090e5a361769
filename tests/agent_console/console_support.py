"""Helpers for the console's tests: the real app with the console wired in, and sign-in
through the login form as a browser would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY
from agent_console.console import setup
from onestop.app import build_app
from tests.support.app import app_settings


def console_app(database_url: str, tmp_path: Path, **extra: Any) -> web.Application:
    app = build_app(app_settings(database_url, tmp_path), **extra)
    setup(app, app[CENTER_KEY])
    return app


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


async def form_login(client: TestClient, username: str, password: str,
                     next_path: str | None = None) -> Any:
    page = await client.get("/console/login")
    token = hidden(await page.text(), "csrf_token")
    url = "/console/login" + (f"?next={next_path}" if next_path else "")
    return await client.post(url, data={"username": username, "password": password,
                                        "csrf_token": token}, allow_redirects=False)


def csrf_of(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF meta tag"
    return match.group(1)
