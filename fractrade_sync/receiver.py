"""The receiver thread: Fractrade WebSocket frame -> Action -> journal row -> queue. Never calls the exchange."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import websocket

from .actions import Action, Ignored, Rejection, parse_frame
from .watchdog import Backoff, cut

if TYPE_CHECKING:
    from .service import FractradeExecutor

AUTH_STATUSES = (401, 403)
HANDSHAKE_TIMEOUT = 30.0  # seconds for the TCP connect, the TLS and WebSocket handshakes, and any one socket call


class Receiver:
    """Holds the WebSocket open and reconnects forever with backoff; callbacks stay thin."""

    def __init__(self, service: FractradeExecutor):
        self.service = service
        self.settings = service.settings
        self.logger = logging.getLogger("fractrade_sync.receiver")
        self.backoff = Backoff(clock=time.monotonic)
        self.connected = threading.Event()
        self.last_activity = time.monotonic()
        self.connected_at: float | None = None
        self.reconnects = 0
        self.auth_failed = False
        self._stop = threading.Event()
        self._app: websocket.WebSocketApp | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="receiver")

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop receiving: close the socket and join."""
        self._stop.set()
        self.force_close("stopping")
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(0.2)
            self.force_close("stopping")  # a stop that raced a connect in progress

    def force_close(self, why: str) -> None:
        """Cut the current connection (the watchdog's silence verdict, or stop); the loop reconnects."""
        with self._lock:
            app = self._app
        if app is None:
            return
        if why != "stopping":
            self.logger.warning("closing the Fractrade connection: %s", why)
        app.keep_running = False
        cut(getattr(app.sock, "sock", None))  # wakes the library's select() at once; a dead peer cannot block it

    def _run(self) -> None:
        # WebSocketApp takes its socket timeout only from the library's default: without one, a server that accepts
        # but never answers the handshake would hold this thread forever (the select() loop is bounded by pings)
        websocket.setdefaulttimeout(HANDSHAKE_TIMEOUT)
        while not self._stop.is_set():
            app = websocket.WebSocketApp(
                self.settings.ws_url,
                header={"Authorization": f"Token {self.settings.user_token.reveal()}"},
                on_open=self._on_open,
                on_message=self._on_message,
                on_error=self._on_error,
                on_close=self._on_close,
                on_pong=self._on_alive,
                on_ping=self._on_alive,
            )
            with self._lock:
                self._app = app
            try:
                app.run_forever(
                    ping_interval=self.settings.ping_interval,
                    ping_timeout=min(10.0, self.settings.ping_interval / 2),
                    # frames come as bytes, decoded by the parser in C: websocket-client checks UTF-8 in pure Python
                    # (~0.08 ms per 300 bytes before the frame reaches us) and drops the whole connection on a bad
                    # byte; the parser rejects that one frame instead, with its reason, and the next one executes
                    skip_utf8_validation=True,
                )
            except Exception:
                self.logger.exception("WebSocket loop failed")
            with self._lock:
                self._app = None
            was_up = self.connected.is_set()
            self.connected.clear()
            if self._stop.is_set():
                break
            if was_up:
                self.service.notify_connection(False, "lost")
            delay = self.backoff.next_delay(stable=self._was_stable())
            self.reconnects += 1
            level = logging.ERROR if self.auth_failed else logging.WARNING
            self.logger.log(level, "reconnecting to Fractrade in %.2fs", delay)
            self._stop.wait(delay)

    def _was_stable(self) -> bool:
        at, self.connected_at = self.connected_at, None
        return at is not None and time.monotonic() - at >= self.backoff.stable_after

    # ---- callbacks: parse, journal, enqueue, return ------------------------------------------
    def _on_open(self, app: websocket.WebSocketApp) -> None:
        self.auth_failed = False
        self.connected_at = self.last_activity = time.monotonic()
        self.connected.set()
        self.logger.info("connected to Fractrade (%s)", self.settings.ws_url)
        if self.reconnects:
            self.service.notify_connection(True, "recovered")

    def _on_alive(self, app: websocket.WebSocketApp, data: bytes = b"") -> None:
        self.last_activity = time.monotonic()

    def _on_message(self, app: websocket.WebSocketApp, frame: str | bytes) -> None:
        self.last_activity = time.monotonic()
        try:
            self.service.accept_frame(frame)
        except Exception:
            self.logger.exception("could not take a frame (the receiver goes on)")

    def _on_error(self, app: websocket.WebSocketApp, error: Exception) -> None:
        status = getattr(error, "status_code", None)
        if status in AUTH_STATUSES:
            self.auth_failed = True
            self.logger.error(
                "Fractrade refused the connection (HTTP %s): authentication failed; check FRAC_USER_TOKEN", status
            )
        elif isinstance(error, websocket.WebSocketConnectionClosedException):
            self.logger.info("Fractrade connection closed")
        else:
            self.logger.warning("Fractrade connection error: %s", _safe_error(error))

    def _on_close(self, app: websocket.WebSocketApp, code: int | None, reason: str | None) -> None:
        if self.connected.is_set():
            self.logger.info("Fractrade connection closed (code %s)", code)


def _safe_error(error: Exception) -> str:
    """An error's text, short; secrets are scrubbed by the log filter too."""
    return f"{type(error).__name__}: {error}"[:300]


def take_frame(service: FractradeExecutor, frame: str | bytes, logger: logging.Logger) -> Action | None:
    """Parse a frame; a new action is noted (one append, its write-ahead record) and returned to be queued.
    None when rejected (journaled with its reason), ignored or a duplicate (already noted or journaled)."""
    parsed = parse_frame(frame, service.clock())
    if isinstance(parsed, Ignored):
        logger.debug("ignored: %s", parsed.reason)
        return None
    if isinstance(parsed, Rejection):
        service.journal.insert_rejection(parsed)
        logger.warning("rejected frame: %s (frame %s…)", parsed.reason, parsed.excerpt[:120])
        return None
    if not service.journal.take_new(parsed):
        logger.info("duplicate %s (key %s…): already journaled, not executed again", parsed.describe(), parsed.key[:12])
        return None
    return parsed
