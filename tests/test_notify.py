"""The webhook notifier against a real local HTTP server: payload, retries, never blocking, end to end."""

from __future__ import annotations

import http.server
import json
import threading
import time
from decimal import Decimal

import pytest

from fractrade_sync.actions import TRADE, Action
from fractrade_sync.channels.notify import Notifier
from fractrade_sync.outcome import FILLED, OUTCOME_FIELDS, Outcome
from tests.conftest import key_of, trade_frame, wait_for

FIELDS = {"text", "content", "event", "account", *OUTCOME_FIELDS}  # the outcome's fields, listed once


class Webhook:
    """A local webhook: records each JSON body; answers with scripted statuses; can hang until released."""

    def __init__(self):
        self.posts: list[dict] = []
        self.statuses: list[int] = []  # consumed one per request; 204 (Discord's answer) when empty
        self.requests = 0
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner._lock:
                    owner.requests += 1
                    status = owner.statuses.pop(0) if owner.statuses else 204
                owner.release.wait(30)
                if 200 <= status < 300:
                    with owner._lock:
                        owner.posts.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/webhooks/1/test"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def events(self, event: str) -> list[dict]:
        with self._lock:
            return [p for p in self.posts if p["event"] == event]

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def notifiers():
    made: list[Notifier] = []

    def make(url: str, **kwargs) -> Notifier:
        notifier = Notifier(url, "0x" + "ab" * 20, **kwargs)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.stop(timeout=2)


def _action(size="0.01") -> Action:
    return Action(
        action_id=TRADE,
        symbol="BTC",
        side="BUY",
        size=Decimal(size),
        reduce_only=False,
        trigger_price=None,
        event_id="ev-1",
        timestamp=time.time(),
        leverage=None,
        ref_price=None,
        server_execution=False,
        received_at=time.time(),
    )


def test_an_outcome_posts_one_json_with_the_fields(webhook, notifiers):
    notifier = notifiers(webhook.url).start()
    outcome = Outcome(FILLED, oid=42, filled_sz="0.01", avg_px="50010.0", latency_ms=12.345)
    notifier.outcome(_action(), outcome)
    wait_for(lambda: webhook.posts, what="the webhook post")
    notifier.stop(timeout=2)
    assert len(webhook.posts) == 1
    post = webhook.posts[0]
    assert set(post) == FIELDS
    assert post["text"] == post["content"] and "\n" not in post["text"]
    assert "trade BUY 0.01 BTC -> filled" in post["text"] and "oid 42" in post["text"]
    assert post["event"] == "outcome" and post["outcome"] == FILLED
    assert (post["action"], post["symbol"], post["side"], post["size"]) == (TRADE, "BTC", "BUY", "0.01")
    assert (post["oid"], post["avg_px"], post["latency_ms"]) == (42, "50010.0", 12.3)
    assert post["account"] == "0x" + "ab" * 20 and post["reason"] is None
    assert notifier.sent == 1 and notifier.failed == 0


def test_a_failing_webhook_is_retried(webhook, notifiers):
    webhook.statuses = [500, 200]
    notifier = notifiers(webhook.url).start()
    notifier.connection(False, "lost")
    wait_for(lambda: notifier.sent == 1, what="delivery after one retry")
    assert webhook.requests == 2
    assert webhook.posts[0]["event"] == "connection" and webhook.posts[0]["outcome"] == "down"


def test_a_webhook_that_keeps_failing_is_given_up_after_three_attempts(webhook, notifiers, caplog):
    webhook.statuses = [503, 503, 503, 204]
    notifier = notifiers(webhook.url).start()
    notifier.outcome(_action(), Outcome("rejected", reason="Order must have minimum value of $10."))
    wait_for(lambda: notifier.failed == 1, what="giving up")
    assert webhook.requests == 3 and webhook.posts == []
    notifier.outcome(_action("0.02"), Outcome(FILLED))  # the next one still goes through
    wait_for(lambda: notifier.sent == 1, what="the next delivery")
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("fractrade_sync")]
    assert any("HTTP 503" in m for m in ours)
    assert not any("/api/webhooks" in m for m in ours)  # the URL's path holds the webhook's token


def test_a_client_error_is_not_retried(webhook, notifiers):
    webhook.statuses = [404]
    notifier = notifiers(webhook.url).start()
    notifier.connection(True, "recovered")
    wait_for(lambda: notifier.failed == 1, what="giving up")
    assert webhook.requests == 1


def test_a_hanging_webhook_never_blocks_the_caller_and_the_queue_stays_bounded(webhook, notifiers, caplog):
    webhook.release.clear()  # the server takes requests and answers none of them
    notifier = notifiers(webhook.url, max_queue=10).start()
    notifier.outcome(_action("0.001"), Outcome(FILLED))
    wait_for(lambda: webhook.requests == 1, what="the first post to hang")
    returned = 0
    for i in range(50):
        notifier.outcome(_action(f"0.{i + 100}"), Outcome(FILLED))
        returned += 1
    assert returned == 50
    assert notifier.pending == 10 and notifier.dropped == 40
    assert "dropping the oldest" in caplog.text
    webhook.release.set()
    wait_for(lambda: notifier.sent == 11, what="the hung post and the 10 newest")
    sizes = [p["size"] for p in webhook.posts]
    assert sizes[0] == "0.001" and sizes[1:] == [f"0.{i + 100}" for i in range(40, 50)]


def test_stop_is_bounded_when_the_webhook_hangs(webhook, notifiers, caplog):
    webhook.release.clear()
    notifier = notifiers(webhook.url).start()
    for _ in range(3):
        notifier.outcome(_action(), Outcome(FILLED))
    wait_for(lambda: webhook.requests == 1, what="the first post to hang")
    notifier.stop(timeout=0.2)
    assert notifier.pending == 2  # what was left is reported, not silently lost
    assert "not sent before shutdown" in caplog.text
    notifier.outcome(_action(), Outcome(FILLED))  # after stop: ignored, never raises
    assert notifier.pending == 2


def test_a_refused_connection_never_raises(notifiers, caplog):
    notifier = notifiers("http://127.0.0.1:9/hook").start()  # the discard port: nothing listens
    notifier.outcome(_action(), Outcome(FILLED))
    wait_for(lambda: notifier.failed == 1, timeout=15, what="giving up on a dead host")
    assert "network error" in caplog.text


def test_service_posts_outcomes_and_connection_changes(webhook, make_service, signals, env):
    service = make_service(FRAC_NOTIFY_URL=webhook.url)
    frame = trade_frame()
    signals.push(frame)
    outcomes = wait_for(lambda: webhook.events("outcome"), what="the filled outcome on the webhook")
    post = outcomes[0]
    assert post["outcome"] == FILLED and post["symbol"] == "BTC" and post["side"] == "BUY"
    assert post["oid"] is not None and post["avg_px"] and post["latency_ms"] is not None
    assert post["account"] == service.settings.account_address
    assert service.journal.get(key_of(frame))["state"] == FILLED

    signals.drop_all()
    changes = wait_for(
        lambda: [p["outcome"] for p in webhook.events("connection")] == ["down", "up"],
        timeout=15,
        what="connection lost, then recovered",
    )
    assert changes
    secrets = (env["HYPERLIQUID_PRIVATE_KEY"], env["HYPERLIQUID_PRIVATE_KEY"][2:], env["FRAC_USER_TOKEN"])
    bodies = json.dumps(webhook.posts)
    assert not any(secret in bodies for secret in secrets)
