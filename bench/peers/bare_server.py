"""The baselines: a bare aiohttp WebSocket relay and a bare TwiML handler.

Run as ``python bench/peers/bare_server.py PORT``. `GET /ws?pair=ID&role=citizen|agent`
pairs two sockets and forwards each text frame to the other side, nothing else (no
storage, no routing). `POST /twiml` reads the form and returns fixed TwiML.
"""

from __future__ import annotations

import sys

from aiohttp import WSMsgType, web

PEERS: dict[tuple[str, str], web.WebSocketResponse] = {}
OTHER = {"citizen": "agent", "agent": "citizen"}
TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/ivr/gather/main" '
         'input="dtmf speech" language="th-TH" finishOnKey=""><Say language="th-TH">'
         'สวัสดีค่ะ ศูนย์บริการประชาชน กด 1 ภาษาไทย</Say></Gather></Response>')


async def relay(request: web.Request) -> web.WebSocketResponse:
    pair, role = request.query["pair"], request.query["role"]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    PEERS[(pair, role)] = ws
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                peer = PEERS.get((pair, OTHER[role]))
                if peer is not None and not peer.closed:
                    await peer.send_str(msg.data)
    finally:
        PEERS.pop((pair, role), None)
    return ws


async def twiml(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text=TWIML, content_type="application/xml")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/ws", relay)
    app.router.add_post("/twiml", twiml)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
