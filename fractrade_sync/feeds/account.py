"""Live account state: positions, open orders and leverage from the user-data subscriptions Hyperliquid serves today
(clearinghouseState, openOrders, activeAssetData, with orderUpdates and userFills saying which orders changed), with
this service's own changes laid over them until the feed shows them. Trusted only while proven; REST otherwise.

The feed thread (exchange_feed.py) hands in what it read (wire.py checked the shapes); the worker reads, and records
what its own requests changed the moment their answers come (`applied`): the exchange's answer reaches us before, or
after, its pushes. Positions are ordered by the exchange's own clock (clearinghouseState.time): a snapshot older than
the one held is ignored, and a fill is shown by a snapshot whose time is at or after the fill's (userFills' time). An
own change the feed never confirms within CONFIRM_WITHIN means the subscription may be silently dead: the view is
distrusted, the feed reconnects, and reads go to REST until new snapshots arrive. Shapes and sources: EXCHANGE.md; what
nothing confirms: RELIABILITY.md's assumptions."""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping

from fractrade_sync.feeds.account_changes import (
    Change,
    answer_changes,
    cloid_of,
    ids_of,
    named_orders,
    names,
    note_starts,
    same_size,
)

CONFIRM_WITHIN = 5.0  # seconds the feed may take to show an own change before the view stops being trusted
# positions older than this are not trusted (the live clearinghouseState pushes about every 2 s, and the feed asks for
# a snapshot after REFRESH_AFTER of quiet, exchange_feed.py): a pong proves the socket, a snapshot the subscription
MAX_SNAPSHOT_AGE = 15.0
SEEN_KEPT = 2048  # order ids the feed reported, kept to confirm own changes (far more than one batch)


@dataclass
class Report:
    """The feed named an order: when (the exchange's time of the fill or status) and how many order snapshots had
    come by then."""

    exchange_time: int | None  # (None: the push gave no time: it confirms orders, never a fill)
    order_snapshots: int


