"""A client-side token bucket shared by the Whop client and the Twenty writer.

Design: reservations. Under an `asyncio.Lock` each caller refills the bucket from the clock and
takes its tokens at once, possibly driving the balance negative (a debt); it then sleeps, outside
the lock, until the debt it joined is paid back. So callers are served in the order they asked
(the lock is FIFO), concurrent sleeps overlap instead of queueing, and the wait is computed once
from the clock, which makes the class testable with a fake clock and a fake sleep.

`pause(seconds)` holds everybody back (after a 429): it moves the bucket's time base into the
future, so every later reservation waits for the pause first, and callers already asleep extend
their sleep before they go. The shared budget (`bridge.store.budget.SharedBucket`) spells it the
same, so a client pauses whichever it has.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


class Limiter(Protocol):
    """What an API client needs from a rate limit: this process's `TokenBucket`, or a budget
    shared with other processes (`bridge.store.budget.SharedBucket`)."""

    async def acquire(self, tokens: float = 1) -> None: ...

    async def pause(self, seconds: float) -> None: ...


class TokenBucket:
    """`rate_per_second` tokens flow in continuously, up to `capacity` (the burst size)."""

    def __init__(
        self,
        rate_per_second: float,
        capacity: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.rate = float(rate_per_second)
        self.capacity = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(capacity)  # start full: the first burst goes out at once
        self._updated = clock()  # the time `_tokens` refers to; in the future during a pause
        self._paused_until = float("-inf")
        self._lock = asyncio.Lock()

    @classmethod
    def per_minute(
        cls,
        requests: float,
        *,
        capacity: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> TokenBucket:
        """`requests` a minute; a burst of one spreads calls evenly (Twenty's 100/min)."""
        return cls(requests / 60.0, capacity, clock=clock, sleep=sleep)

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    @property
    def available(self) -> float:
        """Tokens available now (negative while callers are waiting); for metrics and tests."""
        now = self._clock()
        if now <= self._updated:
            return self._tokens
        return min(self.capacity, self._tokens + (now - self._updated) * self.rate)

    async def acquire(self, tokens: float = 1) -> None:
        """Wait until `tokens` may be spent, in the order callers asked."""
        if tokens <= 0:
            raise ValueError("tokens must be positive")
        async with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= tokens
            # Ready when the balance is back to zero, counted from the time base (which a
            # pause may have pushed into the future).
            ready_at = self._updated + max(0.0, -self._tokens) / self.rate
        wait = ready_at - now
        if wait > 0:
            await self._sleep(wait)
        # A pause that began while we slept still applies to us. Computed from the
        # reservation, not the clock, so a fake sleep cannot make this loop forever.
        while self._paused_until > ready_at:
            extra = self._paused_until - ready_at
            ready_at = self._paused_until
            await self._sleep(extra)

    async def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` from now (a 429 said so)."""
        if seconds <= 0:
            return
        now = self._clock()
        self._refill(now)
        until = now + seconds
        if until > self._paused_until:
            self._paused_until = until
        if until > self._updated:
            # Keep the debt of waiting callers (it moves past the pause with the time base) but
            # drop any saved-up burst beyond one call, so traffic resumes gently.
            self._tokens = min(self._tokens, 1.0)
            self._updated = until
