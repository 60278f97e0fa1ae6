"""The asyncio face (fractrade_sync.aio): the seed's examples run with only their import line changed, against the
simulators over real sockets; and an embedding script's logging (sync and aio)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from eth_account import Account

from fractrade_sync import aio
from fractrade_sync.errors import ConfigError
from fractrade_sync.outcome import FAILED, FILLED, RESTING
from tests.conftest import ROOT, key_of, protect_frame, run_frame, trade_frame, wait_for

# The seed's README "Basic Usage", import line changed.
BASIC = """
import asyncio
from fractrade_sync.aio import FractradeExecutor

async def main():
    executor = FractradeExecutor()
    await executor.start()
    try:
        await executor._shutdown_event.wait()
    finally:
        await executor.stop()

asyncio.run(main())
"""

# The seed's examples/simple_executor.py (its docstring and comments left out), import line changed: its own logging,
# load_dotenv, a subclass with an async hook, and its own loop with signal handlers.
SIMPLE_EXECUTOR = """
import asyncio
import os
import logging
import signal
from dotenv import load_dotenv
from fractrade_sync.aio import FractradeExecutor

logging.basicConfig(
    level=logging.INFO,
    format='%(asctime)s - %(name)s - %(levelname)s - %(message)s'
)
logger = logging.getLogger(__name__)

class SimpleExecutor(FractradeExecutor):
    def __init__(self):
        super().__init__()
        logger.info("SimpleExecutor initialized")

    async def handle_hyperliquid_perp_trade(self, config):
        logger.info("Received trade request: %s", config)
        return await super().handle_hyperliquid_perp_trade(config)

async def main():
    load_dotenv()
    executor = SimpleExecutor()
    try:
        logger.info("Starting executor...")
        await executor.start()
        logger.info("Executor started successfully")
        print("SimpleExecutor running. Press Ctrl+C to stop.")
        await executor._shutdown_event.wait()
    except KeyboardInterrupt:
        logger.info("Received keyboard interrupt")
    except Exception as e:
        logger.error("Unexpected error: %s", str(e), exc_info=True)
    finally:
        logger.info("Stopping executor...")
        await executor.stop()
        logger.info("Executor stopped")

if __name__ == "__main__":
    try:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        signals = (signal.SIGTERM, signal.SIGINT)
        for s in signals:
            loop.add_signal_handler(
                s, lambda s=s: asyncio.create_task(loop.stop())
            )
        loop.run_until_complete(main())
    except KeyboardInterrupt:
        print("\\nShutdown complete.")
    finally:
        loop.close()
"""


def clean_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_", "LOG"))}
    return {**base, **env, "PYTHONPATH": str(ROOT)}


def spawn(script: str, env: dict[str, str], cwd) -> subprocess.Popen:
    path = cwd / "script.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.Popen(
        [sys.executable, str(path)],
        env=clean_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("script", "signum"),
    [(BASIC, signal.SIGTERM), (BASIC, signal.SIGINT), (SIMPLE_EXECUTOR, signal.SIGTERM)],
    ids=["basic-SIGTERM", "basic-SIGINT", "simple_executor-SIGTERM"],
)
def test_the_seeds_examples_run_and_stop_on_a_signal_with_exit_0(script, signum, env, tmp_path, sim, signals, wallet):
    process = spawn(script, env, tmp_path)
    try:
        wait_for(lambda: signals.clients == 1 or process.poll() is not None, timeout=20, what="connected")
        assert process.poll() is None, process.communicate()
        frame = trade_frame()
        signals.push(frame)
        wait_for(lambda: sim.applied_orders(wallet.address), timeout=20, what="the order")
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    (order,) = sim.applied_orders(wallet.address)
    assert order["cloid"] == "0x" + key_of(frame)[:32] and order["sz"] == "0.01"
    assert "stopped: nothing left to execute" in err
    if script is SIMPLE_EXECUTOR:
        assert "Received trade request: {'position'" in err and "Executor stopped" in err


def advanced(kind: str, change: bool, seen: list) -> type[aio.FractradeExecutor]:
    """The seed's Advanced Usage: each async hook logs and awaits super(); the `kind` one may halve the size."""

    def maybe_halve(config, hook_kind):
        seen.append((hook_kind, threading.current_thread().name, asyncio.get_running_loop()))
        if change and hook_kind == kind:
            config["position"]["size"] = str(float(config["position"]["size"]) / 2)
        return config

    class AdvancedExecutor(aio.FractradeExecutor):
        async def handle_hyperliquid_perp_trade(self, config):
            self.logger.info("Trade config: %s", config)
            return await super().handle_hyperliquid_perp_trade(maybe_halve(config, "trade"))

        async def handle_set_hyperliquid_perp_stop_loss(self, config):
            self.logger.info("Stop loss config: %s", config)
            await asyncio.sleep(0)  # a real await on the worker's loop
            return await super().handle_set_hyperliquid_perp_stop_loss(maybe_halve(config, "stop_loss"))

        async def handle_set_hyperliquid_perp_take_profit(self, config):
            self.logger.info("Take profit config: %s", config)
            return await super().handle_set_hyperliquid_perp_take_profit(maybe_halve(config, "take_profit"))

    return AdvancedExecutor


