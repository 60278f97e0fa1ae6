"""SQLite journal: every action's life, written before anything acts on it."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .actions import STOP_LOSS, TAKE_PROFIT, Action, Rejection, parse_frame

RECEIVED = "received"
SUBMITTING = "submitting"
FILLED = "filled"
PARTIALLY_FILLED = "partially_filled"
RESTING = "resting"
REJECTED = "rejected"
SKIPPED = "skipped"
FAILED = "failed"
EXPIRED = "expired"
OPEN_STATES = (RECEIVED, SUBMITTING)
TERMINAL_STATES = (FILLED, PARTIALLY_FILLED, RESTING, REJECTED, SKIPPED, FAILED, EXPIRED)
log = logging.getLogger("fractrade_sync.journal")
NOTES_LIMIT = 256 * 1024  # a notes file is emptied past this size once nothing noted in it is still needed
KEY_FILTER_BITS = 1 << 22  # 512 KB: below 0.01% false "maybe"s up to 100,000 keys, 14% at a million

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    key TEXT PRIMARY KEY,
    action_id TEXT,
    event_id TEXT,
    symbol TEXT,
    side TEXT,
    size TEXT,
    trigger_price TEXT,
    cloid TEXT,
    frame TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    oid INTEGER,
    filled_sz TEXT,
    avg_px TEXT,
    latency_ms REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    action_ts REAL,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_state ON actions(state);
CREATE INDEX IF NOT EXISTS actions_updated ON actions(updated_at);
"""


@dataclass(frozen=True)
class Outcome:
    """The terminal result of one action, as journaled and logged."""

    state: str
    reason: str = ""
    oid: int | None = None
    filled_sz: str | None = None
    avg_px: str | None = None
    latency_ms: float | None = None


def outcome_line(action: Action, outcome: Outcome) -> str:
    """The one human line for an action's outcome: 'trade BUY 0.01 BTC -> filled; filled 0.01 @ 50000.0; …'."""
    parts = [f"{action.describe()} -> {outcome.state}"]
    if outcome.filled_sz:
        parts.append(f"filled {outcome.filled_sz} @ {outcome.avg_px}")
    if outcome.oid is not None:
        parts.append(f"oid {outcome.oid}")
    if outcome.latency_ms is not None:
        parts.append(f"{outcome.latency_ms:.1f} ms")
    if outcome.reason:
        parts.append(f"reason: {outcome.reason}")
    return "; ".join(parts)


