"""A power loss: the state dir comes back as the disk last had it, and may not know what the last run executed."""

from __future__ import annotations

import json
import logging
import shutil
import time

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.errors import ConfigError
from fractrade_sync.storage.state_dir import RunLocks, StateLock, StatePaths, recorded_pid
from tests.conftest import key_of, push, start_ready, trade_frame, wait_state


def _power_loss_replay(env, sim, signals, wallet, *, marker: bool, redeliver_after: float = 0.0):
    """Run, snapshot the state dir as the disk had it while running, execute one action, lose power (the state dir
    goes back to the snapshot), start again; the signal server redelivers the action. Returns the second service
    and the redelivered action's row."""
    settings = settings_from_mapping(env)
    first = start_ready(settings)
    snapshot = settings.state_dir.with_name("snapshot")
    shutil.copytree(settings.state_dir, snapshot)
    frame = push(signals, trade_frame())
    assert wait_state(first, key_of(frame))["state"] == "filled"
    first.stop(timeout=2)
    shutil.rmtree(settings.state_dir)
    snapshot.rename(settings.state_dir)
    if not marker:  # what a run without the marker would leave: nothing says it was unclean
        settings.paths.lock.write_text("")
    again = start_ready(settings)
    time.sleep(redeliver_after)
    signals.push(frame)  # redelivered after the reconnect
    return again, wait_state(again, key_of(frame))


def test_after_a_power_loss_a_redelivered_action_is_looked_up_before_it_is_sent(env, sim, signals, wallet, caplog):
    caplog.set_level(logging.WARNING)
    again, row = _power_loss_replay(env, sim, signals, wallet, marker=True)
    try:
        assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row
        assert len(sim.applied_orders(wallet.address)) == 1 and sim.request_count("/exchange", "order") == 1
        assert "the last run did not stop in order" in caplog.text
        assert "executed by the last run, whose journal lost it (unclean stop): filled" in caplog.text
        # an action created after this start is sent at once, with no lookup first
        time.sleep(2.1)  # past the start + UNCLEAN_MARGIN
        lookups = sim.request_count("/info", "orderStatus")
        assert wait_state(again, key_of(push(signals, trade_frame(symbol="ETH", size="0.1"))))["state"] == "filled"
        assert sim.request_count("/info", "orderStatus") == lookups
    finally:
        again.stop(timeout=2)


def test_a_redelivery_that_is_stale_by_now_is_recorded_as_what_the_last_run_did(env, sim, signals, wallet):
    """Found by scripts/chaos (seed 1): a redelivery past FRAC_MAX_ACTION_AGE was journaled 'expired' although the
    last run had executed it. The cloid lookup comes first: the journal says 'filled'."""
    env = {**env, "FRAC_MAX_ACTION_AGE": "3"}
    again, row = _power_loss_replay(env, sim, signals, wallet, marker=True, redeliver_after=3.5)
    again.stop(timeout=2)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row
    assert len(sim.applied_orders(wallet.address)) == 1


def test_without_the_marker_the_same_replay_would_trade_twice(env, sim, signals, wallet):
    """The control: what the marker prevents."""
    again, row = _power_loss_replay(env, sim, signals, wallet, marker=False)
    again.stop(timeout=2)
    assert row["state"] == "filled" and row["reason"] == ""
    assert len(sim.applied_orders(wallet.address)) == 2


def test_the_marker_exists_from_the_first_moment_and_only_an_orderly_stop_clears_it(tmp_path):
    path = tmp_path / "lock"
    first = StateLock(path)
    assert first.acquire() and not first.unclean
    assert recorded_pid(path) is not None  # durable before anything else happens
    first.release(orderly=False)  # killed
    second = StateLock(path)
    assert second.acquire() and second.unclean
    second.release()
    third = StateLock(path)
    assert third.acquire() and not third.unclean
    third.release()
    assert recorded_pid(path) is None


def test_a_start_refused_for_its_signer_keeps_the_last_runs_unclean_stop_known(tmp_path, monkeypatch):
    """The last run was killed; this start is refused because another agent holds the signer: the next start must
    still know the last run did not stop in order (its orders are looked up by cloid before anything is sent)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    signer = "0x" + "ab" * 20
    ours, theirs = StatePaths(tmp_path / "ours"), StatePaths(tmp_path / "theirs")
    killed = RunLocks(ours, signer)
    assert killed.acquire() is False
    killed.release(orderly=False)  # kill -9
    other = RunLocks(theirs, signer)  # another agent with the same signer starts meanwhile
    assert other.acquire() is False
    refused = RunLocks(ours, signer)
    try:
        refused.acquire()
    except ConfigError as exc:
        assert "HYPERLIQUID_PRIVATE_KEY" in str(exc) and "held by another running agent" in str(exc)
    else:
        raise AssertionError("a signer held by another agent must refuse the start")
    assert not refused.held
    other.release()
    again = RunLocks(ours, signer)
    assert again.acquire() is True  # still unclean: the refused start did not clear the marker
    again.release()


def test_an_in_flight_note_with_no_row_becomes_a_row(tmp_path, caplog):
    """A power loss kept the in-flight note and lost the received note and every row: the note alone rebuilds the
    action, to be settled by its nonce and cloid."""
    from fractrade_sync.frames import parse_frame
    from fractrade_sync.storage.journal import Journal

    journal = Journal(tmp_path / "j.sqlite3")
    action = parse_frame(json.dumps(trade_frame()), time.time())
    journal.sending([action], 1_800_000_003_000, 1_800_000_000_000)  # no admit, no row: only this note survived
    journal.close()
    again, resumed = Journal.open(tmp_path / "j.sqlite3", 3.0)
    row = again.get(action.key)
    assert row is not None and row["state"] == "submitting" and row["nonce"] == 1_800_000_000_000
    assert row["frame"] == action.frame and row["cloid"] == action.cloid
    assert [(r.action.key, r.state, r.nonce) for r in resumed] == [(action.key, "submitting", 1_800_000_000_000)]
    assert "recorded from its in-flight note" in caplog.text
