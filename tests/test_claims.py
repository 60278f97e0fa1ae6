"""What was only claimed, now shown on a running service: pings keep a quiet connection open, `health` reports a
dead worker, the JSON log of the running process parses with its stable fields, and a slow webhook and a slow
Telegram never delay an action."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

from fractrade_sync.logs import JSON_FIELDS
from fractrade_sync.sim.botapi import FakeBotAPI
from tests.conftest import key_of, push, run_cli, run_frame, trade_frame, wait_for


def test_pings_keep_a_quiet_healthy_connection_open(make_service, signals):
    """No frame for 3 s, a silence timeout of 2 s: the pongs alone keep it alive, with no reconnect."""
    service = make_service(FRAC_PING_INTERVAL="0.5", FRAC_SILENCE_TIMEOUT="2")
    time.sleep(3.0)
    assert service.receiver.reconnects == 0 and signals.connections_total == 1
    assert service.receiver.connected.is_set()


def test_health_reports_a_dead_worker(make_service, signals, env, tmp_path):
    """The worker thread ends (a hook raising SystemExit); the service is kept from stopping (its watchdog's verdict
    is recorded instead), so `fractrade-sync health` reads the heartbeat that says which thread died."""
    from fractrade_sync.service import FractradeExecutor

    verdicts: list[str] = []

    class Dies(FractradeExecutor):
        def handle_hyperliquid_perp_trade(self, config):
            raise SystemExit("the worker ends")

        def _thread_failed(self, problem):
            verdicts.append(problem)

    service = make_service(Dies)
    wait_for(lambda: run_cli(["health"], env, tmp_path).returncode == 0, interval=0.2, what="healthy first")
    signals.push(trade_frame())
    wait_for(lambda: not service.worker.is_alive(), what="the worker dead")
    result = wait_for(
        lambda: (r := run_cli(["health"], env, tmp_path)).returncode == 1 and r,
        timeout=10,
        interval=0.2,
        what="health failing",
    )
    assert "the worker thread is dead" in result.stdout + result.stderr, result
    assert verdicts and verdicts[0] == "the worker thread is dead"


def test_the_running_services_json_log_parses_with_its_stable_fields(env, tmp_path, signals, sim):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fractrade_sync", "run"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        env={**clean, **env, "LOG_FORMAT": "json"},
        text=True,
    )
    try:
        wait_for(lambda: run_cli(["health"], env, tmp_path).returncode == 0, timeout=20, interval=0.2, what="up")
        frame = push(signals, trade_frame())
        wait_for(lambda: len(sim.applied_orders()) == 1, what="the trade")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    records = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is one JSON object
    assert all({"time", "level", "name", "thread", "message"} <= set(r) for r in records), records[:3]
    (outcome,) = [r for r in records if r.get("outcome") == "filled"]
    assert set(JSON_FIELDS) <= set(outcome) and outcome["action_key"] == key_of(frame)
    assert outcome["symbol"] == "BTC" and outcome["filled_sz"] == "0.01" and outcome["thread"] == "worker"


def test_a_slow_webhook_and_a_slow_telegram_never_delay_an_action(make_service, sim, signals, wallet):
    from tests.test_notify import Webhook

    hook = Webhook()
    hook.release.clear()  # every post hangs until the end of the test
    token = f"{secrets.randbelow(10**9) + 10**8}:{secrets.token_urlsafe(26)}"
    with FakeBotAPI(token) as bot:
        bot.latency["sendMessage"] = 5.0
        try:
            service = make_service(FRAC_NOTIFY_URL=hook.url, **bot.env(4242))
            rows = [run_frame(service, signals, trade_frame(size="0.01")) for _ in range(5)]
        finally:
            threading.Thread(target=hook.close, daemon=True).start()
    assert all(r["state"] == "filled" for r in rows)
    # receipt to the exchange's answer: a few ms here (the simulator answers at once); a channel in the way would
    # add its 5 s (or the webhook's forever)
    assert max(r["latency_ms"] for r in rows) < 500, [r["latency_ms"] for r in rows]
