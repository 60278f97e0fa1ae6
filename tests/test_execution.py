"""Execution semantics on the simulator: leverage (never touched by a dry run or a refused trade, and a change made
elsewhere noticed), stop loss / take profit, local refusals, outcomes."""

from __future__ import annotations

import logging

from hyperliquid.exchange import Exchange

from fractrade_sync.exchange import account_reads
from fractrade_sync.exchange.signing import NonceSource
from tests.conftest import info_reads, key_of, protect_frame, run_frame, trade_frame, wait_drained, wait_for, wait_state


def test_leverage_is_updated_only_when_it_changes(make_service, sim, signals, wallet):
    service = make_service()
    for lev in (10, 10, 5):
        assert run_frame(service, signals, trade_frame(leverage=lev))["state"] == "filled"
    assert sim.request_count("/exchange", "updateLeverage") == 2
    assert sim.leverage(wallet.address, "BTC") == {"type": "cross", "value": 5}


def test_leverage_is_read_from_the_account_before_updating(make_service, sim, signals, wallet):
    first = make_service()
    run_frame(first, signals, trade_frame(leverage=7))
    first.stop()
    second = make_service()  # a fresh cache: it reads the open position's leverage, sees 7x, sends nothing
    run_frame(second, signals, trade_frame(leverage=7))
    assert sim.request_count("/exchange", "updateLeverage") == 1


def test_leverage_is_capped_by_the_asset_and_the_user(make_service, sim, signals, wallet, caplog):
    service = make_service(FRAC_MAX_LEVERAGE="3")
    with caplog.at_level(logging.WARNING, logger="fractrade_sync"):
        run_frame(service, signals, trade_frame(symbol="ETH", size="0.1", leverage=100))
    assert sim.leverage(wallet.address, "ETH")["value"] == 3
    assert "leverage 100x for ETH capped to 3x (asset max 25x, FRAC_MAX_LEVERAGE 3)" in caplog.text


def test_leverage_over_the_asset_max_is_capped_to_it(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(leverage=100))
    assert sim.leverage(wallet.address, "BTC")["value"] == 40


def test_isolated_margin_is_configurable(make_service, sim, signals, wallet):
    service = make_service(FRAC_MARGIN_MODE="isolated")
    run_frame(service, signals, trade_frame(leverage=4))
    assert sim.leverage(wallet.address, "BTC") == {"type": "isolated", "value": 4}


def test_dry_run_never_touches_leverage(make_service, sim, signals, wallet):
    service = make_service(FRAC_DRY_RUN="1")
    before = sim.leverage(wallet.address, "BTC")
    assert run_frame(service, signals, trade_frame(leverage=33))["state"] == "skipped"
    assert sim.leverage(wallet.address, "BTC") == before and sim.request_count("/exchange") == 0


def test_a_refused_trade_leaves_leverage_alone(make_service, sim, signals, wallet):
    service = make_service(FRAC_MAX_ORDER_USD="1000")
    before = sim.leverage(wallet.address, "BTC")
    row = run_frame(service, signals, trade_frame(size="0.05", leverage=40))
    assert row["state"] == "rejected" and "FRAC_MAX_ORDER_USD" in row["reason"]
    assert sim.leverage(wallet.address, "BTC") == before


def test_a_leverage_changed_elsewhere_is_noticed(make_service, sim, signals, wallet, monkeypatch):
    monkeypatch.setattr(account_reads, "LEVERAGE_TTL", 0.0)  # instead of waiting a minute
    service = make_service()
    run_frame(service, signals, trade_frame(leverage=10))
    Exchange(wallet, sim.url).update_leverage(3, "BTC", True)  # the trader sets 3x in Hyperliquid's UI
    wait_for(lambda: service.client.account.leverage("BTC") == ("cross", 3), what="the activeAssetData push")
    run_frame(service, signals, trade_frame(leverage=10))
    assert sim.leverage(wallet.address, "BTC") == {"type": "cross", "value": 10}