class Journal:
    """The action journal; one SQLite connection per thread, WAL mode, 0600 file."""

    def __init__(self, path: Path, clock=time.time, autocheckpoint: bool = True):
        self.path = Path(path)
        # "<key> <time> <expiresAfter>" lines appended just before each order request is written: the write-ahead
        # record that an order may be in flight (one write(2), survives kill -9). The 'submitting' commit follows
        # while the request travels; at start, adopt_inflight() turns any note into 'submitting', settled by cloid
        # before anything.
        self._inflight = _Notes(self.path.with_name(self.path.name + ".inflight"))
        self.inflight_path = self._inflight.path
        self._inflight_open: set[str] = set()  # noted keys whose terminal state is not committed yet
        # The receiver's write-ahead record: each new action's frame, appended (one write(2)) before it is queued.
        # Its row is committed right after ('received', by the receiver) or by the worker's first commit, whichever
        # comes first. At start and after an orderly stop, record_received() turns notes without a row into
        # 'received' rows and empties the file.
        self._received = _Notes(self.path.with_name(self.path.name + ".received"))
        self.received_path = self._received.path
        self._noted: set[str] = set()  # noted keys whose row is not committed yet (the receiver's duplicate check)
        self._keys: KeyFilter | None = None  # every journaled or noted key, once load_key_filter() ran
        self._take_lock = threading.Lock()
        # the service checkpoints from its watchdog thread instead, so a WAL checkpoint's fsync never stalls
        # a commit on the order path
        self._autocheckpoint = autocheckpoint
        self._clock = clock
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            old = os.umask(0o077)  # the -wal and -shm files SQLite creates stay private
            try:
                conn = sqlite3.connect(self.path, timeout=10.0, isolation_level="DEFERRED", check_same_thread=False)
            finally:
                os.umask(old)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash (kill -9); the cloid check on resume covers power loss.
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._autocheckpoint:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection (and the notes files)."""
        self._inflight.close()
        self._received.close()
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass  # closed from another thread already
        self._local = threading.local()

    # ---- the receiver's side -------------------------------------------------------------------
    def load_key_filter(self) -> None:
        """At start, before receiving: a Bloom filter of every journaled key, so a new action's duplicate check
        needs no read. Only the receiver thread adds to it afterwards (note_received)."""
        keys = KeyFilter()
        for (key,) in self._conn().execute("SELECT key FROM actions"):
            keys.add(key)
        for key in self._noted:
            keys.add(key)
        self._keys = keys

    def is_known(self, key: str) -> bool:
        """Whether an action was already taken: noted and queued, or journaled (then never executed again).
        The key filter answers "certainly not" without a read; its "maybe" (and no filter) asks the journal."""
        if key in self._noted:
            return True
        if self._keys is not None and not self._keys.may_contain(key):
            return False
        return self._conn().execute("SELECT 1 FROM actions WHERE key=?", (key,)).fetchone() is not None

    def take_new(self, action: Action) -> bool:
        """Receiver side: note a new action and return True; False when it is a duplicate (already noted or
        journaled). Check and note are one step under a lock, whoever calls it."""
        with self._take_lock:
            if self.is_known(action.key):
                return False
            self.note_received(action)
            return True

    def note_received(self, action: Action) -> None:
        """Before queueing a new action: one append of its frame (survives kill -9; recorded as 'received' at the
        next start if no row was committed). Far cheaper than a commit on the order path."""
        frame = action.frame.encode("utf-8", "surrogatepass")
        record = b"%r %d\n%b\n" % (action.received_at, len(frame), frame)  # no escaping: a header, then the bytes
        self._received.append(record, may_empty=not self._noted)  # (empty: every frame in it has its row)
        self._noted.add(action.key)  # only once the note is whole: a failed one leaves the action unknown
        if self._keys is not None:
            self._keys.add(action.key)

    def commit_received(self, action: Action) -> None:
        """Receiver thread, right after queueing a noted action: its 'received' row, for status and anyone reading
        the journal (the worker's own first commit creates it if it gets there first)."""
        with self._conn() as conn:
            self._insert(conn, action, action.frame)
        self._noted.discard(action.key)

    def record_received(self) -> int:
        """At start and after an orderly stop: the noted frames without a row become 'received' rows (resumed at
        the next start); then the notes are emptied. Returns the rows added. Notes that do not read back whole
        are kept aside, with an ERROR, never emptied."""
        raw = self._received.read()
        if raw is None:
            return 0
        records, whole = _records(raw)
        added = 0
        for received_at, text in records:
            parsed = parse_frame(text, received_at)
            if isinstance(parsed, Action):
                added += self.insert(parsed, text, updated_at=parsed.received_at)
                continue
            whole = False
            reason = parsed.reason if isinstance(parsed, Rejection) else "not an action"
            log.error("a frame noted by the last run no longer reads as an action (%s); journaled as rejected", reason)
            if isinstance(parsed, Rejection):
                self.insert_rejection(parsed)
        self._received.settle(whole)
        self._noted.clear()
        return added

    def insert(self, action: Action, frame: str, updated_at: float | None = None) -> bool:
        """Record a new action as received; False when its key is already journaled (a duplicate)."""
        with self._conn() as conn:
            return self._insert(conn, action, frame, updated_at).rowcount == 1

    def _insert(self, conn: sqlite3.Connection, action: Action, frame: str, updated_at: float | None = None):
        return conn.execute(
            "INSERT OR IGNORE INTO actions (key, action_id, event_id, symbol, side, size, trigger_price, cloid,"
            " frame, state, action_ts, received_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                action.key,
                action.action_id,
                action.event_id,
                action.symbol,
                action.side,
                None if action.size is None else str(action.size),
                None if action.trigger_price is None else str(action.trigger_price),
                action.cloid,
                frame,
                RECEIVED,
                action.timestamp,
                action.received_at,
                self._clock() if updated_at is None else updated_at,
            ),
        )

    def insert_rejection(self, rejection: Rejection) -> bool:
        """Record a frame that is not a valid action, with its reason (once per identical frame)."""
        with self._conn() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO actions (key, action_id, event_id, symbol, frame, state, reason,"
                " received_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    rejection.key,
                    rejection.action_id,
                    rejection.event_id,
                    rejection.symbol,
                    rejection.excerpt,
                    REJECTED,
                    rejection.reason,
                    rejection.received_at,
                    self._clock(),
                ),
            )
            return cur.rowcount == 1

    def note_sending(self, key: str, expires_after_ms: int) -> None:
        """Worker thread, just before an order request is written: one append (key, time, the order's
        expiresAfter) to the in-flight notes, so a crash from here on is settled by cloid at the next start
        (adopt_inflight). Far cheaper than a commit."""
        line = b"%s %.3f %d\n" % (key.encode(), self._clock(), expires_after_ms)
        # (empty: every note in it belongs to an action whose outcome is committed)
        self._inflight.append(line, may_empty=not self._inflight_open)
        self._inflight_open.add(key)

    def adopt_inflight(self, expiry_window: float) -> int:
        """At start, after record_received and before resuming: every action noted as in flight and not finished
        becomes 'submitting', its time set so that time + expiry_window is its order's expiresAfter (or later);
        then the notes are emptied (kept aside, with an ERROR, when they do not read back whole). Returns the
        rows changed."""
        raw = self._inflight.read()
        if raw is None:
            return 0
        bounds: dict[str, float] = {}
        whole = True
        for line in raw.splitlines():
            match = _INFLIGHT_NOTE.match(line)
            if match is None:
                whole = False
                continue
            key, at, expires = match.group(1).decode(), float(match.group(2)), int(match.group(3))
            bounds[key] = max(at, expires / 1000 - expiry_window, bounds.get(key, 0.0))
        changed = 0
        with self._conn() as conn:
            for key, bound in bounds.items():
                changed += conn.execute(
                    "UPDATE actions SET state=?, updated_at=MAX(updated_at, ?) WHERE key=? AND state IN (?, ?)",
                    (SUBMITTING, bound, key, *OPEN_STATES),
                ).rowcount
                if conn.execute("SELECT 1 FROM actions WHERE key=?", (key,)).fetchone() is None:
                    whole = False
                    log.error("an order with cloid 0x%s may be on the exchange, and nothing in the journal "
                              "says what it was: check it on Hyperliquid", key[:32])  # fmt: skip
        self._inflight.settle(whole)
        return changed

    def mark_submitting(self, action: Action) -> None:
        """Committed as the order leaves (note_sending covers the moment before it): shown by status, counted.
        Creates the action's row when the receiver only noted it."""
        with self._conn() as conn:  # one commit
            if action.key in self._noted:
                self._insert(conn, action, action.frame)
            conn.execute(
                "UPDATE actions SET state=?, attempts=attempts+1, updated_at=? WHERE key=?",
                (SUBMITTING, self._clock(), action.key),
            )
        self._noted.discard(action.key)

    def finish(self, key: str, outcome: Outcome, action: Action | None = None) -> None:
        """Record the action's terminal state (creating its row when the receiver only noted the action)."""
        with self._conn() as conn:  # one commit
            if action is not None and key in self._noted:
                self._insert(conn, action, action.frame)
            conn.execute(
                "UPDATE actions SET state=?, reason=?, oid=?, filled_sz=?, avg_px=?, latency_ms=?, updated_at=?"
                " WHERE key=?",
                (
                    outcome.state,
                    outcome.reason,
                    outcome.oid,
                    outcome.filled_sz,
                    outcome.avg_px,
                    outcome.latency_ms,
                    self._clock(),
                    key,
                ),
            )
        self._inflight_open.discard(key)  # committed: its in-flight note is no longer needed
        self._noted.discard(key)

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking writers (PASSIVE)."""
        self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def prune(self, older_than: float) -> int:
        """Delete finished actions last touched before a wall-clock time; open ones are never pruned."""
        with self._conn() as conn:
            cur = conn.execute(
                f"DELETE FROM actions WHERE updated_at < ? AND state IN ({','.join('?' * len(TERMINAL_STATES))})",
                (older_than, *TERMINAL_STATES),
            )
            return cur.rowcount

    def has_resting_protection(self, symbol: str) -> bool:
        """Whether a stop loss or take profit on this coin was ever left resting (it may still be live)."""
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM actions WHERE state=? AND action_id IN (?, ?) AND symbol=? COLLATE NOCASE LIMIT 1",
                (RESTING, STOP_LOSS, TAKE_PROFIT, symbol),
            )
            .fetchone()
        )
        return row is not None

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM actions WHERE key=?", (key,)).fetchone()
        return dict(row) if row else None

    def unfinished(self) -> list[dict[str, Any]]:
        """Actions received or in flight but not finished, oldest first (for resume at start)."""
        rows = self._conn().execute(
            "SELECT * FROM actions WHERE state IN (?, ?) ORDER BY received_at, rowid", OPEN_STATES
        )
        return [dict(r) for r in rows]

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest actions, newest first."""
        rows = self._conn().execute("SELECT * FROM actions ORDER BY received_at DESC, rowid DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many actions are in each state."""
        rows = self._conn().execute("SELECT state, COUNT(*) FROM actions GROUP BY state")
        return {state: n for state, n in rows}

    def all(self) -> Iterator[dict[str, Any]]:
        for row in self._conn().execute("SELECT * FROM actions ORDER BY rowid"):
            yield dict(row)


def ensure_private_dir(path: Path) -> None:
    """Create the state directory 0700 (and tighten an existing one)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (path.stat().st_mode & 0o777) != 0o700:
        os.chmod(path, 0o700)


_INFLIGHT_NOTE = re.compile(rb"([0-9a-f]{64}) ([0-9]{9,}\.[0-9]{3}) ([0-9]{12,})")


def _records(raw: bytes) -> tuple[list[tuple[float, str]], bool]:
    """The received notes' records, b"<received_at> <length>\\n<frame>\\n"; and whether all of raw read back
    (a torn record, after a power loss, ends the reading)."""
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


class _Notes:
    """An append-only notes file of the journal (0600), opened at the first note. Used by one thread at a time:
    the receiver's by the receiver, the in-flight one by the worker (and both at start, before those run)."""

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


class KeyFilter:
    """A Bloom filter over action keys (sha256 hex): no false "certainly not", a rare false "maybe".

    Four 22-bit slices of the key's hash choose its bits; the keys are uniform, so the slices are independent.
    It never forgets a key (deletions would need counters): pruned keys only add to the "maybe"s, which cost a
    read, never a wrong answer; the filter is rebuilt at each start."""

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = bytearray(KEY_FILTER_BITS // 8)

    @staticmethod
    def _positions(key: str) -> tuple[int, ...]:
        try:
            value = int(key[-24:], 16)  # 96 bits of the hash ("rejected:" keys end with hex too)
        except ValueError:
            value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=12).digest(), "big")
        mask = KEY_FILTER_BITS - 1
        return (value & mask, (value >> 24) & mask, (value >> 48) & mask, (value >> 72) & mask)

    def add(self, key: str) -> None:
        bits = self._bits
        for position in self._positions(key):
            bits[position >> 3] |= 1 << (position & 7)

    def may_contain(self, key: str) -> bool:
        bits = self._bits
        return all(bits[position >> 3] & (1 << (position & 7)) for position in self._positions(key))
