"""The client and the simulator held to the same shapes: the live exchange's (EXCHANGE.md, each example below with its
source). Every recorded live answer and push must be read by the client's readers (wire.py, answers.py,
exchange_feed.py); every answer and push the simulator gives for the requests the client sends must have the live
example's shape: the same keys with the same JSON types, no key the live one lacks. So neither can drift from the
exchange alone."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
import requests
import websocket

from fractrade_sync.exchange import wire
from fractrade_sync.exchange.answers import order_outcome, status_outcome
from fractrade_sync.exchange.client import asset_of
from fractrade_sync.feeds import account_feed, exchange_feed
from fractrade_sync.outcome import FILLED, REJECTED, RESTING
from tests.conftest import wait_for

USER = "0x" + "ab" * 20
CLOID = "0x" + "12" * 16

# ---- recorded live shapes (EXCHANGE.md: the section named with each) --------------------------------------------
# §7: nktkas/hyperliquid src/api/info/_methods/clearinghouseState.ts; the SDK's cassette test_get_user_state.yaml
LIVE_STATE = {
    "marginSummary": {
        "accountValue": "1000.5",
        "totalNtlPos": "500.0",
        "totalRawUsd": "500.5",
        "totalMarginUsed": "50.0",
    },
    "crossMarginSummary": {
        "accountValue": "1000.5",
        "totalNtlPos": "500.0",
        "totalRawUsd": "500.5",
        "totalMarginUsed": "50.0",
    },
    "crossMaintenanceMarginUsed": "5.0",
    "withdrawable": "950.5",
    "assetPositions": [
        {
            "type": "oneWay",
            "position": {
                "coin": "BTC",
                "szi": "-0.00785",
                "leverage": {"type": "cross", "value": 20},
                "entryPx": "63694.0",
                "positionValue": "500.0",
                "unrealizedPnl": "-0.12",
                "returnOnEquity": "-0.0048",
                "liquidationPx": "189000.0",
                "marginUsed": "25.0",
                "maxLeverage": 40,
                "cumFunding": {"allTime": "0.5", "sinceOpen": "0.1", "sinceChange": "0.1"},
            },
        }
    ],
    "time": 1700000000000,
}
# §1 / §6: nktkas/hyperliquid info/_methods/_base/_schemas.ts (FrontendOpenOrder); a live row in tickwright TW-RO P1
LIVE_TRIGGER = {
    "coin": "BTC",
    "side": "A",
    "limitPx": "43200.0",
    "sz": "0.01",
    "oid": 7,
    "timestamp": 1700000000000,
    "origSz": "0.01",
    "triggerCondition": "Price below 48000",
    "isTrigger": True,
    "triggerPx": "48000.0",
    "children": [],
    "isPositionTpsl": False,
    "reduceOnly": True,
    "orderType": "Stop Market",
    "tif": None,
    "cloid": CLOID,
}
# §1: nktkas/hyperliquid info/_methods/activeAssetData.ts
LIVE_ASSET_DATA = {
    "user": USER,
    "coin": "BTC",
    "leverage": {"type": "cross", "value": 10},
    "maxTradeSzs": ["1.5", "1.5"],
    "availableToTrade": ["75000.0", "75000.0"],
    "markPx": "50000.0",
}
# §1: orderUpdates (nktkas subscription/_methods/orderUpdates.ts; a live frame in TW-RO P2b)
LIVE_ORDER_UPDATE = {
    "order": {
        "coin": "BTC",
        "side": "B",
        "limitPx": "50500.0",
        "sz": "0.0",
        "oid": 9,
        "timestamp": 1700000000000,
        "origSz": "0.01",
        "cloid": CLOID,
    },
    "status": "filled",
    "statusTimestamp": 1700000000001,
}
# §1: userFills (nktkas subscription/_methods/userFills.ts, the SDK's UserFillsData)
LIVE_FILL = {
    "coin": "BTC",
    "px": "50000.0",
    "sz": "0.01",
    "side": "B",
    "time": 1700000000001,
    "startPosition": "0.0",
    "dir": "Open Long",
    "closedPnl": "0.0",
    "hash": "0x" + "0" * 64,
    "oid": 9,
    "crossed": True,
    "fee": "0.2",
    "tid": 1,
    "feeToken": "USDC",
    "twapId": None,
    "cloid": CLOID,
}
# §3: order answers (nktkas exchange/_methods/order.ts; TW-RO P3/P5b)
LIVE_ORDER_ANSWER = {
    "status": "ok",
    "response": {
        "type": "order",
        "data": {
            "statuses": [
                {"resting": {"oid": 7}},
                {"filled": {"totalSz": "0.01", "avgPx": "50000.0", "oid": 9}},
                {"error": "Order must have minimum value of $10. asset=0"},
                "waitingForFill",
            ]
        },
    },
}
# §4: orderStatus (docs info-endpoint; nktkas orderStatus.ts)
LIVE_STATUS = {"status": "order", "order": {"order": LIVE_TRIGGER, "status": "open", "statusTimestamp": 1700000000000}}
# §5: meta (nktkas meta.ts)
LIVE_META_ENTRY = {
    "name": "ZRO",
    "szDecimals": 1,
    "maxLeverage": 5,
    "marginTableId": 5,
    "onlyIsolated": True,
    "marginMode": "strictIsolated",
}
# §1: the refusal of webData2 (hyperopen's live probe 2026-07-14; nktkas d27bf581)
LIVE_REFUSAL = {
    "channel": "error",
    "data": 'Error parsing JSON into valid websocket request: {"method":"subscribe",'
    '"subscription":{"type":"webData2","user":"' + USER + '"}}',
}


def shape(value):
    """A JSON value's shape: its keys (recursively) and the JSON type of each leaf; a list by its first item."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "string"}[type(value)]


