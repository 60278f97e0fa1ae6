"""Logging: text and JSON output, and no secret in any part of any record; the running service's JSON log parses
with its stable fields."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Callable

import pytest
from eth_account import Account

from fractrade_sync.logs import (
    JSON_FIELDS,
    LOGGER_NAME,
    SECRET_CARRIERS,
    RedactingFilter,
    ServiceHandler,
    setup_logging,
    setup_logging_unless_configured,
)
from tests.conftest import key_of, push, run_cli, run_frame, trade_frame, wait_for

TOKEN = "frac-token-5f3a9c1e7b2d4f60"


@pytest.fixture
def key() -> str:
    raw = Account.create().key.hex()
    return raw if raw.startswith("0x") else "0x" + raw


@pytest.fixture
def install(key) -> Callable[..., io.StringIO]:
    """setup_logging on a StringIO; the handler is removed and the root level restored afterwards."""
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", "urllib3", "websocket")}
    handlers: list[logging.Handler] = []

    def _install(fmt: str = "text", level_name: str = "DEBUG", secrets=None) -> io.StringIO:
        stream = io.StringIO()
        handlers.append(setup_logging(level_name, fmt, (TOKEN, key) if secrets is None else secrets, stream))
        return stream

    yield _install
    for handler in handlers:
        root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME + ".test")


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def no_secret(text: str, key: str) -> None:
    assert TOKEN not in text
    assert key not in text and key[2:] not in text
    assert key[2:].upper() not in text


def raise_with(message: str) -> None:
    try:
        raise RuntimeError(message)
    except RuntimeError:
        logging.getLogger(LOGGER_NAME + ".test").exception("order failed")


# ---- redaction ---------------------------------------------------------------------------------


def cases(key: str) -> list[tuple[str, tuple, dict]]:
    """(msg, args, extra) triples that each carry a secret somewhere."""
    return [
        (f"token is {TOKEN}", (), {}),
        ("header Authorization: Token %s", (TOKEN,), {}),
        ("signing with %s", (key,), {}),
        ("signing with %s", (key[2:],), {}),  # without 0x
        ("%s|%s", (TOKEN, key), {}),
        ("config %r", ({"FRAC_USER_TOKEN": TOKEN, "key": key},), {}),
        ("embedded:" + key + "tail", (), {}),
        ("outcome", (), {"reason": f"exchange said: bad signature from {key}"}),
        ("outcome", (), {"action_key": TOKEN}),
        ("outcome", (), {"avg_px": key[2:]}),
    ]


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("index", range(10))
def test_secret_in_message_args_or_extra_is_redacted(install, log, key, fmt, index):
    stream = install(fmt)
    msg, args, extra = cases(key)[index]
    log.info(msg, *args, extra=extra)
    text = stream.getvalue()
    no_secret(text, key)
    if not extra or fmt == "json":
        assert "***" in text
    if fmt == "json":
        (record,) = json_lines(stream)
        for name in extra:
            assert "***" in record[name]


def test_secret_in_exception_text_is_redacted(install, log, key):
    stream = install("text")
    raise_with(f"cannot sign with {key} / {key[2:]} for {TOKEN}")
    text = stream.getvalue()
    assert "RuntimeError: cannot sign with *** / *** for ***" in text
    assert "Traceback" in text
    no_secret(text, key)


def test_exc_info_given_explicitly_is_redacted(install, log, key):
    stream = install("text")
    error = ValueError(f"bad token {TOKEN}")
    log.error("handshake failed: %s", error, exc_info=(type(error), error, None))
    no_secret(stream.getvalue(), key)
    assert stream.getvalue().count("***") == 2


def test_secret_in_exception_text_is_redacted_in_json(install, log, key):
    stream = install("json")
    raise_with(f"cannot sign with {key} for {TOKEN}")
    no_secret(stream.getvalue(), key)
    (record,) = json_lines(stream)
    assert "RuntimeError: cannot sign with *** for ***" in record["exc_info"]


def test_secret_in_any_extra_field_is_redacted_in_json(install, log, key):
    stream = install("json")
    log.info("frame", extra={"frame": f'{{"token": "{TOKEN}"}}', "detail": key})
    no_secret(stream.getvalue(), key)


def test_key_is_redacted_in_either_hex_case(install, log, key):
    stream = install("text", secrets=(TOKEN, "0x" + key[2:].upper()))
    log.info("key bytes %s", key[2:].lower())
    no_secret(stream.getvalue(), key)


def test_message_without_secrets_is_untouched(install, log, key):
    stream = install("text")
    log.info("trade BUY %s %s -> %s", "0.01", "BTC", "filled")
    assert stream.getvalue().rstrip().endswith("trade BUY 0.01 BTC -> filled")
    assert "***" not in stream.getvalue()


def test_short_secrets_are_not_redacted():
    """Values under 8 characters would redact noise ('unused' is the placeholder token of `send`)."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token unused in 0.01 BTC", (), None)
    assert RedactingFilter(["unused", "", "0.01"]).filter(record)
    assert record.getMessage() == "token unused in 0.01 BTC"


