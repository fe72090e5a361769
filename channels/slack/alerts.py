"""Alerts for supervisors in one Slack channel, each de-duplicated and cleared.

One open alert per key: raising an alert that is already open does nothing; clearing it
updates the original message (`chat.update`, marked resolved) and says so in its thread.
Open alerts are saved in the core's state store (`slack.alerts`), so a restart neither
repeats nor forgets them.

Keys: `sl:<queue>` (service level below target, or the longest wait over the service
level's threshold), `overflow:<queue>` (more waiting than the queue's `max_waiting`, or
the room's default), `kiosk:<device>` (a kiosk went silent; cleared when it is back),
`bot` (hand-offs because the bot is unavailable; cleared after a quiet period).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.slack.messages import alert_blocks
from channels.slack.outbox import SlackOutbox
from routing import (
    Channel,
    ContactCenter,
    TaskCreated,
    cancelling,
    queue_views,
    wait_or_timeout,
)

log = logging.getLogger(__name__)
STATE_NAME = "slack.alerts"


@dataclass(frozen=True)
class AlertRules:
    #: Answered + abandoned contacts in the last hour before a service level counts.
    min_sample: int = 5
    #: Waiting contacts that make a queue overflow when it sets no `max_waiting`.
    max_waiting: int | None = 20
    #: The bot counts as recovered after this long without a "bot unavailable" hand-off.
    bot_quiet_seconds: float = 600
    #: How often queues are checked even when nothing happens (router events also wake it).
    check_interval: float = 30


class AlertBoard:
    """Open and clear alerts in the supervisors' channel, one per key."""

    def __init__(self, center: ContactCenter, outbox: SlackOutbox, channel: str) -> None:
        self.center = center
        self.outbox = outbox
        self.channel = channel
        self._open: dict[str, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def open_alerts(self) -> dict[str, dict[str, Any]]:
        async with self._lock:
            return dict(await self._state())

    async def raise_alert(self, key: str, title: str, detail: str) -> bool:
        """Post the alert unless one with this key is open; True when posted."""
        async with self._lock:
            state = await self._state()
            if key in state:
                return False
            ref = f"alert:{key}:{secrets.token_hex(4)}"
            state[key] = {"ref": ref, "title": title, "detail": detail,
                          "since": self.center.clock.now().isoformat()}
            await self.outbox.enqueue("chat.postMessage", {
                "channel": self.channel, "text": f"🚨 {title}",
                "blocks": alert_blocks(title, detail), "unfurl_links": False,
            }, lane=self.channel, remember=ref)
            await self._save(state)
        return True

    async def clear(self, key: str, detail: str) -> bool:
        """Mark the open alert resolved (message updated, note in its thread)."""
        async with self._lock:
            state = await self._state()
            alert = state.pop(key, None)
            if alert is None:
                return False
            title = alert["title"]
            await self.outbox.enqueue("chat.update", {
                "text": f"✅ {title}", "blocks": alert_blocks(title, detail, resolved=True),
            }, lane=self.channel, update_ref=alert["ref"])
            await self.outbox.enqueue("chat.postMessage", {
                "channel": self.channel,
                "text": f"✅ คลี่คลายแล้ว / Resolved: {detail}"},
                lane=self.channel, thread_ref=alert["ref"], forget=(alert["ref"],))
            await self._save(state)
        return True

    async def _state(self) -> dict[str, dict[str, Any]]:
        if self._open is None:
            self._open = dict((await self.center.load_state(STATE_NAME) or {}).get("open", {}))
        return self._open

    async def _save(self, state: dict[str, dict[str, Any]]) -> None:
        await self.center.save_state(STATE_NAME, {"open": state})


class SupervisorAlerts:
    """Watches the core (router events, a periodic check, kiosk and bot events) and
    keeps the board up to date."""

    def __init__(self, center: ContactCenter, board: AlertBoard, rules: AlertRules) -> None:
        self.center = center
        self.board = board
        self.rules = rules
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._bot_failures: list[datetime] = []

    # -- events -------------------------------------------------------------------------

    def poke(self) -> None:
        """Something changed in the router: check soon (the check itself runs in the
        loop, never inside the publisher)."""
        self._poke.set()

    async def on_event(self, event: Any) -> None:
        if not self.center.leading:
            return  # in a cluster, the node that runs the router keeps the alerts
        name = type(event).__name__
        # channels.kiosk is another room (the house rules forbid importing it), so its
        # events are recognised by name and read by their documented fields.
        if name == "KioskSilent":
            since = getattr(event, "silent_since", None)
            await self.board.raise_alert(
                f"kiosk:{event.device_id}",
                f"ตู้บริการไม่ตอบสนอง / Kiosk offline: {event.name}",
                f"{event.location} · ไม่มีสัญญาณตั้งแต่ / silent since "
                f"{since.isoformat() if since else '?'}")
        elif name == "KioskBack":
            await self.board.clear(f"kiosk:{event.device_id}",
                                   f"{event.name} กลับมาออนไลน์ / is back online")
        elif isinstance(event, TaskCreated) and event.reason == "bot_unavailable":
            now = self.center.clock.now()
            self._bot_failures.append(now)
            await self.board.raise_alert(
                "bot", "บอตใช้งานไม่ได้ / The bot is failing",
                f"ส่งต่อให้เจ้าหน้าที่เพราะบอตล่ม / hand-offs because the bot is "
                f"unavailable, since {now.isoformat(timespec='seconds')}")
        elif name in ("TaskQueued", "TaskAccepted", "TaskFinished", "TaskMoved",
                      "OfferMissed", "PresenceChanged"):
            self.poke()

    # -- the periodic check ---------------------------------------------------------------

    async def check(self) -> None:
        """Raise or clear every queue alert and the bot alert from the live figures."""
        for view in queue_views(self.center):
            await self._check_queue(view)
        await self._check_bot()

    async def _check_queue(self, view: dict[str, Any]) -> None:
        queue_id = view["id"]
        queue = self.center.settings.queues[queue_id]
        channels = queue.spec.channels or list(self.center.settings.channels)
        levels = [self.center.settings.service_level(queue_id, Channel(c)) for c in channels]
        target = min((lv.target for lv in levels), default=0.8)
        waiting_channels = [Channel(c) for c, n in view["waiting_by_channel"].items() if n]
        threshold = max((self.center.settings.service_level(queue_id, c).threshold_seconds
                         for c in waiting_channels), default=None)
        name = f"{view['name_th']} / {view['name_en']}"
        reasons: list[str] = []
        sl, sample = view["service_level"], view["answered"] + view["abandoned"]
        if not view["open_now"]:  # after hours a long wait is expected: no risk alert
            sl, threshold = None, None
        if sl is not None and sample >= self.rules.min_sample and sl < target:
            reasons.append(f"service level {sl:.0%} < target {target:.0%}")
        if threshold is not None and view["longest_wait_seconds"] > threshold:
            reasons.append(f"longest wait {view['longest_wait_seconds']:.0f} s > "
                           f"{threshold:.0f} s")
        key = f"sl:{queue_id}"
        if reasons:
            await self.board.raise_alert(
                key, f"ระดับบริการเสี่ยง / Service level at risk: {name}",
                "; ".join(reasons) + f" · waiting {view['waiting']}, "
                f"agents available {view['agents_available']}")
        else:
            await self.board.clear(key, f"{name}: back within target")
        limit = queue.spec.max_waiting or self.rules.max_waiting
        key = f"overflow:{queue_id}"
        if limit is not None and view["waiting"] > limit:
            await self.board.raise_alert(
                key, f"คิวล้น / Queue overflowing: {name}",
                f"waiting {view['waiting']} > max {limit}")
        elif limit is not None:
            await self.board.clear(key, f"{name}: waiting {view['waiting']} (max {limit})")

    async def _check_bot(self) -> None:
        alert = (await self.board.open_alerts()).get("bot")
        if alert is None:
            return
        now = self.center.clock.now()
        last = self._bot_failures[-1] if self._bot_failures else \
            datetime.fromisoformat(alert["since"])  # after a restart: when it was raised
        if (now - last).total_seconds() >= self.rules.bot_quiet_seconds:
            self._bot_failures.clear()
            await self.board.clear("bot", f"no bot failure for "
                                          f"{self.rules.bot_quiet_seconds:.0f} s")

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="slack-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await wait_or_timeout(self._poke, self.rules.check_interval)
            self._poke.clear()
            try:
                if self.center.leading:
                    await self.check()
            except Exception:
                if cancelling():  # a library turned our cancellation into its own error
                    raise asyncio.CancelledError from None
                log.exception("supervisor alert check failed")
            await asyncio.sleep(1.0)  # at most one check a second, however busy the router
