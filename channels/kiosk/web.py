"""HTTP: the signed feed, the published schema and catalogue, device monitoring for
supervisors, the reference kiosk app, and (demo only) the demo kiosk's key."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from channels.kiosk.feed import KioskFeed, envelope_errors, published_schema
from channels.kiosk.monitor import SilenceWatch
from channels.kiosk.signing import (
    DEVICE_HEADER,
    REPLAY_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    matches_any,
)
from channels.kiosk.store import DeviceView, KioskStore
from routing import ContactCenter, StaffIdentity, TokenBuckets

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
#: The kiosk the demo registers; its key is handed out only when `demo=True`.
DEMO_DEVICE_ID = "demo-kiosk-1"

Authenticate = Callable[[web.Request], Awaitable[StaffIdentity | None]]


@dataclass
class Kiosk:
    """Everything the kiosk room runs, reachable from the app as `app[KIOSK_KEY]`."""

    center: ContactCenter
    store: KioskStore
    feed: KioskFeed
    watch: SilenceWatch
    authenticate: Authenticate
    demo: bool
    #: Requests per device: a burst of 60 (an offline buffer), then 2 a second.
    limits: TokenBuckets = field(default_factory=lambda: TokenBuckets(60, 2.0))


KIOSK_KEY = web.AppKey("kiosk", Kiosk)


async def refuse_everyone(request: web.Request) -> StaffIdentity | None:
    """The default staff check: nobody (the app wires the real one)."""
    return None


def setup(
    app: web.Application,
    center: ContactCenter,
    *,
    authenticate: Authenticate = refuse_everyone,
    demo: bool = False,
    silence_minutes: float = 5,
    check_every_seconds: float = 30,
    create_tables: bool = False,
) -> None:
    """Add the kiosk room's routes under /kiosk and start its silence checker with the app.

    `authenticate` tells who the staff member behind a request is (supervisors read the
    device list). `demo` registers the demo kiosk and serves its key to the reference app
    (never in production). `create_tables` creates this room's tables at start-up
    (tests, development); production creates them with the migrations.
    """
    store = KioskStore(center.db)
    kiosk = Kiosk(center, store, KioskFeed(center, store),
                  SilenceWatch(center, store, silence=timedelta(minutes=silence_minutes),
                               every=check_every_seconds),
                  authenticate, demo)
    # Routes on the main app rather than a sub-app: the staff check passed in reads the
    # main app's state through `request.app`.
    app[KIOSK_KEY] = kiosk
    app.router.add_get("/kiosk/", index)
    app.router.add_get("/kiosk/v1/schema.json", schema)
    app.router.add_get("/kiosk/v1/catalogue", catalogue)
    app.router.add_post("/kiosk/v1/events", events)
    app.router.add_get("/kiosk/v1/devices", devices)
    if demo:
        app.router.add_get("/kiosk/demo/device", demo_device)
    app.router.add_static("/kiosk/static", STATIC)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        if create_tables:
            await store.create_tables()
        if demo and await store.secrets_of(DEMO_DEVICE_ID) is None:
            await store.register_device(DEMO_DEVICE_ID, "ตู้บริการสาธิต / Demo kiosk",
                                        "สำนักงานสาธิต / Demo office", center.clock.now())
        async for _ in kiosk.watch.running():
            yield

    app.cleanup_ctx.append(lifecycle)


# -- handlers ------------------------------------------------------------------------------


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html",
                            headers={"Cache-Control": "no-cache"})


async def schema(request: web.Request) -> web.Response:
    """The JSON Schema of the feed, with the catalogue's category codes."""
    return web.json_response(published_schema(request.app[KIOSK_KEY].center),
                             content_type="application/schema+json")


async def catalogue(request: web.Request) -> web.Response:
    """The services a kiosk offers, in Thai and English."""
    categories = request.app[KIOSK_KEY].center.settings.categories.values()
    return web.json_response({"categories": [
        {"code": c.code, "name": {"th": c.name.th, "en": c.name.en}, "urgent": c.urgent}
        for c in categories]})


async def events(request: web.Request) -> web.Response:
    """POST /kiosk/v1/events: a signed batch; 200 with one result per event, or 400 when
    the batch itself is malformed or every event in it was refused."""
    kiosk = request.app[KIOSK_KEY]
    body = await request.read()
    device = await _signed_device(request, kiosk, body)
    wait = kiosk.limits.take(device.id)
    if wait:
        # A kiosk replaying a long offline buffer keeps it and retries; nothing is lost.
        response = _error(429, "too_many_requests",
                          f"this kiosk sent too many requests; retry in {wait:.0f} s")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _error(400, "malformed_json", f"the body is not JSON: {exc}")
    problems = envelope_errors(payload)
    if problems:
        return _error(400, "invalid_batch",
                      'the body must be {"events": [...]} with 1 to 100 events', problems)
    outcomes = await kiosk.feed.handle(device, payload["events"])
    counts = {s: sum(1 for o in outcomes if o.status == s)
              for s in ("accepted", "duplicate", "rejected", "failed")}
    status = 400 if counts["rejected"] == len(outcomes) else 200
    return web.json_response({**counts, "results": [o.as_json() for o in outcomes]},
                             status=status)


