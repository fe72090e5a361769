"""`make cluster`: the production topology as local processes, without Docker.

PostgreSQL and Redis (Debian's servers, in `var/cluster/`), two app nodes and a small
round-robin proxy in front of them (HTTP and WebSockets; a node that does not answer is
skipped), the same shape as docker-compose.yml. Rasa joins when `ONESTOP_RASA_URL` names
a server; otherwise the nodes run without the bot (chats go to people). Elasticsearch is
left out (the embedded search serves). Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from onestop.settings import ROOT

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer",
              "proxy-authorization", "proxy-authenticate", "content-length",
              "content-encoding"}


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start on port {port}")
        time.sleep(0.2)


def _postgres(base: Path, port: int) -> subprocess.Popen[bytes]:
    bindir = next((p for v in ("17", "16", "15", "14", "13")
                   if (p := Path(f"/usr/lib/postgresql/{v}/bin")).exists()), None)
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed: run scripts/ensure-system-packages.sh")
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        pwd.getpwnam("postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data = base / "pg"
    if not (data / "PG_VERSION").exists():
        base.mkdir(parents=True, exist_ok=True)
        if run_as:
            shutil.chown(base, "postgres")
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "onestop",
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], check=True,
                       capture_output=True)
    proc = subprocess.Popen([*run_as, str(bindir / "postgres"), "-D", str(data), "-p",
                             str(port), "-k", str(base), "-c", "listen_addresses=127.0.0.1"],
                            stdout=(base / "postgres.log").open("ab"), stderr=subprocess.STDOUT)
    _wait_port(port, proc, "PostgreSQL")
    time.sleep(0.5)
    exists = subprocess.run([*run_as, str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port),
                             "-U", "onestop", "-d", "postgres", "-tAc",
                             "SELECT 1 FROM pg_database WHERE datname = 'onestop'"],
                            capture_output=True, text=True, check=True)
    if exists.stdout.strip() != "1":
        subprocess.run([*run_as, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "onestop", "onestop"], check=True)
    return proc


def _redis(base: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(base), "--appendonly", "yes"],
                            stdout=(base / "redis.log").open("ab"), stderr=subprocess.STDOUT)
    _wait_port(port, proc, "Redis")
    return proc


class Proxy:
    """Round robin over the nodes, skipping one that refuses the connection."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = request.remote or ""
        body = await request.read()
        for _ in range(len(self.backends)):
            backend = self.backends[next(self._next)]
            try:
                if request.headers.get("Upgrade", "").lower() == "websocket":
                    return await self._socket(request, backend, headers)
                async with self.session.request(request.method, backend + request.path_qs,
                                                headers=headers, data=body,
                                                allow_redirects=False) as r:
                    payload = await r.read()
                    out = {k: v for k, v in r.headers.items() if k.lower() not in HOP_BY_HOP}
                    return web.Response(status=r.status, body=payload, headers=out)
            except aiohttp.ClientConnectorError:
                continue
        return web.Response(status=502, text="no app node answers")

    async def _socket(self, request: web.Request, backend: str,
                      headers: dict[str, str]) -> web.StreamResponse:
        assert self.session is not None
        for drop in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions"):
            headers.pop(drop, None)
        client = await self.session.ws_connect("ws" + backend[4:] + request.path_qs,
                                               headers=headers)
        server = web.WebSocketResponse()
        await server.prepare(request)

        async def pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                       sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
            await sink.close()

        tasks = [asyncio.create_task(pump(server, client)),
                 asyncio.create_task(pump(client, server))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await client.close()
        return server


async def _serve_proxy(port: int, backends: list[str], stop: asyncio.Event) -> None:
    proxy = Proxy(backends)
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    proxy.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await stop.wait()
    await runner.cleanup()
    await proxy.session.close()


def main() -> int:
    base = Path(os.environ.get("ONESTOP_CLUSTER_DIR", str(ROOT / "var" / "cluster")))
    base.mkdir(parents=True, exist_ok=True)
    pg_port, redis_port, proxy_port = 5433, 6380, int(os.environ.get("ONESTOP_HTTP_PORT", 8080))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(_postgres(base, pg_port))
        processes.append(_redis(base, redis_port))
        common = {**os.environ, "ONESTOP_DATABASE_URL":
                  f"postgresql+asyncpg://onestop@127.0.0.1:{pg_port}/onestop",
                  "ONESTOP_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                  "ONESTOP_PUBLIC_URL": os.environ.get("ONESTOP_PUBLIC_URL",
                                                       f"http://localhost:{proxy_port}"),
                  "ONESTOP_DEMO": "1"}
        if not common.get("ONESTOP_RASA_URL"):
            common["ONESTOP_BOT"] = "off"
        subprocess.run([sys.executable, "-m", "onestop", "seed-demo"], cwd=ROOT, env=common,
                       check=True)
        backends = []
        for n, (http, smtp) in enumerate([(8081, 2525), (8082, 2526)], start=1):
            env = {**common, "ONESTOP_HTTP_PORT": str(http), "ONESTOP_SMTP_PORT": str(smtp),
                   "ONESTOP_NODE_NAME": f"node{n}", "ONESTOP_DATA_DIR": str(base / f"node{n}")}
            proc = subprocess.Popen([sys.executable, "-m", "onestop", "run", "--demo"],
                                    cwd=ROOT, env=env,
                                    stdout=(base / f"node{n}.log").open("ab"),
                                    stderr=subprocess.STDOUT)
            processes.append(proc)
            _wait_port(http, proc, f"app node {n}", seconds=120)
            backends.append(f"http://127.0.0.1:{http}")
        print(f"OneStop cluster: open http://localhost:{proxy_port}/about (proxy over "
              f"{', '.join(backends)}); PostgreSQL :{pg_port}, Redis :{redis_port}; logs in "
              f"{base}. Ctrl-C stops it.", flush=True)
        stop = asyncio.Event()

        async def serve() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await _serve_proxy(proxy_port, backends, stop)

        asyncio.run(serve())
    finally:
        # A second Ctrl-C (or the terminal's, sent to the whole group) must not cut the
        # orderly stop short: the nodes hand the lease on, PostgreSQL shuts down cleanly.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for proc in reversed(processes):
            proc.terminate()
        for proc in reversed(processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
