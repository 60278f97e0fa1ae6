"""The simulator's grouped orders (EXCHANGE.md §8): positionTpsl legs that follow the whole position, normalTpsl
children that wait for their parent, the refusals of a group as a whole, and how they read back in
frontendOpenOrders, orderStatus and the user-data pushes. Real sockets, the real SDK (Exchange.bulk_orders with its
`grouping`)."""

from __future__ import annotations

import pytest
import requests
from hyperliquid.utils.signing import get_timestamp_ms, order_request_to_order_wire, sign_l1_action
from hyperliquid.utils.types import Cloid

from fractrade_sync.sim import hl_grouping
from tests.test_sim_userdata import Feed

GTC = {"limit": {"tif": "Gtc"}}
IOC = {"limit": {"tif": "Ioc"}}
SL_CLOID, TP_CLOID, ENTRY_CLOID = Cloid.from_int(1), Cloid.from_int(2), Cloid.from_int(3)
WAITING = ["waitingForTrigger", "waitingForTrigger"]
# a position leg as the live frontendOpenOrders shows it (EXCHANGE.md §8 "Reading them back": nktkas/hyperliquid
# _schemas.ts FrontendOpenOrder, TW-RO P5's trigger row; isPositionTpsl and origSz "0": MetaMask/metamask-extension
# PR #42661); only the keys and the JSON types are compared
LIVE_POSITION_LEG = {
    "coin": "BTC",
    "side": "A",
    "limitPx": "43200.0",
    "sz": "0.0",
    "oid": 7,
    "timestamp": 1700000000000,
    "triggerCondition": "Price below 48000",
    "isTrigger": True,
    "triggerPx": "48000.0",
    "children": [],
    "isPositionTpsl": True,
    "reduceOnly": True,
    "orderType": "Stop Market",
    "origSz": "0",
    "tif": None,
    "cloid": "0x" + "12" * 16,
}


def trigger(kind: str, px: float) -> dict:
    return {"trigger": {"triggerPx": px, "isMarket": True, "tpsl": kind}}


def request(is_buy, sz, px, order_type, reduce_only=False, cloid=None, coin="BTC") -> dict:
    """An SDK order request (what Exchange.bulk_orders takes)."""
    return {
        "coin": coin,
        "is_buy": is_buy,
        "sz": sz,
        "limit_px": px,
        "order_type": order_type,
        "reduce_only": reduce_only,
        "cloid": cloid,
    }


# a long's legs: a sell stop loss at 48000 and a sell take profit at 55000, each limited 10% past its trigger (the
# slippage bound a client sets on a market TP/SL, EXCHANGE.md §6); size 0: the whole position
ENTRY = request(True, 0.02, 51000, IOC, cloid=ENTRY_CLOID)
SL = request(False, 0, 43200, trigger("sl", 48000), reduce_only=True, cloid=SL_CLOID)
TP = request(False, 0, 49500, trigger("tp", 55000), reduce_only=True, cloid=TP_CLOID)


def statuses(resp):
    assert resp["status"] == "ok", resp
    return resp["response"]["data"]["statuses"]


def same_shape(row: dict, live: dict) -> list[str]:
    """What differs from the live row: a missing or extra key, or another JSON type (None matches a string)."""
    wrong = [f"key {k}" for k in set(row) ^ set(live)]
    for key in set(row) & set(live):
        kinds = {type(row[key]), type(live[key])}
        if len(kinds) > 1 and kinds != {str, type(None)}:
            wrong.append(f"{key}: {row[key]!r}")
    return wrong


def rows(info, wallet) -> dict[str, dict]:
    """frontendOpenOrders by cloid."""
    return {row["cloid"]: row for row in info.frontend_open_orders(wallet.address)}


def status(info, wallet, cloid) -> dict:
    return info.query_order_by_cloid(wallet.address, cloid)["order"]


