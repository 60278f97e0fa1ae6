"""The simulator books what the exchange books: a fee on every fill (taker and maker rates), each fill's `fee` and
`closedPnl` (before the fee), and funding paid on demand, served as `userFunding` (EXCHANGE.md §9)."""

from __future__ import annotations

from decimal import Decimal

import eth_account
import pytest
import requests
from hyperliquid.exchange import Exchange

from fractrade_sync.sim.hl_server import HyperliquidSimulator


@pytest.fixture
def sim():
    with HyperliquidSimulator() as simulator:
        yield simulator


@pytest.fixture
def wallet(sim):
    account = eth_account.Account.create()
    sim.add_account(account.address, 100_000)
    return account


def info(sim, **body) -> object:
    return requests.post(sim.url + "/info", json=body, timeout=5).json()


def books(sim, user: str) -> dict[str, Decimal]:
    """The simulator's own totals, as numbers (its strings carry the exchange's 6 decimals)."""
    return {name: Decimal(value) for name, value in sim.books(user).items()}


def account_value(sim, user: str) -> Decimal:
    return Decimal(info(sim, type="clearinghouseState", user=user)["marginSummary"]["accountValue"])


def test_fills_pay_the_taker_or_maker_rate_and_closed_pnl_is_before_the_fee(sim, wallet, ex):
    user = wallet.address
    ex.market_open("BTC", True, 0.02)  # crosses the book: taker, 0.045% of 0.02 x 50000 = 0.45
    ex.order("BTC", False, 0.01, 51000, {"limit": {"tif": "Gtc"}})  # rests: maker when the mid reaches it
    sim.set_mid("BTC", 51000)
    ex.market_close("BTC")  # the other 0.01, taker at 51000
    newest_first = info(sim, type="userFills", user=user)
    fills = list(reversed(newest_first))
    assert [(f["crossed"], f["fee"], f["closedPnl"], f["feeToken"]) for f in fills] == [
        (True, "0.45", "0.0", "USDC"),  # 0.02 x 50000 x 0.00045
        (False, "0.0765", "10.0", "USDC"),  # maker: 0.01 x 51000 x 0.00015; 0.01 x (51000 - 50000) before its fee
        (True, "0.2295", "10.0", "USDC"),  # 0.01 x 51000 x 0.00045
    ]
    # the account paid every fee: 100000 + 20 realized - 0.7560 in fees
    assert account_value(sim, user) == Decimal("100019.244")
    assert books(sim, user) == {
        "realized_pnl": 20,
        "fees": Decimal("0.756"),
        "funding": 0,
        "net_pnl": Decimal("19.244"),
    }


def test_funding_is_paid_on_demand_longs_pay_shorts_and_is_served_as_user_funding(sim, wallet, ex):
    short = eth_account.Account.create()
    sim.add_account(short.address, 100_000)
    ex.market_open("ETH", True, 1.0)
    Exchange(short, base_url=sim.url, account_address=short.address).market_open("ETH", False, 2.0)
    before = account_value(sim, wallet.address)
    paid = sim.pay_funding("ETH", "0.0001")  # positive: longs pay shorts, size x mark x rate
    assert [(p["delta"]["szi"], p["delta"]["usdc"]) for p in paid] == [("1.0", "-0.3"), ("-2.0", "0.6")]
    assert account_value(sim, wallet.address) == before - Decimal("0.3")
    sim.pay_funding("ETH", "-0.00005")  # negative: shorts pay longs
    sim.pay_funding("BTC", "0.01")  # nobody holds BTC: nothing is settled
    records = info(sim, type="userFunding", user=wallet.address, startTime=0)
    assert [r["delta"] for r in records] == [
        {"type": "funding", "coin": "ETH", "usdc": "-0.3", "szi": "1.0", "fundingRate": "0.0001", "nSamples": None},
        {"type": "funding", "coin": "ETH", "usdc": "0.15", "szi": "1.0", "fundingRate": "-0.00005", "nSamples": None},
    ]
    first, second = records
    assert first["time"] < second["time"] and first["hash"] == "0x" + "0" * 64
    assert info(sim, type="userFunding", user=wallet.address, startTime=second["time"]) == [second]
    assert books(sim, wallet.address)["funding"] == Decimal("-0.15")
    assert books(sim, short.address)["funding"] == Decimal("0.3")
