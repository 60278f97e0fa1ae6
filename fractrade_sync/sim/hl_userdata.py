"""Hyperliquid's user-data feeds on the simulator's /ws: orderUpdates, userFills, clearinghouseState, openOrders and
activeAssetData (webData2 is refused: hl_server).

The state journals each change (hl_state); `flush()` turns the journal into messages under the state lock and
queues them, so they leave in the order the state changed; one pusher thread sends them, never the thread that
answers the HTTP request (on the exchange too an order's answer and its pushes race).

An order's and a fill's shapes are hl_order_shapes.py's; the channels' messages follow the API docs' "Websocket >
Subscriptions" page
(https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket/subscriptions), the Python SDK
(hyperliquid-dex/hyperliquid-python-sdk: hyperliquid/utils/types.py, websocket_manager.py) and, where the docs
give no type, nktkas/hyperliquid, whose types are checked against the live API (src/api/subscription/_methods/
clearinghouseState.ts, openOrders.ts, activeAssetData.ts, userFills.ts, orderUpdates.ts). Anything no source shows
is marked "unconfirmed".
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import re
import threading
import time
from typing import Iterator

from fractrade_sync.sim import hl_dexes, hl_order_shapes, hl_views, wsserver
from fractrade_sync.sim.hl_model import COINS
from fractrade_sync.sim.hl_state import HyperliquidState

log = logging.getLogger(__name__)

EVENTS = ("orderUpdates", "userFills")  # what happened
ACCOUNT = ("clearinghouseState", "openOrders", "activeAssetData")  # the state as it is now
CHANNELS = EVENTS + ACCOUNT
PERIODIC = ("clearinghouseState", "openOrders")  # what set_account_push_interval pushes unprompted
DEXES = hl_dexes.NAMES  # the main perps ("") and the HIP-3 dexes
SNAPSHOT_FILLS = 2000  # how many fills the userFills snapshot carries: unconfirmed (the info endpoint's cap)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_IDLE_WAIT = 0.1  # seconds; the pusher re-checks stop this often

Key = tuple[str, str, str]  # (channel, user in lower case, dex or coin: "" where the channel has neither)


def subscription_key(sub) -> Key | None:
    """(channel, user, extra) of a user-data subscription, None if it is not one: {"type": "orderUpdates",
    "user": "0x..."}, clearinghouseState / openOrders with an optional "dex" ("" for the main perps; nktkas/hyperliquid
    sends it always), activeAssetData with a "coin"."""
    if not isinstance(sub, dict) or sub.get("type") not in CHANNELS:
        return None
    user = sub.get("user")
    if not isinstance(user, str) or not _ADDRESS.fullmatch(user):
        return None
    channel = sub["type"]
    extra = ""
    if channel in ("clearinghouseState", "openOrders"):
        extra = sub.get("dex", "")
        if extra not in DEXES:
            return None  # an unknown dex: the live answer is unconfirmed
    elif channel == "activeAssetData":
        extra = sub.get("coin")
        if extra not in COINS and extra not in hl_dexes.COINS:
            return None  # an unknown coin: the live answer is unconfirmed
    return channel, user.lower(), extra


def account_message(st: HyperliquidState, key: Key) -> str:
    """The state a clearinghouseState / openOrders / activeAssetData subscriber is told: the /info answer itself,
    wrapped as nktkas/hyperliquid types the events ({dex, user, clearinghouseState}, {dex, user, orders}, and
    activeAssetData bare)."""
    channel, user, extra = key
    if channel == "clearinghouseState":
        data = {
            "dex": extra,
            "user": user,
            "clearinghouseState": hl_views.clearinghouse(st, hl_dexes.account_key(user, extra)),
        }
    elif channel == "openOrders":
        data = {"dex": extra, "user": user, "orders": hl_views.open_orders(st, hl_dexes.account_key(user, extra))}
    else:
        data = hl_views.active_asset_data(st, user, extra)
    return _message(channel, data)


class UserFeed:
    """The user-data subscriptions of every /ws connection, and the one queue their pushes leave through."""

    def __init__(self, state: HyperliquidState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # the queue's head is due, or stop
        self._stop = threading.Event()
        self._subs: dict[object, set[Key]] = {}
        self._queue: collections.deque[tuple[float, Key, tuple, str]] = collections.deque()  # due, key, conns, text
        self._delay = 0.0
        self._paused = False
        self._snapshots = True
        self._interval = 0.0
        self._next_tick = 0.0
        self._pushes = 0
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------
    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """End the pusher (bounded); what is still queued is dropped, as a closing exchange would."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- controls -------------------------------------------------------------
    def set_delay(self, seconds: float) -> None:
        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError(f"seconds must be 0 or more, not {seconds}")
        with self._lock:
            self._delay = seconds

    def pause(self, paused: bool) -> None:
        if not isinstance(paused, bool):
            raise ValueError(f"paused must be true or false, not {paused!r}")
        with self._lock:
            self._paused = paused

    def set_snapshots(self, on: bool) -> None:
        """Whether the account feeds send the state at once on subscribe (hl_server.set_userdata_snapshots)."""
        if not isinstance(on, bool):
            raise ValueError(f"on must be true or false, not {on!r}")
        with self._lock:
            self._snapshots = on

    def set_interval(self, seconds: float) -> None:
        """Push clearinghouseState and openOrders every `seconds` too (0: only on a change)."""
        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError(f"seconds must be 0 (off) or more, not {seconds}")
        with self._ready:
            self._interval = seconds
            self._next_tick = time.monotonic() + self._interval
            self._ready.notify_all()

    def pushes(self) -> int:
        """User-data messages sent, one per connection (a peer that closed meanwhile still counts)."""
        with self._lock:
            return self._pushes

    # ---- subscriptions (called from /ws reader threads) ------------------------
    def subscribe(self, conn, key: Key) -> None:
        """Add the subscription and queue its snapshot. userFills: {"isSnapshot": true, ...} ("The subscription ack
        provides a snapshot of previous data for time series data (e.g. user fills)", docs). clearinghouseState,
        openOrders, activeAssetData: the state at once unless set_snapshots(False) (seen live for
        clearinghouseState by haocn-ops/hyperopen; only implied for the other two by nktkas' live tests).
        orderUpdates: none (the docs tag snapshots isSnapshot, which a WsOrder[] cannot carry: unconfirmed)."""
        with self._state.lock:
            self.flush()  # what changed before goes to the earlier subscribers; this one gets the snapshot
            with self._lock:
                self._subs.setdefault(conn, set()).add(key)
                snapshots = self._snapshots
            channel, user, _extra = key
            if channel in ACCOUNT and snapshots:
                self._enqueue(key, (conn,), account_message(self._state, key))
            elif channel == "userFills":
                fills = [
                    hl_order_shapes.ws_fill(f)
                    for f in [f for f in self._state.fills if hl_dexes.owner(f.user) == user][-SNAPSHOT_FILLS:]
                ]
                self._enqueue(key, (conn,), _message("userFills", {"isSnapshot": True, "user": user, "fills": fills}))

    def unsubscribe(self, conn, key: Key) -> None:
        with self._lock:
            self._subs.get(conn, set()).discard(key)

    def drop(self, conn) -> None:
        """Forget a closed connection's subscriptions."""
        with self._lock:
            self._subs.pop(conn, None)

    # ---- changes -> pushes ---------------------------------------------------------
    @contextlib.contextmanager
    def changes(self) -> Iterator[None]:
        """Hold the state lock for a change, then queue its pushes before anyone can make the next one."""
        with self._state.lock:
            try:
                yield
            finally:
                self.flush()

    def flush(self) -> None:
        """Turn the state's journal into pushes, per user in order: orderUpdates (the orders that changed),
        userFills (the new fills), then the state as it is now: clearinghouseState, openOrders (when an order
        changed), activeAssetData for each subscribed coin (free margin, so every coin's sizes, moves with any
        change). orderUpdates and userFills carry every dex's (they take no "dex"; unconfirmed), clearinghouseState and
        openOrders only the dex that changed (the journal names the account: "xyz:0x…" on a HIP-3 dex)."""
        st = self._state
        with st.lock:
            journal = st.journal
            st.journal = []
            if not journal:
                return
            with self._lock:
                keys = {key for held in self._subs.values() for key in held}
            users: dict[str, list[tuple[str, object, str]]] = {}
            for kind, held, item in journal:
                user, dex = hl_dexes.split_key(held)
                users.setdefault(user, []).append((kind, item, dex))
            for user, items in users.items():
                mine = sorted(key for key in keys if key[1] == user)
                if not mine:
                    continue
                orders = hl_order_shapes.unrepeated([item for kind, item, _dex in items if kind == "order"])
                fills = [hl_order_shapes.ws_fill(item) for kind, item, _dex in items if kind == "fill"]
                changed = {dex for _kind, _item, dex in items}
                ordered = {dex for kind, _item, dex in items if kind == "order"}
                if orders and ("orderUpdates", user, "") in keys:
                    self._enqueue(("orderUpdates", user, ""), None, _message("orderUpdates", orders))
                if fills and ("userFills", user, "") in keys:  # no isSnapshot: nktkas/hyperliquid types it
                    # `isSnapshot?: true`; the docs say streaming updates carry `isSnapshot: false`
                    key = ("userFills", user, "")
                    self._enqueue(key, None, _message("userFills", {"user": user, "fills": fills}))
                for channel in ACCOUNT:
                    for key in (k for k in mine if k[0] == channel):
                        dexes = ordered if channel == "openOrders" else changed
                        if channel == "activeAssetData" or key[2] in dexes:
                            self._enqueue(key, None, account_message(st, key))

    def _enqueue(self, key: Key, conns: tuple | None, text: str) -> None:
        """Queue one message for `conns`, or for every connection subscribed to `key` now; dropped while paused."""
        with self._ready:
            if self._paused:
                return
            if conns is None:
                conns = tuple(conn for conn, held in self._subs.items() if key in held)
            if conns:
                self._queue.append((time.monotonic() + self._delay, key, conns, text))
                self._ready.notify_all()

    # ---- the pusher thread ------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
                item = self._take()
                if item is not None:
                    self._deliver(*item)
            except Exception:  # one bad push never ends the feed
                log.error("user-data push failed", exc_info=True)

    def _take(self) -> tuple[float, Key, tuple, str] | None:
        """The queue's head once it is due; None on stop or when a periodic push is due."""
        with self._ready:
            while not self._stop.is_set():
                now = time.monotonic()
                if self._queue and self._queue[0][0] <= now:
                    return self._queue.popleft()
                if self._interval and now >= self._next_tick:
                    return None
                wait = self._queue[0][0] - now if self._queue else _IDLE_WAIT
                if self._interval:
                    wait = min(wait, self._next_tick - now)
                self._ready.wait(min(wait, _IDLE_WAIT))
            return None

    def _deliver(self, _due: float, key: Key, conns: tuple, text: str) -> None:
        """Send to those of `conns` still subscribed; nothing while paused (the feed is silently dead)."""
        with self._lock:
            if self._paused:
                return
            conns = tuple(conn for conn in conns if key in self._subs.get(conn, ()))
            self._pushes += len(conns)  # counted first: whoever has read a push finds it counted
        wsserver.broadcast(conns, text)  # outside the lock: a slow reader must not hold up a change

    def _tick(self) -> None:
        """clearinghouseState and openOrders to their subscribers each `interval` seconds, changed or not (the
        exchange pushes clearinghouseState about every 2 s, one live observation in haocn-ops/hyperopen; openOrders'
        cadence is unconfirmed)."""
        with self._lock:
            if not self._interval or time.monotonic() < self._next_tick:
                return
            self._next_tick = time.monotonic() + self._interval
            keys = sorted({k for held in self._subs.values() for k in held if k[0] in PERIODIC})
        with self._state.lock:
            self.flush()
            for key in keys:
                self._enqueue(key, None, account_message(self._state, key))


def _message(channel: str, data) -> str:
    return json.dumps({"channel": channel, "data": data})
