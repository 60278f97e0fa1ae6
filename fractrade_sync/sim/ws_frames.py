"""RFC 6455 framing, no I/O: a server frame's bytes, a client frame taken off a buffer, a message put together from its
fragments, the handshake's accept key (https://datatracker.ietf.org/doc/html/rfc6455). The connection that speaks it
is wsserver.py."""

from __future__ import annotations

import base64
import hashlib
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # (section 1.3)
MAX_MESSAGE = 16 * 1024 * 1024
OP_CONT = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10


class ProtocolError(Exception):
    """The peer broke RFC 6455; carries the close code to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def frame_header(opcode: int, length: int, fin: bool = True) -> bytes:
    """The header of one unmasked server frame announcing `length` payload bytes (whether they follow or not)."""
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", b0, length)
    if length < 65536:
        return struct.pack("!BBH", b0, 126, length)
    return struct.pack("!BBQ", b0, 127, length)


def frame(opcode: int, payload: bytes) -> bytes:
    """Encode one unmasked, final server frame."""
    return frame_header(opcode, len(payload)) + payload


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR data with the repeating 4-byte client mask."""
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    value = int.from_bytes(data, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(n, "big")


def close_payload(code: int, reason: str) -> bytes:
    """Status code plus a UTF-8 reason cut to the 123 bytes a control frame allows."""
    raw = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return struct.pack("!H", code) + raw


def take_frame(buf: bytearray) -> tuple[int, int, int, bytes] | None:
    """Take one complete client frame off the buffer: (fin, rsv, opcode, payload); None until it is whole."""
    if len(buf) < 2:
        return None
    b0 = buf[0]
    b1 = buf[1]
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        (n,) = struct.unpack_from("!H", buf, 2)
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        (n,) = struct.unpack_from("!Q", buf, 2)
        pos = 10
    if n > MAX_MESSAGE:
        raise ProtocolError(1009, "frame too large")
    if not b1 & 0x80:
        raise ProtocolError(1002, "client frames must be masked")
    if len(buf) < pos + 4 + n:
        return None
    mask = bytes(buf[pos : pos + 4])
    payload = unmask(bytes(buf[pos + 4 : pos + 4 + n]), mask)
    del buf[: pos + 4 + n]
    return b0 & 0x80, b0 & 0x70, b0 & 0x0F, payload


class Fragments:
    """A data message put together from its frames (a text or binary frame, then continuations)."""

    def __init__(self) -> None:
        self._frags: list[bytes] = []
        self._opcode: int | None = None
        self._size = 0

    def add(self, fin: int, opcode: int, payload: bytes) -> str | None:
        """One data frame: the message it completes (binary is decoded leniently), else None."""
        if opcode == OP_CONT:
            if self._opcode is None:
                raise ProtocolError(1002, "continuation without a started message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._opcode is not None:
                raise ProtocolError(1002, "new message before the last one finished")
            self._opcode = opcode
        else:
            raise ProtocolError(1002, f"unknown opcode {opcode}")
        self._frags.append(payload)
        self._size += len(payload)
        if self._size > MAX_MESSAGE:
            raise ProtocolError(1009, "message too large")
        if not fin:
            return None
        data = b"".join(self._frags)
        kind = self._opcode
        self._frags = []
        self._opcode = None
        self._size = 0
        if kind == OP_BINARY:
            return data.decode("utf-8", "replace")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(1007, "text message is not valid UTF-8") from None


def accept_key(key: str) -> str | None:
    """The Sec-WebSocket-Accept for a client's Sec-WebSocket-Key; None when the key is not base64 of 16 bytes."""
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except ValueError:
        return None
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")