def same_shape(sim, live, where="") -> list[str]:
    """Where the simulator's value differs in shape from the live one (a live null matches a string too)."""
    problems = []
    if isinstance(live, dict):
        if not isinstance(sim, dict):
            return [f"{where}: {shape(sim)} is not an object"]
        problems += [f"{where}.{k}: missing" for k in live if k not in sim and not _optional(where, k)]
        problems += [f"{where}.{k}: not in the live shape" for k in sim if k not in live]
        for k in live.keys() & sim.keys():
            problems += same_shape(sim[k], live[k], f"{where}.{k}")
    elif isinstance(live, list):
        if not isinstance(sim, list):
            return [f"{where}: not a list"]
        if live and sim:
            problems += same_shape(sim[0], live[0], f"{where}[0]")
    elif shape(sim) != shape(live) and not (shape(live) == "null" or shape(sim) == "null"):
        problems.append(f"{where}: {shape(sim)} where the exchange has {shape(live)}")
    return problems


OPTIONAL = {  # keys the exchange sends only sometimes (EXCHANGE.md)
    "cloid",  # absent (or null) when the order has none
    "onlyIsolated",
    "marginMode",  # only on isolated-only assets
    "rawUsd",  # isolated leverage only
}


def _optional(where: str, key: str) -> bool:
    return key in OPTIONAL


# ---- the client reads what the exchange says --------------------------------------------------------------------
def test_the_client_reads_the_live_shapes():
    assert wire.positions(LIVE_STATE) == {"BTC": Decimal("-0.00785")}
    assert wire.state_time(LIVE_STATE) == 1700000000000
    assert wire.open_orders([LIVE_TRIGGER]) == [LIVE_TRIGGER]
    assert wire.leverage(LIVE_ASSET_DATA, "BTC") == ("cross", 10)
    assert wire.leverage(LIVE_STATE["assetPositions"][0]["position"], "BTC") == ("cross", 20)
    push = {"dex": "", "user": USER, "clearinghouseState": LIVE_STATE}
    assert wire.user_push(push, "clearinghouseState", USER.upper().replace("0X", "0x")) is LIVE_STATE
    assert wire.fills({"user": USER, "fills": [LIVE_FILL]}) == [LIVE_FILL]
    outcomes = [order_outcome(LIVE_ORDER_ANSWER, Decimal("0.01"), 1.0, i) for i in range(4)]
    assert [o.state for o in outcomes] == [RESTING, FILLED, REJECTED, RESTING]
    assert outcomes[2].reason == "Order must have minimum value of $10. asset=0"
    found = status_outcome(LIVE_STATUS, lambda oid: (Decimal(0), None))
    assert found.state == RESTING and found.oid == 7
    assert status_outcome({"status": "unknownOid"}, lambda oid: (Decimal(0), None)) is None
    assert asset_of(LIVE_META_ENTRY, 3).only_isolated
    assert account_feed.refused_channel(LIVE_REFUSAL["data"]) == "webData2"


