"""How is my agent doing: a scripted run against the simulator (open, move the mid, close with a profit; open another
and hold it; funding settled), and `report --json` and `GET /report.json` match the simulator's own books to the
cent; the figures' parts (--since, percentiles, slippage) on their own."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from fractrade_sync import __version__
from fractrade_sync.channels.statusd import status_endpoint
from fractrade_sync.report.summary import parse_since, slippage_bps, spread
from tests.conftest import key_of, run_cli, run_frame, trade_frame, wait_for

MONEY = ("realized_pnl", "fees", "funding", "net_pnl")


def scripted_run(service, signals, sim, wallet) -> list[dict]:
    """Open BTC, move the mid up, close it with a profit; open ETH and hold it; settle funding on ETH. Returns the
    frames sent (their journal rows are finished)."""
    frames = [trade_frame("BTC", "0.02", "BUY", price=49990.0)]
    run_frame(service, signals, frames[-1])
    sim.set_mid("BTC", 51000)
    wait_for(lambda: service.feed.get("BTC") == 51000, what="the new mid on the live feed")
    frames.append(trade_frame("BTC", "0.02", "SELL", reduce_only=True, price=51010.0))
    run_frame(service, signals, frames[-1])
    frames.append(trade_frame("ETH", "1", "BUY", price=3000.0))
    run_frame(service, signals, frames[-1])
    sim.pay_funding("ETH", "0.0001")
    sim.pay_funding("ETH", "0.00002")
    service.ledger.ask()  # funding settles hourly on the exchange: here, read it now
    wait_for(lambda: len(service.journal.fills_since(0)) == 3, what="the three fills journaled")
    wait_for(lambda: len(service.journal.funding_since(0)) == 2, what="the two funding settlements journaled")
    return frames


def same_money(figures: dict, books: dict) -> None:
    """The report's USDC figures equal the simulator's books exactly (so to the cent)."""
    assert {k: Decimal(figures[k]) for k in MONEY} == {k: Decimal(books[k]) for k in MONEY}


def test_report_matches_the_simulators_books_to_the_cent(make_service, signals, sim, wallet, env, tmp_path):
    service = make_service()
    metrics, server = status_endpoint(
        service.settings, service.channels.probe, ("127.0.0.1", 0)
    )  # the endpoint service.py builds with FRAC_STATUS_ADDR
    server.start()
    frames = scripted_run(service, signals, sim, wallet)
    books = sim.books(wallet.address)
    assert Decimal(books["realized_pnl"]) == Decimal("20") and Decimal(books["fees"]) > 0  # a profit, and fees
    assert Decimal(books["funding"]) < 0  # a long paid positive funding
    host, port = server.address
    try:
        live = requests.get(f"http://{host}:{port}/report.json", timeout=5).json()
    finally:
        server.stop()
    same_money(live, books)
    done = run_cli(["report", "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    same_money(report, books)
    assert report["actions"] == {"filled": 3}
    assert set(report["per_coin"]) == {"BTC", "ETH"} and report["per_coin"]["BTC"]["fills"] == 2
    assert (
        Decimal(report["per_coin"]["BTC"]["realized_pnl"]) == 20 and Decimal(report["per_coin"]["ETH"]["funding"]) < 0
    )
    [day] = report["per_day"].values()
    assert {k: Decimal(day[k]) for k in MONEY} == {k: Decimal(report[k]) for k in MONEY} and day["actions"] == 3
    assert report["latency_ms"]["count"] == 3 and 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["max"]
    # the simulator fills at its mid: the BTC buy got 50000 against a signal of 49990 (2 bps worse), the sell 51000
    # against 51010 (about 1.96 bps worse), the ETH buy the signal's price; against the mid at arrival, nothing
    lines = {key_of(f): line for f, line in zip(frames, report["executions"], strict=True)}
    assert [lines[key_of(f)]["slippage_bps"] for f in frames] == [2.0, 1.96, 0.0]
    assert [lines[key_of(f)]["arrival_mid"] for f in frames] == ["50000.0", "51000.0", "3000.0"]
    assert [lines[key_of(f)]["slippage_vs_mid_bps"] for f in frames] == [0.0, 0.0, 0.0]
    assert report["slippage_bps"] == {"p50": 1.96, "p95": 2.0, "max": 2.0, "count": 3}
    text = run_cli(["report", "--since", "1d"], env, tmp_path)
    assert text.returncode == 0 and f"net {report['net_pnl']}" in text.stdout and "BTC" in text.stdout


def test_fills_and_funding_are_journaled_once_across_a_restart(make_service, signals, sim, wallet, env, tmp_path):
    service = make_service()
    scripted_run(service, signals, sim, wallet)
    fills, funding = service.journal.fills_since(0), service.journal.funding_since(0)
    service.stop(timeout=5)
    reads = sim.request_count("/info", "userFills"), sim.request_count("/info", "userFunding")
    again = make_service()  # the same state dir: it reads the account's fills and funding again at its start
    wait_for(lambda: sim.request_count("/info", "userFills") > reads[0], what="the fills read again")
    wait_for(lambda: sim.request_count("/info", "userFunding") > reads[1], what="the funding read again")
    pushed = requests.post(sim.url + "/info", json={"type": "userFills", "user": wallet.address}, timeout=5).json()
    assert again.ledger.fills(pushed) == 0  # the same fills from the feed: nothing new
    assert again.journal.fills_since(0) == fills and again.journal.funding_since(0) == funding
    done = run_cli(["report", "--json"], env, tmp_path)
    same_money(json.loads(done.stdout), sim.books(wallet.address))


def test_since_takes_a_span_or_a_utc_date():
    now = 1_800_000_000.0
    assert parse_since("7d", now) == now - 7 * 86_400 and parse_since("24h", now) == now - 86_400
    assert parse_since("30m", now) == now - 1_800 and parse_since(None, now) == 0.0
    assert parse_since("2026-12-01", now) == 1_796_083_200.0  # midnight UTC
    with pytest.raises(ValueError, match="use a span"):
        parse_since("last week", now)


def test_percentiles_are_nearest_rank_and_slippage_is_signed_against_the_trader():
    assert spread([]) == {"p50": None, "p95": None, "max": None, "count": 0}
    assert spread(range(1, 101)) == {"p50": 50, "p95": 95, "max": 100, "count": 100}
    assert slippage_bps(Decimal("100.1"), Decimal("100"), is_buy=True) == pytest.approx(10.0)  # paid more
    assert slippage_bps(Decimal("100.1"), Decimal("100"), is_buy=False) == pytest.approx(-10.0)  # sold higher
    assert slippage_bps(Decimal("100"), None, is_buy=True) is None


def test_version_comes_from_one_string(env, tmp_path):
    done = run_cli(["--version"], env, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"fractrade-sync {__version__}"
