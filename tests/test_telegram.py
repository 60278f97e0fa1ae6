"""The Telegram bot over real sockets against the local Bot API (fractrade_sync/sim/botapi.py): outcomes and events as
lines, bursts folded, a slow or failing Telegram never felt by the caller, 429 honoured, commands from the configured
chat only, the token in no log line, a bounded stop; and its three settings. Every token is made at test time."""

from __future__ import annotations

import logging
import re
import secrets
import socket
import statistics
import time
from decimal import Decimal
from urllib.parse import quote

import pytest
from eth_account import Account

from fractrade_sync.actions import TRADE, Action
from fractrade_sync.channels.telegram import MAX_TEXT, TelegramBot
from fractrade_sync.channels.texts import fold
from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.errors import ConfigError
from fractrade_sync.outcome import FILLED, REJECTED, Outcome
from fractrade_sync.sim.botapi import FakeBotAPI
from tests.conftest import redacted_log, wait_for


def new_token() -> str:
    return f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(26)}"


@pytest.fixture
def token() -> str:
    return new_token()


@pytest.fixture
def chat() -> int:
    return secrets.randbelow(10**9) + 10**6


def base_env() -> dict[str, str]:
    account = Account.create()
    key = account.key.hex()
    return {
        "FRAC_WS_URL": "wss://app.fractrade.xyz/ws/executor/",
        "FRAC_USER_TOKEN": "tk-" + secrets.token_urlsafe(24),
        "HYPERLIQUID_PRIVATE_KEY": key if key.startswith("0x") else "0x" + key,
        "HYPERLIQUID_PUBLIC_ADDRESS": account.address,
    }


def settings_for(url: str, token: str, chat: int):
    env = {"FRAC_TELEGRAM_TOKEN": token, "FRAC_TELEGRAM_CHAT_ID": str(chat), "FRAC_TELEGRAM_API_URL": url}
    return settings_from_mapping({**base_env(), **env})  # what FakeBotAPI.env(chat) gives, with any url and token


@pytest.fixture
def api(token):
    with FakeBotAPI(token) as server:
        yield server


@pytest.fixture
def bots():
    made: list[TelegramBot] = []

    def make(settings, commands=None, **kwargs) -> TelegramBot:
        bot = TelegramBot(settings, commands, **kwargs)
        made.append(bot)
        return bot.start()

    yield make
    for bot in made:
        bot.stop(timeout=2)


def action(size: str = "0.01") -> Action:
    return Action(
        action_id=TRADE,
        symbol="BTC",
        side="BUY",
        size=Decimal(size),
        reduce_only=False,
        trigger_price=None,
        event_id=secrets.token_hex(4),
        timestamp=time.time(),
        leverage=None,
        ref_price=None,
        server_execution=False,
        received_at=time.time(),
    )


def lines_in(api: FakeBotAPI, chat: int) -> list[str]:
    return [line for text in api.texts(chat) for line in text.split("\n")]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on exit: connecting to it is refused


# ---- outgoing: lines, folding, never waiting ---------------------------------------------------


def test_outcomes_and_events_arrive_as_lines(api, bots, token, chat):
    bot = bots(settings_for(api.url, token, chat))
    bot.outcome(action(), Outcome(FILLED, oid=42, filled_sz="0.01", avg_px="50010.0", latency_ms=12.3))
    bot.outcome(action("0.02"), Outcome(REJECTED, reason="Order must have minimum value of $10."))
    bot.event("connection to Fractrade lost;\n  reconnecting")
    wait_for(lambda: len(lines_in(api, chat)) >= 3, what="three lines")
    assert lines_in(api, chat) == [
        "trade BUY 0.01 BTC -> filled 0.01 @ 50010.0, 12 ms",
        "trade BUY 0.02 BTC -> rejected: Order must have minimum value of $10.",
        "connection to Fractrade lost; reconnecting",
    ]
    assert {m["chat_id"] for m in api.messages} == {chat} and bot.failed == 0


def test_a_burst_of_50_outcomes_arrives_in_at_most_3_messages(api, bots, token, chat):
    bot = bots(settings_for(api.url, token, chat))
    sizes = [f"{i}.5" for i in range(1, 51)]
    for size in sizes:
        bot.outcome(action(size), Outcome(FILLED, filled_sz=size, avg_px="50000"))
    wait_for(lambda: len(lines_in(api, chat)) >= 50, what="all 50 lines")
    assert lines_in(api, chat) == [f"trade BUY {s} BTC -> filled {s} @ 50000" for s in sizes]  # each once, in order
    assert 1 <= len(api.texts(chat)) <= 3, api.texts(chat)


