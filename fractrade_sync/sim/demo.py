"""`fractrade-sync demo`: the simulator, the signal server and the real service, a scripted session, a timeline."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Mapping, TextIO

from eth_account import Account

from fractrade_sync.actions import STOP_LOSS, TAKE_PROFIT, TRADE
from fractrade_sync.config.settings import EXIT_FAILURE, EXIT_OK, settings_from_mapping
from fractrade_sync.frames import parse_frame
from fractrade_sync.logs import setup_logging
from fractrade_sync.outcome import TERMINAL_STATES
from fractrade_sync.report.summary import MONEY, build, text
from fractrade_sync.service import FractradeExecutor
from fractrade_sync.sim.hl_dexes import owner
from fractrade_sync.sim.hl_server import HyperliquidSimulator
from fractrade_sync.sim.signal_server import SignalServer


@dataclass
class Step:
    """One scripted signal, and an optional market move before it."""

    title: str
    frame: dict
    before: Callable[[HyperliquidSimulator], None] | None = None


def _frame(action_id: str, position: dict, **metadata) -> dict:
    meta = {"event_id": secrets.token_hex(6), "agent_id": "demo-agent", "timestamp": int(time.time() * 1000)}
    meta.update(metadata)
    return {"type": "ACTION", "data": {"action_id": action_id, "config": {"position": position, "metadata": meta}}}


# the coin each market plays: (symbol, size, leverage, stop loss, take profit, the price it rises to, the stop then)
MARKETS = {
    "main": ("BTC", "0.01", 10, "48500", "55000", "52000", "50500"),
    "hip3": ("xyz:NVDA", "1", 3, "160", "200", "190", "180"),  # a HIP-3 dex's coin (isolated margin only)
}


def script(market: str = "main") -> list[Step]:
    """Open a long with leverage, protect it, move the stop, close."""
    trade = TRADE
    coin, size, lev, stop, profit, risen, moved = MARKETS[market]
    shown = {px: f"{int(px):,}" for px in (stop, profit, risen, moved)}  # 48500 -> "48,500"
    return [
        Step(
            f"open long {size} {coin} at {lev}x",
            _frame(trade, {"symbol": coin, "size": size, "side": "BUY"}, leverage=lev),
        ),
        Step(
            f"stop loss at {shown[stop]}",
            _frame(STOP_LOSS, {"symbol": coin, "side": "SELL", "trigger_price": stop}),
        ),
        Step(
            f"take profit at {shown[profit]}",
            _frame(TAKE_PROFIT, {"symbol": coin, "side": "SELL", "trigger_price": profit}),
        ),
        Step(
            f"{coin} rises to {shown[risen]}; move the stop loss to {shown[moved]}",
            _frame(STOP_LOSS, {"symbol": coin, "side": "SELL", "trigger_price": moved}),
            before=lambda sim: sim.set_mid(coin, risen),
        ),
        Step("the same signal delivered again (ignored)", {}),
        Step("close the long", _frame(trade, {"symbol": coin, "size": size, "side": "SELL", "reduce_only": True})),
    ]


# the operator's channels a demo may be pointed at (from the environment): a Telegram chat, a Prometheus scrape
OPERATOR_VARS = (
    "FRAC_TELEGRAM_TOKEN",
    "FRAC_TELEGRAM_CHAT_ID",
    "FRAC_TELEGRAM_API_URL",
    "FRAC_STATUS_ADDR",
    "FRAC_NOTIFY_URL",
)


def run_demo(
    quiet: bool = False,
    out: TextIO | None = None,
    timeout: float = 40.0,
    environ: Mapping[str, str] | None = None,
    sub_account: bool = False,
    market: str = "main",
) -> int:
    """Run the scripted session against local servers; print the timeline; 0 when every step finished. The
    operator's channels set in the environment (OPERATOR_VARS) show the session too. `sub_account`: the account
    traded is a sub-account of the throwaway one, through an API wallet of it; `market` "hip3": a HIP-3 dex's coin."""
    out = out or sys.stdout
    environ = os.environ if environ is None else environ
    wallet = Account.create()
    token = secrets.token_urlsafe(24)
    with (
        tempfile.TemporaryDirectory(prefix="fractrade-demo-") as state,
        HyperliquidSimulator() as sim,
        SignalServer(token) as signals,
    ):
        sim.add_account(wallet.address, 10_000)
        key = wallet
        account = wallet.address
        if sub_account:  # a sub-account of the throwaway account, traded through an API wallet of it
            account = Account.create().address
            key = Account.create()
            sim.add_sub_account(wallet.address, account, usdc=10_000)
            sim.approve_agent(wallet.address, key.address)
        if market == "hip3":
            sim.fund_dex(account, "xyz", 5_000)
        env = {
            "FRAC_WS_URL": signals.url,
            "FRAC_USER_TOKEN": token,
            "HYPERLIQUID_PRIVATE_KEY": "0x" + key.key.hex().removeprefix("0x"),
            "HYPERLIQUID_PUBLIC_ADDRESS": account,
            "HYPERLIQUID_API_URL": sim.url,
            "HYPERLIQUID_ENV": "testnet",
            "FRAC_STATE_DIR": state,
            **{var: environ[var] for var in OPERATOR_VARS if environ.get(var)},
        }
        settings = settings_from_mapping(env)
        handler = None if quiet else setup_logging("INFO", "text", settings.secrets)
        ours = logging.getLogger("fractrade_sync")
        level = logging.getLogger("fractrade_sync").level
        if quiet:
            ours.setLevel(logging.ERROR)
        print(f"demo: simulated Hyperliquid at {sim.url}, Fractrade signals at {signals.url}", file=out)
        print(f"demo: throwaway account {wallet.address} with $10,000 (no real keys, no network)", file=out)
        if sub_account:
            print(f"demo: trading its sub-account {account} through its API wallet {key.address}", file=out)
        if settings.status_addr:
            print(f"demo: status endpoint http://{settings.status_addr[0]}:{settings.status_addr[1]}/metrics", file=out)
        if settings.telegram_token:
            print(f"demo: reporting to Telegram chat {settings.telegram_chat_id}", file=out)
        print(file=out)
        service = FractradeExecutor(settings).start()
        ok = False
        try:
            ok = _play(service, sim, signals, account, out, timeout, market)
        finally:
            service.stop()
            ours.setLevel(level)  # (an embedding process, or the next test, gets its logging back)
            if handler is not None:
                logging.getLogger().removeHandler(handler)
    return EXIT_OK if ok else EXIT_FAILURE


