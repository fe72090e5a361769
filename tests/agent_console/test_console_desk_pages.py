"""The desk's new pieces at page level: the citizen 360, knowledge and attachment scripts
are served and loaded without inline code, show text only, have every word in Thai and
English, and the API calls they make from the signed-in page (cookie + CSRF) answer as
the scripts expect (201 upload, 415 type, 413 size, 403 without the CSRF header, 422 bad
identifier, 409 proposal before the case is resolved)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from agent_console.api import CENTER_KEY, UPLOAD_LIMIT
from agent_console.i18n import TEXTS
from onestop.demo import seed_demo
from routing import Channel, IdentityHint, IdentityKind, InboundMessage
from tests.agent_console.console_support import console_app, csrf_of, form_login

STATIC = Path(__file__).resolve().parents[2] / "agent_console" / "static"
SCRIPTS = ("citizen360.js", "knowledge.js", "attachments.js")


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Any], database_url: str, tmp_path: Path
) -> AsyncIterator[TestClient]:
    app = console_app(database_url, tmp_path)
    test_client: TestClient = await aiohttp_client(app)
    await seed_demo(app[CENTER_KEY])
    yield test_client


async def signed_in(client: TestClient) -> str:
    """Sign in as the agent through the form; the desk's CSRF token."""
    await form_login(client, "somsri", "demo-agent-1")
    return csrf_of(await (await client.get("/console/")).text())


def upload(name: str, content_type: str, data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=content_type)
    return form


async def test_the_desk_loads_the_new_scripts_after_common_and_before_the_desk(
    client: TestClient,
) -> None:
    await signed_in(client)
    html = await (await client.get("/console/")).text()
    sources = re.findall(r'<script src="/console/static/([a-z0-9]+\.js)" defer>', html)
    assert sources == ["common.js", *SCRIPTS, "console.js", "phone.js"]
    assert "<script>" not in html and " style=" not in html  # CSP: nothing inline
    for script in SCRIPTS:
        response = await client.get(f"/console/static/{script}")
        assert response.status == 200
        assert "javascript" in response.headers["Content-Type"]


def test_the_new_scripts_build_text_nodes_never_html() -> None:
    for script in SCRIPTS:
        source = (STATIC / script).read_text()
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert risky not in source, f"{script} uses {risky}"


def test_every_word_the_new_scripts_use_is_in_thai_and_english() -> None:
    used: set[str] = set()
    for script in SCRIPTS:
        used |= set(re.findall(r'\bt\("([a-z0-9_.]+)"', (STATIC / script).read_text()))
    assert {"kb.insert", "attach.bad_type", "c360.confirm", "bot.handback", "pop.path"} <= used
    missing = sorted(used - set(TEXTS))
    assert not missing, f"not in agent_console/i18n.py: {missing}"
    for key in used:
        th, en = TEXTS[key]
        assert th and en, key
        assert re.search("[\u0e00-\u0e7f]", th), f"{key}: Thai first"


async def test_the_english_desk_carries_the_new_words(client: TestClient) -> None:
    await signed_in(client)
    await client.get("/console/prefs?lang=en&next=/console/")
    html = await (await client.get("/console/")).text()
    for words in ("Knowledge base", "Insert into reply", "Hand back to the bot",
                  "Timeline across channels", "Confirm: merge", "Attach files"):
        assert words in html


async def test_uploads_from_the_page_need_the_csrf_header_and_report_type_and_size(
    client: TestClient,
) -> None:
    csrf = await signed_in(client)
    headers = {"X-CSRF-Token": csrf}
    pdf = b"%PDF-1.4\n%%EOF\n"
    refused = await client.post("/api/v1/attachments", data=upload("a.pdf", "application/pdf", pdf))
    assert refused.status == 403
    stored = await client.post("/api/v1/attachments", headers=headers,
                               data=upload("form-101.pdf", "application/pdf", pdf))
    assert stored.status == 201, await stored.text()
    body = await stored.json()
    assert body["filename"] == "form-101.pdf" and body["size"] == len(pdf)
    assert body["ref"].startswith("sha256:")
    exe = await client.post("/api/v1/attachments", headers=headers,
                            data=upload("tool.exe", "application/x-msdownload", b"MZ"))
    assert exe.status == 415
    assert "cannot be attached" in (await exe.json())["error"]["message"]
    big = await client.post("/api/v1/attachments", headers=headers,
                            data=upload("big.pdf", "application/pdf", b"0" * (UPLOAD_LIMIT + 1)))
    assert big.status == 413
    assert "10 MB" in (await big.json())["error"]["message"]


async def test_a_bad_identifier_is_refused_with_a_reason_the_panel_shows(
    client: TestClient,
) -> None:
    csrf = await signed_in(client)
    stored = await client.server.app[CENTER_KEY].ingest(InboundMessage(
        Channel.EMAIL, "t-id", "<id@mail.th>", "hello",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "someone@mail.th"),)))
    path = f"/api/v1/citizens/{stored.citizen_id}/identities"
    bad = await client.post(path, headers={"X-CSRF-Token": csrf}, json={
        "kind": "national_id", "value": "1234567890123", "verified_by": "agent_check"})
    assert bad.status == 422
    assert (await bad.json())["error"]["message"]
    good = await client.post(path, headers={"X-CSRF-Token": csrf}, json={
        "kind": "phone", "value": "081 234 5678", "verified_by": "agent_check"})
    assert good.status == 200, await good.text()
    phones = [(i["value"], i["verified"], i["verified_by"])
              for i in (await good.json())["identities"] if i["kind"] == "phone"]
    assert phones == [("+66812345678", True, "agent_check")]


async def test_an_article_is_proposed_only_from_a_resolved_case(client: TestClient) -> None:
    csrf = await signed_in(client)
    center = client.server.app[CENTER_KEY]
    stored = await center.ingest(InboundMessage(
        Channel.EMAIL, "t-kb", "<kb@mail.th>", "ต่ออายุบัตรประชาชน",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "kb@mail.th"),)))
    headers = {"X-CSRF-Token": csrf}
    early = await client.post("/api/v1/knowledge/proposals", headers=headers,
                              json={"case_id": stored.case_id})
    assert early.status == 409
    patched = await client.patch(f"/api/v1/cases/{stored.case_id}", headers=headers, json={
        "status": "resolved", "resolution": "แนะนำเอกสารที่ต้องใช้"})
    assert patched.status == 200, await patched.text()
    made = await client.post("/api/v1/knowledge/proposals", headers=headers,
                             json={"case_id": stored.case_id})
    assert made.status == 201, await made.text()
    assert (await made.json())["slug"]
