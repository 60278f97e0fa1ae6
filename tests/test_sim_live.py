"""The simulator follows the live exchange (EXCHANGE.md): the subscriptions it serves and refuses, request weights,
the address-based limit, reduce-only shrinking, triggers on the mark, modify's new oid, the cancel cap, rejected
orders' records, isolated-only assets and the answers a client must survive. Real sockets, the real SDK."""

from __future__ import annotations

import json
import re

import pytest
import requests
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError
from hyperliquid.utils.types import Cloid

from fractrade_sync.sim import hl_weights
from tests.test_sim_userdata import take

GTC = {"limit": {"tif": "Gtc"}}
IOC = {"limit": {"tif": "Ioc"}}
ADDRESS_LIMITED = re.compile(
    r"Too many cumulative requests sent \((\d+) > (\d+)\) for cumulative volume traded \$(\d+\.\d\d)\. "
    r"Place taker orders to free up 1 request per USDC traded\."
)


def stop_loss(px):
    return {"trigger": {"triggerPx": px, "isMarket": True, "tpsl": "sl"}}


def statuses(resp):
    assert resp["status"] == "ok", resp
    return resp["response"]["data"]["statuses"]


# ---- 1, 2: the subscriptions ------------------------------------------------------------------------------------
def test_a_webdata2_subscription_gets_the_live_error_frame_and_nothing_else(sim, wallet, feed, ex, info):
    f = feed()
    text = json.dumps({"method": "subscribe", "subscription": {"type": "webData2", "user": wallet.address}})
    f.ws.send(text)
    assert f.next() == {"channel": "error", "data": f"Error parsing JSON into valid websocket request: {text}"}
    ex.market_open("BTC", True, 0.01)
    assert f.silent()
    assert sim.userdata_pushes() == 0
    polled = info.post("/info", {"type": "webData2", "user": wallet.address})  # /info still answers it
    assert polled["clearinghouseState"]["assetPositions"][0]["position"]["szi"] == "0.01"


