"""Events this room publishes on the core's bus (alerts for supervisors, Slack, metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from routing import register_event


@dataclass(frozen=True, slots=True)
class KioskSilent:
    """A kiosk sent no heartbeat for longer than the allowed silence (raised once)."""

    device_id: str
    name: str
    location: str
    last_heartbeat_at: datetime | None
    silent_since: datetime


@dataclass(frozen=True, slots=True)
class KioskBack:
    """A kiosk that had been reported silent sent a heartbeat again."""

    device_id: str
    name: str
    location: str
    at: datetime


# In a cluster these reach every node (the supervisors' screens may be on any of them).
register_event(KioskSilent, KioskBack)
