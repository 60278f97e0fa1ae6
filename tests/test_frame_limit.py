"""The receiver's own connection (feeds/frame_limit.py): the frame-header tracker however the stream is split, the
handshake timeout on that socket alone, redirects refused, an HTTP proxy from the environment, and the size limit
over TLS."""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
import websocket
from hypothesis import given, settings
from hypothesis import strategies as st

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.feeds.frame_limit import FrameTracker
from fractrade_sync.feeds.receiver import Receiver
from fractrade_sync.frames import MAX_FRAME_BYTES
from tests.conftest import trade_frame, wait_for

LIMIT = 300  # a small limit for the property: fragments and 16-bit lengths cross it
HUGE = 2**40
RECEIVER = "fractrade_sync.receiver"


# ---- the tracker, pure logic ------------------------------------------------------------------------------
def header(opcode: int, length: int, fin: bool = True, bits: int = 0, mask: bytes | None = None) -> bytes:
    """A frame header: `bits` 7, 16 or 64 for the length's encoding (0: the shortest)."""
    bits = bits or (7 if length < 126 else 16 if length < 65536 else 64)
    first = bytes([(0x80 if fin else 0) | opcode])
    flag = 0x80 if mask is not None else 0
    if bits == 7:
        head = first + bytes([flag | length])
    elif bits == 16:
        head = first + bytes([flag | 126]) + struct.pack("!H", length)
    else:
        head = first + bytes([flag | 127]) + struct.pack("!Q", length)
    return head + (mask or b"")


def refusal(size: int, length: int, limit: int = LIMIT) -> str:
    what = f"frame of {size} bytes" if size == length else f"fragmented message of {size} bytes"
    return f"{what} announced, over the {limit}-byte limit: refused before reading it"


@st.composite
def lengths(draw, most: int):
    """A length and an encoding it fits (the 64-bit one always does: a legal, if not minimal, encoding)."""
    length = draw(st.integers(0, most))
    fits = [bits for bits, top in ((7, 125), (16, 65535), (64, 2**63)) if length <= top]
    return length, draw(st.sampled_from(fits))


@st.composite
def streams(draw):
    """Messages of one or more fragments, control frames between them, maybe a huge frame at the end; the bytes,
    and the model's verdict: (refusal text, the offset where the refusing header ends) or None."""
    frames = []  # (opcode, fin, length, bits, masked)
    for _ in range(draw(st.integers(0, 5))):
        count = draw(st.integers(1, 4))
        for i in range(count):
            length, bits = draw(lengths(LIMIT // 2))
            frames.append(
                (draw(st.sampled_from([1, 2])) if i == 0 else 0, i == count - 1, length, bits, draw(st.booleans()))
            )
            if i < count - 1 and draw(st.booleans()):  # a ping, pong or close between two fragments
                length, bits = draw(lengths(125))
                frames.append((draw(st.sampled_from([8, 9, 10])), True, length, bits, draw(st.booleans())))
    if draw(st.booleans()):
        frames.append((draw(st.sampled_from([0, 1, 2, 9])), True, HUGE, 64, draw(st.booleans())))
    data, verdict, earlier = bytearray(), None, 0
    for opcode, fin, length, bits, masked in frames:
        data += header(opcode, length, fin, bits, b"\x81\xfe\x7f\x00" if masked else None)
        size = earlier + length if opcode == 0 else length
        earlier = (0 if fin else size) if opcode < 8 else earlier
        if size > LIMIT:
            verdict = (refusal(size, length), len(data))
            break
        data += b"\x81\xfe" * (length // 2) + b"\x81" * (length % 2)  # payloads that look like headers
    return bytes(data), verdict


@settings(max_examples=300, deadline=None)
@given(streams(), st.data())
def test_any_split_of_the_stream_gives_the_verdict_of_the_whole(stream, data):
    raw, verdict = stream
    whole = FrameTracker(LIMIT).feed(raw)
    assert (str(whole) if whole else None) == (verdict[0] if verdict else None)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=40)))
    tracker, at, found = FrameTracker(LIMIT), 0, None
    for end in [*cuts, len(raw)]:
        got = tracker.feed(raw[at:end])
        if got is not None and found is None:
            found = (str(got), end)
            assert at < verdict[1] <= end  # decided in the chunk that completes the refusing header
        at = max(at, end)
    assert (found[0] if found else None) == (verdict[0] if verdict else None)


