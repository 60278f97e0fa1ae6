"""The worker thread: a plain loop over a queue and a handler (the only thread that talks to the exchange)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Sequence

from fractrade_sync.backoff import preparation
from fractrade_sync.errors import TransientError

STOP = object()  # the sentinel that ends the loop
MAX_BATCH = 32  # items taken from the queue at once for a batch handler


def wait_done(actions: queue.Queue, timeout: float, give_up: Callable[[], bool] = lambda: False) -> bool:
    """Queue.join with a timeout: True once every item put so far is marked done; False at the timeout or once
    `give_up()` says so (on the queue's own `all_tasks_done` condition and `unfinished_tasks` count, as
    sentry-python's BackgroundWorker.flush; `give_up` is asked outside the queue's lock)."""
    deadline = time.monotonic() + timeout
    while True:
        with actions.all_tasks_done:
            left = deadline - time.monotonic()
            if actions.unfinished_tasks and left > 0:
                actions.all_tasks_done.wait(min(0.05, left))
            if not actions.unfinished_tasks:
                return True  # (done, even as the time or the caller's patience ran out)
        if time.monotonic() >= deadline or give_up():
            return False


class Worker:
    """One thread, one queue: prepare once, then dequeue -> handle; one failing hand-over never stops the loop.

    `handle(items, more, past_deadline)` gets everything queued at once (up to MAX_BATCH), with `more(wait)` for what
    is queued since and `past_deadline()` for a stop's drain time being over, and returns how many it left for the
    next start; `drained` runs whenever the queue is found empty after a hand-over. `prepare()` is retried with
    backoff until it succeeds (an exception of `fatal` ends the thread through `on_fatal`); the `idle` steps run
    when the queue has been empty for a while. `stopping` is set when a stop cuts the drain short."""

    def __init__(
        self,
        actions: queue.Queue,
        handle: Callable[[list, Callable[[float], list], Callable[[], bool]], int],
        *,
        prepare: Callable[[], None],
        idle: Sequence[Callable[[], None]],
        drained: Callable[[], None],
        on_fatal: Callable[[Exception], None],
        fatal: tuple[type[Exception], ...] = (),
        stopping: threading.Event | None = None,
    ):
        self.queue = actions
        self.handle = handle
        self.prepare = prepare
        self.idle = idle
        self.drained = drained
        self.on_fatal = on_fatal
        self.fatal = fatal
        self.stopping = stopping or threading.Event()
        self.logger = logging.getLogger("fractrade_sync.worker")
        self.heartbeat = time.monotonic()
        self.ready = threading.Event()  # prepared: the exchange answered
        self.busy_since: float | None = None
        self.waiting = False  # blocked on an empty queue: the next item is taken at once
        self.deadline: float | None = None
        self.left_behind = 0
        self._stop_queued = False  # STOP is in the queue, not yet taken
        self._batch: list = []  # the items of the hand-over in progress
        # a daemon: a process ending never waits on a stuck worker (its order, if any, is settled by its in-flight
        # note at the next start); stop() joins it within its budget
        self._thread = threading.Thread(target=self._run, name="worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def idle_now(self) -> bool:
        """Whether an item put now is taken at once (the worker waits on an empty queue)."""
        return self.waiting and self.queue.qsize() == 0

    def stop(self, drain_timeout: float, grace: float) -> int:
        """Finish the item in hand, drain for at most drain_timeout, then set `stopping` and wait up to `grace` for
        the order in flight; return how many items were left (they stay in the journal)."""
        self.deadline = time.monotonic() + drain_timeout
        self._stop_queued = True
        self.queue.put(STOP)
        self._thread.join(drain_timeout)
        if self._thread.is_alive():
            self.stopping.set()  # cut retry waits short; the order in flight still gets its answer or timeout
            self._thread.join(grace)
        return self.left_behind + self._queued()

    def _queued(self) -> int:
        """Items waiting in the queue (not the STOP sentinel)."""
        return max(0, self.queue.qsize() - (1 if self._stop_queued else 0))

    def _run(self) -> None:
        if not self._prepare():
            return
        while True:
            try:
                self.waiting = True
                item = self.queue.get(timeout=0.5)
            except queue.Empty:
                self.waiting = False
                self.heartbeat = time.monotonic()
                for step in self.idle:
                    self._guarded(step)
                continue
            self.waiting = False
            batch = self._batch = [item] if item is STOP else [item, *self._more()]
            stop = batch[-1] is STOP
            try:
                self._handle([it for it in batch if it is not STOP])
                if stop or self.queue.qsize() == 0:
                    self._guarded(self.drained)  # (before task_done: a drained queue means its cleanups ran too)
            finally:
                self.busy_since = None
                self.heartbeat = time.monotonic()
                for _ in batch:
                    self.queue.task_done()
            if stop:
                self._stop_queued = False
                break
        self.logger.debug("worker stopped")

    def wait_done(self, timeout: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Wait until everything queued so far is handled, its cleanups too: True; False at the timeout or once
        `give_up()` says so."""
        return wait_done(self.queue, timeout, give_up)

    def take_more(self, wait: float = 0.0) -> list:
        """For the batch handler, between two requests: what was queued since (up to MAX_BATCH), never STOP (it
        stays for the loop); the loop marks them done with the rest of its batch. With nothing queued, waits up to
        `wait` seconds for the next item."""
        more = self._more()
        if not more and wait > 0:
            try:
                first = self.queue.get(timeout=wait)
            except queue.Empty:
                return []
            more = [first] if first is STOP else [first, *self._more()]
        if more and more[-1] is STOP:
            more.pop()
            self.queue.put(STOP)  # back at the end (nothing comes after it), and the one taken is done
            self.queue.task_done()
        self._batch.extend(more)
        return more

    def _more(self) -> list:
        """What else is queued now (up to MAX_BATCH in all), without waiting; STOP, if taken, is last."""
        more: list = []
        while len(more) < MAX_BATCH - 1:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            more.append(item)
            if item is STOP:
                break
        return more

    def past_deadline(self) -> bool:
        """A stop's drain time is over: what is not started stays in the journal for the next start."""
        return self.deadline is not None and time.monotonic() > self.deadline

    def _handle(self, items: list) -> None:
        """Hand the items over (those past the stop's deadline stay in the journal); one failing never stops the
        loop."""
        if self.past_deadline():
            self.left_behind += len(items)  # resumed at the next start
            return
        if not items:
            return
        self.busy_since = time.monotonic()
        try:
            self.left_behind += self.handle(items, self.take_more, self.past_deadline)
        except Exception:
            self.logger.exception("worker: unexpected error (the loop goes on)")

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:
            self.logger.exception("worker: idle step failed (the loop goes on)")

    def _prepare(self) -> bool:
        """Run prepare() until it succeeds, with backoff, unless stopped first."""
        for delay in preparation().delays():
            if self.stopping.is_set() or self.deadline is not None:
                break
            try:
                self.prepare()
                self.ready.set()
                return True
            except TransientError as exc:
                self.logger.warning("Hyperliquid not reachable yet (%s); retrying in %.1fs", exc, delay)
            except self.fatal as exc:
                self.on_fatal(exc)
                return False
            except Exception:
                self.logger.exception("preparing the exchange failed; retrying in %.1fs", delay)
            self.heartbeat = time.monotonic()
            if self.stopping.wait(delay):
                break
        # stopped before the exchange was ready: everything queued stays in the journal for the next start
        self.left_behind += self._queued()
        return False
