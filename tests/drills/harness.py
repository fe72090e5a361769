"""The real server as a separate process (`python -m onestop run`) and clients that speak
each channel the way its provider does: a citizen's chat socket, an SMTP client, a signed
kiosk, Twilio's signed webhooks. Used by the crash drill and the log/privacy drills."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from twilio.request_validator import RequestValidator

from channels.kiosk import signed_headers

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
AUTH_TOKEN = "drill-twilio-token-5f1e0c2b9a7d"
SLACK_SECRET = "drill-slack-signing-secret-77aa"
SLACK_BOT_TOKEN = "xoxb-drill-bot-token-31337"
OUR_NUMBER = "+6621234567"
KIOSK_ID = "drill-k1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def national_id(body12: str) -> str:
    """A 13-digit Thai national ID with a correct mod-11 check digit."""
    total = sum(int(d) * (13 - i) for i, d in enumerate(body12))
    return body12 + str((11 - total % 11) % 10)


def random_national_id() -> str:
    return national_id("1" + "".join(str(secrets.randbelow(10)) for _ in range(11)))


@dataclass
class AppProcess:
    """One app node run as `python -m onestop run`, killed and restarted at will."""

    workdir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    relay_port: int | None = None
    http_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    kiosk_secret: str = ""
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def db_path(self) -> Path:
        return self.workdir / "onestop.db"

    @property
    def log_path(self) -> Path:
        return self.workdir / "stderr.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ONESTOP_", "TWILIO_", "SLACK_"))}
        env.update({
            "ONESTOP_DATA_DIR": str(self.workdir),
            "ONESTOP_DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
            "ONESTOP_HTTP_PORT": str(self.http_port),
            "ONESTOP_SMTP_PORT": str(self.smtp_port),
            "ONESTOP_HOST": "127.0.0.1",
            "ONESTOP_BOT": "off",
            "ONESTOP_PUBLIC_URL": self.base,
            "ONESTOP_CONFIG_DIR": str(self._config_dir()),
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SLACK_SIGNING_SECRET": SLACK_SECRET,
            "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.env_extra)
        return env

    def _config_dir(self) -> Path:
        target = self.workdir / "config"
        if not target.exists():
            shutil.copytree(ROOT / "config", target)
            email = yaml.safe_load((target / "email.yaml").read_text())
            email["outbound"]["relay_port"] = self.relay_port or free_port()
            (target / "email.yaml").write_text(yaml.safe_dump(email, allow_unicode=True))
        return target

    def prepare(self) -> None:
        """Demo staff and one registered kiosk (through the CLIs an operator uses)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        subprocess.run([PYTHON, "-m", "onestop", "seed-demo"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=120)
        out = subprocess.run([PYTHON, "-m", "channels.kiosk", "add", KIOSK_ID, "--name",
                              "Drill kiosk", "--location", "Drill office"], cwd=ROOT, env=env,
                             check=True, capture_output=True, timeout=120)
        self.kiosk_secret = json.loads(out.stdout)["secret"]

    async def start(self, wait: float = 90) -> None:
        assert self.proc is None
        self.proc = self._spawn()
        self.starts += 1
        deadline = time.monotonic() + wait
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}; see "
                                       f"{self.log_path}")
                try:
                    async with http.get(self.base + "/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen([PYTHON, "-m", "onestop", "run"], cwd=ROOT,
                                    env=self.env(), stdout=subprocess.DEVNULL, stderr=log)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flush, nothing."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the database directly (what is really stored, not what the app says)."""
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            return list(conn.execute(sql, args).fetchall())

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- channel clients -----------------------------------------------------------------------


async def login(http: aiohttp.ClientSession, base: str, username: str, password: str
                ) -> dict[str, Any]:
    async with http.post(base + "/api/v1/auth/login",
                         json={"username": username, "password": password}) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


def twilio_headers(url: str, params: Mapping[str, str], token: str = AUTH_TOKEN
                   ) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, dict(params))}


