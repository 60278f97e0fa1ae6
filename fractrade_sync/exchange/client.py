"""The Hyperliquid adapter: meta, mids, account state, and the signed writes of leverage and protection, over one
connection to the exchange (endpoint.py, where the orders' requests go too)."""

from __future__ import annotations

import logging
import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable

from hyperliquid.utils.error import ClientError

from fractrade_sync.backoff import exchange_retries
from fractrade_sync.config.secrets import redact_url
from fractrade_sync.config.settings import Settings
from fractrade_sync.errors import ConfigError, TransientError, UnknownSymbol, UnreadableAnswer
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.account_reads import AccountReads
from fractrade_sync.exchange.accounts import Relation, resolve
from fractrade_sync.exchange.dexes import Dexes, dex_of
from fractrade_sync.exchange.endpoint import Endpoint
from fractrade_sync.exchange.rules import Asset
from fractrade_sync.exchange.signing import ActionSigner
from fractrade_sync.logs import RestNotices

if TYPE_CHECKING:  # (the feed is handed in: the client serves reads from its live caches)
    from fractrade_sync.feeds.account import AccountView
    from fractrade_sync.feeds.exchange_feed import ExchangeFeed

STALE_NOTICE_EVERY = 60.0  # seconds between two "cache stale" warnings of a kind: a dead feed must not flood the log
KEEP_WARM_AFTER = 30.0  # seconds of an idle connection before a keep-warm request
MIDS_READY_WAIT = 3.0  # prepare() waits this long for the feed's first snapshot, then goes on (REST fallback)
META_RELOAD_EVERY = 60.0  # an unknown symbol reloads meta at most this often: a flood of them costs one request
CLOCK_WARN = 1.0  # seconds of clock offset to the exchange that earn a warning: ages and expiries depend on it
CLOCK_WARN_EVERY = 600.0  # seconds between two such warnings while it lasts


def asset_of(entry: dict, index: int) -> Asset:
    """One meta universe entry (KeyError, TypeError, ValueError when it cannot be read)."""
    max_leverage = int(entry.get("maxLeverage", 50))
    return Asset(entry["name"], index, int(entry["szDecimals"]), max_leverage, wire.only_isolated(entry))


def expiry_window(http_timeout: float) -> float:
    """Seconds an L1 action stays valid: long enough for every identical resend of the retry schedule (one nonce:
    applied once at most), each attempt its whole HTTP timeout and each wait its longest (with a quarter more); the
    action's own deadline caps it (ActionSigner.payload). The same on every call: the journal's recovery, the
    signer and the sender's settling all reckon with one window."""
    retries = exchange_retries()
    return http_timeout * (retries.tries + 1) + 1.25 * retries.longest() + 1.0


