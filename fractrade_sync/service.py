"""FractradeExecutor: builds the parts and wires the threads; signals, start/stop/run; the hooks users override
(their stock bodies: execution/orders.py StockHooks)."""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from typing import Any, Callable, Mapping

from fractrade_sync.actions import Action
from fractrade_sync.assembly import assemble, probe_of
from fractrade_sync.channels.heartbeat import remove_heartbeat
from fractrade_sync.channels.hub import Channels
from fractrade_sync.config.settings import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, Settings, load_settings
from fractrade_sync.errors import ConfigError, ThreadFailure
from fractrade_sync.execution.hooks import hooks_of, refuse_coroutine_hooks
from fractrade_sync.execution.orders import StockHooks
from fractrade_sync.execution.pipeline import Pipeline
from fractrade_sync.logs import setup_logging_unless_configured
from fractrade_sync.storage.journal import Journal
from fractrade_sync.storage.ledger import Ledger
from fractrade_sync.storage.state_dir import RunLocks


class FractradeExecutor(StockHooks):
    """The service. Override the three handle_* hooks (orders.StockHooks) to change what an action does (worker
    thread)."""

    fatal_errors: tuple[type[Exception], ...] = (ConfigError,)
    async_hooks = False  # `async def` hooks are refused at start (fractrade_sync.aio runs them)

    def __init__(self, settings: Settings | None = None, *, clock: Callable[[], float] = time.time):
        self.settings = settings if settings is not None else load_settings()  # no argument: the environment
        self.clock = clock
        self.logger = logging.getLogger("fractrade_sync")
        self.queue: queue.Queue = queue.Queue()
        self.stopping = threading.Event()  # set when a stop cuts the drain short: retry waits end, nothing new is sent
        self.channels = Channels(self.settings, probe_of(self))  # webhook, Telegram, status endpoint: when configured
        self.notifier = self.channels.notifier
        self.fatal: Exception | None = None
        self.journal: Journal | None = None
        self.feed = self.client = self.execution = self.intake = self.worker = self.receiver = self.watchdog = None
        self.pipeline: Pipeline | None = None
        self.ledger: Ledger | None = None  # fills and funding, journaled once (report.py reads them)
        self._locks = RunLocks(self.settings.paths, self.settings.signer_address)  # the state dir's, the signer's
        self._wake = threading.Event()
        self._signals: list[int] = []
        self._stop_lock = threading.Lock()
        self._started = self._stopped = False
        self.storage_problem: str | None = None  # why the journal cannot be written now (health fails meanwhile)

    @classmethod
    def from_env(
        cls, flags: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> FractradeExecutor:
        """Build from the environment, `.env` in the working directory, and optional flag overrides."""
        return cls(load_settings(flags, environ), **kwargs)

    # ---- life ----------------------------------------------------------------------------------
    def start(self, receive: bool = True) -> FractradeExecutor:
        """Open the journal (recovering what the last run left), build the parts, start the threads."""
        settings = self.settings
        if not self.async_hooks:
            refuse_coroutine_hooks(self)  # before anything is opened or connected
        # a script that embeds the service and configured no logging gets the CLI's (LOGLEVEL, LOG_FORMAT, redaction)
        setup_logging_unless_configured(settings.log_level, settings.log_format, settings.secrets)
        self.channels.bind()  # the status endpoint's port first: one in use fails the start before anything opens
        unclean_since = self._lock_state()
        resumed = self._build(unclean_since)
        for item in resumed:  # oldest first, before anything new
            self.queue.put(item)
        self.logger.info("fractrade-sync starting for %s; %d action(s) resumed", settings.described, len(resumed))
        self._started = True
        self.channels.start()
        for part in (self.feed, self.worker, self.receiver if receive else None, self.watchdog):
            if part is not None:
                part.start()
        return self

    def _lock_state(self) -> float | None:
        """The state directory, this run's alone, and the signer, this agent's alone; the start's time when the last
        run did not stop in order (else None)."""
        if not self._locks.acquire():
            return None
        self.logger.warning(
            "the last run did not stop in order (killed, crashed or a power loss): actions sent "
            "before this start are looked up by cloid before anything is sent"
        )
        return self.clock()

    def _build(self, unclean_since: float | None) -> list:
        """Every part, assembled in one place (assembly.py); returns what the journal resumes."""
        parts = assemble(
            self.settings,
            self.queue,
            self.channels,
            self._hooks(),
            clock=self.clock,
            stopping=self.stopping,
            unclean_since=unclean_since,
            on_storage=self._storage,
            on_connection=self._on_connection,
            on_fatal=self.fail,
            fatal=self.fatal_errors,
            on_thread_failed=self._thread_failed,
            storage_problem=lambda: self.storage_problem,
        )
        self.feed = parts.feed
        self.client = parts.client
        self.journal = parts.journal
        self.ledger = parts.ledger
        self.execution = parts.execution
        self.pipeline = parts.pipeline
        self.worker = parts.worker
        self.intake = parts.intake
        self.receiver = parts.receiver
        self.watchdog = parts.watchdog
        return parts.resumed

    def stop(self, timeout: float | None = None) -> int:
        """Stop receiving, finish the order in flight, drain for a bounded time; return actions left for next start."""
        with self._stop_lock:
            if self._stopped or not self._started:
                return 0
            self._stopped = True
        # one budget for the whole stop (FRAC_DRAIN_TIMEOUT, below supervisord's stopwaitsecs): the drain, then the
        # order in flight (its request ends by its timeout), then a short tail; what is left resumes next start
        budget = self.settings.drain_timeout if timeout is None else timeout
        ends = time.monotonic() + budget
        grace = min(self.settings.http_timeout + 1.0, max(1.0, budget / 2))
        if isinstance(self.fatal, ThreadFailure):  # nothing to drain into: a dead or stuck worker
            grace = 1.0
        self.logger.info("stopping: no new actions; draining %d queued for up to %.0fs", self.queue.qsize(), budget)
        self.receiver.stop(timeout=min(2.0, budget / 4))
        left = self.worker.stop(max(0.1, ends - time.monotonic() - grace), grace)
        stuck = [name for name, part in (("receiver", self.receiver), ("worker", self.worker)) if part.is_alive()]
        if not self.receiver.is_alive():  # (else it may still append: the next start records them)
            try:  # what was queued but not taken becomes 'received' rows, resumed at the next start
                self.journal.record_noted()
            except Exception:
                self.logger.exception("could not record the queued actions now; the next start records them")
        self.feed.stop(timeout=min(2.0, max(0.2, ends - time.monotonic())))
        self.client.close()
        self.watchdog.stop(timeout=min(2.0, max(0.2, ends - time.monotonic())))
        remove_heartbeat(self.settings.paths.heartbeat)
        if stuck:  # they may still write: the journal stays open and the state dir locked until the process ends
            self.logger.warning("stopped while the %s thread(s) still run; the journal stays open", ", ".join(stuck))
        else:
            self.journal.close()
            self._locks.release()
        if left:
            self.logger.warning("stopped with %d action(s) left in the journal; they resume at the next start", left)
        else:
            self.logger.info("stopped: nothing left to execute")
        self.channels.stop(timeout=min(3.0, max(0.5, ends - time.monotonic())))
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
        if self.fatal is None:
            if self.worker.is_alive() or self.receiver.is_alive():  # a request outlived the budget: its note settles it
                logging.shutdown()
                os._exit(EXIT_OK)
            return EXIT_OK
        self.logger.error("%s", self.fatal)
        if isinstance(self.fatal, ThreadFailure) and self.worker.is_alive():  # it would hold the process forever
            logging.shutdown()
            os._exit(EXIT_FAILURE)
        return EXIT_CONFIG if isinstance(self.fatal, ConfigError) else EXIT_FAILURE

    def fail(self, exc: Exception) -> None:
        """A fatal error on a thread (a wallet not allowed to trade): the main thread stops the service."""
        self.fatal = exc
        self._wake.set()

    def _thread_failed(self, problem: str) -> None:
        """The watchdog found a thread dead or stuck: alert, then stop with a non-zero exit (once)."""
        if self._stopped or self.fatal is not None:
            return
        self.logger.error("%s: stopping (exit 1) so that the supervisor restarts the service", problem)
        self.channels.alert(problem)
        self.fail(ThreadFailure(problem))

    def _storage(self, problem: str | None) -> None:
        """The journal cannot be written (nothing that needs it is executed meanwhile): say so on every channel and
        fail `health`, until it can again."""
        was = self.storage_problem
        self.storage_problem = problem
        if problem is None:
            if was is not None:
                self.logger.warning("the journal can be written again: actions execute again")
            return
        if was is None:  # once per episode; every action refused meanwhile has its own ERROR line
            self.logger.error(
                "%s; free space in %s (actions are not executed until then)", problem, self.settings.state_dir
            )
            self.channels.alert(f"{problem}; free space in {self.settings.state_dir}")

    def accept_frame(self, frame: str | bytes) -> Action | None:
        """Take one frame as if received (`send`, scripts): the queued Action, or None."""
        return self.intake(frame)

    def _on_connection(self, up: bool, what: str) -> None:
        """The receiver's connection went down or came back."""
        self.logger.debug("connection %s", what)
        self.channels.connection(up, what)

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

    # ---- the seed's hooks (worker thread): a changed config executes under the action's key (hooks.py) ----------
    def _hooks(self) -> dict[str, Callable[[Any], Any]]:
        """The pipeline's hooks: kind -> this object's handle_* method."""
        return hooks_of(self)
