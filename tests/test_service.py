"""The service end to end over real sockets: frame -> journal -> signed order on the simulator; its connection to
Fractrade kept open by pings when quiet, cut when silent, and retried when refused or never answered."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from fractrade_sync.feeds import receiver
from fractrade_sync.outcome import FILLED, REJECTED
from tests.conftest import ROOT, key_of, run_cli, trade_frame, wait_for, wait_state


def test_spec_example_becomes_one_signed_ioc_order(make_service, sim, signals, wallet):
    service = make_service()
    frame = trade_frame(symbol="BTC", size="0.01", side="BUY", leverage=10)
    signals.push(frame)
    row = wait_state(service, key_of(frame))
    assert row["state"] == FILLED, row
    orders = sim.applied_orders(wallet.address)
    assert len(orders) == 1
    order = orders[0]
    assert (order["coin"], order["is_buy"], order["sz"], order["tif"]) == ("BTC", True, "0.01", "Ioc")
    assert order["cloid"] == "0x" + key_of(frame)[:32]
    assert order["signer"].lower() == wallet.address.lower()
    assert float(order["limit_px"]) > 50000  # marketable: above the mid
    assert sim.positions(wallet.address) == {"BTC": "0.01"}
    assert row["oid"] == order["oid"] and row["filled_sz"] == "0.01"


def test_same_frame_twice_gives_one_order(make_service, sim, signals, wallet):
    service = make_service()
    frame = trade_frame()
    signals.push(frame)
    signals.push(frame)
    later = trade_frame(size="0.02")
    signals.push(later)
    wait_state(service, key_of(later))
    assert [o["sz"] for o in sim.applied_orders(wallet.address)] == ["0.01", "0.02"]


def test_restart_with_same_state_dir_does_not_repeat(make_service, sim, signals, wallet):
    first = make_service()
    frame = trade_frame()
    signals.push(frame)
    wait_state(first, key_of(frame))
    first.stop()
    second = make_service()
    signals.push(frame)
    marker = trade_frame(symbol="ETH", size="0.01")
    signals.push(marker)
    wait_state(second, key_of(marker))
    assert [o["coin"] for o in sim.applied_orders(wallet.address)] == ["BTC", "ETH"]


def _malformed() -> list[tuple[object, str]]:
    good = trade_frame()

    def mutate(fn):
        frame = json.loads(json.dumps(good))
        fn(frame)
        return frame

    pos = lambda f: f["data"]["config"]["position"]  # noqa: E731
    meta = lambda f: f["data"]["config"]["metadata"]  # noqa: E731
    return [
        ("not json at all", "not JSON"),
        ('{"type": "ACTION", "data": []}', "data must be an object, not an array"),
        ("[1, 2, 3]", "message is an array, not an object"),
        ('{"data": {}}', "no string 'type'"),
        (mutate(lambda f: f.pop("data")), "data is missing"),
        (mutate(lambda f: f["data"].__setitem__("action_id", "withdraw_everything")), "unknown action"),
        (mutate(lambda f: f["data"].pop("action_id")), "action_id is missing"),
        (mutate(lambda f: f["data"].__setitem__("config", "x")), "config must be an object"),
        (mutate(lambda f: f["data"]["config"].pop("position")), "config.position is missing"),
        (mutate(lambda f: pos(f).pop("symbol")), "symbol is missing"),
        (mutate(lambda f: pos(f).__setitem__("symbol", "BTC; DROP")), "is not a coin name"),
        (mutate(lambda f: pos(f).__setitem__("side", "LONGISH")), "side must be BUY or SELL"),
        (mutate(lambda f: pos(f).pop("size")), "size is missing"),
        (mutate(lambda f: pos(f).__setitem__("size", "-1")), "must be greater than 0"),
        (mutate(lambda f: pos(f).__setitem__("size", 0)), "must be greater than 0"),
        (mutate(lambda f: pos(f).__setitem__("size", "lots")), "is not a number"),
        (mutate(lambda f: pos(f).__setitem__("size", "NaN")), "not a finite number"),
        (mutate(lambda f: pos(f).__setitem__("reduce_only", "yes")), "reduce_only must be true or false"),
        (mutate(lambda f: meta(f).pop("event_id")), "event_id is missing"),
        (mutate(lambda f: meta(f).__setitem__("leverage", 2.5)), "leverage must be a whole number"),
        (mutate(lambda f: meta(f).__setitem__("server_execution", "false")), "server_execution must be true or false"),
        (mutate(lambda f: meta(f).__setitem__("timestamp", "yesterday")), "timestamp"),
        ("[" * 5000, "not JSON"),
        (b'{"type": "ACTION", "data": "\xc3("}', "not UTF-8 text"),  # a text frame that is not UTF-8
    ]


def test_malformed_frames_are_rejected_with_reasons_and_the_next_executes(make_service, sim, signals, wallet):
    service = make_service()
    cases = _malformed()
    assert len(cases) >= 20
    for frame, _ in cases:
        signals.push(frame)
    good = trade_frame()
    signals.push(good)
    wait_state(service, key_of(good))
    rows = [r for r in service.journal.all() if r["state"] == REJECTED]
    reasons = [r["reason"] for r in rows]
    for _, expected in cases:
        assert any(expected in reason for reason in reasons), (expected, reasons)
    assert len(sim.applied_orders(wallet.address)) == 1
    assert service.receiver.is_alive() and service.receiver.connected.is_set()


def test_unknown_symbol_is_rejected_by_the_worker(make_service, sim, signals, wallet):
    service = make_service()
    frame = trade_frame(symbol="NOPE")
    signals.push(frame)
    row = wait_state(service, key_of(frame))
    assert row["state"] == REJECTED
    assert "unknown symbol 'NOPE'" in row["reason"]
    assert sim.applied_orders(wallet.address) == []


def test_reconnects_after_the_server_drops_the_connection(make_service, sim, signals, wallet):
    service = make_service()
    assert signals.drop_all() == 1
    wait_for(lambda: signals.connections_total >= 2 and signals.clients == 1, what="a reconnect")
    frame = trade_frame()
    signals.push(frame)
    assert wait_state(service, key_of(frame))["state"] == FILLED
    assert signals.received == []  # the client sends nothing but pings


def test_auth_refusal_backs_off_without_spinning(make_service, signals, caplog):
    signals.refuse_with = 401
    service = make_service(wait=False)
    wait_for(lambda: signals.auth_failures >= 3, timeout=10, what="three refused handshakes")
    attempts = signals.auth_failures
    assert attempts < 10  # backoff: 0.25-0.5, 0.5-1, 1-2 s ... not a storm
    assert service.receiver.auth_failed
    signals.refuse_with = None
    wait_for(service.receiver.connected.is_set, timeout=20, what="connection after auth fixed")


def test_stale_action_is_expired_not_executed(make_service, sim, signals, wallet):
    service = make_service()
    frame = trade_frame(ts=time.time() - 3600)
    signals.push(frame)
    row = wait_state(service, key_of(frame))
    assert row["state"] == "expired" and "FRAC_MAX_ACTION_AGE" in row["reason"]
    assert sim.applied_orders(wallet.address) == []


def test_server_execution_is_skipped(make_service, sim, signals, wallet):
    service = make_service()
    frame = trade_frame(server_execution=True)
    signals.push(frame)
    row = wait_state(service, key_of(frame))
    assert row["state"] == "skipped" and "server_execution" in row["reason"]
    assert sim.applied_orders(wallet.address) == []


def test_sigterm_exits_zero_after_an_orderly_stop(env, tmp_path, sim, signals, wallet):
    proc = subprocess.Popen(
        [sys.executable, "-m", "fractrade_sync", "run"],
        env={**_clean_env(), **env},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert signals.wait_for_clients(1, timeout=20)
        wait_for(lambda: run_cli(["health"], env, tmp_path).returncode == 0, timeout=20, interval=0.2, what="healthy")
        frame = trade_frame()
        signals.push(frame)
        wait_for(lambda: len(sim.applied_orders(wallet.address)) == 1, what="order applied")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert env["FRAC_USER_TOKEN"] not in err and env["HYPERLIQUID_PRIVATE_KEY"][2:] not in err
    assert not (tmp_path / "state" / "heartbeat.json").exists()


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}


BAD_CONFIG = [
    ("FRAC_WS_URL", None, "FRAC_WS_URL: is not set"),
    ("FRAC_WS_URL", "ftp://example.com/x", "scheme 'ftp' is not supported"),
    ("FRAC_WS_URL", "ws://example.com/", "ws:// is only allowed for localhost"),
    ("FRAC_USER_TOKEN", None, "FRAC_USER_TOKEN: is not set"),
    ("FRAC_USER_TOKEN", "two words", "FRAC_USER_TOKEN: contains spaces"),
    ("HYPERLIQUID_PRIVATE_KEY", None, "HYPERLIQUID_PRIVATE_KEY: is not set"),
    ("HYPERLIQUID_PRIVATE_KEY", "0x1234", "HYPERLIQUID_PRIVATE_KEY: must be 0x followed by 64 hex digits"),
    ("HYPERLIQUID_PRIVATE_KEY", "0x" + "0" * 64, "is not a valid secp256k1 private key"),
    ("HYPERLIQUID_PUBLIC_ADDRESS", None, "HYPERLIQUID_PUBLIC_ADDRESS: is not set"),
    ("HYPERLIQUID_PUBLIC_ADDRESS", "0xabc", "HYPERLIQUID_PUBLIC_ADDRESS: '0xabc' is not an address"),
    ("HYPERLIQUID_ENV", "moon", "HYPERLIQUID_ENV: 'moon' is not one of: mainnet, testnet"),
    ("HYPERLIQUID_API_URL", "http://example.com", "HYPERLIQUID_API_URL: http:// is only allowed for localhost"),
    ("LOGLEVEL", "LOUD", "LOGLEVEL: 'LOUD' is not one of"),
    ("LOG_FORMAT", "xml", "LOG_FORMAT: 'xml' is not one of: text, json"),
    ("FRAC_DRY_RUN", "maybe", "FRAC_DRY_RUN: 'maybe' is not a boolean"),
    ("FRAC_MAX_ACTION_AGE", "-5", "FRAC_MAX_ACTION_AGE: '-5' must be a number greater than 0"),
    ("FRAC_MAX_ACTION_AGE", "soon", "FRAC_MAX_ACTION_AGE: 'soon' is not a number"),
    ("FRAC_SLIPPAGE", "5", "FRAC_SLIPPAGE: '5' is a fraction"),
    ("FRAC_MAX_LEVERAGE", "2.5", "FRAC_MAX_LEVERAGE: '2.5' must be a whole number"),
]


@pytest.mark.parametrize("var,value,expected", BAD_CONFIG, ids=[f"{v}={x}" for v, x, _ in BAD_CONFIG])
def test_bad_configuration_exits_78_naming_the_variable(var, value, expected, tmp_path, wallet, monkeypatch, capsys):
    from fractrade_sync.cli.main import main

    good = {
        "FRAC_WS_URL": "wss://app.fractrade.xyz",
        "FRAC_USER_TOKEN": "tok-" + "a" * 20,
        "HYPERLIQUID_PRIVATE_KEY": "0x" + wallet.key.hex().removeprefix("0x"),
        "HYPERLIQUID_PUBLIC_ADDRESS": wallet.address,
        "FRAC_STATE_DIR": str(tmp_path / "state"),
    }
    for name in list(good) + [v for v, _, _ in BAD_CONFIG]:
        monkeypatch.delenv(name, raising=False)
    if value is None:
        good.pop(var)
    else:
        good[var] = value
    for name, val in good.items():
        monkeypatch.setenv(name, val)
    monkeypatch.chdir(tmp_path)  # no stray .env
    assert main(["run"]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    if "HYPERLIQUID_PRIVATE_KEY" in good and len(good["HYPERLIQUID_PRIVATE_KEY"]) > 8:
        assert good["HYPERLIQUID_PRIVATE_KEY"][2:] not in err[0]
    assert not (tmp_path / "state").exists()  # failed before anything was created or connected


def test_bad_configuration_exit_code_from_a_real_process(tmp_path):
    result = run_cli(["run"], {"FRAC_WS_URL": "ftp://x"}, tmp_path)
    assert result.returncode == 78
    assert result.stderr.strip() == (
        "fractrade-sync: configuration error: FRAC_WS_URL: scheme 'ftp' is not supported; "
        "use wss://host/path (ws:// only for localhost)"
    )


def test_ws_url_path_rule():
    from fractrade_sync.config.parsing import normalize_ws_url

    assert normalize_ws_url("https://app.fractrade.xyz") == "wss://app.fractrade.xyz/ws/executor/"
    assert normalize_ws_url("wss://app.fractrade.xyz/") == "wss://app.fractrade.xyz/ws/executor/"
    assert normalize_ws_url("ws://127.0.0.1:8000/custom/") == "ws://127.0.0.1:8000/custom/"
    assert normalize_ws_url("http://localhost:9") == "ws://localhost:9/ws/executor/"


def test_python_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "fractrade_sync", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert result.returncode == 0 and "demo" in result.stdout and "health" in result.stdout


def test_a_silent_connection_is_cut_and_reopened(make_service, signals):
    service = make_service(FRAC_PING_INTERVAL="30", FRAC_SILENCE_TIMEOUT="1")
    wait_for(lambda: signals.connections_total >= 2, timeout=10, what="the watchdog's reconnect")
    wait_for(service.receiver.connected.is_set, what="connected again")


def test_pings_keep_a_quiet_healthy_connection_open(make_service, signals):
    """No frame for 3 s, a silence timeout of 2 s: the pongs alone keep it alive, with no reconnect."""
    service = make_service(FRAC_PING_INTERVAL="0.5", FRAC_SILENCE_TIMEOUT="2")
    time.sleep(3.0)
    assert service.receiver.reconnects == 0 and signals.connections_total == 1
    assert service.receiver.connected.is_set()


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


def test_hostile_frames_through_the_whole_receive_path(make_service, sim, signals, wallet):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    service = make_service()
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=20,
    )
    text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        st.one_of(
            text,
            json_values.map(lambda v: json.dumps(v)),
            json_values.map(
                lambda v: json.dumps(
                    {"type": "ACTION", "data": {"action_id": "execute_hyperliquid_perp_trade", "config": v}}
                )
            ),
        )
    )
    def push(frame):
        signals.push(frame)

    push()
    good = trade_frame()
    signals.push(good)
    assert wait_state(service, key_of(good), timeout=20)["state"] == FILLED
    assert service.receiver.is_alive() and service.worker.is_alive()
    assert [o["coin"] for o in sim.applied_orders(wallet.address)] == ["BTC"]


def test_action_from_the_future_is_refused(make_service, sim, signals, wallet):
    service = make_service()
    frame = trade_frame(ts=time.time() + 600)
    signals.push(frame)
    row = wait_state(service, key_of(frame))
    assert row["state"] == REJECTED
    assert re.fullmatch(r"metadata.timestamp is (599|600)s in the future; check the clocks", row["reason"])
    assert sim.applied_orders(wallet.address) == []


def _journaled(journal, action) -> None:
    """An action the receiver took: noted, queued, and its 'received' row committed."""
    assert journal.admit(action)
    journal.enqueued(action)


def test_journal_prunes_only_old_finished_actions(tmp_path):
    from fractrade_sync.frames import parse_frame
    from fractrade_sync.outcome import Outcome
    from fractrade_sync.storage.journal import Journal

    now = [1_800_000_000.0]
    journal = Journal(tmp_path / "j.sqlite3", clock=lambda: now[0])
    old_done, old_open, new_done = (parse_frame(json.dumps(trade_frame()), now[0]) for _ in range(3))
    for action in (old_done, old_open):
        _journaled(journal, action)
    journal.finish(old_done, Outcome("filled"))
    now[0] += 100 * 86_400
    _journaled(journal, new_done)
    journal.finish(new_done, Outcome("filled"))
    assert journal.prune(now[0] - 90 * 86_400) == 1
    assert journal.get(old_done.key) is None
    assert journal.get(old_open.key)["state"] == "received" and journal.get(new_done.key)["state"] == "filled"


def test_the_watchdog_checkpoints_the_journal_off_the_order_path(make_service, signals, monkeypatch):
    from fractrade_sync import watchdog
    from fractrade_sync.storage.journal import Journal

    calls = []
    original = Journal.checkpoint
    monkeypatch.setattr(watchdog, "CHECKPOINT_EVERY", 0.0)
    monkeypatch.setattr(
        Journal, "checkpoint", lambda self: calls.append(threading.current_thread().name) or original(self)
    )
    service = make_service()
    frame = trade_frame()
    signals.push(frame)
    wait_state(service, key_of(frame))
    wait_for(lambda: len(calls) >= 2, what="two checkpoints")
    assert set(calls) == {"watchdog"}
    assert service.journal._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


def _reopen_after_a_torn_note(journal, notes_path, torn: bytes, clock=time.time):
    """A crash (power loss) tore the last note: close the journal and open it again, as the next start does."""
    from fractrade_sync.storage.journal import Journal

    with open(notes_path, "ab") as notes:
        notes.write(torn)  # the torn last note is skipped
    journal.close()
    return Journal.open(journal.path, 3.0, clock=clock)


def test_in_flight_notes_become_submitting_at_start_and_are_emptied(tmp_path, caplog):
    from fractrade_sync.frames import parse_frame
    from fractrade_sync.outcome import Outcome
    from fractrade_sync.storage.journal import Journal

    now = [1_800_000_000.0]
    journal = Journal(tmp_path / "j.sqlite3", clock=lambda: now[0])
    sent, done, queued = (parse_frame(json.dumps(trade_frame()), now[0]) for _ in range(3))
    for action in (sent, done, queued):
        _journaled(journal, action)
    now[0] += 5
    journal.sending([done], int(now[0] * 1000) + 3000, 1)
    journal.finish(done, Outcome("filled"))
    now[0] += 5
    journal.sending([sent], int(now[0] * 1000) + 5000, 1)  # the crash comes before its 'submitting' commit
    inflight = tmp_path / "j.sqlite3.inflight"
    again, resumed = _reopen_after_a_torn_note(journal, inflight, b"0123 17", clock=lambda: now[0])
    assert "1 action(s) had an order in flight when the last run ended" in caplog.text
    # what read back is adopted; the file, torn, is kept aside. The resume of the one in flight waits until
    # since + the 3 s window: the order's own expiresAfter (the window has shrunk)
    assert [(r.action.key, r.state, r.since) for r in resumed] == [
        (sent.key, "submitting", now[0] + 2),
        (queued.key, "received", now[0] - 10),
    ]
    assert again.get(done.key)["state"] == "filled" and not inflight.exists()
    (aside,) = tmp_path.glob("j.sqlite3.inflight.unreadable-*")
    assert aside.read_bytes().endswith(b"0123 17")
    assert oct(aside.stat().st_mode & 0o777) == "0o600"


def test_in_flight_notes_are_emptied_only_when_every_noted_action_is_finished(tmp_path, monkeypatch):
    from fractrade_sync.frames import parse_frame
    from fractrade_sync.outcome import Outcome
    from fractrade_sync.storage import notes
    from fractrade_sync.storage.journal import Journal

    monkeypatch.setattr(notes, "NOTES_LIMIT", 200)
    journal = Journal(tmp_path / "j.sqlite3")
    inflight = tmp_path / "j.sqlite3.inflight"
    actions = [parse_frame(json.dumps(trade_frame()), time.time()) for _ in range(8)]
    for action in actions[:3]:
        _journaled(journal, action)
        journal.sending([action], 1_800_000_003_000, 1)
        journal.finish(action, Outcome("filled"))
    assert inflight.stat().st_size > 200
    _journaled(journal, actions[3])
    journal.sending([actions[3]], 1_800_000_003_000, 1)  # all before it finished: emptied first, then noted
    assert inflight.read_text().split()[0] == actions[3].key
    for action in actions[4:]:  # actions[3] never finishes (a stop left it in flight): nothing is emptied
        _journaled(journal, action)
        journal.sending([action], 1_800_000_003_000, 1)
        journal.finish(action, Outcome("filled"))
    headers = [line.split()[0] for line in inflight.read_text().splitlines() if not line.startswith("{")]
    assert headers == [a.key for a in actions[3:]]  # each header line is followed by its action's frame


def test_received_notes_are_the_duplicate_check_and_become_rows(tmp_path, caplog):
    from fractrade_sync.frames import parse_frame
    from fractrade_sync.outcome import Outcome
    from fractrade_sync.storage.journal import Journal
    from fractrade_sync.storage.notes import received_note

    journal = Journal(tmp_path / "j.sqlite3")
    sent, refused, done = (parse_frame(json.dumps(trade_frame()), 1_800_000_000.0 + i) for i in range(3))
    multiline = json.dumps(trade_frame(agent_id="agent é ✓"), indent=1, ensure_ascii=False)
    queued = parse_frame(multiline, 1_800_000_003.0)  # newlines and non-ASCII in the frame: recorded byte for byte
    assert "\n" in queued.frame
    _journaled(journal, done)
    journal.finish(done, Outcome("filled"))
    for action in (sent, refused, queued):
        assert not journal.is_known(action.key)
        assert journal.admit(action)
        assert journal.is_known(action.key) and journal.get(action.key) is None  # known before any commit
    assert journal.is_known(done.key) and not journal.admit(done)
    journal.sending([sent], 1_800_000_003_000, 1)()  # the worker's first commit creates the row
    assert (journal.get(sent.key)["state"], journal.get(sent.key)["attempts"]) == ("submitting", 1)
    journal.finish(refused, Outcome("rejected", "too small"))
    assert journal.get(refused.key)["state"] == "rejected" and journal.get(refused.key)["frame"] == refused.frame
    received = tmp_path / "j.sqlite3.received"
    # a note of an action that has its row already (as after a crash right after its commit) changes nothing
    torn = received_note(done.received_at, done.frame) + b'1800000000.0 500\n{"ty'
    again, resumed = _reopen_after_a_torn_note(journal, received, torn)
    assert "1 action(s) received by the last run were not journaled yet: recorded now" in caplog.text
    row = again.get(queued.key)
    assert row["state"] == "received" and row["received_at"] == row["updated_at"] == queued.received_at
    assert row["frame"] == queued.frame and again.get(done.key)["state"] == "filled"
    assert [(r.action.key, r.state) for r in resumed] == [(sent.key, "submitting"), (queued.key, "received")]
    assert not received.exists() and again.record_noted() == 0  # the torn file is kept aside
    assert len(list(tmp_path.glob("j.sqlite3.received.unreadable-*"))) == 1
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in tmp_path.glob("j.sqlite3*"))


def test_a_key_is_known_from_its_note_on_and_after_a_restart(tmp_path):
    from fractrade_sync.frames import parse_frame
    from fractrade_sync.outcome import Outcome
    from fractrade_sync.storage.journal import Journal

    journal = Journal(tmp_path / "j.sqlite3")
    old, new = (parse_frame(json.dumps(trade_frame()), time.time()) for _ in range(2))
    assert journal.admit(old)
    journal.finish(old, Outcome("filled"))  # its row, created by the finish itself
    journal.close()
    journal = Journal(tmp_path / "j.sqlite3")  # a new process: only the row knows it
    assert journal.is_known(old.key) and not journal.admit(old) and not journal.is_known(new.key)
    assert journal.admit(new)
    journal.sending([new], 1_800_000_003_000, 1)()  # no longer noted: its row knows it
    assert journal.is_known(new.key) and not journal.admit(new)


def test_a_note_that_cannot_be_written_whole_leaves_the_action_new(tmp_path, monkeypatch):
    from fractrade_sync.errors import Unwritable
    from fractrade_sync.frames import parse_frame
    from fractrade_sync.storage import notes
    from fractrade_sync.storage.journal import Journal

    journal = Journal(tmp_path / "j.sqlite3")
    received = tmp_path / "j.sqlite3.received"
    first, action = (parse_frame(json.dumps(trade_frame()), time.time()) for _ in range(2))
    assert journal.admit(first)
    size = received.stat().st_size
    write = os.write
    monkeypatch.setattr(notes.os, "write", lambda fd, data: write(fd, data[:10]))  # the disk fills up mid-note
    with pytest.raises(Unwritable, match="short write"):
        journal.admit(action)
    assert received.stat().st_size == size  # undone: nothing torn mid-file
    monkeypatch.setattr(notes.os, "write", write)
    assert not journal.is_known(action.key) and journal.admit(action)  # the redelivery is taken, not a duplicate
    journal.close()
    again = Journal(tmp_path / "j.sqlite3")
    assert again.record_noted() == 2


def test_a_failing_record_at_stop_still_ends_the_service(make_service, monkeypatch):
    service = make_service()

    def disk_full():
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(service.journal, "record_noted", disk_full)
    service.stop(timeout=1)  # logs it; the notes stay for the next start
    assert not service.watchdog.is_alive() and not service._locks.held