def test_a_burst_too_long_for_one_message_is_cut_with_a_count(api, bots, token, chat):
    bot = bots(settings_for(api.url, token, chat))
    for i in range(200):
        bot.event(f"event {i:03d} " + "x" * 100)

    def accounted() -> tuple[list[str], int]:
        counted = [int(m.group(1)) for t in api.texts(chat) if (m := re.search(r"\n… and (\d+) more$", t))]
        return [line for line in lines_in(api, chat) if line.startswith("event ")], sum(counted)

    wait_for(
        lambda: len(accounted()[0]) + accounted()[1] == 200 and bot.dropped == accounted()[1],
        what="every event shown or counted in '… and N more'",
    )
    shown, counted = accounted()
    assert counted > 0 and all(len(t) <= MAX_TEXT for t in api.texts(chat))
    numbers = [int(line.split()[1]) for line in shown]
    assert numbers == sorted(set(numbers)) and numbers[0] == 0  # the oldest first, in order, none twice


def test_fold_keeps_to_the_limit_and_counts_the_rest():
    assert fold(["a", "b"], MAX_TEXT) == ("a\nb", 0)
    text, left = fold(["y" * 50] * 1000, MAX_TEXT)
    assert len(text) <= MAX_TEXT and text.endswith(f"\n… and {left} more") and left == 1000 - text.count("y" * 50)
    text, left = fold(["z" * 3500, "z" * 1000], MAX_TEXT)
    assert (text, left) == ("z" * 3500 + "\n… and 1 more", 1)


@pytest.mark.parametrize("trouble", ["slow", "500", "unreachable"])
def test_a_slow_or_failing_telegram_never_delays_the_caller(api, bots, token, chat, trouble):
    url = f"http://127.0.0.1:{closed_port()}" if trouble == "unreachable" else api.url
    if trouble == "slow":
        api.latency["sendMessage"] = 5.0
    elif trouble == "500":
        api.fail(500, "sendMessage", times=1000)
    bot = bots(settings_for(url, token, chat))
    bot.event("first")
    if trouble != "unreachable":  # a send is in flight (slow) or has failed (500) before we measure
        wait_for(lambda: api.started["sendMessage"] >= 1, what="the first send")
    took = []
    for i in range(100):
        started = time.perf_counter()
        bot.outcome(action(f"0.{i + 1:03d}"), Outcome(FILLED, filled_sz="0.01", avg_px="50000", latency_ms=3))
        took.append(time.perf_counter() - started)
    # the send takes 5 s (or fails): each call returns a small fraction of that, typically in microseconds
    assert max(took) < 0.25, f"slowest outcome() call {max(took):.3f} s"
    assert statistics.median(took) < 0.01, f"median outcome() call {statistics.median(took):.4f} s"
    assert bot.pending >= 1


def test_flood_control_429_waits_as_long_as_telegram_says(api, bots, token, chat, caplog):
    api.fail(429, "sendMessage", retry_after=2)
    bot = bots(settings_for(api.url, token, chat))
    bot.event("after the flood")
    wait_for(lambda: api.texts(chat), timeout=10, what="delivery after retry_after")
    calls = api.calls("sendMessage")
    assert [status for _, status in calls] == [429, 200]
    assert calls[1][0] - calls[0][0] >= 2.0 - 0.05, "asked again before retry_after"
    assert api.texts(chat) == ["after the flood"]
    wait_for(lambda: bot.sent == 1, what="the answer taken")
    assert any("429" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_server_error_is_backed_off_and_delivered(api, bots, token, chat):
    api.fail(502, "sendMessage", times=2)
    bot = bots(settings_for(api.url, token, chat), fold_window=0.05)  # the gaps are the backoff's alone
    bot.event("eventually")
    wait_for(lambda: api.texts(chat), timeout=10, what="delivery after two 502s")
    calls = api.calls("sendMessage")
    assert [status for _, status in calls] == [502, 502, 200]
    gaps = [calls[1][0] - calls[0][0], calls[2][0] - calls[1][0]]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0, gaps  # 1 s then 2 s, each shortened by at most half (jitter)
    wait_for(lambda: bot.sent == 1, what="the answer taken")


def test_a_refused_message_is_not_retried_and_warned_about_once(api, bots, token, chat, caplog):
    api.fail(403, "sendMessage", times=2)
    bot = bots(settings_for(api.url, token, chat))
    bot.event("refused one")
    wait_for(lambda: bot.failed == 1, what="the first refusal")
    bot.event("refused two")
    wait_for(lambda: bot.failed == 2, what="the second refusal")
    bot.event("delivered")
    wait_for(lambda: api.texts(chat), what="the next message")
    assert api.texts(chat) == ["delivered"]  # the refused ones were never asked again
    assert [status for _, status in api.calls("sendMessage")] == [403, 403, 200]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.getMessage()]
    assert len(warned) == 1 and "403: Forbidden: bot was blocked by the user" in warned[0], warned


