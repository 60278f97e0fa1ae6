"""The simulator's user-data feeds (orderUpdates, userFills, clearinghouseState, openOrders, activeAssetData) over a
real /ws socket."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import eth_account
import requests
import websocket
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid

from tests.conftest import wait_for

GTC = {"limit": {"tif": "Gtc"}}
FILL_KEYS = {
    "coin",
    "px",
    "sz",
    "side",
    "time",
    "startPosition",
    "dir",
    "closedPnl",
    "hash",
    "oid",
    "crossed",
    "fee",
    "tid",
    "feeToken",
    "twapId",
}
ACCOUNT = ("clearinghouseState", "openOrders")


def stop_loss(px):
    return {"trigger": {"triggerPx": px, "isMarket": True, "tpsl": "sl"}}


class Feed:
    """One /ws connection, read a message at a time."""

    def __init__(self, sim) -> None:
        self.ws = websocket.create_connection(sim.url.replace("http", "ws") + "/ws", timeout=5)

    def send(self, **message) -> None:
        self.ws.send(json.dumps(message))

    def next(self) -> dict:
        return json.loads(self.ws.recv())

    def subscribe(self, kind: str, user: str | None = None, method: str = "subscribe", **extra) -> dict:
        """Send a (un)subscription and return the server's answer to it."""
        self.send(method=method, subscription={"type": kind, **({"user": user} if user else {}), **extra})
        return self.next()

    def subscribe_all(self, user: str) -> None:
        """orderUpdates, userFills, clearinghouseState and openOrders, their snapshots read and dropped."""
        for kind in ("orderUpdates", "userFills", *ACCOUNT):
            assert self.subscribe(kind, user)["channel"] == "subscriptionResponse"
            if kind != "orderUpdates":
                assert self.next()["channel"] == kind

    def silent(self, seconds: float = 0.3) -> bool:
        """True if nothing arrives for `seconds`."""
        self.ws.settimeout(seconds)
        try:
            self.ws.recv()
            return False
        except websocket.WebSocketTimeoutException:
            return True
        finally:
            self.ws.settimeout(5)


def take(f: Feed, n: int) -> list[dict]:
    return [f.next() for _ in range(n)]


def szi(msg: dict) -> str:
    """The first position's size in a clearinghouseState push."""
    return msg["data"]["clearinghouseState"]["assetPositions"][0]["position"]["szi"]


def test_snapshots_on_subscribe_beside_allmids(sim, wallet, feed, ex):
    ex.market_open("BTC", True, 0.01, cloid=Cloid.from_int(7))
    user = wallet.address.lower()
    f = feed()
    assert f.subscribe("allMids")["channel"] == "subscriptionResponse"
    assert f.next()["channel"] == "allMids"
    assert f.subscribe("clearinghouseState", wallet.address, dex="") == {
        "channel": "subscriptionResponse",
        "data": {
            "method": "subscribe",
            "subscription": {"type": "clearinghouseState", "user": wallet.address, "dex": ""},
        },
    }
    state = f.next()
    assert state["channel"] == "clearinghouseState" and set(state["data"]) == {"dex", "user", "clearinghouseState"}
    assert (state["data"]["dex"], state["data"]["user"]) == ("", user)
    polled = Info(sim.url, skip_ws=True).user_state(wallet.address)
    assert {**state["data"]["clearinghouseState"], "time": 0} == {**polled, "time": 0}
    assert abs(state["data"]["clearinghouseState"]["time"] - time.time() * 1000) < 5000
    assert f.subscribe("openOrders", wallet.address)["channel"] == "subscriptionResponse"  # dex: "" by default
    assert f.next() == {"channel": "openOrders", "data": {"dex": "", "user": user, "orders": []}}
    f.subscribe("userFills", wallet.address)
    snapshot = f.next()
    assert snapshot["channel"] == "userFills" and snapshot["data"]["isSnapshot"] is True
    [fill] = snapshot["data"]["fills"]
    assert set(fill) == FILL_KEYS | {"cloid"} and fill["cloid"] == Cloid.from_int(7).to_raw()
    assert (fill["startPosition"], fill["dir"], fill["sz"], fill["side"]) == ("0.0", "Open Long", "0.01", "B")
    f.subscribe("orderUpdates", wallet.address)
    assert f.silent()  # orderUpdates sends no snapshot
    assert sim.userdata_pushes() == 3


