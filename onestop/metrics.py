"""Prometheus metrics at `/metrics`: queues, service level, events, sockets, latencies.

Each app node exports its own view; queue figures come from the router of that node.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import routing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Paths whose latency is reported as webhook latency, by provider.
WEBHOOKS = {"/ivr/": "twilio", "/kiosk/v1/": "kiosk", "/slack/": "slack"}


class _QueueCollector(Collector):
    """Reads the router's live figures at scrape time (no background work)."""

    def __init__(self, center: routing.ContactCenter, sockets: Callable[[], dict[str, int]]
                 ) -> None:
        self.center = center
        self.sockets = sockets

    def collect(self) -> Iterator[GaugeMetricFamily]:
        waiting = GaugeMetricFamily("onestop_queue_waiting", "Tasks waiting in a queue",
                                    labels=["queue", "channel"])
        longest = GaugeMetricFamily("onestop_queue_longest_wait_seconds",
                                    "How long the oldest waiting task has waited",
                                    labels=["queue"])
        level = GaugeMetricFamily("onestop_queue_service_level",
                                  "Share answered within the threshold (last hour)",
                                  labels=["queue"])
        available = GaugeMetricFamily("onestop_queue_agents_available",
                                      "Agents available for a queue", labels=["queue"])
        for queue in routing.queue_views(self.center):
            for channel, n in queue["waiting_by_channel"].items():
                waiting.add_metric([queue["id"], channel], n)
            if not queue["waiting_by_channel"]:
                waiting.add_metric([queue["id"], "all"], 0)
            longest.add_metric([queue["id"]], queue["longest_wait_seconds"])
            if queue["service_level"] is not None:
                level.add_metric([queue["id"]], queue["service_level"])
            available.add_metric([queue["id"]], queue["agents_available"])
        yield from (waiting, longest, level, available)
        sockets = GaugeMetricFamily("onestop_open_sockets", "Open WebSockets", labels=["kind"])
        for kind, n in self.sockets().items():
            sockets.add_metric([kind], n)
        yield sockets


class Metrics:
    """The registry of one app node and the hooks that feed it."""

    def __init__(self, center: routing.ContactCenter,
                 sockets: Callable[[], dict[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("onestop_events_total", "Events published on the bus",
                              ["type"], registry=self.registry)
        self.requests = Histogram("onestop_http_request_seconds", "HTTP request latency",
                                  ["route"], registry=self.registry,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                           5, 15))
        self.webhooks = Histogram("onestop_webhook_seconds", "Provider webhook latency",
                                  ["provider"], registry=self.registry,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                           5, 15))
        self.bot = Histogram("onestop_bot_turn_seconds", "Bot turn latency (Rasa)",
                             ["outcome"], registry=self.registry,
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.registry.register(_QueueCollector(center, sockets or dict))
        center.bus.subscribe(self._count)
        if center.bot is not None:
            center.bot = _TimedBot(center.bot, self.bot)

    async def _count(self, event: Any) -> None:
        self.events.labels(type(event).__name__).inc()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Time every request (by route pattern, so ids do not explode the labels)."""
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            elapsed = time.perf_counter() - started
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            self.requests.labels(route).observe(elapsed)
            for prefix, provider in WEBHOOKS.items():
                if request.path.startswith(prefix):
                    self.webhooks.labels(provider).observe(elapsed)

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry),
                            content_type="text/plain", charset="utf-8",
                            headers={"Cache-Control": "no-store"})


class _TimedBot:
    """The bot port, timed."""

    def __init__(self, bot: routing.Bot, histogram: Histogram) -> None:
        self.inner = bot
        self.histogram = histogram

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def reply(self, turn: routing.BotTurn) -> routing.BotReply:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self.inner.reply(turn)
        except routing.BotUnavailable:
            outcome = "unavailable"
            raise
        finally:
            self.histogram.labels(outcome).observe(time.perf_counter() - started)
