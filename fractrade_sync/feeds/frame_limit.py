"""The Fractrade connection's own socket: opened here (TCP, an HTTP proxy's CONNECT, TLS), every step bounded by one
timeout on this socket alone, and handed to websocket-client (`WebSocketApp(socket=...)`) for the WebSocket
handshake and the frames. Once the handshake is done, everything it receives passes a frame-header tracker: a
frame, or a fragmented message, announced over MAX_FRAME_BYTES is refused from its header, before its payload is
read (websocket-client has no size limit and reads whatever length a header announces before `on_message`)."""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import socket
import ssl
import struct
import threading
from urllib.parse import SplitResult, unquote, urlsplit

import certifi
import requests
import websocket

from fractrade_sync.exchange.transport import cut
from fractrade_sync.frames import MAX_FRAME_BYTES

MESSAGE_TOO_BIG = 1009  # RFC 6455 7.4.1: the close code for a message too big to process
_HEAD_MAX = 65536  # the longest proxy answer head read
_TCP_OPTIONS = [
    (socket.IPPROTO_TCP, getattr(socket, name), value)
    for name, value in (("TCP_NODELAY", 1), ("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
] + [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]  # as websocket-client sets on the sockets it opens
_TRY_NEXT = (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)


class FrameTooLarge(websocket.WebSocketProtocolException):
    """A frame header announced a message over MAX_FRAME_BYTES: the connection is closed before its payload is read."""


class FrameTracker:
    """Follows the WebSocket frames (RFC 6455 5.2) in a received byte stream, however it is split: headers are
    parsed (2 bytes, a 16- or 64-bit extended length, a mask key), payloads skipped by count. A continuation frame
    (opcode 0) adds to the earlier fragments of its message; a control frame (opcode >= 8) between two fragments
    neither counts nor ends the message. `feed` returns the refusal of the first frame over the limit."""

    def __init__(self, limit: int = MAX_FRAME_BYTES):
        self.limit = limit
        self.refused: FrameTooLarge | None = None
        self._head = bytearray()  # the header of the frame being received, so far
        self._skip = 0  # payload bytes of the current frame still to come
        self._earlier = 0  # bytes of the earlier fragments of the message being received

    def feed(self, data: bytes) -> FrameTooLarge | None:
        """Take the next received bytes; a refusal once a header announces too much (and from then on)."""
        at = 0
        end = len(data)
        while at < end and self.refused is None:
            if self._skip:
                step = min(self._skip, end - at)
                self._skip -= step
                at += step
                continue
            step = min(self._header_size() - len(self._head), end - at)
            self._head += data[at : at + step]
            at += step
            if len(self._head) == self._header_size():
                self._header_done()
        return self.refused

    def _header_size(self) -> int:
        if len(self._head) < 2:
            return 2
        short = self._head[1] & 0x7F
        return 2 + {126: 2, 127: 8}.get(short, 0) + (4 if self._head[1] & 0x80 else 0)

    def _header_done(self) -> None:
        head = self._head
        self._head = bytearray()
        fin = head[0] & 0x80
        opcode = head[0] & 0x0F
        short = head[1] & 0x7F
        length = int.from_bytes(head[2:4], "big") if short == 126 else short
        length = int.from_bytes(head[2:10], "big") if short == 127 else length
        size = self._earlier + length if opcode == 0 else length
        if opcode < 8:  # a data frame or a continuation (a control frame between fragments leaves the count)
            self._earlier = 0 if fin else size
        if size > self.limit:  # any opcode: a control frame may not even exceed 125 bytes
            what = f"frame of {size} bytes" if size == length else f"fragmented message of {size} bytes"
            self.refused = FrameTooLarge(
                f"{what} announced, over the {self.limit}-byte limit: refused before reading it"
            )
        self._skip = length


class _Limited:
    """What both socket classes add: until `track()`, the handshake answer's status line is watched (a redirect
    would make websocket-client open a socket of its own, with neither timeout nor limit: refused, never followed);
    from `track()` on, every received byte passes the FrameTracker. On a refusal: a close frame 1009, no more reading
    (EOF from then on), and FrameTooLarge raised to the reader (websocket-client: on_error, then teardown)."""

    _frames: FrameTracker | None = None
    _status: bytearray | None = None  # the handshake answer's first line so far, while it is watched
    _refused = False
    _send_lock: threading.RLock | None = None

    def prepare(self) -> None:
        """Connected (and tunnelled, and TLS wrapped): the next bytes received are the handshake's answer."""
        self._send_lock = threading.RLock()
        self._status = bytearray()

    def track(self) -> None:
        """The handshake is done (read line by line: nothing of a frame read yet): follow the frames from here."""
        self._status = None
        self._frames = FrameTracker()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._refused:
            return b""  # read no further: whoever reads on meets the end of the stream
        data = super().recv(bufsize, flags)
        if self._frames is not None:
            refusal = self._frames.feed(data)
            if refusal is not None:
                self._refuse(refusal)
        elif self._status is not None:
            self._watch_status(data)
        return data

    def send(self, data: bytes, flags: int = 0) -> int:
        with self._sending():  # the ping thread sends too: never two writers on one TLS connection
            return super().send(data, flags)

    def _sending(self) -> threading.RLock | contextlib.nullcontext:
        return self._send_lock or contextlib.nullcontext()  # (no lock before prepare(): one thread only)

    def _watch_status(self, data: bytes) -> None:
        self._status += data
        if b"\n" not in self._status and len(self._status) < 256:
            return
        words = bytes(self._status).split(None, 2)
        self._status = None
        if len(words) > 1 and words[0].startswith(b"HTTP/") and words[1].isdigit() and words[1][:1] == b"3":
            status = int(words[1])
            raise websocket.WebSocketBadStatusException(
                f"Handshake status {status}: redirects are not followed", status
            )

    def _refuse(self, error: FrameTooLarge) -> None:
        self._refused = True
        reason = struct.pack("!H", MESSAGE_TOO_BIG) + b"message too big"
        close = websocket.ABNF.create_frame(reason, websocket.ABNF.OPCODE_CLOSE).format()  # masked, as a client's
        try:
            with self._sending():
                self.sendall(close)
        except OSError:
            pass  # the peer is gone already: nothing to tell it
        cut(self)
        raise error


class LimitedSocket(_Limited, socket.socket):
    """A TCP socket (ws://, or under TLS) with the handshake watch and the frame limit."""


class LimitedSSLSocket(_Limited, ssl.SSLSocket):
    """The TLS socket of wss:// (`SSLContext.sslsocket_class`) with the handshake watch and the frame limit."""


def open_connection(url: str, timeout: float) -> LimitedSocket | LimitedSSLSocket:
    """The connection to a ws:// or wss:// URL, through the HTTP proxy its environment names (HTTPS_PROXY for wss,
    HTTP_PROXY for ws, NO_PROXY honoured, as requests and websocket-client read them), TLS checked against certifi's
    roots (or WEBSOCKET_CLIENT_CA_BUNDLE); `timeout` bounds every step and stays the socket's timeout."""
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "wss"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if secure else 80)
    proxy = _proxy(host, port, secure)
    sock = _connect((proxy.hostname or "localhost", proxy.port or 80) if proxy else (host, port), timeout)
    try:
        if proxy:
            _tunnel(sock, host, port, proxy)
        if secure:
            sock = _tls().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    sock.prepare()
    return sock


def _connect(address: tuple[str, int], timeout: float) -> LimitedSocket:
    """socket.create_connection, but of our socket class (websocket-client's errors: an address not found is a
    WebSocketAddressException; a refusal or a timeout the OSError itself)."""
    try:
        infos = socket.getaddrinfo(*address, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise websocket.WebSocketAddressException(exc) from None
    error: OSError | None = None
    for family, kind, proto, _, target in infos:
        try:
            sock = LimitedSocket(family, kind, proto)
        except OSError as exc:  # (an address family this host cannot use)
            error = exc
            continue
        try:
            sock.settimeout(timeout)
            for option in _TCP_OPTIONS:
                sock.setsockopt(*option)
            sock.connect(target)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno not in _TRY_NEXT:  # a timeout is not waited out again at the next address
                raise
            error = exc
    raise error or OSError(f"no address for {address[0]}")


def _proxy(host: str, port: int, secure: bool) -> SplitResult | None:
    """The proxy URL (parsed) for this host, or None."""
    scheme = "https" if secure else "http"
    value = requests.utils.get_environ_proxies(f"{scheme}://{host}:{port}").get(scheme, "").strip()
    if not value:
        return None
    return urlsplit(value if "://" in value else f"http://{value}")


def _tunnel(sock: socket.socket, host: str, port: int, proxy: SplitResult) -> None:
    """HTTP CONNECT through the proxy (Basic credentials from its URL); its answer read byte by byte."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if proxy.username:
        credentials = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
        head += f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode()}\r\n"
    sock.sendall(f"{head}\r\n".encode())
    answer = bytearray()
    while not answer.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte or len(answer) > _HEAD_MAX:
            raise websocket.WebSocketProxyException("the proxy closed the connection or answered no HTTP")
        answer += byte
    words = bytes(answer).split(None, 2)
    status = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
    if status != 200:
        raise websocket.WebSocketProxyException(f"failed CONNECT via proxy status: {status}")


def _tls() -> ssl.SSLContext:
    """certifi's roots (requests' too: both paths trust the same), hostnames checked; our socket class. Made at each
    connect: WEBSOCKET_CLIENT_CA_BUNDLE is read then, as websocket-client read it."""
    bundle = os.environ.get("WEBSOCKET_CLIENT_CA_BUNDLE", "")
    if os.path.isdir(bundle):
        context = ssl.create_default_context(capath=bundle)
    else:
        context = ssl.create_default_context(cafile=bundle if os.path.isfile(bundle) else certifi.where())
    context.sslsocket_class = LimitedSSLSocket
    return context
