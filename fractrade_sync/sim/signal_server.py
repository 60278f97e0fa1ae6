"""A local Fractrade signal server: pushes action frames to executor WebSockets."""

from __future__ import annotations

import hmac
import http.server
import json
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import urlsplit

from fractrade_sync.sim.ws_frames import frame_header
from fractrade_sync.sim.wsserver import WebSocketConnection, accept, broadcast, reject

if TYPE_CHECKING:
    from typing import Self  # annotations only: runtime stays 3.10-compatible

logger = logging.getLogger(__name__)

_RECV_SLICE = 0.5  # seconds; a connection thread re-checks the stop flag this often
_STOP_BUDGET = 5.0  # seconds stop() waits for connection threads in total


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes every GET to the owning SignalServer."""

    server: _HTTPServer
    timeout = 5.0  # a client that connects and sends no request line is dropped

    def do_GET(self) -> None:
        """Handshake, then serve the WebSocket until it closes."""
        self.server.owner._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's access log to logging at DEBUG."""
        logger.debug("signal server: " + format, *args)


class _HTTPServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that tells its owner about every request thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: SignalServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve one TCP connection in its own tracked thread."""
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"signal-server-conn-{client_address[1]}",
            daemon=True,
        )
        self.owner._track(thread, request)
        thread.start()


class SignalServer:
    """Accepts executor WebSockets with a token and pushes frames to all of them."""

    def __init__(
        self,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/ws/executor/",
    ) -> None:
        self._expected = f"Token {token}".encode()  # the token itself is never exposed
        self.host = host
        self.port = port
        self.path = path
        self.refuse_with: int | None = None
        self.connections_total = 0
        self.auth_failures = 0
        self.handshake_log: list[dict[str, Any]] = []
        self.received: list[str] = []
        self._cond = threading.Condition()
        self._conns: set[WebSocketConnection] = set()
        self._threads: list[tuple[threading.Thread, socket.socket]] = []
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        """Base URL without a path; the client appends /ws/executor/ itself."""
        return f"ws://{self.host}:{self.port}"

    @property
    def clients(self) -> int:
        """Connections currently open."""
        with self._cond:
            return self._open_count()

    def _open_count(self) -> int:
        """Open connections; call with the condition held."""
        return sum(1 for conn in self._conns if not conn.closed)

    def start(self) -> Self:
        """Bind (port 0 picks a free port) and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("SignalServer already started")
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="signal-server",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket; idempotent."""
        with self._cond:
            if self._httpd is None or self._stopping:
                return
            self._stopping = True
            conns = list(self._conns)
        httpd = self._httpd
        if self._serve_thread is not None and self._serve_thread.is_alive():
            httpd.shutdown()  # returns within one poll_interval
            self._serve_thread.join(timeout=_STOP_BUDGET)
        httpd.server_close()
        for conn in conns:
            conn.close(1001, "server stopping")
        deadline = time.monotonic() + _STOP_BUDGET
        for thread, _ in self._snapshot_threads():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        # Whatever is still alive (a silent peer, a half-sent request) is cut off.
        for thread, sock in self._snapshot_threads():
            if thread.is_alive():
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by its own thread
                thread.join(timeout=1.0)
                if thread.is_alive():
                    logger.warning("signal server: %s did not stop", thread.name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def push(self, frame: str | bytes | dict | list) -> int:
        """Send a text frame (str or bytes as is, else JSON) to every open connection; return how many got it."""
        text = frame if isinstance(frame, (str, bytes)) else json.dumps(frame)
        with self._cond:
            conns = list(self._conns)
        return broadcast(conns, text)

    def push_raw_header(
        self, length: int, payload: bytes = b"", repeat: int = 1, opcode: int = 1, fin: bool = True
    ) -> int:
        """A hostile or broken server: send a frame header announcing `length` payload bytes, then only `payload`
        `repeat` times (fewer bytes than announced, or more frames' worth: whatever the test needs). Returns how
        many connections took it all; one that closed meanwhile (a client refusing the frame) does not count."""
        return self._push_raw(lambda: [frame_header(opcode, length, fin), *(payload for _ in range(repeat))])

    def push_fragments(self, fragments: list[str | bytes], opcode: int = 1) -> int:
        """Send one message in fragments (RFC 6455 5.4): the first frame with `opcode`, the others continuations,
        only the last final. Returns how many connections took every fragment."""
        parts = [f if isinstance(f, bytes) else f.encode("utf-8") for f in fragments]
        last = len(parts) - 1

        def frames() -> Iterable[bytes]:
            for i, part in enumerate(parts):
                yield frame_header(opcode if i == 0 else 0, len(part), fin=i == last)
                yield part

        return self._push_raw(frames)

    def _push_raw(self, chunks: Callable[[], Iterable[bytes]]) -> int:
        """Write raw bytes (a fresh iterable per connection) to every open connection; return how many took them."""
        with self._cond:
            conns = list(self._conns)
        sent = 0
        for conn in conns:
            try:
                conn.send_raw(chunks())
                sent += 1
            except ConnectionError:
                pass  # closed meanwhile, or it refused what it was sent: its reader loop drops it
        return sent

    def wait_for_clients(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least n connections are open; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._open_count() >= n, timeout)

    def drop_all(self, polite: bool = False) -> int:
        """Abort (or politely close) every connection; return how many."""
        with self._cond:
            conns = [conn for conn in self._conns if not conn.closed]
        for conn in conns:
            if polite:
                conn.close(1001, "dropped by the test server")
            else:
                conn.abort()
        with self._cond:
            self._cond.notify_all()
        return len(conns)

    def _track(self, thread: threading.Thread, sock: socket.socket) -> None:
        """Remember a request thread and its socket, forgetting finished ones."""
        with self._cond:
            self._threads = [(t, s) for t, s in self._threads if t.is_alive()]
            self._threads.append((thread, sock))

    def _snapshot_threads(self) -> list[tuple[threading.Thread, socket.socket]]:
        """A copy of the tracked request threads."""
        with self._cond:
            return list(self._threads)

    def _check(self, handler: _Handler) -> tuple[str, bool, int]:
        """Decide a handshake: (path, authorization_ok, status to answer)."""
        path = urlsplit(handler.path).path  # no query string: never log what it holds
        given = handler.headers.get("Authorization")
        auth_ok = given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self._expected)
        if self.refuse_with is not None:
            return path, auth_ok, self.refuse_with
        if path != self.path:
            return path, auth_ok, 404
        if not auth_ok:
            return path, auth_ok, 401
        return path, auth_ok, 101

    def _serve(self, handler: _Handler) -> None:
        """Handshake one request, then read from it until it closes or we stop."""
        path, auth_ok, status = self._check(handler)
        if status != 101:
            # Recorded before answering, so a client that sees the refusal sees the log.
            self._record(path, auth_ok, status, auth_failure=status in (401, 403))
            body = {401: "invalid or missing token", 404: "not found"}.get(status, "refused")
            reject(handler, status, body)
            return
        conn = accept(handler)
        self._record(path, auth_ok, 101 if conn else 400, auth_failure=False)
        if conn is None:
            return
        with self._cond:
            self.connections_total += 1
            self._conns.add(conn)
            stopping = self._stopping
            self._cond.notify_all()
        if stopping:  # accepted while stop() ran: it did not see this connection
            conn.close(1001, "server stopping")
        try:
            self._read_loop(conn)
        finally:
            with self._cond:
                self._conns.discard(conn)
                self._cond.notify_all()

    def _record(self, path: str, auth_ok: bool, status: int, auth_failure: bool) -> None:
        """Append one handshake to the log (never the token) and count refusals."""
        with self._cond:
            self.handshake_log.append({"path": path, "authorization_ok": auth_ok, "status": status})
            self.auth_failures += auth_failure

    def _read_loop(self, conn: WebSocketConnection) -> None:
        """Record whatever the client sends until the connection ends."""
        while True:
            try:
                message = conn.recv(timeout=_RECV_SLICE)
            except TimeoutError:
                if self._stopping and not conn.closed:
                    conn.close(1001, "server stopping")
                continue
            if message is None:
                return
            with self._cond:
                self.received.append(message)
