"""Client, manager and data checks that need no Rasa server."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.client import BotUnavailable, RasaClient, detect_language, parse_webhook_reply
from bot.evaluate import load_examples, macro_f1, score
from bot.manager import PROJECT_DIR, project_hash


def test_language_is_thai_when_any_thai_letter_is_present() -> None:
    assert detect_language("ต่อ id card ยังไง") == "th"
    assert detect_language("how do I renew my ID card?") == "en"


def test_the_handoff_marker_is_read_from_the_custom_message() -> None:
    turn = parse_webhook_reply(
        [
            {"recipient_id": "u1", "text": "กำลังส่งต่อเจ้าหน้าที่"},
            {
                "recipient_id": "u1",
                "custom": {"handoff": True, "reason": "urgent", "priority": "urgent"},
            },
        ]
    )
    assert turn.texts == ["กำลังส่งต่อเจ้าหน้าที่"]
    assert turn.handoff is not None
    assert (turn.handoff.reason, turn.handoff.priority) == ("urgent", "urgent")
    assert parse_webhook_reply([{"recipient_id": "u1", "text": "hi"}]).handoff is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_bot_that_is_down_raises_bot_unavailable_quickly() -> None:
    async with RasaClient(f"http://127.0.0.1:{_free_port()}", timeout=2) as bot:
        started = time.monotonic()
        with pytest.raises(BotUnavailable):
            await bot.send("u1", "สวัสดี")
        with pytest.raises(BotUnavailable):
            await bot.parse("hello")
        assert await bot.health() is False
        assert time.monotonic() - started < 5


def test_the_model_hash_ignores_the_held_out_test_sets(tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "rasa"
    shutil.copytree(PROJECT_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    lock = PROJECT_DIR.parent / "requirements.lock"
    before = project_hash(copy, lock)
    (copy / "eval" / "nlu_test_th.yml").write_text("changed", encoding="utf-8")
    assert project_hash(copy, lock) == before
    with (copy / "data" / "nlu" / "nlu_en.yml").open("a", encoding="utf-8") as f:
        f.write("\n")
    assert project_hash(copy, lock) != before


def _texts(path: Path) -> set[str]:
    return {text.lower().strip() for text, _ in load_examples(path)}


@pytest.mark.parametrize("lang", ["th", "en"])
def test_no_held_out_example_is_in_the_training_data(lang: str) -> None:
    training: set[str] = set()
    for path in (PROJECT_DIR / "data" / "nlu").glob("*.yml"):
        training |= _texts(path)
    leaked = _texts(PROJECT_DIR / "eval" / f"nlu_test_{lang}.yml") & training
    assert not leaked


@pytest.mark.parametrize("lang", ["th", "en"])
def test_every_intent_has_at_least_20_training_examples_per_language(lang: str) -> None:
    counts = {intent: 0 for intent in _domain()["intents"]}
    for _, intent in load_examples(PROJECT_DIR / "data" / "nlu" / f"nlu_{lang}.yml"):
        counts[intent] += 1
    assert len(counts) >= 33
    assert {i: n for i, n in counts.items() if n < 20} == {}


def test_every_response_has_an_english_and_a_thai_variation() -> None:
    for name, variations in _domain()["responses"].items():
        conditions = [v.get("condition") for v in variations]
        assert [{"type": "slot", "name": "language", "value": "en"}] in conditions, name
        assert None in conditions, name  # Thai is the default variation
        thai = next(v["text"] for v in variations if v.get("condition") is None)
        assert re.search(r"[\u0E00-\u0E7F]", thai), name


def _domain() -> dict:
    return yaml.safe_load((PROJECT_DIR / "domain.yml").read_text(encoding="utf-8"))


def test_macro_f1_and_out_of_scope_scoring() -> None:
    gold = ["a", "a", "b", "out_of_scope", "out_of_scope"]
    raw = ["a", "b", "b", "nlu_fallback", "a"]
    report = score("th", gold, raw, [str(i) for i in range(5)])
    assert report.oos_recall == 0.5
    f1, per = macro_f1(gold, ["a", "b", "b", "out_of_scope", "a"])
    assert per["b"] == pytest.approx(2 / 3)
    assert f1 == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)


async def test_send_sets_the_language_slot_then_posts_to_the_rest_webhook(
    aiohttp_server: Any,
) -> None:
    from aiohttp import web

    seen: list[tuple[str, Any, dict[str, str]]] = []

    async def events(request: web.Request) -> web.Response:
        seen.append((request.path, await request.json(), dict(request.query)))
        return web.json_response({"sender_id": request.match_info["sender"]})

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path, body, dict(request.query)))
        if body["message"] == "silence":
            return web.json_response([])
        return web.json_response([{"recipient_id": body["sender"], "text": "Hello"}])

    app = web.Application()
    app.router.add_post("/conversations/{sender}/tracker/events", events)
    app.router.add_post("/webhooks/rest/webhook", webhook)
    server = await aiohttp_server(app)
    async with RasaClient(str(server.make_url("/")), token="t0k") as bot:
        turn = await bot.send("web:42", "hello", verified=True, metadata={"channel": "web"})
        silent = await bot.send("web:42", "silence")
    assert turn.texts == ["Hello"] and turn.handoff is None
    path, slot_events, query = seen[0]
    assert path == "/conversations/web:42/tracker/events"
    assert query == {"include_events": "NONE", "token": "t0k"}
    assert slot_events == [
        {"event": "slot", "name": "language", "value": "en"},
        {"event": "slot", "name": "verified", "value": True},
    ]
    assert seen[1][1] == {
        "sender": "web:42",
        "message": "hello",
        "metadata": {"channel": "web", "language": "en", "verified": True},
    }
    # An empty answer (e.g. a custom action failed) must not leave the citizen in silence.
    assert silent.handoff is not None and silent.handoff.reason == "no_reply"
