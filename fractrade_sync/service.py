"""FractradeExecutor: wires the threads, handles signals, start/stop/run; the hooks users override."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import signal
import threading
import time
from typing import Any, Callable, Mapping

from . import journal as J
from .actions import STOP_LOSS, TAKE_PROFIT, TRADE, Action, parse_frame
from .config import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError, Settings, load_settings
from .exchange import HyperliquidClient
from .execution import Execution, Refused
from .journal import Journal, Outcome, ensure_private_dir, outcome_line
from .notify import Notifier
from .receiver import Receiver, take_frame
from .watchdog import Watchdog
from .worker import ActionQueue, Worker

JOURNAL_RETENTION = 90 * 86_400.0


class FractradeExecutor:
    """The service. Override the three handle_* hooks to change what an action does (worker thread)."""

    fatal_errors: tuple[type[Exception], ...] = (ConfigError,)

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self.logger = logging.getLogger("fractrade_sync")
        self.queue: queue.Queue = ActionQueue()
        self.journal: Journal | None = None
        self.client: HyperliquidClient | None = None
        self.execution: Execution | None = None
        self.receiver = Receiver(self)
        self.worker = Worker(self, self.queue)
        self.watchdog = Watchdog(self)
        self.fatal: Exception | None = None
        self.resumed: set[str] = set()  # keys queued from the journal at start (the worker re-reads their rows)
        self._kill_switch = os.fspath(settings.kill_switch_path)  # checked before every opening trade
        self._wake = threading.Event()
        self._signals: list[int] = []
        self._stop_lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._lock_fd: int | None = None
        self.notifier = Notifier(settings.notify_url, settings.account_address) if settings.notify_url else None

    @classmethod
    def from_env(
        cls, flags: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> FractradeExecutor:
        """Build from the environment, `.env` in the working directory, and optional flag overrides."""
        return cls(load_settings(flags, environ), **kwargs)

    # ---- life ----------------------------------------------------------------------------------
    def start(self, receive: bool = True) -> FractradeExecutor:
        """Open the journal, resume what was left, start worker, receiver (unless receive=False) and watchdog."""
        ensure_private_dir(self.settings.state_dir)
        self._take_lock()
        self.journal = Journal(self.settings.journal_path, clock=self.clock, autocheckpoint=False)
        self.client = HyperliquidClient(self.settings, logging.getLogger("fractrade_sync.exchange"))
        self.execution = Execution(
            self.settings, self.client, self.journal, self.logger, clock=self.clock, stopping=self.worker.abort
        )
        recorded = self.journal.record_received()  # frames a crash left noted but not journaled
        if recorded:
            self.logger.warning("%d action(s) received by the last run were not journaled yet: recorded now", recorded)
        adopted = self.journal.adopt_inflight(self.client.expiry_window)  # orders a crash left in flight
        if adopted:
            self.logger.warning("%d action(s) had an order in flight when the last run ended: checking them by cloid",
                                adopted)  # fmt: skip
        # months of uptime: keep 90 days of finished actions (far past any redelivery; they expire after 60 s).
        # Only now: a note of a long-finished action must find its row still there, not come back as new.
        pruned = self.journal.prune(self.clock() - JOURNAL_RETENTION)
        if pruned:
            self.logger.info("journal: pruned %d finished action(s) older than 90 days", pruned)
        resumed = self._resume()
        self.journal.load_key_filter()  # the receiver's duplicate check, without a read per new action
        mode = " (DRY RUN: nothing is sent)" if self.settings.dry_run else ""
        self.logger.info(
            "fractrade-sync starting for account %s%s; api %s; %d action(s) resumed%s",
            self.settings.account_address,
            " via API wallet " + self.settings.signer_address if self.settings.is_agent_wallet else "",
            self.settings.api_url,
            resumed,
            mode,
        )
        self._started = True
        if self.notifier is not None:
            self.notifier.start()
        self.client.start_feed()  # live mids over the market-data WebSocket: one round trip per order
        self.worker.start()
        if receive:
            self.receiver.start()
        self.watchdog.start()
        return self

    def stop(self, timeout: float | None = None) -> int:
        """Stop receiving, finish the order in flight, drain for a bounded time; return actions left for next start."""
        with self._stop_lock:
            if self._stopped or not self._started:
                return 0
            self._stopped = True
        drain = self.settings.drain_timeout if timeout is None else timeout
        self.logger.info("stopping: no new actions; draining %d queued for up to %.0fs", self.queue.qsize(), drain)
        self.receiver.stop()
        left = self.worker.stop(drain)
        stuck = [name for name, part in (("receiver", self.receiver), ("worker", self.worker)) if part.is_alive()]
        if not self.receiver.is_alive():  # (else it may still append: the next start records them)
            try:  # what was queued but not taken becomes 'received' rows, resumed at the next start
                self.journal.record_received()
            except Exception:
                self.logger.exception("could not record the queued actions now; the next start records them")
        if self.client is not None:
            self.client.close()
        self.watchdog.stop()
        try:
            self.settings.heartbeat_path.unlink()
        except FileNotFoundError:
            pass
        if stuck:  # they may still write: the journal stays open and the state dir locked until the process ends
            self.logger.warning("stopped while the %s thread(s) still run; the journal stays open", ", ".join(stuck))
        else:
            self.journal.close()
            self._release_lock()
        if left:
            self.logger.warning("stopped with %d action(s) left in the journal; they resume at the next start", left)
        else:
            self.logger.info("stopped: nothing left to execute")
        if self.notifier is not None:
            self.notifier.stop()
        return left

    def run(self) -> int:
        """Start, block until SIGTERM/SIGINT (or a fatal error), stop in order; return the exit code."""
        self._install_signals()
        self.start()
        try:
            while not self._signals and self.fatal is None:
                self._wake.wait(1.0)
                self._wake.clear()
        finally:
            self.stop()
        if self.fatal is not None:
            self.logger.error("%s", self.fatal)
            return EXIT_CONFIG if isinstance(self.fatal, ConfigError) else EXIT_FAILURE
        return EXIT_OK

    def fail(self, exc: Exception) -> None:
        """A fatal error on a thread (a wallet not allowed to trade): the main thread stops the service."""
        self.fatal = exc
        self._wake.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # only a flag and a wake-up here; a second SIGINT is the one immediate exit
        if signum == signal.SIGINT and self._signals:
            os.write(2, b"second SIGINT: exiting now; unfinished actions stay in the journal\n")
            os._exit(EXIT_FAILURE)
        self._signals.append(signum)
        self._wake.set()

    def _take_lock(self) -> None:
        path = self.settings.state_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                "FRAC_STATE_DIR", f"another fractrade-sync is running with {self.settings.state_dir}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- the pipeline ----------------------------------------------------------------------------
    def _resume(self) -> int:
        """Queue what the journal says was received but not finished (oldest first)."""
        count = 0
        for row in self.journal.unfinished():
            parsed = parse_frame(row["frame"], row["received_at"])
            if isinstance(parsed, Action) and parsed.key == row["key"]:
                self.resumed.add(parsed.key)
                self.queue.put(parsed)
                count += 1
            else:
                self.journal.finish(row["key"], Outcome(J.FAILED, "journal row could not be read back"))
        return count

    def accept_frame(self, frame: str | bytes) -> Action | None:
        """Receiver thread: parse, note (the journal's write-ahead record), enqueue; then, unless the worker takes
        it at once (its first commit creates the row: as the order leaves, or with the outcome), commit its
        'received' row so the journal shows it while it waits. Returns the queued Action (None: rejected, ignored,
        a duplicate)."""
        action = take_frame(self, frame, self.receiver.logger)
        if action is not None:
            at_once = self.worker.waiting and self.queue.qsize() == 0
            self.queue.put(action)
            if not at_once:  # (a commit now would only slow the worker's signing down: they share the GIL)
                try:
                    self.journal.commit_received(action)
                except Exception:  # the note stands in for the row: recorded at the next start at the latest
                    self.receiver.logger.exception("could not commit the 'received' row of %s", action.describe())
        return action

    def prepare_exchange(self) -> None:
        """Worker thread, before the first action: meta, the wallet's right to trade, a warm connection."""
        assets = self.client.load_meta()
        problem = self.client.wallet_problem()
        if problem:
            raise ConfigError(
                "HYPERLIQUID_PRIVATE_KEY",
                f"{problem}; approve it on Hyperliquid (API page) or set HYPERLIQUID_PUBLIC_ADDRESS to the key's "
                "own address",
            )
        self.client.warm_up()
        self.logger.info("Hyperliquid ready: %d perps", len(assets))

    def guard(self, action: Action) -> str | None:
        """The trader's own limits; a refusal reason, or None."""
        allowed = self.settings.allowed_symbols
        if allowed is not None and action.symbol not in allowed:
            return f"symbol {action.symbol} is not in FRAC_ALLOWED_SYMBOLS"
        opening = action.kind == "trade" and not action.reduce_only
        if opening and os.path.exists(self._kill_switch):
            return f"kill switch is on ({self.settings.kill_switch_path}): opening trades are refused"
        return None

    def report(self, action: Action, outcome: Outcome) -> None:
        """One INFO line per action with the essentials (and stable JSON fields)."""
        extra = {
            "action_key": action.key,
            "action": action.action_id,
            "symbol": action.symbol,
            "side": action.side,
            "size": None if action.size is None else str(action.size),
            "outcome": outcome.state,
            "latency_ms": outcome.latency_ms,
            "oid": outcome.oid,
            "avg_px": outcome.avg_px,
            "reason": outcome.reason,
        }
        level = logging.WARNING if outcome.state in (J.FAILED,) else logging.INFO
        self.logger.log(level, outcome_line(action, outcome), extra=extra)
        if self.notifier is not None:
            self.notifier.outcome(action, outcome)

    def notify_connection(self, up: bool, what: str) -> None:
        """The receiver's connection went down or came back."""
        self.logger.debug("connection %s", what)
        if self.notifier is not None:
            self.notifier.connection(up, what)

    # ---- the seed's hooks (worker thread) ----------------------------------------------------------
    def handle_hyperliquid_perp_trade(self, config: Mapping[str, Any]) -> Outcome:
        """Execute a trade: a marketable IOC order."""
        return self.execution.trade(_action_of(config, TRADE, self.clock))

    def handle_set_hyperliquid_perp_stop_loss(self, config: Mapping[str, Any]) -> Outcome:
        """Set (replace) the stop loss of a position."""
        return self.execution.protect(_action_of(config, STOP_LOSS, self.clock), "sl")

    def handle_set_hyperliquid_perp_take_profit(self, config: Mapping[str, Any]) -> Outcome:
        """Set (replace) the take profit of a position."""
        return self.execution.protect(_action_of(config, TAKE_PROFIT, self.clock), "tp")


def _action_of(config: Mapping[str, Any], action_id: str, clock: Callable[[], float]) -> Action:
    """The Action behind a hook's config (a plain dict from user code is parsed like a frame)."""
    action = getattr(config, "action", None)
    if isinstance(action, Action):
        return action
    frame = json.dumps({"type": "ACTION", "data": {"action_id": action_id, "config": config}}, default=str)
    parsed = parse_frame(frame, clock())
    if not isinstance(parsed, Action):
        raise Refused(getattr(parsed, "reason", "not an action"))
    return parsed
