"""The command line for real: subprocesses against the local simulator and signal server."""

from __future__ import annotations

import json

from eth_account import Account

from tests.conftest import run_cli, trade_frame


def test_demo_runs_the_scripted_session_and_exits_zero(tmp_path):
    result = run_cli(["demo", "--quiet"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("open long 0.01 BTC at 10x", "stop loss at 48,500", "take profit at 55,000",
                 "move the stop loss to 50,500", "close the long"):  # fmt: skip
        assert step in out
    assert "-> filled 0.01 @ 50000" in out and "-> resting" in out
    assert "journaled already: not executed again" in out
    assert "final position: BTC 0 (flat)" in out
    assert "open orders: 0 (the close canceled the stop loss and take profit)" in out


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

    from fractrade_sync.cli import EXAMPLES, main

    for command in EXAMPLES:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: fractrade-sync {command}" in out and f"examples:\n  fractrade-sync {command}" in out
