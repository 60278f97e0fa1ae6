"""Protection a trader can rely on, sizing for followers, the network named, against the simulator."""

from __future__ import annotations

from tests.conftest import protect_frame, run_frame, trade_frame, wait_drained


def _stops(sim, wallet) -> list[dict]:
    return [o for o in sim.open_orders(wallet.address) if o["orderType"] == "Stop Market"]


# ---- stops that fill ---------------------------------------------------------------------------------------


def test_a_stop_fills_when_the_market_gaps_through_its_trigger(make_service, sim, signals, wallet):
    """A 7% gap past the trigger: within the default FRAC_TRIGGER_SLIPPAGE (10%) the stop fills; with a trade's 1%
    bound (FRAC_TRIGGER_SLIPPAGE=0.01) it would be left unfilled and the position open."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    row = run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    (stop,) = _stops(sim, wallet)
    assert stop["limitPx"] == "43650.0"  # 48500 - 10%
    assert row["state"] == "resting"
    sim.set_mid("BTC", "45000")
    assert sim.positions(wallet.address) == {}


def test_with_a_one_percent_bound_the_same_gap_leaves_the_position_open(make_service, sim, signals, wallet):
    service = make_service(FRAC_TRIGGER_SLIPPAGE="0.01")
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    sim.set_mid("BTC", "45000")
    assert sim.positions(wallet.address) == {"BTC": "0.02"}  # the simulator fills only within the limit
    assert [o["status"] for o in sim.applied_orders(wallet.address)][-1] == "canceled"


# ---- only our own orders -----------------------------------------------------------------------------------


def test_a_replace_never_cancels_a_stop_set_by_hand(make_service, sim, signals, wallet):
    from eth_account import Account  # noqa: F401 (the hand-placed order is signed by the same key, via the SDK)
    from hyperliquid.exchange import Exchange

    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    by_hand = Exchange(wallet, sim.url)
    placed = by_hand.order(
        "BTC",
        False,
        0.02,
        40000.0,
        {"trigger": {"triggerPx": 45000.0, "isMarket": True, "tpsl": "sl"}},
        reduce_only=True,
    )
    assert placed["status"] == "ok", placed
    first = run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    second = run_frame(service, signals, protect_frame("stop_loss", trigger="49000"))
    triggers = sorted(o["triggerPx"] for o in _stops(sim, wallet))
    assert triggers == ["45000.0", "49000.0"], triggers  # ours replaced; the trader's own untouched
    assert first["state"] == second["state"] == "resting"
    run_frame(service, signals, trade_frame(side="SELL", size="0.02", reduce_only=True))  # flat: ours are void
    assert [o["triggerPx"] for o in _stops(sim, wallet)] == ["45000.0"]


# ---- sizing for followers ----------------------------------------------------------------------------------


def test_the_size_multiplier_scales_opens_closes_and_explicit_protection(make_service, sim, signals, wallet):
    service = make_service(FRAC_SIZE_MULTIPLIER="0.5")
    assert run_frame(service, signals, trade_frame(size="0.03"))["filled_sz"] == "0.015"
    run_frame(service, signals, protect_frame("take_profit", trigger="60000", size="0.02"))
    (profit,) = [o for o in sim.open_orders(wallet.address) if o["orderType"] == "Take Profit Market"]
    assert profit["sz"] == "0.01"
    row = run_frame(service, signals, trade_frame(side="SELL", size="0.03", reduce_only=True))
    assert row["state"] == "filled" and sim.positions(wallet.address) == {}  # the agent's close still closes


def test_a_scaled_order_under_the_minimum_is_refused_with_that_reason(make_service, sim, signals, wallet):
    service = make_service(FRAC_SIZE_MULTIPLIER="0.1")
    row = run_frame(service, signals, trade_frame(size="0.00001"))
    assert row["state"] == "rejected"
    assert row["reason"] == "size 0.00001 x FRAC_SIZE_MULTIPLIER 0.1 rounds to 0 at 5 decimals for BTC"
    row = run_frame(service, signals, trade_frame(size="0.001"))
    assert row["reason"] == (
        "order value $5.05 (the agent's size x FRAC_SIZE_MULTIPLIER 0.1) is under Hyperliquid's $10 minimum"
    )


# ---- a refused leverage update -----------------------------------------------------------------------------


def test_a_refused_leverage_update_refuses_the_trade_with_what_to_do(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02", leverage=5))  # a cross position
    service.stop(timeout=2)
    restart = make_service(FRAC_MARGIN_MODE="isolated")
    row = run_frame(restart, signals, trade_frame(size="0.01", leverage=3))
    assert row["state"] == "rejected"
    assert row["reason"] == (
        "leverage update to 3x isolated refused by the exchange: Cannot switch leverage type with "
        "open position.; the trade was not sent (BTC stays at 5x cross; "
        "FRAC_LEVERAGE_REFUSED=proceed trades at it instead)"
    )
    assert sim.positions(wallet.address) == {"BTC": "0.02"}


def test_with_proceed_the_trade_goes_on_at_the_current_leverage_and_says_so(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02", leverage=5))
    service.stop(timeout=2)
    restart = make_service(FRAC_MARGIN_MODE="isolated", FRAC_LEVERAGE_REFUSED="proceed")
    row = run_frame(restart, signals, trade_frame(size="0.01", leverage=3))
    assert row["state"] == "filled"
    assert row["reason"].startswith("traded at 5x cross: leverage update to 3x isolated refused by the exchange")
    assert sim.positions(wallet.address) == {"BTC": "0.03"}


# ---- the network is named ----------------------------------------------------------------------------------


def test_mainnet_named_signs_for_mainnet_whatever_the_url(make_service, sim, signals, wallet):
    """The simulator is a testnet: a key that signs for mainnet is not recognised there, as on the real exchange
    (the signer recovered from a signature for the other chain is some other address)."""
    service = make_service(HYPERLIQUID_ENV="mainnet")  # (ready: the reads are unsigned)
    assert service.settings.is_mainnet
    row = run_frame(service, signals, trade_frame())
    assert row["state"] == "rejected" and row["reason"].startswith("User or API Wallet 0x"), row
    assert sim.applied_orders(wallet.address) == []


def test_check_shows_the_multiplier_and_proves_the_key_signs_for_this_network(env, sim):
    import io

    from fractrade_sync.cli.check import EXIT_WALLET, run_check
    from fractrade_sync.config.settings import settings_from_mapping

    out = io.StringIO()
    assert run_check(settings_from_mapping({**env, "FRAC_SIZE_MULTIPLIER": "0.5"}), out) == 0, out.getvalue()
    assert "sizing      FRAC_SIZE_MULTIPLIER 0.5: every size the agent sends is multiplied by 0.5" in out.getvalue()
    assert "trading     ok: the key may trade for this account (testnet: a signed noop was accepted)" in out.getvalue()
    out = io.StringIO()
    assert run_check(settings_from_mapping({**env, "HYPERLIQUID_ENV": "mainnet"}), out) == EXIT_WALLET
    assert "trading     NOT ALLOWED: the exchange refused a signed noop: User or API Wallet 0x" in out.getvalue()
    assert "does HYPERLIQUID_ENV name the right network? it is mainnet" in out.getvalue()


# ---- protection follows the position ------------------------------------------------------------------------


def test_protection_set_without_a_size_covers_the_whole_position_as_it_changes(make_service, sim, signals, wallet):
    """Set without a size, a stop loss and take profit are position TP/SL: the exchange keeps them covering the
    whole position (no resize by this service); before, a stop stayed at 0.01 when the position grew to 0.03."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    run_frame(service, signals, protect_frame("take_profit", trigger="56000"))
    modifies = sim.request_count("/exchange", "batchModify")
    run_frame(service, signals, trade_frame(size="0.02"))  # adds to the protected position
    run_frame(service, signals, trade_frame(side="SELL", size="0.01", reduce_only=True))  # and shrinks it
    wait_drained(service, "the cleanups")
    orders = sorted((o["orderType"], o["sz"], o["isPositionTpsl"]) for o in sim.open_orders(wallet.address))
    assert orders == [("Stop Market", "0.0", True), ("Take Profit Market", "0.0", True)]
    assert sim.request_count("/exchange", "batchModify") == modifies  # nothing to resize
    sim.set_mid("BTC", "48000")
    assert sim.positions(wallet.address) == {}  # the whole 0.02


