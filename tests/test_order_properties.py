"""Property: every order the client sends passes the exchange's price and size rules, or is refused locally.

Hypothesis generates actions over the simulator's whole universe (szDecimals 0 to 5), at random mids, sizes
from cents to millions of dollars, reduce-only or not, stop losses and take profits, through the real service.
"""

from __future__ import annotations

import time
from decimal import Decimal

from eth_account import Account
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fractrade_sync.sim.hl_model import COINS
from tests.conftest import key_of, protect_frame, trade_frame, wait_for, wait_state

# what the exchange would say if the client got price or size wrong
RULE_ERRORS = ("invalid price", "invalid size", "tick size", "minimum value", "Order price cannot be", "zero size")
LOCAL_REASONS = (
    "rounds to 0",
    "under Hyperliquid's $10 minimum",
    "no open",
    "would increase",
    "reduce-only",
    "more than 80% away",
    "no valid marketable price",
)


@st.composite
def scenarios(draw):
    coin = draw(st.sampled_from(COINS))
    digits = draw(st.integers(1, 6))
    exponent = draw(st.integers(-5, 5))
    mid = Decimal(draw(st.integers(10 ** (digits - 1), 10**digits - 1))).scaleb(exponent - digits + 1)
    usd = Decimal(draw(st.integers(1, 5_000_000))) / 100
    lot = Decimal(1).scaleb(-draw(st.integers(0, 8)))
    size = max((usd / mid).quantize(lot), lot)
    kind = draw(st.sampled_from(["trade", "trade", "stop_loss", "take_profit"]))
    side = draw(st.sampled_from(["BUY", "SELL"]))
    reduce_only = draw(st.booleans()) if kind == "trade" else True
    move = Decimal(draw(st.integers(1, 50))) / 100
    leverage = draw(st.one_of(st.none(), st.integers(1, 60)))
    whole = draw(st.booleans())
    return coin, mid, size, kind, side, reduce_only, move, leverage, whole


def test_orders_always_pass_price_and_size_rules(make_service, sim, signals):
    wallet = Account.create()
    sim.add_account(wallet.address, 10**12)
    service = make_service(
        HYPERLIQUID_PRIVATE_KEY="0x" + wallet.key.hex().removeprefix("0x"),
        HYPERLIQUID_PUBLIC_ADDRESS=wallet.address,
    )
    outcomes: list[tuple[str, str]] = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(scenarios())
    # both sides are always covered, whatever the random draws: one order that fills, one refused locally
    @example(("BTC", Decimal(50000), Decimal("0.01"), "trade", "BUY", False, Decimal("0.1"), None, False))
    @example(("BTC", Decimal(50000), Decimal("0.00001"), "trade", "BUY", False, Decimal("0.1"), None, False))
    def check(scenario):
        coin, mid, size, kind, side, reduce_only, move, leverage, whole = scenario
        sim.set_mid(coin, str(mid))
        # the service prices from its live exchange feed: let the push arrive (a real market moves continuously)
        wait_for(lambda: service.client.feed.get(coin) == mid, what=f"{coin} mid {mid} on the feed")
        if kind == "trade":
            meta = {} if leverage is None else {"leverage": leverage}
            frame = trade_frame(symbol=coin, size=str(size), side=side, reduce_only=reduce_only, ts=time.time(), **meta)
        else:
            protects_long = side == "SELL"
            below = (kind == "stop_loss") == protects_long
            trigger = mid * (1 - move) if below else mid * (1 + move)
            frame = protect_frame(kind, coin, side, str(trigger.normalize()), size=None if whole else str(size))
        signals.push(frame)
        row = wait_state(service, key_of(frame), timeout=20)
        outcomes.append((row["state"], row["reason"] or ""))
        assert row["state"] in ("filled", "partially_filled", "resting", "rejected"), row
        if row["state"] == "rejected":
            reason = row["reason"]
            assert not any(text in reason for text in RULE_ERRORS), reason
            if "asset=" not in reason:
                assert any(text in reason for text in LOCAL_REASONS) or "Insufficient margin" in reason, reason

    check()
    for entry in sim.exchange_log():
        for error in entry["errors"]:
            assert not any(text in str(error) for text in RULE_ERRORS), error
    states = {state for state, _ in outcomes}
    assert "filled" in states and "rejected" in states, outcomes  # the search really covered both sides
