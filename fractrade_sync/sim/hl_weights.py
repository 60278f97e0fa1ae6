"""Hyperliquid's IP-based request weights: what each /info and /exchange request costs, and a sliding minute per IP.

The rules are the docs' (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-
limits): "REST requests share an aggregated weight limit of 1200 per minute" per IP address; every exchange action
weighs "1 + floor(batch_length / 40)"; the info requests l2Book, allMids, clearinghouseState, orderStatus,
spotClearinghouseState and exchangeStatus weigh 2, userRole 60, "All other documented info requests have weight 20".
The extra weight per 20 items some answers carry (userFills, historicalOrders ...) is not counted here.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable

LIMIT = 1200
WINDOW_S = 60.0
INFO_WEIGHTS = {
    "l2Book": 2,
    "allMids": 2,
    "clearinghouseState": 2,
    "orderStatus": 2,
    "spotClearinghouseState": 2,
    "exchangeStatus": 2,
    "userRole": 60,
}
INFO_DEFAULT = 20
BATCHES = ("orders", "cancels", "modifies")  # the arrays whose length is an action's batch_length


def weight(path: str, body) -> int:
    """What one request to `path` costs; 0 for what the exchange does not count (the simulator's /control)."""
    if path == "/info":
        kind = body.get("type") if isinstance(body, dict) else None
        return INFO_WEIGHTS.get(kind, INFO_DEFAULT) if isinstance(kind, str) else INFO_DEFAULT
    if path == "/exchange":
        action = body.get("action") if isinstance(body, dict) else None
        batch = next((action[k] for k in BATCHES if isinstance(action, dict) and isinstance(action.get(k), list)), [])
        return 1 + len(batch) // 40
    return 0


class RequestWeights:
    """The weight each client IP spent in the last WINDOW_S seconds, and the limit it may not pass."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: dict[str, collections.deque[tuple[float, int]]] = {}
        self.limit = LIMIT

    def admit(self, ip: str, cost: int) -> bool:
        """Count `cost` for `ip` and say True, or say False and count nothing when it would pass the limit (whether
        the exchange counts a refused request is unconfirmed)."""
        if cost <= 0:
            return True
        with self._lock:
            spent = self._window(ip)
            if sum(w for _t, w in spent) + cost > self.limit:
                return False
            spent.append((self._clock(), cost))
            return True

    def used(self, ip: str) -> int:
        with self._lock:
            return sum(w for _t, w in self._window(ip))

    def set_limit(self, limit: int) -> None:
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a whole number of 0 or more, not {limit!r}")
        with self._lock:
            self.limit = limit

    def reset(self) -> None:
        with self._lock:
            self._spent.clear()

    def _window(self, ip: str) -> collections.deque[tuple[float, int]]:
        """The ip's spending still inside the window (older entries dropped); the caller holds the lock."""
        spent = self._spent.setdefault(ip, collections.deque())
        horizon = self._clock() - WINDOW_S
        while spent and spent[0][0] <= horizon:
            spent.popleft()
        return spent
