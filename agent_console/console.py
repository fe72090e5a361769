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
import shutil
import string
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
import yaml
from aiohttp import web

from agent_console import api_console
from agent_console.api import AUTH_KEY, CENTER_KEY, SESSION_COOKIE, api, authenticate
from agent_console.data import (
    VARIABLES,
    Canned,
    DataFileError,
    canned_responses,
    save_canned,
    use_canned_file,
    wrap_codes,
    write_text_atomically,
)
from agent_console.formatting import formatter
from agent_console.i18n import LANG_COOKIE, TEXT_COOKIE, catalogue, language_of, translate
from agent_console.live import LiveHub
from agent_console.reports import DIMENSIONS, FIGURES, charts, period, report, to_csv, totals
from agent_console.rest import REQUEST_ID, Api, throttle_of
from routing import (
    Actor,
    AgentRecord,
    Channel,
    Citizen,
    ConfigError,
    ContactCenter,
    LoginFailed,
    Presence,
    StaffIdentity,
    hash_password,
    load_settings,
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
#: Where the routing configuration lives (business hours are edited in its queues.yaml).
CONFIG_DIR_KEY = web.AppKey("console_config_dir", Path)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOGIN_CSRF_COOKIE = "onestop_login_csrf"
ROLE_HOME = (("admin", "/admin/"), ("supervisor", "/supervisor/"), ("agent", "/console/"))
PageHandler = Callable[[web.Request, StaffIdentity], Awaitable[web.StreamResponse]]

assert api_console  # its routes are registered on `api` when it is imported


def setup(app: web.Application, center: ContactCenter, *, data_dir: Path | None = None,
          config_dir: Path | None = None, **settings: Any) -> None:
    """Add the console's pages, static files, API routes and live updates to `app`.

    `data_dir` holds the administrators' edits of canned responses; `config_dir` is the
    routing configuration whose business hours the admin screen edits (each is optional:
    without it, that part of the admin screen is read-only).
    Calling it again on the same app does nothing (tests may wire it themselves)."""
    if HUB_KEY in app:
        return
    if config_dir is not None:
        app[CONFIG_DIR_KEY] = Path(config_dir)
    use_canned_file(Path(data_dir) / "console" / "canned.yaml" if data_dir else None)
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
    r.add_get("/admin/agents/{agent_id}", _page(edit_agent_page, "admin"))
    r.add_post("/admin/agents/{agent_id}", _page(update_agent, "admin"))
    r.add_get("/admin/canned/{canned_id}", _page(edit_canned_page, "admin"))
    r.add_post("/admin/canned/{canned_id}", _page(update_canned, "admin"))
    r.add_get("/admin/hours/{hours_id}", _page(edit_hours_page, "admin"))
    r.add_post("/admin/hours/{hours_id}", _page(update_hours, "admin"))
    r.add_get("/admin/queues/{queue_id}", _page(edit_queue_page, "admin"))
    r.add_post("/admin/queues/{queue_id}", _page(update_queue, "admin"))
    r.add_get("/admin/channels/{channel}", _page(edit_channel_page, "admin"))
    r.add_post("/admin/channels/{channel}", _page(update_channel, "admin"))
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
    if not expected or not secrets.compare_digest(  # bytes: hostile non-ASCII is no 500
            expected.encode("utf-8", "replace"),
            str(form.get("csrf_token", "")).encode("utf-8", "replace")):
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
            until = formatter(lang).time(exc.locked_until)
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
    return _render("reports.html", request, staff, rows=rows,
                   totals=await totals(center, *period(start, end)), by=by,
                   start=start, end=end, dimensions=DIMENSIONS, errors=errors,
                   figures=FIGURES, charts=charts(rows),
                   csv_href=f"/supervisor/reports?{query}&format=csv", page="reports")


async def admin_page(request: web.Request, staff: StaffIdentity,
                     errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                     created: str | None = None, status: int = 200) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    agents, _ = await center.list_rows(AgentRecord, order_by=AgentRecord.username, limit=1000)
    saved = request.query.get("saved")
    configured = _saved_settings(request)  # as saved: what the next start uses
    return _render("admin.html", request, staff, agents=agents,
                   queues=configured.queues, channels=configured.channels,
                   pending={*(q for q, v in configured.queues.items()
                              if q not in center.settings.queues
                              or center.settings.queues[q].spec != v.spec),
                            *(f"channel:{c}" for c, v in configured.channels.items()
                              if center.settings.channels.get(c) != v)},
                   canned=canned_responses(),
                   wrap=wrap_codes(), errors=errors or {}, values=values or {},
                   hours={k: v.spec for k, v in center.hours.items() if k != "always"},
                   days=DAYS, hours_editable=CONFIG_DIR_KEY in request.app,
                   saved=saved if saved in ("agent", "canned", "hours", "queue", "channel")
                   else None,
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


def validate_agent_form(values: dict[str, str], roles: list[str], password: str,
                        *, password_optional: bool = False,
                        ) -> tuple[dict[str, str], dict[str, Any]]:
    """Check the create- or edit-agent form; errors map a field to a catalogue key."""
    errors: dict[str, str] = {}
    if not re.fullmatch(r"[a-z0-9._-]{3,40}", values["username"]):
        errors["username"] = "err.username"
    if not values["display_name"] or len(values["display_name"]) > 200:
        errors["display_name"] = "err.display_name"
    if (password or not password_optional) and not 12 <= len(password) <= 200:
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
            if not re.fullmatch(r"[a-z_]{1,40}", key.strip()) or not re.fullmatch(
                    r"[0-9]{1,4}", number.strip()):
                errors[name] = "err.pairs"
                break
            if name == "capacity" and key.strip() not in {str(c) for c in Channel}:
                errors[name] = "err.channel"
                break
            pairs[key.strip()] = int(number)
        parsed[name] = pairs
    return errors, parsed


# ---------------------------------------------------------------------------------------
# Administration: edit or disable agents, edit canned responses and business hours.
# Every change is validated (errors name the field and what is wrong), saved, and written
# to the audit log with what changed.


async def edit_agent_page(request: web.Request, staff: StaffIdentity,
                          errors: dict[str, str] | None = None,
                          values: dict[str, str] | None = None,
                          status: int = 200) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    agent = await center.agent_record(request.match_info["agent_id"])
    if values is None:
        values = {"username": agent.username, "display_name": agent.display_name,
                  "roles": ",".join(agent.roles), "languages": ", ".join(agent.languages),
                  "skills": _pairs(agent.skills), "capacity": _pairs(agent.capacity),
                  "active": "on" if agent.active else ""}
    return _render("admin_agent.html", request, staff, agent=agent, values=values,
                   errors=errors or {}, page="admin", status=status)


async def update_agent(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    agent = await center.agent_record(request.match_info["agent_id"])
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() for k in
              ("display_name", "languages", "skills", "capacity")}
    values["username"] = agent.username
    roles = [str(r) for r in form.getall("roles", [])]
    password = str(form.get("password", ""))
    active = form.get("active") == "on"
    errors, parsed = validate_agent_form(values, roles, password, password_optional=True)
    if not active and agent.id == staff.agent_id:
        errors["active"] = "err.disable_self"
    if agent.id == staff.agent_id and "admin" not in roles:
        errors["roles"] = "err.drop_own_admin"
    if errors:
        values.update(roles=",".join(roles), active="on" if active else "")
        return await edit_agent_page(request, staff, errors=errors, values=values, status=422)
    before = {"display_name": agent.display_name, "roles": agent.roles,
              "languages": agent.languages, "skills": agent.skills,
              "capacity": agent.capacity, "active": agent.active}
    await center.upsert_agent(
        username=agent.username, display_name=values["display_name"],
        password_hash=hash_password(password) if password else agent.password_hash,
        department=agent.department, **parsed)
    if active != agent.active:
        async with center.db.sessions() as s, s.begin():
            row = await s.get(AgentRecord, agent.id)
            assert row is not None
            row.active = active
        if not active:  # disabled: signed out everywhere and offered nothing more
            if center.router.has_agent(agent.id):
                await center.set_presence(agent.id, Presence.OFFLINE)
            await request.app[AUTH_KEY].logout_everywhere(agent.id)
            await request.app[HUB_KEY].disconnect(agent_id=agent.id)
    after = {"display_name": values["display_name"], **parsed, "active": active}
    changed = {k: {"from": before[k], "to": after[k]} for k in before if before[k] != after[k]}
    if password:
        changed["password"] = {"from": "…", "to": "…"}  # never the password itself
    await center.audit(_actor(request, staff), "admin.update", "agent", agent.id, None,
                       data={"username": agent.username, "changed": changed})
    return _redirect("/admin/?saved=agent#agents-title")


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in mapping.items())


CANNED_FIELDS = ("title_th", "title_en", "body_th", "body_en")


async def edit_canned_page(request: web.Request, staff: StaffIdentity,
                           errors: dict[str, str] | None = None,
                           values: dict[str, str] | None = None,
                           status: int = 200) -> web.StreamResponse:
    canned_id = request.match_info["canned_id"]
    existing = {c.id: c for c in canned_responses()}
    if canned_id != "new" and canned_id not in existing:
        raise web.HTTPNotFound(text=f"no canned response {canned_id!r}")
    if values is None:
        values = {"id": "" if canned_id == "new" else canned_id}
        if canned_id in existing:
            c = existing[canned_id]
            values.update(title_th=c.title.th, title_en=c.title.en, body_th=c.body.th,
                          body_en=c.body.en)
    return _render("admin_canned.html", request, staff, canned_id=canned_id, values=values,
                   errors=errors or {}, variables=sorted(_canned_variables()), page="admin",
                   status=status)


def _canned_variables() -> frozenset[str]:
    return VARIABLES


def _known_variables(text: str) -> bool:
    """Whether every {name} in `text` is a variable the desk fills in (and braces pair)."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        return False
    return names <= VARIABLES


async def update_canned(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    canned_id = request.match_info["canned_id"]
    current = list(canned_responses())
    existing = {c.id: c for c in current}
    if canned_id != "new" and canned_id not in existing:
        raise web.HTTPNotFound(text=f"no canned response {canned_id!r}")
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() for k in ("id", *CANNED_FIELDS)}
    remove = form.get("remove") == "on"
    new_id = values["id"] if canned_id == "new" else canned_id
    errors: dict[str, str] = {}
    if canned_id == "new":
        if not re.fullmatch(r"[a-z0-9_]{1,40}", new_id):
            errors["id"] = "err.canned_id"
        elif new_id in existing:
            errors["id"] = "err.canned_taken"
    if remove and canned_id != "new":
        kept = [c for c in current if c.id != canned_id]
        if not kept:
            errors["remove"] = "err.canned_last"
        changed: Any = {"removed": existing[canned_id].model_dump()}
    else:
        for name in CANNED_FIELDS:
            if not values[name]:
                errors[name] = "err.required"
            elif len(values[name]) > (200 if name.startswith("title") else 4000):
                errors[name] = "err.too_long"
            elif name.startswith("body") and not _known_variables(values[name]):
                errors[name] = "err.variables"
        item: Canned | None = None
        if not errors:
            try:
                item = Canned.model_validate({
                    "id": new_id, "title": {"th": values["title_th"], "en": values["title_en"]},
                    "body": {"th": values["body_th"], "en": values["body_en"]}})
            except ValueError as exc:  # pydantic's ValidationError: unknown variables
                errors["body_th"] = "err.variables"
                errors["body_en"] = "err.variables"
                log.info("canned response refused", extra={"error": str(exc)[:300]})
        if item is not None:
            kept = [item if c.id == canned_id else c for c in current]
            if canned_id == "new":
                kept.append(item)
            changed = {"from": existing[canned_id].model_dump() if canned_id in existing
                       else None, "to": item.model_dump()}
    if errors:
        return await edit_canned_page(request, staff, errors=errors, values=values, status=422)
    try:
        path = save_canned(kept)
    except DataFileError as exc:
        return _render("admin_canned.html", request, staff, canned_id=canned_id, values=values,
                       errors={"file": str(exc)}, variables=sorted(_canned_variables()),
                       page="admin", status=409)
    await request.app[CENTER_KEY].audit(
        _actor(request, staff), "admin.remove" if remove else "admin.update",
        "canned_response", new_id, None, data={"file": str(path), "changed": changed})
    return _redirect("/admin/?saved=canned#canned-title")


async def edit_hours_page(request: web.Request, staff: StaffIdentity,
                          errors: dict[str, str] | None = None,
                          values: dict[str, str] | None = None,
                          status: int = 200) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    name = request.match_info["hours_id"]
    if name == "always" or name not in center.hours:
        raise web.HTTPNotFound(text=f"no business hours {name!r}")
    if values is None:
        spec = center.hours[name].spec
        values = {"timezone": spec.timezone, "holidays": spec.holidays or "",
                  "extra_closed_dates": ", ".join(spec.extra_closed_dates),
                  **{d: ", ".join(spec.weekly.get(d, [])) for d in DAYS}}  # type: ignore[call-overload]
    return _render("admin_hours.html", request, staff, name=name, values=values, days=DAYS,
                   errors=errors or {}, editable=CONFIG_DIR_KEY in request.app,
                   page="admin", status=status)


async def update_hours(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    center = request.app[CENTER_KEY]
    name = request.match_info["hours_id"]
    if name == "always" or name not in center.hours:
        raise web.HTTPNotFound(text=f"no business hours {name!r}")
    if CONFIG_DIR_KEY not in request.app:
        raise web.HTTPConflict(text="business hours are read-only here (no config directory)")
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() for k in
              ("timezone", "holidays", "extra_closed_dates", *DAYS)}
    errors, spec = validate_hours_form(values)
    if not errors:
        try:
            path, compiled = _save_config(request, "business_hours", _hours_change(name, spec))
        except ConfigError as exc:
            errors["file"] = str(exc)
    if errors:
        return await edit_hours_page(request, staff, errors=errors, values=values, status=422)
    before = center.hours[name].spec.model_dump()
    # This node uses the new hours at once; other nodes when they next start.
    center.hours[name] = type(center.hours[name])(compiled.hours[name])
    await center.audit(_actor(request, staff), "admin.update", "business_hours", name, None,
                       data={"file": str(path),
                             "from": before, "to": compiled.hours[name].model_dump()})
    return _redirect("/admin/?saved=hours#hours-title")


def validate_hours_form(values: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Check the business-hours form field by field; errors are catalogue keys or text."""
    errors: dict[str, str] = {}
    weekly: dict[str, list[str]] = {}
    for day in DAYS:
        ranges = [x.strip() for x in values[day].split(",") if x.strip()]
        for item in ranges:
            match = re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]|24):[0-5][0-9]",
                                 item)
            if not match:
                errors[day] = "err.range"
                break
            if item.split("-")[0] >= item.split("-")[1]:
                errors[day] = "err.range_order"
                break
        if ranges:
            weekly[day] = ranges
    try:
        ZoneInfo(values["timezone"] or "?")
    except (KeyError, ValueError, OSError):
        errors["timezone"] = "err.timezone"
    if values["holidays"] not in ("", "TH"):
        errors["holidays"] = "err.holidays"
    closed = [x.strip() for x in values["extra_closed_dates"].split(",") if x.strip()]
    for item in closed:
        try:
            date.fromisoformat(item)
        except ValueError:
            errors["extra_closed_dates"] = "err.dates"
            break
    spec = {"timezone": values["timezone"], "weekly": weekly,
            "holidays": values["holidays"] or None, "extra_closed_dates": closed}
    return errors, spec


