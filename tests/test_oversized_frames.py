"""A frame over the size limit is refused from its header, before websocket-client reads its payload, over a real
socket to the signal server simulator: one ERROR line, the connection closed, the normal backoff, nothing journaled,
and the next frame executes."""

from __future__ import annotations

import json
import logging
import resource
import secrets
import time

import pytest

from fractrade_sync.frames import MAX_FRAME_BYTES
from fractrade_sync.outcome import REJECTED
from tests.conftest import key_of, run_frame, trade_frame, wait_for, wait_state

HUGE = 2**40  # 1 TiB: announced, never sent
LIMIT_TEXT = f"over the {MAX_FRAME_BYTES}-byte limit: refused before reading it"
RECEIVER = "fractrade_sync.receiver"


def receiver_lines(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RECEIVER and r.levelno == level]


def refusals(caplog) -> list[str]:
    return [line for line in receiver_lines(caplog, logging.ERROR) if LIMIT_TEXT in line]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def padded(frame: dict, size: int) -> bytes:
    """The frame's JSON padded with blanks to exactly `size` bytes (still the same action)."""
    raw = json.dumps(frame).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def assert_refused_then_recovered(
    service, signals, caplog, announced: str, connections: int, rows: int, secret: str
) -> None:
    """One ERROR line naming the announced size, a reconnect with the normal backoff, nothing journaled, the next
    trade filled, and nothing of the payload in the log."""
    line = f"Fractrade connection closed: {announced} announced, {LIMIT_TEXT}"
    wait_for(lambda: refusals(caplog), timeout=10, what="the refusal logged")
    wait_for(
        lambda: signals.connections_total > connections and service.receiver.connected.is_set(),
        timeout=10,
        what="the receiver connected again",
    )
    assert refusals(caplog) == [line]
    assert service.receiver.reconnects == 1
    assert any(m.startswith("reconnecting to Fractrade in ") for m in receiver_lines(caplog, logging.WARNING))
    assert len(list(service.journal.all())) == rows  # nothing journaled for it
    assert run_frame(service, signals, trade_frame())["state"] == "filled"
    assert secret not in caplog.text
    assert all(secret not in json.dumps(row) for row in service.journal.all())
    assert service.receiver.is_alive()


@pytest.mark.parametrize("opcode", [1, 2, 9], ids=["text", "binary", "ping"])
def test_a_header_announcing_a_huge_frame_is_refused_before_its_payload(make_service, signals, caplog, opcode):
    caplog.set_level(logging.INFO)
    service = make_service()
    assert run_frame(service, signals, trade_frame())["state"] == "filled"
    connections, rows = signals.connections_total, len(list(service.journal.all()))
    secret = "secret-" + secrets.token_hex(8)
    start, peak = time.monotonic(), peak_rss_mib()
    # 1 TiB announced, 64 MiB actually sent: a client that buffers what the header announces holds them all
    took = signals.push_raw_header(
        HUGE, payload=(b'{"type": "ACTION", "%s": "' % secret.encode()).ljust(65536, b"x"), repeat=1024, opcode=opcode
    )
    assert took == 0  # the receiver hung up long before the 64 MiB were through
    assert_refused_then_recovered(service, signals, caplog, f"frame of {HUGE} bytes", connections, rows, secret)
    assert time.monotonic() - start < 10
    assert peak_rss_mib() - peak < 32


def test_fragments_together_over_the_limit_are_refused_before_the_last_is_read(make_service, signals, caplog):
    caplog.set_level(logging.INFO)
    service = make_service()
    connections, rows = signals.connections_total, len(list(service.journal.all()))
    secret = "secret-" + secrets.token_hex(8)
    first = (b'{"type": "ACTION", "%s": "' % secret.encode()).ljust(MAX_FRAME_BYTES // 2, b"x")
    total = len(first) * 2 + 1  # each fragment is small enough alone; together one byte too many
    signals.push_fragments([first, b"x" * len(first), b"x"])
    assert_refused_then_recovered(
        service, signals, caplog, f"fragmented message of {total} bytes", connections, rows, secret
    )


def test_one_byte_over_the_limit_is_refused_before_it_is_read(make_service, signals, caplog):
    caplog.set_level(logging.INFO)
    service = make_service()
    connections, rows = signals.connections_total, len(list(service.journal.all()))
    secret = "secret-" + secrets.token_hex(8)
    signals.push(padded(trade_frame(agent_id=secret), MAX_FRAME_BYTES + 1))
    line = f"frame of {MAX_FRAME_BYTES + 1} bytes"
    assert_refused_then_recovered(service, signals, caplog, line, connections, rows, secret)


def test_a_message_of_exactly_the_limit_is_still_read_and_parsed(make_service, signals, caplog):
    caplog.set_level(logging.INFO)
    service = make_service()
    connections = signals.connections_total
    whole = trade_frame()
    signals.push(padded(whole, MAX_FRAME_BYTES))
    assert wait_state(service, key_of(whole))["state"] == "filled"
    fragmented = trade_frame()
    raw = padded(fragmented, MAX_FRAME_BYTES)  # in three fragments, exactly the limit together
    signals.push_fragments([raw[: len(raw) // 3], raw[len(raw) // 3 : -1], raw[-1:]])
    assert wait_state(service, key_of(fragmented))["state"] == "filled"
    signals.push(b"[" + b" " * (MAX_FRAME_BYTES - 2))  # under the limit, not JSON: rejected with its reason, as ever
    wait_for(lambda: any(r["state"] == REJECTED for r in service.journal.all()), what="the rejection journaled")
    assert [r["reason"] for r in service.journal.all() if r["state"] == REJECTED] == ["not JSON: Expecting value"]
    assert run_frame(service, signals, trade_frame())["state"] == "filled"
    assert signals.connections_total == connections and service.receiver.reconnects == 0
    assert not refusals(caplog)