def test_the_account_view_takes_the_live_pushes():
    feed = exchange_feed.ExchangeFeed("http://127.0.0.1:1", user=USER)
    feed.generation = 1
    feed.take(
        json.dumps(
            {"channel": "clearinghouseState", "data": {"dex": "", "user": USER, "clearinghouseState": LIVE_STATE}}
        )
    )
    feed.take(json.dumps({"channel": "openOrders", "data": {"dex": "", "user": USER, "orders": [LIVE_TRIGGER]}}))
    feed.take(json.dumps({"channel": "activeAssetData", "data": LIVE_ASSET_DATA}))
    feed.take(json.dumps({"channel": "orderUpdates", "data": [LIVE_ORDER_UPDATE]}))
    feed.take(json.dumps({"channel": "userFills", "data": {"user": USER, "fills": [LIVE_FILL]}}))
    view = feed.account
    view.live = lambda: True
    view.clock = lambda: view.positions_at
    assert view.position("BTC") == Decimal("-0.00785")
    assert view.open_orders() == [LIVE_TRIGGER]
    assert view.leverage("BTC") == ("cross", 10)


# ---- the simulator says it in the live shapes -------------------------------------------------------------------
@pytest.fixture
def traded(sim, wallet):
    """An account with a position, a resting stop loss and a fill, made through the simulator's own /exchange."""
    from hyperliquid.exchange import Exchange

    ex = Exchange(wallet, sim.url)
    ex.market_open("BTC", True, 0.01)
    trigger = {"trigger": {"triggerPx": 48000, "isMarket": True, "tpsl": "sl"}}
    from hyperliquid.utils.types import Cloid

    ex.order("BTC", False, 0.01, 43200, trigger, reduce_only=True, cloid=Cloid(CLOID))
    ex.update_leverage(10, "BTC", True)
    return wallet.address


def _info(sim, **body):
    answer = requests.post(sim.url + "/info", json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_simulators_answers_have_the_live_shapes(sim, traded):
    user = traded
    state = _info(sim, type="clearinghouseState", user=user)
    assert same_shape(state, LIVE_STATE) == []
    orders = _info(sim, type="frontendOpenOrders", user=user)
    assert orders and same_shape(orders[0], LIVE_TRIGGER) == []
    assert same_shape(_info(sim, type="activeAssetData", user=user, coin="BTC"), LIVE_ASSET_DATA) == []
    assert same_shape(_info(sim, type="orderStatus", user=user, oid=CLOID), LIVE_STATUS) == []
    fills = _info(sim, type="userFills", user=user)
    assert fills and same_shape(fills[0], LIVE_FILL) == []
    universe = _info(sim, type="meta")["universe"]
    assert all(same_shape(entry, LIVE_META_ENTRY) == [] for entry in universe)
    # and the client reads every one of them
    assert wire.positions(state) and wire.open_orders(orders) and wire.fills(fills)


def test_the_simulators_pushes_have_the_live_shapes_and_the_client_takes_them(sim, traded):
    user = traded
    ws = websocket.create_connection(exchange_feed.mids_ws_url(sim.url), timeout=5)
    got: dict[str, list] = {}
    try:
        for channel in account_feed.ACCOUNT_CHANNELS:
            ws.send(account_feed.user_request("subscribe", channel, user))
        ws.send(account_feed.user_request("subscribe", "activeAssetData", user, "BTC"))
        ws.send(account_feed.user_request("subscribe", "webData2", user))  # refused, as live
        deadline = time.monotonic() + 5
        wanted = {"clearinghouseState", "openOrders", "activeAssetData", "userFills", "error", "subscriptionResponse"}
        while not wanted <= got.keys() and time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            got.setdefault(msg["channel"], []).append(msg["data"])
    finally:
        ws.close()
    assert wanted <= got.keys(), sorted(got)
    assert account_feed.refused_channel(got["error"][0]) == "webData2"
    chs = got["clearinghouseState"][0]
    assert same_shape(chs, {"dex": "", "user": USER, "clearinghouseState": LIVE_STATE}) == []
    assert same_shape(got["openOrders"][0], {"dex": "", "user": USER, "orders": [LIVE_TRIGGER]}) == []
    assert same_shape(got["activeAssetData"][0], LIVE_ASSET_DATA) == []
    assert same_shape(got["userFills"][0]["fills"][0], LIVE_FILL) == []
    # the client's own reader takes each of them into its view
    feed = exchange_feed.ExchangeFeed(sim.url, user=user)
    feed.generation = 1
    for channel in ("clearinghouseState", "openOrders", "activeAssetData", "userFills"):
        for data in got[channel]:
            feed.take(json.dumps({"channel": channel, "data": data}))
    view = feed.account
    view.live = lambda: True
    wait_for(lambda: view.position("BTC") == Decimal("0.01"), timeout=1, what="the simulator's push read")
    assert [o["cloid"] for o in view.open_orders()] == [CLOID]
    assert view.leverage("BTC") == ("cross", 10)