def test_protection_with_an_explicit_size_keeps_it(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.03"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48500", size="0.01"))
    run_frame(service, signals, trade_frame(size="0.02"))
    assert [o["sz"] for o in _stops(sim, wallet)] == ["0.01"]


# ---- check tells the truth before money moves ---------------------------------------------------------------


def _check(settings) -> tuple[int, str]:
    import io

    from fractrade_sync.cli.check import run_check

    out = io.StringIO()
    return run_check(settings, out), out.getvalue()


def test_check_says_the_network_the_caps_and_when_the_api_wallet_expires(env, sim):
    from eth_account import Account

    from fractrade_sync.cli.check import EXIT_WALLET
    from fractrade_sync.config.settings import settings_from_mapping

    agent = Account.create()
    agent_env = {
        **env,
        "HYPERLIQUID_PRIVATE_KEY": "0x" + agent.key.hex().removeprefix("0x"),
        "FRAC_MAX_ORDER_USD": "1000",
        "FRAC_ALLOWED_SYMBOLS": "ETH,BTC",
    }
    sim.approve_agent(env["HYPERLIQUID_PUBLIC_ADDRESS"], agent.address, "bot", days=90)
    code, text = _check(settings_from_mapping(agent_env))
    assert code == 0, text
    assert "network     testnet: the key signs for testnet (HYPERLIQUID_ENV)" in text
    assert "caps        max order $1000, max leverage unset, symbols BTC,ETH, max action age 60s" in text
    assert "approval    ok: valid for 90 more days" in text
    sim.approve_agent(env["HYPERLIQUID_PUBLIC_ADDRESS"], agent.address, "bot", days=3)
    code, text = _check(settings_from_mapping(agent_env))
    assert code == 0 and "approval    WARNING: expires in 3.0 days: approve a new API wallet before then" in text
    sim.approve_agent(env["HYPERLIQUID_PUBLIC_ADDRESS"], agent.address, "bot", days=-1)
    code, text = _check(settings_from_mapping(agent_env))
    assert code == EXIT_WALLET and "approval    EXPIRED 1.0 days ago: approve a new API wallet" in text
    code, text = _check(settings_from_mapping(env))  # the account's own key
    assert "approval    the key is the account's own: no approval to expire" in text


def test_the_start_up_line_names_the_network_and_the_multiplier(make_service, caplog):
    import logging

    caplog.set_level(logging.INFO)
    make_service(FRAC_SIZE_MULTIPLIER="0.5")
    (line,) = [r.getMessage() for r in caplog.records if "fractrade-sync starting for account" in r.getMessage()]
    assert "; testnet via http://127.0.0.1:" in line and "; sizes x0.5; " in line, line


def test_a_flip_cancels_the_previous_sides_protection(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))  # long
    run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))  # a SELL stop for the long
    run_frame(service, signals, trade_frame(side="SELL", size="0.05"))  # now short 0.03
    assert sim.positions(wallet.address) == {"BTC": "-0.03"}
    assert _stops(sim, wallet) == []  # the long's stop would have added to the short when it fired
