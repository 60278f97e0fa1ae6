"""Batched orders, the live account view and the deferred protection together: each coin's order, the cleanups of a
wave, a fill learnt by cloid, 4xx answers to cleanups, a disk that fills between two rounds, a silently dead
subscription; the comments say what each must never come to."""

from __future__ import annotations

from decimal import Decimal

from fractrade_sync.errors import Unwritable
from fractrade_sync.feeds.account import AccountView
from fractrade_sync.service import FractradeExecutor
from tests.account_snapshots import CLOID, STOP_ORDER, push_snapshot, snapshot
from tests.conftest import key_of, protect_frame, queued_together, run_frame, trade_frame, wait_drained, wait_for


def _view_with_an_old_stop() -> AccountView:
    """A trusted view whose stop loss (oid 7) was placed, reported and shown by a snapshot long ago."""
    view = AccountView(live=lambda: True)
    push_snapshot(view, snapshot({"BTC": "0.01"}, [STOP_ORDER]), 1)
    view.on_events("orderUpdates", [{"order": {"oid": 7, "cloid": CLOID, "coin": "BTC"}, "status": "open"}])
    push_snapshot(view, snapshot({"BTC": "0.01"}, [STOP_ORDER]), 1)
    return view


# ---- account view (unit) -------------------------------------------------------------------------------------
def test_a_cancel_answered_is_laid_over_the_snapshot_until_the_feed_shows_it():
    view = _view_with_an_old_stop()
    ok = {"status": "ok", "response": {"type": "cancel", "data": {"statuses": ["success"]}}}
    view.applied({"type": "cancel", "cancels": [{"a": 0, "o": 7}]}, ok, {0: "BTC"})
    assert view.open_orders() == [], "the canceled stop is still shown: the cancel's change was pruned at once"


def test_a_resize_answered_is_laid_over_the_snapshot_until_the_feed_shows_it():
    view = _view_with_an_old_stop()
    wire = {
        "a": 0,
        "b": False,
        "p": "43200",
        "s": "0.02",
        "r": True,
        "c": CLOID,
        "t": {"trigger": {"isMarket": True, "triggerPx": "48000", "tpsl": "sl"}},
    }
    resting = {"resting": {"oid": 7, "cloid": CLOID}}
    ok = {"status": "ok", "response": {"type": "order", "data": {"statuses": [resting]}}}
    view.applied({"type": "batchModify", "modifies": [{"oid": CLOID, "order": wire}]}, ok, {0: "BTC"})
    assert [o["sz"] for o in view.open_orders()] == ["0.02"], "the resize was pruned at once: the old size shows"


def test_after_a_reconnect_an_own_fill_is_not_counted_twice():
    view = AccountView(live=lambda: True)
    push_snapshot(view, snapshot(), 1)
    order = {"a": 0, "b": True, "p": "51000", "s": "0.01", "r": False, "t": {"limit": {"tif": "Ioc"}}, "c": CLOID}
    filled = {"filled": {"totalSz": "0.01", "avgPx": "50000", "oid": 9}}
    ok = {"status": "ok", "response": {"type": "order", "data": {"statuses": [filled]}}}
    view.applied({"type": "order", "orders": [order]}, ok, {0: "BTC"})
    assert view.position("BTC") == Decimal("0.01")
    view.lost()  # the socket drops before the fill's pushes arrive; the new connection's snapshot shows the fill
    push_snapshot(view, snapshot({"BTC": "0.01"}), 2)
    view.on_events("userFills", {"isSnapshot": True, "user": "0x0", "fills": [{"oid": 9, "coin": "BTC"}]})
    assert view.position("BTC") == Decimal("0.01"), f"counted twice: {view.position('BTC')}"


# ---- the view trusted after a lost answer --------------------------------------------------------------------
def test_a_fill_learnt_by_cloid_after_a_lost_answer_is_seen_by_the_stop_loss(make_service, sim, signals, wallet):
    sim.start_ticker(0.1, spot_coins=0)  # allMids keep the feed alive, as on the exchange
    service = make_service()
    account = service.client.account
    sim.set_account_push_interval(0.05)  # the account pushes come often (the live clearinghouseState: ~2 s) ...
    sim.set_userdata_delay(1.5)  # ... and a little late
    seen = account.snapshots
    wait_for(lambda: account.snapshots > seen + 5, timeout=5, what="the lagging snapshots flowing")
    trade, stop = trade_frame(size="0.01"), protect_frame("stop_loss", trigger="48000")
    # the trade is applied, its answer lost: the resend finds the nonce spent, the fill is found by cloid; a
    # snapshot made before the fill but delivered after the doubt makes the view trusted again without it
    rows = queued_together(service, sim, signals, [trade, stop], before_release=lambda: sim.inject("drop"))
    assert rows[0]["state"] == "filled", rows[0]
    assert sim.positions(wallet.address) == {"BTC": "0.01"}
    # never rejected with "no open BTC position to protect": the trade's answer shows the position
    assert rows[1]["state"] == "resting", (rows[1]["state"], rows[1]["reason"])


