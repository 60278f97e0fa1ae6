"""What the exchange's answers and pushes must say, read strictly: each reader returns what the service uses, or raises
UnreadableAnswer when the shape is not what it should be. A read that does not say what it should is "don't know", never
"flat", "no orders" or "no leverage". The shapes and their sources: EXCHANGE.md; the conformance test
(tests/test_conformance.py) holds these readers and the simulator's answers and pushes to the same shapes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fractrade_sync.errors import UnreadableAnswer

# the info weights the exchange counts against the IP's 1200 a minute: "Rate limits and user limits",
# https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits (EXCHANGE.md)
IP_WEIGHT_PER_MINUTE = 1200
INFO_WEIGHTS = {
    "allMids": 2,
    "clearinghouseState": 2,
    "orderStatus": 2,
    "l2Book": 2,
    "spotClearinghouseState": 2,
    "exchangeStatus": 2,
    "userRole": 60,
}
INFO_WEIGHT = 20  # every other info request (meta, frontendOpenOrders, activeAssetData, userFills, ...)
# the address-based limit's refusal ("Too many cumulative requests sent (…) for cumulative volume traded $…. Place
# taker orders to free up 1 request per USDC traded."): EXCHANGE.md
ADDRESS_LIMIT = "Too many cumulative requests sent"


# a FrontendOpenOrder's `orderType` of a trigger: "Stop Market", "Stop Limit", "Take Profit Market", "Take Profit
# Limit" (EXCHANGE.md, openOrders); ours are all market triggers, by the wire's `tpsl`
TRIGGER_ORDER_TYPES = {"sl": "Stop Market", "tp": "Take Profit Market"}


def trigger_kind(order: dict) -> str | None:
    """A trigger order's kind as actions name it ("stop_loss", "take_profit") from its orderType; None for another
    order type."""
    order_type = str(order.get("orderType", ""))
    if order_type.startswith("Take Profit"):
        return "take_profit"
    return "stop_loss" if order_type.startswith("Stop") else None


def info_weight(payload: dict) -> int:
    """The weight the exchange counts for one /info request."""
    return INFO_WEIGHTS.get(str(payload.get("type")), INFO_WEIGHT)


def exchange_weight(action: dict) -> int:
    """The weight of one /exchange request: 1 + floor(batch length / 40)."""
    items = next((action[k] for k in ("orders", "cancels", "modifies") if isinstance(action.get(k), list)), [])
    return 1 + len(items) // 40


def _dec(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UnreadableAnswer(f"{what} is {str(value)[:40]!r}, not a number")
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise UnreadableAnswer(f"{what} is {str(value)[:40]!r}, not a number") from None
    if not out.is_finite():
        raise UnreadableAnswer(f"{what} is {value!r}")
    return out


def _brief(data: Any) -> str:
    return str(data)[:120]


def positions(state: Any) -> dict[str, Decimal]:
    """clearinghouseState -> {coin: signed size} of its open positions (a coin not listed is flat)."""
    items = state.get("assetPositions") if isinstance(state, dict) else None
    if not isinstance(items, list):
        raise UnreadableAnswer(f"clearinghouseState without assetPositions: {_brief(state)}")
    held = {}
    for item in items:
        position = item.get("position") if isinstance(item, dict) else None
        coin = position.get("coin") if isinstance(position, dict) else None
        if not isinstance(coin, str):
            raise UnreadableAnswer(f"clearinghouseState with an unreadable position: {_brief(item)}")
        held[coin] = _dec(position.get("szi"), f"{coin} szi")
    return held


def state_time(state: Any) -> int:
    """clearinghouseState's "time": the exchange's clock (ms) when it was taken."""
    when = state.get("time") if isinstance(state, dict) else None
    if isinstance(when, bool) or not isinstance(when, int):
        raise UnreadableAnswer(f"clearinghouseState without its time: {_brief(state)}")
    return when


def open_orders(orders: Any) -> list[dict]:
    """frontendOpenOrders (or an openOrders push's orders) -> the list, each with its coin and oid."""
    if not isinstance(orders, list):
        raise UnreadableAnswer(f"open orders that are not a list: {_brief(orders)}")
    for order in orders:
        if not (isinstance(order, dict) and isinstance(order.get("coin"), str) and isinstance(order.get("oid"), int)):
            raise UnreadableAnswer(f"an open order without its coin or oid: {_brief(order)}")
    return orders


def leverage(data: Any, coin: str) -> tuple[str, int]:
    """activeAssetData (or a position's) leverage -> ("cross" | "isolated", value)."""
    lev = data.get("leverage") if isinstance(data, dict) else None
    kind = lev.get("type") if isinstance(lev, dict) else None
    value = lev.get("value") if isinstance(lev, dict) else None
    if kind not in ("cross", "isolated") or isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UnreadableAnswer(f"unreadable leverage for {coin}: {_brief(lev)}")
    return kind, value


def user_push(data: Any, key: str, user: str) -> Any:
    """The payload of a per-user push ({"dex", "user", key: ...}) for `user` on the main dex."""
    if not isinstance(data, dict) or key not in data:
        raise UnreadableAnswer(f"a push without {key}: {_brief(data)}")
    if str(data.get("user", "")).lower() != user.lower() or data.get("dex", "") != "":
        raise UnreadableAnswer(f"a push for another account or dex: {data.get('user')!r} {data.get('dex')!r}")
    return data[key]


def only_isolated(entry: dict) -> bool:
    """A meta universe entry that takes isolated margin only (onlyIsolated, or marginMode strictIsolated / noCross)."""
    return bool(entry.get("onlyIsolated")) or entry.get("marginMode") in ("strictIsolated", "noCross")


def fills(data: Any) -> list[dict]:
    """userFills (push or answer) -> its fills, each with oid, sz and px."""
    items = data.get("fills") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise UnreadableAnswer(f"fills that are not a list: {_brief(data)}")
    for fill in items:
        if not isinstance(fill, dict) or not isinstance(fill.get("oid"), int):
            raise UnreadableAnswer(f"a fill without its oid: {_brief(fill)}")
        _dec(fill.get("sz"), "fill sz")
        _dec(fill.get("px"), "fill px")
    return items