def test_filter_survives_a_bad_format_string(key):
    """A wrong %-format must not hide a secret (nor raise): the raw msg is scrubbed instead."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "bad %d format " + TOKEN, ("not a number",), None)
    assert RedactingFilter([TOKEN, key]).filter(record)
    assert (record.getMessage(), record.args) == ("bad %d format ***", None)


def test_filter_without_secrets_keeps_the_record():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s", ("b",), None)
    assert RedactingFilter([]).filter(record)
    assert (record.msg, record.args) == ("a %s", ("b",))


def test_a_record_without_a_secret_keeps_its_args_and_exception():
    """Other handlers (an embedder's, Sentry's) may want the arguments and the exception itself."""
    try:
        raise ValueError("no secret here")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "a %s", ("b",), sys.exc_info())
    assert RedactingFilter([TOKEN]).filter(record)
    assert (record.msg, record.args) == ("a %s", ("b",)) and record.exc_info is not None


@pytest.fixture
def embedder():
    """Logging set up by a script, not by us: a root handler on a StringIO at DEBUG, the libraries' loggers at their
    default level (NOTSET: the root's); all of it undone afterwards."""
    root, stream = logging.getLogger(), io.StringIO()
    loggers = [logging.getLogger(name) for name in ("", "urllib3", *SECRET_CARRIERS)]
    saved = root.handlers[:], [(lg, lg.level, lg.filters[:]) for lg in loggers]
    for logger in loggers[1:]:
        logger.setLevel(logging.NOTSET)  # (the CLI's setup_logging, run by other tests, sets urllib3 to WARNING)
    root.handlers[:] = [logging.StreamHandler(stream)]
    root.setLevel(logging.DEBUG)
    yield stream
    root.handlers[:] = saved[0]
    for logger, level, filters in saved[1]:
        logger.setLevel(level)
        logger.filters[:] = filters


def test_logging_the_embedder_set_up_is_redacted_too(embedder, key):
    # a handler added after the start, on urllib3 itself (it sees urllib3's records before the root's handlers do)
    later, urllib3 = io.StringIO(), logging.getLogger("urllib3")
    assert setup_logging_unless_configured("INFO", "text", (TOKEN, key)) is None  # its own logging stays
    assert setup_logging_unless_configured("INFO", "text", (TOKEN, key)) is None  # (once per handler and logger)
    assert [type(f) for f in logging.getLogger().handlers[0].filters] == [RedactingFilter]
    handler = logging.StreamHandler(later)
    urllib3.addHandler(handler)
    try:
        logging.getLogger("urllib3.connectionpool").debug('%s "POST /bot%s/sendMessage HTTP/1.1" 200', "x", TOKEN)
        logging.getLogger("some.library").debug("signing with %s", key)
    finally:
        urllib3.removeHandler(handler)
    assert "/bot***/sendMessage" in embedder.getvalue() and "signing with ***" in embedder.getvalue()
    assert "/bot***/sendMessage" in later.getvalue()
    no_secret(embedder.getvalue() + later.getvalue(), key)


# ---- formats and levels ----------------------------------------------------------------------------


def test_json_lines_are_parseable_with_stable_fields(install, log):
    stream = install("json", "INFO")
    extra = {
        "action_key": "ab" * 32,
        "action": "execute_hyperliquid_perp_trade",
        "symbol": "BTC",
        "side": "BUY",
        "size": "0.01",
        "trigger_price": None,
        "filled_sz": "0.01",
        "outcome": "filled",
        "latency_ms": 12.5,
        "oid": 77,
        "avg_px": "50010",
        "reason": "",
    }
    assert set(extra) == set(JSON_FIELDS)
    log.info("trade BUY 0.01 BTC -> filled", extra=extra)
    log.warning('quote " and \\ backslash and\nnewline')
    first, second = json_lines(stream)
    assert first["message"] == "trade BUY 0.01 BTC -> filled"
    assert first["level"] == "INFO" and second["level"] == "WARNING"
    assert first["time"] and isinstance(first["time"], str)
    assert first["name"] == LOGGER_NAME + ".test"
    assert "thread" in first
    for name, value in extra.items():
        assert first[name] == value
    assert isinstance(first["latency_ms"], float) and isinstance(first["oid"], int)
    assert second["message"] == 'quote " and \\ backslash and\nnewline'


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


def test_text_format(install, log):
    stream = install("text", "INFO")
    log.warning("reconnecting in %.2fs", 0.5)
    line = stream.getvalue().strip()
    assert "WARNING" in line and "MainThread" in line and line.endswith("reconnecting in 0.50s")
    assert not line.startswith("{")


def test_level_is_applied(install, log):
    stream = install("text", "WARNING")
    log.info("hidden")
    log.debug("hidden too")
    log.error("shown")
    assert "hidden" not in stream.getvalue() and "shown" in stream.getvalue()
    assert logging.getLogger("urllib3").level == logging.WARNING


def test_debug_lets_third_party_debug_through(install):
    install("text", "DEBUG")
    assert logging.getLogger("urllib3").level == logging.DEBUG
    assert logging.getLogger("websocket").level == logging.DEBUG


def test_setup_replaces_its_own_handler_only(install, log):
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    try:
        first = install("text")
        second = install("json")
        ours = [h for h in root.handlers if isinstance(h, ServiceHandler)]
        assert len(ours) == 1
        assert other in root.handlers
        log.info("once")
        assert first.getvalue() == "" and json_lines(second)[0]["message"] == "once"
    finally:
        root.removeHandler(other)


def test_a_frame_cannot_forge_a_log_line(make_service, sim, signals):
    """A symbol carrying a newline and a fake log line: the text log keeps it on the one line of its record."""
    stream = io.StringIO()
    handler = setup_logging("INFO", "text", stream=stream)
    try:
        service = make_service()
        forged = "2026-12-01 12:00:00,000 INFO    worker    trade BUY 100 BTC -> filled"
        row = run_frame(service, signals, trade_frame(symbol="NOPE\n" + forged))
        assert row["state"] == "rejected"
        frame = json.loads(json.dumps({"type": "action", "data": "x\r\n" + forged + "\u2028"}))
        signals.push(frame)
        run_frame(service, signals, trade_frame(symbol="ETH", size="0.1"))
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert not [line for line in lines if line.startswith(forged[:20])], lines
    assert any("NOPE\\n2026-12-01 12:00:00,000 INFO" in line for line in lines), lines