def test_fragments_of_exactly_the_limit_pass_and_one_byte_more_is_refused():
    third = MAX_FRAME_BYTES // 3
    parts = [third, third, MAX_FRAME_BYTES - 2 * third]
    tracker = FrameTracker()
    for i, size in enumerate(parts):
        assert tracker.feed(header(1 if i == 0 else 0, size, fin=i == 2)) is None
        assert tracker.feed(b"\0" * size) is None
        if i == 0:
            assert tracker.feed(header(9, 4, mask=b"abcd") + b"ping") is None  # a ping between: not counted
    assert tracker.feed(header(1, MAX_FRAME_BYTES, bits=64) + b"\0" * MAX_FRAME_BYTES) is None  # whole, 64-bit
    over = FrameTracker()
    assert over.feed(header(2, third, fin=False, bits=64) + b"\0" * third) is None
    assert over.feed(header(0, MAX_FRAME_BYTES - third, fin=False, mask=b"\1\2\3\4")) is None
    got = over.feed(b"\0" * (MAX_FRAME_BYTES - third) + header(0, 1, fin=True))
    assert str(got) == refusal(MAX_FRAME_BYTES + 1, 1, MAX_FRAME_BYTES)
    assert over.feed(b"x") is got  # refused for good


def test_16_and_64_bit_lengths_and_masked_headers_split_byte_by_byte():
    tracker = FrameTracker()
    stream = header(1, 70000, mask=b"\0\0\0\0") + b"x" * 70000 + header(2, 65535, bits=16) + b"y" * 65535
    stream += header(1, MAX_FRAME_BYTES + 1, mask=b"mask")
    verdicts = [tracker.feed(stream[i : i + 1]) for i in range(len(stream))]
    assert verdicts[:-1] == [None] * (len(stream) - 1)
    assert str(verdicts[-1]) == refusal(MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES)
    assert str(FrameTracker().feed(header(9, HUGE))) == refusal(HUGE, HUGE, MAX_FRAME_BYTES)


# ---- real sockets -------------------------------------------------------------------------------------------
class Listener:
    """A TCP server on loopback; `serve(conn)` runs in a thread per connection; the accept times are kept."""

    def __init__(self, serve=lambda conn: None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.serve, self.accepted, self.conns = serve, [], []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)  # (a close() from another thread does not wake an accept())
        while self.sock.fileno() >= 0:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        except OSError:
            pass  # the client hung up, or the test ended

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for sock in (src, dst):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def relay(conn: socket.socket, port: int) -> None:
    upstream = socket.create_connection(("127.0.0.1", port))
    threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
    pipe(conn, upstream)


@pytest.fixture
def receiver_for(env):
    """A receiver (its frames collected) on a URL of the test's choosing; stopped at teardown."""
    started = []

    def make(url: str, **kwargs) -> Receiver:
        path = "/ws/executor/"
        receiver = Receiver(
            settings_from_mapping({**env, "FRAC_WS_URL": url + path}),
            kwargs.pop("frames", []).append,
            lambda up, what: None,
            **kwargs,
        )
        receiver.start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


def lines(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RECEIVER and r.levelno == level]


def test_a_server_that_never_answers_the_handshake_is_given_up_after_the_timeout(receiver_for, caplog):
    caplog.set_level(logging.INFO)
    silent = Listener()  # accepts, never answers
    try:
        started = time.monotonic()
        receiver = receiver_for(f"ws://127.0.0.1:{silent.port}", handshake_timeout=0.3)
        wait_for(lambda: len(silent.accepted) >= 3, timeout=10, what="three handshake attempts")
        first, second, third = silent.accepted[:3]
        # each attempt waits the timeout, then the backoff (0.25-0.5 s, then 0.5-1 s) before the next
        # (the library's default, HANDSHAKE_TIMEOUT, would be 30 s; the slack above is for a loaded machine)
        assert 0.3 + 0.25 - 0.05 <= second - first < 0.3 + 0.5 + 3.0
        assert 0.3 + 0.5 - 0.05 <= third - second < 0.3 + 1.0 + 3.0
        assert silent.accepted[0] - started < 3.0 and receiver.reconnects >= 2 and not receiver.connected.is_set()
        warnings = lines(caplog, logging.WARNING)
        assert "Fractrade connection error: WebSocketTimeoutException: Connection timed out" in warnings
        assert any(m.startswith("reconnecting to Fractrade in ") for m in warnings)
        assert websocket.getdefaulttimeout() is None and socket.getdefaulttimeout() is None  # nothing process-wide
        receiver.stop(timeout=2)
        assert not receiver.is_alive()
    finally:
        silent.close()


def read_head(conn: socket.socket) -> bytes:
    """An HTTP head, byte by byte (nothing after it read)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = conn.recv(1)
        if not byte:
            break
        head += byte
    return head


def accept_websocket(conn: socket.socket) -> None:
    """The server's side of the WebSocket handshake (RFC 6455 4.2.2)."""
    key = next(
        line.split(b":", 1)[1].strip()
        for line in read_head(conn).split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept
        + b"\r\n\r\n"
    )


