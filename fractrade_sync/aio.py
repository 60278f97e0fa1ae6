"""The seed's asyncio face of the service: `from fractrade_sync.aio import FractradeExecutor` runs fractrade-executor
scripts (awaitable start/stop, `_shutdown_event`, `async def` hooks) on the same threaded service underneath."""

from __future__ import annotations

import asyncio
import functools
import inspect
import signal
import threading
from typing import Any, Callable, Mapping

from fractrade_sync import service
from fractrade_sync.config.settings import EXIT_OK
from fractrade_sync.outcome import Outcome


class FractradeExecutor(service.FractradeExecutor):
    """The threaded service behind an asyncio face. `FractradeExecutor()` reads the environment; `await start()`,
    `await stop()`; `_shutdown_event` is set by SIGTERM/SIGINT, a fatal error, or stop(). The hooks may be
    `async def`: each runs to completion on the worker thread's own event loop (never the caller's), one action at a
    time, and `await super().handle_…(config)` executes the config it is given."""

    async_hooks = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._shutdown_event = asyncio.Event()  # bound to the caller's loop when first awaited (start sets it there)
        self._loop: asyncio.AbstractEventLoop | None = None  # the caller's loop
        self._hook_loop: asyncio.AbstractEventLoop | None = None  # the worker thread's own, made at its first hook
        self._loop_signals: list[int] = []

    async def start(self, receive: bool = True) -> FractradeExecutor:
        """Start the service (opening the journal blocks: in a thread); on the main thread SIGTERM and SIGINT set
        `_shutdown_event`."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(super().start, receive)
        self._install_loop_signals()
        return self

    async def stop(self, timeout: float | None = None) -> int:
        """Stop in order (in a thread: the drain may take FRAC_DRAIN_TIMEOUT); return the actions left for the next
        start. After a fatal error (a wallet not allowed to trade, a dead thread) it is raised here, so a script
        built on the seed's example exits non-zero and its supervisor restarts it."""
        try:
            left = await asyncio.to_thread(super().stop, timeout)
            await asyncio.to_thread(self._close_hook_loop)
        finally:
            self._remove_loop_signals()
            self._shutdown_event.set()
        if self.fatal is not None:
            self.logger.error("%s", self.fatal)
            raise self.fatal
        return left

    async def run(self) -> int:
        """`await executor.run()`: start, wait for `_shutdown_event`, stop; 0 after an orderly stop."""
        await self.start()
        try:
            await self._shutdown_event.wait()
        finally:
            await self.stop()
        return EXIT_OK

    def fail(self, exc: Exception) -> None:
        """A fatal error on a thread: `_shutdown_event` tells the caller to stop (from any thread)."""
        super().fail(exc)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._shutdown_event.set)
            except RuntimeError:  # the loop closed meanwhile: nobody waits on the event any more
                self.logger.debug("fatal error after the caller's event loop closed: %s", exc)

    # ---- the seed's async hooks (worker thread, on its own loop) ---------------------------------------
    async def handle_hyperliquid_perp_trade(self, config: Mapping[str, Any]) -> Outcome:
        """Execute a trade: a marketable IOC order."""
        return super().handle_hyperliquid_perp_trade(config)

    async def handle_set_hyperliquid_perp_stop_loss(self, config: Mapping[str, Any]) -> Outcome:
        """Set (replace) the stop loss of a position."""
        return super().handle_set_hyperliquid_perp_stop_loss(config)

    async def handle_set_hyperliquid_perp_take_profit(self, config: Mapping[str, Any]) -> Outcome:
        """Set (replace) the take profit of a position."""
        return super().handle_set_hyperliquid_perp_take_profit(config)

    def _hooks(self) -> dict[str, Callable[[Any], Any]]:
        """Each hook, run to completion when it is a coroutine."""
        return {kind: functools.partial(self._call_hook, hook) for kind, hook in super()._hooks().items()}

    def _call_hook(self, hook: Callable[[Any], Any], config: Mapping[str, Any]) -> Any:
        """Worker thread: call a hook; what it returns is awaited on the worker's own loop (created once)."""
        result = hook(config)
        if not inspect.isawaitable(result):
            return result
        if self._hook_loop is None:
            self._hook_loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._hook_loop)  # this (the worker) thread's: asyncio.get_event_loop() finds it
        return self._hook_loop.run_until_complete(result)

    def _close_hook_loop(self) -> None:
        """After the worker ended: cancel what a hook left running on its loop, then close it."""
        loop = self._hook_loop
        if loop is None or (self.worker is not None and self.worker.is_alive()):
            return  # (a worker still running keeps its loop: the process ends it)
        self._hook_loop = None
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    # ---- signals on the caller's loop ----------------------------------------------------------------
    def _install_loop_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._loop.add_signal_handler(signum, self._on_loop_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # no loop signal handlers here (Windows)
                return
            self._loop_signals.append(signum)

    def _on_loop_signal(self, signum: int) -> None:
        self._on_signal(signum, None)  # (a second SIGINT exits at once, as the synchronous service does)
        self.logger.info("%s received: shutting down", signal.Signals(signum).name)
        self._shutdown_event.set()

    def _remove_loop_signals(self) -> None:
        while self._loop_signals:
            self._loop.remove_signal_handler(self._loop_signals.pop())
