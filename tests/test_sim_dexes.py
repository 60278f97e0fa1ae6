"""The simulator's HIP-3 dex "xyz" (EXCHANGE.md §10): perpDexs, its own meta, mids, asset ids (100000 + dex index x
10000 + index), a clearinghouse per user that needs collateral moved to the dex, isolated-only assets, per-dex reads
and feeds, and the open-interest-cap refusal. Real sockets, the real SDK."""

from __future__ import annotations

import eth_account
import pytest
import requests
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid

from tests.test_sim_userdata import take

DEXES = ["", "xyz"]
GTC = {"limit": {"tif": "Gtc"}}
NVDA = "xyz:NVDA"


def statuses(resp):
    assert resp["status"] == "ok", resp
    return resp["response"]["data"]["statuses"]


def stop_loss(px):
    return {"trigger": {"triggerPx": px, "isMarket": True, "tpsl": "sl"}}


def take_profit(px):
    return {"trigger": {"triggerPx": px, "isMarket": True, "tpsl": "tp"}}


@pytest.fixture
def info(sim):
    return Info(sim.url, skip_ws=True, perp_dexs=DEXES)


@pytest.fixture
def ex(sim, wallet):
    return Exchange(wallet, sim.url, perp_dexs=DEXES)


@pytest.fixture
def funded(sim, wallet):
    sim.fund_dex(wallet.address, "xyz", 2_000)
    return wallet


# ---- the dex list, its meta, ids and mids --------------------------------------------------------------------------
def test_perp_dexs_lists_null_for_the_main_dex_then_xyz(info):
    dexes = info.perp_dexs()
    assert dexes[0] is None and len(dexes) == 2
    assert list(dexes[1]) == [
        "name",
        "fullName",
        "deployer",
        "oracleUpdater",
        "feeRecipient",
        "assetToStreamingOiCap",
        "subDeployers",
        "deployerFeeScale",
        "lastDeployerFeeScaleChangeTime",
        "assetToFundingMultiplier",
    ]
    assert (dexes[1]["name"], dexes[1]["fullName"]) == ("xyz", "XYZ")
    assert [coin for coin, _cap in dexes[1]["assetToStreamingOiCap"]] == sorted(
        ["xyz:NVDA", "xyz:SILVER", "xyz:TSLA", "xyz:XYZ100"]
    )


def test_each_dex_has_its_own_meta_and_asset_ids(info):
    universe = info.meta(dex="xyz")["universe"]
    assert [a["name"] for a in universe] == ["xyz:XYZ100", "xyz:TSLA", "xyz:NVDA", "xyz:SILVER"]
    assert universe[2] == {
        "name": NVDA,
        "szDecimals": 3,
        "maxLeverage": 10,
        "marginTableId": 10,
        "onlyIsolated": True,
        "marginMode": "strictIsolated",
    }
    assert "marginMode" not in universe[3]
    main = info.meta()["universe"]
    assert main[0]["name"] == "BTC" and not any(":" in a["name"] for a in main)
    assert info.coin_to_asset["BTC"] == 0 and info.coin_to_asset["ZRO"] == 9  # the main dex's are unchanged
    assert {c: a for c, a in info.coin_to_asset.items() if ":" in c} == {
        "xyz:XYZ100": 110000,  # 100000 + 1 x 10000 + 0
        "xyz:TSLA": 110001,
        "xyz:NVDA": 110002,
        "xyz:SILVER": 110003,
    }
    assert info.post("/info", {"type": "meta", "dex": "nope"}) is None
    meta, ctxs = info.post("/info", {"type": "metaAndAssetCtxs", "dex": "xyz"})
    assert meta["universe"] == universe and ctxs[2]["markPx"] == "177.06"


def test_all_mids_per_dex(sim, info):
    assert info.all_mids("xyz") == {
        "xyz:XYZ100": "25451.0",
        "xyz:TSLA": "465.13",
        "xyz:NVDA": "177.06",
        "xyz:SILVER": "30.5",
    }
    assert not any(":" in coin for coin in info.all_mids())  # the main dex's answer carries none of them
    sim.set_mid(NVDA, "180.5")
    assert info.all_mids("xyz")[NVDA] == "180.5" and sim.mids("xyz")[NVDA] == "180.5"