# ---- protection: a stop loss and a trade on one coin in one wave -----------------------------------------------
def test_a_stop_loss_queued_before_a_trade_on_its_coin_covers_the_position_after_it(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    queued_together(service, sim, signals, [protect_frame("stop_loss", trigger="48500"), trade_frame(size="0.01")])
    wait_drained(service, "the cleanups")
    assert sim.positions(wallet.address) == {"BTC": "0.03"}
    triggers = [(o["orderType"], o["triggerPx"], o["sz"]) for o in sim.open_orders(wallet.address)]
    # the new stop is a position TP/STOP_ORDER (size 0: the whole 0.03), never a sized one left at 0.02
    assert triggers == [("Stop Market", "48500.0", "0.0")], triggers


def test_a_stop_loss_queued_before_a_closing_trade_is_canceled_with_the_position(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    closing = trade_frame(size="0.02", side="SELL", reduce_only=True)
    queued_together(service, sim, signals, [protect_frame("stop_loss", trigger="48500"), closing])
    wait_drained(service, "the cleanups")
    assert sim.positions(wallet.address) == {}
    assert sim.open_orders(wallet.address) == []  # no new stop left live on the flat coin


# ---- a cleanup's 4xx ---------------------------------------------------------------------------------------
def _403_on_modify(service, sim) -> None:
    """The cleanup's batchModify is answered 403 by a gateway (nothing applied)."""
    real = service.client.modify

    def modify(modifies):
        sim.inject("403")
        return real(modifies)

    service.client.modify = modify


class _TradeHook(FractradeExecutor):
    def handle_hyperliquid_perp_trade(self, config):
        return super().handle_hyperliquid_perp_trade(config)


def test_a_cleanups_4xx_never_turns_a_hooks_fill_into_a_failure(make_service, sim, signals, wallet):
    service = make_service(cls=_TradeHook)
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))  # whole position: resized by trades
    _403_on_modify(service, sim)
    row = run_frame(service, signals, trade_frame(size="0.01"))
    assert sim.positions(wallet.address) == {"BTC": "0.03"}
    assert row["state"] == "filled", (row["state"], row["reason"])  # never failed with "ClientError: ..."


def test_a_cleanups_4xx_never_strands_the_rest_of_a_batch(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    _403_on_modify(service, sim)
    first, second = trade_frame(size="0.01"), trade_frame(size="0.01")
    queued_together(service, sim, signals, [first, second])
    wait_drained(service, "the batch handled")
    row = service.journal.get(key_of(second))
    # a cleanup's ClientError before the second trade's wave never leaves that trade 'received' for the rest of the
    # run, uncounted by the worker
    assert row["state"] == "filled", (row["state"], service.worker.left_behind)


# ---- a batch's second round cannot be journaled ---------------------------------------------------------------
def test_an_unwritable_second_round_never_records_an_applied_order_as_not_executed(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.set_liquidity("ETH", 0)
    eth, btc = trade_frame(symbol="ETH", size="0.01"), trade_frame(symbol="BTC", size="0.001")
    real, nonces = service.journal.sending, []

    def sending(actions, expires_after_ms, nonce):
        if nonces and nonce != nonces[0]:  # the ETH order signed anew: the disk is full by now
            raise Unwritable("the journal cannot be written (test: disk full)")
        nonces.append(nonce)
        return real(actions, expires_after_ms, nonce)

    service.journal.sending = sending
    rows = queued_together(service, sim, signals, [eth, btc], before_release=lambda: sim.inject("drop"))
    assert sim.positions(wallet.address) == {"BTC": "0.001"}  # applied by the first request
    # never failed with "not executed: the journal cannot be written": it went out before the disk filled
    assert rows[1]["state"] == "filled", (rows[1]["state"], rows[1]["reason"])


# ---- a silently dead user-data subscription, with no own change pending ------------------------------------------
def test_a_silently_dead_subscription_never_decides_a_cleanup(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    run_frame(service, signals, protect_frame("take_profit", trigger="55000"))
    wait_for(lambda: service.client.account.pending() == 0, what="all shown by the feed")
    sim.pause_userdata(True)  # the subscription dies without a word; allMids and pongs go on
    sim.set_mid("BTC", 47000)  # the stop loss fires on the exchange: flat
    assert sim.positions(wallet.address) == {}
    # (the feed sees 47000 first, then 50000: else the trade is priced off the low mid and finds nothing to match)
    wait_for(lambda: service.client.feed.get("BTC") == 47000, what="the feed's low mid")
    sim.set_mid("BTC", 50000)
    wait_for(lambda: service.client.feed.get("BTC") == 50000, what="the feed's new mid")
    row = run_frame(service, signals, trade_frame(size="0.01"))  # opened from flat
    wait_drained(service, "the cleanups")
    assert row["state"] == "filled" and sim.positions(wallet.address) == {"BTC": "0.01"}
    # REST would say 0.01 == the fill: "opened from flat", the old take profit canceled. The view (stale 0.02 plus
    # the fill) says 0.03: the previous position's take profit is resized and stays live on the new one
    assert sim.open_orders(wallet.address) == [], sim.open_orders(wallet.address)
