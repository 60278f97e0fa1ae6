"""The journal's write-ahead notes: one append each (it survives kill -9), read back into rows at the next start.

Two files beside the journal, each written by one thread at a time: `.received` holds each new action's frame,
appended by the receiver before the action is queued; `.inflight` holds "<key> <time> <expiresAfter>", appended
by the worker just before an order request is written. Only journal.py uses this module."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger("fractrade_sync.journal")
NOTES_LIMIT = 256 * 1024  # a notes file is emptied past this size once nothing noted in it is still needed
_INFLIGHT_NOTE = re.compile(rb"([0-9a-f]{64}) ([0-9]{9,}\.[0-9]{3}) ([0-9]{12,})")


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
            old = os.umask(0o077)
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            finally:
                os.umask(old)
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
        fd, self._fd = self._fd, None
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
            start, stop = end + 1, end + 1 + int(length)
            if end < 0 or raw[stop : stop + 1] != b"\n":
                return records, False
            records.append((float(received_at), raw[start:stop].decode("utf-8", "surrogatepass")))
        except ValueError:
            return records, False
        at = stop + 1
    return records, True


def inflight_note(key: str, at: float, expires_after_ms: int) -> bytes:
    """One order's in-flight note."""
    return b"%s %.3f %d\n" % (key.encode(), at, expires_after_ms)


def read_inflight(raw: bytes, expiry_window: float) -> tuple[dict[str, float], bool]:
    """{key: the time from which `expiry_window` reaches the order's expiresAfter (or later)}, and whether every
    line read back."""
    bounds: dict[str, float] = {}
    whole = True
    for line in raw.splitlines():
        match = _INFLIGHT_NOTE.match(line)
        if match is None:
            whole = False
            continue
        key, at, expires = match.group(1).decode(), float(match.group(2)), int(match.group(3))
        bounds[key] = max(at, expires / 1000 - expiry_window, bounds.get(key, 0.0))
    return bounds, whole
