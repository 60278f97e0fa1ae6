"""Every account the key may trade: its own, one it is an API wallet for, a sub-account or vault of either (every
action signed with vaultAddress = that account, every read for it); a key that may trade none of them is refused at
start, naming why; two local agents never share a signer."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.errors import ConfigError
from fractrade_sync.exchange.accounts import resolve
from fractrade_sync.outcome import FILLED, RESTING
from fractrade_sync.service import FractradeExecutor
from tests.conftest import protect_frame, run_cli, run_frame, trade_frame, wait_for


def _key(account) -> str:
    return "0x" + account.key.hex().removeprefix("0x")


def _event(service, signals) -> list[dict]:
    event = f"ev-{id(service)}"
    frames = [
        trade_frame(size="0.01", event_id=event),
        protect_frame("stop_loss", trigger="48000", event_id=event),
        protect_frame("take_profit", trigger="56000", event_id=event),
    ]
    return [run_frame(service, signals, frame) for frame in frames]


@pytest.mark.parametrize("through_api_wallet", [False, True])
def test_a_sub_account_is_traded_with_vault_address(make_service, sim, signals, wallet, through_api_wallet):
    sub = Account.create().address
    sim.add_sub_account(wallet.address, sub, usdc=50_000)
    key = _key(wallet)
    if through_api_wallet:
        agent = Account.create()
        sim.approve_agent(wallet.address, agent.address)
        key = _key(agent)
    service = make_service(HYPERLIQUID_PUBLIC_ADDRESS=sub, HYPERLIQUID_PRIVATE_KEY=key)
    rows = _event(service, signals)
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    assert sim.positions(sub) == {"BTC": "0.01"}
    assert sim.positions(wallet.address) == {}, "the master's own money was traded"
    assert len(sim.open_orders(sub)) == 2 and sim.open_orders(wallet.address) == []
    assert service.client.signing.vault == sub.lower()


def test_a_vault_the_key_leads_is_traded_with_vault_address(make_service, sim, signals, wallet):
    vault = Account.create().address
    sim.add_vault(wallet.address, vault, usdc=50_000)
    service = make_service(HYPERLIQUID_PUBLIC_ADDRESS=vault)
    assert [r["state"] for r in _event(service, signals)] == [FILLED, RESTING, RESTING]
    assert sim.positions(vault) == {"BTC": "0.01"} and sim.positions(wallet.address) == {}


def test_a_sub_account_of_someone_else_is_refused_at_start_naming_why(env, tmp_path, sim, signals):
    stranger, sub = Account.create(), Account.create().address
    sim.add_account(stranger.address)
    sim.add_sub_account(stranger.address, sub)
    result = run_cli(["run"], {**env, "HYPERLIQUID_PUBLIC_ADDRESS": sub}, tmp_path)
    assert result.returncode == 78, result.stderr
    assert f"is not an API wallet approved for {sub.lower()}" in result.stderr
    assert "is no sub-account or vault of" in result.stderr


def test_send_with_nothing_to_queue_still_fails_when_the_account_is_refused(env, tmp_path, sim, signals):
    """`send` of a file without one valid action: nothing is queued, yet the account the key may not trade for
    fails the command (exit 78), as it fails `run`; never a quiet 0."""
    stranger, sub = Account.create(), Account.create().address
    sim.add_account(stranger.address)
    sim.add_sub_account(stranger.address, sub)
    path = tmp_path / "nothing.jsonl"
    path.write_text(json.dumps({"type": "ACTION", "data": {}}) + "\n")  # refused by the parser: nothing queued
    env = {k: v for k, v in env.items() if not k.startswith("FRAC_WS") and k != "FRAC_USER_TOKEN"}
    result = run_cli(["send", str(path)], {**env, "HYPERLIQUID_PUBLIC_ADDRESS": sub}, tmp_path)
    assert result.returncode == 78, result.stderr
    assert f"is not an API wallet approved for {sub.lower()}" in result.stderr


def test_check_names_the_relation(env, tmp_path, sim, wallet):
    sub, agent = Account.create().address, Account.create()
    sim.add_sub_account(wallet.address, sub)
    sim.approve_agent(wallet.address, agent.address)
    result = run_cli(
        ["check"], {**env, "HYPERLIQUID_PUBLIC_ADDRESS": sub, "HYPERLIQUID_PRIVATE_KEY": _key(agent)}, tmp_path
    )
    line = f"sub-account of {wallet.address.lower()} through API wallet {agent.address.lower()}"
    assert line in result.stdout, result.stdout


def test_the_relation_as_the_exchange_states_it():
    master, sub, agent, other = ("0x" + c * 40 for c in "abcd")
    roles = {
        agent: {"role": "agent", "data": {"user": master}},
        master: {"role": "user"},
        sub: {"role": "subAccount", "data": {"master": master}},
        other: {"role": "missing"},
    }

    def info(body):
        return roles[body["user"]]

    assert resolve(info, master, master).vault is None
    assert resolve(info, master, agent).vault is None and resolve(info, master, agent).approver == master
    assert resolve(info, sub, master).vault == sub and resolve(info, sub, master).approver is None
    found = resolve(info, sub, agent)
    assert (found.vault, found.text, found.approver) == (
        sub,
        f"sub-account of {master} through API wallet {agent}",
        master,
    )
    assert "is not an API wallet approved for" in resolve(info, sub, other).problem
    with pytest.raises(ValueError):  # an unreadable answer is "don't know", never "refused"
        resolve(lambda body: {"error": "x"}, sub, master)


def test_two_local_agents_never_share_a_signer(env, tmp_path, make_service):
    first = make_service()
    second = settings_from_mapping({**env, "FRAC_STATE_DIR": str(tmp_path / "second")})
    with pytest.raises(
        ConfigError,
        match=f"its signer {first.settings.signer_address} is held by another running "
        f"agent \\(state dir {first.settings.state_dir}",
    ):
        FractradeExecutor(second).start()
    first.stop(timeout=5)
    again = FractradeExecutor(second).start()  # free once the first stopped
    wait_for(again.worker.ready.is_set, what="the second agent ready")
    again.stop(timeout=5)
