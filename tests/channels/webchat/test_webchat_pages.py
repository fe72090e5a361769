"""The widget files, the demo site, and the token buckets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from routing import TokenBuckets

STATIC = Path(__file__).resolve().parents[3] / "channels" / "webchat" / "static"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_demo_site_embeds_the_widget_with_one_script_tag_under_the_csp(
    client: TestClient,
) -> None:
    page = await client.get("/demo-site")
    html = await page.text()
    assert page.status == 200
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/widget.js" defer>']
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "style=" not in html and "<style" not in html and "onclick" not in html
    assert '<html lang="th">' in html
    assert '<html lang="en">' in await (await client.get("/demo-site?lang=en")).text()
    widget = await client.get("/widget.js")
    assert widget.status == 200 and "javascript" in widget.headers["Content-Type"]
    css = await client.get("/widget.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")


def test_the_widget_never_puts_text_into_the_page_as_html() -> None:
    source = (STATIC / "widget.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink


def test_a_token_bucket_refuses_a_burst_and_refills_with_time() -> None:
    now = [0.0]
    buckets = TokenBuckets(3, 0.5, clock=lambda: now[0])
    assert [buckets.take("v") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("v") == pytest.approx(2.0)
    assert buckets.take("someone else") == 0.0
    now[0] = 2.0
    assert buckets.take("v") == 0.0
    assert buckets.take("v") > 0
