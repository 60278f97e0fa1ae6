"""The local Hyperliquid simulator, driven over real sockets by the real SDK."""

from __future__ import annotations

import json
import threading
import time

import eth_account
import pytest
import requests
import websocket
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError, ServerError
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action
from hyperliquid.utils.types import Cloid

from fractrade_sync.sim.hl_server import HyperliquidSimulator

GTC = {"limit": {"tif": "Gtc"}}
IOC = {"limit": {"tif": "Ioc"}}
ALO = {"limit": {"tif": "Alo"}}


def stop_loss(px):
    return {"trigger": {"triggerPx": px, "isMarket": True, "tpsl": "sl"}}


def take_profit(px):
    return {"trigger": {"triggerPx": px, "isMarket": True, "tpsl": "tp"}}


def wait_for(condition, timeout=5.0, what="condition"):
    """Poll until condition() is truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def statuses(resp):
    assert resp["status"] == "ok", resp
    return resp["response"]["data"]["statuses"]


def post_signed(sim, wallet, action, nonce):
    """Sign an L1 action as the SDK does (testnet), with a nonce of our choosing."""
    sig = sign_l1_action(wallet, action, None, nonce, None, False)
    body = {
        "action": action,
        "nonce": nonce,
        "signature": sig,
        "vaultAddress": None,
        "expiresAfter": None,
    }
    return requests.post(sim.url + "/exchange", json=body, timeout=5).json()


@pytest.fixture
def sim():
    with HyperliquidSimulator() as s:
        yield s


@pytest.fixture
def wallet(sim):
    w = eth_account.Account.create()
    sim.add_account(w.address)
    return w


def test_market_open_fills_and_shows_a_position(sim, wallet, ex, info):
    cloid = Cloid.from_int(1)
    resp = ex.market_open("BTC", True, 0.01, cloid=cloid)
    assert statuses(resp) == [
        {
            "filled": {
                "totalSz": "0.01",
                "avgPx": "50000.0",
                "oid": 1,
                "cloid": cloid.to_raw(),
            }
        }
    ]
    assert sim.positions(wallet.address) == {"BTC": "0.01"}
    [pos] = info.user_state(wallet.address)["assetPositions"]
    assert pos["type"] == "oneWay"
    p = pos["position"]
    assert (p["coin"], p["szi"], p["entryPx"]) == ("BTC", "0.01", "50000.0")
    assert p["leverage"] == {"type": "cross", "value": 20} and p["maxLeverage"] == 40
    [order] = sim.applied_orders(wallet.address)
    assert order["status"] == "filled" and order["tif"] == "Ioc"
    assert order["signer"] == wallet.address.lower() and order["cloid"] == cloid.to_raw()
    # A second buy at a new mid averages the entry price.
    sim.set_mid("BTC", 52000)
    ex.market_open("BTC", True, 0.01)
    p = info.user_state(wallet.address)["assetPositions"][0]["position"]
    assert (p["szi"], p["entryPx"], p["unrealizedPnl"]) == ("0.02", "51000.0", "20.0")


def test_info_shapes_the_sdk_reads(sim, info):
    meta = info.meta()
    assert {u["szDecimals"] for u in meta["universe"]} >= {0, 1, 2, 3, 4, 5}
    assert meta["universe"][0] == {
        "name": "BTC",
        "szDecimals": 5,
        "maxLeverage": 40,
        "marginTableId": 40,
    }
    meta2, ctxs = info.meta_and_asset_ctxs()
    assert meta2 == meta and ctxs[0]["markPx"] == "50000.0"
    assert info.all_mids()["DOGE"] == "0.2"
    assert info.user_role("0x" + "11" * 20) == {"role": "missing"}
    with pytest.raises(ClientError) as err:
        info.post("/info", {"type": "noSuchThing"})
    assert err.value.status_code == 422 and "noSuchThing" in err.value.error_message


@pytest.mark.parametrize(
    "coin, is_buy, sz, px, order_type, reduce_only, error",
    [
        ("BTC", True, 0.01, 50000.12, GTC, False, "Order has invalid price. asset=0"),
        ("DOGE", True, 100, 0.1234567, GTC, False, "Order has invalid price. asset=4"),
        (
            "BTC",
            True,
            0.01,
            49999.5,
            GTC,
            False,
            "Price must be divisible by tick size. asset=0",
        ),
        ("BTC", True, 0.000001, 50000, GTC, False, "Order has invalid size. asset=0"),
        (
            "DOGE",
            True,
            10,
            0.21,
            IOC,
            False,
            "Order must have minimum value of $10. asset=4",
        ),
        (
            "BTC",
            True,
            0.01,
            5000,
            GTC,
            False,
            "Order price cannot be more than 80% away from the reference price",
        ),
        (
            "BTC",
            False,
            0.01,
            49000,
            IOC,
            True,
            "Reduce only order would increase position. asset=0",
        ),
        (
            "ETH",
            True,
            1,
            2990,
            IOC,
            False,
            "Order could not immediately match against any resting orders. asset=1",
        ),
        (
            "BTC",
            True,
            0.01,
            50000,
            ALO,
            False,
            "Post only order would have immediately matched, bbo was 50000.0@50000.0. asset=0",
        ),
        (
            "BTC",
            True,
            1,
            50000,
            GTC,
            False,
            "Insufficient margin to place order. asset=0",
        ),
    ],
)
def test_order_rules_answer_with_hyperliquids_texts(sim, wallet, coin, is_buy, sz, px, order_type, reduce_only, error):
    sim.add_account(wallet.address, usdc=1000)  # 1 BTC at 20x needs $2500
    ex = Exchange(wallet, base_url=sim.url)
    resp = ex.order(coin, is_buy, sz, px, order_type, reduce_only=reduce_only)
    assert statuses(resp) == [{"error": error}]
    assert sim.applied_orders() == []
    assert sim.exchange_log()[-1]["errors"] == [error]


def test_reduce_only_closing_a_whole_small_position_is_exempt_from_10_dollars(sim, wallet, ex):
    ex.market_open("BTC", True, 0.0003)  # $15
    sim.set_mid("BTC", 30000)  # now $9
    resp = ex.order("BTC", False, 0.0002, 29000, IOC, reduce_only=True)
    assert statuses(resp) == [{"error": "Order must have minimum value of $10. asset=0"}]
    resp = ex.order("BTC", False, 0.0003, 29000, IOC, reduce_only=True)
    assert "filled" in statuses(resp)[0]
    assert sim.positions(wallet.address) == {}


def test_update_leverage(sim, wallet, ex, info):
    assert ex.update_leverage(41, "BTC") == {
        "status": "err",
        "response": "Invalid leverage value",
    }
    assert ex.update_leverage(7, "ETH", is_cross=False) == {
        "status": "ok",
        "response": {"type": "default"},
    }
    assert sim.leverage(wallet.address, "ETH") == {"type": "isolated", "value": 7}
    ex.market_open("ETH", False, 0.1)
    p = info.user_state(wallet.address)["assetPositions"][0]["position"]
    assert p["leverage"]["type"] == "isolated" and p["leverage"]["value"] == 7


def test_unknown_signer_is_refused_and_nothing_applied(sim):
    stranger = eth_account.Account.create()
    ex = Exchange(stranger, base_url=sim.url)
    resp = ex.market_open("BTC", True, 0.01)
    assert resp == {
        "status": "err",
        "response": f"User or API Wallet {stranger.address.lower()} does not exist.",
    }
    assert sim.applied_orders() == []


def test_an_approved_agent_trades_for_its_user(sim, wallet, info):
    agent = eth_account.Account.create()
    sim.approve_agent(wallet.address, agent.address, name="bot")
    ex = Exchange(agent, base_url=sim.url, account_address=wallet.address)
    assert "filled" in statuses(ex.market_open("ETH", True, 0.01))[0]
    assert sim.positions(wallet.address) == {"ETH": "0.01"}
    assert sim.positions(agent.address) == {}
    [order] = sim.applied_orders()
    assert order["user"] == wallet.address.lower() and order["signer"] == agent.address.lower()
    assert info.user_role(agent.address) == {
        "role": "agent",
        "data": {"user": wallet.address.lower()},
    }
    assert info.user_role(wallet.address) == {"role": "user"}
    [extra] = info.extra_agents(wallet.address)
    assert (extra["name"], extra["address"]) == ("bot", agent.address.lower())


def test_the_sdks_approve_agent_action_registers_an_agent(sim, wallet, ex):
    resp, agent_key = ex.approve_agent("sdk")
    assert resp == {"status": "ok", "response": {"type": "default"}}
    agent = eth_account.Account.from_key(agent_key)
    by_agent = Exchange(agent, base_url=sim.url, account_address=wallet.address)
    assert "filled" in statuses(by_agent.market_open("SOL", False, 1))[0]
    assert sim.positions(wallet.address) == {"SOL": "-1.0"}


def test_nonces_duplicate_stale_and_below_the_kept_100(sim, wallet):
    action = {"type": "scheduleCancel"}
    nonce = get_timestamp_ms()
    assert post_signed(sim, wallet, action, nonce)["status"] == "ok"
    assert post_signed(sim, wallet, action, nonce) == {
        "status": "err",
        "response": f"Invalid nonce: duplicate nonce {nonce}",
    }
    stale = nonce - 3 * 86_400_000
    resp = post_signed(sim, wallet, action, stale)
    assert resp["response"].startswith(f"Invalid nonce: nonce too low {stale} < ")
    future = nonce + 2 * 86_400_000
    resp = post_signed(sim, wallet, action, future)
    assert resp["response"].startswith(f"Invalid nonce: nonce too high {future} > ")
    for i in range(1, 101):  # the 100 highest nonces are kept per signer
        assert post_signed(sim, wallet, action, nonce + i)["status"] == "ok"
    assert post_signed(sim, wallet, action, nonce - 1) == {
        "status": "err",
        "response": f"Invalid nonce: nonce too low {nonce - 1} < {nonce + 1}",
    }


def test_stop_loss_rests_then_fires_when_the_mid_crosses(sim, wallet, ex, info):
    ex.market_open("BTC", True, 0.02)
    cloid = Cloid.from_int(42)
    resp = ex.order("BTC", False, 0.02, 47000, stop_loss(48500), reduce_only=True, cloid=cloid)
    [resting] = statuses(resp)
    oid = resting["resting"]["oid"]
    [shown] = info.frontend_open_orders(wallet.address)
    assert shown["isTrigger"] and shown["orderType"] == "Stop Market"
    assert shown["triggerPx"] == "48500.0" and shown["reduceOnly"]
    sim.set_mid("BTC", 49000)  # not yet
    assert sim.positions(wallet.address) == {"BTC": "0.02"}
    sim.set_mid("BTC", 48400)
    assert sim.positions(wallet.address) == {}
    status = info.query_order_by_cloid(wallet.address, cloid)
    assert status["status"] == "order" and status["order"]["status"] == "filled"
    assert status["order"]["order"]["oid"] == oid
    fired = next(o for o in sim.applied_orders() if o["oid"] == oid)
    assert (fired["filled_sz"], fired["avg_px"]) == ("0.02", "48400.0")
    user = info.user_state(wallet.address)
    # lost 0.02 * 1600, and the taker fees of the open and the stop's fill (0.45 + 0.4356: hl_ledger)
    assert user["marginSummary"]["accountValue"] == "99967.1144"


def test_take_profit_on_a_short_and_a_trigger_whose_position_is_gone(sim, wallet, ex):
    ex.market_open("ETH", False, 1)
    ex.order("ETH", True, 1, 2900, take_profit(2850), reduce_only=True)
    ex.order("ETH", True, 1, 3200, stop_loss(3150), reduce_only=True)
    sim.set_mid("ETH", 2840)  # the take profit buys back the short
    assert sim.positions(wallet.address) == {}
    sim.set_mid("ETH", 3160)  # the stop has nothing left to protect
    states = [o["status"] for o in sim.applied_orders()]
    assert states == ["filled", "filled", "reduceOnlyCanceled"]
    assert sim.open_orders(wallet.address) == []


def test_resting_limit_fills_when_the_mid_reaches_it(sim, wallet, ex):
    [st] = statuses(ex.order("SOL", True, 1, 140, GTC))
    assert "resting" in st
    sim.set_mid("SOL", 139)
    assert sim.positions(wallet.address) == {"SOL": "1.0"}
    assert sim.applied_orders()[0]["avg_px"] == "140.0"


def test_cancel_and_cancel_by_cloid(sim, wallet, ex, info):
    cloid = Cloid.from_int(9)
    oid = statuses(ex.order("BTC", True, 0.01, 45000, GTC))[0]["resting"]["oid"]
    statuses(ex.order("BTC", True, 0.01, 44000, GTC, cloid=cloid))
    assert len(info.open_orders(wallet.address)) == 2
    assert statuses(ex.cancel("BTC", oid)) == ["success"]
    missing = "Order was never placed, already canceled, or filled. asset=0"
    assert statuses(ex.cancel("BTC", oid)) == [{"error": missing}]
    assert statuses(ex.cancel_by_cloid("BTC", cloid)) == ["success"]
    assert statuses(ex.cancel_by_cloid("BTC", cloid)) == [{"error": missing}]
    assert info.open_orders(wallet.address) == []
    assert info.query_order_by_oid(wallet.address, oid)["order"]["status"] == "canceled"
    assert info.query_order_by_oid(wallet.address, 999) == {"status": "unknownOid"}
    assert info.query_order_by_cloid(wallet.address, Cloid.from_int(10)) == {"status": "unknownOid"}


def test_a_reused_cloid_is_accepted_like_the_real_exchange(sim, wallet, ex):
    cloid = Cloid.from_int(5)
    ex.market_open("BTC", True, 0.01, cloid=cloid)
    ex.market_open("BTC", True, 0.01, cloid=cloid)
    assert sim.positions(wallet.address) == {"BTC": "0.02"}


def test_liquidity_cap_gives_a_partial_ioc_fill(sim, wallet, ex, info):
    sim.set_liquidity("ETH", "0.3")
    resp = ex.market_open("ETH", True, 1)
    [st] = statuses(resp)
    assert st["filled"]["totalSz"] == "0.3"
    oid = st["filled"]["oid"]
    assert info.query_order_by_oid(wallet.address, oid)["order"]["status"] == "canceled"
    assert sim.positions(wallet.address) == {"ETH": "0.3"}


def test_fault_500_raises_server_error_and_applies_nothing(sim, wallet, ex):
    sim.inject("500")
    with pytest.raises(ServerError) as err:
        ex.market_open("BTC", True, 0.01)
    assert (err.value.status_code, err.value.message) == (500, "Internal Server Error")
    assert sim.applied_orders() == [] and sim.positions(wallet.address) == {}
    assert "filled" in statuses(ex.market_open("BTC", True, 0.01))[0]  # consumed


def test_fault_429_raises_client_error_and_applies_nothing(sim, wallet, ex):
    sim.inject("429")
    with pytest.raises(ClientError) as err:
        ex.market_open("BTC", True, 0.01)
    assert err.value.status_code == 429 and err.value.error_message == ""
    assert sim.applied_orders() == []
    assert sim.exchange_log()[-1]["fault"] == "429"


def test_fault_timeout_the_client_gives_up_but_the_order_was_applied(sim, wallet):
    ex = Exchange(wallet, base_url=sim.url, timeout=0.5)
    sim.inject("timeout")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        ex.market_open("BTC", True, 0.01, cloid=Cloid.from_int(3))
    assert time.monotonic() - started < 2
    assert sim.positions(wallet.address) == {"BTC": "0.01"}
    info = Info(sim.url, skip_ws=True)
    assert info.query_order_by_cloid(wallet.address, Cloid.from_int(3))["order"]["status"] == ("filled")


def test_fault_drop_the_connection_closes_but_the_order_was_applied(sim, wallet, ex):
    sim.inject("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        ex.market_open("BTC", True, 0.01)
    assert sim.positions(wallet.address) == {"BTC": "0.01"}
    assert "filled" in statuses(ex.market_open("BTC", True, 0.01))[0]  # next one is fine


def test_faults_are_fifo_per_path(sim, wallet, ex, info):
    sim.inject("500", count=2)
    sim.inject("429", path="/info")
    with pytest.raises(ClientError):
        info.all_mids()
    assert info.all_mids()["BTC"] == "50000.0"
    for _ in range(2):
        with pytest.raises(ServerError):
            ex.update_leverage(5, "BTC")
    assert ex.update_leverage(5, "BTC")["status"] == "ok"
    assert sim.request_count("/exchange", "updateLeverage") == 3


def test_latency_is_added_to_every_request(sim, info):
    sim.latency_s = 0.3
    started = time.monotonic()
    info.all_mids()
    assert time.monotonic() - started >= 0.3


def test_control_over_http(sim):
    def control(**body):
        resp = requests.post(sim.url + "/control", json=body, timeout=5)
        assert resp.status_code == 200, resp.text
        return resp.json()

    user = eth_account.Account.create()
    control(op="add_account", address=user.address, usdc="5000")
    control(op="set_mid", coin="SOL", px="155.5")
    assert Info(sim.url, skip_ws=True).all_mids()["SOL"] == "155.5"
    ex = Exchange(user, base_url=sim.url)
    ex.market_open("SOL", True, 1)
    assert control(op="positions", user=user.address) == {"SOL": "1.0"}
    assert control(op="applied_orders")[0]["avg_px"] == "155.5"
    control(op="inject", kind="500")
    control(op="reset_faults")
    assert statuses(ex.market_open("SOL", True, 1))[0]["filled"]["totalSz"] == "1.0"
    assert [e["action_type"] for e in control(op="exchange_log")] == ["order", "order"]
    bad = requests.post(sim.url + "/control", json={"op": "nope"}, timeout=5)
    assert bad.status_code == 400 and "unknown op" in bad.json()["error"]


def test_stop_is_idempotent_and_prompt_with_a_sleeping_fault():
    sim = HyperliquidSimulator().start()
    user = eth_account.Account.create()
    sim.add_account(user.address)
    sim.inject("timeout")
    ex = Exchange(user, base_url=sim.url, timeout=0.3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        ex.market_open("BTC", True, 0.01)
    started = time.monotonic()
    sim.stop()
    sim.stop()
    assert time.monotonic() - started < 2
    prefix = f"hl-sim-{sim.url.rsplit(':', 1)[1]}"
    assert [t.name for t in threading.enumerate() if t.name.startswith(prefix)] == []


def test_malformed_requests_and_signatures(sim, wallet):
    order = {"a": 0, "b": True, "p": "50000", "s": "0.01", "r": False, "t": {"limit": {"tif": "Day"}}}
    action = {"type": "order", "orders": [order], "grouping": "na"}
    nonce = get_timestamp_ms()
    resp = requests.post(
        sim.url + "/exchange",
        json={"action": action, "nonce": nonce, "signature": sign_l1_action(wallet, action, None, nonce, None, False)},
        timeout=5,
    )
    assert resp.status_code == 422 and resp.text.startswith("Failed to deserialize the JSON body")
    bad_sig = {"r": "0x1", "s": "0x2", "v": 5}
    resp = requests.post(
        sim.url + "/exchange", json={"action": action, "nonce": nonce, "signature": bad_sig}, timeout=5
    )
    assert resp.json() == {"status": "err", "response": "Unable to recover signer."}
    assert sim.applied_orders() == []
    order["t"] = {"limit": {"tif": "Gtc"}}  # the 422 spent no nonce: the same one now works
    assert "filled" in statuses(post_signed(sim, wallet, action, nonce))[0]


def test_ws_all_mids_with_websocket_client(sim):
    ws = websocket.create_connection(sim.url.replace("http", "ws") + "/ws", timeout=5)
    try:
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "allMids"}}))
        first = json.loads(ws.recv())
        assert first == {
            "channel": "subscriptionResponse",
            "data": {"method": "subscribe", "subscription": {"type": "allMids"}},
        }
        snapshot = json.loads(ws.recv())
        assert snapshot["channel"] == "allMids"
        assert snapshot["data"]["mids"]["BTC"] == "50000.0"
        sim.set_mid("BTC", 51000)
        assert json.loads(ws.recv())["data"]["mids"]["BTC"] == "51000.0"
        ws.send(json.dumps({"method": "ping"}))
        assert json.loads(ws.recv()) == {"channel": "pong"}
    finally:
        ws.close()


def test_the_ticker_pushes_allmids_as_large_and_as_often_as_hyperliquid(sim):
    ws = websocket.create_connection(sim.url.replace("http", "ws") + "/ws", timeout=5)
    try:
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "allMids"}}))
        ws.recv(), ws.recv()  # the subscription answer, the snapshot
        sim.start_ticker(interval=0.02, spot_coins=450)
        sim.start_ticker(interval=0.02, spot_coins=450)  # a second start changes nothing
        started, pushes = time.monotonic(), [ws.recv() for _ in range(10)]
        assert time.monotonic() - started < 2  # every 20 ms, not once per set_mid
        mids = [json.loads(push)["data"]["mids"] for push in pushes]
        assert all(len(m) == len(mids[0]) >= 450 + 4 for m in mids)
        assert len(pushes[-1]) > 8_000  # bytes: about the size of the real allMids
        assert len({m["@0"] + m["@1"] + m["@2"] for m in mids}) > 1  # the spot-style mids move
        assert all(m["BTC"] == "50000.0" for m in mids)  # the perps do not
        assert Info(sim.url, skip_ws=True).all_mids()["@449"] == mids[-1]["@449"]  # REST says the same
    finally:
        ws.close()
    sim.stop()
    assert not sim._ticker.is_alive()


def test_the_tickers_mids_go_down_and_up_again_and_its_interval_is_checked(sim):
    with pytest.raises(ValueError, match="interval"):
        sim.start_ticker(interval=0)
    sim.start_ticker(interval=0.002, spot_coins=4)  # an even count: each coin comes up on the same step parity
    seen = set()
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(sim.mids()["@0"])
        time.sleep(0.003)
    time.sleep(0.1)  # a dozen rounds more
    seen.add(sim.mids()["@0"])
    assert len(seen) == 2  # two values, back and forth: no drift


def test_ws_all_mids_with_the_sdk(sim):
    info = Info(sim.url)  # skip_ws=False: the SDK's WebsocketManager connects to /ws
    seen = []
    got = threading.Event()

    def on_mids(msg):
        seen.append(msg["data"]["mids"])
        if msg["data"]["mids"]["ETH"] == "3100.0":
            got.set()

    try:
        info.subscribe({"type": "allMids"}, on_mids)
        wait_for(lambda: seen, what="the first allMids push")
        sim.set_mid("ETH", 3100)
        assert got.wait(5)
    finally:
        info.disconnect_websocket()
