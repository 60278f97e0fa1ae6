"""Stale means stale everywhere; one coin under two spellings is one action; unknown symbols cost nothing."""

from __future__ import annotations

import secrets
import time

from tests.conftest import key_of, push, run_frame, trade_frame, wait_state


def test_btc_and_BTC_are_the_same_action(make_service, sim, signals, wallet):  # noqa: N802
    service = make_service()
    event = "ev-" + secrets.token_hex(6)
    assert run_frame(service, signals, trade_frame(symbol="BTC", event_id=event))["state"] == "filled"
    assert key_of(trade_frame(symbol="btc", event_id=event)) == key_of(trade_frame(symbol="BTC", event_id=event))
    signals.push(trade_frame(symbol="btc", event_id=event))  # a duplicate: not executed again
    marker = run_frame(service, signals, trade_frame(symbol="ETH", size="0.1"))
    assert marker["state"] == "filled"
    assert [o["coin"] for o in sim.applied_orders(wallet.address)] == ["BTC", "ETH"]


def test_a_flood_of_unknown_symbols_reloads_meta_at_most_once_a_minute(make_service, sim, signals):
    service = make_service()
    before = sim.request_count("/info", "meta")
    for i in range(5):
        row = run_frame(service, signals, trade_frame(symbol=f"NOPE{i}"))
        assert row["state"] == "rejected" and row["reason"] == f"unknown symbol 'NOPE{i}': not a perp on this exchange"
    assert sim.request_count("/info", "meta") - before <= 1


def test_a_timestamp_more_than_a_few_seconds_ahead_is_refused(make_service, sim, signals, wallet):
    service = make_service()
    ahead = run_frame(service, signals, trade_frame(ts=time.time() + 10))
    assert ahead["state"] == "rejected" and ahead["reason"] in (
        "metadata.timestamp is 10s in the future; check the clocks",
        "metadata.timestamp is 9s in the future; check the clocks",
    )
    assert run_frame(service, signals, trade_frame(ts=time.time() + 2))["state"] == "filled"  # ordinary clock skew
    assert len(sim.applied_orders(wallet.address)) == 1


def test_a_trade_that_went_stale_while_its_leverage_was_read_changes_no_leverage(make_service, sim, signals, wallet):
    service = make_service(FRAC_MAX_ACTION_AGE="3")
    sim.pause_userdata()  # no activeAssetData push: the leverage is read over REST ...
    sim.inject("500", count=4, path="/info")  # ... and the read fails four times: 2.4-3.75 s of retries
    frame = push(signals, trade_frame(ts=time.time() - 1, leverage=7))
    row = wait_state(service, key_of(frame), timeout=20)
    assert row["state"] == "expired" and row["reason"].startswith("not sent: "), row
    assert sim.leverage(wallet.address, "BTC")["value"] != 7 and sim.applied_orders(wallet.address) == []
    assert sim.request_count("/exchange") == 0  # no leverage update, no order


def test_an_order_never_outlives_its_action(make_service, sim, signals, wallet):
    service = make_service(FRAC_MAX_ACTION_AGE="5", FRAC_HTTP_TIMEOUT="10")
    sent = time.time() - 4.5  # half a second left of its 5 s: the order's expiresAfter is that deadline
    run_frame(service, signals, trade_frame(ts=sent))
    (entry,) = [e for e in sim.exchange_log() if e["action_type"] == "order"]
    # (judged by the exchange's clock: the measured offset, a few ms of noise here, is added)
    assert entry["expiresAfter"] <= int((sent + 5) * 1000) + int((service.client.clock_offset or 0) * 1000) + 1


def test_a_frame_cannot_forge_a_log_line(make_service, sim, signals):
    """A symbol carrying a newline and a fake log line: the text log keeps it on the one line of its record."""
    import io
    import json
    import logging

    from fractrade_sync.logs import setup_logging

    stream = io.StringIO()
    handler = setup_logging("INFO", "text", stream=stream)
    try:
        service = make_service()
        forged = "2026-12-01 12:00:00,000 INFO    worker    trade BUY 100 BTC -> filled"
        row = run_frame(service, signals, trade_frame(symbol="NOPE\n" + forged))
        assert row["state"] == "rejected"
        frame = json.loads(json.dumps({"type": "action", "data": "x\r\n" + forged + "\u2028"}))
        signals.push(frame)
        run_frame(service, signals, trade_frame(symbol="ETH", size="0.1"))
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert not [line for line in lines if line.startswith(forged[:20])], lines
    assert any("NOPE\\n2026-12-01 12:00:00,000 INFO" in line for line in lines), lines


def test_an_unreadable_mids_answer_is_retried_never_taken_for_an_unknown_coin(make_service, sim, signals, wallet):
    """A gateway's `null` (or an error object) for allMids never makes a known coin "no mid price" (`rejected`):
    the coin is in meta, and an answer without its mid says nothing of it."""
    service = make_service()
    service.client.feed = None  # mids over REST
    for garbage in ("null", '{"status":"maintenance"}'):
        sim.inject("answer", path="/info", answer=garbage)
        row = run_frame(service, signals, trade_frame(size="0.001"))
        assert row["state"] == "filled", row
