"""The console screens: sign-in, the agent's desk, the supervisors' wall, reports and
administration, with live updates over a staff WebSocket.

`setup(app, center)` adds everything to the main app (the composition root calls it).
Pages are rendered by Jinja2 with autoescape; scripts and styles are static files (the
app's CSP allows nothing inline). Every form that changes something carries the CSRF
token of the session; the scripts send it as `X-CSRF-Token`.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from agent_console import api_console
from agent_console.api import AUTH_KEY, CENTER_KEY, SESSION_COOKIE, api, authenticate
from agent_console.data import canned_responses, wrap_codes
from agent_console.i18n import LANG_COOKIE, TEXT_COOKIE, catalogue, language_of, translate
from agent_console.live import LiveHub
from agent_console.reports import DIMENSIONS, bars, period, report, to_csv, totals
from agent_console.rest import REQUEST_ID, Api, throttle_of
from routing import (
    Actor,
    AgentRecord,
    Channel,
    Citizen,
    ContactCenter,
    LoginFailed,
    StaffIdentity,
    hash_password,
)

HERE = Path(__file__).resolve().parent
#: The Twilio Voice JS SDK, fetched from npm by scripts/ensure-voice-sdk.sh (never committed).
VOICE_SDK = HERE.parent / ".cache" / "voice-sdk" / "twilio.min.js"
#: The desk may reach Twilio's voice endpoints (signalling, media, the SDK's sounds); every
#: other page keeps the app's default policy.
DESK_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self' https://*.twilio.com wss://*.twilio.com; "
            "media-src 'self' https://*.twilio.com; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'")
log = logging.getLogger(__name__)
TEMPLATES_KEY = web.AppKey("console_templates", jinja2.Environment)
HUB_KEY = web.AppKey("console_live", LiveHub)
LOGIN_CSRF_COOKIE = "onestop_login_csrf"
ROLE_HOME = (("admin", "/admin/"), ("supervisor", "/supervisor/"), ("agent", "/console/"))
PageHandler = Callable[[web.Request, StaffIdentity], Awaitable[web.StreamResponse]]

assert api_console  # its routes are registered on `api` when it is imported


def setup(app: web.Application, center: ContactCenter, **settings: Any) -> None:
    """Add the console's pages, static files, API routes and live updates to `app`.

    Calling it again on the same app does nothing (tests may wire it themselves)."""
    if HUB_KEY in app:
        return
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                         autoescape=True, app_key=TEMPLATES_KEY)
    _add_missing_api_routes(app)
    hub = LiveHub(center)
    app[HUB_KEY] = hub
    # Fail at start-up, not at the first click, when a data file is wrong.
    canned_responses()
    wrap_codes()

    async def live(app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    app.cleanup_ctx.append(live)
    r = app.router
    r.add_get("/console", to_desk)
    r.add_get("/console/login", login_page)
    r.add_post("/console/login", login_submit)
    r.add_post("/console/logout", logout)
    r.add_post("/console/logout-everywhere", logout_everywhere)
    r.add_get("/console/prefs", preferences)
    r.add_get("/console/", _page(desk_page, "agent", "supervisor"))
    r.add_get("/console/ws", live_socket)
    r.add_get("/supervisor/", _page(wall_page, "supervisor"))
    r.add_get("/supervisor/conversations/{conversation_id}", _page(monitor_page, "supervisor"))
    r.add_get("/supervisor/reports", _page(reports_page, "supervisor"))
    r.add_get("/admin/", _page(admin_page, "admin"))
    r.add_post("/admin/agents", _page(create_agent, "admin"))
    r.add_static("/console/static", HERE / "static")
    r.add_get("/console/vendor/twilio.min.js", voice_sdk)


# ---------------------------------------------------------------------------------------
# Sign-in


async def to_desk(request: web.Request) -> web.StreamResponse:
    return _redirect("/console/")


async def login_page(request: web.Request) -> web.StreamResponse:
    return _login_form(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username, password = str(form.get("username", ""))[:80], str(form.get("password", ""))
    lang = language_of(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(expected, str(form.get("csrf_token", ""))):
        return _login_form(request, translate(lang, "login.expired"), username, status=403)
    throttle, address = throttle_of(request), request.remote or "?"
    wait = throttle.retry_after(address)
    if wait:
        refused = _login_form(request, translate(lang, "login.throttled", seconds=str(wait)),
                              username, status=429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    try:
        token, who = await request.app[AUTH_KEY].login(username, password)
    except LoginFailed as exc:
        throttle.failed(address)
        if exc.locked_until:
            until = exc.locked_until.astimezone(_bangkok()).strftime("%H:%M")
            return _login_form(request, translate(lang, "login.locked", until=until),
                               username, status=423)
        return _login_form(request, translate(lang, "login.failed"), username, status=401)
    response = _redirect(_safe_next(request.query.get("next")) or _home_of(who))
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict",
                        secure=request.secure, path="/")
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/console/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    staff = await _form_staff(request)
    token = request.cookies.get(SESSION_COOKIE)
    if staff is None or not token:
        return _refused(request, staff)
    await request.app[AUTH_KEY].logout(token)
    await request.app[HUB_KEY].disconnect(agent_id=staff.agent_id, session_id=staff.session_id)
    return _signed_out()


async def logout_everywhere(request: web.Request) -> web.StreamResponse:
    staff = await _form_staff(request)
    if staff is None:
        return _refused(request, staff)
    await request.app[AUTH_KEY].logout_everywhere(staff.agent_id)
    await request.app[HUB_KEY].disconnect(agent_id=staff.agent_id)
    return _signed_out()


async def preferences(request: web.Request) -> web.StreamResponse:
    """The language switch and the large-text setting (remembered in cookies)."""
    response = _redirect(_safe_next(request.query.get("next")) or "/console/")
    year = 365 * 24 * 3600
    if request.query.get("lang") in ("th", "en"):
        response.set_cookie(LANG_COOKIE, request.query["lang"], max_age=year, path="/",
                            samesite="Lax", httponly=True)
    if request.query.get("text") in ("large", "normal"):
        response.set_cookie(TEXT_COOKIE, request.query["text"], max_age=year, path="/",
                            samesite="Lax", httponly=True)
    return response


# ---------------------------------------------------------------------------------------
# Pages


async def desk_page(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    data = {
        "me": {"agent_id": staff.agent_id, "display_name": staff.display_name},
        "queues": [{"id": q, "th": spec.spec.name.th, "en": spec.spec.name.en}
                   for q, spec in center.settings.queues.items()],
        "categories": [{"code": c.code, "th": c.name.th, "en": c.name.en}
                       for c in center.settings.categories.values()],
        "departments": [{"id": d.id, "th": d.name.th, "en": d.name.en}
                        for d in center.settings.departments.values()],
        "canned": [c.model_dump() for c in canned_responses()],
        "wrap_codes": [w.model_dump() for w in wrap_codes()],
        "statuses": ["new", "open", "pending_citizen", "pending_back_office", "resolved",
                     "closed", "reopened"],
    }
    response = _render("console.html", request, staff, data=data, page="console")
    response.headers["Content-Security-Policy"] = DESK_CSP
    return response


async def voice_sdk(request: web.Request) -> web.StreamResponse:
    """The Twilio Voice JS SDK for the desk's phone. Missing (the build step did not run)
    is a clear 404 and a log line; the desk then shows the phone offline."""
    if not VOICE_SDK.is_file():
        log.error("the Twilio Voice SDK is missing: run scripts/ensure-voice-sdk.sh "
                  "(make run / make test do)", extra={"path": str(VOICE_SDK)})
        return web.Response(status=404, text="the Twilio Voice SDK is not installed; run "
                                             "scripts/ensure-voice-sdk.sh\n")
    return web.FileResponse(VOICE_SDK, headers={"Content-Type": "text/javascript",
                                                "Cache-Control": "public, max-age=3600"})


async def wall_page(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    data = {"queues": [{"id": q, "th": spec.spec.name.th, "en": spec.spec.name.en}
                       for q, spec in center.settings.queues.items()]}
    return _render("supervisor.html", request, staff, data=data, page="supervisor")


async def monitor_page(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    """A read-only view of one conversation (silent monitoring; live with the script)."""
    center = request.app[CENTER_KEY]
    conv = await center.conversation(request.match_info["conversation_id"])
    case = await center.case(conv.case_id)
    async with center.db.sessions() as s:
        citizen = await s.get(Citizen, conv.citizen_id)
    messages = await center.messages(conv.id)
    await center.audit(_actor(request, staff), "monitor", "conversation", conv.id,
                       conv.citizen_id)
    return _render("monitor.html", request, staff, conversation=conv, case=case,
                   citizen_name=citizen and (citizen.name_th or citizen.name_en),
                   messages=messages, data={"conversation_id": conv.id}, page="supervisor")


async def reports_page(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    today = center.clock.now().astimezone(_bangkok()).date()
    errors: list[str] = []
    try:
        start = date.fromisoformat(request.query.get("from") or str(today - timedelta(days=6)))
        end = date.fromisoformat(request.query.get("to") or str(today))
    except ValueError:
        errors.append("from/to: YYYY-MM-DD")
        start, end = today - timedelta(days=6), today
    if end < start:
        start, end = end, start
    by = request.query.get("by", "channel")
    if by not in DIMENSIONS:
        by = "channel"
    rows = await report(center, *period(start, end), by)
    if request.query.get("format") == "csv":
        return web.Response(
            text=to_csv(rows, by), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition":
                     f'attachment; filename="onestop-{by}-{start}-{end}.csv"'})
    query = f"from={start}&to={end}&by={by}"
    return _render("reports.html", request, staff, rows=rows, totals=totals(rows), by=by,
                   start=start, end=end, dimensions=DIMENSIONS, errors=errors,
                   csv_href=f"/supervisor/reports?{query}&format=csv",
                   volume_chart=bars(rows, "volume"),
                   sl_chart=bars(rows, "service_level"), page="reports")


async def admin_page(request: web.Request, staff: StaffIdentity,
                     errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                     created: str | None = None, status: int = 200) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    agents, _ = await center.list_rows(AgentRecord, order_by=AgentRecord.username, limit=1000)
    return _render("admin.html", request, staff, agents=agents,
                   queues=center.settings.queues, canned=canned_responses(),
                   wrap=wrap_codes(), errors=errors or {}, values=values or {},
                   created=created, page="admin", status=status)


async def create_agent(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() for k in
              ("username", "display_name", "languages", "skills", "capacity")}
    roles = [str(r) for r in form.getall("roles", [])]
    password = str(form.get("password", ""))
    errors, parsed = validate_agent_form(values, roles, password)
    if not errors and await center.agent_by_username(values["username"]) is not None:
        errors["username"] = "err.username_taken"
    if errors:
        values["roles"] = ",".join(roles)
        return await admin_page(request, staff, errors=errors, values=values, status=422)
    await center.upsert_agent(username=values["username"],
                              display_name=values["display_name"],
                              password_hash=hash_password(password), **parsed)
    return await admin_page(request, staff, created=values["display_name"], status=201)


def validate_agent_form(values: dict[str, str], roles: list[str], password: str
                        ) -> tuple[dict[str, str], dict[str, Any]]:
    """Check the create-agent form; errors map a field to a catalogue key."""
    errors: dict[str, str] = {}
    if not re.fullmatch(r"[a-z0-9._-]{3,40}", values["username"]):
        errors["username"] = "err.username"
    if not values["display_name"] or len(values["display_name"]) > 200:
        errors["display_name"] = "err.display_name"
    if len(password) < 12 or len(password) > 200:
        errors["password"] = "err.password"  # noqa: S105 (a message key)
    if not roles or not set(roles) <= {"agent", "supervisor", "admin"}:
        errors["roles"] = "err.roles"
    languages = [x.strip() for x in values["languages"].split(",") if x.strip()] or ["th"]
    if not set(languages) <= {"th", "en"}:
        errors["languages"] = "err.languages"
    parsed: dict[str, Any] = {"roles": roles, "languages": languages}
    for name in ("skills", "capacity"):
        pairs: dict[str, int] = {}
        for item in filter(None, (x.strip() for x in values[name].split(","))):
            key, _, number = item.partition("=")
            if not re.fullmatch(r"[a-z_]{1,40}", key.strip()) or not number.strip().isdigit():
                errors[name] = "err.pairs"
                break
            if name == "capacity" and key.strip() not in {str(c) for c in Channel}:
                errors[name] = "err.channel"
                break
            pairs[key.strip()] = int(number)
        parsed[name] = pairs
    return errors, parsed


# ---------------------------------------------------------------------------------------
# Live updates


async def live_socket(request: web.Request) -> web.StreamResponse:
    """The staff WebSocket: signed in with the session cookie, from this site only."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="cross-site WebSocket refused")
    staff = await _cookie_staff(request)
    if staff is None:
        raise web.HTTPUnauthorized(text="sign in first")
    return await request.app[HUB_KEY].serve(request, staff)


