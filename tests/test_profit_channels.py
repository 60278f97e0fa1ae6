"""How the agent is doing on the operator's channels: Telegram's /profit, /daily, /positions, /balance (and /help
listing them), and /metrics' PnL, fees and funding by coin and its slippage and latency histograms by coin."""

from __future__ import annotations

import datetime
import secrets

from fractrade_sync.channels.hub import commands
from fractrade_sync.channels.statusd import status_endpoint
from fractrade_sync.channels.telegram import TelegramBot
from fractrade_sync.config.settings import settings_from_mapping
from tests.conftest import protect_frame, run_frame
from tests.test_report import scripted_run
from tests.test_statusd import families, get


def test_telegram_answers_profit_daily_positions_and_balance(make_service, signals, sim, wallet, env):
    service = make_service()
    scripted_run(service, signals, sim, wallet)
    run_frame(service, signals, protect_frame("stop_loss", "ETH", "SELL", "2800"))  # the held ETH long: a stop
    answers = commands(service.settings, service.channels.probe)
    books = sim.books(wallet.address)
    profit = answers["profit"]()
    assert profit.startswith("today: net ") and "since the first action: net " in profit
    assert f"realized {books['realized_pnl'].rstrip('0').rstrip('.')}" in profit  # 20, however many zeros it has
    daily = answers["daily"]().splitlines()
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert len(daily) == 7 and daily[-1].startswith(f"{today}: net ") and "no fills" in daily[0]
    assert answers["positions"]() == ("ETH long 1.0 @ 3000.0; unrealized 0.0 USDC; stop loss: whole; take profit: NONE")
    assert answers["balance"]().startswith("account value ") and "margin used " in answers["balance"]()
    settings = settings_from_mapping(
        {**env, "FRAC_TELEGRAM_TOKEN": "123456:" + secrets.token_hex(18)[:35], "FRAC_TELEGRAM_CHAT_ID": "42"}
    )
    assert TelegramBot(settings, answers).help_text() == (
        "commands: /balance /daily /pause /positions /profit /resume /status /help"
    )


def test_metrics_show_pnl_fees_funding_slippage_and_latency_by_coin(make_service, signals, sim, wallet):
    service = make_service()
    metrics, server = status_endpoint(service.settings, service.channels.probe, ("127.0.0.1", 0))
    pipeline = service.worker.handle
    pipeline.on_outcome = (*pipeline.on_outcome, metrics.outcome)  # the wiring service.py gets
    scripted_run(service, signals, sim, wallet)
    server.start()
    try:
        got = families(get(server.address, "/metrics")[2])
    finally:
        server.stop()
    coin = (("coin", "BTC"),)
    assert got["fractrade_realized_pnl_usdc"][("fractrade_realized_pnl_usdc", coin)] == 20
    assert got["fractrade_fees_usdc"][("fractrade_fees_usdc_total", coin)] > 0
    funding = got["fractrade_funding_usdc"][("fractrade_funding_usdc", (("coin", "ETH"),))]
    assert funding == float(sim.books(wallet.address)["funding"]) < 0
    latency = got["fractrade_order_latency_seconds"]
    assert latency[("fractrade_order_latency_seconds_count", coin)] == 2
    slippage = got["fractrade_slippage_bps"]  # (negative buckets: prometheus_client gives no _sum, so no _count)

    def below(bound: str) -> float:
        return slippage[("fractrade_slippage_bps_bucket", (("against", "signal"), *coin, ("le", bound)))]

    assert (below("1.0"), below("2.0"), below("5.0"), below("+Inf")) == (0, 1, 2, 2)  # 2.0 and 1.96 bps worse
    # against the mid at arrival (the action's, from the live feed): the BTC trades filled at their mid, 0 bps
    at_mid = [
        slippage[("fractrade_slippage_bps_bucket", (("against", "mid"), *coin, ("le", b)))] for b in ("-1.0", "0.0")
    ]
    assert at_mid == [0, 2]
