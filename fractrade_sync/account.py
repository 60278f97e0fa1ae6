"""Live account state: positions and open orders from Hyperliquid's user-data WebSocket, with this service's own
changes laid over it until the feed shows them. Trusted only while proven fresh; the client reads REST otherwise.

The feed thread (market.py) hands in webData2 snapshots and the order and fill events; the worker reads positions
and open orders, and records what its own requests changed the moment their answers come (`applied`): the
exchange's answer reaches us before, or after, its push. An own change stays laid over the snapshot until the feed
reported its order (orderUpdates / userFills) and a webData2 came after that report; one the feed never confirms
within CONFIRM_WITHIN means the subscription may be silently dead: the view is distrusted, the feed resubscribes,
and reads go to REST until a new snapshot arrives. Message shapes: the SDK's hyperliquid/utils/types.py
(WsOrder, WsFill / userFills) and https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket/
subscriptions (webData2 carries clearinghouseState and openOrders). RELIABILITY.md lists the assumptions."""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

CONFIRM_WITHIN = 5.0  # seconds the feed may take to show an own change before the view stops being trusted
# a snapshot older than this is not trusted: the feed asks for a new one after REFRESH_AFTER seconds without one
# (a pong proves the socket; only a snapshot proves the user-data subscription on it)
MAX_SNAPSHOT_AGE = 15.0
SEEN_KEPT = 2048  # order ids the feed reported, kept to confirm own changes (far more than one batch)
ORDER_TYPES = {"sl": "Stop Market", "tp": "Take Profit Market"}  # frontendOpenOrders' orderType of our triggers


@dataclass
class Change:
    """What one answer of the exchange changed, laid over the snapshot until the feed shows it."""

    at: float  # monotonic
    ids: frozenset  # its order's oid and cloid: the feed's report of one of them confirms a fill or a new order
    coin: str
    delta: Decimal = Decimal(0)  # position change (a fill)
    placed: dict | None = None  # an order now resting (frontendOpenOrders shape)
    gone: frozenset = field(default_factory=frozenset)  # oids / cloids no longer open
    resized: bool = False  # `placed` is an open order modified in place (same oid or cloid, new size)


