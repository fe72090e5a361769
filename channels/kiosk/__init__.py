"""Kiosk channel: the signed event feed `POST /kiosk/v1/events`, device keys and
monitoring, and the reference kiosk app at `/kiosk/` (protocol: README.md).

Wire it with `setup(app, center, authenticate=…)`; its tables are in `metadata`.
"""

from channels.kiosk.events import KioskBack, KioskSilent
from channels.kiosk.feed import SCHEMA, SCHEMA_PATH, KioskFeed
from channels.kiosk.signing import (
    DEVICE_HEADER,
    REPLAY_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
)
from channels.kiosk.store import (
    MAX_ACTIVE_KEYS,
    DeviceKey,
    DeviceView,
    KioskDevice,
    KioskDeviceKey,
    KioskEvent,
    KioskStore,
    KioskTicketCounter,
    metadata,
)
from channels.kiosk.web import DEMO_DEVICE_ID, KIOSK_KEY, Kiosk, refuse_everyone, setup

__all__ = [
    "DEMO_DEVICE_ID",
    "DEVICE_HEADER",
    "KIOSK_KEY",
    "MAX_ACTIVE_KEYS",
    "REPLAY_WINDOW_SECONDS",
    "SCHEMA",
    "SCHEMA_PATH",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeviceKey",
    "DeviceView",
    "Kiosk",
    "KioskBack",
    "KioskDevice",
    "KioskDeviceKey",
    "KioskEvent",
    "KioskFeed",
    "KioskSilent",
    "KioskStore",
    "KioskTicketCounter",
    "metadata",
    "refuse_everyone",
    "setup",
    "sign",
    "signed_headers",
]
