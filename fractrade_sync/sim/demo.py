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
from typing import Callable, Mapping, TextIO

from eth_account import Account

from ..actions import STOP_LOSS, TAKE_PROFIT, TRADE, parse_frame
from ..config import EXIT_FAILURE, EXIT_OK, settings_from_mapping
from ..logs import setup_logging
from ..outcome import TERMINAL_STATES
from ..service import FractradeExecutor
from .hl_server import HyperliquidSimulator
from .signal_server import SignalServer


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


def script() -> list[Step]:
    """Open a BTC long with leverage, protect it, move the stop, close."""
    trade, sl, tp = TRADE, STOP_LOSS, TAKE_PROFIT
    return [
        Step(
            "open long 0.01 BTC at 10x",
            _frame(trade, {"symbol": "BTC", "size": "0.01", "side": "BUY"}, leverage=10, price=50000.0),
        ),  # fmt: skip
        Step("stop loss at 48,500", _frame(sl, {"symbol": "BTC", "side": "SELL", "trigger_price": "48500"})),
        Step("take profit at 55,000", _frame(tp, {"symbol": "BTC", "side": "SELL", "trigger_price": "55000"})),
        Step(
            "BTC rises to 52,000; move the stop loss to 50,500",
            _frame(sl, {"symbol": "BTC", "side": "SELL", "trigger_price": "50500"}),
            before=lambda sim: sim.set_mid("BTC", "52000"),
        ),
        Step("the same signal delivered again (ignored)", {}),
        Step("close the long", _frame(trade, {"symbol": "BTC", "size": "0.01", "side": "SELL", "reduce_only": True})),
    ]


# the operator's channels a demo may be pointed at (from the environment): a Telegram chat, a Prometheus scrape
OPERATOR_VARS = ("FRAC_TELEGRAM_TOKEN", "FRAC_TELEGRAM_CHAT_ID", "FRAC_TELEGRAM_API_URL", "FRAC_STATUS_ADDR",
                 "FRAC_NOTIFY_URL")  # fmt: skip


def run_demo(quiet: bool = False, out: TextIO | None = None, timeout: float = 20.0,
             environ: Mapping[str, str] | None = None) -> int:  # fmt: skip
    """Run the scripted session against local servers; print the timeline; 0 when every step finished. The
    operator's channels set in the environment (OPERATOR_VARS) show the session too."""
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
        env = {
            "FRAC_WS_URL": signals.url,
            "FRAC_USER_TOKEN": token,
            "HYPERLIQUID_PRIVATE_KEY": "0x" + wallet.key.hex().removeprefix("0x"),
            "HYPERLIQUID_PUBLIC_ADDRESS": wallet.address,
            "HYPERLIQUID_API_URL": sim.url,
            "HYPERLIQUID_ENV": "testnet",
            "FRAC_STATE_DIR": state,
            **{var: environ[var] for var in OPERATOR_VARS if environ.get(var)},
        }
        settings = settings_from_mapping(env)
        handler = None if quiet else setup_logging("INFO", "text", settings.secrets)
        ours, level = logging.getLogger("fractrade_sync"), logging.getLogger("fractrade_sync").level
        if quiet:
            ours.setLevel(logging.ERROR)
        print(f"demo: simulated Hyperliquid at {sim.url}, Fractrade signals at {signals.url}", file=out)
        print(f"demo: throwaway account {wallet.address} with $10,000 (no real keys, no network)", file=out)
        if settings.status_addr:
            print(f"demo: status endpoint http://{settings.status_addr[0]}:{settings.status_addr[1]}/metrics", file=out)
        if settings.telegram_token:
            print(f"demo: reporting to Telegram chat {settings.telegram_chat_id}", file=out)
        print(file=out)
        service = FractradeExecutor(settings).start()
        ok = False
        try:
            ok = _play(service, sim, signals, wallet.address, out, timeout)
        finally:
            service.stop()
            ours.setLevel(level)  # (an embedding process, or the next test, gets its logging back)
            if handler is not None:
                logging.getLogger().removeHandler(handler)
    return EXIT_OK if ok else EXIT_FAILURE


def _play(service, sim, signals, address: str, out: TextIO, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not (service.worker.ready.is_set() and service.receiver.connected.is_set()):
        if time.monotonic() > deadline or service.fatal is not None:
            print("demo: the service did not become ready", file=out)
            return False
        time.sleep(0.02)
    t0 = time.monotonic()
    previous: dict = {}
    for step in script():
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
    position = sim.positions(address) or {"BTC": "0 (flat)"}
    print(f"\nfinal position: {', '.join(f'{k} {v}' for k, v in position.items())}", file=out)
    orders = sim.open_orders(address)
    print(f"open orders: {len(orders)}" + (" (the close canceled the stop loss and take profit)" if not orders else ""),
          file=out)  # fmt: skip
    for o in orders:
        print(f"  {o['coin']} {o['orderType']} {o['sz']} trigger {o.get('triggerPx')} (oid {o['oid']})", file=out)
    return True


def _wait_terminal(service, key: str, deadline: float) -> dict | None:
    while time.monotonic() < deadline:
        row = service.journal.get(key)
        if row and row["state"] in TERMINAL_STATES:
            return row
        time.sleep(0.01)
    return None