# ---- positionTpsl ----------------------------------------------------------------------------------------------------
def test_an_entry_and_its_position_legs_close_the_whole_position_when_one_fires(sim, wallet, ex, info):
    entry, *legs = statuses(ex.bulk_orders([ENTRY, SL, TP], grouping="positionTpsl"))
    assert entry["filled"]["totalSz"] == "0.02" and entry["filled"]["cloid"] == ENTRY_CLOID.to_raw()
    assert legs == WAITING  # bare: no oid in the answer
    shown = rows(info, wallet)
    assert set(shown) == {SL_CLOID.to_raw(), TP_CLOID.to_raw()}
    for row, kind in ((shown[SL_CLOID.to_raw()], "Stop Market"), (shown[TP_CLOID.to_raw()], "Take Profit Market")):
        assert row["isPositionTpsl"] is True and row["isTrigger"] is True and row["reduceOnly"] is True
        assert (row["origSz"], row["sz"], row["orderType"], row["tif"]) == ("0.0", "0.0", kind, None)
        assert isinstance(row["oid"], int) and row["children"] == []
    assert status(info, wallet, SL_CLOID)["order"]["isPositionTpsl"] is True

    ex.market_open("BTC", True, 0.01)  # an add-on: the legs stay at size 0, they follow the position
    assert {row["sz"] for row in rows(info, wallet).values()} == {"0.0"}
    sim.set_mid("BTC", 47900)  # the mark crosses the stop loss
    assert sim.positions(wallet.address) == {}  # the whole position, entry and add-on
    fired = status(info, wallet, SL_CLOID)
    assert fired["status"] == "filled" and fired["order"]["origSz"] == "0.0"
    [fill] = [f for f in info.user_fills(wallet.address) if f["oid"] == fired["order"]["oid"]]
    assert (fill["sz"], fill["px"], fill["dir"]) == ("0.03", "47900.0", "Close Long")
    # not canceled when the position closed (unconfirmed: the client cancels its own); fired now, nothing to reduce
    assert list(rows(info, wallet)) == [TP_CLOID.to_raw()]
    sim.set_mid("BTC", 56000)
    assert status(info, wallet, TP_CLOID)["status"] == "reduceOnlyCanceled"
    assert sim.positions(wallet.address) == {}


def test_a_fixed_size_leg_closes_only_its_size(sim, wallet, ex, info):
    ex.market_open("BTC", True, 0.03)
    fixed = request(False, 0.01, 43200, trigger("sl", 48000), reduce_only=True, cloid=SL_CLOID)
    assert statuses(ex.bulk_orders([fixed], grouping="positionTpsl")) == ["waitingForTrigger"]
    row = rows(info, wallet)[SL_CLOID.to_raw()]
    assert (row["isPositionTpsl"], row["origSz"], row["sz"]) == (True, "0.01", "0.01")
    sim.set_mid("BTC", 47900)
    assert sim.positions(wallet.address) == {"BTC": "0.02"}


def test_a_leg_without_an_opposite_position_is_refused_per_order(sim, wallet, ex, info):
    refused = {"error": "Reduce only order would increase position. asset=0"}
    assert statuses(ex.bulk_orders([SL, TP], grouping="positionTpsl")) == [refused, refused]  # flat
    resting = request(True, 0.02, 45000, GTC)  # an entry that does not fill: still flat after it
    entry, *legs = statuses(ex.bulk_orders([resting, SL], grouping="positionTpsl"))
    assert "resting" in entry and legs == [refused]
    ex.market_open("BTC", False, 0.02)  # short: a sell leg is on the position's own side
    assert statuses(ex.bulk_orders([SL], grouping="positionTpsl")) == [refused]
    assert set(rows(info, wallet)) == {None}  # only the resting entry
    assert status(info, wallet, SL_CLOID)["status"] == "reduceOnlyRejected"  # a refused order's record


def test_new_legs_sit_beside_old_ones_and_a_flipped_position_is_not_reduced(sim, wallet, ex, info):
    ex.market_open("BTC", True, 0.02)
    assert statuses(ex.bulk_orders([SL], grouping="positionTpsl")) == ["waitingForTrigger"]
    second = {**SL, "cloid": Cloid.from_int(9)}
    assert statuses(ex.bulk_orders([second], grouping="positionTpsl")) == ["waitingForTrigger"]
    assert len(rows(info, wallet)) == 2  # not replaced (unconfirmed: the conservative reading)
    ex.market_open("BTC", False, 0.05)  # flipped: short 0.03; the sell legs stay (unconfirmed)
    assert len(rows(info, wallet)) == 2
    sim.set_mid("BTC", 47900)
    assert sim.positions(wallet.address) == {"BTC": "-0.03"}  # a sell leg cannot reduce a short
    assert {status(info, wallet, c)["status"] for c in (SL_CLOID, second["cloid"])} == {"reduceOnlyCanceled"}


