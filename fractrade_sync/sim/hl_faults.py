"""The faults the simulator injects on demand: which kinds there are, and the line of faults waiting for their requests
(hl_http delivers them).
"""

from __future__ import annotations

import collections
import threading

FAULTS = ("500", "429", "403", "timeout", "drop", "html", "answer", "hold")
# faults that refuse a request before anything is applied (403: a gateway's, e.g. a WAF): their status and body
REFUSALS = {"500": (500, "Internal Server Error"), "429": (429, ""), "403": (403, "Forbidden")}
# A gateway in front of the exchange (Cloudflare, a proxy) can answer 200 with its own HTML page; Hyperliquid's own
# API answers JSON only (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint).
GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"


class FaultQueue:
    """Faults waiting for the next requests to their path, first in first out; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: collections.deque[tuple[str, str, str | None]] = collections.deque()

    def inject(self, kind: str, count: int, path: str, answer: str | None) -> None:
        if kind not in FAULTS:
            raise ValueError(f"fault kind {kind!r}: use one of {', '.join(FAULTS)}")
        with self._lock:
            self._faults.extend([(kind, path, answer)] * count)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> tuple[str | None, str | None]:
        """The next fault for `path` and its answer, taken off the line; (None, None) when there is none."""
        with self._lock:
            for i, (kind, fault_path, answer) in enumerate(self._faults):
                if fault_path == path:
                    del self._faults[i]
                    return kind, answer
        return None, None

    def put_back(self, kind: str | None, path: str, answer: str | None) -> None:
        """Return a taken fault to the head of the line: the request it was meant for never got through."""
        if kind is not None:
            with self._lock:
                self._faults.appendleft((kind, path, answer))
