"""The request weight this process spends, counted as the exchange counts it against the IP (1200 a minute, wire.py):
reads stop short of the limit so that orders always find room."""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable

from fractrade_sync.exchange.wire import IP_WEIGHT_PER_MINUTE

WINDOW = 60.0  # seconds: the exchange's window ("1200 per minute")
READ_SHARE = 0.75  # reads may use this share of the limit; the rest is kept for orders, cancels and modifies


class WeightBudget:
    """A sliding minute of spent weight; `spend` counts every request sent, `room` says whether a read may go now.
    Used by the worker (and `check`); the lock makes a metrics read from another thread safe."""

    def __init__(
        self,
        limit: int = IP_WEIGHT_PER_MINUTE,
        read_share: float = READ_SHARE,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit = limit
        self.read_limit = int(limit * read_share)
        self.clock = clock
        self.total = 0  # weight spent since start
        self.by_kind: collections.Counter[str] = collections.Counter()
        self._spent: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def spend(self, weight: int, kind: str = "") -> None:
        """Count one request's weight now."""
        with self._lock:
            self._spent.append((self.clock(), weight))
            self.total += weight
            self.by_kind[kind] += weight

    def used(self) -> int:
        """Weight spent in the last minute."""
        with self._lock:
            self._expire()
            return sum(w for _, w in self._spent)

    def room(self, weight: int) -> bool:
        """Whether a read of this weight keeps this minute's reads within their share."""
        return self.used() + weight <= self.read_limit

    def _expire(self) -> None:
        cutoff = self.clock() - WINDOW
        while self._spent and self._spent[0][0] <= cutoff:
            self._spent.popleft()
