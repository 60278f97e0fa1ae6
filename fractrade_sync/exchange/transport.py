"""JSON over HTTP POST: one kept-alive connection written in one send() per request, or requests behind a proxy. The
exchange's orders and reads go this way, and so do Telegram's Bot API calls."""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import requests

from fractrade_sync.errors import NotSent


def compact_json(payload: Any) -> str:
    """The request body: JSON without spaces, as json.dumps writes it."""
    return json.dumps(payload, separators=(",", ":"))


class KeptAliveChannel:
    """POST JSON over one persistent connection: the whole request in one sendall, the answer parsed by
    http.client (BENCHMARKS.md: why not requests). Used by one thread at a time; any other may cut() it."""

    def __init__(self, api_url: str, connect_timeout: float, read_timeout: float, verify: str | bool = True):
        parts = urlsplit(api_url)
        self.https = parts.scheme.lower() == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self._head = (
            f"Host: {netloc}\r\nContent-Type: application/json\r\nAccept-Encoding: identity\r\n"
            "User-Agent: fractrade-sync\r\nConnection: keep-alive\r\nContent-Length: "
        )
        self._tls: ssl.SSLContext | None = None
        if self.https:
            if verify is False:
                raise ValueError("TLS verification cannot be turned off for the order path")
            if isinstance(verify, str):
                self._tls = ssl.create_default_context(cafile=verify)
            else:
                import certifi  # requests' own CA bundle, so both paths trust the same roots

                self._tls = ssl.create_default_context(cafile=certifi.where())
        self._sock: socket.socket | None = None
        self.last_used = time.monotonic()

    def connect(self) -> None:
        """(Re)open the connection; raises NotSent when that fails."""
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except OSError as exc:
            raise NotSent(f"{type(exc).__name__}: {exc}") from None
        self._sock = sock

    def close(self) -> None:
        sock = self._sock
        self._sock = None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass  # already gone

    def cut(self) -> None:
        """From another thread: end a request in flight at once (its recv() wakes with an error)."""
        cut(self._sock)

    def _usable(self) -> bool:
        """False when the server closed the idle connection (it reads as EOF) or it is gone."""
        if self._sock is None:
            return False
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable  # nothing is due on an idle keep-alive connection: readable means closed

    def post(self, path: str, payload: Any, on_sent: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """(status, body). NotSent: nothing left; any other OSError/HTTPException: the request may be in flight.
        on_sent runs once the request is written, while it travels (it must not raise)."""
        self.last_used = time.monotonic()
        body = compact_json(payload).encode()
        if not self._usable():
            self.connect()
        request = f"POST {self.base_path}{path} HTTP/1.1\r\n{self._head}{len(body)}\r\n\r\n".encode() + body
        try:
            self._sock.sendall(request)
            if on_sent is not None:
                on_sent()
            response = http.client.HTTPResponse(self._sock, method="POST")
            response.begin()
            data = response.read()
        except BaseException:
            self.close()  # half-read or broken: never reuse it
            raise
        if response.will_close:
            self.close()
        return response.status, data


class ProxyChannel:
    """The same POST through requests, which knows how to speak to an HTTP(S) proxy: used only behind one."""

    def __init__(
        self,
        api_url: str,
        connect_timeout: float,
        read_timeout: float,
        proxies: dict[str, str],
        verify: str | bool = True,
    ):
        self.base = api_url.rstrip("/")
        self.timeouts = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.proxies.update(proxies)
        self.session.verify = verify
        self.session.trust_env = False  # read once, by the caller: not again on every request
        self.last_used = time.monotonic()

    def close(self) -> None:
        self.session.close()

    def cut(self) -> None:
        """requests' call cannot be cut: behind a proxy a caller keeps its calls short instead."""

    def post(self, path: str, payload: Any, on_sent: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """(status, body), as KeptAliveChannel.post; on_sent runs just before the request (requests writes and reads
        in one call)."""
        self.last_used = time.monotonic()
        body = compact_json(payload).encode()
        if on_sent is not None:
            on_sent()
        try:
            response = self.session.post(
                self.base + path, data=body, timeout=self.timeouts, headers={"Content-Type": "application/json"}
            )
        except requests.ConnectTimeout as exc:  # the proxy was never reached: nothing left
            raise NotSent(type(exc).__name__) from None
        except requests.RequestException as exc:  # the request may be in flight
            raise ConnectionError(type(exc).__name__) from None
        return response.status_code, response.content


def cut(sock: socket.socket | None) -> None:
    """Shut a socket down (not close): wakes a select() or recv() blocked on it in another thread at once."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed
