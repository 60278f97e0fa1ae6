"""The exchange's two endpoints, /info and /exchange, over one kept-alive connection: each request's weight counted
(budget.py), each told to the metrics, each answer read as the exchange's or refused as a gateway's; what a signed
write changed shown to the live account view at once. The client reads through it; every write goes through `post`."""

from __future__ import annotations

import http.client
import json
import logging
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping

import requests
from hyperliquid.utils.error import ClientError

from fractrade_sync.config.settings import Settings
from fractrade_sync.errors import NothingApplied, NotSent, TransientError
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.budget import WeightBudget
from fractrade_sync.exchange.transport import KeptAliveChannel, ProxyChannel

if TYPE_CHECKING:  # (the account view is handed in: a write's answer is laid over it)
    from fractrade_sync.feeds.account import AccountView

log = logging.getLogger("fractrade_sync.exchange")


class Endpoint:
    """One connection to the exchange, used by one thread at a time (the worker; `check` before any). `coins`: the
    main dex's asset index -> name, as meta last said (the client's, kept current by it; the account view names a
    write's orders by it)."""

    def __init__(
        self,
        settings: Settings,
        account: AccountView | None = None,
        coins: Mapping[int, str] | None = None,
        on_request: Callable[[str, str, str], None] | None = None,
    ):
        self.account = account  # the live positions and orders a write's answer is laid over (None: no feed)
        self.coins = {} if coins is None else coins
        self.weights = WeightBudget()  # the request weight spent, as the exchange counts it per IP
        # told of every request (path, its type, the HTTP status or 'network' / 'not_sent'): metrics; must be cheap
        self.on_request = on_request
        timeouts = (min(3.05, settings.http_timeout), settings.http_timeout)
        # requests re-reads proxy and CA-bundle variables on every request: read them once, now
        proxies = requests.utils.get_environ_proxies(settings.api_url)
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        # one kept-alive connection written in one sendall; behind a proxy, requests, which knows how to speak to it
        self.http: KeptAliveChannel | ProxyChannel = (
            ProxyChannel(settings.api_url, *timeouts, proxies=proxies, verify=verify)
            if proxies
            else KeptAliveChannel(settings.api_url, *timeouts, verify=verify)
        )

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.http.close()

    def idle_for(self, now: float) -> float:
        """Seconds (monotonic `now`) since the connection was last used."""
        return now - self.http.last_used

    def request(self, path: str, payload: dict, on_sent: Callable[[], None] | None = None) -> Any:
        """POST JSON to /info or /exchange; the exchange's JSON answer, or TransientError (NothingApplied when nothing
        of it can have been applied) / ClientError (a 4xx). on_sent (which must not raise) runs as the request leaves.
        A read that would leave orders no room in this minute's request weight is not sent (NothingApplied)."""
        action = payload.get("action")
        if path == "/info":
            weight = wire.info_weight(payload)
            if not self.weights.room(weight):
                raise NothingApplied(
                    f"request weight: {self.weights.used()} of {self.weights.limit} spent in the "
                    "last minute; reads wait so that orders keep room"
                )
        else:
            weight = wire.exchange_weight(action) if isinstance(action, dict) else 1
        try:
            status, body = self.http.post(path, payload, on_sent)
        except NotSent as exc:  # the connection could not even be opened: nothing left this process
            self._told(path, payload, "not_sent")
            raise NothingApplied(f"network: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            self.weights.spend(weight, path)
            self._told(path, payload, "network")
            raise TransientError(f"network: {type(exc).__name__}") from None
        self.weights.spend(weight, path)
        self._told(path, payload, str(status))
        text = body.decode("utf-8", "replace")
        if status == 429:  # refused at the door: nothing was applied
            raise NothingApplied("HTTP 429: rate limited by the exchange")
        if status >= 500:
            raise TransientError(f"HTTP {status} from the exchange")
        if status in (408, 425, 499):  # a gateway gave up waiting: the request may have reached the exchange
            raise TransientError(f"HTTP {status} from a gateway")
        if status >= 400:
            raise ClientError(status, None, text, None, None)
        try:
            return json.loads(text)
        except ValueError:  # a gateway's HTML page, a truncated body: not the exchange's answer
            raise TransientError(f"unreadable answer from the exchange (HTTP {status}): {text[:200]!r}") from None

    def info(self, payload: dict) -> Any:
        """One /info read."""
        return self.request("/info", payload)

    def post(self, payload: dict, on_sent: Callable[[], None] | None = None) -> dict:
        """POST a signed payload to /exchange; an answer without a status is uncertain. What the answer says was
        applied is laid over the account view at once (before the feed shows it); an uncertain one makes the view
        doubt until its next snapshot."""
        account = self.account
        sent_at = account.clock() if account is not None else 0.0
        try:
            result = self.request("/exchange", payload, on_sent)
            if not isinstance(result, dict) or "status" not in result:
                raise TransientError(f"unreadable answer from the exchange: {str(result)[:200]}")
        except NothingApplied:
            raise
        except TransientError:
            if account is not None:
                account.doubt()  # it may have changed the account: only a later snapshot tells
            raise
        if account is not None:
            account.applied(payload["action"], result, self.coins, sent_at)  # shown at once, before the feed does
        return result

    def _told(self, path: str, payload: dict, status: str) -> None:
        """Tell on_request of a request: its type (the info type, or the signed action's); never raises."""
        if self.on_request is None:
            return
        try:
            action = payload.get("action")
            kind = action.get("type") if isinstance(action, dict) else payload.get("type")
            self.on_request(path, kind if isinstance(kind, str) else "other", status)
        except Exception:
            log.debug("on_request failed", exc_info=True)
