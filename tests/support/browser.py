"""Real Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright.

The flags keep a headless Chromium from reaching for Google's services, which this
machine's closed network refuses (and would slow every start)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: `pytestmark` of a browser test module.
NEEDS_CHROMIUM = [pytest.mark.browser, pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed")]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()