def test_an_action_with_an_entry_is_refused_as_a_whole_while_the_control_is_on(sim, wallet, ex, info):
    sim.refuse_entry_in_position_tpsl()
    refused = {"status": "err", "response": hl_grouping.ENTRY_REFUSED}
    assert ex.bulk_orders([ENTRY, SL, TP], grouping="positionTpsl") == refused
    assert sim.positions(wallet.address) == {} and sim.applied_count() == 0
    assert info.query_order_by_cloid(wallet.address, ENTRY_CLOID) == {"status": "unknownOid"}
    ex.market_open("BTC", True, 0.02)
    assert statuses(ex.bulk_orders([SL, TP], grouping="positionTpsl")) == WAITING  # legs alone pass
    # nothing of the refused action is spent, its nonce neither (as the cancel cap's refusal; unconfirmed)
    action = {"type": "order", "orders": [wire(ENTRY), wire(SL)], "grouping": "positionTpsl"}
    nonce = get_timestamp_ms()
    assert post(sim, wallet, action, nonce) == refused
    sim.refuse_entry_in_position_tpsl(False)
    assert statuses(post(sim, wallet, action, nonce))[1] == "waitingForTrigger"
    assert sim.positions(wallet.address) == {"BTC": "0.04"}


@pytest.mark.parametrize(
    "orders, text",
    [
        ([SL, {**TP, "coin": "ETH", "limit_px": 2970, "order_type": trigger("tp", 3300)}], hl_grouping.ONE_ASSET),
        ([ENTRY, SL, {**SL, "cloid": None}], hl_grouping.ONE_OF_EACH),
        ([SL, {**TP, "reduce_only": False}], hl_grouping.REDUCE_ONLY_TRIGGERS),
        ([SL, ENTRY], hl_grouping.REDUCE_ONLY_TRIGGERS),  # an entry must come first
    ],
)
def test_a_group_that_breaks_the_rules_is_refused_as_a_whole(sim, wallet, ex, orders, text):
    ex.market_open("BTC", True, 0.02)
    ex.market_open("ETH", True, 1)
    applied = sim.applied_count()
    assert ex.bulk_orders(orders, grouping="positionTpsl") == {"status": "err", "response": text}
    assert sim.applied_count() == applied


def test_size_0_is_refused_outside_position_tpsl(sim, wallet, ex):
    ex.market_open("BTC", True, 0.02)
    zero = {"error": "Order has zero size. asset=0"}
    assert statuses(ex.bulk_orders([SL])) == [zero]  # grouping "na"
    parent = request(True, 0.02, 45000, GTC)
    assert statuses(ex.bulk_orders([parent, SL], grouping="normalTpsl"))[1] == zero
    assert statuses(ex.bulk_orders([{**ENTRY, "sz": 0}, SL], grouping="positionTpsl"))[0] == zero  # the entry


def test_the_grouping_is_signed_as_sent(sim, wallet, ex):
    ex.market_open("BTC", True, 0.02)
    signed = {"type": "order", "orders": [wire(SL)], "grouping": "na"}
    nonce = get_timestamp_ms()
    body = {"action": {**signed, "grouping": "positionTpsl"}, "nonce": nonce, "vaultAddress": None}
    body["signature"] = sign_l1_action(wallet, signed, None, nonce, None, False)
    answer = requests.post(sim.url + "/exchange", json=body, timeout=5).json()
    assert answer["status"] == "err" and answer["response"].startswith("User or API Wallet 0x")
    assert wallet.address.lower() not in answer["response"]  # another signer: the hash covers the grouping
    assert statuses(post(sim, wallet, body["action"], nonce)) == ["waitingForTrigger"]
    assert [e["grouping"] for e in sim.exchange_log()] == ["na", "positionTpsl", "positionTpsl"]  # as sent