async def ivr_post(http: aiohttp.ClientSession, base: str, path: str,
                   params: Mapping[str, str]) -> aiohttp.ClientResponse:
    url = base + path
    async with http.post(url, data=dict(params), headers=twilio_headers(url, params)) as r:
        await r.read()
        return r


def call_params(sid: str, caller: str = "+66812345678") -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": caller, "To": OUR_NUMBER,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}


async def kiosk_post(http: aiohttp.ClientSession, base: str, secret: str, payload: Any,
                     raw: bytes | None = None) -> aiohttp.ClientResponse:
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    headers = signed_headers(KIOSK_ID, secret, int(time.time()), body)
    async with http.post(base + "/kiosk/v1/events", data=body, headers=headers) as r:
        await r.read()
        return r


def identified_event(event_id: str, visit: str, nid: str, name: str = "สมชาย ทดสอบ"
                     ) -> dict[str, Any]:
    return {"id": event_id, "type": "citizen_identified", "visit_id": visit,
            "method": "smart_card", "national_id": nid, "name_th": name}


def citizen_email(message_id: str, body: str = "ขอสอบถามเรื่องภาษีค่ะ",
                  sender: str = "somying@mail.example.th", subject: str = "สอบถาม"
                  ) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "help@onestop.go.th"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    return msg


def smtp_send(port: int, message: EmailMessage | bytes, sender: str = "a@mail.example.th",
              timeout: float = 15) -> None:
    """Send one message; returns only on 250 (raises otherwise)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
        if isinstance(message, bytes):
            client.sendmail(sender, ["help@onestop.go.th"], message)
        else:
            client.send_message(message)


class ChatClient:
    """A citizen's widget: resume, send with client ids, keep what was acknowledged."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.visitor = secrets.token_urlsafe(24)
        self.conversation: str | None = None
        self.last_seq = 0
        self.acked: set[str] = set()
        self.seen: list[dict[str, Any]] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self, after_seq: int | None = None) -> dict[str, Any]:
        self.ws = await self.http.ws_connect(self.base.replace("http", "ws") + "/chat/ws")
        await self.ws.send_json({"type": "resume", "visitor": self.visitor,
                                 "conversation": self.conversation,
                                 "after_seq": self.last_seq if after_seq is None else after_seq,
                                 "language": "th"})
        ready = await self.frame("ready")
        self.conversation = ready["conversation"]
        return ready

    async def frame(self, kind: str, wait: float = 15) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            msg = await self.ws.receive(timeout=wait)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"socket closed: {msg.type}")
            data = json.loads(msg.data)
            if data["type"] == "message":
                self.seen.append(data)
                self.last_seq = max(self.last_seq, int(data["seq"]))
            if data["type"] == kind:
                return dict(data)

    async def send(self, text: str) -> str | None:
        """Send one message; the client id when it was acknowledged, None when not."""
        assert self.ws is not None
        client_id = secrets.token_hex(8)
        await self.ws.send_json({"type": "message", "client_id": client_id, "text": text})
        while True:
            data = await self.frame_any()
            if data["type"] == "ack" and data.get("client_id") == client_id:
                self.acked.add(client_id)
                return client_id
            if data["type"] == "error" and data.get("client_id") in (client_id, None):
                if data.get("code") == "rate_limited":
                    await asyncio.sleep(float(data.get("retry_after") or 1))
                    await self.ws.send_json({"type": "message", "client_id": client_id,
                                             "text": text})
                    continue
                return None

    async def frame_any(self, wait: float = 15) -> dict[str, Any]:
        assert self.ws is not None
        msg = await self.ws.receive(timeout=wait)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket closed: {msg.type}")
        data = dict(json.loads(msg.data))
        if data["type"] == "message":
            self.seen.append(data)
            self.last_seq = max(self.last_seq, int(data["seq"]))
        return data

    async def drain(self, quiet: float = 1.0) -> None:
        """Read frames until none come for `quiet` seconds."""
        while True:
            try:
                await self.frame_any(wait=quiet)
            except TimeoutError:
                return

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
