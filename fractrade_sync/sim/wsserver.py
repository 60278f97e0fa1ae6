"""A minimal, synchronous RFC 6455 WebSocket server side for http.server handlers: the handshake, one connection's
sends and reads (its framing: ws_frames.py), a broadcast."""

from __future__ import annotations

import http.server
import math
import select
import socket
import struct
import threading
import time
from email.message import Message
from typing import Iterable

from fractrade_sync.sim.ws_frames import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Fragments,
    ProtocolError,
    accept_key,
    close_payload,
    frame,
    take_frame,
)

_CONTINUE = object()  # a frame was handled but no message is complete yet
_POLL_SLICE = 0.25  # seconds; a blocked recv re-checks close state this often


def shut_down(socks) -> None:
    """Shut down each client socket of a stopping server (its handler thread then ends); closed ones are skipped."""
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by its handler


class WebSocketConnection:
    """One accepted WebSocket: thread-safe sends, one reader at a time."""

    send_timeout = 10.0  # a peer that reads nothing for this long is dropped
    close_timeout = 2.0  # how long recv waits for the peer's close reply

    def __init__(self, handler: http.server.BaseHTTPRequestHandler, pending: bytes = b"") -> None:
        self.request_headers: Message = handler.headers
        self.path: str = handler.path
        self._sock: socket.socket = handler.connection
        # One fixed timeout for sendall; recv waits with poll(), so no thread
        # ever changes the socket's timeout under another one.
        self._sock.settimeout(self.send_timeout)
        self._poller = select.poll()
        self._poller.register(self._sock, select.POLLIN)
        self._buf = bytearray(pending)
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._fragments = Fragments()
        self._close_sent = False
        self._close_deadline = 0.0
        self._eof = False

    @property
    def closed(self) -> bool:
        """True after close/abort, a peer close, EOF or an I/O error."""
        return self._close_sent or self._eof

    def send_text(self, text: str | bytes) -> None:
        """Send one text message; raises ConnectionError if closed. Bytes go as they are, even when they are not
        UTF-8: what a broken server could send."""
        self._send(OP_TEXT, text if isinstance(text, bytes) else text.encode("utf-8"))

    def send_raw(self, chunks: Iterable[bytes]) -> None:
        """Write bytes as they are, in one go under the send lock: what a broken or hostile server sends (a header
        announcing more than follows, a message in fragments). Raises ConnectionError if closed or cut meanwhile."""
        with self._send_lock:
            if self.closed:
                raise ConnectionError("WebSocket connection is closed")
            try:
                for chunk in chunks:
                    self._sock.sendall(chunk)
            except OSError as exc:
                self._shutdown()  # a partial frame leaves the stream unusable
                raise ConnectionError(f"WebSocket send failed: {exc}") from exc

    def _send(self, opcode: int, payload: bytes) -> None:
        """Send one frame under the send lock."""
        with self._send_lock:
            if self.closed:
                raise ConnectionError("WebSocket connection is closed")
            try:
                self._sock.sendall(frame(opcode, payload))
            except OSError as exc:
                # A partial frame leaves the stream unusable: drop it.
                self._shutdown()
                raise ConnectionError(f"WebSocket send failed: {exc}") from exc

    def recv(self, timeout: float | None = None) -> str | None:
        """Next message; None once closed; TimeoutError if none within timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._recv_lock:
            while not self._eof:
                try:
                    taken = take_frame(self._buf)
                    if taken is None:
                        self._fill(deadline)
                        continue
                    msg = self._handle(*taken)
                except ProtocolError as exc:
                    self._fail(exc.code, exc.reason)
                    return None
                if msg is None or isinstance(msg, str):
                    return msg
            return None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame, then shut our sending side; recv drains the reply."""
        with self._send_lock:
            if self.closed:
                return
            try:
                self._sock.sendall(frame(OP_CLOSE, close_payload(code, reason)))
            except OSError:
                self._shutdown()
                return
            self._close_sent = True
            self._close_deadline = time.monotonic() + self.close_timeout
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._eof = True

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame."""
        try:
            # Linger 0: the final close() sends RST instead of a graceful FIN.
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already gone; _shutdown below marks us closed either way
        self._shutdown()

    def _shutdown(self) -> None:
        """Mark closed and shut both directions; wakes a blocked reader."""
        self._eof = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more: nothing left to shut
        # The socket itself is closed by http.server when the handler returns,
        # so no other thread can ever read from a reused file descriptor.

    def _fail(self, code: int, reason: str) -> None:
        """Answer a protocol violation with a close frame and drop the connection."""
        self._close_and_drop(close_payload(code, reason))

    def _close_and_drop(self, payload: bytes) -> None:
        """Send a close frame unless one went already, then shut the socket."""
        if not self.closed:
            try:
                self._send(OP_CLOSE, payload)
            except ConnectionError:
                pass  # the peer is gone already; dropping is all that is left
        self._shutdown()

    def _fill(self, deadline: float | None) -> None:
        """Read more bytes into the buffer, or set EOF, or raise TimeoutError."""
        while not self._eof:
            now = time.monotonic()
            if self._close_sent and now >= self._close_deadline:
                self._shutdown()  # the peer never answered our close
                return
            if deadline is not None and now >= deadline:
                raise TimeoutError("no WebSocket message before the timeout")
            wait = _POLL_SLICE
            if deadline is not None:
                wait = min(wait, deadline - now)
            if not self._poller.poll(max(0, math.ceil(wait * 1000))):
                continue
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError, TimeoutError):
                continue
            except OSError:
                data = b""
            if not data:
                self._shutdown()
                return
            self._buf += data
            return

    def _handle(self, fin: int, rsv: int, opcode: int, payload: bytes) -> object:
        """Apply one frame; return a complete message, None on close, else _CONTINUE."""
        if rsv:
            raise ProtocolError(1002, "reserved bits set without an extension")
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                raise ProtocolError(1002, "invalid control frame")
            if opcode == OP_CLOSE:
                self._close_and_drop(payload[:2])  # echo the peer's status code
                return None
            if opcode == OP_PING:
                try:
                    self._send(OP_PONG, payload)
                except ConnectionError:
                    pass  # closing: a pong is no longer owed
                return _CONTINUE
            if opcode == OP_PONG:
                return _CONTINUE
            raise ProtocolError(1002, f"unknown opcode {opcode}")
        message = self._fragments.add(fin, opcode, payload)
        return _CONTINUE if message is None else message


def _take_buffered(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    """Bytes the handler's buffered reader already pulled past the headers."""
    sock = handler.connection
    timeout = sock.gettimeout()
    sock.setblocking(False)  # peek must not wait: return only what is buffered
    try:
        data = handler.rfile.peek()
        return handler.rfile.read(len(data)) if data else b""
    except (BlockingIOError, OSError):
        return b""
    finally:
        sock.settimeout(timeout)


