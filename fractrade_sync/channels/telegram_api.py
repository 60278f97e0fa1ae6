"""The Telegram Bot API's HTTP client: POST {api}/bot<token>/<method> over one kept-alive connection of its own (or
through requests behind a proxy), each answer read as an Answer. One thread calls; any other may cut() a call in
flight. The token is in every URL's path: it is never logged, and scrub() takes it out of any text."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import requests

CONNECT_TIMEOUT = 3.05


class Answer(NamedTuple):
    """One Bot API call: ok and its result, or the error: code (0: no answer), Telegram's description, retry_after."""

    ok: bool
    result: Any = None
    code: int = 0
    description: str = ""
    retry_after: float | None = None

    @property
    def transient(self) -> bool:  # a failure worth asking again: no answer, 429, 5xx; not a 400/401/403/404/409
        return not self.ok and (self.code == 0 or self.code == 429 or self.code >= 500)

    def said(self) -> str:
        return f"{self.code}: {self.description}" if self.code else self.description


class BotApiClient:
    """The Bot API at `api_url` for one bot; `read_timeout` bounds each answer (a long poll's included).
    `proxied`: behind a proxy (HTTP_PROXY, ...) a call goes through requests, and cut() cannot end it."""

    def __init__(self, api_url: str, token: str, read_timeout: float):
        self._token = token
        proxies = requests.utils.get_environ_proxies(api_url)
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.proxied = bool(proxies)
        if proxies:
            self._http: _KeptAlive | _ThroughProxy = _ThroughProxy(api_url, read_timeout, proxies, verify)
        else:
            self._http = _KeptAlive(api_url, read_timeout, verify)

    def call(self, method: str, payload: dict) -> Answer:
        """POST the method; never raises for HTTP or network trouble, never quotes the URL."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            status, raw = self._http.post(f"/bot{self._token}/{method}", body)
        except (OSError, http.client.HTTPException) as exc:  # its text may quote the URL: the type only
            return Answer(False, description=f"network error ({type(exc).__name__})")
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):  # a proxy's or gateway's page: a 4xx is refused, anything else retried
            return Answer(False, code=status if status >= 400 else 0, description=f"HTTP {status}, not the Bot API")
        if data.get("ok") is True and 200 <= status < 300:
            return Answer(True, data.get("result"))
        # ResponseParameters.retry_after: "In case of exceeding flood control, the number of seconds left to wait
        # before the request can be repeated"
        params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        retry = params.get("retry_after")
        code = data.get("error_code") if isinstance(data.get("error_code"), int) else status
        description = self.scrub(str(data.get("description") or f"HTTP {status}"))[:300]
        return Answer(
            False,
            code=code if code >= 400 else status,
            description=description,
            retry_after=float(retry) if isinstance(retry, (int, float)) and retry > 0 else None,
        )

    def cut(self) -> None:
        """From another thread: end a call in flight at once (it answers 'network error'); not behind a proxy."""
        self._http.cut()

    def close(self) -> None:
        self._http.close()

    def scrub(self, text: str) -> str:
        """The text with the token (as it is, and URL-quoted) replaced by ***."""
        return text.replace(self._token, "***").replace(quote(self._token, safe=""), "***")


class _KeptAlive:
    """POST over one persistent connection, the whole request in one sendall, the answer parsed by http.client."""

    def __init__(self, api_url: str, read_timeout: float, verify: str | bool):
        parts = urlsplit(api_url)
        https = parts.scheme.lower() == "https"
        self.host, self.port = parts.hostname or "localhost", parts.port or (443 if https else 80)
        self.base_path, self.read_timeout = parts.path.rstrip("/"), read_timeout
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self._head = (
            f"Host: {netloc}\r\nContent-Type: application/json\r\nAccept-Encoding: identity\r\n"
            "User-Agent: fractrade-sync\r\nConnection: keep-alive\r\nContent-Length: "
        )
        self._tls: ssl.SSLContext | None = None
        if https:
            import certifi  # requests' own CA bundle, so both paths trust the same roots

            self._tls = ssl.create_default_context(cafile=verify if isinstance(verify, str) else certifi.where())
        self._sock: socket.socket | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body); an OSError or HTTPException when there is no answer."""
        if not self._usable():
            self._connect()
        request = f"POST {self.base_path}{path} HTTP/1.1\r\n{self._head}{len(body)}\r\n\r\n".encode() + body
        sock = self._sock
        try:
            sock.sendall(request)
            response = http.client.HTTPResponse(sock, method="POST")
            response.begin()
            data = response.read()
        except BaseException:
            self.close()  # half-read or broken: never reused
            raise
        if response.will_close:
            self.close()
        return response.status, data

    def _connect(self) -> None:
        self.close()
        sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def _usable(self) -> bool:
        """False when the server closed the idle connection (it reads as EOF) or it is gone."""
        if self._sock is None:
            return False
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable  # nothing is due on an idle keep-alive connection: readable means closed

    def cut(self) -> None:
        """Shut the socket down (not close): wakes a recv() blocked on it in another thread at once."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass  # already gone


class _ThroughProxy:
    """The same POST through requests, which knows how to speak to an HTTP(S) proxy: used only behind one."""

    def __init__(self, api_url: str, read_timeout: float, proxies: dict[str, str], verify: str | bool):
        self.base, self.timeouts = api_url.rstrip("/"), (CONNECT_TIMEOUT, read_timeout)
        self.session = requests.Session()
        self.session.proxies.update(proxies)
        self.session.verify = verify
        self.session.trust_env = False  # read once, by the caller: not again on every request

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body); a requests exception (an OSError) when there is no answer."""
        headers = {"Content-Type": "application/json"}
        response = self.session.post(self.base + path, data=body, timeout=self.timeouts, headers=headers)
        return response.status_code, response.content

    def cut(self) -> None:
        pass  # requests' call cannot be cut: the bot keeps its polls short behind a proxy instead

    def close(self) -> None:
        self.session.close()
