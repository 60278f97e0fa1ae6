"""Keeping protection consistent once the exchange took orders: a new stop loss / take profit replaces the older ones
of its kind; a trade that leaves the coin flat, opens it from flat or flips it cancels the triggers left from the
previous position; a trade that changes a protected position resizes the whole-position triggers to cover it.

Cleanups wait while more actions are queued (`after_outcome`), then run together (`when_drained`): the positions are
protected first, and the cleanups of a whole burst cost one cancel and one modify request. Only this service's own
triggers are touched (a cloid the journal has as a stop loss or take profit)."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any, Callable

from fractrade_sync.actions import Action
from fractrade_sync.errors import TransientError
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.client import HyperliquidClient
from fractrade_sync.exchange.dexes import dex_of
from fractrade_sync.exchange.rules import TPSL, Asset, Order
from fractrade_sync.outcome import FILLED, PARTIALLY_FILLED, RESTING, Outcome
from fractrade_sync.storage.journal import Journal

REPORT_WITHIN = 0.25  # seconds a cleanup waits for the feed's report of its trade's fill before reading REST


class Protection:
    """The deferred cleanups of the worker thread; never changes an outcome."""

    def __init__(
        self,
        client: HyperliquidClient,
        journal: Journal,
        logger: logging.Logger,
        dry_run: bool,
        retried: Callable[[Callable[[], Any]], Any],
    ):
        self.client = client
        self.journal = journal
        self.logger = logger
        self.dry_run = dry_run
        self.retried = retried  # an idempotent request with bounded retries (Execution.with_retries)
        self.deferred: list[tuple[Action, Outcome]] = []  # the cleanups waiting for the queue to drain

    # ---- the phases, each called from one place: the pipeline ---------------------------------------
    def at_start(self) -> None:
        """Before the first action: tidy what a cleanup cut short by a stop or a crash left (`sweep`)."""
        self._sweep_all()

    def before_wave(self, traded: set[str]) -> None:
        """Before a wave's requests: a trade must not overtake the cleanup waiting on its coin; that runs first."""
        wanted = {s.lower() for s in traded}
        if any(action.symbol.lower() in wanted for action, _ in self.deferred):
            self._flush()

    def after_outcome(self, action: Action, outcome: Outcome) -> None:
        """An order the exchange took: its cleanup waits until the queue drains (`when_drained`)."""
        if not self.dry_run and outcome.state in (FILLED, PARTIALLY_FILLED, RESTING):
            self.deferred.append((action, outcome))

    def when_drained(self) -> None:
        """The queue is empty: every waiting cleanup runs, together."""
        self._flush()

    def settled_late(self, action: Action, outcome: Outcome) -> None:
        """An outcome learnt late (resumed, found by cloid): its cleanup, with whatever waited before it, now; but
        only when no newer action on the coin followed it (that cleanup would cancel the protection placed since)."""
        if self.journal.newer_on_symbol(action.symbol, action.received_at, action.key):
            self.logger.warning(
                "%s: settled late as %s; its protection cleanup is skipped (newer actions on %s followed it)",
                action.describe(),
                outcome.state,
                action.symbol,
            )
            return
        self.after_outcome(action, outcome)
        self._flush()

    # ---- the work ---------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Run every deferred cleanup: per coin, its open orders (live, or REST) and, after a trade, its position
        (REST); then one cancel request and one modify request for all coins."""
        entries = self.deferred
        self.deferred = []
        by_coin: dict[str, list[tuple[Action, Outcome]]] = {}
        for action, outcome in entries:
            by_coin.setdefault(action.symbol.lower(), []).append((action, outcome))
        cancels: list[tuple[Asset, int, str]] = []
        modifies: list[tuple[int | str, dict]] = []
        for symbol, items in by_coin.items():
            try:
                self._plan(items[0][0].symbol, items, cancels, modifies)
            except Exception:  # cleanup must never turn a fill into a failure
                self.logger.exception("protection cleanup on %s failed; the orders themselves stand", symbol)
        self._cancel(cancels)
        if modifies:
            try:
                result = self.retried(lambda: self.client.modify(modifies))
                self.logger.info("protection resized to cover the new position(s) (%s)", result.get("status"))
            except Exception as exc:  # (a gateway's 4xx too) never an action's failure: its order stands
                self.logger.error("resizing the protection failed: %s; it keeps its old size", _reason(exc))

    def _sweep_all(self) -> None:
        """At start: what a cleanup cut short left (cleanups wait until the queue drains, and a kill -9 loses them).
        On each coin, this service's triggers older than the newest of their kind are canceled (one stop loss and
        one take profit at most: a new one replaces the older), and on a flat coin all of them (a trigger of a
        closed position would act on the next one). Over REST: the live view is not proven yet. Never fails."""
        for dex in ["", *sorted({dex_of(s) for s in self.journal.protected_symbols()} - {""})]:
            self._sweep(dex)

    def _sweep(self, dex: str) -> None:
        """One dex's sweep (the main dex: ""); never fails."""
        try:
            orders = [o for o, _ in self._ours(self.client.rest_open_orders(dex))]
            if not orders:
                return
            held = wire.positions(self.client.account_state(dex))  # (strict: an unreadable answer is never "flat")
            cancels = []
            for order in orders:
                coin = order.get("coin")
                kind = _kind(order)
                newer = any(o.get("coin") == coin and _kind(o) == kind and _age(o) < _age(order) for o in orders)
                if held.get(coin, Decimal(0)) == 0:
                    cancels.append((self.client.asset(coin), order["oid"], f"{coin} is flat: its protection is void"))
                elif newer:
                    cancels.append((self.client.asset(coin), order["oid"], f"{coin}: an older {kind} left by a stop"))
            self._cancel(cancels)
        except Exception as exc:  # the start goes on; the next cleanup on the coin tidies it
            self.logger.error("checking the protection left by the last run failed: %s", _reason(exc))

    def _plan(self, symbol: str, items: list[tuple[Action, Outcome]], cancels: list, modifies: list) -> None:
        """One coin's cleanups, in the order its actions came (a trade, if any, comes first: see waiting_on)."""
        asset = self.client.asset(symbol)
        trades = [(a, o) for a, o in items if a.kind == "trade" and o.state in (FILLED, PARTIALLY_FILLED)]
        # (by cloid: a position TP/SL's answer carries no oid, EXCHANGE.md §8)
        placed = [(a, o) for a, o in items if a.kind != "trade" and o.state == RESTING]
        if not placed and not (trades and self.journal.has_resting_protection(asset.name)):
            return
        keep = {a.kind: a.cloid.lower() for a, _ in placed}  # the last one of each kind replaces the others
        triggers = self._own_triggers(asset)
        if any(t.get("oid") is None and _cloid(t) not in keep.values() for t, _ in triggers):
            # one of ours the feed has not shown yet (a position TP/SL is answered without its oid): its oid, to
            # cancel it, comes from the exchange itself
            listed = self.retried(lambda: self.client.rest_open_orders(dex_of(asset.name)))
            triggers = self._ours([o for o in listed if o.get("coin") == asset.name])
        for kind, cloid in keep.items():
            cancels.extend(
                (asset, t["oid"], f"replaced {kind.replace('_', ' ')} on {asset.name}")
                for t, _ in triggers
                if _kind(t) == kind and _cloid(t) != cloid
            )
        new = set(keep.values())
        old = [(t, size) for t, size in triggers if _cloid(t) not in new and _kind(t) not in keep]
        if not trades or not old:
            return
        # what decides a cleanup comes from the exchange itself, never from a view that may lag: the position the
        # trade's own fill started from (userFills' startPosition, no request), else a REST read
        position = self._after(asset, *trades[-1])
        why = _void_reason(trades[-1][0], trades[-1][1], position)
        if why is not None:
            cancels.extend((asset, t["oid"], f"{asset.name} {why}") for t, _ in old)
        else:
            modifies.extend(_resized(asset, position, old))

    def _after(self, asset: Asset, action: Action, outcome: Outcome) -> Decimal:
        """The position a trade left: the position its fill started from, as the feed reported it (waiting up to
        REPORT_WITHIN for that report while the feed is live), plus what it filled; else read over REST."""
        account = self.client.account
        deadline = time.monotonic() + REPORT_WITHIN
        while account is not None and outcome.oid is not None:
            start = account.position_before(outcome.oid)
            if start is not None:
                filled = Decimal(outcome.filled_sz or "0")
                return start + (filled if action.is_buy else -filled)
            if time.monotonic() >= deadline or account.generation < 0:
                break
            time.sleep(0.005)
        return self.retried(lambda: self.client.position(asset.name, live=False))

    def _own_triggers(self, asset: Asset) -> list[tuple[dict, str | None]]:
        """This service's open triggers on a coin (see _ours). One read of the open orders (live, or REST)."""
        listed = self.retried(lambda: self.client.open_orders(dex_of(asset.name)))
        return self._ours([o for o in listed if o.get("coin") == asset.name])

    def _ours(self, orders: list[dict]) -> list[tuple[dict, str | None]]:
        """The reduce-only trigger orders among `orders` that this service placed (a cloid the journal has as a stop
        loss or take profit), each with the size it was set with (None: the whole position)."""
        triggers = [o for o in orders if o.get("isTrigger") and o.get("reduceOnly", True)]
        cloids = [str(o.get("cloid") or "").lower() for o in triggers]
        ours = self.journal.own_protection(cloids)
        return [(o, ours[cloid]) for o, cloid in zip(triggers, cloids, strict=True) if cloid in ours]

    def _cancel(self, cancels: list[tuple[Asset, int, str]]) -> None:
        """One cancel request for every trigger to cancel, on every coin."""
        if not cancels:
            return
        try:
            result = self.retried(lambda: self.client.cancel([(asset, oid) for asset, oid, _ in cancels]))
        except Exception as exc:  # (a gateway's 4xx too) never an action's failure: its order stands
            for why in dict.fromkeys(why for _, _, why in cancels):
                self.logger.error("%s, but canceling the triggers failed: %s; they stay live", why, _reason(exc))
            return
        statuses = ((result.get("response") or {}).get("data") or {}).get("statuses") or []
        for (_, oid, why), status in zip(cancels, statuses + [None] * (len(cancels) - len(statuses)), strict=True):
            if status == "success":
                self.logger.info("%s: canceled trigger oid %s", why, oid)
            else:  # e.g. "Order was never placed, already canceled, or filled.": gone already, or still live
                answer = str(status if status is not None else result)[:160]
                self.logger.warning("%s: canceling trigger oid %s was answered %s", why, oid, answer)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, TransientError) else f"{type(exc).__name__}: {str(exc)[:200]}"


