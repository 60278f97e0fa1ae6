"""What one answer of the exchange changed in the account, as the account view (account.py) lays it over the feed's
snapshots until they show it: a fill, an order now resting, orders gone, an order resized, a leverage set; read from
the order, cancel, batchModify and updateLeverage answers (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from fractrade_sync.exchange.wire import TRIGGER_ORDER_TYPES


@dataclass
class Change:
    """What one answer of the exchange changed, laid over the snapshots until the feed shows it."""

    at: float  # monotonic: when its request was sent (a snapshot that came before that cannot show it)
    ids: frozenset  # its order's oid and cloid: the feed's report of one of them confirms a fill or a new order
    coin: str
    delta: Decimal = Decimal(0)  # position change (a fill)
    placed: dict | None = None  # an order now resting (frontendOpenOrders shape)
    gone: frozenset = field(default_factory=frozenset)  # oids / cloids no longer open
    resized: bool = False  # `placed` is an open order modified in place (same oid or cloid, new size)


def cloid_of(value: Any) -> Any:
    """A cloid as compared (lower case); an oid as it is."""
    return value.lower() if isinstance(value, str) else value


def names(order: Mapping[str, Any], ids: set | frozenset) -> bool:
    """Whether an open order is one of `ids` (oids and cloids)."""
    return order.get("oid") in ids or cloid_of(order.get("cloid")) in ids


def ids_of(change: Change) -> set:
    """The ids (oids, cloids) of the order a change is about."""
    placed = change.placed or {}
    return set(change.gone) | {placed.get("oid"), placed.get("cloid")} - {None}


def same_size(a: Any, b: Any) -> bool:
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except InvalidOperation:
        return False


def order_change(wire: Mapping[str, Any], status: Any, coins: Mapping[int, str], now: float) -> Change | None:
    """One order's change from its wire (SDK keys a, b, p, s, r, t, c) and its status in the answer."""
    if status == "waitingForTrigger":  # a position TP/SL resting, its oid not in the answer (EXCHANGE.md §8)
        status = {"resting": {"oid": None}}
    if not isinstance(status, dict) or wire.get("a") not in coins:
        return None
    coin = coins[wire.get("a")]
    cloid = cloid_of(wire.get("c"))
    is_buy = bool(wire.get("b"))
    if "filled" in status:
        filled = status["filled"]
        size = Decimal(str(filled.get("totalSz", "0")))
        return Change(now, frozenset({filled.get("oid"), cloid} - {None}), coin, delta=size if is_buy else -size)
    if "resting" in status:
        oid = status["resting"].get("oid")
        trigger = (wire.get("t") or {}).get("trigger")
        placed = {
            "coin": coin,
            "side": "B" if is_buy else "A",
            "sz": wire.get("s"),
            "limitPx": wire.get("p"),
            "oid": oid,
            "cloid": cloid,
            "reduceOnly": bool(wire.get("r")),
            "isTrigger": trigger is not None,
            "triggerPx": trigger.get("triggerPx") if trigger else "0.0",
            "orderType": TRIGGER_ORDER_TYPES.get(trigger.get("tpsl"), "Stop Market") if trigger else "Limit",
            "isPositionTpsl": trigger is not None and str(wire.get("s")) == "0",
        }
        return Change(now, frozenset({oid, cloid} - {None}), coin, placed=placed)
    return None


def named_orders(channel: str, data: Any) -> list[tuple[Any, Any]]:
    """The orders an orderUpdates or userFills push names, each with the exchange's time it gives (a fill is its own
    order entry: it carries oid, cloid and startPosition)."""
    if channel == "orderUpdates":
        items = [u for u in data if isinstance(u, dict)] if isinstance(data, list) else []
        return [(u.get("order"), u.get("statusTimestamp")) for u in items]
    fills = data.get("fills", []) if isinstance(data, dict) else []  # userFills: {"isSnapshot"?, "user", "fills"}
    return [(f, f.get("time")) for f in fills if isinstance(f, dict)]


def answer_changes(
    action: Mapping[str, Any], result: Mapping[str, Any], coins: Mapping[int, str], now: float
) -> tuple[list[Change], tuple[str, tuple[str, int]] | None]:
    """What the exchange's answer `result` to `action` (order, cancel, batchModify, updateLeverage), sent at `now`,
    changed on the coins of `coins` (asset index -> name): its order changes, and a coin's leverage set (or None)."""
    if result.get("status") != "ok":
        return [], None
    statuses = ((result.get("response") or {}).get("data") or {}).get("statuses") or []
    kind = action.get("type")
    changes = []
    if kind == "order":
        for wire, status in zip(action.get("orders", []), statuses, strict=False):
            change = order_change(wire, status, coins, now)
            if change is not None:
                changes.append(change)
    elif kind == "cancel":
        for cancel, status in zip(action.get("cancels", []), statuses, strict=False):
            if status == "success" and cancel.get("a") in coins:
                ident = cancel.get("o")
                changes.append(Change(now, frozenset({ident}), coins[cancel["a"]], gone=frozenset({ident})))
    elif kind == "batchModify":
        for modify, status in zip(action.get("modifies", []), statuses, strict=False):
            change = order_change(modify.get("order", {}), status, coins, now)
            if change is not None:  # the modified order replaces the one it was (by oid or cloid)
                ident = cloid_of(modify.get("oid")) if isinstance(modify.get("oid"), str) else modify.get("oid")
                change.gone = frozenset({ident})
                change.resized = True
                changes.append(change)
    elif kind == "updateLeverage" and action.get("asset") in coins:
        leverage = ("cross" if action.get("isCross") else "isolated", int(action.get("leverage", 0)))
        return [], (coins[action["asset"]], leverage)
    return changes, None


def note_starts(starts: dict[int, tuple[int, Decimal]], fills: list) -> None:
    """Keep in `starts` (oid -> (time, startPosition)) each order's earliest fill that userFills reported: the
    position before that order (a buy's fills start from the least position, a sell's from the most)."""
    for fill in fills:
        oid = fill.get("oid")
        when = fill.get("time")
        try:
            start = Decimal(str(fill["startPosition"]))
        except (KeyError, ArithmeticError):
            continue
        if isinstance(oid, int) and isinstance(when, int) and not isinstance(when, bool):
            known = starts.get(oid)
            buy = fill.get("side") == "B"
            if known is None or (start < known[1] if buy else start > known[1]):
                starts[oid] = (min(when, known[0]) if known else when, start)