@pytest.fixture
def environ(env, monkeypatch, tmp_path):
    """The test's environment in os.environ, for the no-argument constructor (and no .env around)."""
    for name in list(os.environ):
        if name.startswith(("FRAC_", "HYPERLIQUID_", "LOG")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return env


def run_in_process(cls: type[aio.FractradeExecutor], steps) -> aio.FractradeExecutor:
    """The seed's main() in this process: construct, start, run the test's steps (in a thread), stop."""

    async def main():
        executor = cls()
        await executor.start()
        try:
            await asyncio.to_thread(wait_for, executor.receiver.connected.is_set, 20, what="connected")
            await asyncio.to_thread(steps, executor)
        finally:
            await executor.stop()
        assert executor._shutdown_event.is_set()
        return executor, asyncio.get_running_loop()

    executor, loop = asyncio.run(main())
    executor.test_loop = loop
    return executor


@pytest.mark.parametrize("change", [True, False], ids=["changed", "unchanged"])
@pytest.mark.parametrize("kind", ["trade", "stop_loss", "take_profit"])
def test_the_seeds_advanced_example_with_async_hooks(kind, change, environ, sim, signals, wallet):
    seen: list = []
    frames = {
        "trade": trade_frame(size="0.04"),
        "stop_loss": protect_frame("stop_loss", trigger="48500", size="0.02"),
        "take_profit": protect_frame("take_profit", trigger="55000", size="0.02"),
    }
    rows = {}

    def steps(executor):
        for name, frame in frames.items():
            rows[name] = run_frame(executor, signals, frame)
        signals.push(frames[kind])  # a redelivery
        run_frame(executor, signals, trade_frame(symbol="ETH", size="0.01"))

    executor = run_in_process(advanced(kind, change, seen), steps)
    assert [rows[name]["state"] for name in frames] == [FILLED, RESTING, RESTING]
    key = key_of(frames[kind])
    orders = [o for o in sim.applied_orders(wallet.address) if o["cloid"] == "0x" + key[:32]]
    assert len(orders) == 1  # the original action's cloid, once
    full = "0.04" if kind == "trade" else "0.02"
    assert orders[0]["sz"] == (str(float(full) / 2) if change else full)
    assert rows[kind]["key"] == key
    assert [r["key"] for r in executor.journal.all()].count(key) == 1
    # every hook ran on the worker thread, on one loop of its own, not on the caller's
    assert {thread for _, thread, _ in seen} == {"worker"}
    assert len({id(loop) for _, _, loop in seen}) == 1 and seen[0][2] is not executor.test_loop
    assert seen[0][2].is_closed()  # closed at stop
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the loop's signal handlers are gone after stop


def test_an_async_hook_that_raises_fails_the_action_with_its_reason(environ, sim, signals, wallet):
    class Raising(aio.FractradeExecutor):
        async def handle_hyperliquid_perp_trade(self, config):
            await asyncio.sleep(0)
            raise RuntimeError("the agent's size is too big for me")

    rows = []
    run_in_process(Raising, lambda executor: rows.append(run_frame(executor, signals, trade_frame())))
    assert rows[0]["state"] == FAILED
    assert rows[0]["reason"] == "RuntimeError: the agent's size is too big for me"
    assert sim.applied_orders(wallet.address) == []


def test_a_fatal_error_sets_the_shutdown_event_and_stop_raises_it(environ, sim, monkeypatch):
    other = Account.create()  # an account the key is not an API wallet of: the worker's preparation is refused
    sim.add_account(other.address, 1_000)
    monkeypatch.setenv("HYPERLIQUID_PUBLIC_ADDRESS", other.address)

    async def main():
        executor = aio.FractradeExecutor()
        await executor.start()
        try:
            await asyncio.wait_for(executor._shutdown_event.wait(), 20)
        finally:
            with pytest.raises(ConfigError, match="HYPERLIQUID_PRIVATE_KEY: .* is not an API wallet approved"):
                await executor.stop()
        return executor

    executor = asyncio.run(main())
    assert executor._shutdown_event.is_set() and not executor.worker.is_alive()


# ---- an embedding script's logging -------------------------------------------------------------------------------
EMBED = {
    "sync": """
        from fractrade_sync import FractradeExecutor
        executor = FractradeExecutor()
        executor.start()
        wait_until_ready(executor)
        logging.getLogger("fractrade_sync.script").warning("the token is %s", os.environ["FRAC_USER_TOKEN"])
        executor.stop()
    """,
    "aio": """
        import asyncio
        from fractrade_sync.aio import FractradeExecutor
        async def main():
            executor = FractradeExecutor()
            await executor.start()
            await asyncio.to_thread(wait_until_ready, executor)
            logging.getLogger("fractrade_sync.script").warning("the token is %s", os.environ["FRAC_USER_TOKEN"])
            await executor.stop()
        asyncio.run(main())
    """,
}
PRELUDE = """
import logging, os, sys, time
{app_logging}
def wait_until_ready(executor):
    deadline = time.monotonic() + 20
    while not (executor.worker.ready.is_set() and executor.receiver.connected.is_set()):
        if time.monotonic() > deadline:
            sys.exit(3)
        time.sleep(0.05)
"""
EPILOGUE = """
print("root handlers:", len(logging.getLogger().handlers), logging.getLevelName(logging.getLogger().level))
"""
OURS = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) +\S+ +"  # logs.TEXT_FORMAT


