"""The operator's channels on a running service, over real sockets: Telegram (the fake Bot API), the status endpoint
(a Prometheus scrape), the kill switch from a phone; a slow webhook or a slow Telegram never delays an action."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fractrade_sync.sim.botapi import FakeBotAPI
from tests.conftest import protect_frame, run_frame, trade_frame, wait_for

CHAT = 424242


@pytest.fixture
def bot():
    token = f"{secrets.randbelow(10**9) + 10**8}:{secrets.token_urlsafe(26)}"
    with FakeBotAPI(token) as api:
        yield api


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_telegram_and_a_prometheus_scrape_show_what_the_service_does(make_service, sim, signals, wallet, bot):
    port = _free_port()
    service = make_service(FRAC_STATUS_ADDR=f"127.0.0.1:{port}", **bot.env(CHAT))
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    wait_for(
        lambda: any("stop_loss" in t for t in bot.texts(CHAT)),
        what="the outcomes on Telegram",
    )
    assert any("trade BUY 0.02 BTC -> filled" in t for t in bot.texts(CHAT)), bot.texts(CHAT)
    status, body = _get(f"http://127.0.0.1:{port}/health")
    assert status == 200 and json.loads(body)["connected"] is True
    status, text = _get(f"http://127.0.0.1:{port}/metrics")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("fractrade_actions_total", (("kind", "trade"), ("outcome", "filled")))] == 1
    assert samples[("fractrade_actions_total", (("kind", "stop_loss"), ("outcome", "resting")))] == 1
    assert samples[("fractrade_frame_to_answer_seconds_count", ())] == 2
    assert any(name == "fractrade_exchange_requests_total" and ("type", "order") in labels for name, labels in samples)
    signals.drop_all()  # the connection lost and back: said on Telegram
    wait_for(lambda: any("Fractrade connection restored" in t for t in bot.texts(CHAT)), what="reconnect said")


def test_pause_and_resume_from_the_configured_chat_only(make_service, sim, signals, wallet, bot, caplog):
    service = make_service(**bot.env(CHAT))
    run_frame(service, signals, trade_frame(size="0.02"))
    bot.say(CHAT + 1, "/pause")  # another chat: ignored
    bot.say(CHAT, "/pause")
    wait_for(lambda: any(t.startswith("kill switch ON") for t in bot.texts(CHAT)), what="the /pause reply")
    assert service.settings.paths.kill_switch.exists()
    assert bot.texts(CHAT + 1) == []
    assert "424243" in caplog.text  # logged at WARNING by chat id
    row = run_frame(service, signals, trade_frame(size="0.01"))
    assert row["state"] == "rejected" and row["reason"].startswith("kill switch is on")
    bot.say(CHAT, "/status")
    wait_for(lambda: any("positions: BTC 0.02" in t for t in bot.texts(CHAT)), what="the /status reply")
    bot.say(CHAT, "/resume")
    wait_for(lambda: any(t.startswith("kill switch off") for t in bot.texts(CHAT)), what="the /resume reply")
    assert run_frame(service, signals, trade_frame(size="0.01"))["state"] == "filled"


def test_the_kill_switch_set_elsewhere_is_said_on_telegram(make_service, sim, signals, wallet, bot):
    service = make_service(**bot.env(CHAT))
    service.settings.paths.kill_switch.write_text("from the CLI\n")
    wait_for(
        lambda: any("kill switch ON: opening trades are refused" in t for t in bot.texts(CHAT)),
        what="the kill switch said",
    )


def test_a_port_in_use_fails_the_start_before_anything_opens(make_service, env):
    from fractrade_sync.errors import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="already in use"):
            make_service(FRAC_STATUS_ADDR=f"127.0.0.1:{port}", wait=False)


def test_the_demo_shows_on_a_telegram_chat_and_a_prometheus_scrape(bot, caplog):
    """README: point `demo` at a chat and a scrape with FRAC_TELEGRAM_* and FRAC_STATUS_ADDR."""
    import io
    import threading

    from fractrade_sync.sim.demo import run_demo

    port = _free_port()
    out, seen, result = io.StringIO(), [], []
    environ = {**bot.env(CHAT), "FRAC_STATUS_ADDR": f"127.0.0.1:{port}"}
    demo = threading.Thread(target=lambda: result.append(run_demo(quiet=True, out=out, environ=environ)))
    demo.start()

    def scraped() -> bool:
        status, text = _get(f"http://127.0.0.1:{port}/metrics") if _listening(port) else (0, "")
        if status == 200:
            seen.append(
                sum(
                    s.value
                    for f in text_string_to_metric_families(text)
                    if f.name == "fractrade_actions"
                    for s in f.samples
                    if s.name == "fractrade_actions_total"
                )
            )
        return bool(seen) and seen[-1] >= 3

    wait_for(scraped, timeout=30, interval=0.1, what="the demo's actions in a scrape")
    demo.join(60)
    assert result == [0], out.getvalue()
    assert f"demo: status endpoint http://127.0.0.1:{port}/metrics" in out.getvalue()
    texts = bot.texts(CHAT)
    assert any("-> filled" in t for t in texts) and any("-> resting" in t for t in texts), texts


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


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
