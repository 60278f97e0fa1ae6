"""The worker thread: the only user of the SDK; takes Actions off the queue and journals each outcome."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from . import journal as J
from .actions import Action
from .exchange import TransientError
from .execution import Refused, Unfinished
from .journal import Outcome

if TYPE_CHECKING:
    from .service import FractradeExecutor

STOP = object()  # the sentinel that ends the worker loop


class ActionQueue(queue.Queue):
    """queue.Queue's interface (put, get, task_done, join, qsize, unfinished_tasks) over the C SimpleQueue.

    The hand-off is the order path's only thread switch: SimpleQueue's put and wake-up take about a third of
    queue.Queue's Condition-based ones on this machine (scripts/bench). Unbounded, FIFO, as before."""

    def __init__(self) -> None:
        super().__init__()
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._count_lock = threading.Lock()

    @property  # type: ignore[override]
    def unfinished_tasks(self) -> int:
        return self._unfinished

    @unfinished_tasks.setter
    def unfinished_tasks(self, value: int) -> None:  # queue.Queue.__init__ sets it
        self._unfinished = value

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._count_lock:
            self._unfinished += 1
        self._items.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._items.get(block, timeout)

    def task_done(self) -> None:
        with self._count_lock:
            if self._unfinished <= 0:
                raise ValueError("task_done() called too many times")
            self._unfinished -= 1
            done = self._unfinished == 0
        if done:
            with self.all_tasks_done:
                self.all_tasks_done.notify_all()

    def join(self) -> None:
        with self.all_tasks_done:
            while self._unfinished:
                self.all_tasks_done.wait()

    def qsize(self) -> int:
        return self._items.qsize()

    def empty(self) -> bool:
        return self._items.empty()

    def full(self) -> bool:
        return False


class ActionConfig(dict):
    """The action's raw `config` dict (the seed's hook argument), carrying the parsed Action."""

    def __init__(self, action: Action):
        super().__init__(action.config)
        self.action = action


