"""Fixtures: the real simulator and signal server on 127.0.0.1, keys made at test time, a service factory."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import pytest
from eth_account import Account
from hypothesis import settings as hypothesis_settings

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.service import FractradeExecutor
from fractrade_sync.sim.hl_server import HyperliquidSimulator
from fractrade_sync.sim.signal_server import SignalServer

ROOT = Path(__file__).resolve().parent.parent


def info_reads(sim) -> int:
    """The /info requests other than the ledger's: its fills and its funding are read when the worker is idle,
    whenever that is (the funding at the first idle step after a first trade), so a count across a trade that must
    not read anything leaves them out (every userFills read with them: a cloid lookup's comes with the orderStatus
    or frontendOpenOrders read it follows, which count)."""
    return sum(n for kind, n in sim.requests.counts("/info").items() if kind not in ("userFills", "userFunding"))


def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> object:
    """Poll a condition with a deadline; fail the test with `what` when it never holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def trade_frame(symbol="BTC", size="0.01", side="BUY", event_id=None, ts=None, **meta) -> dict:
    """A SPEC §5 trade message, stamped now."""
    metadata = {
        "event_id": event_id or secrets.token_hex(8),
        "agent_id": "agent-1",
        "timestamp": ts or time.time(),
        "price": 50000.0,
        "server_execution": False,
    }
    metadata.update(meta)
    position = {"symbol": symbol, "size": size, "side": side, "reduce_only": metadata.pop("reduce_only", False)}
    return {
        "type": "ACTION",
        "data": {"action_id": "execute_hyperliquid_perp_trade", "config": {"position": position, "metadata": metadata}},
    }


def protect_frame(kind="stop_loss", symbol="BTC", side="SELL", trigger="48500", size=None, event_id=None) -> dict:
    """A SPEC §5 stop-loss / take-profit message."""
    position = {"symbol": symbol, "side": side, "trigger_price": trigger}
    if size is not None:
        position["size"] = size
    action_id = "SET_HYPERLIQUID_PERP_STOP_LOSS" if kind == "stop_loss" else "SET_HYPERLIQUID_PERP_TAKE_PROFIT"
    metadata = {"event_id": event_id or secrets.token_hex(8), "timestamp": int(time.time() * 1000)}
    return {"type": "action", "data": {"action_id": action_id, "config": {"position": position, "metadata": metadata}}}


# property tests are reproducible: derandomized (the same examples on every run, seeded by each test), the falsifying
# example printed with a blob to replay it (@reproduce_failure); HYPOTHESIS_PROFILE=explore searches anew each run
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def hex_key(account) -> str:
    """An eth_account account's key as 0x-hex (its .hex() has the 0x in some versions, not in others)."""
    raw = account.key.hex()
    return raw if raw.startswith("0x") else "0x" + raw


@pytest.fixture
def account():
    """A throwaway key for configuration tests, made now."""
    return Account.create()


@pytest.fixture
def key(account) -> str:
    return hex_key(account)


def config_env(account, key: str, token: str) -> dict[str, str]:
    """A complete, valid environment for configuration tests (the key signs for its own account)."""
    return {
        "FRAC_WS_URL": "wss://app.fractrade.xyz/ws/executor/",
        "FRAC_USER_TOKEN": token,
        "HYPERLIQUID_PRIVATE_KEY": key,
        "HYPERLIQUID_PUBLIC_ADDRESS": account.address,
    }


@pytest.fixture
def no_file(tmp_path) -> Path:
    """A .env path that does not exist (the environment alone is read)."""
    return tmp_path / "absent.env"


@contextlib.contextmanager
def redacted_log(secrets: Iterable[str], name: str):
    """A logger whose one handler redacts `secrets` (RedactingFilter), writing to the StringIO it yields with it."""
    from fractrade_sync.logs import RedactingFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(secrets))
    log = logging.getLogger(name)
    log.addHandler(handler)
    log.propagate = False
    try:
        yield log, stream
    finally:
        log.removeHandler(handler)


@pytest.fixture
def wallet():
    """A throwaway key, made now."""
    return Account.create()


@pytest.fixture
def sim(wallet):
    with HyperliquidSimulator() as simulator:
        simulator.add_account(wallet.address, 100_000)
        yield simulator


@pytest.fixture
def signals():
    token = secrets.token_urlsafe(24)
    with SignalServer(token=token) as server:
        server.test_token = token  # the server never exposes it; the test keeps its own copy
        yield server


@pytest.fixture
def env(tmp_path, sim, signals, wallet) -> dict[str, str]:
    """A complete environment for a service against the local servers."""
    return {
        "FRAC_WS_URL": signals.url,
        "FRAC_USER_TOKEN": signals.test_token,
        "HYPERLIQUID_PRIVATE_KEY": wallet.key.hex() if wallet.key.hex().startswith("0x") else "0x" + wallet.key.hex(),
        "HYPERLIQUID_PUBLIC_ADDRESS": wallet.address,
        "HYPERLIQUID_API_URL": sim.url,
        "HYPERLIQUID_ENV": "testnet",  # the simulator is a testnet: it checks signatures for testnet
        "FRAC_STATE_DIR": str(tmp_path / "state"),
        "FRAC_HTTP_TIMEOUT": "2",
        "FRAC_HEARTBEAT_INTERVAL": "0.2",
        "FRAC_DRAIN_TIMEOUT": "5",
    }