# ---- incoming: commands from the configured chat only ------------------------------------------


@pytest.fixture
def commanded(api, bots, token, chat):
    """A bot with three commands; `runs` lists the commands run."""
    runs: list[str] = []

    def pause() -> str:
        runs.append("pause")
        return "paused: the kill switch is on"

    def status() -> str:
        runs.append("status")
        return "running\n2 positions"

    def resume() -> str:
        raise RuntimeError("the kill switch file is not writable")

    bot = bots(settings_for(api.url, token, chat), {"status": status, "pause": pause, "resume": resume})
    wait_for(lambda: api.polls_waiting, what="a long poll")
    return bot, runs


def test_commands_from_the_configured_chat_run_and_are_answered(api, commanded, chat):
    bot, runs = commanded
    api.say(chat, "/pause")
    wait_for(lambda: "paused: the kill switch is on" in lines_in(api, chat), what="the /pause reply")
    api.say(chat, f"/status@{api.username} now")
    wait_for(lambda: "2 positions" in lines_in(api, chat), what="the /status reply")
    api.say(chat, "/status@SomeOtherBot")  # for another bot in the group: not ours
    api.say(chat, "/help")
    api.say(chat, "/frobnicate")
    wait_for(
        lambda: any(line.startswith("unknown command /frobnicate") for line in lines_in(api, chat)),
        what="the unknown command's reply",
    )
    wait_for(lambda: api.polls_waiting, what="the next long poll")  # each update confirmed, none seen twice
    assert runs == ["pause", "status"]
    lines = lines_in(api, chat)
    assert "commands: /pause /resume /status /help" in lines
    assert "unknown command /frobnicate; commands: /pause /resume /status /help" in lines
    assert lines.count("running") == 1


def test_a_failing_command_is_answered_and_logged(api, commanded, chat, caplog):
    api.say(chat, "/resume")
    wait_for(lambda: any("/resume failed" in line for line in lines_in(api, chat)), what="the failure's reply")
    assert "/resume failed (RuntimeError); see the service's log" in lines_in(api, chat)
    failed = [r for r in caplog.records if r.getMessage() == "telegram: /resume failed"]
    assert failed and failed[0].levelno == logging.ERROR and failed[0].exc_info is not None


def test_another_chat_is_ignored_with_a_warning_naming_only_the_chat(api, commanded, chat, caplog):
    bot, runs = commanded
    stranger, words = chat + 1, secrets.token_hex(8)
    api.say(stranger, f"/pause {words}")
    api.say(-stranger, "/status")
    api.say(chat, "/help")  # once answered, the strangers' messages have been handled
    wait_for(lambda: "commands: /pause /resume /status /help" in lines_in(api, chat), what="the /help reply")
    assert runs == [] and api.texts(stranger) == [] and api.texts(-stranger) == []
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "ignored" in r.getMessage()]
    assert len(warned) == 2 and str(stranger) in warned[0] and str(-stranger) in warned[1], warned
    assert words not in caplog.text


def test_a_command_sent_long_ago_is_not_run(api, commanded, chat):
    bot, runs = commanded
    api.say(chat, "/pause", date=time.time() - 3600)
    wait_for(lambda: any(line.startswith("/pause not run") for line in lines_in(api, chat)), what="the refusal")
    assert runs == []


