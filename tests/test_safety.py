"""Regression tests for money-path edge cases found in review: each once lost, doubled or surprised."""

from __future__ import annotations

import socket
import threading
import time

from hyperliquid.exchange import Exchange

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.exchange import account_reads
from fractrade_sync.feeds import receiver
from fractrade_sync.service import FractradeExecutor
from tests.conftest import (
    key_of,
    protect_frame,
    push,
    restart_until_done,
    run_frame,
    start_ready,
    trade_frame,
    wait_for,
    wait_state,
)


def _triggers(sim, wallet) -> list[tuple]:
    return [(o["orderType"], o["triggerPx"]) for o in sim.open_orders(wallet.address) if o.get("isTrigger")]


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


def test_retries_never_send_a_stale_action(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5", FRAC_MAX_ACTION_AGE="3")
    sim.inject("500", 3)
    frame = trade_frame(ts=time.time() - 2)  # fresh when taken, stale by the second resend
    row = wait_state(service, key_of(push(signals, frame)), timeout=30)
    assert row["state"] == "expired" and row["reason"].startswith(
        "not executed (HTTP 500 from the exchange; its nonce invalidated by a noop): "
    ), row
    assert sim.applied_orders(wallet.address) == []


def test_a_stop_during_the_settle_wait_leaves_the_order_for_the_next_start(env, sim, signals, wallet):
    settings = settings_from_mapping({**env, "FRAC_HTTP_TIMEOUT": "0.5"})
    first = start_ready(settings)
    sim.timeout_s = 1.0
    sim.inject("timeout")  # applied, answered after our read timeout
    frame = push(signals, trade_frame())
    wait_for(lambda: sim.request_count("/exchange", "order") == 1, what="the order in flight")
    first.stop(timeout=0.1)  # the drain ends during the settle wait: nothing may be concluded yet
    row = restart_until_done(settings, key_of(frame))
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid"
    assert len(sim.applied_orders(wallet.address)) == 1


def test_resume_after_a_crash_between_a_new_stop_loss_and_the_cancel_of_the_old(env, sim, signals, wallet):
    settings = settings_from_mapping(env)
    first = start_ready(settings)
    wait_state(first, key_of(push(signals, trade_frame(size="0.02"))))
    wait_state(first, key_of(push(signals, protect_frame("stop_loss", trigger="48000"))))
    second_sl = protect_frame("stop_loss", trigger="49000")
    # die right after the exchange rested the new stop loss: no cancel, no terminal journal row
    first.pipeline.protection.after_outcome = lambda *args: None
    finish = first.journal.finish
    first.journal.finish = lambda action, outcome: None if action.key == key_of(second_sl) else finish(action, outcome)
    signals.push(second_sl)
    wait_for(lambda: len(_triggers(sim, wallet)) == 2, what="the second stop loss resting")
    first.stop(timeout=2)
    again = FractradeExecutor(settings).start()
    try:
        row = wait_state(again, key_of(second_sl), timeout=20)
        wait_for(lambda: len(_triggers(sim, wallet)) == 1, what="the older stop loss canceled")
    finally:
        again.stop(timeout=2)
    assert row["state"] == "resting" and _triggers(sim, wallet) == [("Stop Market", "49000.0")]


def test_a_take_profit_left_by_a_fired_stop_loss_never_closes_the_next_position(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    run_frame(service, signals, protect_frame("take_profit", trigger="55000"))
    sim.set_mid("BTC", 47900)  # the stop loss fires on the exchange: flat, the take profit stays
    assert sim.positions(wallet.address) == {} and len(_triggers(sim, wallet)) == 1
    # (the feed sees 47900 first: else its late push could follow the wait below and price the trade off it)
    wait_for(lambda: service.client.feed.get("BTC") == 47900, what="the feed's low mid")
    sim.set_mid("BTC", 50000)
    wait_for(lambda: service.client.feed.get("BTC") == 50000, what="the feed's new mid")
    row = run_frame(service, signals, trade_frame(size="0.02"))  # a new long, from flat
    assert row["state"] == "filled", row
    assert _triggers(sim, wallet) == []
    sim.set_mid("BTC", 55100)
    assert sim.positions(wallet.address) == {"BTC": "0.02"}


def test_a_position_under_ten_dollars_can_still_be_closed_and_protected(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.0003"))  # ~$15
    sim.set_mid("BTC", 30000)  # now ~$9
    wait_for(lambda: service.client.feed.get("BTC") == 30000, what="the feed's new mid")
    assert run_frame(service, signals, protect_frame("stop_loss", trigger="25000"))["state"] == "resting"
    assert run_frame(service, signals, trade_frame(side="SELL", size="0.0003", reduce_only=True))["state"] == "filled"
    assert sim.positions(wallet.address) == {}


def test_a_server_that_never_answers_the_handshake_is_retried(make_service, env, monkeypatch):
    monkeypatch.setattr(receiver, "HANDSHAKE_TIMEOUT", 0.5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept():
        listener.settimeout(0.2)
        while len(accepted) < 3:
            try:
                accepted.append(listener.accept()[0])  # and never answer
            except OSError:
                if listener.fileno() < 0:
                    return

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        service = make_service(wait=False, FRAC_WS_URL=f"ws://127.0.0.1:{listener.getsockname()[1]}")
        wait_for(lambda: len(accepted) >= 3, timeout=15, what="three handshake attempts")
        service.stop(timeout=5)
        assert not service.receiver.is_alive()
    finally:
        listener.close()
        thread.join(5)
        for sock in accepted:
            sock.close()


def _killed_before_its_cleanup(env, sim, signals, wallet, last: dict) -> None:
    """A run that opens 0.02 BTC with a stop loss at 48000, then executes `last` and dies before that action's
    cleanup (cleanups wait until the queue drains: a kill -9 loses one still waiting)."""
    settings = settings_from_mapping(env)
    first = start_ready(settings)
    wait_state(first, key_of(push(signals, trade_frame(size="0.02"))))
    wait_state(first, key_of(push(signals, protect_frame("stop_loss", trigger="48000"))))
    first.pipeline.protection.after_outcome = lambda *args: None
    wait_state(first, key_of(push(signals, last)))
    first.stop(timeout=2)


def test_a_replace_a_kill_cut_short_is_finished_at_the_next_start(env, sim, signals, wallet):
    _killed_before_its_cleanup(env, sim, signals, wallet, protect_frame("stop_loss", trigger="49000"))
    assert len(_triggers(sim, wallet)) == 2  # the new stop loss, and the old one it replaces
    again = FractradeExecutor(settings_from_mapping(env)).start()
    try:
        wait_for(lambda: _triggers(sim, wallet) == [("Stop Market", "49000.0")], what="the older stop canceled")
    finally:
        again.stop(timeout=2)


def test_a_stop_left_on_a_coin_a_kill_left_flat_is_canceled_at_the_next_start(env, sim, signals, wallet):
    _killed_before_its_cleanup(env, sim, signals, wallet, trade_frame(side="SELL", size="0.02", reduce_only=True))
    assert sim.positions(wallet.address) == {} and len(_triggers(sim, wallet)) == 1
    again = FractradeExecutor(settings_from_mapping(env)).start()
    try:
        wait_for(lambda: _triggers(sim, wallet) == [], what="the void stop canceled")
    finally:
        again.stop(timeout=2)