def test_second_stop_loss_replaces_the_first(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    first = run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    profit = run_frame(service, signals, protect_frame("take_profit", trigger="55000"))
    second = run_frame(service, signals, protect_frame("stop_loss", trigger="49000"))
    assert first["state"] == second["state"] == profit["state"] == "resting"
    wait_drained(service, "the cleanup")
    orders = sim.open_orders(wallet.address)
    stops = [o for o in orders if o["orderType"] == "Stop Market"]
    # a position TP/SL (size 0: the whole position); its answer gives no oid, its cloid is the action's
    assert [(o["triggerPx"], o["sz"], o["isPositionTpsl"]) for o in stops] == [("49000.0", "0.0", True)]
    assert len([o for o in orders if o["orderType"] == "Take Profit Market"]) == 1
    assert all(o["reduceOnly"] for o in orders)


def test_stop_loss_without_size_covers_the_whole_position_and_fires(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    run_frame(service, signals, trade_frame(size="0.02"))
    row = run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    assert row["state"] == "resting"
    (order,) = sim.open_orders(wallet.address)
    assert order["isPositionTpsl"] and order["sz"] == "0.0" and order["triggerPx"] == "48500.0"
    sim.set_mid("BTC", "48000")
    assert sim.positions(wallet.address) == {}  # the whole 0.03


def test_stop_loss_with_an_explicit_size(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.03"))
    run_frame(service, signals, protect_frame("take_profit", trigger="60000", size="0.01"))
    (order,) = sim.open_orders(wallet.address)
    assert order["sz"] == "0.01"


def test_protection_without_a_position_is_refused(make_service, sim, signals, wallet):
    service = make_service()
    row = run_frame(service, signals, protect_frame("stop_loss"))
    assert row["state"] == "rejected" and row["reason"] == "no open BTC position to protect"
    assert sim.request_count("/exchange", "order") == 0


def test_protection_on_the_wrong_side_is_refused(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    row = run_frame(service, signals, protect_frame("stop_loss", side="BUY"))
    assert row["reason"] == "a BUY stop loss would increase the long BTC position"


def test_reduce_only_without_a_position_is_refused_locally(make_service, sim, signals, wallet):
    service = make_service()
    row = run_frame(service, signals, trade_frame(side="SELL", reduce_only=True))
    assert row["state"] == "rejected" and row["reason"] == "reduce-only: no open BTC position to reduce"
    assert sim.request_count("/exchange") == 0


def test_reduce_only_closes_a_position(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    row = run_frame(service, signals, trade_frame(side="SELL", size="0.01", reduce_only=True))
    assert row["state"] == "filled" and sim.positions(wallet.address) == {}


def test_size_that_rounds_to_zero_is_refused(make_service, sim, signals, wallet):
    service = make_service()
    row = run_frame(service, signals, trade_frame(size="0.000001"))
    assert row["reason"] == "size 0.000001 rounds to 0 at 5 decimals for BTC"
    assert sim.request_count("/exchange") == 0


def test_order_under_ten_dollars_is_refused_locally(make_service, sim, signals, wallet):
    service = make_service()
    row = run_frame(service, signals, trade_frame(symbol="DOGE", size="10"))
    assert row["state"] == "rejected"
    assert row["reason"].startswith("order value $") and "under Hyperliquid's $10 minimum" in row["reason"]
    assert sim.request_count("/exchange") == 0


def test_a_position_under_ten_dollars_can_still_be_closed_and_protected(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.0003"))  # ~$15
    sim.set_mid("BTC", 30000)  # now ~$9
    wait_for(lambda: service.client.feed.get("BTC") == 30000, what="the feed's new mid")
    assert run_frame(service, signals, protect_frame("stop_loss", trigger="25000"))["state"] == "resting"
    assert run_frame(service, signals, trade_frame(side="SELL", size="0.0003", reduce_only=True))["state"] == "filled"
    assert sim.positions(wallet.address) == {}


def test_size_is_rounded_down_to_the_lot(make_service, sim, signals, wallet):
    service = make_service()
    row = run_frame(service, signals, trade_frame(symbol="SOL", size="1.239"))
    assert row["state"] == "filled" and row["filled_sz"] == "1.23"


def test_partial_fill_is_reported(make_service, sim, signals, wallet):
    service = make_service()
    sim.set_liquidity("BTC", "0.004")
    row = run_frame(service, signals, trade_frame(size="0.01"))
    assert row["state"] == "partially_filled" and row["filled_sz"] == "0.004"


def test_exchange_rejection_is_quoted_verbatim(make_service, sim, signals, wallet, caplog):
    service = make_service()
    with caplog.at_level(logging.INFO, logger="fractrade_sync"):
        row = run_frame(service, signals, trade_frame(size="50"))  # $2.5M on a $100k account
    assert row["state"] == "rejected"
    assert row["reason"].startswith("Insufficient margin to place order. asset=0 (not enough margin")
    assert "trade BUY 50 BTC -> rejected" in caplog.text
    assert "Insufficient margin to place order. asset=0" in caplog.text


def test_dry_run_builds_and_logs_but_sends_nothing(make_service, sim, signals, wallet, caplog):
    service = make_service(FRAC_DRY_RUN="1")
    with caplog.at_level(logging.INFO, logger="fractrade_sync"):
        row = run_frame(service, signals, trade_frame())
    assert row["state"] == "skipped" and row["reason"].startswith("dry run: BUY 0.01 BTC @ 50500")
    assert '"type":"order"' in caplog.text and '"tif":"Ioc"' in caplog.text
    assert sim.request_count("/exchange") == 0


def test_outcome_line_has_the_essentials(make_service, sim, signals, wallet, caplog):
    service = make_service()
    with caplog.at_level(logging.INFO, logger="fractrade_sync"):
        run_frame(service, signals, trade_frame())
    (line,) = [r for r in caplog.records if "-> filled" in r.getMessage()]
    assert line.getMessage().startswith("trade BUY 0.01 BTC -> filled; filled 0.01 @ 50000")
    assert "oid 1" in line.getMessage() and " ms" in line.getMessage()
    assert (line.symbol, line.side, line.outcome, line.oid) == ("BTC", "BUY", "filled", 1)


def test_a_burst_never_reuses_a_nonce(make_service, sim, signals, wallet):
    service = make_service()
    frames = [trade_frame(size="0.001", leverage=3 + i % 2) for i in range(15)]
    for frame in frames:
        signals.push(frame)
    states = [wait_state(service, key_of(f))["state"] for f in frames]
    assert states == ["filled"] * 15
    nonces = [entry["nonce"] for entry in sim.exchange_log()]
    assert len(nonces) == len(set(nonces)) and all(entry["ok"] for entry in sim.exchange_log())


def test_nonce_source_is_strictly_increasing_on_a_frozen_clock():
    source = NonceSource(clock=lambda: 1_700_000_000.0)
    values = [source.next() for _ in range(1000)]
    assert values == list(range(1_700_000_000_000, 1_700_000_000_000 + 1000))


def test_closing_a_position_cancels_its_stop_loss_and_take_profit(make_service, sim, signals, wallet, caplog):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    run_frame(service, signals, protect_frame("take_profit", trigger="55000"))
    run_frame(
        service, signals, trade_frame(side="SELL", size="0.01", reduce_only=True)
    )  # partly closed: still protected
    assert len(sim.open_orders(wallet.address)) == 2
    with caplog.at_level(logging.INFO, logger="fractrade_sync"):
        run_frame(service, signals, trade_frame(side="SELL", size="0.01", reduce_only=True))
    assert sim.positions(wallet.address) == {} and sim.open_orders(wallet.address) == []
    assert "BTC position closed, its protection is void: canceled trigger oid" in caplog.text


def test_a_trade_without_protection_costs_no_extra_request(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    before = info_reads(sim)
    run_frame(service, signals, trade_frame(side="SELL", size="0.01", reduce_only=True))
    # the reduce-only check's position comes from the live account view (the first trade laid over it): no read
    assert info_reads(sim) - before == 0