def test_an_ioc_fill_pushes_order_updates_fills_then_the_account(sim, wallet, feed, ex):
    f = feed()
    f.subscribe_all(wallet.address)
    cloid = Cloid.from_int(3)
    oid = ex.market_open("BTC", True, 0.02, cloid=cloid)["response"]["data"]["statuses"][0]["filled"]["oid"]
    updates, fills, state, orders = take(f, 4)
    assert [m["channel"] for m in (updates, fills, state, orders)] == ["orderUpdates", "userFills", *ACCOUNT]
    [update] = updates["data"]
    limit_px = sim.applied_orders()[0]["limit_px"]
    assert update["status"] == "filled" and isinstance(update["statusTimestamp"], int)
    assert {**update["order"], "timestamp": 0} == {
        "coin": "BTC",
        "side": "B",
        "limitPx": limit_px,
        "sz": "0.0",
        "oid": oid,
        "timestamp": 0,
        "origSz": "0.02",
        "cloid": cloid.to_raw(),
    }
    assert "isSnapshot" not in fills["data"] and fills["data"]["user"] == wallet.address.lower()
    [fill] = fills["data"]["fills"]
    assert (fill["oid"], fill["cloid"], fill["px"], fill["startPosition"], fill["crossed"]) == (
        oid,
        cloid.to_raw(),
        "50000.0",
        "0.0",
        True,
    )
    assert fill["hash"].startswith("0x") and len(fill["hash"]) == 66
    [pos] = state["data"]["clearinghouseState"]["assetPositions"]
    assert (pos["position"]["coin"], pos["position"]["szi"]) == ("BTC", "0.02")
    assert orders["data"]["orders"] == []
    sim.set_mid("BTC", 51000)  # moves no order: nothing user-data to push
    ex.market_close("BTC", 0.01)
    updates, fills, state, _orders = take(f, 4)
    [fill] = fills["data"]["fills"]
    assert (fill["side"], fill["startPosition"], fill["dir"], fill["closedPnl"]) == ("A", "0.02", "Close Long", "10.0")
    assert fill["tid"] > 1 and "cloid" not in fill
    assert szi(state) == "0.01"


def test_a_resting_trigger_then_its_cancel(sim, wallet, feed, ex):
    ex.market_open("BTC", True, 0.02)
    f = feed()
    f.subscribe_all(wallet.address)
    resp = ex.order("BTC", False, 0.02, 47000, stop_loss(48500), reduce_only=True, cloid=Cloid.from_int(42))
    oid = resp["response"]["data"]["statuses"][0]["resting"]["oid"]
    updates, state, orders = take(f, 3)
    assert [m["channel"] for m in (updates, state, orders)] == ["orderUpdates", *ACCOUNT]  # no fill, no userFills
    [update] = updates["data"]
    assert update["status"] == "open" and update["order"]["oid"] == oid
    assert (update["order"]["sz"], update["order"]["origSz"], update["order"]["limitPx"]) == ("0.02", "0.02", "47000.0")
    [shown] = orders["data"]["orders"]
    assert (shown["oid"], shown["isTrigger"], shown["triggerPx"], shown["orderType"]) == (
        oid,
        True,
        "48500.0",
        "Stop Market",
    )
    assert orders["data"]["orders"] == Info(sim.url, skip_ws=True).frontend_open_orders(wallet.address)
    ex.cancel("BTC", oid)
    updates, _state, orders = take(f, 3)
    assert [u["status"] for u in updates["data"]] == ["canceled"]
    assert orders["data"]["orders"] == []
    assert f.silent()


def test_a_trigger_fired_by_set_mid(sim, wallet, feed, ex):
    ex.market_open("BTC", True, 0.02)
    oid = ex.order("BTC", False, 0.02, 47000, stop_loss(48500), reduce_only=True)["response"]["data"]["statuses"][0]
    oid = oid["resting"]["oid"]
    f = feed()
    f.subscribe_all(wallet.address)
    sim.set_mid("BTC", 48400)
    updates, fills, state, orders = take(f, 4)
    assert [(u["order"]["oid"], u["status"]) for u in updates["data"]] == [(oid, "triggered"), (oid, "filled")]
    [fill] = fills["data"]["fills"]
    assert (fill["px"], fill["dir"], fill["closedPnl"], fill["crossed"]) == ("48400.0", "Close Long", "-32.0", True)
    assert state["data"]["clearinghouseState"]["assetPositions"] == [] and orders["data"]["orders"] == []


