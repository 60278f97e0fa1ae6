"""The journal: every action's life, written before anything acts on it, behind one door.

`Journal.open()` runs the whole recovery in order and returns the actions to resume; after that each action passes
through a few verbs: `admit` (receiver: the write-ahead note, or False for a duplicate), `enqueued` (its 'received' row
while it waits), `sending` (worker: the in-flight note before an order is written; the 'submitting' commit as it
travels), `finish` (its terminal state). `journal_table.insert` is the one statement that creates a row, and `_write`
the one place a live action's row is created; journal_table.py holds the schema and the reads. The notes files
(notes.py) are invisible to the rest of the service; what the last run left in them is read back at open by
recovery.py."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from fractrade_sync.actions import Action
from fractrade_sync.errors import Unwritable
from fractrade_sync.frames import Rejection, parse_frame
from fractrade_sync.outcome import FAILED, REJECTED, SUBMITTING, TERMINAL_STATES, Outcome
from fractrade_sync.storage.journal_table import (
    FILL_COLUMNS,
    FINISH,
    FUNDING_COLUMNS,
    SENT,
    Reads,
    Resumed,
    action_columns,
    create,
    insert,
)
from fractrade_sync.storage.notes import NotesFile, inflight_note, received_note
from fractrade_sync.storage.recovery import adopt_inflight, record_received
from fractrade_sync.storage.state_dir import ensure_private_dir

log = logging.getLogger("fractrade_sync.journal")
REJECTS_PER_MINUTE = 100  # rejected frames journaled a minute at most (the rest are logged only)
REJECT_TEXT = 300  # characters of each text kept of a rejected frame
RETENTION = 90 * 86_400.0  # finished actions are kept 90 days: far past any redelivery (they expire after 60 s)


@contextmanager
def _writing(what: str) -> Iterator[None]:
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise Unwritable(f"the journal cannot be written ({what}: {exc})") from exc


class Journal(Reads):
    """The action journal; one SQLite connection per thread, WAL mode, 0600 file."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time, autocheckpoint: bool = True):
        self.path = Path(path)
        self._received = NotesFile(self.path.with_name(self.path.name + ".received"))
        self._inflight = NotesFile(self.path.with_name(self.path.name + ".inflight"))
        self._noted: set[str] = set()  # noted by the receiver, no row yet (the duplicate check sees them)
        self._in_flight: set[str] = set()  # noted in flight, terminal state not committed yet
        self._admit_lock = threading.Lock()
        self._rejects = [0, 0]  # [the current minute, rejected frames seen in it]
        self.rejects_per_minute = REJECTS_PER_MINUTE
        # the service checkpoints from its watchdog instead, so a WAL checkpoint's fsync never stalls the order path
        self._autocheckpoint = autocheckpoint
        self._clock = clock
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        ensure_private_dir(self.path.parent)
        self.path.touch(mode=0o600)
        self.path.chmod(0o600)  # before SQLite opens it: its -wal and -shm files get the database file's mode
        with self._conn() as conn:
            create(conn)

    @classmethod
    def open(cls, path: Path, expiry_window: float, clock: Callable[[], float] = time.time) -> tuple[Journal, list]:
        """Open the journal and recover, in this order: noted frames become 'received' rows; actions noted in flight
        become 'submitting'; finished actions past RETENTION are pruned (only now: a note of a long-finished action
        must find its row still there); the unfinished ones are returned to resume, oldest first."""
        journal = cls(path, clock, autocheckpoint=False)
        recorded = journal.record_noted()
        if recorded:
            log.warning("%d action(s) received by the last run were not journaled yet: recorded now", recorded)
        adopted = adopt_inflight(journal._conn(), journal._inflight, expiry_window)
        if adopted:
            log.warning("%d action(s) had an order in flight when the last run ended: checking them by cloid", adopted)
        pruned = journal.prune(clock() - RETENTION)
        if pruned:
            log.info("journal: pruned %d finished action(s) older than 90 days", pruned)
        resumed = []
        for row in journal.unfinished():
            action = parse_frame(row["frame"], row["received_at"])
            if isinstance(action, Action) and action.key == row["key"]:
                resumed.append(Resumed(action, row["state"], row["updated_at"], row["nonce"]))
            else:
                journal._finish(row["key"], Outcome(FAILED, "journal row could not be read back"))
        return journal, resumed

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level="DEFERRED", check_same_thread=False)
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
            conns = self._all
            self._all = []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass  # closed from another thread already
        self._local = threading.local()

    # ---- the verbs -------------------------------------------------------------------------------
    def admit(self, action: Action) -> bool:
        """Receiver: note a new action's frame before it is queued (one append, its write-ahead record) and return
        True; False for a duplicate (already noted or journaled: never executed again)."""
        with self._admit_lock, _writing("its received note"):
            if self.is_known(action.key):
                return False
            self._received.append(received_note(action.received_at, action.frame), may_empty=not self._noted)
            self._noted.add(action.key)  # only once the note is whole: a failed one leaves the action unknown
            return True

    def is_known(self, key: str) -> bool:
        """Whether an action was already taken: noted and queued, or journaled."""
        if key in self._noted:
            return True
        return self._conn().execute("SELECT 1 FROM actions WHERE key=?", (key,)).fetchone() is not None

    def enqueued(self, action: Action) -> None:
        """Receiver, right after queueing an action that waits: its 'received' row, for status and anyone reading
        the journal (the worker's first commit creates it when it gets there first)."""
        self._write([action])

    def reject(self, rejection: Rejection) -> bool:
        """Record a frame that is not a valid action, with its reason (once per identical frame; each text at most
        REJECT_TEXT characters; at most REJECTS_PER_MINUTE rows a minute: a flood of junk cannot fill the disk).
        False when it was not recorded (seen before, or over the limit)."""
        minute = int(self._clock() // 60)
        if self._rejects[0] != minute:
            if self._rejects[1] > self.rejects_per_minute:
                log.warning(
                    "%d rejected frames in a minute were not journaled (at most %d a minute are)",
                    self._rejects[1] - self.rejects_per_minute,
                    self.rejects_per_minute,
                )
            self._rejects = [minute, 0]
        self._rejects[1] += 1
        if self._rejects[1] > self.rejects_per_minute:
            return False
        columns = {
            "key": rejection.key,
            "action_id": rejection.action_id,
            "event_id": rejection.event_id,
            "symbol": rejection.symbol,
            "frame": rejection.excerpt,
            "state": REJECTED,
            "reason": rejection.reason,
            "received_at": rejection.received_at,
            "updated_at": self._clock(),
        }
        columns = {name: value[:REJECT_TEXT] if isinstance(value, str) else value for name, value in columns.items()}
        with _writing("a rejected frame"), self._conn() as conn:
            return insert(conn, columns) == 1

    def sending(self, actions: list[Action], expires_after_ms: int, nonce: int) -> Callable[[], None]:
        """Worker, just before an order request is written (one request may carry several actions' orders, under
        one nonce): their in-flight notes in one append (a crash from here on is settled by the nonce and each
        cloid at the next start). Returns what to call as the request leaves: their 'submitting' commit."""
        now = self._clock()
        notes = b"".join(inflight_note(a.key, now, expires_after_ms, nonce, a.received_at, a.frame) for a in actions)
        with _writing("the order's in-flight note"):
            self._inflight.append(notes, may_empty=not self._in_flight)  # (empty: every noted order is finished)
        self._in_flight.update(a.key for a in actions)

        def sent() -> None:
            try:
                self._write(actions, SENT, [(SUBMITTING, nonce, self._clock(), a.key) for a in actions])
            except Exception as exc:  # the orders are on their way: their in-flight notes already cover a crash
                log.error(
                    "%s: journal 'submitting' not recorded (%s); the in-flight note stands in for it",
                    ", ".join(a.describe() for a in actions),
                    exc,
                )

        return sent

    def finish(self, action: Action, outcome: Outcome) -> None:
        """Record the action's terminal state."""
        with _writing("an outcome"):
            self._write([action], FINISH, [self._finish_params(action.key, outcome)])
        self._in_flight.discard(action.key)  # committed: its in-flight note is no longer needed

    def _finish(self, key: str, outcome: Outcome) -> None:
        with self._conn() as conn:
            conn.execute(FINISH, self._finish_params(key, outcome))

    def _finish_params(self, key: str, o: Outcome) -> tuple:
        return (o.state, o.reason, o.oid, o.filled_sz, o.avg_px, o.latency_ms, self._clock(), key)

    def _write(self, actions: list[Action], sql: str | None = None, params: list[tuple] | None = None) -> None:
        """One commit: the actions' rows, created here when only their notes existed, then `sql` with each one's
        `params`."""
        with self._conn() as conn:
            for action in actions:
                if action.key in self._noted:
                    insert(conn, action_columns(action, self._clock()))
            if sql:
                conn.executemany(sql, params or [])
        self._noted.difference_update(a.key for a in actions)

    # ---- the ledger: what the exchange says happened (ledger.py) ----------------------------------------
    def record_fills(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Journal fills of this service's orders (journal_table.FILL_COLUMNS), each once by (tid, oid), whoever
        reports it and however often; returns the ones new to the journal."""
        return self._record_once("fills", FILL_COLUMNS, rows)

    def record_funding(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Journal the account's funding settlements (journal_table.FUNDING_COLUMNS), each once by (time, coin);
        returns the new ones."""
        return self._record_once("funding", FUNDING_COLUMNS, rows)

    def _record_once(self, table: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sql = f"INSERT OR IGNORE INTO {table} ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})"
        new = []
        with _writing(f"the {table}"), self._conn() as conn:
            for row in rows:
                if conn.execute(sql, tuple(row.get(name) for name in columns)).rowcount == 1:
                    new.append(row)
        return new

    # ---- recovery (open; the notes read back in recovery.py) and stop --------------------------------------
    def record_noted(self) -> int:
        """At open and after an orderly stop: the noted frames without a row become 'received' rows; then the notes
        are emptied, or kept aside when they do not read back whole (recovery.record_received). Returns the rows
        added."""
        added = record_received(self._conn(), self._received, self.reject)
        self._noted.clear()
        return added

    def prune(self, older_than: float) -> int:
        """Delete finished actions last touched before a wall-clock time; open ones are never pruned."""
        with self._conn() as conn:
            marks = ",".join("?" * len(TERMINAL_STATES))
            sql = f"DELETE FROM actions WHERE updated_at < ? AND state IN ({marks})"
            return conn.execute(sql, (older_than, *TERMINAL_STATES)).rowcount

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking writers (PASSIVE)."""
        self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")