def _play(service, sim, signals, address: str, out: TextIO, timeout: float, market: str = "main") -> bool:
    deadline = time.monotonic() + timeout
    while not (service.worker.ready.is_set() and service.receiver.connected.is_set()):
        if time.monotonic() > deadline or service.fatal is not None:
            print("demo: the service did not become ready", file=out)
            return False
        time.sleep(0.02)
    t0 = time.monotonic()
    previous: dict = {}
    for step in script(market):
        frame = step.frame or previous
        if step.before:
            step.before(sim)
        signals.push(frame)
        key = parse_frame(json.dumps(frame), time.time()).key
        row = _wait_terminal(service, key, deadline)
        if row is None:
            print(f"demo: step '{step.title}' did not finish in time", file=out)
            return False
        detail = row["state"]
        if row.get("filled_sz"):
            detail += f" {row['filled_sz']} @ {row['avg_px']}"
        if row.get("oid"):
            detail += f" (oid {row['oid']})"
        if row.get("latency_ms") is not None:
            detail += f", {row['latency_ms']:.1f} ms"
        if step.frame == {}:
            detail = "journaled already: not executed again"
        print(f"+{time.monotonic() - t0:6.2f}s  {step.title:<50} -> {detail}", file=out)
        previous = frame
    # the close's cleanup runs as the queue drains: the final state is read after it (done only after it)
    service.worker.wait_done(max(0.0, deadline - time.monotonic()))
    coin = MARKETS[market][0]
    dex = coin.partition(":")[0] if ":" in coin else ""
    position = sim.positions(address, dex=dex) or {coin: "0 (flat)"}
    print(f"\nfinal position: {', '.join(f'{k} {v}' for k, v in position.items())}", file=out)
    orders = sim.open_orders(address, dex=dex)
    print(
        f"open orders: {len(orders)}" + (" (the close canceled the stop loss and take profit)" if not orders else ""),
        file=out,
    )
    for o in orders:
        print(f"  {o['coin']} {o['orderType']} {o['sz']} trigger {o.get('triggerPx')} (oid {o['oid']})", file=out)
    return _report(service, sim, address, out, deadline)


def _report(service, sim, address: str, out: TextIO, deadline: float) -> bool:
    """`fractrade-sync report` over this run's journal, beside the simulator's own books: they must agree."""
    booked = sim.books(address)
    fills = sum(1 for fill in sim.state.fills if owner(fill.user) == address.lower())  # (its dexes' fills too)
    service.ledger.ask()  # (the service reads the account's fills after a fill anyway; now, without waiting)
    while len(service.journal.fills_since(0)) < fills:
        if time.monotonic() > deadline:
            print("demo: the fills were not journaled in time", file=out)
            return False
        time.sleep(0.02)
    figures = build(service.journal)
    print(f"\nhow is my agent doing? (fractrade-sync report)\n{text(figures)}", file=out)
    same = all(Decimal(figures[name]) == Decimal(booked[name]) for name in MONEY)
    books = ", ".join(f"{name} {booked[name]}" for name in MONEY)
    print(f"the simulator's own books: {books}: {'the same' if same else 'DIFFERENT'}", file=out)
    return same


def _wait_terminal(service, key: str, deadline: float) -> dict | None:
    while time.monotonic() < deadline:
        row = service.journal.get(key)
        if row and row["state"] in TERMINAL_STATES:
            return row
        time.sleep(0.01)
    return None
