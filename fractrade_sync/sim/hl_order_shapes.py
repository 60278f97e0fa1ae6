"""An order and a fill as Hyperliquid shows them: WsBasicOrder (openOrders, orderUpdates), WsOrder (orderUpdates) and
WsFill (userFills, on /ws and /info). Pure: rendered from the simulator's model, no state read.

Shapes follow the API docs' "Websocket > Subscriptions" page
(https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket/subscriptions) and, where the docs give
no type, nktkas/hyperliquid's; anything no source shows is marked "unconfirmed"."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from fractrade_sync.sim.hl_model import Fill, Order, fmt


def basic_order(o: Order) -> dict:
    """An order as openOrders lists it and orderUpdates names it (WsBasicOrder): cloid only when it has one."""
    basic = {
        "coin": o.coin,
        "side": "B" if o.is_buy else "A",
        "limitPx": fmt(o.limit_px),
        "sz": fmt(o.remaining),
        "oid": o.oid,
        "timestamp": o.timestamp,
        "origSz": fmt(o.sz),
    }
    if o.cloid:
        basic["cloid"] = o.cloid
    return basic


def ws_order(o: Order) -> dict:
    """A WsOrder: {"order": WsBasicOrder, "status", "statusTimestamp"} (docs: "interface WsOrder"). `sz` is what is
    left unfilled, "0.0" once filled (unconfirmed for canceled orders); cloid only when the order has one (docs:
    `cloid: string | undefined`)."""
    basic = basic_order(o)
    return {"order": basic, "status": o.status, "statusTimestamp": o.status_ts}


def fill_dir(start: Decimal, delta: Decimal) -> str:
    """The fill's "dir" ("Open Long", "Close Short", "Long > Short" for a flip). The docs say only "used for frontend
    display"; these texts are the ones public clients match on (not in the docs: unconfirmed)."""
    if start == 0 or (start > 0) == (delta > 0):
        return "Open Long" if delta > 0 else "Open Short"
    if abs(delta) > abs(start):
        return "Long > Short" if start > 0 else "Short > Long"
    return "Close Long" if start > 0 else "Close Short"


def ws_fill(f: Fill) -> dict:
    """A WsFill (docs: "interface WsFill"; `twapId` and the optional `cloid` from nktkas/hyperliquid's UserFill).
    `fee` is what the fill cost (hl_ledger: taker or maker rate), `closedPnl` the PnL it realized before that fee;
    `hash` is made up (there is no L1 transaction here)."""
    delta = f.sz if f.is_buy else -f.sz
    fill = {
        "coin": f.coin,
        "px": fmt(f.px),
        "sz": fmt(f.sz),
        "side": "B" if f.is_buy else "A",
        "time": f.time,
        "startPosition": fmt(f.start),
        "dir": fill_dir(f.start, delta),
        "closedPnl": fmt(f.closed_pnl),
        "hash": "0x" + hashlib.sha256(f"{f.user}:{f.oid}:{f.tid}".encode()).hexdigest(),
        "oid": f.oid,
        "crossed": f.crossed,
        "fee": fmt(f.fee),
        "tid": f.tid,
        "feeToken": "USDC",
        "twapId": None,
    }
    if f.cloid:
        fill["cloid"] = f.cloid
    return fill


def unrepeated(orders: list[Order]) -> list[dict]:
    """One WsOrder per reported change: an entry the same as the order's previous one in the batch is dropped."""
    last: dict[int, dict] = {}
    out = []
    for o in orders:
        entry = ws_order(o)
        if last.get(o.oid) != entry:
            out.append(entry)
        last[o.oid] = entry
    return out
