"""The live mids cache: follows the simulator's /ws, keeps the hot path at one /exchange request, falls back to REST."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import pytest

from fractrade_sync.feeds.exchange_feed import ExchangeFeed, mids_ws_url
from tests.conftest import info_reads, key_of, trade_frame, wait_for, wait_state


@pytest.fixture
def live(make_service):
    """A connected, ready service whose client's exchange feed is live; the feed is closed at teardown."""

    def make(**overrides):
        service = make_service(**overrides)
        wait_for(service.feed.ready.is_set, 5, what="first allMids snapshot")
        return service

    return make


def test_ws_url_is_derived_like_the_sdk():
    assert mids_ws_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws"
    assert mids_ws_url("https://api.hyperliquid.xyz/") == "wss://api.hyperliquid.xyz/ws"


def test_feed_gets_mids_from_the_simulator_and_follows_set_mid(sim):
    feed = ExchangeFeed(sim.url).start()
    try:
        wait_for(feed.ready.is_set, 5, what="first allMids snapshot")
        assert feed.get("BTC") == Decimal("50000")
        assert feed.get("NOPE") is None
        sim.set_mid("BTC", "51234.5")
        wait_for(lambda: feed.get("BTC") == Decimal("51234.5"), 5, what="the pushed mid")
        assert feed.get("BTC", max_age=-1) is None  # older than any bound is stale
    finally:
        started = time.monotonic()
        feed.stop(timeout=5)
        assert time.monotonic() - started < 2
    assert not feed.connected.is_set()


def test_a_message_that_is_not_utf8_or_json_is_skipped_and_the_feed_goes_on(sim):
    feed = ExchangeFeed(sim.url).start()
    try:
        wait_for(feed.ready.is_set, 5, what="first allMids snapshot")
        for bad in (b'{"channel": "allMids", "data": {"mids": {"BTC": "\xff"}}}', "not json", '{"channel": 1}'):
            assert sim.push_ws_raw(bad) == 1
        sim.set_mid("BTC", "50500")
        wait_for(lambda: feed.get("BTC") == Decimal("50500"), 5, what="the mid pushed after the bad messages")
        assert feed.reconnects == 0  # the connection stayed up
    finally:
        feed.stop()


def test_after_an_unreadable_push_pongs_no_longer_vouch_for_the_old_mids(sim):
    """A push that cannot be read may have carried new mids: the cache must go stale (REST) rather than let pongs
    keep an old price fresh, until the next whole allMids."""
    feed = ExchangeFeed(sim.url, max_age=0.4).start()
    try:
        wait_for(feed.ready.is_set, 5, what="first allMids snapshot")
        assert feed.get("BTC") == Decimal("50000")
        sim.state.set_mid("BTC", "60000")  # the exchange moved; its push is the unreadable one below
        assert sim.push_ws_raw(b'{"channel": "allMids", "data": {"mids": {"BTC": "60000.0", "X": "\xff"}}}') == 1
        wait_for(lambda: feed.get("BTC") is None, 3, what="the old mid going stale despite pongs")
        sim.set_mid("BTC", "60001")  # the next whole push vouches again
        wait_for(lambda: feed.get("BTC") == Decimal("60001"), 5, what="the next push")
        assert feed.reconnects == 0
    finally:
        feed.stop()


def test_quiet_feed_stays_fresh_through_pings(sim):
    """No mid changes: pongs on the live subscription keep the cache usable past the staleness bound."""
    feed = ExchangeFeed(sim.url, max_age=0.4).start()
    try:
        wait_for(feed.ready.is_set, 5, what="first allMids snapshot")
        first = feed.messages
        deadline = time.monotonic() + 1.5  # several staleness bounds with nothing pushed
        while time.monotonic() < deadline:
            wait_for(lambda: feed.get("ETH") is not None, 1.0, what="a fresh mid between pings")
            time.sleep(0.05)
        assert feed.messages - first >= 3  # the pongs that kept it fresh
    finally:
        feed.stop()


def test_steady_state_trade_is_one_exchange_request_and_no_info(live, sim, signals, wallet):
    service = live()
    warm = trade_frame(size="0.001", leverage=10)
    signals.push(warm)
    assert wait_state(service, key_of(warm))["state"] == "filled"  # loads leverage into the cache

    info, exchange = info_reads(sim), sim.request_count("/exchange")
    frame = trade_frame(size="0.001", side="SELL", leverage=10)
    signals.push(frame)
    row = wait_state(service, key_of(frame))

    assert row["state"] == "filled"
    assert sim.request_count("/exchange") - exchange == 1
    assert info_reads(sim) - info == 0
    last = sim.applied_orders(wallet.address)[-1]
    assert (last["is_buy"], last["status"], last["sz"]) == (False, "filled", "0.001")


def test_stale_feed_falls_back_to_rest_and_says_so(live, sim, signals, caplog):
    service = live()
    feed = service.client.feed
    feed.stop()
    feed.max_age = 0.2
    wait_for(lambda: feed.get("BTC") is None, 2, what="the cache to go stale")
    caplog.set_level(logging.WARNING, logger="fractrade_sync.exchange")

    before = sim.request_count("/info", "allMids")
    frames = [trade_frame(size="0.001"), trade_frame(size="0.001", side="SELL")]
    for frame in frames:
        signals.push(frame)
        assert wait_state(service, key_of(frame))["state"] == "filled"

    assert sim.request_count("/info", "allMids") - before == 2
    notices = [r for r in caplog.records if "mids cache stale/missing for BTC; fetched over REST" in r.getMessage()]
    assert len(notices) == 1  # rate-limited: a dead feed does not flood the log
