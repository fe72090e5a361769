"""The app factory: the one place that wires every room together."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from pydantic import ValidationError

import ivr
import routing
from agent_console import console
from agent_console.api import AUTH_KEY, CENTER_KEY, api, authenticate
from agent_console.rest import REQUEST_ID, error_response
from bot import wiring as bot_wiring
from channels import kiosk, slack, webchat
from channels.email import wiring as email_wiring
from onestop import knowledge_wiring
from onestop.database import current_revision, head_revision, migrate
from onestop.logs import request_id_var
from onestop.metrics import Metrics
from onestop.settings import AppSettings

log = logging.getLogger("onestop")
HERE = Path(__file__).resolve().parent
SETTINGS_KEY = web.AppKey("settings", AppSettings)
ROUTING_SETTINGS_KEY = web.AppKey("routing_settings", routing.Settings)
DATABASE_KEY = web.AppKey("database", routing.Database)
STARTED_KEY = web.AppKey("started_at", float)

#: Parts of the service desk that exist so far, for the home page and the start-up banner.
PARTS = [
    {"href": "/", "th": "เว็บไซต์หน่วยงานตัวอย่าง พร้อมแชต", "en": "Demo agency website with chat"},
    {"href": "/kiosk/", "th": "ตู้บริการอัตโนมัติ (ตัวอย่าง)", "en": "Self-service kiosk (reference app)"},
    {"href": "/ivr/simulator", "th": "โทรศัพท์จำลองสายด่วน", "en": "Hotline simulator"},
    {"href": "/console/", "th": "หน้าจอเจ้าหน้าที่", "en": "Agent console"},
    {"href": "/supervisor/", "th": "หน้าจอหัวหน้าเวร", "en": "Supervisor wall and reports"},
    {"href": "/admin/", "th": "ผู้ดูแลระบบ", "en": "Administration"},
    {"href": "/help", "th": "ค้นหาคำตอบด้วยตนเอง", "en": "Self-service answers"},
    {"href": "/api/openapi.json", "th": "เอกสาร REST API (OpenAPI)", "en": "REST API (OpenAPI)"},
    {"href": "/healthz", "th": "สถานะระบบ", "en": "Health"},
    {"href": "/readyz", "th": "ความพร้อมของระบบ", "en": "Readiness"},
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    settings: AppSettings,
    routing_settings: routing.Settings | None = None,
    *,
    clock: routing.Clock | None = None,
    bot: routing.Bot | None = None,
    migrate_schema: bool = True,
    wire_rooms: bool = True,
) -> web.Application:
    """Create the aiohttp application for one app node.

    Configuration files are loaded here, so a broken file stops start-up with a
    `ConfigError` naming the file, the line and the problem. `wire_rooms=False` leaves
    the channel rooms out (a room's own tests wire it with their own options).
    """
    rsettings = routing_settings or routing.load_settings(settings.config_dir)
    app = web.Application(
        # security_headers outside errors_as_json: domain errors turned into 4xx get them too.
        middlewares=[request_context, security_headers, errors_as_json, webhook_limits],
        client_max_size=1024 * 1024,
    )
    app[SETTINGS_KEY] = settings
    app[ROUTING_SETTINGS_KEY] = rsettings
    app[STARTED_KEY] = time.time()
    app[WEBHOOK_LIMITS_KEY] = routing.TokenBuckets(200, 50.0)
    aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True
    )

    # Built now (no I/O yet) so that every room gets the same objects when it is wired;
    # connections open and timers start in `core` below, when the server starts.
    db = routing.create_database(settings.database_url)
    blobs = routing.FileBlobStore(settings.data_dir / "blobs")
    cluster = routing.RedisCluster(settings.redis_url, prefix=settings.redis_prefix,
                                   node_id=settings.node_name) if settings.redis_url else None
    center = routing.ContactCenter(db, rsettings, clock=clock, bot=bot, blobs=blobs,
                                   cluster=cluster)
    app[DATABASE_KEY] = db
    app[CENTER_KEY] = center
    app[AUTH_KEY] = routing.StaffAuth(db, center.clock)

    async def core(app: web.Application) -> AsyncIterator[None]:
        if migrate_schema:
            await migrate(db)
        await center.start()
        yield
        await center.stop()
        await db.dispose()

    app.cleanup_ctx.append(core)
    app.router.add_get("/about", home)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_static("/static", HERE / "static")
    api.add_to(app, authenticate)
    if wire_rooms:
        kb = knowledge_wiring.setup(app, db.engine, settings)
        if bot is None and (settings.rasa_url or settings.bot == "managed"):
            bot_wiring.setup(app, center, rasa_url=settings.rasa_url,
                             rasa_token=settings.rasa_token, http_port=settings.http_port,
                             knowledge=kb)
        _wire_channels(app, center, settings)
        console.setup(app, center, data_dir=settings.data_dir, config_dir=settings.config_dir)

        def sockets() -> dict[str, int]:
            return {"chat": app[webchat.WEBCHAT_KEY].open_sockets(),
                    "console": len(app[console.HUB_KEY].connections)}

        metrics = Metrics(center, sockets)
        app.middlewares.append(metrics.middleware)
        app.router.add_get("/metrics", metrics.handle)
    return app


def _wire_channels(app: web.Application, center: routing.ContactCenter,
                   settings: AppSettings) -> None:
    """Plug each channel adapter into the core (each reads its own config file)."""
    webchat.setup(app, center, demo_site=True)
    secrets = settings.secrets
    ivr.setup(app, center, public_url=settings.public_url,
              auth_token=secrets.get("TWILIO_AUTH_TOKEN"),
              account_sid=secrets.get("TWILIO_ACCOUNT_SID"),
              phone_number=secrets.get("TWILIO_PHONE_NUMBER"),
              api_base_url=secrets.get("TWILIO_API_BASE_URL"),
              api_key=secrets.get("TWILIO_API_KEY"), api_secret=secrets.get("TWILIO_API_SECRET"),
              twiml_app_sid=secrets.get("TWILIO_TWIML_APP_SID"),
              bot=center.bot, simulator=settings.demo)
    kiosk.setup(app, center, authenticate=authenticate, demo=settings.demo)
    slack.setup(app, center, signing_secret=secrets.get("SLACK_SIGNING_SECRET"),
                bot_token=secrets.get("SLACK_BOT_TOKEN"),
                api_base_url=secrets.get("SLACK_API_BASE_URL"))
    email_config = settings.config_dir / "email.yaml"
    if email_config.exists() and settings.smtp_port >= 0:
        email_wiring.setup(app, center, email_wiring.load_settings(email_config),
                           smtp_host=settings.host, smtp_port=settings.smtp_port,
                           secrets=settings.secrets)


@aiohttp_jinja2.template("index.html")
async def home(request: web.Request) -> dict[str, Any]:
    return {"parts": PARTS}


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers and its schema is current; in a cluster, Redis
    answers. The bot is reported but not required: without it chats go to people."""
    checks: dict[str, str] = {}
    db = request.app[DATABASE_KEY]
    try:
        await db.ping()
        revision = await current_revision(db)
        checks["database"] = "ok" if revision == head_revision() else f"schema at {revision}"
    except Exception as exc:  # any failure means "not ready", with the reason shown
        checks["database"] = f"error: {type(exc).__name__}"
    center = request.app[CENTER_KEY]
    if center.cluster is not None:
        checks["redis"] = "ok" if await center.cluster.ping() else "error: unreachable"
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    if center.cluster is not None:
        body["node"] = {"id": center.cluster.node_id,
                        "role": "leader" if center.leading else "follower"}
    rasa = request.app.get(bot_wiring.BOT_KEY)
    if rasa is not None:
        body["bot"] = await rasa.health()
    return web.json_response(body, status=200 if ready else 503)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(api.openapi())


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id for every request (taken from X-Request-ID when sane), in logs too."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if incoming.isalnum() and len(incoming) <= 40 else secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    try:
        response = await handler(request)
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        log.info("request", extra={"method": request.method, "path": request.path,
                                   "ms": round((time.perf_counter() - started) * 1000, 1)})
        request_id_var.reset(token)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors become 4xx JSON with what was wrong; nothing becomes a bare 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"),
                              exc.text or exc.reason, request)
    except routing.NotFound as exc:
        return error_response(404, "not_found", str(exc), request)
    except routing.Conflict as exc:
        return error_response(409, "conflict", str(exc), request)
    except routing.Forbidden as exc:
        return error_response(403, "forbidden", str(exc), request)
    except routing.Unavailable as exc:
        response = error_response(503, "unavailable", str(exc), request)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except (routing.InvalidIdentity, ValidationError) as exc:
        return error_response(422, "invalid", str(exc), request)
    except ValueError as exc:
        return error_response(400, "bad_request", str(exc), request)
    except json.JSONDecodeError as exc:
        return error_response(400, "malformed_json", str(exc), request)
    except Exception:
        log.exception("unhandled error")
        return error_response(500, "internal_error",
                              "something went wrong on our side; quote the request id",
                              request)


#: Provider webhooks are signed, so a flood needs a leaked secret or the provider itself;
#: still, no single address may take the node: a burst of 200, then 50 a second.
WEBHOOK_PREFIXES = ("/ivr/", "/slack/")
WEBHOOK_LIMITS_KEY = web.AppKey("webhook_limits", routing.TokenBuckets)


@web.middleware
async def webhook_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Rate-limit provider webhooks per client address (429 with Retry-After)."""
    if request.path.startswith(WEBHOOK_PREFIXES) and request.method == "POST":
        prefix = next(p for p in WEBHOOK_PREFIXES if request.path.startswith(p))
        wait = request.config_dict[WEBHOOK_LIMITS_KEY].take(f"{prefix}{request.remote}")
        if wait:
            return web.json_response(
                {"error": {"code": "too_many_requests",
                           "message": f"too many requests; retry in {wait:.1f} s"}},
                status=429, headers={"Retry-After": str(int(wait) + 1)})
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Defensive headers on every response, errors raised as HTTP exceptions included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure(exc.headers)
        raise
    _secure(response.headers)
    return response


def _secure(headers: Any) -> None:
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Permissions-Policy", "camera=(), geolocation=(), microphone=(self)")
