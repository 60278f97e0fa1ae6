"""The mids feed thread: Hyperliquid's allMids market-data WebSocket -> a live {coin: mid} cache."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Callable

import websocket

from . import wire
from .account import AccountView
from .backoff import reconnect
from .transport import cut
from .values import redact_url

# Staleness bound. Hyperliquid pushes allMids on every block (sub-second on mainnet) and only when a mid changes,
# so a quiet socket is not a stale one: a mid counts as fresh while the subscribed socket has proven itself alive
# (an allMids push or an answer to our ping) within this many seconds. Past it, the client fetches over REST.
MAX_MID_AGE = 5.0
PING_INTERVAL = 30.0  # the server drops a connection that has sent nothing for 60 s; ping well inside that
RECV_SLICE = 0.5  # recv() timeout: how often the loop looks at the stop flag and the ping schedule
SUBSCRIBE = json.dumps({"method": "subscribe", "subscription": {"type": "allMids"}})
# the account's own channels, on the same socket: positions (clearinghouseState) and open orders (openOrders) of the
# main dex, and the events that say an order changed (orderUpdates, userFills); leverage per coin in use comes from
# activeAssetData. Never webData2: refused as a subscription since 2026 (EXCHANGE.md).
ACCOUNT_CHANNELS = ("clearinghouseState", "openOrders", "orderUpdates", "userFills")
USER_CHANNELS = (*ACCOUNT_CHANNELS, "activeAssetData")
# seconds without a clearinghouseState push before it is asked for again (unsubscribe, subscribe: a snapshot comes on
# subscribing, EXCHANGE.md), so that a silently dead subscription shows and a quiet account's view stays proven
REFRESH_AFTER = 5.0
ASK_AGAIN_AFTER = 600.0  # seconds before a subscription the exchange refused is asked for again (not in a loop)
# the error frames that refuse a subscription (EXCHANGE.md); "Already subscribed: {...}" refuses nothing
REFUSALS = ("Error parsing JSON into valid websocket request", "Invalid subscription")
PING = json.dumps({"method": "ping"})


class RestNotices:
    """A WARNING when a live cache could not answer and REST did, at most once a `every` seconds per kind (a dead
    feed must not flood the log), counting the ones in between."""

    def __init__(self, logger: logging.Logger, every: float = 60.0):
        self.logger, self.every = logger, every
        self._at: dict[str, float] = {}
        self._unnoticed: dict[str, int] = {}

    def __call__(self, kind: str, text: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._at.get(kind, float("-inf")) < self.every:
            self._unnoticed[kind] = self._unnoticed.get(kind, 0) + 1
            return
        more = self._unnoticed.pop(kind, 0)
        self.logger.warning(text + (f"; {more} more since the last notice" if more else ""), *args)
        self._at[kind] = now


def mids_ws_url(api_url: str) -> str:
    """The market-data socket of an API base URL, as the SDK derives it: http->ws, https->wss, path /ws."""
    base = api_url.rstrip("/")
    scheme, sep, rest = base.partition("://")
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
    return f"{ws_scheme}{sep}{rest}/ws"


def _user_request(method: str, channel: str, user: str, coin: str | None = None) -> str:
    subscription: dict = {"type": channel, "user": user}
    if channel in ("clearinghouseState", "openOrders"):
        subscription["dex"] = ""
    if coin is not None:
        subscription["coin"] = coin
    return json.dumps({"method": method, "subscription": subscription})


def refused_channel(data: object) -> str | None:
    """Which of our user-data subscriptions an error frame refuses: the exchange quotes the request in its text
    ("Error parsing JSON into valid websocket request: {...}", EXCHANGE.md); None when it names none of them."""
    text = str(data)
    if not text.startswith(REFUSALS):  # e.g. "Already subscribed: {...}" refuses nothing
        return None
    for channel in (*USER_CHANNELS, "webData2"):
        if f'"type":"{channel}"' in text.replace(" ", "") or f"'type': '{channel}'" in text:
            return channel
    return None


class MidsFeed:
    """One thread holds the allMids subscription open (ping, reconnect with backoff); get() is lock-free. Given an
    AccountView, the same socket carries the account's user-data channels into it. The service starts and stops it
    like its other threads."""

    def __init__(
        self,
        api_url: str,
        logger: logging.Logger | None = None,
        *,
        max_age: float = MAX_MID_AGE,
        ping_interval: float = PING_INTERVAL,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        account: AccountView | None = None,
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
        self.account = account if user else None
        self.user = user or ""
        self.on_fills = on_fills  # told of each userFills push's fills (the ledger), on this thread
        self._subscribed_at = float("-inf")
        self._refused_at: dict[str, float] = {}  # subscription (channel, or activeAssetData:COIN) -> when refused
        self._coins: set[str] = set()  # coins whose activeAssetData is wanted (the worker's watch())
        self._asked: set[str] = set()  # of those, subscribed on the current socket (feed thread only)
        self._asked_dexes: set[str] = set()  # the dexes whose allMids are subscribed on the current socket
        if self.account is not None:
            self.account.live = self._account_live
            self.account.on_stall = self._cut  # a silently dead subscription: reconnect, subscribe again

    def __repr__(self) -> str:
        return f"MidsFeed({redact_url(self.url)!r}, coins={len(self._mids)}, connected={self.connected.is_set()})"

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
    def start(self) -> MidsFeed:
        """Start the feed thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="mids-feed")
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
            self.logger.warning("mids feed did not stop within %.1fs", timeout)

    def _cut(self) -> None:
        """Shut the raw socket down: wakes a blocked recv() or connect at once."""
        with self._lock:
            ws = self._ws
        cut(getattr(ws, "sock", None))

    # ---- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            # UTF-8 is checked by the C decoder in recv(): websocket-client's own check is pure Python, about 0.2 ms
            # per KB while holding the GIL, and Hyperliquid's allMids runs to several KB many times a minute
            ws = websocket.WebSocket(skip_utf8_validation=True)
            with self._lock:
                self._ws = ws
            connected_at = None
            try:
                if self._stop.is_set():
                    break
                ws.connect(self.url, timeout=self.connect_timeout)
                self.generation += 1
                self._subscribed_at = self.account.clock() if self.account is not None else 0.0
                self._asked, self._asked_dexes = set(), set()
                ws.send(SUBSCRIBE)
                self._ask(ws, ACCOUNT_CHANNELS if self.account is not None else ())
                connected_at = self.clock()
                self.connected.set()
                self.logger.info("mids feed connected (%s)", redact_url(self.url))
                self._serve(ws)
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                if not self._stop.is_set():
                    self.logger.warning("mids feed: %s: %s", type(exc).__name__, str(exc)[:200])
            except Exception:
                self.logger.exception("mids feed loop failed")
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
            self.logger.warning("mids feed lost; reconnecting in %.2fs (mids fall back to REST meanwhile)", delay)
            self._stop.wait(delay)
        self.logger.debug("mids feed stopped")

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
                self.logger.debug("mids feed: a message that is not UTF-8 text, skipped")
                text, snapshot_here = None, False  # it may have been a push: see below
                if self.account is not None:
                    self.account.lost()
            now = self.clock()
            if text:
                last_message = now
                channel = self._on_message(text)
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
            self._ask(ws, ACCOUNT_CHANNELS if self.account is not None else (), again=True)
            if self.account is not None:
                last_refresh = self._refreshed(ws, last_refresh)

    def _refreshed(self, ws: websocket.WebSocket, last: float) -> float:
        """Ask for clearinghouseState again when none came for REFRESH_AFTER (and not more often); returns when it
        last asked. Past the view's snapshot bound despite asking: the subscription is dead, a new socket."""
        account = self.account
        now = account.clock()
        quiet = now - account.positions_at
        if "clearinghouseState" in account.refused or quiet < REFRESH_AFTER or now - last < REFRESH_AFTER:
            return last
        bound = account.max_snapshot_age
        if account.snapshots and quiet > 2 * bound and now - self._subscribed_at > 2 * bound:
            raise websocket.WebSocketTimeoutException(f"no clearinghouseState for {quiet:.0f}s despite asking again")
        for method in ("unsubscribe", "subscribe"):
            ws.send(_user_request(method, "clearinghouseState", self.user))
        return now

    def watch_dex(self, dex: str) -> None:
        """Keep a HIP-3 dex's allMids subscribed from now on (any thread; the feed thread sends the request)."""
        if dex not in self._dexes:
            self._dexes = self._dexes | {dex}

    def watch(self, coin: str) -> None:
        """Keep the coin's activeAssetData (its leverage) subscribed from now on (any thread; the feed thread sends
        the request)."""
        if self.account is not None and coin not in self._coins:
            self._coins = self._coins | {coin}  # swap, never mutate: the feed thread iterates it

    def _ask(self, ws: websocket.WebSocket, channels: tuple[str, ...], again: bool = False) -> None:
        """Subscribe what is not subscribed on this socket yet: the account's channels (on connecting; a refused one
        again only after ASK_AGAIN_AFTER) and the activeAssetData of every watched coin."""
        now = self.clock()
        for dex in self._dexes - self._asked_dexes:
            self._asked_dexes.add(dex)
            ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "allMids", "dex": dex}}))
        if self.account is None:
            return
        wanted = [(c, None) for c in channels] + [("activeAssetData", coin) for coin in self._coins]
        for channel, coin in wanted:
            name = channel if coin is None else f"{channel}:{coin}"
            refused = self._refused_at.get(name)
            if refused is not None and now - refused < ASK_AGAIN_AFTER:
                continue
            if name in self._asked and refused is None:
                continue
            if again and coin is None and refused is None:
                continue  # (the account's channels are asked on connecting)
            self._refused_at.pop(name, None)
            self._asked.add(name)
            ws.send(_user_request("subscribe", channel, self.user, coin))

    def _refused(self, data: object) -> None:
        """An error frame: one WARNING naming the subscription it refuses; asked again in ASK_AGAIN_AFTER."""
        channel = refused_channel(data)
        if channel is None or self.account is None:
            self.logger.warning("mids feed: the exchange says %s", str(data)[:200])
            return
        coin = None
        if channel == "activeAssetData":
            coin = next((c for c in self._coins if f'"coin":"{c}"' in str(data).replace(" ", "")), None)
        name = channel if coin is None else f"{channel}:{coin}"
        if name not in self._refused_at:
            self.logger.warning("account feed: the exchange refused the %s subscription (%s); what it would give "
                                "comes over REST; asked again in %.0f minutes", name, str(data)[:160],
                                ASK_AGAIN_AFTER / 60)  # fmt: skip
        self._refused_at[name] = self.clock()
        if channel in ACCOUNT_CHANNELS:
            self.account.refuse(channel)

    def _tell_fills(self, fills: list) -> None:
        try:
            self.on_fills(fills)  # type: ignore[misc]
        except Exception:  # (e.g. a journal that cannot be written): the feed goes on; the ledger reads them later
            self.logger.exception("account feed: the fills of a userFills push could not be recorded")

    def _account_push(self, channel: str, data: object) -> None:
        """One user-data push, read strictly (wire.py) into the account view; unreadable: the view is behind."""
        account = self.account
        try:
            if channel == "clearinghouseState":
                state = wire.user_push(data, "clearinghouseState", self.user)
                held, when = wire.positions(state), wire.state_time(state)
                account.on_positions(state, held, when, self.generation, self._subscribed_at)
            elif channel == "openOrders":
                orders = wire.open_orders(wire.user_push(data, "orders", self.user))
                account.on_orders(orders, self.generation, self._subscribed_at)
            elif channel == "activeAssetData":
                coin = data.get("coin") if isinstance(data, dict) else None
                if not isinstance(coin, str) or str(data.get("user", "")).lower() != self.user.lower():
                    raise wire.Unreadable(f"activeAssetData for another account or coin: {str(data)[:80]}")
                account.on_leverage(coin, wire.leverage(data, coin))
            else:
                account.on_events(channel, data)
                if channel == "userFills" and self.on_fills is not None and isinstance(data, dict):
                    self._tell_fills(data.get("fills") or [])
        except wire.Unreadable as exc:
            account.lost()
            self.logger.warning("account feed: a %s push that cannot be read (%s); REST until the next one", channel,
                                exc)  # fmt: skip

    def _on_message(self, text: str | bytes) -> str | None:
        """Take one message; returns its channel ('allMids' only when it carried a usable snapshot)."""
        try:
            msg = json.loads(text)
            channel = msg.get("channel")
        except (ValueError, AttributeError):
            self.logger.debug("mids feed: unreadable message %r", text[:120])
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
        elif channel in USER_CHANNELS and self.account is not None:
            self._account_push(channel, msg.get("data"))
        elif channel == "error":
            self._refused(msg.get("data"))
        return channel
