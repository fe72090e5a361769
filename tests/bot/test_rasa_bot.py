"""The real Rasa bot, end to end through its HTTP API (slow: trains once per project change)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bot.client import RasaClient
from bot.evaluate import evaluate
from tests.bot.conftest import RunningBot
from tests.bot.fakes import MemoryCases

pytestmark = [pytest.mark.rasa, pytest.mark.slow]

# Floors a little under the measured figures (see bot/README.md); the goal is 0.90.
MACRO_F1_FLOOR = {"th": 0.88, "en": 0.88}
OOS_RECALL_FLOOR = 0.80
EVAL_REPORT = Path(__file__).resolve().parents[2] / "var" / "bot" / "eval.json"


def sender() -> str:
    return "test-" + uuid.uuid4().hex[:10]


def client(bot: RunningBot) -> RasaClient:
    return RasaClient(bot.url, timeout=15, token=bot.api_token)


async def test_a_thai_faq_gets_the_thai_answer(rasa_bot: RunningBot) -> None:
    async with client(rasa_bot) as bot:
        turn = await bot.send(sender(), "ทำบัตรประชาชนใหม่ต้องใช้อะไรบ้าง")
    assert turn.handoff is None
    assert any("การทำบัตรประชาชนครั้งแรก" in text for text in turn.texts), turn.texts


async def test_an_english_question_gets_the_english_answer(rasa_bot: RunningBot) -> None:
    async with client(rasa_bot) as bot:
        turn = await bot.send(sender(), "my ID card expired, how do I renew it?")
    assert turn.handoff is None
    assert any(text.startswith("Expired ID card") for text in turn.texts), turn.texts


async def test_the_language_follows_each_message(rasa_bot: RunningBot) -> None:
    conversation = sender()
    async with client(rasa_bot) as bot:
        english = await bot.send(conversation, "what time do you open?")
        thai = await bot.send(conversation, "เปิดกี่โมงคะ")
    assert english.texts[0].startswith("District offices are open")
    assert thai.texts[0].startswith("สำนักงานเขต")


async def test_asking_for_a_person_hands_off(rasa_bot: RunningBot) -> None:
    async with client(rasa_bot) as bot:
        turn = await bot.send(sender(), "ขอคุยกับเจ้าหน้าที่")
    assert turn.handoff is not None
    assert turn.handoff.reason == "request_human"
    assert turn.texts  # the citizen is told what happens


async def test_a_citizen_in_danger_is_handed_off_at_once(rasa_bot: RunningBot) -> None:
    async with client(rasa_bot) as bot:
        turn = await bot.send(sender(), "ช่วยด้วย ถูกทำร้าย")
        english = await bot.send(sender(), "please help, my husband is hitting me")
    assert turn.handoff is not None
    assert (turn.handoff.reason, turn.handoff.priority) == ("urgent", "urgent")
    assert "191" in turn.texts[0] and "1300" in turn.texts[0]
    assert english.handoff is not None and english.handoff.reason == "urgent"


@pytest.mark.parametrize(
    "first, second",
    [("asdfgh", "ฟหกด่าสว"), ("ไำพะัีรนย", "lkjlkj poiu")],
)
async def test_two_nonsense_messages_hand_off(
    rasa_bot: RunningBot, first: str, second: str
) -> None:
    conversation = sender()
    async with client(rasa_bot) as bot:
        one = await bot.send(conversation, first)
        two = await bot.send(conversation, second)
    assert one.handoff is None and one.texts
    assert two.handoff is not None and two.handoff.reason == "fallback"


async def test_a_verified_citizen_hears_their_case_status(
    rasa_bot: RunningBot, bot_cases: MemoryCases
) -> None:
    async with client(rasa_bot) as bot:
        turn = await bot.send("citizen-with-case", "เรื่อง OS-2026-000123 ถึงไหนแล้วครับ", verified=True)
    assert turn.handoff is None
    assert any("อยู่ระหว่างดำเนินการ" in text for text in turn.texts), turn.texts


async def test_an_unverified_citizen_asking_case_status_is_handed_off(
    rasa_bot: RunningBot, bot_cases: MemoryCases
) -> None:
    async with client(rasa_bot) as bot:
        turn = await bot.send(sender(), "status of case OS-2026-000123 please", verified=False)
    assert turn.handoff is not None and turn.handoff.reason == "verify_identity"
    assert not any("in progress" in text for text in turn.texts)


async def test_a_complaint_is_collected_by_a_form_and_opened_as_a_case(
    rasa_bot: RunningBot,
) -> None:
    conversation = sender()
    async with client(rasa_bot) as bot:
        ask_detail = await bot.send(conversation, "อยากร้องเรียนครับ")
        ask_phone = await bot.send(conversation, "ไฟถนนในซอยลาดพร้าว 5 ดับมาสองเดือนแล้ว")
        done = await bot.send(conversation, "0812345678")
    assert any("รายละเอียด" in text for text in ask_detail.texts), ask_detail.texts
    assert any("เบอร์โทร" in text for text in ask_phone.texts), ask_phone.texts
    opened = [c for c in rasa_bot.cases.opened if c.sender_id == conversation]
    assert len(opened) == 1
    assert opened[0].description == "ไฟถนนในซอยลาดพร้าว 5 ดับมาสองเดือนแล้ว"
    assert opened[0].contact_phone == "0812345678"
    assert any("OS-2026-" in text for text in done.texts), done.texts


async def test_urgent_help_interrupts_the_complaint_form(rasa_bot: RunningBot) -> None:
    conversation = sender()
    async with client(rasa_bot) as bot:
        await bot.send(conversation, "ขอร้องเรียนเจ้าหน้าที่")
        turn = await bot.send(conversation, "ช่วยด้วย มีคนจะฆ่าฉัน")
    assert turn.handoff is not None and turn.handoff.reason == "urgent"


async def test_nlu_quality_on_the_held_out_sets(rasa_bot: RunningBot) -> None:
    report = await evaluate(rasa_bot.url, token=rasa_bot.api_token)
    report["timings"] = rasa_bot.timings
    EVAL_REPORT.parent.mkdir(parents=True, exist_ok=True)
    EVAL_REPORT.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    for lang, floor in MACRO_F1_FLOOR.items():
        scores = report["languages"][lang]
        assert scores["macro_f1"] >= floor, (lang, scores["macro_f1"], scores["errors"])
        assert scores["oos_recall"] >= OOS_RECALL_FLOOR, (lang, scores["oos_recall"])
    assert report["parse_latency_ms"]["median"] < 250