def test_account_feeds_ack_as_sent_then_the_info_answers(sim, wallet, feed, ex, info):
    ex.update_leverage(4, "ETH", is_cross=False)
    user = wallet.address.lower()
    f = feed()
    subs = (
        {"type": "clearinghouseState", "user": user, "dex": ""},
        {"type": "openOrders", "user": user},
        {"type": "activeAssetData", "user": user, "coin": "ETH"},
    )
    snapshots = []
    for sub in subs:
        f.send(method="subscribe", subscription=sub)
        assert f.next() == {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": sub}}
        snapshots.append(f.next())
    state, orders, asset = snapshots
    assert state["channel"] == "clearinghouseState" and state["data"]["dex"] == "" and state["data"]["user"] == user
    assert {**state["data"]["clearinghouseState"], "time": 0} == {**info.user_state(user), "time": 0}
    assert orders == {"channel": "openOrders", "data": {"dex": "", "user": user, "orders": []}}
    assert asset["channel"] == "activeAssetData"
    assert asset["data"] == info.post("/info", {"type": "activeAssetData", "user": user, "coin": "ETH"})
    assert set(asset["data"]) == {"user", "coin", "leverage", "maxTradeSzs", "availableToTrade", "markPx"}
    assert asset["data"]["leverage"] == {"type": "isolated", "value": 4, "rawUsd": "0.0"}
    assert asset["data"]["maxTradeSzs"] == ["133.3333", "133.3333"]  # $100,000 free x 4 / $3000
    assert asset["data"]["availableToTrade"] == ["400000.0", "400000.0"]
    ex.order("ETH", True, 1, 2900, GTC)
    pushed = take(f, 3)
    assert [m["channel"] for m in pushed] == ["clearinghouseState", "openOrders", "activeAssetData"]
    assert pushed[0]["data"]["clearinghouseState"]["withdrawable"] == "99275.0"  # 1 x 2900 / 4 reserved
    assert [o["limitPx"] for o in pushed[1]["data"]["orders"]] == ["2900.0"]
    assert pushed[1]["data"]["orders"] == info.frontend_open_orders(user)
    assert pushed[2]["data"]["availableToTrade"] == ["397100.0", "397100.0"]
    assert f.silent()


def test_no_snapshot_on_subscribe_when_turned_off_then_the_next_change(sim, wallet, feed, ex):
    sim.set_userdata_snapshots(False)
    f = feed()
    for kind in ("clearinghouseState", "openOrders"):
        assert f.subscribe(kind, wallet.address)["channel"] == "subscriptionResponse"
    f.subscribe("activeAssetData", wallet.address, coin="BTC")
    assert f.silent()
    ex.market_open("BTC", True, 0.01)
    assert [m["channel"] for m in take(f, 3)] == ["clearinghouseState", "openOrders", "activeAssetData"]
    sim.set_userdata_snapshots(True)
    f.subscribe("activeAssetData", wallet.address, coin="ETH")
    assert f.next()["data"]["coin"] == "ETH"


# ---- 3: request weights -----------------------------------------------------------------------------------------
def test_request_weights_as_the_docs_count_them(sim, wallet, ex, info):
    sim.reset_weights()
    reads = [
        (info.all_mids, 2),
        (lambda: info.user_state(wallet.address), 2),
        (lambda: info.query_order_by_oid(wallet.address, 1), 2),
        (lambda: info.user_role(wallet.address), 60),
        (info.meta, 20),
        (lambda: info.frontend_open_orders(wallet.address), 20),
        (lambda: info.post("/info", {"type": "activeAssetData", "user": wallet.address, "coin": "BTC"}), 20),
    ]
    for read, weight in reads:
        before = sim.weight_used()
        read()
        assert sim.weight_used() - before == weight
    before = sim.weight_used()
    ex.order("BTC", True, 0.01, 50000, IOC)
    assert sim.weight_used() - before == 1
    orders = [
        {"coin": "BTC", "is_buy": True, "sz": 0.01, "limit_px": 40000 + i, "order_type": GTC, "reduce_only": False}
        for i in range(80)
    ]
    ex.bulk_orders(orders)
    assert sim.weight_used() - before == 1 + 3  # 1 + floor(80 / 40)
    assert sim.weight_used("10.0.0.1") == 0  # counted per client address


def test_past_the_weight_limit_429_null_nothing_applied_nothing_counted(sim, wallet, ex, info):
    sim.reset_weights()
    sim.set_weight_limit(25)
    info.meta()  # 20
    with pytest.raises(ClientError) as err:
        info.meta()
    assert (err.value.status_code, err.value.error_message) == (429, "null")
    assert sim.weight_used() == 20  # the refused request is not counted
    info.all_mids()  # 22: room for it
    sim.inject("drop")  # a fault for the next /exchange request that gets through
    with pytest.raises(requests.exceptions.ConnectionError):
        ex.order("BTC", True, 0.01, 50000, IOC)  # 23, its answer dropped
    for _ in range(2):
        ex.order("BTC", True, 0.01, 50000, IOC)  # 24, 25
    with pytest.raises(ClientError) as err:
        ex.order("BTC", True, 0.01, 50000, IOC)
    assert err.value.status_code == 429
    assert sim.positions(wallet.address) == {"BTC": "0.03"} and sim.applied_count() == 3
    log = sim.exchange_log()[-1]
    assert (log["http_status"], log["ok"], log["errors"]) == (429, False, ["null"])
    sim.reset_weights()
    assert "filled" in statuses(ex.market_open("BTC", True, 0.01))[0]


def test_a_fault_waits_for_the_request_the_weight_limit_lets_through(sim, wallet, ex):
    sim.set_weight_limit(0)
    sim.inject("drop")
    with pytest.raises(ClientError):
        ex.market_open("BTC", True, 0.01)
    sim.set_weight_limit(1200)
    with pytest.raises(requests.exceptions.ConnectionError):  # the drop comes now
        ex.market_open("BTC", True, 0.01)
    assert sim.positions(wallet.address) == {"BTC": "0.01"}


def test_the_weight_window_slides_over_60_seconds():
    now = [1000.0]
    weights = hl_weights.RequestWeights(clock=lambda: now[0])
    weights.set_limit(40)
    assert weights.admit("1.2.3.4", 20) and weights.admit("1.2.3.4", 20)
    assert not weights.admit("1.2.3.4", 1)
    now[0] += 59.9
    assert not weights.admit("1.2.3.4", 1) and weights.used("1.2.3.4") == 40
    now[0] += 0.2
    assert weights.used("1.2.3.4") == 0 and weights.admit("1.2.3.4", 40)
    with pytest.raises(ValueError, match="limit"):
        weights.set_limit(-1)


# ---- 4: the address-based limit ---------------------------------------------------------------------------------
def test_the_address_based_limit_refuses_orders_and_modifies_not_cancels(sim, wallet, ex):
    oid = statuses(ex.order("BTC", True, 0.01, 45000, GTC))[0]["resting"]["oid"]
    ex.market_open("BTC", True, 0.02)  # $1000 traded
    sim.limit_address(wallet.address)
    for resp in (ex.market_open("BTC", True, 0.01), ex.modify_order(oid, "BTC", True, 0.01, 44000, GTC)):
        assert resp["status"] == "err"
        sent, cap, volume = ADDRESS_LIMITED.fullmatch(resp["response"]).groups()
        assert (int(sent), int(cap), volume) == (11001, 11000, "1000.00")
    assert sim.positions(wallet.address) == {"BTC": "0.02"}
    assert statuses(ex.cancel("BTC", oid)) == ["success"]  # cancels have a higher limit
    sim.limit_address(wallet.address, on=False)
    assert "filled" in statuses(ex.market_open("BTC", True, 0.01))[0]


# ---- 5: reduce-only shrinking -----------------------------------------------------------------------------------
def test_a_reduce_only_ioc_larger_than_the_position_fills_the_position_and_is_filled(sim, wallet, ex, info):
    ex.market_open("ETH", True, 0.5)
    cloid = Cloid.from_int(11)
    [st] = statuses(ex.order("ETH", False, 2, 2900, IOC, reduce_only=True, cloid=cloid))
    assert st["filled"]["totalSz"] == "0.5"
    status = info.query_order_by_cloid(wallet.address, cloid)["order"]
    assert status["status"] == "filled"
    assert (status["order"]["origSz"], status["order"]["sz"]) == ("2.0", "0.0")  # origSz - sz is not what filled
    assert sim.positions(wallet.address) == {}
    [error] = statuses(ex.order("ETH", False, 1, 2900, IOC, reduce_only=True))
    assert error == {"error": "Reduce only order would increase position. asset=1"}


def test_a_resting_reduce_only_order_follows_the_position_down_then_is_canceled(sim, wallet, ex, info):
    ex.market_open("ETH", True, 0.5)
    oid = statuses(ex.order("ETH", False, 2, 3100, GTC, reduce_only=True))[0]["resting"]["oid"]
    [shown] = info.frontend_open_orders(wallet.address)
    assert (shown["oid"], shown["sz"], shown["origSz"]) == (oid, "0.5", "2.0")
    ex.market_close("ETH", 0.2)
    assert info.frontend_open_orders(wallet.address)[0]["sz"] == "0.3"
    ex.market_close("ETH")
    assert info.frontend_open_orders(wallet.address) == []
    assert info.query_order_by_oid(wallet.address, oid)["order"]["status"] == "reduceOnlyCanceled"


def test_a_reduce_only_stop_larger_than_the_position_fills_only_the_position(sim, wallet, ex, info):
    ex.market_open("BTC", True, 0.02)
    oid = statuses(ex.order("BTC", False, 0.05, 47000, stop_loss(48500), reduce_only=True))[0]["resting"]["oid"]
    sim.set_mid("BTC", 48400)
    assert sim.positions(wallet.address) == {}
    order = info.query_order_by_oid(wallet.address, oid)["order"]
    assert (order["status"], order["order"]["origSz"]) == ("filled", "0.05")
    assert next(o for o in sim.applied_orders() if o["oid"] == oid)["filled_sz"] == "0.02"


# ---- 6: triggers on the mark ------------------------------------------------------------------------------------
def test_triggers_fire_on_the_mark_not_the_mid(sim, wallet, ex, info):
    ex.market_open("BTC", True, 0.02)
    oid = statuses(ex.order("BTC", False, 0.02, 47000, stop_loss(48500), reduce_only=True))[0]["resting"]["oid"]
    sim.set_mark("BTC", 48600)
    assert sim.positions(wallet.address) == {"BTC": "0.02"}
    meta, ctxs = info.meta_and_asset_ctxs()
    assert (ctxs[0]["markPx"], ctxs[0]["midPx"]) == ("48600.0", "50000.0")
    assert info.all_mids()["BTC"] == "50000.0"
    position = info.user_state(wallet.address)["assetPositions"][0]["position"]
    assert position["unrealizedPnl"] == "-28.0"  # valued at the mark
    sim.set_mark("BTC", 48400)
    assert sim.positions(wallet.address) == {}
    assert info.query_order_by_oid(wallet.address, oid)["order"]["status"] == "filled"
    fired = next(o for o in sim.applied_orders() if o["oid"] == oid)
    assert fired["avg_px"] == "50000.0"  # it fills at the market, as before
    sim.set_mid("ETH", 3100)  # set_mid moves the mark with it
    assert info.meta_and_asset_ctxs()[1][1]["markPx"] == "3100.0"


# ---- 7: modify -------------------------------------------------------------------------------------------------
def test_a_modified_order_gets_a_new_oid_and_keeps_its_cloid(sim, wallet, ex, info):
    cloid = Cloid.from_int(77)
    oid = statuses(ex.order("SOL", True, 1, 140, GTC, cloid=cloid))[0]["resting"]["oid"]
    [st] = statuses(ex.modify_order(oid, "SOL", True, 2, 141, GTC))
    new_oid = st["resting"]["oid"]
    assert new_oid != oid and st["resting"]["cloid"] == cloid.to_raw()
    assert info.query_order_by_oid(wallet.address, oid)["order"]["status"] == "canceled"
    by_cloid = info.query_order_by_cloid(wallet.address, cloid)["order"]
    assert (by_cloid["status"], by_cloid["order"]["oid"], by_cloid["order"]["sz"]) == ("open", new_oid, "2.0")
    assert [o["oid"] for o in info.frontend_open_orders(wallet.address)] == [new_oid]
    [st] = statuses(ex.modify_order(cloid, "SOL", True, 3, 142, GTC))  # by cloid
    assert st["resting"]["oid"] > new_oid
    assert statuses(ex.modify_order(oid, "SOL", True, 1, 140, GTC)) == [
        {"error": "Cannot modify canceled or filled order"}
    ]


# ---- 8: the cancel cap ------------------------------------------------------------------------------------------
def test_more_than_200_cancels_in_one_action_are_refused_as_a_whole(sim, wallet, ex, info):
    oid = statuses(ex.order("BTC", True, 0.01, 45000, GTC))[0]["resting"]["oid"]
    many = [{"coin": "BTC", "oid": oid}] + [{"coin": "BTC", "oid": 10_000 + i} for i in range(200)]
    assert ex.bulk_cancel(many) == {"status": "err", "response": "Signed action over weight limit of 200."}
    assert len(info.frontend_open_orders(wallet.address)) == 1
    done = statuses(ex.bulk_cancel(many[:200]))
    assert done[0] == "success" and len(done) == 200
    by_cloid = [{"coin": "BTC", "cloid": Cloid.from_int(i)} for i in range(201)]
    assert ex.bulk_cancel_by_cloid(by_cloid)["status"] == "err"


# ---- 9: rejected orders' records --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "coin, is_buy, sz, px, order_type, reduce_only, status",
    [
        ("DOGE", True, 10, 0.21, IOC, False, "minTradeNtlRejected"),
        ("BTC", False, 0.01, 49000, IOC, True, "reduceOnlyRejected"),
        ("BTC", True, 50, 50000, GTC, False, "perpMarginRejected"),
        ("ETH", True, 1, 2990, IOC, False, "iocCancelRejected"),
        ("BTC", True, 0.01, 50000, {"limit": {"tif": "Alo"}}, False, "badAloPxRejected"),
    ],
)
def test_a_rejected_order_keeps_a_record_with_an_oid(
    sim, wallet, ex, info, coin, is_buy, sz, px, order_type, reduce_only, status
):
    cloid = Cloid.from_int(5)
    [error] = statuses(ex.order(coin, is_buy, sz, px, order_type, reduce_only=reduce_only, cloid=cloid))
    assert set(error) == {"error"}  # the answer names no oid
    found = info.query_order_by_cloid(wallet.address, cloid)
    assert found["status"] == "order" and found["order"]["status"] == status
    assert isinstance(found["order"]["statusTimestamp"], int)
    order = found["order"]["order"]
    assert (order["cloid"], order["coin"], order["sz"]) == (cloid.to_raw(), coin, "0.0")
    assert info.query_order_by_oid(wallet.address, order["oid"])["order"]["status"] == status
    assert sim.applied_orders() == [] and [o["status"] for o in sim.rejected_orders()] == [status]
    next_oid = statuses(ex.market_open("BTC", True, 0.01))[0]["filled"]["oid"]
    assert next_oid > order["oid"]  # the oid was the rejected order's own


