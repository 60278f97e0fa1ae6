"""The account view's snapshots as the feed hands them over, for tests of the view: a stop loss of ours (CLOID), a
clearinghouseState and openOrders snapshot, and its push."""

from __future__ import annotations

import itertools

from fractrade_sync.exchange import wire

CLOID = "0x" + "ab" * 16
STOP_ORDER = {  # a stop loss of ours, as frontendOpenOrders lists it
    "coin": "BTC",
    "side": "A",
    "limitPx": "43200.0",
    "sz": "0.01",
    "oid": 7,
    "cloid": CLOID,
    "isTrigger": True,
    "reduceOnly": True,
    "orderType": "Stop Market",
    "triggerPx": "48000.0",
}


def snapshot(positions=None, orders=()):
    """A clearinghouseState with these positions (coin -> szi) and the open orders, as one snapshot."""
    assets = [{"position": {"coin": c, "szi": s}} for c, s in (positions or {}).items()]
    return {"clearinghouseState": {"assetPositions": assets}, "openOrders": list(orders)}


_TIMES = itertools.count(1_700_000_000_000, 1000)  # clearinghouseState.time of each pushed snapshot (ms, rising)


def push_snapshot(view, shown: dict, generation: int, subscribed_at=None) -> None:
    """A clearinghouseState and an openOrders push of `shown` (a snapshot()), as the feed hands them to the view."""
    state = dict(shown["clearinghouseState"], time=next(_TIMES))
    view.on_positions(state, wire.positions(state), state["time"], generation, subscribed_at)
    view.on_orders(wire.open_orders(shown["openOrders"]), generation, subscribed_at)
