"""The watchdog thread: the silent-connection check, the worker's liveness, the heartbeat, journal checkpoints."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Protocol, Sequence

from fractrade_sync.channels.heartbeat import write_heartbeat
from fractrade_sync.config.settings import Settings

CHECKPOINT_EVERY = 5.0  # seconds between the journal's WAL checkpoints
# a worker busy with one action longer than STUCK_TIMEOUTS HTTP timeouts plus STUCK_MARGIN s is stuck. An action's
# worst case, every request timing out: two orders, each sent 6 times, a noop sent 6 times, 6 cloid checks (36
# timeouts), and their retry waits (about 60 s)
STUCK_TIMEOUTS = 40
STUCK_MARGIN = 90.0


class WatchedReceiver(Protocol):
    """What the watchdog uses of the receiver thread (feeds/receiver.py's Receiver)."""

    connected: threading.Event
    last_activity: float  # monotonic time of the last frame or pong
    reconnects: int

    @property
    def started(self) -> bool: ...

    def is_alive(self) -> bool: ...

    def force_close(self, why: str) -> None: ...


class WatchedWorker(Protocol):
    """What the watchdog uses of the worker thread (execution/worker.py's Worker)."""

    ready: threading.Event  # the exchange is ready
    busy_since: float | None  # monotonic time the item in hand was taken, None while waiting
    heartbeat: float  # monotonic time of its last loop

    def is_alive(self) -> bool: ...


class Watchdog:
    """Every second: cut a silent connection, judge the threads, write the heartbeat, checkpoint the journal."""

    def __init__(
        self,
        settings: Settings,
        receiver: WatchedReceiver,
        worker: WatchedWorker,
        queue_depth: Callable[[], int],
        checkpoint: Callable[[], None],
        on_failure: Callable[[str], None],
        interval: float = 1.0,
        storage: Callable[[], str | None] = lambda: None,
        ticks: Sequence[Callable[[], None]] = (),
    ):
        self.settings = settings
        self.receiver = receiver
        self.worker = worker
        self.queue_depth = queue_depth  # actions waiting for the worker
        self.checkpoint = checkpoint  # the journal's WAL checkpoint (Journal.checkpoint)
        self.on_failure = on_failure  # a thread died or is stuck: the service stops with a non-zero exit
        self.interval = interval
        self.storage = storage  # why the journal cannot be written now, or None
        self.ticks = tuple(ticks)  # run every check (the operator channels' kill switch and clock watch)
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
        """One round of checks; the heartbeat and the checkpoint at their own intervals."""
        receiver = self.receiver
        now = time.monotonic()
        if receiver.connected.is_set() and now - receiver.last_activity > self.settings.silence_timeout:
            receiver.force_close(f"no frame and no pong for {now - receiver.last_activity:.0f}s")
        threads = self.threads()
        for name, state in threads.items():
            if state != "ok":
                self.on_failure(f"the {name} thread is {state}")
        if now - self._last_beat >= self.settings.heartbeat_interval:
            self._last_beat = now
            write_heartbeat(self.settings.paths.heartbeat, self.status())
        for tick in self.ticks:
            tick()
        if now - self._last_checkpoint >= CHECKPOINT_EVERY:
            self._last_checkpoint = now
            self.checkpoint()  # off the order path: the hot connections never checkpoint

    def threads(self) -> dict[str, str]:
        """Each watched thread: 'ok', 'dead' (ended while the service runs) or 'stuck' (the worker, busy too long)."""
        worker = self.worker
        now = time.monotonic()
        stuck_after = self.settings.http_timeout * STUCK_TIMEOUTS + STUCK_MARGIN
        busy = worker.busy_since
        if not worker.is_alive():
            state = "dead"
        elif (busy is not None and now - busy > stuck_after) or now - worker.heartbeat > stuck_after:
            state = "stuck"
        else:
            state = "ok"
        states = {"worker": state}
        if self.receiver.started:
            states["receiver"] = "ok" if self.receiver.is_alive() else "dead"
        return states

    def status(self) -> dict[str, Any]:
        """The heartbeat's content: what `health` needs to decide."""
        now = time.monotonic()
        threads = self.threads()
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "connected": self.receiver.connected.is_set(),
            "seconds_since_activity": round(now - self.receiver.last_activity, 1),
            "worker_alive": threads["worker"] == "ok",
            "threads": threads,
            "exchange_ready": self.worker.ready.is_set(),
            "queue_depth": self.queue_depth(),
            "reconnects": self.receiver.reconnects,
            "heartbeat_interval": self.settings.heartbeat_interval,
            "storage": self.storage(),
        }
