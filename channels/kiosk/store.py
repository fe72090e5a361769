"""The kiosk room's own tables and their repository: devices, their keys, the events
already handled (with what the kiosk was told) and queue-ticket counters.

Device secrets are stored as they are, not hashed: checking an HMAC needs the secret
itself on the server. Whoever can read these rows can sign as a kiosk; they are as
sensitive as the database itself (see README.md, "Keys").
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    MetaData,
    String,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from routing import Conflict, Database, NotFound, UTCDateTime

#: At most this many keys of a device are valid at once (old and new during a rotation).
MAX_ACTIVE_KEYS = 2
#: 24 characters at most: short enough to read out to a technician, and "kiosk:" + the id
#: names the device in the core's provider-event log.
DEVICE_ID = re.compile(r"^[A-Za-z0-9_.-]{3,24}$")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class _Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON,
    }


class KioskDevice(_Base):
    """A registered kiosk and what it last said about itself."""

    __tablename__ = "kiosk_devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    status: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Set when a KioskSilent alert was raised; cleared (and KioskBack raised) on return.
    silent_since: Mapped[datetime | None]


class KioskDeviceKey(_Base):
    """A signing key of a device; `retired_at` set means it no longer signs."""

    __tablename__ = "kiosk_device_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("kiosk_devices.id"), index=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]


class KioskEvent(_Base):
    """An event already handled, and the answer the kiosk got (replayed on a duplicate)."""

    __tablename__ = "kiosk_events"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(30))
    visit_id: Mapped[str | None] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime]
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)


class KioskTicketCounter(_Base):
    """The last queue-ticket number given, per location, day and letter."""

    __tablename__ = "kiosk_ticket_counters"
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A new signing key: give `secret` to the kiosk once; only `key_id` is shown later."""

    device_id: str
    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A device as the supervisor sees it (no secrets)."""

    id: str
    name: str
    location: str
    enabled: bool
    registered_at: datetime
    last_seen_at: datetime | None
    last_heartbeat_at: datetime | None
    status: dict[str, Any]
    silent_since: datetime | None
    key_ids: tuple[str, ...]


class KioskStore:
    """Devices, keys, handled events and ticket numbers, in the app's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_tables(self) -> None:
        """Create this room's tables if missing (tests, development; production migrates)."""
        async with self.db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    # -- devices and keys -------------------------------------------------------------

    async def register_device(self, device_id: str, name: str, location: str,
                              now: datetime) -> DeviceKey:
        """Register a kiosk and return its first key (the secret is shown only now)."""
        if not DEVICE_ID.match(device_id):
            raise ValueError("device id must be 3–24 letters, digits or _ . -")
        key = _new_key(device_id)
        try:
            async with self.db.sessions() as s, s.begin():
                if await s.get(KioskDevice, device_id) is not None:
                    raise Conflict(f"kiosk {device_id!r} is already registered")
                s.add(KioskDevice(id=device_id, name=name, location=location, enabled=True,
                                  registered_at=now, status={}))
                await s.flush()
                s.add(KioskDeviceKey(id=key.key_id, device_id=device_id, secret=key.secret,
                                     created_at=now))
        except IntegrityError as exc:
            raise Conflict(f"kiosk {device_id!r} is already registered") from exc
        return key

    async def add_key(self, device_id: str, now: datetime) -> DeviceKey:
        """A second key for a rotation: both sign until the old one is retired."""
        key = _new_key(device_id)
        async with self.db.sessions() as s, s.begin():
            await _device(s, device_id)
            active = await s.scalar(select(func.count()).select_from(KioskDeviceKey).where(
                KioskDeviceKey.device_id == device_id, KioskDeviceKey.retired_at.is_(None)))
            if (active or 0) >= MAX_ACTIVE_KEYS:
                raise Conflict(f"kiosk {device_id!r} already has {MAX_ACTIVE_KEYS} active "
                               "keys: retire one first")
            s.add(KioskDeviceKey(id=key.key_id, device_id=device_id, secret=key.secret,
                                 created_at=now))
        return key

    async def retire_key(self, device_id: str, key_id: str, now: datetime) -> None:
        """Stop accepting signatures made with this key."""
        async with self.db.sessions() as s, s.begin():
            key = await s.get(KioskDeviceKey, key_id)
            if key is None or key.device_id != device_id or key.retired_at is not None:
                raise NotFound("active kiosk key", key_id)
            key.retired_at = now

    async def set_enabled(self, device_id: str, enabled: bool, now: datetime) -> None:
        """Disable a kiosk (lost, stolen, decommissioned) or enable it again."""
        async with self.db.sessions() as s, s.begin():
            device = await _device(s, device_id)
            device.enabled = enabled
            device.disabled_at = None if enabled else now
            if not enabled:
                device.silent_since = None

    async def secrets_of(self, device_id: str) -> tuple[bool, list[str]] | None:
        """(enabled, active secrets) of a device, or None when it is unknown."""
        async with self.db.sessions() as s:
            device = await s.get(KioskDevice, device_id)
            if device is None:
                return None
            keys = (await s.scalars(select(KioskDeviceKey.secret).where(
                KioskDeviceKey.device_id == device_id, KioskDeviceKey.retired_at.is_(None))
                .order_by(KioskDeviceKey.created_at))).all()
        return device.enabled, list(keys)

    async def newest_secret(self, device_id: str) -> str | None:
        """The newest active secret of a device (the demo kiosk's key endpoint)."""
        found = await self.secrets_of(device_id)
        return found[1][-1] if found and found[1] else None

    async def devices(self) -> list[DeviceView]:
        async with self.db.sessions() as s:
            devices = (await s.scalars(select(KioskDevice).order_by(KioskDevice.id))).all()
            keys = (await s.execute(select(KioskDeviceKey.device_id, KioskDeviceKey.id).where(
                KioskDeviceKey.retired_at.is_(None)).order_by(KioskDeviceKey.created_at))).all()
        key_ids: dict[str, list[str]] = {}
        for device_id, key_id in keys:
            key_ids.setdefault(device_id, []).append(key_id)
        return [DeviceView(d.id, d.name, d.location, d.enabled, d.registered_at,
                           d.last_seen_at, d.last_heartbeat_at, dict(d.status or {}),
                           d.silent_since, tuple(key_ids.get(d.id, ())))
                for d in devices]

    async def device(self, device_id: str) -> DeviceView:
        for view in await self.devices():
            if view.id == device_id:
                return view
        raise NotFound("kiosk", device_id)

    # -- liveness ---------------------------------------------------------------------

    async def seen(self, device_id: str, now: datetime,
                   heartbeat: dict[str, Any] | None = None) -> bool:
        """Note that the device spoke (and its status, for a heartbeat).

        Returns True when this heartbeat ends a silence that had raised an alert; only one
        caller (node) gets True for a given silence.
        """
        async with self.db.sessions() as s, s.begin():
            await s.execute(update(KioskDevice).where(KioskDevice.id == device_id)
                            .values(last_seen_at=now))
            if heartbeat is None:
                return False
            await s.execute(update(KioskDevice).where(KioskDevice.id == device_id)
                            .values(last_heartbeat_at=now, status=heartbeat))
            back = await s.execute(update(KioskDevice).where(
                KioskDevice.id == device_id, KioskDevice.silent_since.is_not(None))
                .values(silent_since=None))
            return bool(getattr(back, "rowcount", 0) == 1)

    async def newly_silent(self, cutoff: datetime, now: datetime) -> list[DeviceView]:
        """Enabled devices with no heartbeat since `cutoff` that have no alert yet; each is
        marked, so that it is reported once (by one node)."""
        async with self.db.sessions() as s:
            candidates = (await s.scalars(select(KioskDevice.id).where(
                KioskDevice.enabled.is_(True), KioskDevice.silent_since.is_(None),
                func.coalesce(KioskDevice.last_heartbeat_at, KioskDevice.registered_at)
                < cutoff))).all()
        marked: list[str] = []
        for device_id in candidates:
            async with self.db.sessions() as s, s.begin():
                result = await s.execute(update(KioskDevice).where(
                    KioskDevice.id == device_id, KioskDevice.silent_since.is_(None))
                    .values(silent_since=now))
                if getattr(result, "rowcount", 0) == 1:
                    marked.append(device_id)
        return [d for d in await self.devices() if d.id in marked]

    # -- events -----------------------------------------------------------------------

    async def result_of(self, device_id: str, event_id: str) -> dict[str, Any] | None:
        """What the kiosk was told about this event the first time, or None if new."""
        async with self.db.sessions() as s:
            row = await s.get(KioskEvent, (device_id, event_id))
        return dict(row.result) if row is not None else None

    async def save_result(self, device_id: str, event_id: str, type_: str,
                          visit_id: str | None, result: dict[str, Any], now: datetime) -> bool:
        """Remember an event's answer; False when another request stored it first."""
        try:
            async with self.db.sessions() as s, s.begin():
                s.add(KioskEvent(device_id=device_id, event_id=event_id, type=type_,
                                 visit_id=visit_id, received_at=now, result=result))
        except IntegrityError:
            return False
        return True

    async def issue_ticket(self, device_id: str, event_id: str, visit_id: str | None,
                           counter: str, prefix: str, result: dict[str, Any],
                           now: datetime) -> dict[str, Any]:
        """Give the next ticket number of `counter` and store the event with it, in one
        transaction: the same event never gets two numbers. Returns the stored result."""
        for _ in range(6):
            try:
                async with self.db.sessions() as s, s.begin():
                    known = await s.get(KioskEvent, (device_id, event_id))
                    if known is not None:
                        return {**known.result, "duplicate": True}
                    value = await s.scalar(
                        update(KioskTicketCounter).where(KioskTicketCounter.name == counter)
                        .values(value=KioskTicketCounter.value + 1)
                        .returning(KioskTicketCounter.value))
                    if value is None:
                        s.add(KioskTicketCounter(name=counter, value=1))
                        await s.flush()
                        value = 1
                    stored = {**result, "ticket_number": f"{prefix}{value:03d}"}
                    s.add(KioskEvent(device_id=device_id, event_id=event_id,
                                     type="queue_ticket", visit_id=visit_id, received_at=now,
                                     result=stored))
                return stored
            except IntegrityError:
                continue  # a concurrent request won: read its answer on the next turn
        raise Conflict("could not issue a ticket number; try again")


async def _device(s: AsyncSession, device_id: str) -> KioskDevice:
    device = await s.get(KioskDevice, device_id)
    if device is None:
        raise NotFound("kiosk", device_id)
    return device


def _new_key(device_id: str) -> DeviceKey:
    return DeviceKey(device_id, "k" + secrets.token_hex(6), secrets.token_urlsafe(32))