def _age(order: dict) -> tuple:
    """Sorts newer first: a later placement time (frontendOpenOrders' timestamp), then a larger oid."""
    return (-int(order.get("timestamp") or 0), -int(order.get("oid") or 0))


def _cloid(order: dict) -> str:
    return str(order.get("cloid") or "").lower()


def _kind(order: dict) -> str:
    """One of our trigger orders' kind, as actions name it (wire.trigger_kind): a stop loss unless its orderType says
    take profit, as our triggers are only these two."""
    return wire.trigger_kind(order) or "stop_loss"


def _void_reason(action: Action, outcome: Outcome, position: Decimal) -> str | None:
    """Why a trade voids the previous position's triggers (closed, opened from flat, flipped), or None when the
    position it changed goes on (its whole-position triggers follow it)."""
    filled = Decimal(outcome.filled_sz or "0") * (1 if action.is_buy else -1)
    if position == 0:
        return "position closed, its protection is void"
    if not action.reduce_only and position == filled:
        return "position opened from flat: triggers of the previous position canceled"
    if (position - filled) * position < 0:  # it was on the other side before this trade
        return "position flipped: the previous side's protection canceled"
    return None


def _resized(asset: Asset, position: Decimal, triggers: list[tuple[dict, str | None]]) -> list[tuple[str, dict]]:
    """batchModify entries that make the whole-position triggers (set without a size) cover `position`: same
    trigger, limit and cloid."""
    size = abs(position)
    reducing = "A" if position > 0 else "B"  # a sell protects a long
    modifies = []
    for o, set_size in triggers:
        if set_size is not None or o.get("isPositionTpsl") or o.get("side") != reducing:
            continue  # (a position TP/SL covers the whole position by itself)
        if Decimal(str(o.get("sz", "0"))) == size:
            continue
        tpsl = TPSL[_kind(o)]
        order = Order(
            asset,
            o["side"] == "B",
            size,
            Decimal(str(o["limitPx"])),
            True,
            o["cloid"],
            trigger_px=Decimal(str(o["triggerPx"])),
            tpsl=tpsl,
        )
        modifies.append((o["cloid"], order.wire()))
    return modifies
