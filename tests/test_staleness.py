"""Stale means stale everywhere: a clock ahead is refused, a trade that went stale while its reads were retried
changes nothing, and no order can land after its action's deadline."""

from __future__ import annotations

import time

from tests.conftest import key_of, push, run_frame, trade_frame, wait_state


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