def test_an_order_refused_before_it_is_an_order_has_no_record(sim, wallet, ex, info):
    cloid = Cloid.from_int(6)
    [error] = statuses(ex.order("BTC", True, 0.01, 50000.12, GTC, cloid=cloid))
    assert error == {"error": "Order has invalid price. asset=0"}
    assert info.query_order_by_cloid(wallet.address, cloid) == {"status": "unknownOid"}


# ---- 10: isolated-only assets -----------------------------------------------------------------------------------
def test_an_isolated_only_asset_refuses_cross_leverage(sim, wallet, ex, info):
    [zro] = [a for a in info.meta()["universe"] if a.get("onlyIsolated")]
    assert zro == {
        "name": "ZRO",
        "szDecimals": 1,
        "maxLeverage": 5,
        "marginTableId": 5,
        "onlyIsolated": True,
        "marginMode": "strictIsolated",
    }
    assert sum(1 for a in info.meta()["universe"] if "onlyIsolated" in a or "marginMode" in a) == 1
    assert sim.leverage(wallet.address, "ZRO") == {"type": "isolated", "value": 5}  # its default
    assert ex.update_leverage(3, "ZRO", is_cross=True) == {
        "status": "err",
        "response": "Cross margin is not allowed for this asset.",
    }
    assert ex.update_leverage(3, "ZRO", is_cross=False)["status"] == "ok"
    assert "filled" in statuses(ex.market_open("ZRO", True, 10))[0]
    position = info.user_state(wallet.address)["assetPositions"][0]["position"]
    assert position["leverage"]["type"] == "isolated" and "rawUsd" in position["leverage"]


