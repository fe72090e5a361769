"""IMAP poller (aioimaplib): fetches new mail from one mailbox into the sink.

Delivery is at-least-once and ordered by UID:
1. SELECT the mailbox and read its UIDVALIDITY.
2. Load the saved position (`ImapStateStore`): (uidvalidity, last_uid).
3. UID SEARCH for UIDs above last_uid; for each, oldest first: FETCH BODY.PEEK[] (the
   mailbox's \\Seen flags are left alone for people who also read it), parse, hand to the
   sink, and only when the sink returned save last_uid = uid.
4. Wait: IDLE (RFC 2177) when the server offers it, re-issued every
   `idle_timeout_seconds`; otherwise sleep `poll_interval_seconds`. Then go to 3.

A crash between the sink storing and the position being saved re-delivers that one message
on restart; the sink is idempotent on `ParsedEmail.dedupe_key`, so it is stored once.

UIDVALIDITY change: the server renumbered the mailbox (restored from backup, recreated),
so saved UIDs mean nothing. The poller then starts again from UID 1 under the new
UIDVALIDITY and re-delivers every message still in the mailbox; the sink's Message-ID
dedupe drops the ones it already has (messages without a Message-ID dedupe on the SHA-256
of their bytes). Nothing is missed; duplicates are absorbed by the sink, not stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aioimaplib

from channels.email.config import ImapConfig, ParseLimits
from channels.email.model import Envelope
from channels.email.parsing import parse_email_off_loop
from channels.email.ports import EmailSink, ImapStateStore, MailboxState

log = logging.getLogger(__name__)

_UIDVALIDITY_RE = re.compile(rb"UIDVALIDITY (\d+)", re.IGNORECASE)
_FETCH_UID_RE = re.compile(rb"UID (\d+)", re.IGNORECASE)
_MAX_BACKOFF_SECONDS = 300.0


class ImapError(RuntimeError):
    """The IMAP server refused a command or the connection broke; the poller reconnects."""


class ImapPoller:
    """Polls (or IDLEs on) one mailbox and hands every new message to the sink once."""

    def __init__(
        self,
        config: ImapConfig,
        sink: EmailSink,
        state: ImapStateStore,
        limits: ParseLimits | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.state = state
        self.limits = limits
        self.account = f"{config.username}@{config.host}:{config.port}"
        self.delivered = 0
        self._client: Any = None
        self._lost = asyncio.Event()

    async def poll_once(self) -> int:
        """Connect, deliver everything new, log out. Returns how many messages were handed."""
        await self._connect()
        try:
            uidvalidity = await self._select()
            return await self._sync(uidvalidity)
        finally:
            await self._logout()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set: sync, then IDLE or sleep; reconnect with backoff on errors."""
        backoff = 1.0
        while not stop.is_set():
            try:
                await self._connect()
                uidvalidity = await self._select()
                backoff = 1.0
                while not stop.is_set():
                    await self._sync(uidvalidity)
                    if self.config.use_idle and self._client.has_capability("IDLE"):
                        await self._idle(stop)
                    else:
                        await _wait(stop, self.config.poll_interval_seconds)
                        await self._check(self._client.noop(), "NOOP")
            except Exception as exc:
                # Server trouble or a sink that cannot store right now: the position was not
                # advanced, so reconnecting later re-reads from the last stored message.
                log.warning("imap %s: %s; reconnecting in %.0fs", self.account, exc, backoff)
                await self._logout()
                await _wait(stop, backoff)
                backoff = min(_MAX_BACKOFF_SECONDS, backoff * 2)
            except asyncio.CancelledError:
                await self._logout()
                raise
        await self._logout()

    # --- protocol steps -----------------------------------------------------------------
    async def _connect(self) -> None:
        config = self.config
        self._lost = asyncio.Event()

        def on_lost(exc: Exception | None) -> None:
            self._lost.set()

        # IMAP4 with an SSL context rather than IMAP4_SSL: only IMAP4 reports a lost connection.
        self._client = aioimaplib.IMAP4(
            host=config.host,
            port=config.port,
            timeout=config.command_timeout_seconds,
            conn_lost_cb=on_lost,
            ssl_context=ssl.create_default_context() if config.use_tls else None,
        )
        await self._client.wait_hello_from_server()
        await self._check(self._client.login(config.username, config.password), "LOGIN")

    async def _select(self) -> int:
        response = await self._check(self._client.select(self.config.mailbox), "SELECT")
        for line in response.lines:
            match = _UIDVALIDITY_RE.search(bytes(line))
            if match:
                return int(match.group(1))
        raise ImapError(f"SELECT {self.config.mailbox} returned no UIDVALIDITY")

    async def _sync(self, uidvalidity: int) -> int:
        saved = await self.state.load(self.account, self.config.mailbox)
        last_uid = 0
        if saved is not None and saved.uidvalidity == uidvalidity:
            last_uid = saved.last_uid
        elif saved is not None:
            log.warning(
                "imap %s/%s: UIDVALIDITY changed %s → %s; re-reading the mailbox "
                "(the sink drops what it already has by Message-ID)",
                self.account, self.config.mailbox, saved.uidvalidity, uidvalidity,
            )
        handed = 0
        while True:
            uids = await self._new_uids(last_uid)
            if not uids:
                return handed
            for uid in uids[: self.config.batch_size]:
                raw = await self._fetch(uid)
                if raw is not None:
                    await self._deliver(raw, uidvalidity, uid)
                    handed += 1
                # Recorded only after the sink returned: a crash before this line means
                # the message is fetched again, never skipped.
                position = MailboxState(uidvalidity, uid)
                await self.state.save(self.account, self.config.mailbox, position)
                last_uid = uid

    async def _new_uids(self, last_uid: int) -> list[int]:
        response = await self._check(
            self._client.uid_search(f"UID {last_uid + 1}:*", charset=None), "UID SEARCH"
        )
        uids: set[int] = set()
        for line in response.lines:
            text = bytes(line).decode("ascii", errors="replace")
            if text.startswith("SEARCH"):
                text = text[len("SEARCH") :]
            for token in text.split():
                if token.isdigit():
                    uids.add(int(token))
        # "n:*" always matches the highest UID even when it is below n (RFC 3501 §6.4.8).
        return sorted(uid for uid in uids if uid > last_uid)

    async def _fetch(self, uid: int) -> bytes | None:
        response = await self._check(
            self._client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), "UID FETCH"
        )
        raw = _literal_for_uid(response.lines, uid)
        if raw is None and any(b"FETCH" in bytes(line) for line in response.lines):
            # The server answered for this UID but we could not find the body: never skip.
            raise ImapError(f"UID FETCH {uid}: no message body in the response")
        return raw

    async def _deliver(self, raw: bytes, uidvalidity: int, uid: int) -> None:
        parsed = await parse_email_off_loop(raw, self.limits)
        envelope = Envelope(
            transport="imap",
            queues=(self.config.queue,),
            mailbox=self.config.mailbox,
            uidvalidity=uidvalidity,
            uid=uid,
            received_at=datetime.now(UTC),
            extra={"account": self.account},
        )
        await self.sink.accept(parsed, envelope)
        self.delivered += 1

    async def _idle(self, stop: asyncio.Event) -> None:
        client = self._client
        idle = await client.idle_start(timeout=self.config.idle_timeout_seconds)
        push = asyncio.ensure_future(
            client.wait_server_push(timeout=self.config.idle_timeout_seconds + 30)
        )
        stopper = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({push, stopper, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (push, stopper, lost):
                task.cancel()
        if self._lost.is_set():
            raise ImapError("connection lost during IDLE")
        # Whatever the server pushed (EXISTS, EXPUNGE, FETCH) or a timeout: leave IDLE and
        # let the caller re-sync, which is cheap (one UID SEARCH).
        if client.has_pending_idle():
            client.idle_done()
        await asyncio.wait_for(idle, self.config.command_timeout_seconds)

    async def _logout(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.has_pending_idle():
                client.idle_done()
            if client.get_state() in ("AUTH", "SELECTED"):
                await asyncio.wait_for(client.logout(), 5)
        except (aioimaplib.AioImapException, OSError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            transport = getattr(client.protocol, "transport", None)
            if transport is not None:
                transport.close()

    @staticmethod
    async def _check(call: Any, what: str) -> Any:
        response = await call
        if response.result != "OK":
            detail = b" ".join(bytes(x) for x in response.lines[-1:]).decode(errors="replace")
            raise ImapError(f"{what} failed: {response.result} {detail[:200]}")
        return response


def _literal_for_uid(lines: Sequence[Any], uid: int) -> bytes | None:
    # aioimaplib returns literals as bytearray right after the line announcing them.
    current_uid: int | None = None
    for line in lines:
        if isinstance(line, bytearray):
            if current_uid in (None, uid):
                return bytes(line)
            continue
        match = _FETCH_UID_RE.search(bytes(line))
        if match:
            current_uid = int(match.group(1))
    return None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
