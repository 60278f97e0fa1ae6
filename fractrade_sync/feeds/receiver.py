"""The receiver thread and its intake: Fractrade WebSocket frame -> Action -> journal -> queue. Never calls the
exchange."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

import websocket

from fractrade_sync.actions import MAX_FRAME_BYTES, Action, Ignored, Rejection, parse_frame
from fractrade_sync.backoff import reconnect
from fractrade_sync.config.settings import Settings
from fractrade_sync.exchange.transport import cut
from fractrade_sync.storage.journal import Journal, Unwritable

AUTH_STATUSES = (401, 403)
HANDSHAKE_TIMEOUT = 30.0  # seconds for the TCP connect, the TLS and WebSocket handshakes, and any one socket call
MESSAGE_TOO_BIG = 1009  # RFC 6455 7.4.1: the close code for a message too big to process


class FrameTooLarge(websocket.WebSocketProtocolException):
    """A frame header announced a message over MAX_FRAME_BYTES: the connection is closed before its payload is read."""


class Receiver:
    """Holds the WebSocket open and reconnects forever with backoff; callbacks stay thin: each frame goes to
    `on_frame` (the intake), each connection loss and recovery to `on_connection(up, what)`."""

    def __init__(
        self, settings: Settings, on_frame: Callable[[bytes], object], on_connection: Callable[[bool, str], None]
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
        self._size_limit = True  # False once websocket-client's frame reader turned out not to be the one we know
        self._stop = threading.Event()
        self._app: websocket.WebSocketApp | None = None
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
                self.on_connection(False, "lost")
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
        if self._size_limit:  # first: before the library reads the first frame (it does once this returns)
            self._limit_frame_size(app)
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

    def _on_error(self, app: websocket.WebSocketApp, error: Exception) -> None:
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

    # ---- the size limit, before the payload is read --------------------------------------------
    def _limit_frame_size(self, app: websocket.WebSocketApp) -> None:
        """Refuse a message announced over MAX_FRAME_BYTES before websocket-client buffers it: the library has no
        size limit and reads whatever length a header announces (fragments joined) before `on_message`. Its frame
        reader (`WebSocket.frame_buffer`, websocket-client 1.x) reads a header's length in `recv_length()`, before
        any payload: this connection's reader gets that one method wrapped. Without those names (another version)
        the parser's check after the read is all there is: warned once, never a failure."""
        ws = getattr(app, "sock", None)
        reader = getattr(ws, "frame_buffer", None)
        read_length = getattr(reader, "recv_length", None)
        if not (
            callable(read_length)
            and hasattr(reader, "header")
            and hasattr(reader, "length")
            and callable(getattr(ws, "close", None))
        ):
            self._no_size_limit("websocket-client's WebSocket.frame_buffer.recv_length is not there")
            return
        earlier = 0  # bytes announced by the earlier fragments of the message being received

        def recv_length() -> None:
            nonlocal earlier
            read_length()
            try:
                header = reader.header  # (fin, rsv1, rsv2, rsv3, opcode, has_mask, length bits)
                size = reader.length + earlier if header[4] == 0 else reader.length
                if header[4] < 3:  # text, binary, continuation (not a control frame between two fragments)
                    earlier = 0 if header[0] else size
                too_big = size > MAX_FRAME_BYTES  # any opcode: a control frame may not even exceed 125 bytes
            except Exception as exc:  # not the reader we know after all: undo, never fail a connection for it
                del reader.recv_length
                self._no_size_limit(f"its frame header is not the one this version knows ({_safe_error(exc)})")
                return
            if too_big:
                refuse(size, reader.length)

        def refuse(size: int, length: int) -> None:
            what = f"frame of {size} bytes" if size == length else f"fragmented message of {size} bytes"
            error = FrameTooLarge(f"{what} announced, over the {MAX_FRAME_BYTES}-byte limit: refused before reading it")
            try:  # close now: the library's own close would read on (for the close reply, into this payload)
                ws.close(MESSAGE_TOO_BIG, b"message too big", timeout=0)
            except Exception:
                cut(getattr(ws, "sock", None))
            raise error  # -> on_error (one ERROR line), teardown, and the loop reconnects with backoff

        reader.recv_length = recv_length

    def _no_size_limit(self, why: str) -> None:
        self._size_limit = False
        self.logger.warning(
            "frames over %d bytes are refused only after websocket-client has read them whole: %s", MAX_FRAME_BYTES, why
        )


def _safe_error(error: Exception) -> str:
    """An error's text, short; secrets are scrubbed by the log filter too."""
    return f"{type(error).__name__}: {error}"[:300]


class Intake:
    """Frame -> Action -> journal -> queue: parse; a new action is noted (its write-ahead record) and queued; then,
    unless the worker takes it at once (its first commit creates the row: as the order leaves, or with the
    outcome), its 'received' row is committed so the journal shows it while it waits."""

    def __init__(
        self,
        journal: Journal,
        actions: queue.Queue,
        worker_idle: Callable[[], bool],
        clock: Callable[[], float] = time.time,
        on_storage: Callable[[str | None], None] = lambda problem: None,
    ):
        self.journal = journal
        self.queue = actions
        self.worker_idle = worker_idle
        self.clock = clock
        self.on_storage = on_storage  # the journal cannot be written (a reason), or can again (None)
        self._unwritable = False
        self.logger = logging.getLogger("fractrade_sync.receiver")

    def __call__(self, frame: str | bytes) -> Action | None:
        """The queued Action; None when rejected (journaled with its reason), ignored or a duplicate."""
        parsed = parse_frame(frame, self.clock())
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