def accept(handler: http.server.BaseHTTPRequestHandler) -> WebSocketConnection | None:
    """Complete a WebSocket upgrade from do_GET, or answer 400 and return None."""
    headers = handler.headers
    key = headers.get("Sec-WebSocket-Key", "").strip()
    tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    if (
        handler.command != "GET"
        or headers.get("Upgrade", "").strip().lower() != "websocket"
        or "upgrade" not in tokens
        or headers.get("Sec-WebSocket-Version", "").strip() != "13"
        or accept_key(key) is None
    ):
        reject(handler, 400, "expected a WebSocket upgrade (RFC 6455, version 13)")
        return None
    handler.protocol_version = "HTTP/1.1"
    handler.close_connection = True  # the socket now speaks WebSocket, not HTTP
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(key))
    handler.end_headers()
    return WebSocketConnection(handler, _take_buffered(handler))


def reject(handler: http.server.BaseHTTPRequestHandler, status: int, body: str = "") -> None:
    """Refuse a handshake with an HTTP status and a plain-text body."""
    data = body.encode("utf-8")
    handler.protocol_version = "HTTP/1.1"
    handler.send_response(status)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    if data and handler.command != "HEAD":
        handler.wfile.write(data)
    handler.close_connection = True


def broadcast(conns: Iterable[WebSocketConnection], text: str | bytes) -> int:
    """Send one text frame to each connection; a closed one is skipped (its reader loop drops it). Returns how
    many got it."""
    sent = 0
    for conn in conns:
        try:
            conn.send_text(text)
            sent += 1
        except ConnectionError:
            pass  # closed meanwhile: its reader loop notices and drops it
    return sent