class HyperliquidClient(AccountReads):
    """Reads (live views first) and signed writes; used by one thread at a time (the worker; `check` before any)."""

    def __init__(
        self,
        settings: Settings,
        feed: ExchangeFeed | None = None,
        logger: logging.Logger | None = None,
        on_request: Callable[[str, str, str], None] | None = None,
        signing: ActionSigner | None = None,
    ):
        self.settings = settings
        self.feed = feed  # the live mids, started and stopped by the service (None: every mid over REST)
        self.logger = logger or logging.getLogger("fractrade_sync.exchange")
        self.address = settings.account_address
        self.dexes = Dexes(self._info)  # HIP-3 dexes, loaded when a symbol of one first arrives
        # the account's actions signed (its vault and the clock offset told by relation() and the reads)
        self.signing = signing or ActionSigner(
            settings.private_key.reveal(), settings.is_mainnet, expiry_window(settings.http_timeout)
        )
        self._notice = RestNotices(self.logger, STALE_NOTICE_EVERY)
        # asset index -> name of the main dex, as meta last said: the endpoint names a write's orders by it for the
        # account view (one dict, updated in place by load_meta)
        self._coins: dict[int, str] = {}
        self._assets: dict[str, Asset] = {}
        self._meta_at = float("-inf")  # monotonic time meta was last loaded
        self._leverage: dict[str, tuple[str, int, float]] = {}  # coin -> (type, value, monotonic time read or set)
        self._watched: set[str] = set()  # coins whose leverage the feed was asked to keep subscribed
        self._clock_warned_at = float("-inf")
        # live positions and orders (None: every read over REST); the endpoint (the connection for every read and
        # write) lays each write's answer over the same view (neither reassigns it)
        self.account: AccountView | None = feed.account if feed is not None else None
        self.endpoint = Endpoint(settings, self.account, self._coins, on_request)

    def close(self) -> None:
        """Close the HTTP connection (idempotent)."""
        self.endpoint.close()

    def __repr__(self) -> str:
        return f"HyperliquidClient(api={redact_url(self.settings.api_url)!r}, account={self.address!r})"

    def _info(self, payload: dict) -> Any:
        return self.endpoint.info(payload)

    # ---- reads -----------------------------------------------------------------------------------
    def load_meta(self) -> dict[str, Asset]:
        """Fetch the perp universe; index by name."""
        meta = self._info({"type": "meta"})
        try:
            assets = {a["name"]: asset_of(a, i) for i, a in enumerate(meta["universe"]) if not a.get("isDelisted")}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise TransientError(f"unreadable meta from the exchange: {str(meta)[:120]}") from None
        self._meta_at = time.monotonic()
        self._assets = assets
        self._coins.clear()
        self._coins.update({a.index: a.name for a in self._assets.values()})
        return self._assets

    def asset(self, symbol: str) -> Asset:
        """The asset for a symbol (exact, else case-insensitive); an unknown one reloads meta, at most once a
        META_RELOAD_EVERY (a coin listed since). `dex:COIN`: a HIP-3 dex's (dexes.py)."""
        if dex_of(symbol):
            try:
                found = self.dexes.asset(symbol)
            except UnreadableAnswer as exc:
                raise TransientError(f"unreadable dex list or meta: {exc}") from None
            return found  # (not in self._coins: the account view holds the main dex only)
        for attempt in range(2):
            found = self._assets.get(symbol)
            if found is None:
                matches = [a for name, a in self._assets.items() if name.lower() == symbol.lower()]
                found = matches[0] if len(matches) == 1 else None
            if found is not None:
                return found
            if attempt == 0 and time.monotonic() - self._meta_at >= META_RELOAD_EVERY:
                self.load_meta()
        raise UnknownSymbol(f"unknown symbol '{symbol}': not a perp on this exchange")

    def mid(self, coin: str) -> Decimal:
        """The current mid price of a coin: from the live feed when fresh, else one REST allMids."""
        cached = self.feed.get(coin) if self.feed is not None else None
        if cached is not None:
            return cached
        dex = dex_of(coin)
        if dex and self.feed is not None:
            self.feed.watch_dex(dex)  # its allMids from now on
        mids = self._info({"type": "allMids", "dex": dex} if dex else {"type": "allMids"})
        try:  # the coin is in meta: an answer without its mid is unreadable (a gateway's), not "no such coin"
            mid = Decimal(str(mids[coin]))
        except (KeyError, TypeError, IndexError, InvalidOperation):
            raise TransientError(f"allMids answered without a readable mid for {coin}: {str(mids)[:80]}") from None
        feed = self.feed
        if feed is not None and feed.started:  # (no feed by design, in check and scripts: REST is the plan)
            self._notice(
                "mids",
                "mids cache stale/missing for %s; fetched over REST (feed last alive %.1fs ago, bound %.0fs)",
                coin,
                feed.age(),
                feed.max_age,
            )
        return mid

    def _measured_clock(self, offset: float) -> None:
        """Remember the offset to the exchange's clock; warn (at most every CLOCK_WARN_EVERY) when over CLOCK_WARN.
        https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals (the answer's
        "time"; which instant it is, the request's or the last block's, is not documented: a block lags < 1 s)."""
        self.signing.clock_offset = offset
        now = time.monotonic()
        if abs(offset) > CLOCK_WARN and now - self._clock_warned_at >= CLOCK_WARN_EVERY:
            self._clock_warned_at = now
            self.logger.warning(
                "this machine's clock is %.1fs %s the exchange's: action ages and order expiries depend on it; "
                "fix the clock (NTP: timedatectl set-ntp true)",
                abs(offset),
                "behind" if offset > 0 else "ahead of",
            )

    @property
    def clock_offset(self) -> float | None:
        """Seconds the exchange's clock is ahead of ours, as last measured (None: not yet)."""
        return self.signing.clock_offset

    def relation(self) -> Relation:
        """How the key may trade the account (accounts.py): its own, as its API wallet, or a sub-account or vault of
        either (then every action is signed with vaultAddress). Remembered for signing; TransientError when an
        answer cannot be read."""
        try:
            found = resolve(self._info, self.settings.account_address, self.settings.signer_address)
        except ValueError as exc:
            raise TransientError(f"unreadable account role: {exc}") from None
        self.signing.vault = found.vault
        return found

    # ---- writes (signed by self.signing) -------------------------------------------------------------
    def update_leverage(self, asset: Asset, leverage: int, is_cross: bool) -> dict:
        """Set a coin's leverage; remembers it when the exchange accepts."""
        action = {"type": "updateLeverage", "asset": asset.index, "isCross": is_cross, "leverage": leverage}
        result = self.endpoint.post(self.signing.payload(action))
        if result.get("status") == "ok":
            self._leverage[asset.name] = ("cross" if is_cross else "isolated", leverage, time.monotonic())
        return result

    def modify(self, modifies: list[tuple[int | str, dict]]) -> dict:
        """Modify open orders in place (batchModify: (oid or cloid, the new order wire) each), as the SDK's
        bulk_modify_orders_new sends it."""
        action = {"type": "batchModify", "modifies": [{"oid": ident, "order": wire} for ident, wire in modifies]}
        return self.endpoint.post(self.signing.payload(action))

    def cancel(self, orders: list[tuple[Asset, int]]) -> dict:
        """Cancel open orders by oid, on any coins, in one request."""
        action = {"type": "cancel", "cancels": [{"a": asset.index, "o": oid} for asset, oid in orders]}
        return self.endpoint.post(self.signing.payload(action))

    # ---- readiness -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Before the first action: meta, the wallet's right to trade (ConfigError if not), a warm connection."""
        assets = self.load_meta()
        found = self.relation()
        if found.problem:
            raise ConfigError(
                "HYPERLIQUID_PRIVATE_KEY",
                f"{found.problem}; approve it on Hyperliquid (API page), or set HYPERLIQUID_PUBLIC_ADDRESS to the "
                "key's own account, an account it is an API wallet for, or a sub-account or vault of that account",
            )
        self.logger.info("trading account %s: %s", self.address, found.text)
        self.account_state()  # the order path's connection is open now, and the clock offset measured
        feed = self.feed
        if feed is not None and feed.started and not feed.wait_ready(MIDS_READY_WAIT):
            self.logger.warning(
                "exchange feed not live after %.0fs (%s); mids come over REST until it is", MIDS_READY_WAIT, feed.url
            )
        self.logger.info("Hyperliquid ready: %d perps", len(assets))

    def keep_warm(self, idle: float = KEEP_WARM_AFTER) -> None:
        """Worker thread, when idle: on a connection unused for `idle` seconds, send one light request (a
        clearinghouseState, weight 2, which also measures the clock), so the server never closes it and the next
        order pays no new handshake. Leverage and positions come from the subscriptions: nothing is re-read."""
        if self.endpoint.idle_for(time.monotonic()) < idle:
            return
        try:
            self.account_state()
        except (TransientError, ClientError) as exc:
            self.logger.debug("keep-warm request failed (%s); the next order reconnects", type(exc).__name__)