def test_a_resting_limit_partly_filled_modified_and_a_leverage_change(sim, wallet, feed, ex):
    sim.set_liquidity("SOL", "0.4")
    oid = ex.order("SOL", True, 1, 140, GTC)["response"]["data"]["statuses"][0]["resting"]["oid"]
    f = feed()
    f.subscribe_all(wallet.address)
    sim.set_mid("SOL", 139)
    updates, fills, _state, _orders = take(f, 4)
    assert [(u["status"], u["order"]["sz"]) for u in updates["data"]] == [("open", "0.6")]
    assert fills["data"]["fills"][0]["crossed"] is False  # a resting order fills as the maker
    new_oid = ex.modify_order(oid, "SOL", True, 0.5, 135, GTC)["response"]["data"]["statuses"][0]["resting"]["oid"]
    updates, _state, orders = take(f, 3)
    assert new_oid != oid  # a modified order is a new order
    assert [(u["order"]["oid"], u["status"]) for u in updates["data"]] == [(oid, "canceled"), (new_oid, "open")]
    new = updates["data"][1]["order"]
    assert (new["limitPx"], new["sz"]) == ("135.0", "0.5")
    assert [(o["oid"], o["limitPx"]) for o in orders["data"]["orders"]] == [(new_oid, "135.0")]
    ex.update_leverage(5, "SOL")
    [state] = take(f, 1)
    assert state["channel"] == "clearinghouseState"  # only the account: no order and no fill changed
    assert state["data"]["clearinghouseState"]["assetPositions"][0]["position"]["leverage"]["value"] == 5
    assert f.silent()


def test_pause_drops_pushes_while_pongs_and_allmids_go_on(sim, wallet, feed, ex):
    f = feed()
    f.subscribe("allMids")
    f.next()
    f.subscribe_all(wallet.address)
    pushed = sim.userdata_pushes()
    sim.pause_userdata(True)
    ex.market_open("BTC", True, 0.01)
    f.send(method="ping")
    assert f.next() == {"channel": "pong"}
    sim.set_mid("ETH", 3100)
    assert f.next()["data"]["mids"]["ETH"] == "3100.0"
    assert f.silent() and sim.userdata_pushes() == pushed
    sim.pause_userdata(False)  # the subscriptions were there all along
    ex.market_open("BTC", True, 0.01)
    updates, _fills, state, _orders = take(f, 4)
    assert updates["channel"] == "orderUpdates"
    assert szi(state) == "0.02"


def test_a_delay_lags_the_pushes_not_the_answers_and_keeps_their_order(sim, wallet, feed, ex):
    f = feed()
    f.subscribe_all(wallet.address)
    sim.set_userdata_delay(1.0)
    started = time.monotonic()
    ex.market_open("BTC", True, 0.01)
    ex.market_open("BTC", True, 0.01)
    assert time.monotonic() - started < 1.0  # both answered before any push left
    msgs = take(f, 8)
    assert time.monotonic() - started >= 1.0
    assert [m["channel"] for m in msgs] == ["orderUpdates", "userFills", *ACCOUNT] * 2
    assert [szi(m) for m in msgs[2::4]] == ["0.01", "0.02"]


