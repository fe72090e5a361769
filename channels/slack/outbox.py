"""A durable outbox for Slack Web API calls.

Every post, update and thread reply is saved in the core's state store
(`center.save_state("slack.outbox", …)`) *before* the caller goes on, and removed only
after Slack answered `ok`. A background worker sends them; Slack errors, network
failures and rate limits (HTTP 429, honouring `Retry-After`) are retried with back-off
(1 s … 5 min) for as long as it takes, across restarts. Guarantee: at least once; a
crash in the instant between Slack's `ok` and the outbox being saved re-sends that one
call after the restart.

Calls are ordered per *lane* (a Slack channel): a thread reply is never sent before the
message it replies to, while a failing channel does not hold the others up. A call may
name references resolved when it is sent: `thread_ref` (reply in the thread of the
message remembered under that key) and `update_ref` (update that message); a call with
`remember` stores `channel:ts` of what it posted under that key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from routing import ContactCenter, wait_or_timeout

log = logging.getLogger(__name__)
STATE_NAME = "slack.outbox"
BACKOFF = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
#: Called after a post succeeded, with the remembered key and its `channel:ts`.
RefHook = Callable[[str, str], Awaitable[None]]
#: Finds a reference the outbox does not hold (e.g. a consultation's thread in the core).
Resolver = Callable[[str], Awaitable[str | None]]


class SlackOutbox:
    def __init__(self, center: ContactCenter, client: AsyncWebClient, *,
                 backoff: tuple[float, ...] = BACKOFF, on_ref: RefHook | None = None,
                 resolver: Resolver | None = None) -> None:
        self.center = center
        self.client = client
        self.backoff = backoff
        self.on_ref = on_ref
        self.resolver = resolver
        self._items: list[dict[str, Any]] = []
        self._refs: dict[str, str] = {}
        self._loaded = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- public -------------------------------------------------------------------------

    async def enqueue(self, method: str, args: dict[str, Any], *, lane: str,
                      thread_ref: str | None = None, update_ref: str | None = None,
                      remember: str | None = None, forget: tuple[str, ...] = ()) -> str:
        """Save a call durably and wake the worker; returns the item's id."""
        item = {"id": secrets.token_hex(8), "method": method, "args": args, "lane": lane,
                "thread_ref": thread_ref, "update_ref": update_ref, "remember": remember,
                "forget": list(forget), "attempts": 0, "not_before": 0.0, "last_error": None}
        async with self._lock:
            await self._load()
            self._items.append(item)
            self._idle.clear()
            await self._save()
        self._wake.set()
        return str(item["id"])

    async def ref(self, key: str) -> str | None:
        async with self._lock:
            await self._load()
            return self._refs.get(key)

    async def remember(self, key: str, ref: str) -> None:
        async with self._lock:
            await self._load()
            self._refs[key] = ref
            await self._save()

    async def pending(self) -> list[dict[str, Any]]:
        async with self._lock:
            await self._load()
            return [dict(i) for i in self._items]

    def start(self) -> None:
        if self._worker is None:
            self._idle.clear()  # until the worker has looked at what is saved
            self._worker = asyncio.create_task(self._run(), name="slack-outbox")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def drain(self) -> None:
        """Wait until nothing is pending (tests, orderly shutdown; bound it with
        `asyncio.timeout`)."""
        await self._idle.wait()

    # -- the worker ---------------------------------------------------------------------

    async def _run(self) -> None:
        async with self._lock:
            await self._load()
        while True:
            self._wake.clear()
            delay = await self._send_due()
            if delay is None:
                self._idle.set()
                await self._wake.wait()
            else:
                await wait_or_timeout(self._wake, max(0.01, delay))

    async def _send_due(self) -> float | None:
        """Send the head of every lane that is due; the seconds until the next is due
        (None when the outbox is empty)."""
        async with self._lock:
            heads: dict[str, dict[str, Any]] = {}
            for item in self._items:
                heads.setdefault(item["lane"], item)
        now = time.time()
        for item in heads.values():
            if item["not_before"] <= now:
                await self._send(item)
        async with self._lock:
            if not self._items:
                return None
            heads = {}
            for item in self._items:
                heads.setdefault(item["lane"], item)
            return min(i["not_before"] for i in heads.values()) - time.time()

    async def _send(self, item: dict[str, Any]) -> None:
        args = dict(item["args"])
        try:
            if item["thread_ref"]:
                ref = await self._resolve(item["thread_ref"])
                if ref:
                    args["channel"], args["thread_ts"] = ref.split(":", 1)
            if item["update_ref"]:
                ref = await self._resolve(item["update_ref"])
                if not ref:  # the message to update never reached Slack: nothing to update
                    await self._done(item, None)
                    return
                args["channel"], args["ts"] = ref.split(":", 1)
            response = await self.client.api_call(item["method"], json=args)
        except SlackApiError as exc:
            headers = exc.response.headers or {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            await self._failed(item, f"{exc.response.status_code} {error or ''}".strip(),
                               float(retry_after) if retry_after else None)
            return
        except (OSError, TimeoutError, ValueError) as exc:
            await self._failed(item, type(exc).__name__, None)
            return
        except Exception as exc:  # aiohttp client errors and the like: retry too
            await self._failed(item, type(exc).__name__, None)
            return
        posted = None
        if item["remember"] and response.get("ts"):
            posted = f"{response.get('channel') or args.get('channel')}:{response['ts']}"
            if self.on_ref is not None:
                await self.on_ref(item["remember"], posted)
        await self._done(item, posted)

    async def _resolve(self, key: str) -> str | None:
        async with self._lock:
            found = self._refs.get(key)
        if found is None and self.resolver is not None:
            found = await self.resolver(key)
        return found

    async def _done(self, item: dict[str, Any], posted: str | None) -> None:
        async with self._lock:
            self._items = [i for i in self._items if i["id"] != item["id"]]
            if posted and item["remember"]:
                self._refs[item["remember"]] = posted
            for key in item["forget"]:
                self._refs.pop(key, None)
            await self._save()

    async def _failed(self, item: dict[str, Any], error: str, retry_after: float | None) -> None:
        attempts = int(item["attempts"]) + 1
        delay = retry_after if retry_after is not None else \
            self.backoff[min(attempts - 1, len(self.backoff) - 1)]
        log.warning("slack call failed; will retry", extra={
            "method": item["method"], "error": error, "attempts": attempts, "delay": delay})
        async with self._lock:
            for stored in self._items:
                if stored["id"] == item["id"]:
                    stored["attempts"], stored["last_error"] = attempts, error
                    stored["not_before"] = time.time() + delay
            await self._save()

    # -- persistence --------------------------------------------------------------------

    async def _load(self) -> None:
        if self._loaded:
            return
        state = await self.center.load_state(self._state_name) or {}
        self._items = list(state.get("items", [])) + self._items
        self._refs = {**state.get("refs", {}), **self._refs}
        for item in self._items:
            item["not_before"] = 0.0  # a restart retries at once
        self._loaded = True
        if self._items:
            self._idle.clear()

    async def _save(self) -> None:
        await self.center.save_state(self._state_name, {"items": self._items,
                                                        "refs": self._refs})

    @property
    def _state_name(self) -> str:
        # Each cluster node keeps its own outbox (a node's calls survive its restart).
        node = self.center.node_name
        return f"{STATE_NAME}@{node}" if node else STATE_NAME
