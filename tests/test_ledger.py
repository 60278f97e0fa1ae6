"""The ledger journals what the exchange says happened exactly once: a fill by its tid and oid, a funding settlement
by its time and coin, only fills of this service's orders (matched by cloid, else oid), nothing it cannot read."""

from __future__ import annotations

import json
import logging
import time

from fractrade_sync.frames import parse_frame
from fractrade_sync.outcome import FILLED, Outcome
from fractrade_sync.storage.journal import Journal
from fractrade_sync.storage.ledger import Ledger
from tests.conftest import trade_frame


def _fill(tid: int, oid: int, cloid: str | None, **fields) -> dict:
    fill = {
        "coin": "BTC",
        "px": "50000.0",
        "sz": "0.01",
        "side": "B",
        "time": 1_800_000_000_000,
        "startPosition": "0.0",
        "dir": "Open Long",
        "closedPnl": "0.0",
        "hash": "0x" + "ab" * 32,
        "oid": oid,
        "crossed": True,
        "fee": "0.225",
        "tid": tid,
        "feeToken": "USDC",
        **fields,
    }
    if cloid is not None:
        fill["cloid"] = cloid
    return fill


def _journal_with_a_filled_trade(tmp_path) -> tuple[Journal, object]:
    journal = Journal(tmp_path / "journal.sqlite3")
    action = parse_frame(json.dumps(trade_frame()), time.time())
    assert journal.admit(action)
    journal.finish(action, Outcome(FILLED, oid=7, filled_sz="0.01", avg_px="50000.0", latency_ms=3.0))
    return journal, action


def test_a_fill_seen_twice_is_one_fill_and_others_orders_are_left_out(tmp_path):
    journal, action = _journal_with_a_filled_trade(tmp_path)
    ledger = Ledger(journal, client=None)
    ours = [_fill(1, 7, action.cloid), _fill(2, 7, None, px="50001.0")]  # by cloid (as it comes), and by oid
    by_hand = _fill(3, 99, "0x" + "cd" * 16)  # an order this service did not place
    assert ledger.fills([*ours, by_hand]) == 2
    assert ledger.fills([ours[1], ours[0]]) == 0  # the feed and a REST read, a snapshot after a reconnect
    journal.close()
    reopened = Journal(tmp_path / "journal.sqlite3")  # a restart
    assert Ledger(reopened, client=None).fills(ours) == 0
    rows = reopened.fills_since(0)
    assert [(r["tid"], r["action_key"], r["px"], r["fee"]) for r in rows] == [
        (1, action.key, "50000.0", "0.225"),
        (2, action.key, "50001.0", "0.225"),
    ]


def test_funding_is_one_settlement_per_time_and_coin(tmp_path):
    journal, _ = _journal_with_a_filled_trade(tmp_path)
    ledger = Ledger(journal, client=None)
    records = [
        {
            "time": 1_800_000_000_000,
            "hash": "0x" + "0" * 64,
            "delta": {
                "type": "funding",
                "coin": coin,
                "usdc": "-0.3",
                "szi": "1.0",
                "fundingRate": "0.0001",
                "nSamples": None,
            },
        }
        for coin in ("ETH", "BTC")
    ]
    assert ledger.funding(records) == 2 and ledger.funding(records[:1]) == 0
    assert [(r["coin"], r["usdc"]) for r in journal.funding_since(0)] == [("BTC", "-0.3"), ("ETH", "-0.3")]


def test_a_fill_that_does_not_say_what_a_fill_says_is_left_out_and_said(tmp_path, caplog):
    journal, action = _journal_with_a_filled_trade(tmp_path)
    broken = [_fill(1, 7, action.cloid, fee=None), _fill("x", 7, action.cloid), _fill(2, 7, action.cloid, side="?")]
    with caplog.at_level(logging.WARNING, "fractrade_sync.ledger"):
        assert Ledger(journal, client=None).fills(broken) == 0
    assert journal.fills_since(0) == []
    assert "3 fill(s) that do not say what a fill must say were left out" in caplog.text
