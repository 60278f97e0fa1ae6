"""The simulator's sub-accounts and vaults (EXCHANGE.md §10): traded by the master's (or leader's) key or its API
wallets with vaultAddress, each with its own balance, positions, orders, fills and feeds; an order signed without
vaultAddress lands on the master's own account. Real sockets, the real SDK."""

from __future__ import annotations

import eth_account
import pytest
import requests
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.signing import (
    get_timestamp_ms,
    order_request_to_order_wire,
    order_wires_to_order_action,
    sign_l1_action,
)
from hyperliquid.utils.types import Cloid

from tests.test_sim_userdata import Feed, take

GTC = {"limit": {"tif": "Gtc"}}


def statuses(resp):
    assert resp["status"] == "ok", resp
    return resp["response"]["data"]["statuses"]


@pytest.fixture
def sub(sim, wallet):
    """A sub-account of `wallet` with $5,000 of its own."""
    account = eth_account.Account.create()  # only its address is used: a sub-account has no key
    sim.add_sub_account(wallet.address, account.address, usdc=5_000, name="desk one")
    return account.address.lower()


@pytest.fixture
def agent(sim, wallet):
    """An API wallet approved by `wallet`."""
    account = eth_account.Account.create()
    sim.approve_agent(wallet.address, account.address, name="bot")
    return account


def post(sim, signer, action: dict, nonce: int, signed_vault, sent_vault) -> dict:
    """An L1 action signed for `signed_vault` and sent with vaultAddress `sent_vault` (the SDK sends them equal)."""
    body = {"action": action, "nonce": nonce, "vaultAddress": sent_vault, "expiresAfter": None}
    body["signature"] = sign_l1_action(signer, action, signed_vault, nonce, None, False)
    return requests.post(sim.url + "/exchange", json=body, timeout=5).json()


def btc_order(px: int = 40_000) -> dict:
    request = {"coin": "BTC", "is_buy": True, "sz": 0.01, "limit_px": px, "order_type": GTC, "reduce_only": False}
    return order_wires_to_order_action([order_request_to_order_wire(request, 0)])


# ---- who is who ---------------------------------------------------------------------------------------------------
def test_user_role_and_sub_accounts_answer_the_live_shapes(sim, wallet, sub, agent, info):
    master = wallet.address.lower()
    assert info.user_role(sub) == {"role": "subAccount", "data": {"master": master}}
    assert info.user_role(wallet.address) == {"role": "user"}
    assert info.user_role(agent.address) == {"role": "agent", "data": {"user": master}}
    assert info.user_role(eth_account.Account.create().address) == {"role": "missing"}
    [row] = info.query_sub_accounts(wallet.address)
    assert set(row) == {"name", "subAccountUser", "master", "clearinghouseState", "spotState"}
    assert (row["name"], row["subAccountUser"], row["master"]) == ("desk one", sub, master)
    assert row["clearinghouseState"]["marginSummary"]["accountValue"] == "5000.0"
    assert info.query_sub_accounts(sub) is None  # none of its own


def test_a_vault_is_traded_by_its_leader_and_the_leaders_api_wallet(sim, wallet, agent, info):
    vault = eth_account.Account.create().address.lower()
    sim.add_vault(wallet.address, vault, usdc=20_000, name="trend")
    assert info.user_role(vault) == {"role": "vault"}
    details = info.post("/info", {"type": "vaultDetails", "vaultAddress": vault})
    assert (details["name"], details["vaultAddress"], details["leader"]) == ("trend", vault, wallet.address.lower())
    assert info.post("/info", {"type": "vaultDetails", "vaultAddress": wallet.address}) is None
    assert "filled" in statuses(Exchange(wallet, sim.url, vault_address=vault).market_open("BTC", True, 0.01))[0]
    assert "filled" in statuses(Exchange(agent, sim.url, vault_address=vault).market_open("ETH", True, 0.1))[0]
    assert sim.positions(vault) == {"BTC": "0.01", "ETH": "0.1"} and sim.positions(wallet.address) == {}
    assert info.post("/info", {"type": "webData2", "user": vault})["isVault"] is True


