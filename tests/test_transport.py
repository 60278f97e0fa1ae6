"""The exchange connection (KeptAliveChannel, ProxyChannel): one persistent connection, reconnects, what each failure
means (exchange/delivery.py), keep-warm."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.errors import NothingApplied, NotSent, TransientError
from fractrade_sync.exchange.client import HyperliquidClient
from fractrade_sync.exchange.delivery import HttpRefused, NoAnswer, NotTaken, post_once
from fractrade_sync.exchange.transport import KeptAliveChannel, ProxyChannel, compact_json


class _Closing(BaseHTTPRequestHandler):
    """Answers every POST, then closes the connection (as a server does with an idle keep-alive)."""

    protocol_version = "HTTP/1.1"
    connections: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        _Closing.connections.append(self.client_address)
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def closing_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Closing)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _Closing.connections = []
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_closed_connection_is_reopened_for_the_next_request(closing_server):
    channel = KeptAliveChannel(f"http://127.0.0.1:{closing_server.server_address[1]}", 1.0, 1.0)
    for _ in range(3):
        assert channel.post("/exchange", {"a": 1}) == (200, b'{"status":"ok"}')
    assert len({port for _, port in _Closing.connections}) == 3  # a new connection each time the server closed
    channel.close()


def test_nothing_listening_is_not_sent():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    channel = KeptAliveChannel(f"http://127.0.0.1:{port}", 0.5, 0.5)
    with pytest.raises(NotSent):
        channel.post("/exchange", {})


def test_client_maps_a_refused_connection_to_nothing_applied(env, sim):
    settings = settings_from_mapping({**env, "HYPERLIQUID_API_URL": sim.url})
    client = HyperliquidClient(settings)
    sim.stop()  # nothing listens any more
    with pytest.raises(NothingApplied):
        client.endpoint.post({"action": {}, "nonce": 1, "signature": {}})


def test_keep_warm_uses_the_order_connection_only_when_idle(env, sim):
    client = HyperliquidClient(settings_from_mapping(env))
    client.prepare()
    before = sim.request_count("/info")
    client.keep_warm()  # just used: nothing sent
    assert sim.request_count("/info") == before
    client.keep_warm(idle=0)
    assert sim.request_count("/info") == before + 1
    client.close()


def test_behind_a_proxy_orders_stay_on_requests(env, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    client = HyperliquidClient(settings_from_mapping({**env, "HYPERLIQUID_API_URL": "http://localhost:1"}))
    assert isinstance(client.endpoint.http, ProxyChannel)
    client.close()


def test_what_the_exchange_answers_on_info_is_mapped(env, sim):
    client = HyperliquidClient(settings_from_mapping(env))
    sim.inject("429", path="/info")
    with pytest.raises(NothingApplied, match="HTTP 429"):
        client.order_status("0x" + "0" * 32)
    sim.inject("500", path="/info")
    with pytest.raises(TransientError, match="HTTP 500"):
        client.account_state()
    assert client.order_status("0x" + "0" * 32) == {"status": "unknownOid"}
    client.close()


def test_exchange_faults_on_the_order_channel_are_mapped(env, sim):
    client = HyperliquidClient(settings_from_mapping(env))
    client.prepare()
    payload = {"action": {"type": "noop"}, "nonce": 1, "signature": {}}
    sim.inject("429")
    assert post_once(client.endpoint.post, payload) == NotTaken("HTTP 429: rate limited by the exchange")
    sim.inject("500")
    assert post_once(client.endpoint.post, payload) == NoAnswer("HTTP 500 from the exchange")  # it may have landed
    sim.inject("drop")
    dropped = post_once(client.endpoint.post, payload)
    assert isinstance(dropped, NoAnswer) and dropped.why.startswith("network"), dropped
    sim.inject("403")
    refused = post_once(client.endpoint.post, payload)
    assert isinstance(refused, HttpRefused) and refused.status == 403, refused
    client.close()


@pytest.mark.parametrize(
    "payload",
    [
        {
            "action": {
                "type": "order",
                "orders": [
                    {
                        "a": 0,
                        "b": True,
                        "p": "95123.4",
                        "s": "0.0003",
                        "r": False,
                        "t": {"limit": {"tif": "Ioc"}},
                        "c": "0x" + "ab" * 16,
                    }
                ],
                "grouping": "na",
            },
            "nonce": 1764000000000,
            "signature": {"r": "0x1", "s": "0x2", "v": 27},
            "vaultAddress": None,
            "expiresAfter": 1764000005000,
        },
        {"type": "cancel", "cancels": [{"a": 3, "o": 12}]},
        {"x": [1.5, -0.0, 1e-07, 10**30, 'é"\\\n\u2028', [], {}], "nested": {"deeper": {"deepest": [None]}}},
    ],
)
def test_the_order_body_is_what_json_dumps_writes(payload):
    assert compact_json(payload) == json.dumps(payload, separators=(",", ":"))


def test_the_order_body_refuses_what_json_refuses():
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json({"price": object()})