def test_the_all_mids_subscription_per_dex(sim, feed):
    main, xyz = feed(), feed()
    assert main.subscribe("allMids")["channel"] == "subscriptionResponse"
    assert main.next()["data"] == {"mids": sim.mids()}
    ack = xyz.subscribe("allMids", dex="xyz")
    assert ack == {
        "channel": "subscriptionResponse",
        "data": {"method": "subscribe", "subscription": {"type": "allMids", "dex": "xyz"}},
    }
    assert xyz.next() == {"channel": "allMids", "data": {"mids": sim.mids("xyz"), "dex": "xyz"}}
    sim.set_mid(NVDA, 181)
    assert xyz.next()["data"]["mids"][NVDA] == "181.0"
    assert main.silent()
    sim.set_mid("BTC", 51000)
    assert main.next()["data"]["mids"]["BTC"] == "51000.0"
    assert xyz.silent()
    assert xyz.subscribe("allMids", dex="nope")["channel"] == "error"


# ---- trading on the dex ------------------------------------------------------------------------------------------
def test_an_order_needs_collateral_on_the_dex(sim, wallet, ex, info):
    [refused] = statuses(ex.market_open(NVDA, True, 1))
    assert refused == {"error": "Insufficient margin to place order. asset=110002"}
    before = info.user_state(wallet.address)["withdrawable"]
    sim.fund_dex(wallet.address, "xyz", 1_000)
    assert float(info.user_state(wallet.address)["withdrawable"]) == float(before) - 1_000  # moved, not made
    assert info.user_state(wallet.address, "xyz")["marginSummary"]["accountValue"] == "1000.0"
    [filled] = statuses(ex.market_open(NVDA, True, 1))
    assert filled["filled"]["totalSz"] == "1.0"
    # its clearinghouse on the dex holds the position; the main dex's does not
    assert sim.positions(wallet.address, "xyz") == {NVDA: "1.0"} and sim.positions(wallet.address) == {}
    [row] = info.user_state(wallet.address, "xyz")["assetPositions"]
    assert row["position"]["coin"] == NVDA and row["position"]["leverage"]["type"] == "isolated"
    assert info.user_state(wallet.address)["assetPositions"] == []
    assert sim.applied_orders(wallet.address)[0]["asset"] == 110002
    assert [f["coin"] for f in info.user_fills(wallet.address)] == [NVDA]
    with pytest.raises(ValueError, match="less than"):
        sim.fund_dex(wallet.address, "xyz", 10**9)


def test_isolated_only_assets_refuse_cross_leverage(sim, funded, ex):
    cross = ex.update_leverage(5, NVDA, is_cross=True)
    assert cross == {"status": "err", "response": "Cross margin is not allowed for this asset."}
    assert ex.update_leverage(5, NVDA, is_cross=False)["status"] == "ok"
    assert sim.leverage(funded.address, NVDA) == {"type": "isolated", "value": 5}
    assert ex.update_leverage(3, "xyz:SILVER", is_cross=True)["status"] == "ok"  # one that allows cross
    assert sim.leverage(funded.address, "BTC") == {"type": "cross", "value": 20}  # the main dex's untouched


def test_open_orders_and_order_status_per_dex(sim, funded, ex, info):
    cloid = Cloid.from_int(9)
    oid = statuses(ex.order(NVDA, True, 1, 170, GTC, cloid=cloid))[0]["resting"]["oid"]
    main_oid = statuses(ex.order("BTC", True, 0.01, 40000, GTC))[0]["resting"]["oid"]
    user = funded.address
    assert [o["oid"] for o in info.frontend_open_orders(user, "xyz")] == [oid]
    assert [o["oid"] for o in info.frontend_open_orders(user)] == [main_oid]
    assert [o["coin"] for o in info.open_orders(user, "xyz")] == [NVDA]
    assert info.query_order_by_cloid(user, cloid)["order"]["order"]["coin"] == NVDA
    assert info.user_state(user, "xyz")["withdrawable"] == "1983.0"  # 170 reserved at 10x
    assert statuses(ex.cancel(NVDA, oid)) == ["success"]
    assert info.frontend_open_orders(user, "xyz") == []
    assert info.post("/info", {"type": "frontendOpenOrders", "user": user, "dex": "nope"}) is None


def test_a_trade_and_its_stop_loss_and_take_profit_on_the_dex(sim, funded, ex, info):
    ex.market_open(NVDA, True, 2)
    stop = statuses(ex.order(NVDA, False, 2, 150, stop_loss(160), reduce_only=True))[0]["resting"]["oid"]
    profit = statuses(ex.order(NVDA, False, 2, 190, take_profit(200), reduce_only=True))[0]["resting"]["oid"]
    rows = info.frontend_open_orders(funded.address, "xyz")
    assert {(o["oid"], o["orderType"]) for o in rows} == {(stop, "Stop Market"), (profit, "Take Profit Market")}
    sim.set_mid(NVDA, 159)
    assert sim.positions(funded.address, "xyz") == {}
    assert info.query_order_by_oid(funded.address, stop)["order"]["status"] == "filled"