# ---- signing for the sub-account ----------------------------------------------------------------------------------
@pytest.mark.parametrize("signed_by", ["master", "agent"])
def test_the_masters_key_or_api_wallet_trades_the_sub_account(sim, wallet, sub, agent, info, signed_by):
    signer = wallet if signed_by == "master" else agent
    ex = Exchange(signer, sim.url, vault_address=sub)
    assert ex.update_leverage(4, "ETH", is_cross=False)["status"] == "ok"
    cloid = Cloid.from_int(3)
    [filled] = statuses(ex.market_open("BTC", True, 0.01, cloid=cloid))
    oid = statuses(ex.order("ETH", True, 0.5, 2900, GTC))[0]["resting"]["oid"]
    assert sim.positions(sub) == {"BTC": "0.01"} and sim.positions(wallet.address) == {}
    applied = sim.applied_orders(sub)
    assert {o["user"] for o in applied} == {sub} and {o["signer"] for o in applied} == {signer.address.lower()}
    assert sim.applied_orders(wallet.address) == []
    assert sim.exchange_log()[-1]["vaultAddress"] == sub
    # every read for the sub-account answers its own state, none of the master's
    state = info.user_state(sub)
    assert state["assetPositions"][0]["position"]["coin"] == "BTC"
    assert info.user_state(wallet.address)["assetPositions"] == []
    assert [o["oid"] for o in info.frontend_open_orders(sub)] == [oid]
    assert [o["oid"] for o in info.open_orders(sub)] == [oid] and info.open_orders(wallet.address) == []
    assert info.query_order_by_cloid(sub, cloid)["order"]["order"]["oid"] == filled["filled"]["oid"]
    assert info.query_order_by_cloid(wallet.address, cloid) == {"status": "unknownOid"}
    assert [f["oid"] for f in info.user_fills(sub)] == [filled["filled"]["oid"]] and info.user_fills(
        wallet.address
    ) == []
    asset = info.post("/info", {"type": "activeAssetData", "user": sub, "coin": "ETH"})
    assert asset["user"] == sub and asset["leverage"]["type"] == "isolated" and asset["leverage"]["value"] == 4
    assert sim.leverage(wallet.address, "ETH") == {"type": "cross", "value": 20}  # the master's is untouched
    assert statuses(ex.cancel("ETH", oid)) == ["success"]
    assert ex.market_close("BTC")["status"] == "ok"  # the SDK reads the sub-account's position to close it
    assert sim.positions(sub) == {}


def test_an_order_signed_without_vault_address_lands_on_the_masters_account(sim, wallet, sub, agent):
    for signer in (wallet, agent):  # the wrong money, by the master's key and by its API wallet alike
        assert "filled" in statuses(Exchange(signer, sim.url).market_open("BTC", True, 0.01))[0]
    assert sim.positions(wallet.address) == {"BTC": "0.02"} and sim.positions(sub) == {}
    assert sim.exchange_log()[-1]["vaultAddress"] is None


def test_a_signer_that_may_not_trade_the_account_is_refused(sim, wallet, sub):
    stranger = eth_account.Account.create()
    sim.add_account(stranger.address, 100_000)  # a funded user, but not the sub-account's master
    stranger_agent = eth_account.Account.create()
    sim.approve_agent(stranger.address, stranger_agent.address)
    for signer, vault in ((stranger, sub), (stranger_agent, sub), (wallet, wallet.address), (wallet, stranger.address)):
        resp = Exchange(signer, sim.url, vault_address=vault).market_open("BTC", True, 0.01)
        assert resp == {"status": "err", "response": f"Vault not registered: {vault.lower()}"}
    assert sim.applied_count() == 0
    unknown = eth_account.Account.create()  # a key the exchange does not know at all
    resp = Exchange(unknown, sim.url, vault_address=sub).market_open("BTC", True, 0.01)
    assert resp == {"status": "err", "response": f"User or API Wallet {unknown.address.lower()} does not exist."}


