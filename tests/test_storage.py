"""Disk full or an unwritable state dir: an action that cannot be journaled is not executed, and that is said on
every channel (log, webhook, health) until the journal can be written again. Real ENOSPC: /dev/full."""

from __future__ import annotations

import json
import logging
import time

from fractrade_sync.channels.heartbeat import health_problem, read_heartbeat
from fractrade_sync.storage.journal import REJECTS_PER_MINUTE, Journal
from tests.conftest import key_of, push, run_frame, trade_frame, wait_for


def _disk_full(service) -> None:
    """Every note the receiver writes from now on fails with ENOSPC, as on a full disk."""
    notes = service.settings.paths.journal.with_name("journal.sqlite3.received")
    service.journal._received.close()
    notes.unlink(missing_ok=True)
    notes.symlink_to("/dev/full")


def _disk_freed(service) -> None:
    notes = service.settings.paths.journal.with_name("journal.sqlite3.received")
    service.journal._received.close()
    notes.unlink()


def test_an_action_that_cannot_be_journaled_is_not_executed_and_every_channel_says_so(
    make_service, sim, signals, wallet, caplog
):
    from tests.test_notify import Webhook  # a local webhook receiver

    caplog.set_level(logging.INFO)
    sink = Webhook()
    try:
        service = make_service(FRAC_NOTIFY_URL=sink.url)
        _disk_full(service)
        try:
            frame = push(signals, trade_frame())
            wait_for(lambda: "NOT executed" in caplog.text, what="the refusal")
            assert (
                "trade BUY 0.01 BTC NOT executed: the journal cannot be written (its received note: [Errno 28]"
                in caplog.text
            )
            assert service.journal.get(key_of(frame)) is None and sim.applied_orders(wallet.address) == []
            wait_for(lambda: sink.events("alert"), what="the webhook alert")
            (alert,) = sink.events("alert")
            assert (
                "the journal cannot be written" in alert["reason"]
                and str(service.settings.state_dir) in alert["reason"]
            )
            path = service.settings.paths.heartbeat
            wait_for(lambda: (read_heartbeat(path) or {}).get("storage"), what="the heartbeat to say so")
            problem = health_problem(read_heartbeat(path), None, time.time())
            assert problem.startswith("actions are not executed: the journal cannot be written"), problem
        finally:
            _disk_freed(service)
        # space again: the redelivered action executes, and health recovers
        row = run_frame(service, signals, frame)
        assert row["state"] == "filled" and len(sim.applied_orders(wallet.address)) == 1
        wait_for(lambda: health_problem(read_heartbeat(path), None, time.time()) is None, what="healthy again")
        assert "the journal can be written again" in caplog.text
    finally:
        sink.close()


def test_an_order_whose_in_flight_note_cannot_be_written_is_not_sent(make_service, sim, signals, wallet):
    service = make_service()
    inflight = service.settings.paths.journal.with_name("journal.sqlite3.inflight")
    service.journal._inflight.close()
    inflight.unlink(missing_ok=True)
    inflight.symlink_to("/dev/full")
    try:
        row = run_frame(service, signals, trade_frame())
        assert row["state"] == "failed", row
        assert row["reason"].startswith("not executed: the journal cannot be written (the order's in-flight note: ")
        assert sim.request_count("/exchange", "order") == 0
        assert service.storage_problem is not None
    finally:
        service.journal._inflight.close()
        inflight.unlink()


def test_what_a_rejected_frame_stores_is_capped(tmp_path):
    from fractrade_sync.frames import parse_frame

    now = [1_800_000_000.0]
    journal = Journal(tmp_path / "j.sqlite3", clock=lambda: now[0])
    big = json.dumps({"type": "action", "data": {"action_id": "x" * 5000, "config": {}}})
    assert journal.reject(parse_frame(big, now[0]))
    (row,) = journal.all()
    assert all(len(v) <= 300 for v in row.values() if isinstance(v, str)), row
    for i in range(REJECTS_PER_MINUTE + 50):  # a flood of distinct junk: at most REJECTS_PER_MINUTE rows a minute
        journal.reject(parse_frame(f"junk {i}", now[0]))
    assert journal.counts()["rejected"] == REJECTS_PER_MINUTE
    now[0] += 60
    assert journal.reject(parse_frame("junk, a minute later", now[0]))