def test_pushes_leave_in_the_order_the_state_changed(sim, wallet, feed):
    f = feed()
    f.subscribe("orderUpdates", wallet.address)
    f.subscribe("clearinghouseState", wallet.address)
    f.next()
    sim.set_userdata_delay(0.02)
    agents = [eth_account.Account.create() for _ in range(4)]
    for i, agent in enumerate(agents):
        sim.approve_agent(wallet.address, agent.address, name=f"bot{i}")

    def trade(agent) -> None:
        by_agent = Exchange(agent, base_url=sim.url, account_address=wallet.address)
        for _ in range(5):
            by_agent.market_open("BTC", True, 0.01)

    threads = [threading.Thread(target=trade, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    msgs = take(f, 40)
    assert [m["channel"] for m in msgs] == ["orderUpdates", "clearinghouseState"] * 20
    oids = [m["data"][0]["order"]["oid"] for m in msgs[::2]]
    assert oids == sorted(oids) and len(set(oids)) == 20
    assert [szi(m) for m in msgs[1::2]] == [str(Decimal(n) / 100) for n in range(1, 21)]


def test_unsubscribe_and_refused_subscriptions(sim, wallet, feed, ex):
    f = feed()
    f.subscribe("orderUpdates", wallet.address)
    f.subscribe("clearinghouseState", wallet.address)
    f.next()
    answer = f.subscribe("clearinghouseState", wallet.address, method="unsubscribe")
    assert answer["data"] == {
        "method": "unsubscribe",
        "subscription": {"type": "clearinghouseState", "user": wallet.address},
    }
    ex.market_open("BTC", True, 0.01)
    assert f.next()["channel"] == "orderUpdates"
    assert f.silent()
    refused = (
        {"type": "clearinghouseState"},
        {"type": "userFills", "user": "nobody"},
        {"type": "userThings", "user": "0x" + "1" * 40},
        {"type": "openOrders", "user": wallet.address, "dex": "nodex"},
        {"type": "activeAssetData", "user": wallet.address, "coin": "NOPE"},
    )
    for bad in refused:
        f.send(method="subscribe", subscription=bad)
        assert f.next() == {"channel": "error", "data": f"Invalid subscription {json.dumps(bad)}"}
    f.send(method="ping")
    assert f.next() == {"channel": "pong"}


def test_each_user_hears_only_about_themselves(sim, wallet, feed, ex):
    other = eth_account.Account.create()
    sim.add_account(other.address)
    mine, theirs = feed(), feed()
    mine.subscribe_all(wallet.address)
    theirs.subscribe_all(other.address)
    ex.market_open("ETH", True, 0.1)
    assert [m["channel"] for m in take(mine, 4)] == ["orderUpdates", "userFills", *ACCOUNT]
    assert theirs.silent()


def test_the_account_every_interval_even_unchanged(sim, wallet, feed):
    f = feed()
    sim.set_account_push_interval(0.05)
    f.subscribe("clearinghouseState", wallet.address)
    times = [f.next()["data"]["clearinghouseState"]["time"] for _ in range(4)]  # the snapshot, then three unprompted
    assert times == sorted(times)
    f.subscribe("openOrders", wallet.address)
    assert {f.next()["channel"] for _ in range(6)} == set(ACCOUNT)
    sim.set_account_push_interval(0)
    wait_for(lambda: f.silent(0.2), timeout=2, what="no more periodic pushes")


def test_controls_over_http(sim):
    def control(**body):
        return requests.post(sim.url + "/control", json=body, timeout=5)

    for op, args in (
        ("set_userdata_delay", {"seconds": 0.1}),
        ("pause_userdata", {"paused": True}),
        ("pause_userdata", {"paused": False}),
        ("set_account_push_interval", {"seconds": 0}),
        ("set_userdata_snapshots", {"on": False}),
    ):
        assert control(op=op, **args).json() == {"ok": True}
    assert control(op="userdata_pushes").json() == 0
    bad = control(op="pause_userdata", paused="yes")
    assert bad.status_code == 400 and "paused" in bad.json()["error"]
    assert control(op="set_userdata_snapshots", on="no").status_code == 400
    assert control(op="set_userdata_delay", seconds=-1).status_code == 400
    assert control(op="set_userdata_delay", seconds="0").json() == {"ok": True}  # as set_latency takes it


def test_the_sdk_routes_the_feeds_to_its_callbacks(sim, wallet, ex):
    info = Info(sim.url)  # the SDK's WebsocketManager on /ws
    seen: dict[str, list] = {"orderUpdates": [], "userFills": [], "activeAssetData": []}
    try:
        for kind in seen:
            sub = {"type": kind, "user": wallet.address, **({"coin": "BTC"} if kind == "activeAssetData" else {})}
            info.subscribe(sub, lambda msg, kind=kind: seen[kind].append(msg))
        wait_for(lambda: seen["activeAssetData"] and seen["userFills"], what="the snapshots")
        ex.market_open("BTC", True, 0.01)
        wait_for(lambda: seen["orderUpdates"] and len(seen["activeAssetData"]) >= 2, what="the pushes")
        assert seen["orderUpdates"][0]["data"][0]["status"] == "filled"
        assert seen["activeAssetData"][-1]["data"]["coin"] == "BTC"
        wait_for(lambda: len(seen["userFills"]) == 2, what="the fill")
    finally:
        info.disconnect_websocket()