def test_a_modified_position_leg_stays_one(sim, wallet, ex, info):
    ex.market_open("BTC", True, 0.02)
    statuses(ex.bulk_orders([SL], grouping="positionTpsl"))
    oid = rows(info, wallet)[SL_CLOID.to_raw()]["oid"]
    [answer] = statuses(ex.modify_order(oid, "BTC", False, 0, 42750, trigger("sl", 47500), reduce_only=True))
    assert answer["resting"]["oid"] != oid  # as any modify: a new oid, the cloid kept (unconfirmed for a leg)
    row = rows(info, wallet)[SL_CLOID.to_raw()]
    assert (row["isPositionTpsl"], row["origSz"], row["triggerPx"]) == (True, "0.0", "47500.0")
    ex.market_open("BTC", True, 0.01)
    sim.set_mid("BTC", 47400)
    assert sim.positions(wallet.address) == {}


# ---- normalTpsl ------------------------------------------------------------------------------------------------------
CHILD_SL = request(False, 0.02, 42300, trigger("sl", 47000), reduce_only=True, cloid=SL_CLOID)
CHILD_TP = request(False, 0.02, 46800, trigger("tp", 52000), reduce_only=True, cloid=TP_CLOID)


def test_children_wait_for_their_parents_fill_then_are_ordinary_triggers(sim, wallet, ex, info):
    parent = request(True, 0.02, 49000, GTC, cloid=ENTRY_CLOID)
    resting, *children = statuses(ex.bulk_orders([parent, CHILD_SL, CHILD_TP], grouping="normalTpsl"))
    assert "resting" in resting and children == ["waitingForFill", "waitingForFill"]
    shown = rows(info, wallet)
    assert len(shown) == 3  # the children at the top level too
    nested = shown[ENTRY_CLOID.to_raw()]["children"]
    assert [c["cloid"] for c in nested] == [SL_CLOID.to_raw(), TP_CLOID.to_raw()]
    assert nested == [shown[SL_CLOID.to_raw()], shown[TP_CLOID.to_raw()]]
    assert all(c["isPositionTpsl"] is False and c["origSz"] == "0.02" for c in nested)
    assert status(info, wallet, ENTRY_CLOID)["order"]["children"] == nested
    sim.set_mark("BTC", 46000)  # past the stop loss, but it waits for its parent
    assert status(info, wallet, SL_CLOID)["status"] == "open"
    sim.set_mark("BTC", 50000)

    sim.set_mid("BTC", 48900)  # the parent fills
    assert sim.positions(wallet.address) == {"BTC": "0.02"}
    shown = rows(info, wallet)
    assert set(shown) == {SL_CLOID.to_raw(), TP_CLOID.to_raw()}
    assert all(r["isPositionTpsl"] is False and r["sz"] == "0.02" and r["children"] == [] for r in shown.values())
    ex.market_open("BTC", True, 0.01)  # frozen at the submitted size: they do not follow the position
    assert {r["sz"] for r in rows(info, wallet).values()} == {"0.02"}
    sim.set_mid("BTC", 46900)
    assert sim.positions(wallet.address) == {"BTC": "0.01"}


def test_children_of_a_parent_filled_at_once_wait_for_their_trigger(sim, wallet, ex, info):
    entry, *children = statuses(ex.bulk_orders([ENTRY, CHILD_SL, CHILD_TP], grouping="normalTpsl"))
    assert "filled" in entry and children == WAITING
    assert {r["isPositionTpsl"] for r in rows(info, wallet).values()} == {False}


def test_an_ioc_parent_that_does_not_fill_takes_its_children_along(sim, wallet, ex, info):
    parent = request(True, 0.02, 49000, IOC, cloid=ENTRY_CLOID)
    answers = statuses(ex.bulk_orders([parent, CHILD_SL, CHILD_TP], grouping="normalTpsl"))
    gone = {"error": f"{hl_grouping.PARENT_DID_NOT_FILL} asset=0"}
    assert answers == [{"error": "Order could not immediately match against any resting orders. asset=0"}, gone, gone]
    assert info.frontend_open_orders(wallet.address) == []
    assert status(info, wallet, SL_CLOID)["status"] == "canceled"


