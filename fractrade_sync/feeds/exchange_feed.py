"""The exchange feed thread: Hyperliquid's WebSocket, one socket for the market's allMids (-> a live {coin: mid}
cache) and the account's own channels (account_feed.py -> the live AccountView)."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Callable

import websocket

from fractrade_sync.backoff import reconnect
from fractrade_sync.config.secrets import redact_url
from fractrade_sync.errors import SubscriptionDead
from fractrade_sync.exchange.transport import cut
from fractrade_sync.feeds.account import AccountView
from fractrade_sync.feeds.account_feed import USER_CHANNELS, AccountChannels

# Staleness bound. Hyperliquid pushes allMids on every block (sub-second on mainnet) and only when a mid changes,
# so a quiet socket is not a stale one: a mid counts as fresh while the subscribed socket has proven itself alive
# (an allMids push or an answer to our ping) within this many seconds. Past it, the client fetches over REST.
MAX_MID_AGE = 5.0
PING_INTERVAL = 30.0  # the server drops a connection that has sent nothing for 60 s; ping well inside that
RECV_SLICE = 0.5  # recv() timeout: how often the loop looks at the stop flag and the ping schedule
SUBSCRIBE = json.dumps({"method": "subscribe", "subscription": {"type": "allMids"}})
PING = json.dumps({"method": "ping"})


def mids_ws_url(api_url: str) -> str:
    """The market-data socket of an API base URL, as the SDK derives it: http->ws, https->wss, path /ws."""
    base = api_url.rstrip("/")
    scheme, sep, rest = base.partition("://")
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
    return f"{ws_scheme}{sep}{rest}/ws"


class ExchangeFeed:
    """Hyperliquid's WebSocket: the mids and the account's channels. One thread holds the allMids subscription open
    (ping, reconnect with backoff); get() is lock-free. Given a user, the same socket carries that account's user-data
    channels into its live view (`account`, built here). The service starts and stops it like its other threads."""

    def __init__(
        self,
        api_url: str,
        logger: logging.Logger | None = None,
        *,
        max_age: float = MAX_MID_AGE,
        ping_interval: float = PING_INTERVAL,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        user: str | None = None,
        on_fills: Callable[[list], object] | None = None,
    ):
        self.url = mids_ws_url(api_url)
        self.logger = logger or logging.getLogger("fractrade_sync.market")
        self.max_age = max_age
        self.ping_interval = ping_interval
        # in a quiet market nothing is pushed: ping after half the staleness bound of silence to prove liveness
        self.idle_ping = min(ping_interval, max_age / 2)
        self.dead_after = max(3 * self.idle_ping, 10.0)  # silent this long despite our pings: reconnect
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.backoff = reconnect()
        self.connected = threading.Event()
        self.ready = threading.Event()  # set once the first snapshot of mids has arrived
        self.messages = 0
        self.reconnects = 0
        # the reader thread swaps in a whole new dict per push, so readers need no lock (reference reads are atomic)
        self._mids: dict[str, str] = {}
        self._dex_mids: dict[str, dict[str, str]] = {}  # a HIP-3 dex's own allMids (swapped whole, as _mids)
        self._dexes: set[str] = set()  # the dexes whose allMids are wanted (watch_dex)
        self._dex_at: dict[str, float] = {}  # when each dex's allMids last came
        self._alive_at = float("-inf")  # last message on a subscribed socket
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._thread: threading.Thread | None = None
        self.generation = 0  # connections made: the account view trusts a snapshot of the current one only
        self._asked_dexes: set[str] = set()  # the dexes whose allMids are subscribed on the current socket
        # given a user, the live view of its account and its subscriptions on this socket (account_feed.py); a
        # silently dead subscription stalls the view, and the feed reconnects and subscribes again
        self.account = AccountView(live=self._account_live, on_stall=self._cut) if user else None
        self.channels = AccountChannels(self.account, user, self.logger, clock, on_fills) if self.account else None

    def __repr__(self) -> str:
        return f"ExchangeFeed({redact_url(self.url)!r}, coins={len(self._mids)}, connected={self.connected.is_set()})"

    # ---- reading -------------------------------------------------------------------------------
    def get(self, coin: str, max_age: float | None = None) -> Decimal | None:
        """The coin's mid if the feed proved it current within max_age seconds; None when missing or stale."""
        bound = self.max_age if max_age is None else max_age
        if self.clock() - self._alive_at > bound:
            return None
        dex = coin.partition(":")[0].lower() if ":" in coin else ""
        if dex and self.clock() - self._dex_at.get(dex, float("-inf")) > bound:
            return None  # (a dex's mids are vouched for by its own pushes only)
        raw = (self._dex_mids.get(dex) or {}).get(coin) if dex else self._mids.get(coin)
        if raw is None:
            return None
        try:
            return Decimal(str(raw))
        except (InvalidOperation, TypeError):
            return None

    def age(self) -> float:
        """Seconds since the feed last proved itself alive (inf before the first message)."""
        return self.clock() - self._alive_at

    def _account_live(self) -> bool:
        """The account's snapshot came on the current socket, and that socket proved itself alive in time."""
        account = self.account
        return account is not None and account.generation == self.generation and self.age() <= self.max_age

    @property
    def started(self) -> bool:
        return self._thread is not None

    # ---- life ----------------------------------------------------------------------------------
    def start(self) -> ExchangeFeed:
        """Start the feed thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="feed")
                self._thread.start()
        return self

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to timeout for the first snapshot of mids."""
        return self.ready.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the socket and join the thread (bounded)."""
        self._stop.set()
        self._cut()
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.2)
            self._cut()  # a stop that raced a connect in progress
        if thread.is_alive():
            self.logger.warning("exchange feed did not stop within %.1fs", timeout)

    def _cut(self) -> None:
        """Shut the raw socket down: wakes a blocked recv() or connect at once."""
        with self._lock:
            ws = self._ws
        cut(getattr(ws, "sock", None))

    # ---- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            # UTF-8 is checked by the C decoder in recv(): websocket-client's own check is pure Python and holds the
            # GIL over every allMids push, several KB many times a minute (BENCHMARKS.md, "the receive side")
            ws = websocket.WebSocket(skip_utf8_validation=True)
            with self._lock:
                self._ws = ws
            connected_at = None
            try:
                if self._stop.is_set():
                    break
                ws.connect(self.url, timeout=self.connect_timeout)
                self.generation += 1
                self._asked_dexes = set()
                ws.send(SUBSCRIBE)
                self._ask(ws)
                if self.channels is not None:
                    self.channels.connected(ws, self.generation)
                connected_at = self.clock()
                self.connected.set()
                self.logger.info("exchange feed connected (%s)", redact_url(self.url))
                self._serve(ws)
            except (websocket.WebSocketException, OSError, ValueError, SubscriptionDead) as exc:
                if not self._stop.is_set():
                    self.logger.warning("exchange feed: %s: %s", type(exc).__name__, str(exc)[:200])
            except Exception:
                self.logger.exception("exchange feed loop failed")
            finally:
                self.connected.clear()
                if self.account is not None:
                    self.account.lost()
                with self._lock:
                    self._ws = None
                ws.shutdown()
            if self._stop.is_set():
                break
            stable = connected_at is not None and self.clock() - connected_at >= self.backoff.stable_after
            delay = self.backoff.next_delay(stable=stable)
            self.reconnects += 1
            self.logger.warning("exchange feed lost; reconnecting in %.2fs (mids fall back to REST meanwhile)", delay)
            self._stop.wait(delay)
        self.logger.debug("exchange feed stopped")

    def _serve(self, ws: websocket.WebSocket) -> None:
        """Read pushes until the socket fails, goes silent or we stop; ping on schedule."""
        ws.settimeout(min(RECV_SLICE, self.idle_ping / 2))  # wake often enough to keep the ping schedule
        last_ping = last_message = last_refresh = self.clock()
        snapshot_here = False  # a pong vouches for the mids only once this socket has delivered its own snapshot
        while not self._stop.is_set():
            try:
                text = ws.recv()
            except websocket.WebSocketTimeoutException:
                text = None
            except UnicodeDecodeError:  # one message that is not UTF-8: skipped, the stream itself is intact
                self.logger.debug("exchange feed: a message that is not UTF-8 text, skipped")
                text = None  # it may have been a push: see below
                snapshot_here = False
                if self.account is not None:
                    self.account.lost()
            now = self.clock()
            if text:
                last_message = now
                channel = self.take(text)
                if channel is None and self.account is not None:
                    self.account.lost()  # it may have been a user-data push: the view is behind until a snapshot
                if channel is None:
                    # unreadable, or an allMids without its mids: if a push was lost, the cache is behind, so pongs
                    # stop vouching for it until a whole allMids arrives (meanwhile mids go stale -> REST)
                    snapshot_here = False
                elif channel == "allMids":
                    snapshot_here = True
                    self._alive_at = now
                    self.ready.set()
                elif channel == "pong" and snapshot_here:
                    self._alive_at = now  # the subscription is live and no mid changed since the last push
            silent = now - last_message
            if silent > self.dead_after:
                raise websocket.WebSocketTimeoutException(f"no message for {silent:.0f}s despite pings")
            since_ping = now - last_ping
            if since_ping >= self.ping_interval or (silent >= self.idle_ping and since_ping >= self.idle_ping):
                ws.send(PING)
                last_ping = now
            self._ask(ws)
            if self.channels is not None:
                self.channels.ask(ws, again=True)
                last_refresh = self.channels.refreshed(ws, last_refresh)

    def watch_dex(self, dex: str) -> None:
        """Keep a HIP-3 dex's allMids subscribed from now on (any thread; the feed thread sends the request)."""
        if dex not in self._dexes:
            self._dexes = self._dexes | {dex}

    def watch(self, coin: str) -> None:
        """Keep the coin's activeAssetData (its leverage) subscribed from now on (any thread)."""
        if self.channels is not None:
            self.channels.watch(coin)

    def _ask(self, ws: websocket.WebSocket) -> None:
        """Subscribe the allMids of every watched HIP-3 dex not subscribed on this socket yet."""
        for dex in self._dexes - self._asked_dexes:
            self._asked_dexes.add(dex)
            ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "allMids", "dex": dex}}))

    def take(self, text: str | bytes) -> str | None:
        """Take one message; returns its channel ('allMids' only when it carried a usable snapshot)."""
        try:
            msg = json.loads(text)
            channel = msg.get("channel")
        except (ValueError, AttributeError):
            self.logger.debug("exchange feed: unreadable message %r", text[:120])
            return None
        self.messages += 1
        if channel == "allMids":
            data = msg.get("data") or {}
            mids = data.get("mids") if isinstance(data, dict) else None
            if not isinstance(mids, dict):
                return None
            dex = data.get("dex") or ""
            if dex:  # a HIP-3 dex's (its coins "xyz:NVDA"): a dex of its own, never the main dex's mids
                self._dex_mids = {**self._dex_mids, str(dex).lower(): mids}
                self._dex_at[str(dex).lower()] = self.clock()
                return "dexMids"
            self._mids = mids  # swap, never mutate: get() may be reading the old one
        elif channel in USER_CHANNELS and self.channels is not None:
            self.channels.push(channel, msg.get("data"))
        elif channel == "error" and (self.channels is None or not self.channels.refused(msg.get("data"))):
            self.logger.warning("exchange feed: the exchange says %s", str(msg.get("data"))[:200])
        return channel