class Worker:
    """One thread, one queue: dequeue -> prepare -> handle, one failing action never stops the loop."""

    def __init__(self, service: FractradeExecutor, actions: queue.Queue):
        self.service = service
        self.queue = actions
        self.logger = logging.getLogger("fractrade_sync.worker")
        self.heartbeat = time.monotonic()
        self.ready = threading.Event()
        self.busy_since: float | None = None
        self.waiting = False  # blocked on an empty queue: the next action is taken at once
        self.deadline: float | None = None
        self.abort = threading.Event()
        self.left_behind = 0
        self._stop_queued = False  # STOP is in the queue, not yet taken
        self._thread = threading.Thread(target=self._run, name="worker")

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, drain_timeout: float) -> int:
        """Finish the order in flight, drain for at most drain_timeout, join; return actions left queued."""
        self.deadline = time.monotonic() + drain_timeout
        self._stop_queued = True
        self.queue.put(STOP)
        self._thread.join(drain_timeout)
        if self._thread.is_alive():
            self.abort.set()  # cut retry waits short; the order in flight still gets its answer or timeout
            self._thread.join(self.service.settings.http_timeout * 2 + 1)
        return self.left_behind + self._queued()

    def _queued(self) -> int:
        """Actions waiting in the queue (not the STOP sentinel)."""
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
                self.service.client.keep_warm()
                continue
            self.waiting = False
            try:
                if item is STOP:
                    self._stop_queued = False
                    break
                if self.deadline is not None and time.monotonic() > self.deadline:
                    self.left_behind += 1  # stays 'received' in the journal, resumed at the next start
                    continue
                self.process(item)
            except Exception:
                self.logger.exception("worker: unexpected error (the loop goes on)")
            finally:
                self.heartbeat = time.monotonic()
                self.queue.task_done()
        self.logger.debug("worker stopped")

    def _prepare(self) -> bool:
        """Load the exchange's meta, retrying with backoff until it answers or we are stopped."""
        delay = 0.5
        while not self.abort.is_set() and self.deadline is None:
            try:
                self.service.prepare_exchange()
                self.ready.set()
                return True
            except TransientError as exc:
                self.logger.warning("Hyperliquid not reachable yet (%s); retrying in %.1fs", exc, delay)
            except self.service.fatal_errors as exc:
                self.service.fail(exc)
                return False
            except Exception as exc:
                self.logger.exception("preparing the exchange failed; retrying in %.1fs", delay)
                del exc
            self.heartbeat = time.monotonic()
            if self.abort.wait(delay):
                break
            delay = min(delay * 2, 30.0)
        # stopped before the exchange was ready: everything queued stays in the journal for the next start
        self.left_behind += self._queued()
        return False

    def process(self, action: Action) -> Outcome | None:
        """Decide, execute, journal and log one action."""
        self.busy_since = time.monotonic()
        try:
            outcome = self.decide(action)
        except Unfinished as exc:
            self.left_behind += 1  # stays 'submitting' in the journal; the next start settles it by cloid
            self.logger.warning("%s: %s", action.describe(), exc)
            return None
        finally:
            self.busy_since = None
        self.service.journal.finish(action.key, outcome, action)
        self.service.report(action, outcome)
        return outcome

    def decide(self, action: Action) -> Outcome:
        """The action's outcome: expired, skipped, refused, or what the exchange did."""
        svc = self.service
        # a live action was just noted by the receiver (its row comes with the worker's first commit); only
        # resumed ones have a row to read
        row = svc.journal.get(action.key) if action.key in svc.resumed else None
        svc.resumed.discard(action.key)
        if row is not None and row["state"] in J.TERMINAL_STATES:
            return Outcome(row["state"], row["reason"] or "", row["oid"], row["filled_sz"], row["avg_px"])
        if row is not None:
            # resumed: ask the exchange by cloid before anything else. A 'submitting' row died with its order in
            # flight: wait until that order can no longer be applied. A 'received' one was never sent, unless an
            # OS crash lost its 'submitting' commit, and a reboot outlasts any order's expiry: ask at once.
            try:
                if row["state"] == J.SUBMITTING:
                    seen = svc.execution.settle_then_lookup(action, row["updated_at"])
                else:
                    seen = svc.execution.lookup(action)
            except TransientError as exc:
                return Outcome(J.FAILED, f"outcome unknown, exchange unreachable ({exc}); check cloid {action.cloid}")
            if seen is not None:
                svc.execution.after(action, seen)
                return seen
        age, limit = action.age(svc.clock()), svc.settings.max_action_age
        if age > limit:
            return Outcome(J.EXPIRED, f"{age:.0f}s old, over FRAC_MAX_ACTION_AGE={limit:g}s")
        if age < -limit:  # it would never expire: a broken clock, ours or the agent's
            return Outcome(J.REJECTED, f"metadata.timestamp is {-age:.0f}s in the future; check the clocks")
        if action.server_execution:
            return Outcome(J.SKIPPED, "metadata.server_execution is true: the platform executes it")
        refusal = svc.guard(action)
        if refusal:
            return Outcome(J.REJECTED, refusal)
        try:
            result: Any = self._dispatch(action)
        except Refused as exc:
            return Outcome(J.REJECTED, str(exc))
        except Unfinished:
            raise
        except TransientError as exc:
            return Outcome(J.FAILED, f"exchange unreachable: {exc}")
        except Exception as exc:
            self.logger.exception("%s failed", action.describe())
            return Outcome(J.FAILED, f"{type(exc).__name__}: {exc}"[:300])
        if isinstance(result, Outcome):
            return result
        return Outcome(
            J.SKIPPED, "handled by a custom hook that placed no order" if not result else "handled by a custom hook"
        )

    def _dispatch(self, action: Action) -> Any:
        svc = self.service
        config = ActionConfig(action)
        if action.kind == "trade":
            return svc.handle_hyperliquid_perp_trade(config)
        if action.kind == "stop_loss":
            return svc.handle_set_hyperliquid_perp_stop_loss(config)
        return svc.handle_set_hyperliquid_perp_take_profit(config)