def _hours_change(name: str, spec: dict[str, Any]) -> Callable[[Any], None]:
    """Replace business hours `name` in the business_hours section (see `_with_section`)."""

    def change(section: dict[str, Any]) -> None:
        if name not in section:
            raise KeyError(f"business_hours: no {name!r}")
        section[name] = {k: v for k, v in spec.items() if v not in (None, [], {})}
        if spec["holidays"] is None:
            section[name]["holidays"] = None

    return change


def _with_section(path: Path, key: str, change: Callable[[Any], None]) -> str:
    """The text of a configuration file with its top-level section `key` changed in place
    by `change` (it raises KeyError when what it edits is not there). Everything outside
    the section (comments included) stays as it was; comments inside it are not kept."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == f"{key}:"), None)
    if start is None:
        raise ConfigError(str(path), None, f"no {key} section")
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][:1] in (" ", "#")
                                or lines[end].startswith("- ")):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # keep the blank lines before the next section
    section = yaml.safe_load("".join(lines[start:end]))[key]
    try:
        change(section)
    except KeyError as exc:
        raise ConfigError(str(path), start + 1, str(exc.args[0])) from None
    block = yaml.safe_dump({key: section}, allow_unicode=True, sort_keys=False,
                           default_flow_style=None, width=100)
    return "".join(lines[:start]) + block + "".join(lines[end:])


def _check_config(config_dir: Path, filename: str, text: str) -> Any:
    """Validate the configuration as it would be with `filename` replaced by `text` (every
    file and every cross-reference, as at start-up); ConfigError names file and line."""
    with tempfile.TemporaryDirectory() as scratch:
        for item in config_dir.iterdir():
            if item.is_file() and item.suffix in (".yaml", ".yml"):
                shutil.copy(item, Path(scratch) / item.name)
        (Path(scratch) / filename).write_text(text, encoding="utf-8")
        try:
            return load_settings(scratch)
        except ConfigError as exc:
            raise ConfigError(str(config_dir / filename), exc.line, exc.message) from None


# Queues and channels are edited like business hours (validated as at start-up, written
# atomically into queues.yaml, audited) but the router takes them at the next start: it
# compiles queue membership, timeouts and statistics from the settings it was built with
# and has no safe way to swap them while tasks are offered and held.

QUEUE_FIELDS = ("name_th", "name_en", "agents", "hours", "strategy", "priority_aging",
                *(f"sl_{c}_{part}" for c in Channel for part in ("threshold", "target")))
CHANNEL_FIELDS = ("sl_threshold", "sl_target", "reservation_timeout", "wrap_up_seconds",
                  "default_handle_seconds")


def _saved_settings(request: web.Request) -> Any:
    """The routing settings as saved in the configuration directory (what the next start
    will use); the running ones when there is none or it cannot be read."""
    center = request.app[CENTER_KEY]
    if CONFIG_DIR_KEY in request.app:
        try:
            return load_settings(request.app[CONFIG_DIR_KEY])
        except ConfigError as exc:
            log.warning("saved configuration unreadable", extra={"error": str(exc)[:300]})
    return center.settings


def _strategies(settings: Any) -> tuple[str, ...]:
    """The queue strategies routing/config.py allows (from its schema)."""
    spec = next(iter(settings.queues.values())).spec
    return get_args(type(spec).model_fields["strategy"].annotation)


def _number(values: dict[str, str], name: str, errors: dict[str, str], key: str, *,
            low: float, high: float | None = None, low_ok: bool = False) -> float | None:
    """The field as a number within (low, high] (or [low, high] with `low_ok`); an error
    keyed `key` otherwise."""
    try:
        number = float(values[name])
    except ValueError:
        errors[name] = key
        return None
    if not (number >= low if low_ok else number > low) or (high is not None and number > high):
        errors[name] = key
        return None
    return int(number) if number.is_integer() else number


def _service_level(values: dict[str, str], prefix: str, errors: dict[str, str],
                   *, optional: bool) -> dict[str, float] | None:
    threshold, target = f"{prefix}threshold", f"{prefix}target"
    if optional and not values[threshold] and not values[target]:
        return None
    seconds = _number(values, threshold, errors, "err.seconds", low=0)
    share = _number(values, target, errors, "err.target", low=0, high=1)
    if seconds is None or share is None:
        return None
    return {"threshold_seconds": seconds, "target": share}


def _config_field(exc: ConfigError, prefix: str, fields: dict[str, str],
                  lang: str) -> tuple[str, str]:
    """The form field a start-up validation error is about, and what to show next to it
    (the whole error, with file and line, when it is about nothing on the form)."""
    if exc.message.startswith(prefix):
        where, _, detail = exc.message[len(prefix):].partition(": ")
        if where in fields:
            key = "err.expression" if where == "agents" else "err.config"
            return fields[where], translate(lang, key, detail=detail)
    return "file", str(exc)


def _save_config(request: web.Request, section: str, change: Callable[[Any], None],
                 ) -> tuple[Path, Any]:
    """Change a section of queues.yaml, validate every file as at start-up and replace
    the file atomically; ConfigError (nothing written) when the result is not valid."""
    config_dir = request.app[CONFIG_DIR_KEY]
    path = config_dir / "queues.yaml"
    text = _with_section(path, section, change)
    compiled = _check_config(config_dir, "queues.yaml", text)
    write_text_atomically(path, text)
    return path, compiled


async def edit_queue_page(request: web.Request, staff: StaffIdentity,
                          errors: dict[str, str] | None = None,
                          values: dict[str, str] | None = None,
                          status: int = 200) -> web.StreamResponse:
    settings = _saved_settings(request)
    queue_id = request.match_info["queue_id"]
    if queue_id not in settings.queues:
        raise web.HTTPNotFound(text=f"no queue {queue_id!r}")
    if values is None:
        spec = settings.queues[queue_id].spec
        values = {"name_th": spec.name.th, "name_en": spec.name.en, "agents": spec.agents or "",
                  "hours": spec.hours, "strategy": spec.strategy,
                  "priority_aging": f"{spec.priority_aging:g}"}
        for c in Channel:
            level = spec.service_level.get(c)
            values[f"sl_{c}_threshold"] = f"{level.threshold_seconds:g}" if level else ""
            values[f"sl_{c}_target"] = f"{level.target:g}" if level else ""
    return _render("admin_queue.html", request, staff, queue_id=queue_id, values=values,
                   errors=errors or {}, hours=list(settings.hours),
                   strategies=_strategies(settings), channels=[str(c) for c in Channel],
                   defaults={str(c): settings.channel(c).service_level for c in Channel},
                   editable=CONFIG_DIR_KEY in request.app, page="admin", status=status)


async def update_queue(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    if CONFIG_DIR_KEY not in request.app:
        raise web.HTTPConflict(text="queues are read-only here (no config directory)")
    settings = _saved_settings(request)
    queue_id = request.match_info["queue_id"]
    if queue_id not in settings.queues:
        raise web.HTTPNotFound(text=f"no queue {queue_id!r}")
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() for k in QUEUE_FIELDS}
    errors: dict[str, str] = {}
    for name in ("name_th", "name_en"):
        if not values[name]:
            errors[name] = "err.required"
        elif len(values[name]) > 200:
            errors[name] = "err.too_long"
    if len(values["agents"]) > 500:
        errors["agents"] = "err.too_long"
    if values["hours"] not in settings.hours:
        errors["hours"] = "err.hours"
    if values["strategy"] not in _strategies(settings):
        errors["strategy"] = "err.strategy"
    aging = _number(values, "priority_aging", errors, "err.aging", low=0, low_ok=True)
    levels = {str(c): _service_level(values, f"sl_{c}_", errors, optional=True)
              for c in Channel}
    before = settings.queues[queue_id].spec.model_dump(mode="json", exclude_none=True)

    def change(section: list[dict[str, Any]]) -> None:
        item = next((q for q in section if isinstance(q, dict) and q.get("id") == queue_id),
                    None)
        if item is None:
            raise KeyError(f"queues: no {queue_id!r}")
        item["name"] = {"th": values["name_th"], "en": values["name_en"]}
        item.pop("agents", None)
        if values["agents"]:
            item["agents"] = values["agents"]
        item["hours"] = values["hours"]
        if values["strategy"] != "longest_idle" or "strategy" in item:
            item["strategy"] = values["strategy"]
        if aging or "priority_aging" in item:
            item["priority_aging"] = aging
        chosen = {c: level for c, level in levels.items() if level}
        if chosen:
            item["service_level"] = chosen
        else:
            item.pop("service_level", None)

    if not errors:
        index = list(settings.queues).index(queue_id)
        fields = {"agents": "agents", "name.th": "name_th", "name.en": "name_en",
                  "hours": "hours", "strategy": "strategy", "priority_aging": "priority_aging",
                  **{f"service_level.{c}.{k}_seconds" if k == "threshold" else
                     f"service_level.{c}.{k}": f"sl_{c}_{k}"
                     for c in Channel for k in ("threshold", "target")}}
        try:
            path, compiled = _save_config(request, "queues", change)
        except ConfigError as exc:
            field, message = _config_field(exc, f"queues.{index}.", fields,
                                           language_of(request))
            errors[field] = message
    if errors:
        return await edit_queue_page(request, staff, errors=errors, values=values, status=422)
    after = compiled.queues[queue_id].spec.model_dump(mode="json", exclude_none=True)
    await request.app[CENTER_KEY].audit(
        _actor(request, staff), "admin.update", "queue", queue_id, None,
        data={"file": str(path), "from": before, "to": after,
              "changed": sorted(k for k in {*before, *after} if before.get(k) != after.get(k)),
              "takes_effect": "next start"})
    return _redirect("/admin/?saved=queue#queues-title")


async def edit_channel_page(request: web.Request, staff: StaffIdentity,
                            errors: dict[str, str] | None = None,
                            values: dict[str, str] | None = None,
                            status: int = 200) -> web.StreamResponse:
    settings = _saved_settings(request)
    channel = request.match_info["channel"]
    if channel not in settings.channels:
        raise web.HTTPNotFound(text=f"no channel {channel!r}")
    if values is None:
        spec = settings.channels[Channel(channel)]
        values = {"sl_threshold": f"{spec.service_level.threshold_seconds:g}",
                  "sl_target": f"{spec.service_level.target:g}",
                  "reservation_timeout": f"{spec.reservation_timeout:g}",
                  "wrap_up_seconds": f"{spec.wrap_up_seconds:g}",
                  "default_handle_seconds": f"{spec.default_handle_seconds:g}"}
    return _render("admin_channel.html", request, staff, channel=channel, values=values,
                   errors=errors or {}, editable=CONFIG_DIR_KEY in request.app,
                   page="admin", status=status)


async def update_channel(request: web.Request, staff: StaffIdentity) -> web.StreamResponse:
    if CONFIG_DIR_KEY not in request.app:
        raise web.HTTPConflict(text="channels are read-only here (no config directory)")
    settings = _saved_settings(request)
    channel = request.match_info["channel"]
    if channel not in settings.channels:
        raise web.HTTPNotFound(text=f"no channel {channel!r}")
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() for k in CHANNEL_FIELDS}
    errors: dict[str, str] = {}
    level = _service_level(values, "sl_", errors, optional=False)
    numbers = {
        "reservation_timeout": _number(values, "reservation_timeout", errors, "err.seconds",
                                       low=0),
        "wrap_up_seconds": _number(values, "wrap_up_seconds", errors, "err.seconds_or_zero",
                                   low=0, low_ok=True),
        "default_handle_seconds": _number(values, "default_handle_seconds", errors,
                                          "err.seconds", low=0)}
    before = settings.channels[Channel(channel)].model_dump(mode="json")

    def change(section: dict[str, Any]) -> None:
        if channel not in section:
            raise KeyError(f"channels: no {channel!r}")
        section[channel] = {**section[channel], "service_level": level, **numbers}

    if not errors:
        fields = {"service_level.threshold_seconds": "sl_threshold",
                  "service_level.target": "sl_target",
                  **{k: k for k in CHANNEL_FIELDS[2:]}}
        try:
            path, compiled = _save_config(request, "channels", change)
        except ConfigError as exc:
            field, message = _config_field(exc, f"channels.{channel}.", fields,
                                           language_of(request))
            errors[field] = message
    if errors:
        return await edit_channel_page(request, staff, errors=errors, values=values,
                                       status=422)
    after = compiled.channels[Channel(channel)].model_dump(mode="json")
    await request.app[CENTER_KEY].audit(
        _actor(request, staff), "admin.update", "channel_settings", channel, None,
        data={"file": str(path), "from": before, "to": after,
              "changed": sorted(k for k in after if before.get(k) != after.get(k)),
              "takes_effect": "next start"})
    return _redirect("/admin/?saved=channel#channels-title")


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
    return bool(sent) and secrets.compare_digest(  # bytes: hostile non-ASCII is no 500
        (sent or "").encode("utf-8", "replace"), staff.csrf_token.encode())


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

    base = {"t": t, "fmt": formatter(lang), "lang": lang, "staff": staff,
            "large": request.cookies.get(TEXT_COOKIE) == "large", "here": request.path_qs,
            "i18n": catalogue(lang), "csrf_token": staff.csrf_token if staff else ""}
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
