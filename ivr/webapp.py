"""The hotline's HTTP side: the `/ivr` sub-application, its wiring into the main app,
the officers' access-token endpoint and the browser phone (simulator)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.twiml import TwiML

from ivr.conference import Target, TransferError, agent_identity
from ivr.hotline import CallState, Hotline, HotlineConfig
from ivr.menus import MENUS_FILE, load_menus
from ivr.twilio_rest import SmsAdapter, TwilioRest
from routing import (
    Actor,
    AgentRecord,
    Bot,
    Conflict,
    ContactCenter,
    InvalidIdentity,
    NotFound,
    StaffAuth,
    StaffIdentity,
    TaskAccepted,
)

HERE = Path(__file__).resolve().parent
HOTLINE_KEY = web.AppKey("hotline", Hotline)
SIMULATOR_KEY = web.AppKey("simulator", bool)
#: The console's session cookie (agent_console sets it; the name is part of its API).
SESSION_COOKIE = "onestop_session"

_templates = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                autoescape=True)

Webhook = Callable[[Hotline, web.Request, Mapping[str, str]], Awaitable[TwiML | None]]


def setup(
    app: web.Application,
    center: ContactCenter,
    *,
    public_url: str,
    auth_token: str | None,
    account_sid: str | None = None,
    phone_number: str | None = None,
    api_base_url: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    twiml_app_sid: str | None = None,
    hold_music_url: str | None = None,
    bot: Bot | None = None,
    simulator: bool = False,
    menus_file: Path = MENUS_FILE,
) -> None:
    """Mount the hotline under `/ivr` on `app`.

    - `public_url`: the address Twilio calls (Twilio signs it; behind a proxy this is the
      proxy's address). `auth_token`: the Twilio auth token that signs webhooks; without
      one a random token is used, so only the simulator (demo) can sign.
    - `account_sid` (+ `auth_token`): enables the REST client for callbacks, pulling
      waiting callers through to officers and SMS (`phone_number` is our Twilio number);
      `api_base_url` replaces https://api.twilio.com (tests, air-gapped demos).
    - `api_key`, `api_secret`, `twiml_app_sid`: mint officers' Voice access tokens at
      `GET /ivr/token`.
    - `bot`: answers questions asked by voice (defaults to the center's bot).
    - `simulator`: serve the browser phone at `/ivr/simulator` (demo mode only: it signs
      requests on the browser's behalf).

    The menus are loaded now, so a broken `menus.yaml` stops start-up with a
    `routing.ConfigError` naming the file and line.
    """
    settings = center.settings
    menus = load_menus(menus_file, queues=settings.queues, categories=settings.categories,
                       hours=center.hours)
    token = auth_token or secrets.token_urlsafe(32)
    base = public_url.rstrip("/")
    config = HotlineConfig(public_url=base, auth_token=token, account_sid=account_sid,
                           phone_number=phone_number,
                           hold_music_url=hold_music_url or f"{base}/ivr/static/hold.wav")
    rest = TwilioRest(account_sid, token, base_url=api_base_url) if (
        account_sid and auth_token) else None
    hotline = Hotline(center, menus, config, bot=bot, rest=rest)
    if rest is not None and phone_number:
        center.register_adapter(SmsAdapter(rest, phone_number))

    ivr = web.Application()
    ivr[HOTLINE_KEY] = hotline
    ivr[TOKENS_KEY] = VoiceTokens(StaffAuth(center.db, center.clock), account_sid, api_key,
                                  api_secret, twiml_app_sid)
    ivr[SIMULATOR_KEY] = simulator
    for path, handler in WEBHOOKS.items():
        ivr.router.add_post(path, _webhook(handler))
    ivr.router.add_get("/token", voice_token)
    ivr.router.add_get("/calls/{task_id}", _console(call_view))
    ivr.router.add_get("/calls/{task_id}/targets", _console(transfer_targets))
    ivr.router.add_post("/calls/{task_id}/transfer", _console(transfer_start))
    ivr.router.add_post("/calls/{task_id}/transfer/complete", _console(transfer_complete))
    ivr.router.add_post("/calls/{task_id}/transfer/cancel", _console(transfer_cancel))
    if simulator:
        ivr.router.add_get("/simulator", simulator_page)
        ivr.router.add_post("/simulator/sign", simulator_sign)
    ivr.router.add_get("/agents/{agent_id}/phone", agent_phone_view)
    ivr.router.add_put("/agents/{agent_id}/phone", agent_phone_update)
    ivr.router.add_static("/static", HERE / "static")
    app.add_subapp("/ivr", ivr)
    app[HOTLINE_KEY] = hotline  # for the composition root, drills and tests

    async def life(app: web.Application) -> AsyncIterator[None]:
        # Once in a cluster: on the node that runs the router, where the event starts.
        unsubscribe = center.bus.subscribe(_on_accepted(hotline), TaskAccepted,
                                           origin_only=True)
        hotline.start()
        yield
        unsubscribe()
        await hotline.stop()

    app.cleanup_ctx.append(life)


def _on_accepted(hotline: Hotline) -> Callable[[Any], Awaitable[None]]:
    async def handle(event: Any) -> None:
        await hotline.on_task_accepted(event)

    return handle


def _webhook(handler: Webhook) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        hotline = request.app[HOTLINE_KEY]
        params = await hotline.verified_params(request)
        twiml = await handler(hotline, request, params)
        body = twiml.to_xml() if twiml is not None else '<?xml version="1.0" encoding=' \
            '"UTF-8"?><Response />'
        return web.Response(text=body, content_type="text/xml", charset="utf-8")

    return handle


def _stateful(method: Callable[[Hotline, Mapping[str, str], CallState],
                                Awaitable[TwiML | None]]) -> Webhook:
    """Most webhooks are one `Hotline` method of the parameters and the call's state."""
    async def handle(h: Hotline, r: web.Request, p: Mapping[str, str]) -> TwiML | None:
        return await method(h, p, _state(r))

    return handle


def _state(request: web.Request) -> CallState:
    return CallState.from_query(request.query)


async def _voice(h: Hotline, r: web.Request, p: Mapping[str, str]) -> TwiML:
    return await h.incoming(p)



async def _gather(h: Hotline, r: web.Request, p: Mapping[str, str]) -> TwiML:
    return await h.menu_choice(r.match_info["menu_id"], p, _state(r))










async def _agent_leg(h: Hotline, r: web.Request, p: Mapping[str, str]) -> None:
    await h.agent_leg(p, r.query)





async def _status(h: Hotline, r: web.Request, p: Mapping[str, str]) -> None:
    await h.status(p, r.query)


async def _conference(h: Hotline, r: web.Request, p: Mapping[str, str]) -> None:
    await h.conference_event(p, r.query)


async def _sms(h: Hotline, r: web.Request, p: Mapping[str, str]) -> TwiML:
    return await h.sms(p)


WEBHOOKS: dict[str, Webhook] = {
    "/voice": _voice,
    "/open-case": _stateful(Hotline.open_case_choice),
    "/gather/{menu_id}": _gather,
    "/case-status": _stateful(Hotline.case_status),
    "/faq": _stateful(Hotline.faq),
    "/wait": _stateful(Hotline.wait),
    "/wait/key": _stateful(Hotline.wait_key),
    "/queue-result": _stateful(Hotline.queue_result),
    "/connect": _stateful(Hotline.connect),
    "/after-agent": _stateful(Hotline.after_agent),
    "/requeue": _stateful(Hotline.requeue),
    "/agent-leg": _agent_leg,
    "/conference": _conference,
    "/survey": _stateful(Hotline.survey),
    "/voicemail": _stateful(Hotline.voicemail),
    "/voicemail/transcription": _stateful(Hotline.transcription),
    "/status": _status,
    "/sms": _sms,
}


# -- officers' access tokens --------------------------------------------------------------


class VoiceTokens:
    """Mints Twilio Voice access tokens for signed-in staff (their browser takes calls)."""

    def __init__(self, auth: StaffAuth, account_sid: str | None, api_key: str | None,
                 api_secret: str | None, twiml_app_sid: str | None,
                 ttl: timedelta = timedelta(hours=1)) -> None:
        self.auth = auth
        self.account_sid, self.api_key, self.api_secret = account_sid, api_key, api_secret
        self.twiml_app_sid = twiml_app_sid
        self.ttl = ttl

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.api_key and self.api_secret)

    def mint(self, agent_id: str) -> tuple[str, str]:
        identity = agent_identity(agent_id)
        token = AccessToken(self.account_sid, self.api_key, self.api_secret,
                            identity=identity, ttl=int(self.ttl.total_seconds()))
        token.add_grant(VoiceGrant(outgoing_application_sid=self.twiml_app_sid,
                                   incoming_allow=True))
        return token.to_jwt(), identity


TOKENS_KEY = web.AppKey("voice_tokens", VoiceTokens)


async def signed_in(request: web.Request) -> tuple[StaffIdentity | None, bool]:
    """The staff member behind a request (bearer token, or the console's session cookie)
    and whether it came by cookie (then changes need the session's CSRF token)."""
    header = request.headers.get("Authorization", "")
    by_cookie = not header.lower().startswith("bearer ")
    session = request.cookies.get(SESSION_COOKIE, "") if by_cookie else header[7:].strip()
    staff = await request.app[TOKENS_KEY].auth.authenticate(session) if session else None
    return staff, by_cookie


async def voice_token(request: web.Request) -> web.Response:
    """`GET /ivr/token`: a Voice access token for the signed-in officer (bearer token or
    the console's session cookie)."""
    tokens = request.app[TOKENS_KEY]
    staff, _ = await signed_in(request)
    if staff is None:
        return _error(401, "unauthenticated", "sign in first (Authorization: Bearer <token>)")
    if not tokens.configured:
        return _error(503, "not_configured", "the Twilio API key for voice tokens is not set "
                                             "(TWILIO_API_KEY, TWILIO_API_SECRET)")
    jwt, identity = tokens.mint(staff.agent_id)
    return web.json_response({"token": jwt, "identity": identity,
                              "expires_in": int(tokens.ttl.total_seconds())},
                             headers={"Cache-Control": "no-store"})


# -- warm transfers, asked for by the officer on the call ----------------------------------

ConsoleHandler = Callable[[web.Request, Hotline, StaffIdentity, str], Awaitable[dict[str, Any]]]


def _console(handler: ConsoleHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Signed in as the console's officer (cookie + X-CSRF-Token for changes, or bearer);
    `TransferError`s become JSON errors in the API's shape."""

    async def handle(request: web.Request) -> web.Response:
        staff, by_cookie = await signed_in(request)
        if staff is None:
            return _error(401, "unauthenticated", "sign in first")
        if request.method != "GET" and by_cookie and not secrets.compare_digest(
                request.headers.get("X-CSRF-Token", "").encode("utf-8", "replace"),
                staff.csrf_token.encode()):
            return _error(403, "csrf", "X-CSRF-Token is missing or wrong")
        try:
            body = await handler(request, request.app[HOTLINE_KEY], staff,
                                 request.match_info["task_id"])
        except TransferError as exc:
            return _error(exc.status, exc.code, exc.message)
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    return handle


async def call_view(request: web.Request, hotline: Hotline, staff: StaffIdentity,
                    task_id: str) -> dict[str, Any]:
    """`GET /ivr/calls/{task}`: the call's conference and any transfer in progress."""
    return await hotline.transfers.view(task_id, staff.agent_id)


async def transfer_targets(request: web.Request, hotline: Hotline, staff: StaffIdentity,
                           task_id: str) -> dict[str, Any]:
    """`GET /ivr/calls/{task}/targets`: the officers the officer on the call can consult
    now (available, holding nothing), for the console's transfer form."""
    return await hotline.transfers.targets(task_id, staff.agent_id)


async def transfer_start(request: web.Request, hotline: Hotline, staff: StaffIdentity,
                         task_id: str) -> dict[str, Any]:
    """`POST /ivr/calls/{task}/transfer` `{"agent_id"|"queue_id"|"number": …}`: consult
    the target while the caller is on hold."""
    try:
        body = await request.json()
    except ValueError:
        raise TransferError(400, "malformed_json", "the body is not JSON") from None
    return await hotline.transfers.start(task_id, staff.agent_id, Target.parse(body))


async def transfer_complete(request: web.Request, hotline: Hotline, staff: StaffIdentity,
                            task_id: str) -> dict[str, Any]:
    """`POST /ivr/calls/{task}/transfer/complete`: hand the caller over and leave."""
    return await hotline.transfers.complete(task_id, staff.agent_id)


async def transfer_cancel(request: web.Request, hotline: Hotline, staff: StaffIdentity,
                          task_id: str) -> dict[str, Any]:
    """`POST /ivr/calls/{task}/transfer/cancel`: let the consulted party go, unhold."""
    return await hotline.transfers.cancel(task_id, staff.agent_id)


# -- where an officer's calls ring ----------------------------------------------------------


async def _phone_owner(request: web.Request
                       ) -> tuple[StaffIdentity | None, str, web.Response | None]:
    """The signed-in staff member and the agent whose phone is asked about (`me`, or
    anyone for an admin); an error response otherwise."""
    staff, by_cookie = await signed_in(request)
    if staff is None:
        return None, "", _error(401, "unauthenticated", "sign in first")
    if request.method != "GET" and by_cookie and not secrets.compare_digest(
            request.headers.get("X-CSRF-Token", "").encode("utf-8", "replace"),
            staff.csrf_token.encode()):
        return staff, "", _error(403, "csrf", "X-CSRF-Token is missing or wrong")
    agent_id = request.match_info["agent_id"]
    if agent_id == "me":
        agent_id = staff.agent_id
    if agent_id != staff.agent_id and not staff.has_role("admin"):
        return staff, "", _error(403, "forbidden", "only an admin can change another "
                                                   "officer's phone")
    return staff, agent_id, None


def _phone_view(agent: AgentRecord) -> dict[str, Any]:
    return {"agent_id": agent.id, "device": agent.voice_device or "browser",
            "number": agent.phone_number}


async def agent_phone_view(request: web.Request) -> web.Response:
    """`GET /ivr/agents/{agent}/phone` (`me`, or anyone for an admin): where the
    officer's calls ring."""
    _, agent_id, error = await _phone_owner(request)
    if error is not None:
        return error
    try:
        agent = await request.app[HOTLINE_KEY].center.agent_record(agent_id)
    except NotFound:
        return _error(404, "unknown_agent", f"no agent {agent_id}")
    return web.json_response(_phone_view(agent), headers={"Cache-Control": "no-store"})


async def agent_phone_update(request: web.Request) -> web.Response:
    """`PUT /ivr/agents/{agent}/phone` `{"device": "browser"|"phone", "number": …}`:
    take calls in the console's browser phone, or on one's own phone (a Thai or E.164
    number; `"number": ""` forgets it)."""
    staff, agent_id, error = await _phone_owner(request)
    if error is not None or staff is None:
        return error or _error(401, "unauthenticated", "sign in first")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "malformed_json", "the body is not JSON")
    if not isinstance(body, dict) or set(body) - {"device", "number"} or body.get(
            "device") not in ("browser", "phone") or not isinstance(
            body.get("number", ""), str | None) or len(body.get("number") or "") > 30:
        return _error(422, "invalid", 'send {"device": "browser" or "phone", "number": '
                                      '"…"}')
    center = request.app[HOTLINE_KEY].center
    try:
        agent = await center.set_agent_phone(agent_id, device=body["device"],
                                             number=body.get("number"))
    except NotFound:
        return _error(404, "unknown_agent", f"no agent {agent_id}")
    except InvalidIdentity:
        return _error(422, "invalid_number", "not a phone number")
    except Conflict as exc:
        return _error(422, "invalid", str(exc))
    role = "admin" if staff.has_role("admin") else "agent"
    await center.audit(Actor(staff.agent_id, role), "update", "agent", agent.id, None,
                       reason="where the officer's calls ring",
                       data={"device": body["device"]})
    return web.json_response(_phone_view(agent), headers={"Cache-Control": "no-store"})


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


# -- the browser phone --------------------------------------------------------------------


async def simulator_page(request: web.Request) -> web.Response:
    hotline = request.app[HOTLINE_KEY]
    html = _templates.get_template("simulator.html").render(public_url=hotline.public_url)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def simulator_sign(request: web.Request) -> web.Response:
    """Sign a request as Twilio would, for the browser phone (demo mode only): the
    browser then sends it to the real webhook, which checks it like any other."""
    hotline = request.app[HOTLINE_KEY]
    try:
        data = await request.json()
    except ValueError:
        return _error(400, "malformed_json", "the body is not JSON")
    url = data.get("url") if isinstance(data, dict) else None
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url.startswith(hotline.public_url + "/ivr/"):
        return _error(422, "invalid", f"url must start with {hotline.public_url}/ivr/")
    if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        return _error(422, "invalid", "params must be an object of strings")
    signature = hotline.validator.compute_signature(url, params)
    return web.json_response({"signature": signature})