class AccountView:
    """The account as the user-data feeds show it, plus own changes not shown yet. The feed thread writes snapshots
    and events; the worker reads and records changes; one lock, never held across I/O."""

    def __init__(
        self,
        live: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
        confirm_within: float = CONFIRM_WITHIN,
        logger: logging.Logger | None = None,
        on_stall: Callable[[], None] = lambda: None,
    ):
        self.live = live  # the feed's word: its socket proved alive recently
        self.clock = clock
        self.confirm_within = confirm_within
        self.logger = logger or logging.getLogger("fractrade_sync.account")
        self.on_stall = on_stall  # the feed reconnects
        self.generation = -1  # the connection the snapshots came on (the feed's count of connections)
        self.snapshots = 0  # positions and order snapshots taken, all connections
        self.stalls = 0  # times an own change went unshown and the subscription was taken for silently dead
        self.refused: set[str] = set()  # subscriptions the exchange answered with an error frame
        self._positions: dict[str, Decimal] = {}
        self._positions_time = -1  # the exchange's time of the positions held (clearinghouseState.time, ms)
        self.positions_at = float("-inf")  # when they arrived (self.clock)
        self.max_snapshot_age = MAX_SNAPSHOT_AGE
        self._orders: list[dict] = []
        self._order_snapshots = 0
        self._taken: dict[str, int] = {}  # "positions" / "orders" -> the generation the last one came on
        self._leverage: dict[str, tuple[str, int]] = {}  # coin -> (type, value), from activeAssetData pushes
        self._seen: collections.OrderedDict[Any, Report] = collections.OrderedDict()  # oid / cloid -> its report
        # oid -> (time, startPosition) of its earliest fill the feed reported: the position before that order
        self._starts: collections.OrderedDict[int, tuple[int, Decimal]] = collections.OrderedDict()
        self._changes: list[Change] = []
        self._after = 0  # trusted again only once self.snapshots passes this (a new snapshot since a doubt)
        self._dead = -1  # a generation whose subscription stalled: its pushes are not taken any more
        self._lock = threading.Lock()

    # ---- feed thread -------------------------------------------------------------------------------
    def on_positions(
        self,
        state: Mapping[str, Any],
        held: dict[str, Decimal],
        when: int,
        generation: int,
        subscribed_at: float | None = None,
    ) -> None:
        """A clearinghouseState (read by wire.positions / wire.state_time): replaces the positions held unless it is
        older, by the exchange's time, than those. The first one of a new connection shows every own fill answered
        before it subscribed (`subscribed_at`, self.clock; None: all so far)."""
        with self._lock:
            if generation == self._dead:
                return  # the stalled subscription's socket, still closing
            if when < self._positions_time:
                return  # an older state than the one held (pushes can cross, a new socket's first one too)
            if generation != self._taken.get("positions"):
                before = self.clock() if subscribed_at is None else subscribed_at
                self._changes = [c for c in self._changes if c.delta == 0 or c.at >= before]
            self._positions = held
            self._positions_time = when
            self.positions_at = self.clock()
            self.refused.discard("clearinghouseState")
            self._took("positions", generation)

    def on_orders(self, orders: list[dict], generation: int, subscribed_at: float | None = None) -> None:
        """An openOrders push (read by wire.open_orders): replaces the open orders held."""
        with self._lock:
            if generation == self._dead:
                return
            if generation != self._taken.get("orders"):
                before = self.clock() if subscribed_at is None else subscribed_at
                self._changes = [c for c in self._changes if c.delta != 0 or c.at >= before]
            self._orders = orders
            self._order_snapshots += 1
            self.refused.discard("openOrders")
            self._took("orders", generation)

    def on_leverage(self, coin: str, leverage: tuple[str, int]) -> None:
        """An activeAssetData push: the coin's leverage now."""
        with self._lock:
            self._leverage[coin] = leverage

    def on_events(self, channel: str, data: Any) -> None:
        """An orderUpdates or userFills push: the orders it names were changed on the exchange, at its time."""
        named = named_orders(channel, data)
        with self._lock:
            self.refused.discard(channel)  # (asked again after a refusal, and served)
            for order, when in named:
                if not isinstance(order, dict):
                    continue
                if isinstance(when, bool) or not isinstance(when, int):
                    when = None
                report = Report(when, self._order_snapshots)
                for ident in (order.get("oid"), cloid_of(order.get("cloid"))):
                    if ident is not None:
                        known = self._seen.get(ident)
                        if known is None or known.exchange_time is None or (when or -1) >= known.exchange_time:
                            self._seen[ident] = report
                        self._seen.move_to_end(ident)
            if channel == "userFills":
                note_starts(self._starts, [f for f, _ in named])
            while len(self._seen) > SEEN_KEPT:
                self._seen.popitem(last=False)
            while len(self._starts) > SEEN_KEPT:
                self._starts.popitem(last=False)

    def position_before(self, oid: int) -> Decimal | None:
        """The position just before an order of ours filled, as the exchange reported with its fill
        (userFills' startPosition); None when the feed has not reported it."""
        with self._lock:
            known = self._starts.get(oid)
            return None if known is None else known[1]

    def lost(self) -> None:
        """The socket went down, or a push could not be read: nothing here is trusted until new snapshots (and the
        leverages until the next socket pushes them again)."""
        with self._lock:
            self.generation = -1
            self._leverage.clear()

    def refuse(self, channel: str) -> None:
        """The exchange refused a subscription (an error frame): what it would give comes from REST."""
        with self._lock:
            self.refused.add(channel)

    # ---- worker ------------------------------------------------------------------------------------
    def position(self, coin: str) -> Decimal | None:
        """The signed position on a coin, or None when the view cannot say now (read REST instead)."""
        with self._lock:
            if not self._trusted():
                return None
            pending = [c for c in self._changes if c.coin == coin and c.delta != 0]
            if any(self._seen_time(c) is None and c.at < self.positions_at for c in pending):
                return None  # a snapshot came after the fill was sent, and the fill's time is not known yet
            return self._positions.get(coin, Decimal(0)) + sum((c.delta for c in pending), Decimal(0))

    def open_orders(self) -> list[dict] | None:
        """The open orders (frontendOpenOrders shape), or None when the view is not trusted now."""
        with self._lock:
            if not self._trusted():
                return None
            orders = list(self._orders)
            for change in self._changes:  # in the order they happened: a modify is the old one gone, a new placed
                if change.gone:
                    orders = [o for o in orders if not names(o, change.gone)]
                if change.placed is not None:  # (by its oid; a position TP/SL's answer gives none: by its cloid)
                    ids = {change.placed["oid"]} if change.placed["oid"] is not None else {change.placed["cloid"]}
                    orders = [o for o in orders if not names(o, ids)] + [change.placed]
            return orders

    def leverage(self, coin: str) -> tuple[str, int] | None:
        """The coin's leverage from its activeAssetData subscription, or None (not subscribed yet, or not live)."""
        with self._lock:
            if self.generation < 0 or not self.live():
                return None
            return self._leverage.get(coin)

    def applied(
        self,
        action: Mapping[str, Any],
        result: Mapping[str, Any],
        coins: Mapping[int, str],
        sent_at: float | None = None,
    ) -> None:
        """The exchange answered `action` (order, cancel, batchModify, updateLeverage), sent at `sent_at`
        (self.clock; None: now), with `result`: lay what it changed over the snapshots (account_changes.py). The one
        door for this service's own changes. `coins`: asset index -> name; only the main dex's, which this view holds
        (a HIP-3 dex's are read over REST)."""
        changes, leverage = answer_changes(action, result, coins, self.clock() if sent_at is None else sent_at)
        if leverage is not None:  # until its activeAssetData push shows it
            with self._lock:
                self._leverage[leverage[0]] = leverage[1]
        if changes:
            with self._lock:
                for change in changes:
                    if change.resized or (change.gone and change.placed is None):  # supersedes a pending resize
                        ids = ids_of(change)
                        self._changes = [c for c in self._changes if not (c.resized and ids_of(c) & ids)]
                    self._changes.append(change)
                if len(self._changes) > SEEN_KEPT:  # never shown, never read: bounded; REST until a new snapshot
                    del self._changes[:-SEEN_KEPT]
                    self._after = self.snapshots

    def doubt(self) -> None:
        """A request's answer was lost: it may have changed the account, so only snapshots that come after now are
        trusted."""
        with self._lock:
            self._after = self.snapshots

    def pending(self) -> int:
        """Own changes not yet shown by the feed."""
        with self._lock:
            self._prune()
            return len(self._changes)

    # ---- inside the lock ------------------------------------------------------------------------------
    def _took(self, kind: str, generation: int) -> None:
        self._taken[kind] = generation
        self.snapshots += 1
        if self._taken.get("positions") == self._taken.get("orders") == generation:
            self.generation = generation
        self._prune()  # (here too: a service that never reads must not keep every change it made)

    def _trusted(self) -> bool:
        if self.generation < 0 or self.snapshots <= self._after or not self.live() or self.refused:
            return False
        if self._taken.get("positions") != self.generation or self._taken.get("orders") != self.generation:
            return False
        self._prune()
        if self._changes and self.clock() - self._changes[0].at > self.confirm_within:
            self._stall()
            return False
        return self.clock() - self.positions_at <= self.max_snapshot_age

    def _prune(self) -> None:
        """Drop the own changes the snapshots already show. A fill: the positions held are at or after the fill's
        time. A new order: listed, or reported and an order snapshot came after that report. A cancel: no longer
        listed. A resize: listed at its new size, or no longer listed."""
        self._changes = [c for c in self._changes if not self._shown(c)]

    def _seen_time(self, change: Change) -> int | None:
        times = [self._seen[i].exchange_time for i in change.ids if i in self._seen]
        known = [t for t in times if t is not None]
        return max(known) if known else None

    def _shown(self, change: Change) -> bool:
        if change.delta != 0:  # a fill
            when = self._seen_time(change)
            return when is not None and self._positions_time >= when
        listed = [o for o in self._orders if names(o, ids_of(change))]
        if change.placed is not None and not change.resized:  # a new order
            return bool(listed) or self._reported(change)
        mine = ids_of(change)
        placements = [c for c in self._changes if c is not change and c.placed is not None and not c.resized]
        if any(ids_of(c) & mine and not self._shown(c) for c in placements):
            return False  # its order's own placement is not shown yet: a snapshot without it says nothing
        if change.resized:  # listed at its new size, or no longer listed (fired, canceled since)
            return not listed or any(same_size(o.get("sz"), change.placed["sz"]) for o in listed)  # type: ignore[index]
        return not listed  # a cancel

    def _reported(self, change: Change) -> bool:
        """The feed reported the change's order (by oid or cloid), and an order snapshot came after that report."""
        return any(i in self._seen and self._seen[i].order_snapshots < self._order_snapshots for i in change.ids)

    def _stall(self) -> None:
        """An own change the feed has not shown in time: the subscription may be silently dead."""
        oldest = self._changes[0]
        self.stalls += 1
        self.logger.warning(
            "account feed: an order of %s answered %.1fs ago is still not shown by the user-data feed; positions "
            "and orders come over REST until it reconnects",
            oldest.coin,
            self.clock() - oldest.at,
        )
        self._changes.clear()  # what REST reads from here on includes them
        self._leverage.clear()
        self._after = self.snapshots
        self._dead = self.generation
        self.generation = -1
        self.on_stall()
