"""ServiceProbe: what the operator's channels read of the running service, and nothing more. The service assembles it
once, at its construction, from its own parts; each reading is called when a channel needs it (a scrape, /status,
the watchdog's tick), so it sees the parts as they are then: a part not built yet reads as None (its metric is left
out, its line says 'not ...'). Each reading only reads: none takes a lock held across an order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence


def _not_built(*_: Any) -> None:
    return None


def _no_rows(limit: int) -> Sequence[Mapping[str, Any]]:
    return []


@dataclass(frozen=True)
class ServiceProbe:
    """Readings of the live service, each a callable. The defaults read as 'nothing built yet'."""

    connected: Callable[[], bool | None] = _not_built  # the Fractrade WebSocket is open
    reconnects: Callable[[], int | None] = _not_built  # to Fractrade, since the start
    exchange_ready: Callable[[], bool | None] = _not_built  # the worker has what it needs to send orders
    queue_depth: Callable[[], int | None] = _not_built  # actions queued for the worker (Queue.qsize())
    clock_offset: Callable[[], float | None] = _not_built  # seconds the exchange's clock is ahead of ours
    threads: Callable[[], Mapping[str, str] | None] = _not_built  # thread name -> 'ok', 'dead' or 'stuck'
    live_status: Callable[[], Mapping[str, Any] | None] = _not_built  # the watchdog's status() (the heartbeat's)
    recent_actions: Callable[[int], Sequence[Mapping[str, Any]]] = _no_rows  # the journal's last n, newest first