# ---------------------------------------------------------------------------------------
# Helpers


def _page(handler: PageHandler, *roles: str) -> Callable[[web.Request], Awaitable[
        web.StreamResponse]]:
    """Signed-in staff with one of `roles` only: others go to sign-in or get a 403 page."""

    async def page(request: web.Request) -> web.StreamResponse:
        staff = await _cookie_staff(request)
        if staff is None:
            return _redirect("/console/login?next=" + quote(request.path_qs, safe=""))
        if not staff.has_role(*roles):
            lang = language_of(request)
            names = ", ".join(translate(lang, f"role.{r}") for r in roles)
            return _render("forbidden.html", request, staff, roles=names, status=403)
        if request.method == "POST" and not await _csrf_ok(request, staff):
            return _render("forbidden.html", request, staff, csrf=True, status=403)
        return await handler(request, staff)

    page.__name__ = handler.__name__
    return page


async def _cookie_staff(request: web.Request) -> StaffIdentity | None:
    token = request.cookies.get(SESSION_COOKIE)
    return await request.app[AUTH_KEY].authenticate(token) if token else None


async def _csrf_ok(request: web.Request, staff: StaffIdentity) -> bool:
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in ("application/x-www-form-urlencoded",
                                                 "multipart/form-data"):
        sent = str((await request.post()).get("csrf_token", ""))
    return bool(sent) and secrets.compare_digest(sent or "", staff.csrf_token)