@pytest.mark.parametrize("frame", ["not json", "[1,2]", '"a string"', '{"type": "ACTION", "data": []}'])
def test_status_lists_a_rejected_frame_that_names_no_action_with_its_reason(api, make_service, signals, chat, frame):
    """A frame that is not a JSON object (or names no action) is journaled rejected with no action id nor symbol:
    /status shows it among the last actions, with its reason, instead of failing."""
    service = make_service(**api.env(chat))
    signals.push(frame)
    (row,) = wait_for(lambda: [r for r in service.journal.recent(5) if r["state"] == "rejected"], what="the reject")
    assert row["action_id"] is None and row["symbol"] is None and row["reason"]  # a real row, as /status reads it
    api.say(chat, "/status")
    replied = ("Fractrade: ", "/status failed")
    wait_for(lambda: any(line.startswith(replied) for line in lines_in(api, chat)), what="the /status reply")
    lines = lines_in(api, chat)
    assert not any(line.startswith("/status failed") for line in lines), lines
    assert f"frame: rejected ({' '.join(row['reason'].split())[:80]})" in lines, lines


# ---- the token in no log line; a bounded stop --------------------------------------------------


@pytest.mark.parametrize("trouble", ["unreachable", "401", "wrong token", "proxy unreachable"])
def test_the_token_never_reaches_a_log_line(api, bots, token, chat, caplog, monkeypatch, trouble):
    caplog.set_level(logging.DEBUG)
    url = api.url
    if trouble == "unreachable":
        url = f"http://127.0.0.1:{closed_port()}"
    elif trouble == "401":
        api.fail(401, times=1000)
    elif trouble == "wrong token":
        api.quote_path = True  # its 404 page quotes the path: /bot<token>/sendMessage
    else:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")  # requests' errors quote the URL
        monkeypatch.setenv("NO_PROXY", "")
    used = new_token() if trouble == "wrong token" else token
    bot = bots(settings_for(url, used, chat))
    bot.event("x")
    expected = {
        "unreachable": "network error",
        "401": "401: Unauthorized",
        "wrong token": "404: Not Found",
        "proxy unreachable": "network error",
    }[trouble]
    wait_for(
        lambda: any(expected in r.getMessage() and "sendMessage" in r.getMessage() for r in caplog.records),
        what=f"the warning ({expected})",
    )
    wait_for(
        lambda: any(expected in r.getMessage() and "get" in r.getMessage() for r in caplog.records),
        what=f"the poll's warning ({expected})",
    )
    bot.stop(timeout=2)
    secret = used.split(":", 1)[1]
    records = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for text in (caplog.text, records):
        assert secret not in text and quote(used, safe="") not in text
    if trouble == "wrong token":
        assert "Not Found: /bot***/" in caplog.text  # Telegram's description is logged, its token scrubbed


def test_the_token_joins_the_secrets_every_log_line_is_scrubbed_of(token, chat):
    settings = settings_for("https://api.telegram.org", token, chat)
    assert token in settings.secrets and token not in repr(settings)
    with redacted_log(settings.secrets, "test_telegram.redaction") as (log, stream):
        # what urllib3 logs at DEBUG behind a proxy: the request line, token and all
        log.warning('"POST /bot%s/sendMessage HTTP/1.1" 200 233', token)
    assert token.split(":")[1] not in stream.getvalue() and "/bot***/sendMessage" in stream.getvalue()


