"""Batched orders and the live account view, over real sockets: an agent event protected in two requests, one
request with an order refused and one filled, per-coin order in a burst, an ambiguous batch settled order by order,
and a stale user-data feed falling back to REST."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal

from fractrade_sync.execution.waves import next_wave
from tests.conftest import (
    info_reads,
    key_of,
    protect_frame,
    queued_together,
    run_frame,
    trade_frame,
    wait_drained,
    wait_for,
    wait_state,
)


def _order_requests(sim) -> list[dict]:
    return [e for e in sim.exchange_log() if e["action_type"] == "order"]


def _orders_in(entry: dict) -> int:
    return len(((entry["response"] or {}).get("response") or {}).get("data", {}).get("statuses", []))


def test_one_request_with_one_order_refused_and_one_filled_gives_each_its_own_outcome(
    make_service, sim, signals, wallet
):
    service = make_service()
    sim.set_liquidity("ETH", 0)  # the book is empty: an IOC on ETH cannot fill
    eth, btc = trade_frame(symbol="ETH", size="0.01"), trade_frame(symbol="BTC", size="0.001")
    rows = queued_together(service, sim, signals, [eth, btc])
    assert rows[0]["state"] == "rejected" and "could not immediately match" in rows[0]["reason"], rows[0]
    assert rows[1]["state"] == "filled" and rows[1]["filled_sz"] == "0.001", rows[1]
    (batch,) = _order_requests(sim)  # both in one signed request
    assert batch["ok"] and _orders_in(batch) == 2 and sim.positions(wallet.address) == {"BTC": "0.001"}


def test_a_burst_on_several_coins_keeps_each_coins_order_in_fewer_requests(make_service, sim, signals, wallet):
    service = make_service()
    coins = (("BTC", "0.001"), ("ETH", "0.01"), ("SOL", "0.1"))
    frames = [trade_frame(symbol=coin, size=size, side=side) for side in ("BUY", "SELL") for coin, size in coins]
    before = len(_order_requests(sim))
    rows = queued_together(service, sim, signals, frames)
    assert [r["state"] for r in rows] == ["filled"] * 6, rows
    requests = _order_requests(sim)[before:]
    assert [_orders_in(e) for e in requests] == [3, 3]  # the buys together, then the sells: one coin's order kept
    for coin in ("BTC", "ETH", "SOL"):
        sides = [o["is_buy"] for o in sim.applied_orders(wallet.address) if o["coin"] == coin]
        assert sides == [True, False], (coin, sides)
    assert sim.positions(wallet.address) == {}


def test_an_event_is_protected_in_one_request_with_no_reads(make_service, sim, signals, wallet):
    service = make_service()
    first = "e-" + key_of(trade_frame())[:8]  # the agent's previous event: a trade with its stop loss, take profit
    run_frame(service, signals, trade_frame(size="0.02", event_id=first))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000", event_id=first))
    run_frame(service, signals, protect_frame("take_profit", trigger="55000", event_id=first))
    sent, reads = len(_order_requests(sim)), info_reads(sim)
    event = "e-" + key_of(trade_frame())[:8]
    frames = [
        trade_frame(size="0.01", event_id=event),
        protect_frame("stop_loss", trigger="48500", event_id=event),
        protect_frame("take_profit", trigger="56000", event_id=event),
    ]
    sim.latency_s = 0.05  # a round trip: the agent's three frames arrive while the trade is on its way
    for frame in frames:
        signals.push(frame)
    rows = [wait_state(service, key_of(frame)) for frame in frames]
    wait_drained(service, "the cleanups")
    sim.latency_s = 0.0
    assert [r["state"] for r in rows] == ["filled", "resting", "resting"], rows
    # one request: the trade, then its stop loss and take profit as position TP/SL (EXCHANGE.md §8)
    assert [_orders_in(e) for e in _order_requests(sim)[sent:]] == [3]
    assert info_reads(sim) == reads  # nothing read: no sizing, the open orders from the live view
    triggers = sorted((o["orderType"], o["triggerPx"], o["sz"]) for o in sim.open_orders(wallet.address))
    assert triggers == [("Stop Market", "48500.0", "0.0"), ("Take Profit Market", "56000.0", "0.0")]


def test_with_a_lagging_feed_the_stop_loss_covers_the_position_the_trades_answer_made(
    make_service, sim, signals, wallet
):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    wait_for(lambda: service.client.account.pending() == 0, what="the first trade shown by the feed")
    sim.set_userdata_delay(1.0)  # the feed shows what happens a second late
    reads, states = info_reads(sim), sim.request_count("/info", "clearinghouseState")
    trade, stop = trade_frame(size="0.01"), protect_frame("stop_loss", trigger="48000", size="0.05")
    rows = queued_together(service, sim, signals, [trade, stop])
    assert [r["state"] for r in rows] == ["filled", "resting"], rows
    # a sized stop covers at most the position: the feed still says 0.02, the stop covers the 0.03 the trade's own
    # answer made, and nothing was read
    assert [Decimal(o["sz"]) for o in sim.open_orders(wallet.address)] == [Decimal("0.03")]
    assert info_reads(sim) - reads <= 1  # (the held frame's unknown symbol may reload meta)
    assert sim.request_count("/info", "clearinghouseState") == states


def test_an_ambiguous_batch_is_settled_order_by_order_by_cloid(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.set_liquidity("ETH", 0)
    eth, btc = trade_frame(symbol="ETH", size="0.01"), trade_frame(symbol="BTC", size="0.001")
    # applied, and its answer lost; every identical resend is then refused as a duplicate nonce: settled by cloid
    rows = queued_together(service, sim, signals, [eth, btc], before_release=lambda: sim.inject("drop"))
    assert rows[1]["state"] == "filled" and rows[1]["reason"].startswith("found on the exchange by cloid"), rows[1]
    # the refused ETH order is found under its cloid too: the exchange keeps a record of a rejected order
    assert rows[0]["state"] == "rejected" and rows[0]["reason"].startswith("found on the exchange by cloid: "), rows[0]
    assert "Rejected" in rows[0]["reason"], rows[0]
    filled = [o["coin"] for o in sim.applied_orders(wallet.address) if o["status"] == "filled"]
    assert filled == ["BTC"] and sim.positions(wallet.address) == {"BTC": "0.001"}  # once
    first, *resends = _order_requests(sim)
    assert first["fault"] == "drop" and _orders_in(first) == 2  # both in one request, its answer lost
    assert any(e["nonce"] == first["nonce"] for e in resends)  # then resent as it was


def test_a_stale_user_data_feed_falls_back_to_rest_and_says_so(make_service, sim, signals, wallet, caplog):
    service = make_service()
    account = service.client.account
    account.confirm_within = 0.5
    run_frame(service, signals, trade_frame(size="0.02"))
    wait_for(lambda: account.pending() == 0, what="the trade shown by the feed")
    sim.pause_userdata(True)  # the subscription goes silent; pings still get pongs
    run_frame(service, signals, trade_frame(size="0.01"))  # its fill is never shown by the feed
    reads = sim.request_count("/info", "clearinghouseState")
    wait_for(lambda: account.position("BTC") is None, timeout=5, what="the view distrusted")
    sim.pause_userdata(False)
    with caplog.at_level(logging.WARNING):  # (a sized stop: at most the position, which REST tells)
        row = run_frame(service, signals, protect_frame("stop_loss", trigger="48000", size="0.05"))
    assert row["state"] == "resting"
    assert "still not shown by the user-data feed" in caplog.text or account.stalls >= 1
    # the stop loss covers 0.03, the position REST (or a fresh snapshot after resubscribing) shows
    assert [Decimal(o["sz"]) for o in sim.open_orders(wallet.address)] == [Decimal("0.03")]
    assert account.stalls == 1 and (sim.request_count("/info", "clearinghouseState") > reads or account.snapshots)


def test_without_a_live_account_view_positions_come_over_rest(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    sim.pause_userdata(True)
    service.client.account.lost()  # as when the socket drops: nothing is trusted until a new snapshot
    reads = sim.request_count("/info", "clearinghouseState")
    row = run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    assert row["state"] == "resting" and sim.request_count("/info", "clearinghouseState") == reads + 1


def test_waves_keep_each_coins_order_and_hold_a_trades_followers():
    import json
    import time

    from fractrade_sync.frames import parse_frame

    def action(frame):
        return parse_frame(json.dumps(frame), time.time())

    t_btc, stop_btc, profit_btc = action(trade_frame()), action(protect_frame()), action(protect_frame("take_profit"))
    t_eth, t_eth2 = action(trade_frame(symbol="ETH")), action(trade_frame(symbol="ETH", side="SELL"))
    # a stop loss / take profit without a size is a position TP/SL: it joins the trade on its coin (one request)
    wave, rest = next_wave([t_btc, stop_btc, t_eth, profit_btc, t_eth2])
    assert wave == [t_btc, stop_btc, t_eth, profit_btc] and rest == [t_eth2]
    assert next_wave([stop_btc, profit_btc]) == ([stop_btc, profit_btc], [])  # no trade ahead: together
    sl_again = action(protect_frame(trigger="48600"))
    assert next_wave([stop_btc, sl_again, profit_btc]) == ([stop_btc], [sl_again, profit_btc])  # one of each kind
    sized = action(protect_frame(size="0.01"))
    assert next_wave([t_btc, sized, t_eth]) == ([t_btc, t_eth], [sized])  # needs the trade's answer
    # the exchange refused a trade with its position TP/SL together: they wait for the trade's answer
    assert next_wave([t_btc, stop_btc, t_eth], together=False) == ([t_btc, t_eth], [stop_btc])


def test_an_events_last_frame_arriving_during_its_request_goes_in_the_next_one(make_service, sim, signals, wallet):
    """The worker took the trade and the stop loss at once (one request); the take profit arrives while they are on
    their way, past the few milliseconds a trade waits for its protection: it goes in the next request."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    sent = len(_order_requests(sim))
    event = "e-" + key_of(trade_frame())[:8]
    trade, stop = trade_frame(size="0.01", event_id=event), protect_frame("stop_loss", trigger="48500", event_id=event)
    profit = protect_frame("take_profit", trigger="56000", event_id=event)
    orders = sim.request_count("/exchange", "order")

    def late_take_profit():
        sim.latency_s = 0.3
        threading.Timer(0.05, lambda: signals.push(profit)).start()  # the trade's request is in flight by then

    rows = queued_together(service, sim, signals, [trade, stop], before_release=late_take_profit)
    rows.append(wait_state(service, key_of(profit)))
    sim.latency_s = 0.0
    assert sim.request_count("/exchange", "order") - orders == 2  # the trade with its stop loss, then the take profit
    assert [r["state"] for r in rows] == ["filled", "resting", "resting"], rows
    assert [_orders_in(e) for e in _order_requests(sim)[sent:]] == [2, 1]


def test_a_subscription_that_stops_sending_snapshots_gets_a_new_socket(make_service, sim, signals, wallet, monkeypatch):
    """Nothing of ours pending, pongs and allMids flowing, no clearinghouseState: asked again on the socket, then past
    the snapshot bound a new socket; the view is trusted again once a snapshot comes."""
    from fractrade_sync.feeds import account_feed

    monkeypatch.setattr(account_feed, "REFRESH_AFTER", 0.3)
    service = make_service()
    account, feed = service.client.account, service.client.feed
    account.max_snapshot_age = 1.0
    run_frame(service, signals, trade_frame(size="0.01"))
    wait_for(lambda: account.pending() == 0, what="the trade shown by the feed")
    sim.pause_userdata(True)
    before = feed.reconnects
    wait_for(lambda: account.position("BTC") is None, timeout=5, what="the view distrusted by age")
    wait_for(lambda: feed.reconnects > before, timeout=10, what="a new socket for a dead subscription")
    sim.pause_userdata(False)
    wait_for(lambda: account.position("BTC") == Decimal("0.01"), timeout=10, what="trusted again on the new socket")
