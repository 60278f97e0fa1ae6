"""The journal's write-ahead notes: one append each (it survives kill -9), read back into rows at the next start.

Two files beside the journal, each written by one thread at a time: `.received` holds each new action's frame,
appended by the receiver before the action is queued; `.inflight` holds "<key> <time> <expiresAfter> <nonce>" and
the action's frame, appended by the worker just before an order request is written (with the frame, a power loss
that takes the received note and the row still leaves what the order was). Only journal.py uses this module."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("fractrade_sync.journal")
NOTES_LIMIT = 256 * 1024  # a notes file is emptied past this size once nothing noted in it is still needed
# "<key> <time> <expiresAfter> <nonce> <received_at> <frame length>", then the frame's line
_INFLIGHT_NOTE = re.compile(rb"([0-9a-f]{64}) ([0-9]{9,}\.[0-9]{3}) ([0-9]{12,}) ([0-9]+) (\S+) ([0-9]+)$")


class NotesFile:
    """An append-only notes file (0600), opened at the first note."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._size = 0

    def append(self, data: bytes, may_empty: bool) -> None:
        """Append one whole note; first empty the file if it is past NOTES_LIMIT and `may_empty` (nothing noted
        in it is still needed). A short write (disk full) is undone and raised, never left torn mid-file."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # (a umask only narrows it)
            self._size = os.fstat(self._fd).st_size
        if may_empty and self._size > NOTES_LIMIT:
            os.ftruncate(self._fd, 0)
            self._size = 0
        written = os.write(self._fd, data)
        if written != len(data):
            os.ftruncate(self._fd, self._size)
            raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
        self._size += written

    def read(self) -> bytes | None:
        """The whole file, or None when there is none."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def settle(self, whole: bool) -> None:
        """Once its content is committed to the journal: empty the file, or, when it did not all read back, keep
        it aside for a human (the service goes on with a fresh one)."""
        if not whole:
            self.close()  # the next note opens the fresh file, not the one kept aside
            aside = self.path.with_name(f"{self.path.name}.unreadable-{time.time_ns()}")
            os.replace(self.path, aside)
            log.error("%s did not read back whole; kept as %s for inspection", self.path.name, aside.name)
            return
        fd = self._fd if self._fd is not None else os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
        finally:
            if fd != self._fd:
                os.close(fd)
        self._size = 0

    def close(self) -> None:
        fd = self._fd
        self._fd = None
        if fd is not None:
            os.close(fd)


def received_note(received_at: float, frame: str) -> bytes:
    """One frame's note: b"<received_at> <length>\\n<frame>\\n" (no escaping: a header, then the bytes)."""
    data = frame.encode("utf-8", "surrogatepass")
    return b"%r %d\n%b\n" % (received_at, len(data), data)


def read_records(raw: bytes) -> tuple[list[tuple[float, str]], bool]:
    """The received notes' (received_at, frame) records; and whether all of raw read back (a torn record, after a
    power loss, ends the reading)."""
    records: list[tuple[float, str]] = []
    at = 0
    while at < len(raw):
        end = raw.find(b"\n", at)
        try:
            received_at, length = raw[at:end].split(b" ")
            start = end + 1
            stop = end + 1 + int(length)
            if end < 0 or raw[stop : stop + 1] != b"\n":
                return records, False
            records.append((float(received_at), raw[start:stop].decode("utf-8", "surrogatepass")))
        except ValueError:
            return records, False
        at = stop + 1
    return records, True


def inflight_note(key: str, at: float, expires_after_ms: int, nonce: int, received_at: float, frame: str) -> bytes:
    """One order's in-flight note: its header line, then its frame's."""
    data = frame.encode("utf-8", "surrogatepass")
    return b"%s %.3f %d %d %r %d\n%b\n" % (key.encode(), at, expires_after_ms, nonce, received_at, len(data), data)


@dataclass
class InFlight:
    """What an in-flight note says of one order: the time from which `expiry_window` reaches its expiresAfter (or
    later), its nonce and the action's frame (None when a power loss tore the frame's line)."""

    bound: float
    nonce: int | None = None
    received_at: float | None = None
    frame: str | None = None


def read_inflight(raw: bytes, expiry_window: float) -> tuple[dict[str, InFlight], bool]:
    """{key: InFlight} (the latest note of each key), and whether every note read back whole."""
    found: dict[str, InFlight] = {}
    whole = True
    at = 0
    while at < len(raw):
        end = raw.find(b"\n", at)
        line = raw[at:] if end < 0 else raw[at:end]
        at = len(raw) if end < 0 else end + 1
        match = _INFLIGHT_NOTE.match(line)
        if match is None:
            whole = False
            continue
        key = match.group(1).decode()
        noted = float(match.group(2))
        expires = int(match.group(3))
        bound = max(noted, expires / 1000 - expiry_window, found[key].bound if key in found else 0.0)
        length = int(match.group(6))
        frame = raw[at : at + length]
        if len(frame) < length or raw[at + length : at + length + 1] != b"\n":
            whole = False  # torn by a power loss: the header still says an order may be in flight
            found[key] = InFlight(bound)
        else:
            text = frame.decode("utf-8", "surrogatepass")
            found[key] = InFlight(bound, int(match.group(4)), float(match.group(5)), text)
        at += length + 1
    return found, whole
