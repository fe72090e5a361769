"""Per-sender token bucket."""

from __future__ import annotations

from channels.email.config import RateLimitConfig
from channels.email.ratelimit import SenderRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_per_sender() -> None:
    clock = Clock()
    limiter = SenderRateLimiter(RateLimitConfig(burst=3, per_minute=6), clock)
    assert [limiter.allow("A@Example.org") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b@example.org")  # other senders have their own bucket
    assert limiter.retry_after("a@example.org") == 10.0  # 6 per minute → one every 10 s
    clock.now = 10.0
    assert limiter.allow("a@example.org")
    assert not limiter.allow("a@example.org")
    clock.now = 1000.0
    assert [limiter.allow("a@example.org") for _ in range(4)] == [True, True, True, False]


def test_memory_stays_bounded() -> None:
    limiter = SenderRateLimiter(RateLimitConfig(max_senders=100), Clock())
    for index in range(10_000):
        limiter.allow(f"forged{index}@example.org")
    assert len(limiter) <= 100
