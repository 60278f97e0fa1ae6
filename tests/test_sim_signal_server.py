"""The local Fractrade signal server and its RFC 6455 server side, over real sockets."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket
from websocket import ABNF

from fractrade_sync.sim.signal_server import SignalServer
from fractrade_sync.sim.ws_frames import accept_key

TOKEN = "test-token-123"
PATH = "/ws/executor/"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll predicate until true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def server() -> Iterator[SignalServer]:
    with SignalServer(TOKEN) as srv:
        yield srv


@pytest.fixture
def connect(server: SignalServer) -> Iterator[Callable[..., websocket.WebSocket]]:
    """Open websocket-client connections; close them before the server stops."""
    opened: list[websocket.WebSocket] = []

    def _connect(token: str | None = TOKEN, path: str = PATH) -> websocket.WebSocket:
        header = [f"Authorization: Token {token}"] if token is not None else []
        ws = websocket.create_connection(server.url + path, header=header, timeout=5)
        opened.append(ws)
        return ws

    yield _connect
    for ws in opened:
        ws.close(timeout=1)


def status_of(connect: Callable[..., Any], **kwargs: Any) -> int:
    """The HTTP status of a refused handshake."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(**kwargs)
    return info.value.status_code


def test_handshake_with_token_receives_pushed_frames(server, connect):
    ws = connect()
    assert server.wait_for_clients(1, timeout=5)
    assert server.clients == 1
    assert server.push('{"type": "PING"}') == 1
    assert ws.recv() == '{"type": "PING"}'
    frame = {"type": "ACTION", "data": {"action_id": "execute_hyperliquid_perp_trade"}}
    assert server.push(frame) == 1
    assert json.loads(ws.recv()) == frame
    assert server.push([1, 2]) == 1
    assert json.loads(ws.recv()) == [1, 2]
    assert server.connections_total == 1
    assert server.handshake_log == [{"path": PATH, "authorization_ok": True, "status": 101}]
    assert server.received == []


def test_wrong_or_missing_token_is_401(server, connect):
    assert status_of(connect, token="nope") == 401
    assert status_of(connect, token=None) == 401
    assert server.auth_failures == 2
    assert server.connections_total == 0
    assert [e["status"] for e in server.handshake_log] == [401, 401]
    assert not any(e["authorization_ok"] for e in server.handshake_log)
    assert TOKEN not in repr(server.handshake_log)
    assert server.push("x") == 0


def test_wrong_path_is_404(server, connect):
    assert status_of(connect, path="/ws/other/") == 404
    assert server.handshake_log == [{"path": "/ws/other/", "authorization_ok": True, "status": 404}]


def test_refuse_with_403(server, connect):
    server.refuse_with = 403
    assert status_of(connect) == 403
    assert server.auth_failures == 1
    server.refuse_with = None
    connect()
    assert server.wait_for_clients(1, timeout=5)


def test_plain_get_is_400(server):
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Token {TOKEN}\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 400")
    assert wait_until(lambda: [e["status"] for e in server.handshake_log] == [400])


def test_ping_gets_pong(server, connect):
    ws = connect()
    ws.ping("hello")
    opcode, frame = ws.recv_data_frame(True)
    assert opcode == ABNF.OPCODE_PONG
    assert frame.data == b"hello"


def test_websocketapp_pings_get_pongs(server):
    ponged = threading.Event()
    app = websocket.WebSocketApp(
        server.url + PATH,
        header=[f"Authorization: Token {TOKEN}"],
        on_pong=lambda app, data: ponged.set(),
    )
    thread = threading.Thread(target=app.run_forever, kwargs={"ping_interval": 0.2, "ping_timeout": 0.1})
    thread.start()
    try:
        assert ponged.wait(5)
        assert server.clients == 1
    finally:
        app.close()
        thread.join(5)
    assert not thread.is_alive()
    assert server.received == []


def test_drop_all_cuts_the_connection(server, connect):
    ws = connect()
    assert server.wait_for_clients(1, timeout=5)
    assert server.drop_all() == 1
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        ws.recv()
    assert wait_until(lambda: server.clients == 0)
    assert server.push("x") == 0