def test_canceling_a_parent_cancels_its_children_with_the_pushes(sim, wallet, ex, info):
    feed = Feed(sim)
    try:
        for kind in ("orderUpdates", "openOrders"):
            assert feed.subscribe(kind, wallet.address)["channel"] == "subscriptionResponse"
        assert feed.next()["channel"] == "openOrders"  # its snapshot
        parent = request(True, 0.02, 49000, GTC, cloid=ENTRY_CLOID)
        oid = statuses(ex.bulk_orders([parent, CHILD_SL, CHILD_TP], grouping="normalTpsl"))[0]["resting"]["oid"]
        placed, listed = feed.next(), feed.next()
        assert [u["status"] for u in placed["data"]] == ["open"] * 3
        [row] = [r for r in listed["data"]["orders"] if r["oid"] == oid]
        assert len(row["children"]) == 2
        assert statuses(ex.cancel("BTC", oid)) == ["success"]
        canceled, listed = feed.next(), feed.next()
        assert [u["status"] for u in canceled["data"]] == ["canceled"] * 3
        assert len({u["statusTimestamp"] for u in canceled["data"]}) == 1  # together (TW-RO P5)
        assert listed["data"]["orders"] == []
    finally:
        feed.ws.close()


def test_position_legs_in_the_pushes(sim, wallet, ex):
    feed = Feed(sim)
    try:
        for kind in ("orderUpdates", "openOrders"):
            assert feed.subscribe(kind, wallet.address)["channel"] == "subscriptionResponse"
        assert feed.next()["channel"] == "openOrders"
        statuses(ex.bulk_orders([ENTRY, SL, TP], grouping="positionTpsl"))
        updates, listed = feed.next(), feed.next()
        assert [(u["order"]["origSz"], u["status"]) for u in updates["data"]] == [
            ("0.02", "filled"),
            ("0.0", "open"),
            ("0.0", "open"),
        ]
        assert all("isPositionTpsl" not in u["order"] for u in updates["data"])  # not on that channel (§8)
        assert [r["isPositionTpsl"] for r in listed["data"]["orders"]] == [True, True]
    finally:
        feed.ws.close()


def test_the_new_fields_have_the_live_shape(sim, wallet, ex, info):
    ex.market_open("BTC", True, 0.02)
    statuses(ex.bulk_orders([SL], grouping="positionTpsl"))
    statuses(ex.bulk_orders([request(True, 0.02, 45000, GTC, cloid=ENTRY_CLOID), CHILD_TP], grouping="normalTpsl"))
    shown = rows(info, wallet)
    assert same_shape(shown[SL_CLOID.to_raw()], LIVE_POSITION_LEG) == []
    parent = shown[ENTRY_CLOID.to_raw()]
    assert same_shape(parent, LIVE_POSITION_LEG) == []
    assert [same_shape(child, LIVE_POSITION_LEG) for child in parent["children"]] == [[]]


def test_the_control_over_http(sim, wallet, ex):
    answer = requests.post(sim.url + "/control", json={"op": "refuse_entry_in_position_tpsl", "on": True}, timeout=5)
    assert answer.json() == {"ok": True}
    assert ex.bulk_orders([ENTRY, SL], grouping="positionTpsl")["status"] == "err"
    bad = requests.post(sim.url + "/control", json={"op": "refuse_entry_in_position_tpsl", "on": "yes"}, timeout=5)
    assert bad.status_code == 400 and "true or false" in bad.json()["error"]


# ---- helpers for hand-signed bodies ----------------------------------------------------------------------------------
def wire(req: dict) -> dict:
    return order_request_to_order_wire(req, {"BTC": 0, "ETH": 1}[req["coin"]])


def post(sim, wallet, action: dict, nonce: int) -> dict:
    """Sign an L1 action as the SDK does (testnet), with a nonce of our choosing."""
    body = {"action": action, "nonce": nonce, "vaultAddress": None, "expiresAfter": None}
    body["signature"] = sign_l1_action(wallet, action, None, nonce, None, False)
    return requests.post(sim.url + "/exchange", json=body, timeout=5).json()
