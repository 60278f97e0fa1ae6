"""A coin's name: one coin under two spellings is one action, unknown symbols cost nothing, and an unreadable mids
answer never makes a known coin unknown."""

from __future__ import annotations

import secrets

from tests.conftest import key_of, run_frame, trade_frame


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


def test_an_unreadable_mids_answer_is_retried_never_taken_for_an_unknown_coin(make_service, sim, signals, wallet):
    """A gateway's `null` (or an error object) for allMids never makes a known coin "no mid price" (`rejected`):
    the coin is in meta, and an answer without its mid says nothing of it."""
    service = make_service()
    service.client.feed = None  # mids over REST
    for garbage in ("null", '{"status":"maintenance"}'):
        sim.inject("answer", path="/info", answer=garbage)
        row = run_frame(service, signals, trade_frame(size="0.001"))
        assert row["state"] == "filled", row
