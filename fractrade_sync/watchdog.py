"""Liveness: reconnect backoff, the silent-connection check, and the heartbeat file."""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .service import FractradeExecutor


CHECKPOINT_EVERY = 5.0  # seconds between the journal's WAL checkpoints


@dataclass
class Backoff:
    """Exponential backoff with jitter: sub-second first retry, capped, reset after a stable connection."""

    base: float = 0.5
    cap: float = 30.0
    stable_after: float = 30.0
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[float, float], float] = field(default=random.uniform)
    attempts: int = 0

    def next_delay(self, stable: bool = False) -> float:
        """The wait before the next attempt; a stable connection before this failure resets the count."""
        if stable:
            self.attempts = 0
        ceiling = min(self.cap, self.base * (2**self.attempts))
        self.attempts = min(self.attempts + 1, 32)
        return self.rand(ceiling / 2, ceiling)  # "equal jitter": never zero, never a synchronized storm


def cut(sock: socket.socket | None) -> None:
    """Shut a socket down (not close): wakes a select() or recv() blocked on it in another thread at once."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically replace a 0600 JSON file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat a running service wrote, or None."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Watchdog:
    """Every second: check the connection is not silent and the worker is not stuck; write the heartbeat."""

    def __init__(self, service: FractradeExecutor, interval: float = 1.0):
        self.service = service
        self.settings = service.settings
        self.interval = interval
        self.logger = logging.getLogger("fractrade_sync.watchdog")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog")
        self._last_beat = 0.0
        self._last_checkpoint = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:
                self.logger.exception("watchdog check failed (it goes on)")

    def check(self) -> None:
        """One round of checks; the heartbeat is written at its own interval."""
        receiver = self.service.receiver
        now = time.monotonic()
        if receiver.connected.is_set() and now - receiver.last_activity > self.settings.silence_timeout:
            receiver.force_close(f"no frame and no pong for {now - receiver.last_activity:.0f}s")
        if now - self._last_beat >= self.settings.heartbeat_interval:
            self._last_beat = now
            write_private_json(self.settings.heartbeat_path, self.status())
        if now - self._last_checkpoint >= CHECKPOINT_EVERY:
            self._last_checkpoint = now
            self.service.journal.checkpoint()  # off the order path: the hot connections never checkpoint

    def status(self) -> dict[str, Any]:
        """The heartbeat's content: what `health` needs to decide."""
        svc = self.service
        worker = svc.worker
        now = time.monotonic()
        busy = worker.busy_since
        stuck_after = self.settings.http_timeout * 8 + 30  # longer than any order with all its retries
        worker_ok = (
            worker.is_alive() and (busy is None or now - busy < stuck_after) and now - worker.heartbeat < stuck_after
        )
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "connected": svc.receiver.connected.is_set(),
            "seconds_since_activity": round(now - svc.receiver.last_activity, 1),
            "worker_alive": worker_ok,
            "exchange_ready": worker.ready.is_set(),
            "queue_depth": svc.queue.qsize(),
            "reconnects": svc.receiver.reconnects,
            "heartbeat_interval": self.settings.heartbeat_interval,
        }