# ---- 11: answers a client must survive ------------------------------------------------------------------------------
def test_an_ok_order_answer_without_statuses_and_garbled_info_answers(sim, wallet, ex, info):
    bare = {"status": "ok", "response": {"type": "order", "data": {}}}
    sim.inject("answer", answer=json.dumps(bare))
    assert ex.market_open("BTC", True, 0.01) == bare
    assert sim.positions(wallet.address) == {"BTC": "0.01"}  # applied all the same
    for garbled in ("{}", '{"error": "internal"}', "null"):
        sim.inject("answer", path="/info", answer=garbled)
        assert info.user_state(wallet.address) == json.loads(garbled)
    assert info.user_state(wallet.address)["assetPositions"][0]["position"]["szi"] == "0.01"


def test_the_new_controls_over_http(sim, wallet):
    def control(**body):
        resp = requests.post(sim.url + "/control", json=body, timeout=5)
        assert resp.status_code == 200, resp.text
        return resp.json()

    control(op="set_mark", coin="BTC", px="49000")
    assert Info(sim.url, skip_ws=True).meta_and_asset_ctxs()[1][0]["markPx"] == "49000.0"
    control(op="set_weight_limit", n=100)
    assert control(op="weight_used") == 60  # the SDK's Info reads meta and spotMeta, then metaAndAssetCtxs
    control(op="reset_weights")
    assert control(op="weight_used", ip="127.0.0.1") == 0
    control(op="limit_address", user=wallet.address)
    control(op="limit_address", user=wallet.address, on=False)
    assert control(op="rejected_orders") == []
    bad = requests.post(sim.url + "/control", json={"op": "set_weight_limit", "n": -5}, timeout=5)
    assert bad.status_code == 400 and "limit" in bad.json()["error"]