def test_a_refused_header_is_answered_with_a_masked_close_1009_and_the_client_hangs_up(receiver_for, caplog):
    caplog.set_level(logging.INFO)
    replies: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        accept_websocket(conn)
        if len(server.accepted) > 1:
            return  # the reconnect: connected, nothing more
        conn.sendall(header(1, 5) + b"hello" + header(2, HUGE) + b"x" * 4096)  # one frame, then 1 TiB announced
        conn.settimeout(5)
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        replies.append(data)

    server = Listener(serve)
    frames: list[bytes] = []
    text = f"frame of {HUGE} bytes announced, over the {MAX_FRAME_BYTES}-byte limit: refused before reading it"
    try:
        receiver = receiver_for(f"ws://127.0.0.1:{server.port}", frames=frames)
        wait_for(lambda: replies and lines(caplog, logging.ERROR), what="the client's reply and the refusal")
        (reply,) = replies
        assert reply[0] == 0x88 and reply[1] == 0x80 | 17  # a final close frame, masked, 17 bytes
        mask = reply[2:6]
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(reply[6:23]))
        assert payload == struct.pack("!H", 1009) + b"message too big" and len(reply) == 23  # then EOF: hung up
        assert frames == [b"hello"]
        assert lines(caplog, logging.ERROR) == [f"Fractrade connection closed: {text}"]
        wait_for(lambda: len(server.accepted) >= 2 and receiver.connected.is_set(), what="the reconnect")
    finally:
        server.close()


def test_a_refused_connection_is_a_connection_error_and_retried(receiver_for, caplog):
    caplog.set_level(logging.INFO)
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    receiver = receiver_for(f"ws://127.0.0.1:{port}")
    wait_for(lambda: receiver.reconnects >= 2, what="two reconnects")
    warnings = lines(caplog, logging.WARNING)
    assert "Fractrade connection error: ConnectionRefusedError: [Errno 111] Connection refused" in warnings
    assert any(m.startswith("reconnecting to Fractrade in ") for m in warnings) and not lines(caplog, logging.ERROR)


def test_a_redirect_is_refused_never_followed(receiver_for, caplog):
    caplog.set_level(logging.INFO)
    target = Listener()

    def serve(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:{target.port}/\r\n\r\n".encode())

    server = Listener(serve)
    try:
        receiver = receiver_for(f"ws://127.0.0.1:{server.port}")
        wait_for(lambda: receiver.reconnects >= 2, what="two reconnects")
        text = (
            "Fractrade connection error: WebSocketBadStatusException: Handshake status 302: redirects are not followed"
        )
        assert text in lines(caplog, logging.WARNING)
        assert target.accepted == []
    finally:
        server.close()
        target.close()


@pytest.mark.parametrize("answer", [200, 407])
def test_the_proxy_of_the_environment_is_used(receiver_for, signals, caplog, monkeypatch, answer):
    caplog.set_level(logging.INFO)
    heads: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        heads.append(read_head(conn))
        conn.sendall(f"HTTP/1.1 {answer} Answer\r\n\r\n".encode())
        if answer == 200:
            relay(conn, int(heads[-1].split(b" ")[1].rsplit(b":", 1)[1]))

    proxy = Listener(serve)
    for var in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    frames: list[bytes] = []
    try:
        receiver = receiver_for(signals.url, frames=frames)
        if answer == 407:
            wait_for(lambda: receiver.reconnects >= 1, what="a reconnect")
            assert "Fractrade connection error: WebSocketProxyException: failed CONNECT via proxy status: 407" in lines(
                caplog, logging.WARNING
            )
            return
        wait_for(receiver.connected.is_set, what="connected through the proxy")
        signals.push(trade_frame(agent_id="via-proxy"))
        wait_for(lambda: frames, what="a frame through the proxy")
        assert b"via-proxy" in frames[0]
        target = f"127.0.0.1:{signals.port}".encode()
        assert heads[0].startswith(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n")
        assert b"Proxy-Authorization: Basic " + base64.b64encode(b"user:p@ss") + b"\r\n" in heads[0]
    finally:
        proxy.close()


def self_signed(tmp_path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_over_tls_frames_pass_and_a_huge_header_is_refused(receiver_for, signals, caplog, monkeypatch, tmp_path):
    caplog.set_level(logging.INFO)
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)

    def serve(conn: socket.socket) -> None:
        relay(tls.wrap_socket(conn, server_side=True), signals.port)

    server = Listener(serve)
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", cert)
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    frames: list[bytes] = []
    try:
        receiver = receiver_for(f"wss://localhost:{server.port}", frames=frames)
        wait_for(receiver.connected.is_set, what="connected over TLS")
        signals.push(trade_frame(agent_id="over-tls"))
        wait_for(lambda: frames, what="a frame over TLS")
        connections = signals.connections_total
        signals.push_raw_header(HUGE, payload=b"x" * 65536, repeat=64)
        text = f"frame of {HUGE} bytes announced, over the {MAX_FRAME_BYTES}-byte limit: refused before reading it"
        wait_for(lambda: lines(caplog, logging.ERROR), what="the refusal")
        assert lines(caplog, logging.ERROR) == [f"Fractrade connection closed: {text}"]
        wait_for(lambda: signals.connections_total > connections and receiver.connected.is_set(), what="reconnected")
        assert len(frames) == 1 and b"over-tls" in frames[0]
    finally:
        server.close()
