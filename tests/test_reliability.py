"""Exactly once under failure: fault injection, a full disk, kill -9, a stop while an outcome is still open,
redelivery, SIGTERM with a queue; retries that never send a stale action; the trader's guards."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.service import FractradeExecutor
from fractrade_sync.storage.notes import read_records
from tests.conftest import (
    key_of,
    protect_frame,
    push,
    restart_until_done,
    run_cli,
    run_frame,
    start_ready,
    trade_frame,
    wait_for,
    wait_state,
)


def _order_sends(sim) -> dict[int, int]:
    """{orders signed (distinct nonces): requests sent}: how many orders were signed, and how often sent"""
    nonces = [e["nonce"] for e in sim.exchange_log() if e["action_type"] == "order"]
    return {len(set(nonces)): len(nonces)}


def _orders(sim, wallet) -> list[dict]:
    return [o for o in sim.applied_orders(wallet.address) if "tif" in o and o.get("tif")]


def test_500_500_429_then_success_gives_one_order(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.inject("500", 2)
    sim.inject("429", 1)
    frame = trade_frame()
    signals.push(frame)
    row = wait_state(service, key_of(frame), timeout=20)
    assert row["state"] == "filled"
    assert len(sim.applied_orders(wallet.address)) == 1
    assert [e["http_status"] for e in sim.exchange_log()] == [500, 500, 429, 200]
    assert row["attempts"] == 4


def test_applied_but_response_lost_gives_one_order(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.inject("drop")
    frame = trade_frame()
    signals.push(frame)
    row = wait_state(service, key_of(frame), timeout=20)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid"
    assert len(sim.applied_orders(wallet.address)) == 1
    # the identical signed order was sent again: the exchange refused its nonce as used, then the cloid told
    assert _order_sends(sim) == {1: 2}
    assert sim.exchange_log()[1]["errors"] == [f"Invalid nonce: duplicate nonce {sim.exchange_log()[0]['nonce']}"]


def test_timeout_after_apply_gives_one_order(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.timeout_s = 1.0
    sim.inject("timeout")
    frame = trade_frame()
    signals.push(frame)
    row = wait_state(service, key_of(frame), timeout=20)
    assert row["state"] == "filled"
    assert len(sim.applied_orders(wallet.address)) == 1


def test_exchange_down_for_good_fails_cleanly_and_provably_unexecuted(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.3")
    sim.inject("429", 100)
    frame = trade_frame()
    signals.push(frame)
    row = wait_state(service, key_of(frame), timeout=30)
    assert row["state"] == "failed"
    assert row["reason"].startswith("not executed: exchange unreachable after 6 attempts: HTTP 429")
    assert sim.applied_orders(wallet.address) == []


def test_a_4xx_on_the_first_send_is_a_refusal(make_service, sim, signals, wallet):
    service = make_service()
    sim.inject("403")
    row = run_frame(service, signals, trade_frame(size="0.01"))
    assert row["state"] == "failed" and "403" in row["reason"], row
    assert sim.applied_orders(wallet.address) == []


def test_disk_full_at_a_resend_never_records_an_applied_order_as_not_executed(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    notes, calls = service.journal._inflight, []
    real = notes.append

    def append(data, may_empty):  # the first note is written; then the disk is full (ENOSPC)
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(28, "No space left on device")
        return real(data, may_empty)

    notes.append = append
    sim.inject("drop")
    row = wait_state(service, key_of(push(signals, trade_frame(size="0.01"))), timeout=30)
    assert row["state"] == "filled" and len(sim.applied_orders(wallet.address)) == 1, row


def test_retries_never_send_a_stale_action(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5", FRAC_MAX_ACTION_AGE="3")
    sim.inject("500", 3)
    frame = trade_frame(ts=time.time() - 2)  # fresh when taken, stale by the second resend
    row = wait_state(service, key_of(push(signals, frame)), timeout=30)
    assert row["state"] == "expired" and row["reason"].startswith(
        "not executed (HTTP 500 from the exchange; its nonce invalidated by a noop): "
    ), row
    assert sim.applied_orders(wallet.address) == []


def test_reads_before_the_order_are_retried_like_the_order(make_service, sim, signals, wallet):
    service = make_service()
    service.client.account = service.client.endpoint.account = None  # positions over REST (no live account view)
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    reads = sim.request_count("/info")
    sim.inject("500", count=2, path="/info")  # the position read of the reduce-only close fails twice
    row = run_frame(service, signals, trade_frame(side="SELL", size="0.02", reduce_only=True))
    assert row["state"] == "filled", row
    # then the position read of the cleanup: the stop loss of the closed position is canceled
    assert sim.request_count("/info") >= reads + 4 and sim.open_orders(wallet.address) == []


def test_an_action_that_aged_out_while_reads_were_retried_is_not_sent(make_service, sim, signals, wallet):
    service = make_service(FRAC_MAX_ACTION_AGE="3")
    service.client.account = service.client.endpoint.account = None  # positions over REST (no live account view)
    run_frame(service, signals, trade_frame(size="0.02"))
    orders = sim.request_count("/exchange", "order")
    sim.inject("500", count=4, path="/info")  # 0.2 + 0.5 + 1.0 + 2.0 s of retries
    row = run_frame(service, signals, trade_frame(side="SELL", size="0.02", reduce_only=True))
    assert row["state"] == "expired" and row["reason"].startswith("not sent: "), row
    assert row["reason"].endswith("s old, over FRAC_MAX_ACTION_AGE=3s"), row
    assert sim.request_count("/exchange", "order") == orders and sim.positions(wallet.address) == {"BTC": "0.02"}


def test_a_stop_while_reads_are_retried_leaves_the_action_for_the_next_start(env, sim, signals, wallet):
    settings = settings_from_mapping(env)
    first = start_ready(settings)
    first.client.account = first.client.endpoint.account = None  # positions over REST (no live account view)
    wait_state(first, key_of(push(signals, trade_frame(size="0.02"))))
    sim.inject("500", count=100, path="/info")
    reads = sim.request_count("/info")
    frame = push(signals, trade_frame(side="SELL", size="0.02", reduce_only=True))
    wait_for(lambda: sim.request_count("/info") >= reads + 2, what="the position read failing, then retried")
    first.stop(timeout=2)
    assert first.journal.get(key_of(frame))["state"] == "received"
    sim.reset_faults()
    row = restart_until_done(settings, key_of(frame))
    assert row["state"] == "filled" and sim.positions(wallet.address) == {}


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


def test_redelivery_after_reconnect_gives_one_order(make_service, sim, signals, wallet):
    service = make_service()
    frame = trade_frame()
    signals.push(frame)
    wait_state(service, key_of(frame))
    signals.drop_all()
    wait_for(lambda: signals.connections_total >= 2 and signals.clients == 1, what="reconnect")
    signals.push(frame)
    marker = trade_frame(symbol="ETH", size="0.1")
    signals.push(marker)
    wait_state(service, key_of(marker))
    assert [o["coin"] for o in sim.applied_orders(wallet.address)] == ["BTC", "ETH"]


def _start(env, cwd, stderr=subprocess.PIPE, **extra) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "fractrade_sync", "run"],
        env={**clean, **env, **extra},
        cwd=cwd,
        stderr=stderr,
        text=True,
    )


def _queue_behind_a_slow_order(env, cwd, sim, signals, latency: float, count: int, **frame_args) -> list[dict]:
    """Once the service is healthy: slow the exchange, push `count` trades, return when the first is in flight."""
    wait_for(lambda: _healthy(env, cwd), timeout=20, interval=0.1, what="healthy")
    sim.latency_s = latency
    frames = [trade_frame(size=f"0.0{i}", **frame_args) for i in range(1, count + 1)]
    for frame in frames:
        signals.push(frame)
    wait_for(lambda: sim.request_count("/exchange", "order") >= 1, what="first order in flight")
    wait_for(lambda: all(key_of(f) in _taken(env) for f in frames), what="every frame taken (noted or journaled)")
    return frames


def _taken(env) -> set[str]:
    """Keys of the actions the service took: journaled, or noted by the receiver and queued."""
    notes = os.path.join(env["FRAC_STATE_DIR"], "journal.sqlite3.received")
    noted = set()
    if os.path.exists(notes):
        with open(notes, "rb") as raw:
            noted = {key_of(json.loads(text)) for _, text in read_records(raw.read())[0]}
    return noted | set(_journal_states(env))


def _journal_states(env) -> dict[str, str]:
    conn = sqlite3.connect(os.path.join(env["FRAC_STATE_DIR"], "journal.sqlite3"), timeout=5)
    try:
        return dict(conn.execute("SELECT key, state FROM actions"))
    finally:
        conn.close()


def _healthy(env, cwd) -> bool:
    return run_cli(["health"], env, cwd).returncode == 0


def _kill_9_then_restart(proc, env, tmp_path, sim, ready) -> subprocess.Popen:
    """Once ready() holds, kill -9 the service; restart it on the same state dir with a fast exchange."""
    try:
        ready()
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    sim.latency_s = 0
    return _start(env, tmp_path)


def test_kill_9_with_an_order_in_flight_then_restart_gives_one_order(env, tmp_path, sim, signals, wallet):
    proc = _start(env, tmp_path)
    frame = trade_frame()

    def in_flight():
        wait_for(lambda: _healthy(env, tmp_path), timeout=20, interval=0.1, what="healthy")
        sim.latency_s = 1.5  # the exchange is slow: the order is in flight when we kill
        signals.push(frame)
        wait_for(lambda: _journal_states(env).get(key_of(frame)) == "submitting", what="order in flight")

    again = _kill_9_then_restart(proc, env, tmp_path, sim, in_flight)
    try:
        wait_for(lambda: _journal_states(env).get(key_of(frame)) == "filled", timeout=20, what="reconciled")
    finally:
        again.send_signal(signal.SIGTERM)
        _, err = again.communicate(timeout=20)
    assert len(sim.applied_orders(wallet.address)) == 1
    # settled by the exchange's word: found by cloid, or (still on its way, slow exchange) its nonce taken by a
    # noop first, so that the late original is refused and the one order sent again is the only one applied
    orders = [e for e in sim.exchange_log() if e["action_type"] == "order"]
    assert [e["ok"] for e in orders] in ([True], [False, True], [True, False]), orders
    assert all(e["errors"] == [f"Invalid nonce: duplicate nonce {e['nonce']}"] for e in orders if not e["ok"])
    assert "1 action(s) resumed" in err


def test_a_crash_between_a_frames_note_and_its_received_commit_loses_nothing(env, sim, signals, wallet, caplog):
    settings = settings_from_mapping(env)
    first = start_ready(settings)
    dead = threading.Event()  # the process dies right after noting and queueing the frame
    first.journal.enqueued = lambda action: None
    first.worker.handle = lambda actions, *more: int(dead.wait(30))
    frame = push(signals, trade_frame())
    wait_for(lambda: key_of(frame) in _taken(env), what="the frame noted")
    assert first.journal.get(key_of(frame)) is None  # only its note knows it
    first.receiver.stop()
    first._locks.release(orderly=False)
    try:
        row = restart_until_done(settings, key_of(frame))
    finally:
        dead.set()
        first.stop(timeout=5)
    assert row["state"] == "filled" and len(sim.applied_orders(wallet.address)) == 1
    assert "1 action(s) received by the last run were not journaled yet: recorded now" in caplog.text


def test_a_crash_between_the_order_write_and_its_submitting_commit_is_settled_by_cloid(env, sim, signals, wallet):
    settings = settings_from_mapping(env)
    first = start_ready(settings)
    dead = threading.Event()  # the worker stops dead right after writing the order: no commit, no answer read
    sending = first.journal.sending  # the note is written; the 'submitting' commit as the order leaves never is
    first.journal.sending = lambda *args: sending(*args) and (lambda: dead.wait(30))
    frame = push(signals, trade_frame())
    wait_for(lambda: sim.request_count("/exchange", "order") == 1, what="the order written")
    row = first.journal.get(key_of(frame))
    assert row is None or row["state"] == "received"  # only the notes know the order is in flight
    first.receiver.stop()
    first._locks.release(orderly=False)  # the process is gone, as far as the state dir can tell
    started = time.time()
    try:
        row = restart_until_done(settings, key_of(frame))
    finally:
        dead.set()
        first.stop(timeout=5)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid"
    assert row["updated_at"] - started < settings.http_timeout  # no wait on any clock: the exchange told at once
    assert len(sim.applied_orders(wallet.address)) == 1 and sim.request_count("/exchange", "order") == 1


def test_the_whole_stop_fits_its_budget_with_an_order_hanging_and_the_rest_resumes(env, tmp_path, sim, signals, wallet):
    """FRAC_DRAIN_TIMEOUT bounds the whole stop, inside supervisord's stopwaitsecs, even when the order in flight
    hangs far longer (its own timeout here: 20 s). The next start settles it by its nonce: never twice."""
    proc = _start(env, tmp_path, FRAC_DRAIN_TIMEOUT="3", FRAC_HTTP_TIMEOUT="20")
    try:
        frames = _queue_behind_a_slow_order(env, tmp_path, sim, signals, 8.0, 3)
        sim.latency_s = 0  # (only the order already on its way hangs)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert took < 3 + 1.5, (took, err)
    assert _journal_states(env)[key_of(frames[0])] == "submitting"  # its outcome unknown yet: settled next start
    again = _start(env, tmp_path)
    try:
        wait_for(
            lambda: all(_journal_states(env).get(key_of(f)) == "filled" for f in frames), timeout=30, what="all filled"
        )
        wait_for(
            lambda: len([e for e in sim.exchange_log() if e["action_type"] == "order"]) == 4,
            timeout=15,
            what="the hung order to arrive, late",
        )
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) == 0
    assert sorted(o["sz"] for o in sim.applied_orders(wallet.address)) == ["0.01", "0.02", "0.03"]


def test_sigterm_with_a_queue_and_a_slow_exchange_loses_and_doubles_nothing(env, tmp_path, sim, signals, wallet):
    proc = _start(env, tmp_path, FRAC_DRAIN_TIMEOUT="4")
    try:
        frames = _queue_behind_a_slow_order(env, tmp_path, sim, signals, 1.5, 5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    states = _journal_states(env)
    assert states[key_of(frames[0])] == "filled"  # the one in flight completed
    left = [states[key_of(f)] for f in frames[1:]]
    assert set(left) <= {"received", "filled"} and "received" in left
    assert "action(s) left in the journal; they resume at the next start" in err
    sim.latency_s = 0
    again = _start(env, tmp_path)
    try:
        wait_for(lambda: all(s == "filled" for s in _journal_states(env).values()), timeout=20, what="all filled")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) == 0
    assert sorted(o["sz"] for o in sim.applied_orders(wallet.address)) == ["0.01", "0.02", "0.03", "0.04", "0.05"]


def test_kill_9_with_a_queue_behind_an_order_in_flight_loses_and_doubles_nothing(env, tmp_path, sim, signals, wallet):
    proc = _start(env, tmp_path)
    frames = []

    def queued():
        frames.extend(_queue_behind_a_slow_order(env, tmp_path, sim, signals, 1.5, 5))

    again = _kill_9_then_restart(proc, env, tmp_path, sim, queued)
    try:
        wait_for(
            lambda: [_journal_states(env).get(key_of(f)) for f in frames] == ["filled"] * 5,
            timeout=30,
            what="all recorded and filled",
        )
    finally:
        again.send_signal(signal.SIGTERM)
        _, err = again.communicate(timeout=20)
    assert sorted(o["sz"] for o in sim.applied_orders(wallet.address)) == ["0.01", "0.02", "0.03", "0.04", "0.05"]
    assert "had an order in flight when the last run ended" in err


def test_a_crash_after_months_never_brings_back_a_finished_action(env, tmp_path, sim, signals, wallet):
    proc = _start(env, tmp_path)
    old, stop_loss = trade_frame(size="0.01"), protect_frame(trigger="45000")

    def protected():
        wait_for(lambda: _healthy(env, tmp_path), timeout=20, interval=0.1, what="healthy")
        for frame, state in ((old, "filled"), (stop_loss, "resting")):
            signals.push(frame)
            wait_for(lambda: _journal_states(env).get(key_of(frame)) == state, what=state)  # noqa: B023

    again = _kill_9_then_restart(proc, env, tmp_path, sim, protected)  # the notes still hold both frames
    again.send_signal(signal.SIGTERM)
    again.wait(20)
    conn = sqlite3.connect(os.path.join(env["FRAC_STATE_DIR"], "journal.sqlite3"))
    with conn:  # the trade finished 91 days ago, so the next start prunes it
        conn.execute("UPDATE actions SET updated_at=? WHERE key=?", (time.time() - 91 * 86_400, key_of(old)))
    conn.close()
    with open(os.path.join(env["FRAC_STATE_DIR"], "journal.sqlite3.received"), "wb") as notes:  # as if still there
        frames = [json.dumps(f).encode() for f in (old, stop_loss)]
        notes.write(b"".join(b"%r %d\n%b\n" % (time.time() - 91 * 86_400, len(f), f) for f in frames))
    service = start_ready(settings_from_mapping(env))
    try:
        assert service.journal.get(key_of(old)) is None and service.journal.unfinished() == []  # pruned, not back
    finally:
        service.stop(timeout=5)
    assert [o["orderType"] for o in sim.open_orders(wallet.address) if o.get("isTrigger")] == ["Stop Market"]


def test_actions_left_at_shutdown_expire_when_too_old_at_restart(env, tmp_path, sim, signals, wallet):
    proc = _start(env, tmp_path, FRAC_DRAIN_TIMEOUT="0.5")
    try:
        frames = _queue_behind_a_slow_order(env, tmp_path, sim, signals, 1.0, 3, ts=time.time() - 50)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    sim.latency_s = 0
    again = _start(env, tmp_path, FRAC_MAX_ACTION_AGE="10")
    try:
        wait_for(lambda: "received" not in _journal_states(env).values(), timeout=20, what="resumed")
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(20)
    states = [_journal_states(env)[key_of(f)] for f in frames]
    assert states[0] == "filled" and set(states[1:]) == {"expired"}
    assert len(sim.applied_orders(wallet.address)) == 1


def test_kill_switch_refuses_opening_trades_but_protects_and_reduces(make_service, env, tmp_path, sim, signals, wallet):
    service = make_service()
    wait_state(service, key_of(push(signals, trade_frame(size="0.02"))))
    result = run_cli(["kill-switch", "on"], env, tmp_path)
    assert result.returncode == 0 and "kill switch is ON" in result.stdout
    opening = wait_state(service, key_of(push(signals, trade_frame(size="0.01"))))
    assert opening["state"] == "rejected" and opening["reason"].startswith("kill switch is on")
    stop = wait_state(service, key_of(push(signals, protect_frame("stop_loss"))))
    reduce = wait_state(service, key_of(push(signals, trade_frame(side="SELL", size="0.01", reduce_only=True))))
    assert stop["state"] == "resting" and reduce["state"] == "filled"
    assert run_cli(["kill-switch", "off"], env, tmp_path).returncode == 0
    assert wait_state(service, key_of(push(signals, trade_frame(size="0.01"))))["state"] == "filled"


def test_caps_refuse_with_reasons(make_service, sim, signals, wallet):
    service = make_service(FRAC_MAX_ORDER_USD="1000", FRAC_ALLOWED_SYMBOLS="BTC,ETH")
    big = wait_state(service, key_of(push(signals, trade_frame(size="0.05"))))
    assert big["state"] == "rejected" and big["reason"] == "order value $2500.00 is over FRAC_MAX_ORDER_USD $1000"
    other = wait_state(service, key_of(push(signals, trade_frame(symbol="SOL", size="1"))))
    assert other["reason"] == "symbol SOL is not in FRAC_ALLOWED_SYMBOLS"
    assert wait_state(service, key_of(push(signals, trade_frame(size="0.01"))))["state"] == "filled"
    assert len(sim.applied_orders(wallet.address)) == 1


def test_a_second_instance_on_the_same_state_dir_is_refused(make_service, env):
    import pytest

    from fractrade_sync.config.settings import settings_from_mapping
    from fractrade_sync.errors import ConfigError

    make_service()
    with pytest.raises(ConfigError, match="FRAC_STATE_DIR: another fractrade-sync is running"):
        FractradeExecutor(settings_from_mapping(env)).start()


def test_second_sigint_exits_at_once_and_keeps_the_journal(env, tmp_path, sim, signals, wallet):
    log = tmp_path / "service.log"
    with open(log, "w") as err:
        proc = _start(env, tmp_path, stderr=err, FRAC_DRAIN_TIMEOUT="30")
    try:
        frames = _queue_behind_a_slow_order(env, tmp_path, sim, signals, 1.0, 3)
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping:" in log.read_text(), timeout=5, what="orderly stop begun")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert "second SIGINT: exiting now" in log.read_text()
    assert all(key_of(f) in _taken(env) for f in frames)  # nothing received was lost: journaled, or noted
    sim.latency_s = 0
    again = _start(env, tmp_path)
    try:
        wait_for(
            lambda: all(_journal_states(env).get(key_of(f)) == "filled" for f in frames),
            timeout=30,
            what="all recorded and executed at the next start",
        )
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) == 0
    assert len(sim.applied_orders(wallet.address)) == 3


# ---- "unknown" is not "no": only the exchange's explicit answer counts -----------------------------------


def test_an_unreadable_cloid_lookup_is_never_taken_for_never_executed(make_service, sim, signals, wallet, caplog):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.inject("drop")  # applied; the answer is lost
    # the lookups then get a gateway's HTML page, a null, and an answer of another shape, each with HTTP 200
    sim.inject("html", path="/info")
    sim.inject("answer", path="/info", answer="null")
    sim.inject("answer", path="/info", answer='{"status": "maintenance"}')
    frame = trade_frame()
    signals.push(frame)
    row = wait_state(service, key_of(frame), timeout=30)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row
    assert _order_sends(sim) == {1: 2} and len(sim.applied_orders(wallet.address)) == 1
    assert "cloid check failed: unreadable answer from the exchange (HTTP 200): '<html>" in caplog.text
    assert "orderStatus answered neither an order nor unknownOid: {'status': 'maintenance'}" in caplog.text


def test_unreadable_lookups_until_the_end_leave_the_outcome_unknown_until_settled(
    make_service, sim, signals, wallet, monkeypatch
):
    from fractrade_sync.execution import pipeline

    monkeypatch.setattr(pipeline, "RECHECK_EVERY", 1.0)
    service = make_service(FRAC_HTTP_TIMEOUT="0.3")
    sim.inject("drop")
    sim.inject("html", count=100, path="/info")
    frame = trade_frame()
    signals.push(frame)
    row = wait_state(service, key_of(frame), timeout=40)
    assert row["state"] == "unknown" and row["reason"].startswith("outcome unknown (unreadable answer"), row
    assert _order_sends(sim) == {1: 2}  # one order, its identical resend refused: never a second order
    sim.reset_faults()  # the exchange answers again: the next settling round tells the truth
    row = wait_for(lambda: (r := service.journal.get(key_of(frame)))["state"] != "unknown" and r, what="settled")
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row


def test_an_order_found_applied_after_its_action_went_stale_is_journaled_as_applied(make_service, sim, signals, wallet):
    """Found by the chaos run (seed 3): refused at the door four times (429), then applied with its answer lost; by the
    next resend the action is stale, so the request is settled by its nonce (the noop finds it spent) and its cloid
    (found filled after two unreadable answers). What the exchange did stands: filled, never "expired"."""
    service = make_service(FRAC_MAX_ACTION_AGE="4")
    for _ in range(4):
        sim.inject("429", path="/exchange")
    sim.inject("drop", path="/exchange")
    sim.inject("answer", path="/info", answer='{"status":"maintenance"}')
    sim.inject("answer", path="/info", answer="null")
    frame = trade_frame(size="0.01")
    signals.push(frame)
    row = wait_state(service, key_of(frame))
    assert (row["state"], row["reason"]) == ("filled", "found on the exchange by cloid"), row
    assert len([o for o in sim.applied_orders(wallet.address) if o["cloid"] == row["cloid"]]) == 1
