"""What one answer of the exchange changed in the account, as the account view (account.py) lays it over the feed's
snapshots until they show it: a fill, an order now resting, orders gone, an order resized; read from the order, cancel
and batchModify answers (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

ORDER_TYPES = {"sl": "Stop Market", "tp": "Take Profit Market"}  # frontendOpenOrders' orderType of our triggers


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
            "orderType": ORDER_TYPES.get(trigger.get("tpsl"), "Stop Market") if trigger else "Limit",
            "isPositionTpsl": trigger is not None and str(wire.get("s")) == "0",
        }
        return Change(now, frozenset({oid, cloid} - {None}), coin, placed=placed)
    return None