def run_embedded(face: str, env: dict[str, str], cwd, app_logging: str = "") -> subprocess.CompletedProcess:
    script = PRELUDE.format(app_logging=app_logging) + textwrap.dedent(EMBED[face]) + EPILOGUE
    (cwd / "embed.py").write_text(script)
    return subprocess.run(
        [sys.executable, str(cwd / "embed.py")], env=clean_env(env), cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("level", ["DEBUG", "WARNING"])
@pytest.mark.parametrize("face", ["sync", "aio"])
def test_a_script_without_logging_gets_the_clis_logging_at_loglevel(face, level, env, tmp_path, sim, signals):
    done = run_embedded(face, {**env, "LOGLEVEL": level}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"root handlers: 1 {level}" in done.stdout
    lines = done.stderr.splitlines()
    assert all(re.match(OURS, line) for line in lines if not line.startswith((" ", "Traceback"))), done.stderr
    assert any(re.match(OURS + r"the token is \*\*\*$", line) for line in lines), done.stderr  # redacted
    assert env["FRAC_USER_TOKEN"] not in done.stderr
    starting = any(re.match(OURS + "fractrade-sync starting", line) for line in lines)
    assert starting == (level == "DEBUG")
    assert any(re.match(r"\S+ \S+ DEBUG ", line) for line in lines) == (level == "DEBUG")


@pytest.mark.parametrize("face", ["sync", "aio"])
def test_a_script_that_configured_logging_keeps_its_own(face, env, tmp_path, sim, signals):
    app = 'logging.basicConfig(level=logging.INFO, format="APP %(levelname)s %(name)s: %(message)s")'
    done = run_embedded(face, {**env, "LOGLEVEL": "DEBUG"}, tmp_path, app_logging=app)
    assert done.returncode == 0, done.stderr
    assert "root handlers: 1 INFO" in done.stdout  # its handler, its level: not LOGLEVEL's
    assert "APP INFO fractrade_sync: fractrade-sync starting" in done.stderr
    assert not any(re.match(OURS, line) for line in done.stderr.splitlines()), done.stderr
    assert "APP DEBUG" not in done.stderr