async def devices(request: web.Request) -> web.Response:
    """Supervisors: every kiosk, its last heartbeat and status, and whether it is silent."""
    kiosk = request.app[KIOSK_KEY]
    staff = await kiosk.authenticate(request)
    if staff is None:
        return _error(401, "unauthenticated", "sign in first (Authorization: Bearer <token>)")
    if not staff.has_role("supervisor"):
        return _error(403, "forbidden", "only supervisors see the kiosks")
    now = kiosk.center.clock.now()
    return web.json_response({"devices": [_device_json(d, now, kiosk.watch.silence)
                                          for d in await kiosk.store.devices()]})


async def demo_device(request: web.Request) -> web.Response:
    """DEMO ONLY (registered when `demo=True`): the demo kiosk's id and signing secret, so
    that the reference app in a browser can sign like a real kiosk."""
    kiosk = request.app[KIOSK_KEY]
    secret = await kiosk.store.newest_secret(DEMO_DEVICE_ID)
    if secret is None:
        return _error(404, "not_found", "the demo kiosk has no active key")
    return web.json_response({"device_id": DEMO_DEVICE_ID, "secret": secret, "demo": True},
                             headers={"Cache-Control": "no-store"})


# -- helpers -------------------------------------------------------------------------------


async def _signed_device(request: web.Request, kiosk: Kiosk, body: bytes) -> DeviceView:
    """The kiosk that signed this request, or an HTTP error saying what is wrong."""
    device_id = request.headers.get(DEVICE_HEADER, "")
    stamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    missing = [h for h, v in ((DEVICE_HEADER, device_id), (TIMESTAMP_HEADER, stamp),
                              (SIGNATURE_HEADER, signature)) if not v]
    if missing:
        raise _refusal(401, "unsigned", f"missing header(s): {', '.join(missing)}")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise _refusal(401, "bad_timestamp",
                       f"{TIMESTAMP_HEADER} must be Unix time in whole seconds")
    now = kiosk.center.clock.now()
    if abs(now.timestamp() - int(stamp)) > REPLAY_WINDOW_SECONDS:
        raise _refusal(401, "stale_timestamp",
                       f"{TIMESTAMP_HEADER} is more than {REPLAY_WINDOW_SECONDS // 60} minutes "
                       "from the server's clock; check the kiosk's clock and sign again",
                       server_time=int(now.timestamp()))
    found = await kiosk.store.secrets_of(device_id)
    if found is None:
        raise _refusal(401, "unknown_device", f"no kiosk is registered as {device_id!r}")
    enabled, secrets_ = found
    if not matches_any(secrets_, stamp, body, signature):
        log.warning("kiosk signature refused", extra={"device": device_id})
        raise _refusal(401, "bad_signature",
                       "the signature does not match the body with any active key of "
                       "this kiosk (see /kiosk/v1/schema.json and the kiosk README)")
    if not enabled:
        raise _refusal(403, "device_disabled", f"kiosk {device_id!r} is disabled")
    await kiosk.store.seen(device_id, now)
    return await kiosk.store.device(device_id)


def _device_json(d: DeviceView, now: datetime, silence: timedelta) -> dict[str, Any]:
    last = d.last_heartbeat_at
    return {
        "id": d.id, "name": d.name, "location": d.location, "enabled": d.enabled,
        "registered_at": d.registered_at.isoformat(),
        "last_seen_at": d.last_seen_at.isoformat() if d.last_seen_at else None,
        "last_heartbeat_at": last.isoformat() if last else None,
        "seconds_since_heartbeat": round((now - last).total_seconds()) if last else None,
        "status": d.status,
        "silent": d.silent_since is not None or (
            d.enabled and (now - (last or d.registered_at)) > silence),
        "silent_since": d.silent_since.isoformat() if d.silent_since else None,
        "active_keys": list(d.key_ids),
    }


def _refusal(status: int, code: str, message: str, **details: Any) -> web.HTTPException:
    response = _error(status, code, message, details=details or None)
    cls = web.HTTPUnauthorized if status == 401 else web.HTTPForbidden
    return cls(text=response.text, content_type="application/json")


def _error(status: int, code: str, message: str, errors: list[dict[str, str]] | None = None,
           details: dict[str, Any] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if errors:
        error["errors"] = errors
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=status)