def test_the_vault_address_is_part_of_what_is_signed(sim, wallet, sub):
    other = eth_account.Account.create().address.lower()
    sim.add_sub_account(wallet.address, other, usdc=5_000)
    nonce = get_timestamp_ms()
    for signed, sent in ((sub, other), (sub, None), (None, sub)):
        resp = post(sim, wallet, btc_order(), nonce, signed, sent)
        assert resp["status"] == "err" and resp["response"].startswith("User or API Wallet 0x"), resp
        assert wallet.address.lower() not in resp["response"]  # another address was recovered
    assert sim.applied_count() == 0
    assert "resting" in statuses(post(sim, wallet, btc_order(), nonce, sub, sub))[0]  # the nonce was never spent
    assert [o["user"] for o in sim.applied_orders()] == [sub]


def test_nonces_are_the_signers_whichever_account_it_acts_for(sim, wallet, sub, agent):
    nonce = get_timestamp_ms()
    assert "resting" in statuses(post(sim, wallet, btc_order(), nonce, sub, sub))[0]
    duplicate = {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}
    assert post(sim, wallet, btc_order(), nonce, None, None) == duplicate  # the master's own account: same signer
    assert "resting" in statuses(post(sim, agent, btc_order(), nonce, sub, sub))[0]  # another signer: its own set
    # noop with vaultAddress: accepted for an account the signer may trade, and it spends the signer's nonce
    noop = Exchange(wallet, sim.url, vault_address=sub).noop(nonce + 1)
    assert noop == {"status": "ok", "response": {"type": "default"}}
    assert post(sim, wallet, btc_order(), nonce + 1, None, None) == {
        "status": "err",
        "response": f"Invalid nonce: duplicate nonce {nonce + 1}",
    }
    assert Exchange(wallet, sim.url).noop(nonce + 2)["status"] == "ok"  # and without it, as before


# ---- feeds --------------------------------------------------------------------------------------------------------
def test_the_user_data_feeds_of_the_sub_account_carry_its_own_state(sim, wallet, sub):
    mine, masters = Feed(sim), Feed(sim)
    try:
        mine.subscribe_all(sub)
        masters.subscribe_all(wallet.address)
        Exchange(wallet, sim.url, vault_address=sub).market_open("BTC", True, 0.01)
        pushed = {m["channel"]: m["data"] for m in take(mine, 4)}
        assert [u["order"]["coin"] for u in pushed["orderUpdates"]] == ["BTC"]
        assert pushed["userFills"]["user"] == sub and len(pushed["userFills"]["fills"]) == 1
        position = pushed["clearinghouseState"]["clearinghouseState"]["assetPositions"][0]["position"]
        assert (pushed["clearinghouseState"]["user"], position["szi"]) == (sub, "0.01")
        assert pushed["openOrders"] == {"dex": "", "user": sub, "orders": []}
        assert masters.silent()
    finally:
        mine.ws.close()
        masters.ws.close()


def test_the_controls_over_http(sim, wallet):
    def control(**body):
        return requests.post(sim.url + "/control", json=body, timeout=5)

    sub, vault = (eth_account.Account.create().address for _ in range(2))
    assert control(op="add_sub_account", master=wallet.address, sub=sub, usdc=1000).status_code == 200
    assert control(op="add_vault", leader=wallet.address, vault=vault, usdc="2500.5").status_code == 200
    assert sim.positions(sub) == {}
    assert Info(sim.url, skip_ws=True).user_state(vault)["marginSummary"]["accountValue"] == "2500.5"
    again = control(op="add_sub_account", master=wallet.address, sub=sub)
    assert again.status_code == 400 and "already has an account" in again.json()["error"]
    orphan = control(op="add_sub_account", master=eth_account.Account.create().address, sub=vault)
    assert orphan.status_code == 400 and "add_account first" in orphan.json()["error"]
    nested = control(op="add_sub_account", master=sub, sub=eth_account.Account.create().address)
    assert nested.status_code == 400  # a sub-account holds no sub-accounts of its own
