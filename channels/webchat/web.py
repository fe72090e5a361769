"""HTTP side of the chat channel: the citizen socket, the widget files, the demo site."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import jinja2
from aiohttp import WSMsgType, web

from channels.webchat.hub import Connection, WebChat
from channels.webchat.protocol import FrameError, Limits, parse
from routing import ContactCenter, TokenBuckets

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
WEBCHAT_KEY = web.AppKey("webchat", WebChat)
ORIGINS_KEY = web.AppKey("webchat_origins", frozenset)

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)


def setup(
    app: web.Application,
    center: ContactCenter,
    *,
    demo_site: bool = False,
    queue_id: str = "general",
    limits: Limits | None = None,
    allowed_origins: Sequence[str] | None = None,
    refresh_seconds: float = 5.0,
) -> None:
    """Wire the website live chat into the app.

    Routes: `GET /chat/ws` (citizen socket), `GET /widget.js`, `GET /widget.css`,
    `GET /chat/static/…`, and the demo agency website at `/demo-site` — also at `/` when
    `demo_site` is true (then `/` must not be routed already). `allowed_origins` limits
    which sites may open the socket (None: any site may embed the widget). `queue_id`
    names the queue whose business hours and available officers decide whether the
    widget offers a chat with people or the offline message form.
    """
    if queue_id not in center.settings.queues:
        raise ValueError(f"webchat: unknown queue {queue_id!r}")
    hub = WebChat(center, limits=limits, queue_id=queue_id)
    app[WEBCHAT_KEY] = hub
    app[ORIGINS_KEY] = frozenset(o.rstrip("/") for o in allowed_origins or ())
    center.register_adapter(hub)

    app.router.add_get("/chat/ws", chat_socket)
    app.router.add_get("/widget.js", _file("widget.js"))
    app.router.add_get("/widget.css", _file("widget.css"))
    app.router.add_static("/chat/static", STATIC)
    app.router.add_get("/demo-site", demo_page)
    if demo_site:
        taken = [r for r in app.router.resources() if r.canonical == "/"]
        if taken:
            raise RuntimeError("webchat: '/' is already routed; remove that route to serve "
                               "the demo site there, or use demo_site=False (/demo-site)")
        app.router.add_get("/", demo_page)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        hub.subscribe()
        refresh = asyncio.create_task(hub.refresh_loop(refresh_seconds), name="webchat-refresh")
        yield
        refresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresh
        await hub.close()

    async def close_sockets(app: web.Application) -> None:
        await hub.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(close_sockets)


async def chat_socket(request: web.Request) -> web.StreamResponse:
    """The citizen socket (protocol in README.md)."""
    hub = request.app[WEBCHAT_KEY]
    origins = request.app[ORIGINS_KEY]
    origin = request.headers.get("Origin", "").rstrip("/")
    if origins and origin not in origins:
        return web.json_response({"error": {"code": "origin_not_allowed",
                                            "message": "this site may not embed the chat"}},
                                 status=403)
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=hub.limits.max_socket_message)
    await ws.prepare(request)
    conn = hub.connected(ws, request.remote or "unknown")
    writer = asyncio.create_task(hub.writer(conn), name="webchat-writer")
    frames = TokenBuckets(hub.limits.frame_burst, hub.limits.frame_per_second)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await _one_frame(hub, conn, msg.data, frames)
            elif msg.type is WSMsgType.BINARY:
                conn.push(FrameError("text_only", "send JSON text frames").frame())
    finally:
        hub.disconnected(conn)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return ws


async def _one_frame(hub: WebChat, conn: Connection, data: str, frames: TokenBuckets) -> None:
    try:
        wait = frames.take("socket")
        if wait > 0:
            raise FrameError("rate_limited", "too many frames; slow down",
                             retry_after=round(wait, 1))
        await hub.handle(conn, parse(data, hub.limits))
    except FrameError as exc:
        conn.push(exc.frame())
    except Exception as exc:  # the socket stays open; nothing personal goes to the log
        log.error("webchat frame failed: %s", type(exc).__name__)
        conn.push({"type": "error", "code": "internal_error",
                   "message": "something went wrong on our side; please try again"})


def _file(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = STATIC / name

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return serve


async def demo_page(request: web.Request) -> web.Response:
    """The demo agency website, with the chat widget embedded by one script tag."""
    lang = "en" if request.query.get("lang") == "en" else "th"
    html = _templates.get_template("demo.html").render(lang=lang)
    return web.Response(text=html, content_type="text/html", charset="utf-8")