async def _form_staff(request: web.Request) -> StaffIdentity | None:
    """The signed-in staff member behind a form post that carries their CSRF token."""
    staff = await _cookie_staff(request)
    if staff is None or not await _csrf_ok(request, staff):
        return None
    return staff


def _render(template: str, request: web.Request, staff: StaffIdentity | None,
            status: int = 200, **context: Any) -> web.Response:
    lang = language_of(request)

    def t(key: str, **values: Any) -> str:
        return translate(lang, key, **values)

    base = {"t": t, "lang": lang, "staff": staff, "large": request.cookies.get(
        TEXT_COOKIE) == "large", "here": request.path_qs, "i18n": catalogue(lang),
        "csrf_token": staff.csrf_token if staff else ""}
    response = aiohttp_jinja2.render_template(template, request, {**base, **context},
                                              status=status, app_key=TEMPLATES_KEY)
    response.headers["Cache-Control"] = "no-store"
    return response


def _login_form(request: web.Request, error: str | None = None, username: str = "",
                status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = _render("login.html", request, None, error=error, username=username,
                       login_csrf=token, next=_safe_next(request.query.get("next")) or "",
                       status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict",
                        secure=request.secure, path="/console/")
    return response


def _refused(request: web.Request, staff: StaffIdentity | None) -> web.StreamResponse:
    """A post without the session's CSRF token changes nothing."""
    if staff is None and request.cookies.get(SESSION_COOKIE) is None:
        return _redirect("/console/login")
    return _render("forbidden.html", request, None, csrf=True, status=403)


def _signed_out() -> web.StreamResponse:
    response = _redirect("/console/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _redirect(location: str) -> web.StreamResponse:
    return web.Response(status=303, headers={"Location": location})


def _safe_next(value: str | None) -> str | None:
    """Only paths on this site (no open redirects)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


def _home_of(staff: StaffIdentity) -> str:
    for role, home in ROLE_HOME:
        if role in staff.roles:
            return home
    return "/console/"


def _bangkok() -> ZoneInfo:
    return ZoneInfo("Asia/Bangkok")


def _actor(request: web.Request, staff: StaffIdentity) -> Actor:
    role = "admin" if "admin" in staff.roles else "supervisor"
    return Actor(staff.agent_id, role, request.get(REQUEST_ID))


def _add_missing_api_routes(app: web.Application) -> None:
    """The console's API routes are on `api`; add those the app does not have yet (when
    this module was imported after the app registered the API)."""
    present = {(r.method, r.resource.canonical) for r in app.router.routes()
               if r.resource is not None}
    extra = Api(api.title, api.version, api.prefix)
    extra.routes = [r for r in api.routes if (r.method, api.prefix + r.path) not in present]
    extra.add_to(app, authenticate)


__all__ = ["setup", "validate_agent_form"]
