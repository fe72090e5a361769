"""Device monitoring: a kiosk silent for too long raises `KioskSilent` once; its next
heartbeat raises `KioskBack` (see feed.py). The alert state lives in the database, so a
restart or a second node does not raise the same alert twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from channels.kiosk.events import KioskSilent
from channels.kiosk.store import KioskStore
from routing import ContactCenter, cancelling

log = logging.getLogger(__name__)


class SilenceWatch:
    """Checks every `every` seconds for kiosks silent for more than `silence`."""

    def __init__(self, center: ContactCenter, store: KioskStore, *, silence: timedelta,
                 every: float) -> None:
        self.center = center
        self.store = store
        self.silence = silence
        self.every = every

    async def check(self) -> list[KioskSilent]:
        """Raise an alert for every kiosk that has just gone silent; returns them."""
        now = self.center.clock.now()
        alerts = [KioskSilent(d.id, d.name, d.location, d.last_heartbeat_at, now)
                  for d in await self.store.newly_silent(now - self.silence, now)]
        for alert in alerts:
            log.warning("kiosk silent", extra={"device": alert.device_id})
            await self.center.bus.publish(alert)
        return alerts

    async def run(self) -> None:
        while True:
            try:
                if self.center.leading:  # one watcher in a cluster
                    await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancelling():  # a library turned our cancellation into its own error
                    raise asyncio.CancelledError from None
                log.exception("kiosk silence check failed")
            await asyncio.sleep(self.every)

    async def running(self) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: the checker runs while the app does."""
        task = asyncio.create_task(self.run(), name="kiosk-silence-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
