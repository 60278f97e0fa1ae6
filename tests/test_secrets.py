"""The key and the token never leave the process: a full DEBUG scenario, failures included, searched everywhere."""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import sys

import pytest

from fractrade_sync.sim.botapi import FakeBotAPI
from tests.conftest import ROOT, key_of, protect_frame, run_cli, trade_frame, wait_for
from tests.test_notify import Webhook


def _needles(env: dict[str, str]) -> list[str]:
    key = env["HYPERLIQUID_PRIVATE_KEY"]
    token = env["FRAC_USER_TOKEN"]
    return [token, key, key[2:], key[2:].upper(), key[2:40]]


def _assert_clean(text: str | bytes, env: dict[str, str], where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for needle in _needles(env):
        assert needle.encode() not in data, f"a secret leaked into {where}"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_never_appear_in_logs_files_or_process_args(fmt, env, tmp_path, sim, signals, wallet):
    env = {**env, "LOGLEVEL": "DEBUG", "LOG_FORMAT": fmt, "FRAC_HTTP_TIMEOUT": "0.5"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fractrade_sync"],
        env={**clean, **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert signals.wait_for_clients(1, timeout=20)
        with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
            _assert_clean(fh.read(), env, "the process arguments")
        sim.inject("500")
        frames = [
            trade_frame(),  # a 500 first, then a retry after the cloid check
            trade_frame(size="1000"),  # refused by the exchange: insufficient margin
            protect_frame("stop_loss"),
            trade_frame(symbol="NOPE"),
            {"type": "ACTION", "data": {"action_id": "x"}},
        ]
        for frame in frames:
            signals.push(frame)
        signals.push("{not json")
        wait_for(lambda: run_cli(["status", "--json"], env, tmp_path).stdout.count('"outcome"') >= 6, timeout=30)
        signals.drop_all()  # a reconnect, logged
        wait_for(lambda: signals.connections_total >= 2, timeout=10)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert b"DEBUG" in err or b'"level": "DEBUG"' in err  # the scenario really ran at DEBUG
    _assert_clean(out + err, env, "the service's output")
    for cmd in (["status"], ["status", "--json"], ["check"], ["health"], ["kill-switch"]):
        result = run_cli(cmd, env, tmp_path)
        _assert_clean(result.stdout + result.stderr, env, f"`{' '.join(cmd)}`")
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        _assert_clean(path.read_bytes(), env, str(path))
    assert json.loads(run_cli(["status", "--json"], env, tmp_path).stdout)["counts"]["rejected"] >= 3
    assert key_of(frames[0])


def test_secret_values_are_redacted_even_when_a_library_logs_them(env, capsys):
    import io
    import logging

    from fractrade_sync.logs import setup_logging

    stream = io.StringIO()
    handler = setup_logging("DEBUG", "text", [env["FRAC_USER_TOKEN"], env["HYPERLIQUID_PRIVATE_KEY"]], stream)
    try:
        logging.getLogger("some.library").debug("headers: Authorization: Token %s", env["FRAC_USER_TOKEN"])
        try:
            raise ValueError(f"bad key {env['HYPERLIQUID_PRIVATE_KEY'][2:]}")
        except ValueError:
            logging.getLogger("x").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "Token ***" in text and "bad key ***" in text
    _assert_clean(text, env, "the log")


# a script that sets up its own logging (DEBUG, to a file) before it builds the service
EMBEDDER = """
import logging, os, sys
logging.basicConfig(level=logging.DEBUG, filename=sys.argv[1], format="%(name)s %(levelname)s %(message)s")
from fractrade_sync.service import FractradeExecutor
service = FractradeExecutor.from_env(environ=os.environ).start()
sys.stdin.readline()  # until the test has seen the webhook's and the Bot API's calls
service.stop(timeout=5)
"""


def test_an_embedders_own_debug_logging_gets_no_secret(env, tmp_path, signals):
    """urllib3 logs each request line at DEBUG: the webhook's secret path, and behind a proxy the Bot API's URL with
    the token in it. A script's basicConfig(DEBUG) is not the CLI's handler: the secrets are redacted from it too."""
    token = f"{secrets.randbelow(10**9) + 10**8}:{secrets.token_urlsafe(26)}"
    chat, log = 4242, tmp_path / "embedder.log"
    with FakeBotAPI(token) as api:
        hook = Webhook()
        hook.url = hook.url.rsplit("/", 1)[0] + "/" + secrets.token_urlsafe(24)  # a Discord webhook's secret path
        port = api.url.rsplit(":", 1)[1]
        env = {**env, **api.env(chat), "FRAC_NOTIFY_URL": hook.url}
        # the Bot API through a proxy (so through requests and urllib3): the fake Bot API is its own proxy
        proxied = {"FRAC_TELEGRAM_API_URL": f"http://localhost:{port}", "HTTP_PROXY": api.url, "NO_PROXY": "127.0.0.1"}
        ours = ("FRAC_", "HYPERLIQUID_", "LOG", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(ours)}
        clean["PYTHONPATH"] = str(ROOT)  # this tree, whatever is installed
        command = [sys.executable, "-c", EMBEDDER, str(log)]
        pipes = {"stdin": subprocess.PIPE, "stderr": subprocess.PIPE}
        proc = subprocess.Popen(command, env={**clean, **env, **proxied}, cwd=tmp_path, **pipes)
        try:
            assert signals.wait_for_clients(1, timeout=20)
            signals.push(trade_frame())
            told = lambda: hook.events("outcome") and any("trade BUY" in t for t in api.texts(chat))  # noqa: E731
            wait_for(told, timeout=20, what="the outcome on the webhook and on Telegram")
            _, err = proc.communicate(b"\n", timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            hook.close()
    assert proc.returncode == 0, err.decode()
    text = log.read_text()
    # the request lines were logged, with the secrets taken out
    assert "/bot***/getMe" in text and "/bot***/sendMessage" in text, text
    assert '"POST *** HTTP/1.1" 204' in text, text
    _assert_clean(text + err.decode(), env, "the embedder's log")
    for secret in (token, token.split(":")[1], hook.url.rsplit("/", 1)[1]):
        assert secret not in text and secret not in err.decode()
