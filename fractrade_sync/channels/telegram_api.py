"""The Telegram Bot API's HTTP client: POST {api}/bot<token>/<method> over one kept-alive connection of its own (or
through requests behind a proxy: exchange/transport.py's channels), each answer read as an Answer. One thread calls;
any other may cut() a call in flight. The token is in every URL's path: it is never logged, and scrub() takes it out
of any text."""

from __future__ import annotations

import http.client
import json
import os
from typing import Any, NamedTuple
from urllib.parse import quote

import requests

from fractrade_sync.errors import NotSent
from fractrade_sync.exchange.transport import KeptAliveChannel, ProxyChannel

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
            self._http: KeptAliveChannel | ProxyChannel = ProxyChannel(
                api_url, CONNECT_TIMEOUT, read_timeout, proxies, verify
            )
        else:
            self._http = KeptAliveChannel(api_url, CONNECT_TIMEOUT, read_timeout, verify)

    def call(self, method: str, payload: dict) -> Answer:
        """POST the method; never raises for HTTP or network trouble, never quotes the URL."""
        try:
            status, raw = self._http.post(f"/bot{self._token}/{method}", payload)
        except (NotSent, OSError, http.client.HTTPException) as exc:  # its text may quote the URL: the type only
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