@pytest.fixture
def make_service(env):
    """Start services (connected and ready) and stop them all at teardown."""
    started: list[FractradeExecutor] = []

    def make(cls=FractradeExecutor, wait=True, **overrides) -> FractradeExecutor:
        settings = settings_from_mapping({**env, **overrides})
        service = cls(settings).start()
        started.append(service)
        if wait:
            wait_for(service.worker.ready.is_set, what="exchange ready")
            wait_for(service.receiver.connected.is_set, what="connected to the signal server")
        return service

    yield make
    for service in started:
        service.stop(timeout=5)


def start_ready(settings) -> FractradeExecutor:
    """Start a service the test stops itself (e.g. to play a crash), once connected and ready."""
    service = FractradeExecutor(settings).start()
    wait_for(service.worker.ready.is_set, what="exchange ready")
    wait_for(service.receiver.connected.is_set, what="connected to the signal server")
    return service


def restart_until_done(settings, key: str, timeout: float = 20.0) -> dict:
    """Start a service on the same state dir (the next start), wait for an action's terminal row, stop it."""
    service = FractradeExecutor(settings).start()
    try:
        return wait_state(service, key, timeout)
    finally:
        service.stop(timeout=2)


def wait_state(service: FractradeExecutor, key: str, timeout: float = 40.0) -> dict:
    """Wait until an action reaches a terminal state (or 'unknown', reported as it is); return its journal row. (40 s:
    on 2 cores with the page tests' Chromium running, a 2 s HTTP timeout can send an action through its resend and
    its lookup by cloid, well past 20 s.)"""
    from fractrade_sync.outcome import TERMINAL_STATES, UNKNOWN

    def done():
        row = service.journal.get(key)
        return row if row and row["state"] in (*TERMINAL_STATES, UNKNOWN) else None

    return wait_for(done, timeout, what=f"terminal state of {key[:12]}")


def wait_drained(service: FractradeExecutor, what: str = "the queue drained", timeout: float = 10.0) -> None:
    """Wait until everything queued so far is handled, its cleanups too (Worker.wait_done)."""
    if not service.worker.wait_done(timeout):
        raise AssertionError(f"timed out waiting for {what}")


def push(signals: SignalServer, frame: dict) -> dict:
    """Push a frame; return it (to wait on its key)."""
    signals.push(frame)
    return frame


def run_frame(service: FractradeExecutor, signals: SignalServer, frame: dict) -> dict:
    """Push a frame and wait for its action's terminal journal row, and for the worker to have logged it."""
    signals.push(frame)
    row = wait_state(service, key_of(frame))
    wait_drained(service, "the outcome reported")  # it follows the commit
    return row


def key_of(frame: dict) -> str:
    from fractrade_sync.frames import parse_frame

    return parse_frame(json.dumps(frame), time.time()).key


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run `python -m fractrade_sync ARGS` in a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}
    return subprocess.run(
        [sys.executable, "-m", "fractrade_sync", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def feed(sim):
    """Opens sockets on the simulator's /ws (tests/test_sim_userdata.py's Feed); closes them at teardown."""
    from tests.test_sim_userdata import Feed

    opened: list[Feed] = []

    def connect() -> Feed:
        opened.append(Feed(sim))
        return opened[-1]

    yield connect
    for f in opened:
        f.ws.close()


@pytest.fixture
def ex(sim, wallet):
    """The SDK's Exchange for the test's wallet, against the simulator."""
    from hyperliquid.exchange import Exchange

    return Exchange(wallet, base_url=sim.url, account_address=wallet.address)


@pytest.fixture
def info(sim):
    """The SDK's Info, against the simulator (no WebSocket)."""
    from hyperliquid.info import Info

    return Info(sim.url, skip_ws=True)


def queued_together(service, sim, signals, frames: list[dict], before_release=lambda: None, waited=None) -> list[dict]:
    """Push `frames` while the worker is held (on a frame refused locally: it sends nothing), so that they wait in the
    queue together; then release it. Returns the journal rows of the `waited` ones (all by default), once
    terminal."""
    gate, real, calls = threading.Event(), service.worker.handle, []

    def held(items, *more):
        if not calls:
            calls.append(items)
            gate.wait(10)
        return real(items, *more)

    service.worker.handle = held
    push(signals, trade_frame(symbol="NOPE"))
    wait_for(lambda: calls, what="the worker held")
    for frame in frames:
        signals.push(frame)
    wait_for(lambda: service.queue.qsize() >= len(frames), what="the frames queued together")
    before_release()
    gate.set()
    return [wait_state(service, key_of(frame), timeout=30) for frame in (frames if waited is None else waited)]
