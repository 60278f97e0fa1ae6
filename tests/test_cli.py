"""The command line for real: subprocesses against the local simulator and signal server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from eth_account import Account

from tests.conftest import run_cli, trade_frame, wait_for


def test_demo_runs_the_scripted_session_and_exits_zero(tmp_path):
    result = run_cli(["demo", "--quiet"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in (
        "open long 0.01 BTC at 10x",
        "stop loss at 48,500",
        "take profit at 55,000",
        "move the stop loss to 50,500",
        "close the long",
    ):
        assert step in out
    assert "-> filled 0.01 @ 50000" in out and "-> resting" in out
    assert "journaled already: not executed again" in out
    assert "final position: BTC 0 (flat)" in out
    assert "open orders: 0 (the close canceled the stop loss and take profit)" in out
    assert "how is my agent doing? (fractrade-sync report)" in out and "realized PnL 20" in out
    assert "the simulator's own books: realized_pnl 20" in out and out.rstrip().endswith(": the same")


def test_check_reports_account_and_rights(env, tmp_path, sim, signals, wallet):
    result = run_cli(["check"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fractrade   ok" in result.stdout
    assert "hyperliquid ok" in result.stdout and "value     $100000" in result.stdout
    assert "trading     ok" in result.stdout
    assert signals.received == []


def test_check_with_a_wrong_token_exits_2(env, tmp_path, signals):
    result = run_cli(["check"], {**env, "FRAC_USER_TOKEN": "wrong-token-123"}, tmp_path)
    assert result.returncode == 2
    assert "authentication refused (HTTP 401): check FRAC_USER_TOKEN" in result.stdout
    assert "wrong-token-123" not in result.stdout + result.stderr


def test_check_with_an_unapproved_api_wallet_exits_4(env, tmp_path, sim, wallet):
    stranger = Account.create()
    sim.add_account(stranger.address)
    result = run_cli(["check"], {**env, "HYPERLIQUID_PUBLIC_ADDRESS": stranger.address}, tmp_path)
    assert result.returncode == 4, result.stdout
    assert "NOT ALLOWED" in result.stdout and "is not an API wallet approved for" in result.stdout


def test_api_wallet_trades_for_its_account(env, tmp_path, sim, signals, make_service):
    from tests.conftest import key_of, wait_state

    agent = Account.create()
    sim.approve_agent(env["HYPERLIQUID_PUBLIC_ADDRESS"], agent.address)
    service = make_service(HYPERLIQUID_PRIVATE_KEY="0x" + agent.key.hex().removeprefix("0x"))
    assert service.settings.is_agent_wallet
    frame = trade_frame()
    signals.push(frame)
    assert wait_state(service, key_of(frame))["state"] == "filled"
    order = sim.applied_orders(env["HYPERLIQUID_PUBLIC_ADDRESS"])[0]
    assert order["signer"].lower() == agent.address.lower()


def test_unapproved_api_wallet_stops_the_service_with_78(env, tmp_path, sim, signals):
    agent = Account.create()
    result = run_cli(["run"], {**env, "HYPERLIQUID_PRIVATE_KEY": "0x" + agent.key.hex().removeprefix("0x")}, tmp_path)
    assert result.returncode == 78
    assert "is not an API wallet approved for" in result.stderr


def test_send_file_runs_actions_through_the_pipeline(env, tmp_path, sim, wallet):
    frames = [trade_frame(size="0.01"), trade_frame(symbol="ETH", size="0.1"), {"type": "ACTION", "data": {}}]
    path = tmp_path / "actions.jsonl"
    path.write_text("\n".join(json.dumps(f) for f in frames) + "\n")
    env = {k: v for k, v in env.items() if not k.startswith("FRAC_WS") and k != "FRAC_USER_TOKEN"}
    result = run_cli(["send", str(path)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert [(o["coin"], o["sz"]) for o in sim.applied_orders(wallet.address)] == [("BTC", "0.01"), ("ETH", "0.1")]
    again = run_cli(["send", str(path)], env, tmp_path)
    assert again.returncode == 0 and len(sim.applied_orders(wallet.address)) == 2
    status = run_cli(["status", "--json"], env, tmp_path)
    data = json.loads(status.stdout)
    assert data["counts"] == {"filled": 2, "rejected": 1}
    assert {a["outcome"] for a in data["actions"]} == {"filled", "rejected"}
    text = run_cli(["status"], env, tmp_path).stdout
    assert "totals: filled 2, rejected 1" in text and "data.action_id is missing" in text


def test_health_without_a_running_service_is_unhealthy(env, tmp_path):
    result = run_cli(["health"], env, tmp_path)
    assert result.returncode == 1
    assert result.stdout.strip() == "unhealthy: no heartbeat: the service is not running"


def test_status_without_a_journal(env, tmp_path):
    result = run_cli(["status"], env, tmp_path)
    assert result.returncode == 1 and "no journal at" in result.stderr


def test_every_command_has_help_with_examples(capsys):
    import pytest

    from fractrade_sync.cli.main import EXAMPLES, main

    for command in EXAMPLES:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: fractrade-sync {command}" in out and f"examples:\n  fractrade-sync {command}" in out


# ---- which process is the service: `pid`, and what the kill switch says about it ---------------------------------
@contextlib.contextmanager
def running_service(env: dict[str, str], cwd: Path, argv: list[str] | None = None):
    """`python -m fractrade_sync run` for real; yields its process once `pid` names it; stops it in order."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}
    argv = argv or ["run"]
    with open(cwd / "service.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fractrade_sync", *argv],
            env={**base, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    pid_argv = ["pid", *argv[argv.index("--env-file") :][:2]] if "--env-file" in argv else ["pid"]
    try:
        wait_for(
            lambda: run_cli(pid_argv, env, cwd).stdout.strip() == str(proc.pid) or proc.poll() is not None,
            timeout=30,
            interval=0.2,
            what="`pid` to name the service",
        )
        assert proc.poll() is None, (cwd / "service.log").read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def stranger(*argv: str):
    """An unrelated live process (its command line is argv)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)", *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


def test_pid_names_the_running_service_and_never_a_stale_pid(env, tmp_path, sim, signals):
    state = Path(env["FRAC_STATE_DIR"])
    nothing = run_cli(["pid"], env, tmp_path)
    assert nothing.returncode == 1 and nothing.stdout == "", nothing
    assert nothing.stderr.strip() == f"no fractrade-sync is running with {state}"

    # an unclean stop's pid under a free lock, reused by a live process even named like the service: not it
    state.mkdir(mode=0o700)
    with stranger("-m", "fractrade_sync", "run") as other:
        (state / "lock").write_text(str(other.pid))
        stale = run_cli(["pid"], env, tmp_path)
        assert stale.returncode == 1 and stale.stdout == "", stale
        assert f"pid {other.pid} in {state / 'lock'} was left by a run that did not stop in order" in stale.stderr
        assert other.poll() is None

    with running_service(env, tmp_path) as service:
        result = run_cli(["pid"], env, tmp_path)
        assert result.returncode == 0 and result.stdout == f"{service.pid}\n", result
        service.send_signal(signal.SIGTERM)
        assert service.wait(30) == 0
    after = run_cli(["pid"], env, tmp_path)  # an orderly stop leaves no pid under the lock
    assert after.returncode == 1 and after.stderr.strip() == f"no fractrade-sync is running with {state}", after


def test_kill_switch_says_which_state_dir_and_whether_a_service_runs_there(env, tmp_path, sim, signals):
    state = Path(env["FRAC_STATE_DIR"])
    with running_service(env, tmp_path) as service:
        on = run_cli(["kill-switch", "on"], env, tmp_path)
        assert on.returncode == 0 and (state / "KILL").exists()
        running = f"in {state} (the service running there, pid {service.pid},"
        assert on.stdout == f"kill switch is ON: opening trades are refused {running} refuses opening trades now)\n"
        off = run_cli(["kill-switch", "off"], env, tmp_path)
        assert off.returncode == 0 and not (state / "KILL").exists()
        assert off.stdout == f"kill switch is off: opening trades are allowed {running} accepts opening trades now)\n"
    # the same state dir, no service; and a stale pid under the free lock does not count as one
    with stranger("fractrade-sync") as other:
        (state / "lock").write_text(str(other.pid))
        for command, word in (
            ("on", "ON: opening trades are refused"),
            ("status", "ON: opening trades are refused"),
            ("off", "off: opening trades are allowed"),
        ):
            result = run_cli(["kill-switch", command], env, tmp_path)
            assert result.returncode == 0
            assert result.stdout == f"kill switch is {word} in {state} (no service is running with this state dir)\n"
    elsewhere = tmp_path / "other-state"
    result = run_cli(["kill-switch", "on", "--state-dir", str(elsewhere)], env, tmp_path)
    assert f"in {elsewhere} (no service is running with this state dir)" in result.stdout
    assert (elsewhere / "KILL").exists() and not (state / "KILL").exists()


def test_live_service_pid_without_fdinfo_falls_back_to_the_lock_and_the_command_line(tmp_path, monkeypatch):
    # where /proc/<pid>/fd cannot be read (another user's process): the lock must be held, and the recorded pid must
    # be a live process named fractrade-sync
    from fractrade_sync.cli import running
    from fractrade_sync.storage.state_dir import StateLock, StatePaths

    paths = StatePaths(tmp_path)
    with stranger("fractrade_sync") as named, stranger("sleep") as unnamed:
        for fdinfo in (True, False):
            if not fdinfo:
                monkeypatch.setattr(running, "_holds_flock", lambda pid, lock: None)
            paths.lock.write_text(str(named.pid))  # lock free: a stale pid
            assert running.live_service_pid(paths) is None
            lock = StateLock(paths.lock)
            assert lock.acquire()  # held by this process, its pid recorded
            try:
                if fdinfo:  # (the fallback would ask whether pytest's command line names fractrade-sync)
                    assert running.live_service_pid(paths) == os.getpid()
                paths.lock.write_text(str(unnamed.pid))  # held, but the recorded pid is a stranger
                assert running.live_service_pid(paths) is None
                paths.lock.write_text(str(named.pid))  # held; the pid is named like the service but holds nothing
                assert running.live_service_pid(paths) == (None if fdinfo else named.pid)
            finally:
                lock.release()


# ---- --env-file: one agent's settings, in place of ./.env --------------------------------------------------------
def write_env_file(path: Path, env: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    path.chmod(0o600)
    return path


def test_env_file_replaces_dot_env_for_every_command(env, tmp_path, sim, signals, wallet):
    # ./.env is another agent's (a bad URL, another state dir): with --env-file nothing of it is read
    decoy_state = tmp_path / "decoy-state"
    write_env_file(
        tmp_path / ".env",
        {
            **env,
            "FRAC_WS_URL": "ftp://decoy.example",
            "FRAC_STATE_DIR": str(decoy_state),
            "HYPERLIQUID_PUBLIC_ADDRESS": "not-an-address",
        },
    )
    state = tmp_path / "agent-a-state"
    agent = write_env_file(tmp_path / "agent-a.env", {**env, "FRAC_STATE_DIR": str(state)})
    flag = ["--env-file", agent.name]  # relative to the working directory
    assert run_cli(["check"], {}, tmp_path).returncode == 78  # the decoy is bad: it would fail every command
    check = run_cli(["check", *flag], {}, tmp_path)
    assert check.returncode == 0 and "trading     ok" in check.stdout, check.stdout + check.stderr

    with running_service({}, tmp_path, ["run", *flag]) as service:
        pid = run_cli(["pid", *flag], {}, tmp_path)
        assert pid.returncode == 0 and pid.stdout == f"{service.pid}\n", pid
        health = wait_for(
            lambda: (r := run_cli(["health", *flag], {}, tmp_path)).returncode == 0 and r,
            timeout=20,
            interval=0.2,
            what="health OK",
        )
        assert f"healthy: pid {service.pid}" in health.stdout, health
        kill = run_cli(["kill-switch", "on", *flag], {}, tmp_path)
        assert f"in {state} (the service running there, pid {service.pid}, refuses" in kill.stdout, kill
        assert run_cli(["kill-switch", "off", *flag], {}, tmp_path).returncode == 0
        signals.push(trade_frame())
        wait_for(lambda: sim.applied_orders(wallet.address), what="the order")
    actions = tmp_path / "actions.jsonl"
    actions.write_text(json.dumps(trade_frame(symbol="ETH", size="0.1")) + "\n")
    assert run_cli(["send", str(actions), *flag], {}, tmp_path).returncode == 0
    status = run_cli(["status", "--json", *flag], {}, tmp_path)
    assert json.loads(status.stdout)["counts"] == {"filled": 2}, status
    assert [o["coin"] for o in sim.applied_orders(wallet.address)] == ["BTC", "ETH"]
    assert not decoy_state.exists() and not (state / "KILL").exists()
    # without a command it is `run`, as every other flag
    assert run_cli(["--env-file", "missing.env"], {}, tmp_path).returncode == 78


def test_a_missing_env_file_is_a_configuration_error_naming_it(env, tmp_path):
    write_env_file(tmp_path / ".env", env)  # a usable ./.env is no fallback
    missing = tmp_path / "agents" / "agent-b.env"
    (tmp_path / "a-directory.env").mkdir()
    commands = (["run"], ["check"], ["status"], ["health"], ["pid"], ["send", "actions.jsonl"], ["kill-switch", "on"])
    for command in commands:
        result = run_cli([*command, "--env-file", "agents/agent-b.env"], {}, tmp_path)
        assert result.returncode == 78, (command, result)
        assert result.stderr == f"fractrade-sync: configuration error: --env-file: {missing}: no such file\n", command
        assert result.stdout == ""
        nodir = run_cli([*command, "--env-file", "a-directory.env"], {}, tmp_path)
        assert nodir.returncode == 78 and f"--env-file: {tmp_path / 'a-directory.env'}: not a file" in nodir.stderr
    assert not Path(env["FRAC_STATE_DIR"]).exists()  # nothing ran, nothing was created, no kill switch was set


def test_an_unreadable_env_file_is_a_configuration_error(env, tmp_path, monkeypatch, capsys):
    # (as root every file is readable: the check is played by denying read access)
    from fractrade_sync.cli import commands
    from fractrade_sync.cli import main as cli

    path = write_env_file(tmp_path / "agent-a.env", env)
    real_access = os.access
    monkeypatch.setattr(commands.os, "access", lambda p, mode: False if Path(p) == path else real_access(p, mode))
    assert cli.main(["health", "--env-file", str(path)]) == 78
    err = capsys.readouterr().err
    assert f"configuration error: --env-file: {path}: not readable by this user (uid {os.getuid()})" in err