class AccountView:
    """The account as the user-data feed shows it, plus own changes not shown yet. Feed thread writes snapshots
    and events; the worker reads and records changes; one lock, held for microseconds."""

    def __init__(self, live: Callable[[], bool] = lambda: False, clock: Callable[[], float] = time.monotonic,
                 confirm_within: float = CONFIRM_WITHIN, logger: logging.Logger | None = None):  # fmt: skip
        self.live = live  # the feed's word: its socket proved alive recently (set by the feed)
        self.clock, self.confirm_within = clock, confirm_within
        self.logger = logger or logging.getLogger("fractrade_sync.account")
        self.on_stall: Callable[[], None] = lambda: None  # the feed resubscribes
        self.generation = -1  # the socket the current snapshot came on (the feed's count of connections)
        self.snapshots = 0
        self.stalls = 0
        self._positions: dict[str, Decimal] = {}
        self._orders: list[dict] = []
        self._seen: collections.OrderedDict[Any, int] = collections.OrderedDict()  # id -> snapshots when reported
        self._changes: list[Change] = []
        self._after = 0  # trusted again only once self.snapshots passes this (a new snapshot since a doubt)
        self._dead = -1  # a generation whose subscription stalled: its snapshots are not taken any more
        self.snapshot_at = float("-inf")  # when the last snapshot came (self.clock)
        self.max_snapshot_age = MAX_SNAPSHOT_AGE
        self._lock = threading.Lock()

    # ---- feed thread -------------------------------------------------------------------------------
    def on_snapshot(self, data: Any, generation: int, subscribed_at: float | None = None) -> bool:
        """A webData2 push: its clearinghouseState positions and openOrders replace the last ones. False (and the
        view distrusted until the next one) when it cannot be read. The first one of a new connection shows every
        own change answered before it subscribed (`subscribed_at`, self.clock; None: all so far): those are
        dropped (their reports may have been lost with the old connection)."""
        try:
            state = data["clearinghouseState"]
            positions = {p["position"]["coin"]: Decimal(str(p["position"]["szi"])) for p in state["assetPositions"]}
            orders = [o for o in data["openOrders"] if isinstance(o, dict)]
        except (KeyError, TypeError, InvalidOperation):
            self.lost()
            return False
        with self._lock:
            if generation == self._dead:
                return True  # the stalled subscription's socket, still closing (checked under the lock: a stall
                # may come while this push was being read)
            if generation != self.generation:
                before = self.clock() if subscribed_at is None else subscribed_at
                self._changes = [c for c in self._changes if c.at >= before]
            self._positions, self._orders = positions, orders
            self.snapshots += 1
            self.generation = generation
            self.snapshot_at = self.clock()
            self._prune()  # (here too: a service that never reads must not keep every change it made)
        return True

    def on_events(self, channel: str, data: Any) -> None:
        """An orderUpdates or userFills push: the orders it names were changed on the exchange (the next snapshot
        shows it)."""
        if channel == "orderUpdates":
            orders = [u.get("order") for u in data if isinstance(u, dict)] if isinstance(data, list) else []
        else:  # userFills: {"isSnapshot"?, "user", "fills": [...]}
            orders = data.get("fills", []) if isinstance(data, dict) else []
        with self._lock:
            for order in orders:
                if isinstance(order, dict):
                    for ident in (order.get("oid"), _cloid(order.get("cloid"))):
                        if ident is not None:
                            self._seen[ident] = self.snapshots
                            self._seen.move_to_end(ident)
            while len(self._seen) > SEEN_KEPT:
                self._seen.popitem(last=False)

    def lost(self) -> None:
        """The socket went down, or a push could not be read: nothing here is trusted until a new snapshot."""
        with self._lock:
            self.generation = -1

    # ---- worker ------------------------------------------------------------------------------------
    def position(self, coin: str) -> Decimal | None:
        """The signed position on a coin, or None when the view is not trusted now (read REST instead)."""
        with self._lock:
            if not self._trusted():
                return None
            return self._positions.get(coin, Decimal(0)) + sum((c.delta for c in self._changes if c.coin == coin),
                                                                Decimal(0))  # fmt: skip

    def open_orders(self) -> list[dict] | None:
        """The open orders (frontendOpenOrders shape), or None when the view is not trusted now."""
        with self._lock:
            if not self._trusted():
                return None
            orders = list(self._orders)
            for change in self._changes:  # in the order they happened: a modify is the old one gone, a new placed
                if change.gone:
                    orders = [o for o in orders if o.get("oid") not in change.gone
                              and _cloid(o.get("cloid")) not in change.gone]  # fmt: skip
                if change.placed is not None:
                    oid = change.placed["oid"]
                    orders = [o for o in orders if o.get("oid") != oid] + [change.placed]
            return orders

    def applied(self, action: Mapping[str, Any], result: Mapping[str, Any], coins: Mapping[int, str]) -> None:
        """The exchange answered `action` (order, cancel, batchModify) with `result`: lay what it changed over the
        snapshot. `coins`: asset index -> name."""
        if result.get("status") != "ok":
            return
        statuses = ((result.get("response") or {}).get("data") or {}).get("statuses") or []
        kind, now, changes = action.get("type"), self.clock(), []
        if kind == "order":
            for wire, status in zip(action.get("orders", []), statuses, strict=False):
                change = _order_change(wire, status, coins, now)
                if change is not None:
                    changes.append(change)
        elif kind == "cancel":
            for cancel, status in zip(action.get("cancels", []), statuses, strict=False):
                if status == "success":
                    ident = cancel.get("o")
                    changes.append(Change(now, frozenset({ident}), coins.get(cancel.get("a"), ""),
                                          gone=frozenset({ident})))  # fmt: skip
        elif kind == "batchModify":
            for modify, status in zip(action.get("modifies", []), statuses, strict=False):
                change = _order_change(modify.get("order", {}), status, coins, now)
                if change is not None:  # the modified order replaces the one it was (by oid or cloid)
                    ident = _cloid(modify.get("oid")) if isinstance(modify.get("oid"), str) else modify.get("oid")
                    change.gone, change.resized = frozenset({ident}), True
                    changes.append(change)
        if changes:
            with self._lock:
                for change in changes:
                    if change.resized or (change.gone and change.placed is None):  # supersedes a pending resize
                        ids = _ids(change)
                        self._changes = [c for c in self._changes if not (c.resized and _ids(c) & ids)]
                    self._changes.append(change)
                if len(self._changes) > SEEN_KEPT:  # never shown, never read: bounded; REST until a new snapshot
                    del self._changes[:-SEEN_KEPT]
                    self._after = self.snapshots

    def doubt(self) -> None:
        """A request's answer was lost: it may have changed the account, so only a snapshot that comes after now
        is trusted."""
        with self._lock:
            self._after = self.snapshots

    def pending(self) -> int:
        """Own changes not yet shown by the feed."""
        with self._lock:
            self._prune()
            return len(self._changes)

    # ---- inside the lock ------------------------------------------------------------------------------
    def _trusted(self) -> bool:
        if self.generation < 0 or self.snapshots <= self._after or not self.live():
            return False
        self._prune()
        if self._changes and self.clock() - self._changes[0].at > self.confirm_within:
            self._stall()  # (before the age check: a dead subscription gets a new socket either way)
            return False
        return self.clock() - self.snapshot_at <= self.max_snapshot_age

    def _prune(self) -> None:
        """Drop the own changes the snapshot already shows. A fill or a new order: its order reported (by oid or
        cloid), then a snapshot after that report. A cancel: the snapshot no longer lists the order. A resize: the
        snapshot lists it at its new size. (A report of an old order says nothing of a change made to it now.)"""
        self._changes = [c for c in self._changes if not self._shown(c)]

    def _shown(self, change: Change) -> bool:
        if not change.resized and (change.placed is not None or not change.gone):  # a new order, or a fill
            return self._reported(change)
        ids = _ids(change)
        if any(c is not change and c.placed is not None and not c.resized and _ids(c) & ids and not self._reported(c)
               for c in self._changes):  # fmt: skip
            return False  # its order's own placement is not shown yet: a snapshot without it says nothing
        listed = [o for o in self._orders if o.get("oid") in ids or _cloid(o.get("cloid")) in ids]
        if change.resized:  # listed at its new size, or no longer listed (fired, canceled since)
            return not listed or any(_same(o.get("sz"), change.placed["sz"]) for o in listed)  # type: ignore[index]
        return not listed  # a cancel

    def _reported(self, change: Change) -> bool:
        """The feed reported the change's order (by oid or cloid), and a snapshot came after that report."""
        return any(i in self._seen and self._seen[i] < self.snapshots for i in change.ids)

    def _stall(self) -> None:
        """An own change the feed has not shown in time: the subscription may be silently dead."""
        oldest = self._changes[0]
        self.stalls += 1
        self.logger.warning("account feed: an order of %s answered %.1fs ago is still not shown by the user-data "
                            "feed; positions and orders come over REST until it resubscribes", oldest.coin,
                            self.clock() - oldest.at)  # fmt: skip
        self._changes.clear()  # what REST reads from here on includes them
        self._after = self.snapshots
        self._dead, self.generation = self.generation, -1
        self.on_stall()


