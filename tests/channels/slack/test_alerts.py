"""Supervisor alerts in Slack: raised once per key, cleared when the trouble is over."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from channels.kiosk.events import KioskBack, KioskSilent
from routing import (
    BotReply,
    BotTurn,
    BotUnavailable,
    Channel,
    InboundMessage,
    queue_views,
)
from tests.channels.slack.conftest import Desk, eventually


def supervisors(desk: Desk) -> list[dict[str, Any]]:
    return [p for p in desk.slack.posted() if p["channel"] in ("#onestop-supervisors", "CSUP")]


async def settle(desk: Desk) -> None:
    async def drained() -> bool:
        return not await desk.room.outbox.pending()
    await eventually(drained)


async def test_a_silent_kiosk_is_one_alert_cleared_when_it_is_back(desk: Desk) -> None:
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    silent = KioskSilent("kiosk-7", "ตู้ 7 ศาลากลาง", "ศาลากลางจังหวัด ชั้น 1", None, now)
    await desk.center.bus.publish(silent)
    await desk.center.bus.publish(silent)  # reported again: still one alert
    await settle(desk)
    [alert] = supervisors(desk)
    assert "Kiosk offline" in alert["text"]
    assert "ศาลากลางจังหวัด" in json.dumps(alert["blocks"], ensure_ascii=False)

    await desk.center.bus.publish(KioskBack("kiosk-7", "ตู้ 7 ศาลากลาง", "ศาลากลาง", now))
    await settle(desk)
    [update] = desk.slack.posted("chat.update")
    assert update["channel"] == "CSUP"
    assert "Resolved" in json.dumps(update["blocks"])
    thread = [p for p in supervisors(desk) if p.get("thread_ts")]
    assert len(thread) == 1 and thread[0]["thread_ts"] == update["ts"]

    await desk.center.bus.publish(silent)  # silent again later: a new alert
    await settle(desk)
    assert len([p for p in supervisors(desk) if not p.get("thread_ts")]) == 2


class DownBot:
    async def reply(self, turn: BotTurn) -> BotReply:
        raise BotUnavailable("rasa is down")


async def test_the_bot_failing_raises_one_alert_cleared_after_a_quiet_period(
    desk: Desk,
) -> None:
    desk.center.bot = DownBot()
    for n in range(3):
        await desk.center.ingest(InboundMessage(Channel.CHAT, f"visit-{n}", f"m-{n}",
                                                "สวัสดีครับ"))

    async def handed_over() -> bool:  # each hand-off is queued after it was announced
        return sum(v["waiting"] for v in queue_views(desk.center)) == 3
    await eventually(handed_over)  # every chat went to people because the bot is down

    async def alerted() -> list[dict[str, Any]]:
        return [p for p in supervisors(desk) if "bot is failing" in p["text"]]
    await eventually(alerted)
    await settle(desk)
    assert len(await alerted()) == 1

    desk.clock.advance(120)
    await desk.room.alerts.check()
    assert desk.slack.posted("chat.update") == []  # not quiet long enough yet
    desk.clock.advance(300)
    await desk.room.alerts.check()
    await settle(desk)
    [update] = desk.slack.posted("chat.update")
    assert "Resolved" in json.dumps(update["blocks"])


async def emails(desk: Desk, count: int) -> list[str]:
    conversations = []
    for n in range(count):
        stored = await desk.center.ingest(InboundMessage(
            Channel.EMAIL, f"q-{n}", f"<q{n}@mail.th>", "สอบถามเวลาทำการ"))
        conversations.append(stored.conversation_id)

    async def queued() -> bool:
        return sum(v["waiting"] for v in queue_views(desk.center)) >= count
    await eventually(queued)
    return conversations


async def test_an_overflowing_queue_alerts_once_and_clears_when_it_drains(desk: Desk) -> None:
    conversations = await emails(desk, 3)  # nobody is signed in; the room's max is 2
    await desk.room.alerts.check()
    await desk.room.alerts.check()
    await settle(desk)
    [alert] = [p for p in supervisors(desk) if "overflowing" in p["text"]]
    assert "waiting 3 &gt; max 2" in json.dumps(alert["blocks"])

    for conversation_id in conversations[:2]:
        await desk.center.close_conversation(conversation_id)
    await desk.room.alerts.check()
    await settle(desk)
    [update] = desk.slack.posted("chat.update")
    assert "Resolved" in json.dumps(update["blocks"])


async def test_a_wait_beyond_the_service_level_threshold_is_an_alert(desk: Desk) -> None:
    await emails(desk, 1)
    await desk.room.alerts.check()
    await settle(desk)
    assert not [p for p in supervisors(desk) if "Service level at risk" in p["text"]]

    desk.clock.advance(86400 + 60)  # email: 95 % within 24 h; but 3 March 2026 is
    await desk.room.alerts.check()  # Makha Bucha, a public holiday: the queue is closed
    await settle(desk)
    assert not [p for p in supervisors(desk) if "Service level at risk" in p["text"]]
    desk.clock.advance(6 * 86400)  # Monday 9 March, 10:01 in Bangkok: open, still waiting
    await desk.room.alerts.check()
    await desk.room.alerts.check()
    await settle(desk)
    [alert] = [p for p in supervisors(desk) if "Service level at risk" in p["text"]]
    assert "longest wait" in json.dumps(alert["blocks"])


async def test_open_alerts_survive_a_restart_without_being_posted_again(desk: Desk) -> None:
    from channels.slack import AlertBoard
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    await desk.center.bus.publish(KioskSilent("kiosk-9", "ตู้ 9", "อำเภอเมือง", None, now))
    await settle(desk)
    again = AlertBoard(desk.center, desk.room.outbox, "#onestop-supervisors")
    assert not await again.raise_alert("kiosk:kiosk-9", "Kiosk offline: ตู้ 9", "again")
    assert await again.clear("kiosk:kiosk-9", "back")
    await settle(desk)
    assert len(desk.slack.posted("chat.update")) == 1