def test_stop_is_bounded_with_a_poll_held_and_a_send_hanging(api, bots, token, chat):
    bot = bots(settings_for(api.url, token, chat))
    wait_for(lambda: api.polls_waiting, what="a long poll held (25 s)")
    started = time.monotonic()
    bot.stop(timeout=5)  # nothing queued: ends at once, the long poll cut
    assert time.monotonic() - started < 1.0
    assert not bot._poller.is_alive() and not bot._sender.is_alive()

    api.latency["sendMessage"] = 30.0
    bot = bots(settings_for(api.url, token, chat))
    wait_for(lambda: api.polls_waiting, what="a long poll held")
    bot.event("hangs")
    wait_for(lambda: api.started["sendMessage"] >= 1, what="a send in flight")
    started = time.monotonic()
    bot.stop(timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert not bot._poller.is_alive() and not bot._sender.is_alive()
    bot.outcome(action(), Outcome(FILLED))  # after stop: returns, queues nothing
    assert bot.pending == 1  # the line that never got through, said at WARNING


# ---- the three settings --------------------------------------------------------------------------


def test_the_fake_bot_api_env_points_a_bot_at_it(api, bots, chat):
    bot = bots(settings_from_mapping({**base_env(), **api.env(chat)}))
    bot.event("hello")
    wait_for(lambda: api.texts(chat) == ["hello"], what="the message")


def test_the_settings_turn_telegram_on_with_both(token, chat):
    s = settings_from_mapping({**base_env(), "FRAC_TELEGRAM_TOKEN": token, "FRAC_TELEGRAM_CHAT_ID": f" -100{chat} "})
    assert s.telegram_token.reveal() == token and str(s.telegram_token) == "***"
    assert s.telegram_chat_id == int(f"-100{chat}") and s.telegram_api_url == "https://api.telegram.org"
    off = settings_from_mapping(base_env())
    assert (off.telegram_token, off.telegram_chat_id) == (None, None)
    with pytest.raises(ValueError, match="Telegram is off"):
        TelegramBot(off, {})
    local = settings_from_mapping(
        {
            **base_env(),
            "FRAC_TELEGRAM_TOKEN": token,
            "FRAC_TELEGRAM_CHAT_ID": str(chat),
            "FRAC_TELEGRAM_API_URL": "http://localhost:8081/",
        }
    )
    assert local.telegram_api_url == "http://localhost:8081"


@pytest.mark.parametrize(
    "present, missing",
    [("FRAC_TELEGRAM_TOKEN", "FRAC_TELEGRAM_CHAT_ID"), ("FRAC_TELEGRAM_CHAT_ID", "FRAC_TELEGRAM_TOKEN")],
)
def test_one_without_the_other_names_the_missing_one(token, chat, present, missing):
    value = token if present == "FRAC_TELEGRAM_TOKEN" else str(chat)
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({**base_env(), present: value})
    assert caught.value.variable == missing and "is not set" in str(caught.value)
    assert token.split(":")[1] not in str(caught.value)


def bad_tokens(token: str) -> list[str]:
    bot_id, secret = token.split(":")
    return [
        secret,
        f"{bot_id}:{secret[:20]}",
        f"{bot_id}:{secret} ",
        f"bot{token}",
        f"{bot_id}:{secret}!x",
        f"{bot_id} {secret}",
        f"https://api.telegram.org/bot{token}/getMe",
    ]


def test_a_malformed_token_is_refused_without_being_shown(token, chat):
    for bad in bad_tokens(token):
        env = {**base_env(), "FRAC_TELEGRAM_TOKEN": bad, "FRAC_TELEGRAM_CHAT_ID": str(chat)}
        if bad.strip() == token:
            continue  # surrounding spaces are forgiven
        with pytest.raises(ConfigError) as caught:
            settings_from_mapping(env)
        assert caught.value.variable == "FRAC_TELEGRAM_TOKEN", bad
        secret, message = token.split(":")[1].lower(), str(caught.value).lower()
        assert not any(secret[i : i + 8] in message for i in range(len(secret) - 7)), message


@pytest.mark.parametrize("bad", ["0", "abc", "12.5", "@mychannel", "1" * 17, "--5", "TOKEN"])
def test_a_bad_chat_id_is_refused_and_a_pasted_token_not_shown(token, bad):
    bad = token if bad == "TOKEN" else bad
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({**base_env(), "FRAC_TELEGRAM_TOKEN": token, "FRAC_TELEGRAM_CHAT_ID": bad})
    assert caught.value.variable == "FRAC_TELEGRAM_CHAT_ID" and "is not a chat id" in str(caught.value)
    assert token.split(":")[1][:8] not in str(caught.value)


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://api.example.com", "http:// is only allowed for localhost"),
        ("ftp://api.telegram.org", "is not an http(s) URL"),
    ],
)
def test_the_api_url_is_https_off_localhost(token, chat, url, problem):
    env = {**base_env(), "FRAC_TELEGRAM_TOKEN": token, "FRAC_TELEGRAM_CHAT_ID": str(chat), "FRAC_TELEGRAM_API_URL": url}
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(env)
    assert caught.value.variable == "FRAC_TELEGRAM_API_URL" and problem in str(caught.value)


def test_api_url_credentials_are_secrets(token, chat):
    password = secrets.token_urlsafe(12)
    s = settings_for(f"https://bot:{password}@tg.example.com", token, chat)
    assert password in s.secrets and password not in repr(s)
