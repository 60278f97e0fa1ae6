"""The operator's channels: the webhook, Telegram and the status endpoint, each on only when configured; the service
tells them its events here, in one place (an outcome, the connection lost or back, an alert, the kill switch, the
clock), and they read it only through the ServiceProbe it gives them. None of them is on the order path: each sends
from its own thread, and a slow one delays nothing."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, Callable

import requests

from fractrade_sync.channels.notify import Notifier
from fractrade_sync.channels.texts import journal_line
from fractrade_sync.errors import UnreadableAnswer
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.client import CLOCK_WARN
from fractrade_sync.outcome import FAILED, FILLED, PARTIALLY_FILLED, REJECTED, RESTING

if TYPE_CHECKING:
    from fractrade_sync.channels.probe import ServiceProbe
    from fractrade_sync.config.settings import Settings

log = logging.getLogger("fractrade_sync.channels")


class Channels:
    """The webhook (FRAC_NOTIFY_URL), Telegram (FRAC_TELEGRAM_*) and the status endpoint (FRAC_STATUS_ADDR), of the
    service `probe` reads."""

    def __init__(self, settings: Settings, probe: ServiceProbe):
        self.probe = probe
        self.notifier = Notifier(settings.notify_url, settings.account_address) if settings.notify_url else None
        self.telegram = self.metrics = self.status = None
        if settings.telegram_token:  # (imported only when on: prometheus-client weighs on start-up, BENCHMARKS.md)
            from fractrade_sync.channels.telegram import TelegramBot

            self.telegram = TelegramBot(settings, commands(settings, probe))
        if settings.status_addr:
            from fractrade_sync.channels.statusd import status_endpoint

            self.metrics, self.status = status_endpoint(settings, probe)
        self._kill_switch = os.fspath(settings.paths.kill_switch)
        self._paused = False  # the kill switch as last seen (looked at start)
        self._clock_said = False
        self._limited = False  # the address-based limit was alerted and no order went through since

    @property
    def listeners(self) -> list[Callable]:
        """What hears each outcome: the pipeline's listeners."""
        parts = [part.outcome for part in (self.notifier, self.telegram, self.metrics) if part is not None]
        return [*parts, self.limited]

    @property
    def request_listener(self) -> Callable[[str, str, str], None] | None:
        """What hears each exchange request (path, type, status): the exchange endpoint's on_request
        (exchange/endpoint.py); None when no one listens (the status endpoint is off)."""
        return None if self.metrics is None else self.metrics.request

    def limited(self, action: Any, outcome: Any) -> None:
        """The exchange's address-based limit refused an order: one ALERT saying what to do (again only once an
        order went through since)."""
        if outcome.state in (REJECTED, FAILED) and wire.ADDRESS_LIMIT in (outcome.reason or ""):
            if not self._limited:
                self._limited = True
                log.error(
                    "%s: refused by the exchange's address-based request limit: %s", action.describe(), outcome.reason
                )
                self.alert(
                    "Hyperliquid's address-based limit refuses this account's orders (it allows 1 request "
                    "per 1 USDC traded since the account's start, plus 10,000): trade volume frees requests; "
                    "until then every order is refused. Exchange: " + outcome.reason[:200]
                )
        elif outcome.state in (FILLED, PARTIALLY_FILLED, RESTING):
            self._limited = False

    def bind(self) -> None:
        """Before anything else is opened: the status endpoint's port (a port in use fails the start at once)."""
        if self.status is not None:
            self.status.start()

    def start(self) -> None:
        """Start sending (the webhook's and Telegram's threads)."""
        self._paused = os.path.exists(self._kill_switch)
        for part in (self.notifier, self.telegram):
            if part is not None:
                part.start()

    def connection(self, up: bool, what: str) -> None:
        if self.notifier is not None:
            self.notifier.connection(up, what)
        self.event(f"Fractrade connection {'restored' if up else 'lost; reconnecting'} ({what})")

    def alert(self, problem: str) -> None:
        """Something needs a human: every channel says it."""
        if self.notifier is not None:
            self.notifier.alert(problem)
        self.event(f"ALERT: {problem}")

    def event(self, text: str) -> None:
        if self.telegram is not None:
            self.telegram.event(text)

    def tick(self) -> None:
        """Every second (the watchdog's thread): the kill switch changed (by the CLI, or /pause); the clock offset to
        the exchange crossed a second."""
        paused = os.path.exists(self._kill_switch)
        if paused != self._paused:
            self.event(
                "kill switch ON: opening trades are refused"
                if paused
                else "kill switch off: opening trades are allowed again"
            )
        self._paused = paused
        offset = self.probe.clock_offset()
        if offset is not None and (abs(offset) > CLOCK_WARN) != self._clock_said:
            self._clock_said = not self._clock_said
            self.event(
                f"this machine's clock is {abs(offset):.1f}s {'behind' if offset > 0 else 'ahead of'} the "
                "exchange's: fix it (NTP)"
                if self._clock_said
                else "the clock is within a second of the exchange's again"
            )

    def stop(self, timeout: float) -> None:
        for part in (self.notifier, self.telegram):
            if part is not None:
                part.stop(timeout=timeout)
        if self.status is not None:
            self.status.stop(timeout=1.0)


def commands(settings: Settings, probe: ServiceProbe) -> dict[str, Callable[[], str]]:
    """What Telegram's /status, /pause, /resume, /profit, /daily, /positions and /balance do (on the bot's
    thread)."""
    paths = settings.paths

    def pause() -> str:
        paths.kill_switch.write_text(f"kill switch set from Telegram at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return "kill switch ON: opening trades are refused (stop losses, take profits and closes still run); /resume"

    def resume() -> str:
        paths.kill_switch.unlink(missing_ok=True)
        return "kill switch off: opening trades are allowed"

    from fractrade_sync.channels import telegram_figures as figures

    api = settings.api_url
    user = settings.account_address
    return {
        "status": lambda: status_text(settings, probe),
        "pause": pause,
        "resume": resume,
        "profit": lambda: figures.profit_text(paths.journal, time.time()),
        "daily": lambda: figures.daily_text(paths.journal, time.time()),
        "positions": lambda: figures.positions_text(api, user),
        "balance": lambda: figures.balance_text(api, user),
    }


def status_text(settings: Settings, probe: ServiceProbe, recent: int = 5) -> str:
    """Connection, the worker, the kill switch, positions (one read of the exchange), the last actions."""
    lines = [
        f"Fractrade: {'connected' if probe.connected() else 'NOT connected'}; "
        f"exchange {'ready' if probe.exchange_ready() else 'not ready'}; "
        f"queue {probe.queue_depth() or 0}; kill switch {'ON' if settings.paths.kill_switch.exists() else 'off'}",
        f"positions: {positions_text(settings)}",
    ]
    lines += [journal_line(row) for row in probe.recent_actions(recent)]
    return "\n".join(lines)


def positions_text(settings: Any) -> str:
    """The account's positions, read once over REST on the caller's thread (never the worker's connection)."""
    try:
        answer = requests.post(
            settings.api_url.rstrip("/") + "/info",
            timeout=5,
            json={"type": "clearinghouseState", "user": settings.account_address},
        )
        held = wire.positions(answer.json())  # (strict: an answer that does not say it is never "none")
    except UnreadableAnswer:
        return "unknown (the exchange's answer does not say)"
    except (requests.RequestException, ValueError) as exc:
        return f"unknown ({type(exc).__name__})"
    return ", ".join(f"{coin} {size}" for coin, size in held.items()) or "none"
