"""Hyperliquid adapter: the one place that signs and sends, around the synchronous SDK."""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import requests
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError, ServerError

from .config import Settings
from .market import MidsFeed
from .rules import Asset, to_wire
from .signing import FastSigner
from .transport import NotSent, OrderChannel

EMPTY_SPOT_META = {"universe": [], "tokens": []}
STALE_NOTICE_EVERY = 60.0  # seconds between two "mids cache stale" warnings: a dead feed must not flood the log
LEVERAGE_TTL = 60.0  # seconds a cached leverage is trusted on the order path (the UI can change it)
KEEP_WARM_AFTER = 30.0  # seconds of an idle order connection before a keep-warm request
MIDS_READY_WAIT = 3.0  # warm_up waits this long for the feed's first snapshot, then goes on (REST fallback)


class TransientError(Exception):
    """No usable answer (network, timeout, 429, 5xx). in_flight: the request may still be applied later."""

    def __init__(self, message: str, in_flight: bool = True):
        super().__init__(message)
        self.in_flight = in_flight


class UnknownSymbol(Exception):
    """The coin is not a perp of the exchange's meta."""


@dataclass(frozen=True)
class Order:
    """One order as it goes on the wire."""

    asset: Asset
    is_buy: bool
    size: Decimal
    limit_px: Decimal
    reduce_only: bool
    cloid: str | None
    tif: str = "Ioc"
    trigger_px: Decimal | None = None
    tpsl: str | None = None

    def wire(self) -> dict[str, Any]:
        """The order wire, keys in the SDK's order (the signature hashes them as sent)."""
        if self.trigger_px is not None:
            order_type: dict = {"trigger": {"isMarket": True, "triggerPx": to_wire(self.trigger_px), "tpsl": self.tpsl}}
        else:
            order_type = {"limit": {"tif": self.tif}}
        wire: dict[str, Any] = {
            "a": self.asset.index,
            "b": self.is_buy,
            "p": to_wire(self.limit_px),
            "s": to_wire(self.size),
            "r": self.reduce_only,
            "t": order_type,
        }
        if self.cloid:
            wire["c"] = self.cloid
        return wire

    @property
    def value(self) -> Decimal:
        """Notional at the limit (or trigger) price, as the exchange measures its $10 minimum."""
        return self.size * (self.trigger_px if self.trigger_px is not None else self.limit_px)


@dataclass
class NonceSource:
    """Strictly increasing millisecond nonces: two requests in one millisecond must not collide."""

    clock: Any = time.time
    _last: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> int:
        with self._lock:
            self._last = max(int(self.clock() * 1000), self._last + 1)
            return self._last


def _asset_data(user: str, coin: str) -> dict:
    return {"type": "activeAssetData", "user": user, "coin": coin}


