"""One backoff vocabulary: every wait before trying again (reconnects, preparation, exchange retries, webhook)."""

from __future__ import annotations

import random
from typing import Callable, Iterator


class Backoff:
    """Waits growing by `factor` from `base` up to `cap`, each shortened by up to `jitter` (a fraction) at random.

    `delays()` is a fresh bounded schedule (`tries` waits; None: endless) for a retry loop; `next_delay()` keeps
    count across calls for a reconnect loop, and starts over after a connection that stayed up `stable_after`."""

    def __init__(
        self,
        base: float,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.0,
        tries: int | None = None,
        stable_after: float = 30.0,
        rand: Callable[[float, float], float] = random.uniform,
    ):
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.tries = tries
        self.stable_after = stable_after
        self.rand = rand
        self.attempts = 0

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number `attempt` (0 = the first retry): jitter only shortens it."""
        return min(self.cap, self.base * self.factor ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        """The wait before retry number `attempt` (0 = the first retry)."""
        ceiling = self.ceiling(attempt)
        return ceiling if not self.jitter else self.rand(ceiling * (1 - self.jitter), ceiling)

    def longest(self) -> float:
        """The most one bounded schedule (`delays()`) can wait in all: every wait at its ceiling."""
        if self.tries is None:
            raise ValueError("an endless schedule has no longest wait")
        return sum(self.ceiling(attempt) for attempt in range(self.tries))

    def delays(self) -> Iterator[float]:
        """The schedule of one retry loop: `tries` waits, then it ends."""
        attempt = 0
        while self.tries is None or attempt < self.tries:
            yield self.delay(attempt)
            attempt += 1

    def next_delay(self, stable: bool = False) -> float:
        """The wait before the next attempt; a stable connection before this failure starts the count over."""
        if stable:
            self.attempts = 0
        wait = self.delay(self.attempts)
        self.attempts = min(self.attempts + 1, 64)
        return wait


def reconnect() -> Backoff:
    """Reconnects: sub-second first retry, capped at 30 s; "equal jitter" (never zero, never a synchronized storm)."""
    return Backoff(0.5, cap=30.0, jitter=0.5)


def exchange_retries() -> Backoff:
    """A request to the exchange after a network error, a 429 or a 5xx: 5 retries over about 8 s, then give up."""
    return Backoff(0.25, cap=4.0, jitter=0.2, tries=5)


def preparation() -> Backoff:
    """The worker's first contact with the exchange: retried until it answers, at most every 30 s."""
    return Backoff(0.5, cap=30.0)


def webhook() -> Backoff:
    """A notification after a 5xx, a 429 or a network error: 2 retries, 0.5 s and 1.5 s later."""
    return Backoff(0.5, factor=3.0, tries=2)