def test_a_sub_account_trades_on_the_dex(sim, wallet):
    sub = eth_account.Account.create().address.lower()
    sim.add_sub_account(wallet.address, sub, usdc=3_000)
    sim.fund_dex(sub, "xyz", 500)
    ex = Exchange(wallet, sim.url, vault_address=sub, perp_dexs=DEXES)
    assert "filled" in statuses(ex.market_open("xyz:TSLA", False, 0.5))[0]
    assert sim.positions(sub, "xyz") == {"xyz:TSLA": "-0.5"} and sim.positions(wallet.address, "xyz") == {}
    assert ex.market_close("xyz:TSLA")["status"] == "ok"  # the SDK reads user_state(sub, "xyz") to close it
    assert sim.positions(sub, "xyz") == {}


# ---- the open-interest cap ---------------------------------------------------------------------------------------
def test_an_order_that_would_increase_open_interest_at_its_cap_is_refused(sim, funded, ex, info):
    ex.market_open(NVDA, True, 1)
    sim.cap_open_interest(NVDA)
    cloid = Cloid.from_int(4)
    [refused] = statuses(ex.market_open(NVDA, True, 1, cloid=cloid))
    assert refused == {"error": "Order would increase open interest while open interest is capped asset=110002"}
    status = info.query_order_by_cloid(funded.address, cloid)["order"]["status"]
    assert status == "positionIncreaseAtOpenInterestCapRejected"
    assert "filled" in statuses(ex.market_close(NVDA, 0.5))[0]  # reducing passes
    sim.cap_open_interest("BTC")  # the main dex's coins too
    assert statuses(ex.market_open("BTC", True, 0.01))[0]["error"].endswith("capped asset=0")
    sim.cap_open_interest(NVDA, on=False)
    assert "filled" in statuses(ex.market_open(NVDA, True, 1))[0]
    assert sim.positions(funded.address, "xyz") == {NVDA: "1.5"}


# ---- feeds -------------------------------------------------------------------------------------------------------
def test_clearinghouse_state_and_open_orders_subscriptions_per_dex(sim, funded, ex, feed):
    user = funded.address.lower()
    xyz, main = feed(), feed()
    for f, dex in ((xyz, "xyz"), (main, "")):
        for kind in ("clearinghouseState", "openOrders"):
            assert f.subscribe(kind, user, dex=dex)["channel"] == "subscriptionResponse"
            snapshot = f.next()
            assert (snapshot["channel"], snapshot["data"]["dex"], snapshot["data"]["user"]) == (kind, dex, user)
    ex.market_open(NVDA, True, 1)
    state, orders = take(xyz, 2)
    assert state["data"]["clearinghouseState"]["assetPositions"][0]["position"]["coin"] == NVDA
    assert orders == {"channel": "openOrders", "data": {"dex": "xyz", "user": user, "orders": []}}
    assert main.silent()  # nothing changed on the main dex
    ex.market_open("BTC", True, 0.01)
    assert [m["channel"] for m in take(main, 2)] == ["clearinghouseState", "openOrders"]
    assert xyz.silent()
    asset = feed()
    asset.subscribe("activeAssetData", user, coin=NVDA)
    assert asset.next()["data"]["leverage"] == {"type": "isolated", "value": 10, "rawUsd": "-159.354"}


def test_the_controls_over_http(sim, wallet):
    def control(**body):
        return requests.post(sim.url + "/control", json=body, timeout=5)

    assert control(op="fund_dex", user=wallet.address, dex="xyz", usdc=250).status_code == 200
    assert Info(sim.url, skip_ws=True).user_state(wallet.address, "xyz")["withdrawable"] == "250.0"
    assert control(op="cap_open_interest", coin=NVDA).status_code == 200
    assert control(op="cap_open_interest", coin=NVDA, on=False).status_code == 200
    for bad, text in (
        ({"op": "fund_dex", "user": wallet.address, "dex": "nope", "usdc": 1}, "unknown dex"),
        ({"op": "fund_dex", "user": wallet.address, "dex": "xyz", "usdc": -1}, "positive"),
        ({"op": "cap_open_interest", "coin": "xyz:NOPE"}, "unknown coin"),
    ):
        resp = control(**bad)
        assert resp.status_code == 400 and text in resp.json()["error"], resp.text
