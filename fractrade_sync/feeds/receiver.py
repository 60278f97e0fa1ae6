"""The receiver thread and its intake: Fractrade WebSocket frame -> Action -> journal -> queue. Never calls the
exchange."""

from __future__ import annotations

import logging
import queue
import threading
import time
from decimal import Decimal
from typing import Callable

import websocket

from fractrade_sync.actions import Action
from fractrade_sync.backoff import reconnect
from fractrade_sync.config.settings import Settings
from fractrade_sync.errors import Unwritable
from fractrade_sync.exchange.transport import cut
from fractrade_sync.feeds.frame_limit import FrameTooLarge, LimitedSocket, open_connection
from fractrade_sync.frames import Ignored, Rejection, parse_frame
from fractrade_sync.storage.journal import Journal

AUTH_STATUSES = (401, 403)
HANDSHAKE_TIMEOUT = 30.0  # seconds for the TCP connect, the TLS and WebSocket handshakes, and any one socket call


class Receiver:
    """Holds the WebSocket open and reconnects forever with backoff; callbacks stay thin: each frame goes to
    `on_frame` (the intake), each connection loss and recovery to `on_connection(up, what)`. The connection is
    opened here (frame_limit: its own timeout, a frame size limit) and handed to websocket-client, which does the
    WebSocket handshake and the frames over it. `handshake_timeout`: None is HANDSHAKE_TIMEOUT."""

    def __init__(
        self,
        settings: Settings,
        on_frame: Callable[[bytes], object],
        on_connection: Callable[[bool, str], None],
        handshake_timeout: float | None = None,
    ):
        self.settings = settings
        self.on_frame = on_frame
        self.on_connection = on_connection
        self.logger = logging.getLogger("fractrade_sync.receiver")
        self.backoff = reconnect()
        self.connected = threading.Event()
        self.last_activity = time.monotonic()
        self.connected_at: float | None = None
        self.reconnects = 0
        self.auth_failed = False
        self.handshake_timeout = handshake_timeout
        self._stop = threading.Event()
        self._app: websocket.WebSocketApp | None = None
        self._sock: LimitedSocket | None = None  # the current connection's socket (ours, under websocket-client)
        self._lock = threading.Lock()
        # a daemon: a process ending (an aio script after a fatal error) never waits on it; stop() joins it
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

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
            sock = self._sock
        if app is None:
            return
        if why != "stopping":
            self.logger.warning("closing the Fractrade connection: %s", why)
        app.keep_running = False
        cut(sock)  # wakes the library's select() at once; a dead peer cannot block it

    def _run(self) -> None:
        while not self._stop.is_set():
            self._connection()
            with self._lock:
                self._app = None
                self._sock = None
            was_up = self.connected.is_set()
            self.connected.clear()
            if self._stop.is_set():
                break
            if was_up:
                self.on_connection(False, "lost")
            delay = self.backoff.next_delay(stable=self._was_stable())
            self.reconnects += 1
            level = logging.ERROR if self.auth_failed else logging.WARNING
            self.logger.log(level, "reconnecting to Fractrade in %.2fs", delay)
            self._stop.wait(delay)

    def _connection(self) -> None:
        """One connection, up to its end. Our socket carries its own timeout (never a process-wide default): a server
        that accepts but never answers the handshake cannot hold this thread (the frame loop is bounded by pings)."""
        timeout = HANDSHAKE_TIMEOUT if self.handshake_timeout is None else self.handshake_timeout
        try:
            sock = open_connection(self.settings.ws_url, timeout)
        except Exception as exc:  # as websocket-client's own connect errors were: on_error, then the backoff
            if not self._stop.is_set():
                self._on_error(None, exc)
            return
        app = websocket.WebSocketApp(
            self.settings.ws_url,
            header={"Authorization": f"Token {self.settings.user_token.reveal()}"},
            on_open=self._on_open,
            on_message=self._on_message,
            on_error=self._on_error,
            on_close=self._on_close,
            on_pong=self._on_alive,
            on_ping=self._on_alive,
            socket=sock,  # websocket-client connects no socket of its own: it does the handshake over this one
        )
        with self._lock:
            self._app = app
            self._sock = sock
        if self._stop.is_set():  # stop() came while connecting: it found nothing to cut
            sock.close()
            return
        try:
            app.run_forever(
                ping_interval=self.settings.ping_interval,
                ping_timeout=min(10.0, self.settings.ping_interval / 2),
                # frames come as bytes, decoded by the parser in C: websocket-client checks UTF-8 in pure Python
                # (BENCHMARKS.md, "the receive side") and drops the whole connection on a bad byte; the parser
                # rejects that one frame instead, with its reason, and the next one executes
                skip_utf8_validation=True,
            )
        except Exception:
            self.logger.exception("WebSocket loop failed")
        finally:
            sock.close()  # (websocket-client closed it already, unless its loop failed)

    def _was_stable(self) -> bool:
        at = self.connected_at
        self.connected_at = None
        return at is not None and time.monotonic() - at >= self.backoff.stable_after

    # ---- callbacks: parse, journal, enqueue, return ------------------------------------------
    def _on_open(self, app: websocket.WebSocketApp) -> None:
        if self._sock is not None:  # first: the size limit, before the library reads the first frame (it does next)
            self._sock.track()
        self.auth_failed = False
        self.connected_at = self.last_activity = time.monotonic()
        self.connected.set()
        self.logger.info("connected to Fractrade (%s)", self.settings.ws_url)
        if self.reconnects:
            self.on_connection(True, "recovered")

    def _on_alive(self, app: websocket.WebSocketApp, data: bytes = b"") -> None:
        self.last_activity = time.monotonic()

    def _on_message(self, app: websocket.WebSocketApp, frame: str | bytes) -> None:
        self.last_activity = time.monotonic()
        try:
            self.on_frame(frame)
        except Exception:
            self.logger.exception("could not take a frame (the receiver goes on)")

    def _on_error(self, app: websocket.WebSocketApp | None, error: Exception) -> None:
        status = getattr(error, "status_code", None)
        if status in AUTH_STATUSES:
            self.auth_failed = True
            self.logger.error(
                "Fractrade refused the connection (HTTP %s): authentication failed; check FRAC_USER_TOKEN", status
            )
        elif isinstance(error, FrameTooLarge):
            self.logger.error("Fractrade connection closed: %s", error)  # sizes only: the payload was never read
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