class HyperliquidClient:
    """Meta, mids, account state and signed requests; used only by the worker thread."""

    def __init__(self, settings: Settings, logger: logging.Logger | None = None):
        self.settings = settings
        self.logger = logger or logging.getLogger("fractrade_sync.exchange")
        self.address = settings.account_address
        self.nonces = NonceSource()
        self._wallet = Account.from_key(settings.private_key.reveal())
        self.signer = FastSigner(settings.private_key.reveal())
        self.feed = MidsFeed(settings.api_url, logging.getLogger("fractrade_sync.market"))  # started by start_feed()
        self._stale_notice_at = float("-inf")
        self._stale_unnoticed = 0
        self._assets: dict[str, Asset] = {}
        self._leverage: dict[str, tuple[str, int, float]] = {}  # coin -> (type, value, monotonic time read)
        timeout = (min(3.05, settings.http_timeout), settings.http_timeout)
        self.info = Info(settings.api_url, skip_ws=True, meta={"universe": []}, spot_meta=EMPTY_SPOT_META)
        self.info.timeout = timeout
        self.sdk = Exchange(
            self._wallet,
            settings.api_url,
            meta={"universe": []},
            spot_meta=EMPTY_SPOT_META,
            account_address=settings.account_address,
            timeout=timeout,
        )
        # one keep-alive connection for /info and /exchange, so warming it up warms the order path too
        self.sdk.session.close()
        self.sdk.session = session = self.info.session
        # requests re-reads proxy and CA-bundle variables from the environment on every request (about half a
        # millisecond of the order path): read them once, now, and stop looking
        session.proxies.update(requests.utils.get_environ_proxies(settings.api_url))
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.trust_env = False
        # orders go over their own persistent connection, written in one sendall (requests costs ~1 ms here);
        # behind a proxy they stay on requests, which knows how to speak to it
        proxied = bool(session.proxies)
        self.channel = None if proxied else OrderChannel(settings.api_url, *timeout, verify=session.verify)

    def start_feed(self) -> None:
        """Start the live mids cache (idempotent); call close() at shutdown."""
        self.feed.start()

    def close(self) -> None:
        """Stop the mids feed and close the HTTP connections (idempotent)."""
        self.feed.stop()
        self.info.session.close()
        if self.channel is not None:
            self.channel.close()

    def __repr__(self) -> str:
        return f"HyperliquidClient(api={self.settings.api_url!r}, account={self.address!r})"

    # ---- reads -------------------------------------------------------------------------------
    def _info(self, payload: dict) -> Any:
        return self._call(self.info.post, "/info", payload)

    def _call(self, fn, *args) -> Any:
        """Run one SDK request; turn what it raises into TransientError or ClientError."""
        try:
            return fn(*args)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"network: {type(exc).__name__}") from None
        except ServerError as exc:
            raise TransientError(f"HTTP {exc.status_code} from the exchange") from None
        except ClientError as exc:
            if exc.status_code == 429:  # refused at the door: nothing was applied
                raise TransientError("HTTP 429: rate limited by the exchange", in_flight=False) from None
            raise

    def load_meta(self) -> dict[str, Asset]:
        """Fetch the perp universe; index by name."""
        meta = self._info({"type": "meta"})
        assets = {
            a["name"]: Asset(a["name"], i, int(a["szDecimals"]), int(a.get("maxLeverage", 50)))
            for i, a in enumerate(meta["universe"])
            if not a.get("isDelisted")
        }
        self._assets = assets
        self.info.set_perp_meta(meta, 0)
        self.sdk.info.set_perp_meta(meta, 0)
        return assets

    def asset(self, symbol: str) -> Asset:
        """The asset for a symbol (exact, else case-insensitive), refreshing meta once when unknown."""
        for attempt in range(2):
            found = self._assets.get(symbol)
            if found is None:
                matches = [a for name, a in self._assets.items() if name.lower() == symbol.lower()]
                found = matches[0] if len(matches) == 1 else None
            if found is not None:
                return found
            if attempt == 0:
                self.load_meta()
        raise UnknownSymbol(f"unknown symbol '{symbol}': not a perp on this exchange")

    def mid(self, coin: str) -> Decimal:
        """The current mid price of a coin: from the live feed when fresh, else one REST allMids."""
        cached = self.feed.get(coin)
        if cached is not None:
            return cached
        mids = self._info({"type": "allMids"})
        if coin not in mids:
            raise UnknownSymbol(f"no mid price for {coin} on this exchange")
        self._stale_notice(coin)
        return Decimal(str(mids[coin]))

    def _stale_notice(self, coin: str) -> None:
        if not self.feed.started:  # no feed by design (check, scripts): REST is the plan, not a fallback
            self.logger.debug("mids for %s fetched over REST (no feed)", coin)
            return
        now = time.monotonic()
        if now - self._stale_notice_at < STALE_NOTICE_EVERY:
            self._stale_unnoticed += 1
            return
        more = f"; {self._stale_unnoticed} more since the last notice" if self._stale_unnoticed else ""
        self.logger.warning(
            "mids cache stale/missing for %s; fetched over REST (feed last alive %.1fs ago, bound %.0fs%s)",
            coin, self.feed.age(), self.feed.max_age, more,
        )  # fmt: skip
        self._stale_notice_at, self._stale_unnoticed = now, 0

    def account_state(self) -> dict:
        return self._info({"type": "clearinghouseState", "user": self.address})

    def position(self, coin: str) -> Decimal:
        """The signed position size on a coin (0 when flat); refreshes the leverage cache as a side effect."""
        for item in self.account_state().get("assetPositions", []):
            pos = item.get("position", {})
            if pos.get("coin") == coin:
                lev = pos.get("leverage") or {}
                if "value" in lev:
                    self._leverage[coin] = (lev.get("type", "cross"), int(lev["value"]), time.monotonic())
                return Decimal(str(pos.get("szi", "0")))
        return Decimal(0)

    def leverage(self, coin: str) -> tuple[str, int] | None:
        """The leverage set on a coin (it can change in the UI too): cached for LEVERAGE_TTL, else read
        (activeAssetData); keep_warm() refreshes the cache while idle, so the order path rarely pays for it."""
        cached = self._leverage.get(coin)
        if cached is None or time.monotonic() - cached[2] > LEVERAGE_TTL:
            self._remember_leverage(coin, self._info(_asset_data(self.address, coin)))
            cached = self._leverage.get(coin)
        return None if cached is None else (cached[0], cached[1])

    def _remember_leverage(self, coin: str, data: Any) -> None:
        lev = data.get("leverage") if isinstance(data, dict) else None
        if isinstance(lev, dict) and "value" in lev:
            self._leverage[coin] = (lev.get("type", "cross"), int(lev["value"]), time.monotonic())

    def open_orders(self) -> list[dict]:
        return self._info({"type": "frontendOpenOrders", "user": self.address})

    def order_status(self, cloid: str) -> dict:
        """What the exchange knows of an order by its cloid ({'status': 'unknownOid'} when nothing); may raise."""
        return self._info({"type": "orderStatus", "user": self.address, "oid": cloid})

    def wallet_problem(self) -> str | None:
        """Why the key may not trade for the account (asked of the exchange: userRole), or None."""
        settings = self.settings
        if not settings.is_agent_wallet:
            return None
        role = self._info({"type": "userRole", "user": settings.signer_address})
        user = str((role.get("data") or {}).get("user", "")).lower()
        if role.get("role") == "agent" and user == settings.account_address:
            return None
        return (
            f"the key's address {settings.signer_address} is not an API wallet approved for "
            f"{settings.account_address} (exchange says role={role.get('role')!r})"
        )

    # ---- writes ------------------------------------------------------------------------------
    @property
    def expiry_window(self) -> float:
        """Seconds an L1 action stays valid: just past our own read timeout, so a request we gave up on
        can provably no longer be applied once this has passed (then a cloid check is conclusive)."""
        return self.settings.http_timeout + 1.0

    def signed_payload(self, action: dict) -> dict:
        """Sign an L1 action with a fresh nonce and an expiresAfter; the payload as it would be posted."""
        nonce = self.nonces.next()
        expires = nonce + int(self.expiry_window * 1000)
        signature = self.signer.sign_l1(action, None, nonce, expires, self.settings.is_mainnet)
        return {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None, "expiresAfter": expires}

    def post(self, payload: dict, on_sent: Callable[[], None] | None = None) -> dict:
        """POST a signed payload to /exchange; an answer that is not the exchange's JSON is uncertain.
        on_sent (which must not raise) runs as the request leaves: after the write on the order channel, just
        before it through the SDK (behind a proxy)."""
        if self.channel is None:
            if on_sent is not None:
                on_sent()
            result = self._call(self.sdk.post, "/exchange", payload)
        else:
            result = self._send(payload, on_sent)
        if not isinstance(result, dict) or "status" not in result:
            raise TransientError(f"unreadable answer from the exchange: {str(result)[:200]}")
        return result

    def keep_warm(self, idle: float = KEEP_WARM_AFTER) -> None:
        """Worker thread, when idle: on an order connection unused for `idle` seconds, refresh the cached leverages
        (or send one light request), so the server never closes it and the next order pays no new handshake."""
        if self.channel is None or time.monotonic() - self.channel.last_used < idle:
            return
        stale = [coin for coin, (_, _, at) in self._leverage.items() if time.monotonic() - at >= idle]
        try:
            for coin in stale:
                status, body = self.channel.post("/info", _asset_data(self.address, coin))
                if status == 200:
                    self._remember_leverage(coin, json.loads(body))
            if not stale:
                self.channel.post("/info", {"type": "clearinghouseState", "user": self.address})
        except (NotSent, OSError, ValueError, http.client.HTTPException) as exc:
            self.logger.debug("keep-warm request failed (%s); the next order reconnects", type(exc).__name__)

    def _send(self, payload: dict, on_sent: Callable[[], None] | None = None) -> Any:
        """POST over the order channel, mapping failures exactly as _call maps the SDK's."""
        try:
            status, data = self.channel.post("/exchange", payload, on_sent)
        except NotSent as exc:  # the connection could not even be opened: nothing left this process
            raise TransientError(f"network: {exc}", in_flight=False) from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransientError(f"network: {type(exc).__name__}") from None
        text = data.decode("utf-8", "replace")
        if status == 429:  # refused at the door: nothing was applied
            raise TransientError("HTTP 429: rate limited by the exchange", in_flight=False)
        if status >= 500:
            raise TransientError(f"HTTP {status} from the exchange")
        if status >= 400:
            raise ClientError(status, None, text, None, None)
        try:
            return json.loads(text)
        except ValueError:
            return text

    def order_action(self, orders: list[Order]) -> dict:
        return {"type": "order", "orders": [o.wire() for o in orders], "grouping": "na"}

    def update_leverage(self, asset: Asset, leverage: int, is_cross: bool) -> dict:
        """Set a coin's leverage; remembers it when the exchange accepts."""
        action = {"type": "updateLeverage", "asset": asset.index, "isCross": is_cross, "leverage": leverage}
        result = self.post(self.signed_payload(action))
        if result.get("status") == "ok":
            self._leverage[asset.name] = ("cross" if is_cross else "isolated", leverage, time.monotonic())
        return result

    def cancel(self, asset: Asset, oids: list[int]) -> dict:
        action = {"type": "cancel", "cancels": [{"a": asset.index, "o": oid} for oid in oids]}
        return self.post(self.signed_payload(action))

    def warm_up(self) -> None:
        """Open the keep-alive connection before the first order needs it; give the feed its first snapshot."""
        self._info({"type": "allMids"})
        if self.channel is not None:
            try:
                self.channel.connect()
            except NotSent as exc:
                raise TransientError(f"network: {exc}", in_flight=False) from None
        if self.feed.started and not self.feed.wait_ready(MIDS_READY_WAIT):
            self.logger.warning("mids feed not live after %.0fs (%s); mids come over REST until it is", MIDS_READY_WAIT,
                                self.feed.url)  # fmt: skip