def _cloid(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _ids(change: Change) -> set:
    """The ids (oids, cloids) of the order a change is about."""
    placed = change.placed or {}
    return set(change.gone) | {placed.get("oid"), placed.get("cloid")} - {None}


def _same(a: Any, b: Any) -> bool:
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except InvalidOperation:
        return False


def _order_change(wire: Mapping[str, Any], status: Any, coins: Mapping[int, str], now: float) -> Change | None:
    """One order's change from its wire (SDK keys a, b, p, s, r, t, c) and its status in the answer."""
    if not isinstance(status, dict):
        return None
    coin, cloid = coins.get(wire.get("a"), ""), _cloid(wire.get("c"))
    is_buy = bool(wire.get("b"))
    if "filled" in status:
        filled = status["filled"]
        size = Decimal(str(filled.get("totalSz", "0")))
        return Change(now, frozenset({filled.get("oid"), cloid} - {None}), coin, delta=size if is_buy else -size)
    if "resting" in status:
        oid = status["resting"].get("oid")
        trigger = (wire.get("t") or {}).get("trigger")
        placed = {"coin": coin, "side": "B" if is_buy else "A", "sz": wire.get("s"), "limitPx": wire.get("p"),
                  "oid": oid, "cloid": cloid, "reduceOnly": bool(wire.get("r")), "isTrigger": trigger is not None,
                  "triggerPx": trigger.get("triggerPx") if trigger else "0.0",
                  "orderType": ORDER_TYPES.get(trigger.get("tpsl"), "Stop Market") if trigger else "Limit"}  # fmt: skip
        return Change(now, frozenset({oid, cloid} - {None}), coin, placed=placed)
    return None