class Intake:
    """Frame -> Action -> journal -> queue: parse (the action keeps its coin's mid from the live feed: its arrival
    mid, which its journal row and the metrics' slippage read); a new action is noted (its write-ahead record) and
    queued; then, unless the worker takes it at once (its first commit creates the row: as the order leaves, or with
    the outcome), its 'received' row is committed so the journal shows it while it waits."""

    def __init__(
        self,
        journal: Journal,
        actions: queue.Queue,
        worker_idle: Callable[[], bool],
        clock: Callable[[], float] = time.time,
        on_storage: Callable[[str | None], None] = lambda problem: None,
        mid_of: Callable[[str], Decimal | None] = lambda symbol: None,
    ):
        self.journal = journal
        self.queue = actions
        self.worker_idle = worker_idle
        self.clock = clock
        self.on_storage = on_storage  # the journal cannot be written (a reason), or can again (None)
        self.mid_of = mid_of  # a coin's mid now, from the live feed: kept on the action (its arrival mid)
        self._unwritable = False
        self.logger = logging.getLogger("fractrade_sync.receiver")

    def __call__(self, frame: str | bytes) -> Action | None:
        """The queued Action; None when rejected (journaled with its reason), ignored or a duplicate."""
        parsed = parse_frame(frame, self.clock(), self.mid_of)
        if isinstance(parsed, Ignored):
            self.logger.debug("ignored: %s", parsed.reason)
            return None
        if isinstance(parsed, Rejection):
            self.logger.warning("rejected frame: %s (frame %s…)", parsed.reason, parsed.excerpt[:120])
            try:
                self.journal.reject(parsed)
            except Unwritable as exc:
                self.logger.error("the rejected frame was not journaled: %s", exc)
            return None
        try:
            admitted = self.journal.admit(parsed)
        except Unwritable as exc:
            self.logger.error("%s NOT executed: %s; exactly-once cannot be promised without it", parsed.describe(), exc)
            self._unwritable = True
            self.on_storage(f"{exc}: {parsed.describe()} not executed")
            return None
        if self._unwritable:
            self._unwritable = False
            self.on_storage(None)
        if not admitted:
            self.logger.info(
                "duplicate %s (key %s…): already journaled, not executed again", parsed.describe(), parsed.key[:12]
            )
            return None
        at_once = self.worker_idle()
        self.queue.put(parsed)
        if not at_once:  # (a commit now would only slow the worker's signing down: they share the GIL)
            try:
                self.journal.enqueued(parsed)
            except Exception:  # the note stands in for the row: recorded at the next start at the latest
                self.logger.exception("could not commit the 'received' row of %s", parsed.describe())
        return parsed
