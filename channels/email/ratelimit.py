"""Per-sender token bucket for inbound mail (in memory; one process).

A sender may send `burst` messages at once, then `per_minute` on average. Buckets that
have refilled completely carry no information and are the first to be forgotten, so memory
stays bounded (`max_senders`) even under a flood of forged sender addresses.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from channels.email.config import RateLimitConfig


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class SenderRateLimiter:
    """Token bucket per key (normalised sender address)."""

    def __init__(
        self, config: RateLimitConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or RateLimitConfig()
        self._clock = clock
        self._rate = self.config.per_minute / 60.0
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, sender: str, cost: float = 1.0) -> bool:
        """Take `cost` tokens from the sender's bucket; False if there are not enough."""
        key = sender.strip().lower()
        now = self._clock()
        bucket = self._refilled(key, now)
        self._buckets.move_to_end(key)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return True
        return False

    def retry_after(self, sender: str, cost: float = 1.0) -> float:
        """Seconds until `allow(sender, cost)` would succeed (0 if it would now)."""
        key = sender.strip().lower()
        if key not in self._buckets:
            return 0.0
        bucket = self._refilled(key, self._clock())
        missing = cost - bucket.tokens
        return max(0.0, missing / self._rate)

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            self._evict()
            bucket = _Bucket(float(self.config.burst), now)
            self._buckets[key] = bucket
            return bucket
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.config.burst), bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        return bucket

    def _evict(self) -> None:
        if len(self._buckets) < self.config.max_senders:
            return
        # Least recently used first: an idle sender's bucket is (nearly) full anyway.
        while len(self._buckets) >= self.config.max_senders:
            self._buckets.popitem(last=False)
