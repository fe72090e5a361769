"""Token buckets for rate limits at the edges (chat visitors, kiosks, addresses): a flood
gets a clear error instead of slowing everyone down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per key: `burst` tokens, refilled at `per_second`.

    Keys unused for long enough to be full again are forgotten, so memory stays bounded
    by the number of recently active visitors.
    """

    def __init__(self, burst: float, per_second: float,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        if burst < 1 or per_second <= 0:
            raise ValueError("a bucket needs burst ≥ 1 and a positive refill rate")
        self.burst, self.per_second = float(burst), float(per_second)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens; 0.0 when allowed, else the seconds to wait before retrying."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.per_second

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.per_second
        for key in [k for k, b in self._buckets.items() if now - b.updated >= refill]:
            del self._buckets[key]