def test_drop_all_polite_sends_close(server, connect):
    ws = connect()
    assert server.wait_for_clients(1, timeout=5)
    assert server.drop_all(polite=True) == 1
    opcode, data = ws.recv_data()
    assert opcode == ABNF.OPCODE_CLOSE
    assert struct.unpack("!H", data[:2])[0] == 1001
    assert wait_until(lambda: server.clients == 0)


def test_fragmented_message_is_reassembled(server, connect):
    ws = connect()
    ws.send_frame(ABNF.create_frame("hel", ABNF.OPCODE_TEXT, fin=0))
    ws.send_frame(ABNF.create_frame("lo ", ABNF.OPCODE_CONT, fin=0))
    ws.ping("mid")  # control frames may interleave with fragments
    ws.send_frame(ABNF.create_frame("wörld".encode(), ABNF.OPCODE_CONT, fin=1))
    opcode, frame = ws.recv_data_frame(True)
    assert (opcode, frame.data) == (ABNF.OPCODE_PONG, b"mid")
    assert wait_until(lambda: server.received == ["hello wörld"])


def test_one_mebibyte_round_trip(server, connect):
    big = "x" * (1024 * 1024 - 3) + "end"
    ws = connect()
    ws.send(big)
    assert wait_until(lambda: server.received == [big])
    assert server.push(big) == 1
    assert ws.recv() == big


def _raw_handshake(server: SignalServer, extra: bytes = b"") -> socket.socket:
    """Handshake over a bare socket, sending extra bytes in the same packet."""
    sock = socket.create_connection((server.host, server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Token {TOKEN}\r\n\r\n"
    )
    sock.sendall(request.encode() + extra)
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: leave any frame unread
    assert response.startswith(b"HTTP/1.1 101")
    return sock


def _read_close_code(sock: socket.socket) -> int:
    """Read one server frame, expect a close, and return its code."""
    header = sock.recv(2)
    assert header[0] == 0x88 and not header[1] & 0x80  # FIN+close, unmasked
    return struct.unpack("!H", sock.recv(header[1] & 0x7F)[:2])[0]


def test_frame_sent_with_the_handshake_is_not_lost(server):
    frame = ABNF.create_frame("early", ABNF.OPCODE_TEXT).format()
    with _raw_handshake(server, extra=frame):
        assert wait_until(lambda: server.received == ["early"])


def test_unmasked_client_frame_is_a_protocol_error(server):
    with _raw_handshake(server) as sock:
        sock.sendall(b"\x81\x02hi")
        assert _read_close_code(sock) == 1002
    assert server.received == []


def test_oversized_frame_is_refused(server):
    with _raw_handshake(server) as sock:
        sock.sendall(b"\x82\xff" + struct.pack("!Q", 16 * 1024 * 1024 + 1) + b"mask")
        assert _read_close_code(sock) == 1009


def _masked(first: int, payload: bytes) -> bytes:
    """A client frame: the first byte (FIN and opcode) given, masked with a zero key (the payload unchanged)."""
    return bytes([first, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


@pytest.mark.parametrize(
    "frames, code",
    [
        ([_masked(0x80, b"x")], 1002),  # a continuation with no message started
        ([_masked(0x01, b"a"), _masked(0x81, b"b")], 1002),  # a new message before the last one finished
        ([_masked(0x81, b"\xff")], 1007),  # a text message that is not UTF-8
        ([_masked(0x83, b"x")], 1002),  # a reserved data opcode
        ([_masked(0x09, b"x")], 1002),  # a fragmented control frame
    ],
)
def test_a_broken_message_is_closed_with_its_code(server, frames, code):
    with _raw_handshake(server) as sock:
        sock.sendall(b"".join(frames))
        assert _read_close_code(sock) == code
    assert server.received == []


def test_the_handshake_answers_the_rfc_example_key():
    """RFC 6455 section 1.3's own example."""
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key("c2hvcnQ=") is None  # not 16 bytes
    assert accept_key("not base64!") is None


def test_stop_closes_clients_and_is_idempotent(server, connect):
    ws = connect()
    assert server.wait_for_clients(1, timeout=5)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    opcode, data = ws.recv_data()  # replies to the close, so stop() is not kept waiting
    assert opcode == ABNF.OPCODE_CLOSE
    assert struct.unpack("!H", data[:2])[0] == 1001
    stopper.join(5)
    assert not stopper.is_alive()
    assert server.clients == 0
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1).close()
