"""The journal's recovery: what the last run's notes say becomes rows before anything else runs.

`Journal.open()` calls these in order: the received notes become 'received' rows (`record_received`, also at an
orderly stop), then the orders noted in flight become 'submitting' (`adopt_inflight`); each reads one notes file
(notes.py) and settles it. Only journal.py uses this module."""

from __future__ import annotations

import logging
import sqlite3
from typing import Callable

from fractrade_sync.actions import Action
from fractrade_sync.frames import Rejection, parse_frame
from fractrade_sync.outcome import OPEN_STATES, SUBMITTING
from fractrade_sync.storage.journal_table import action_columns, insert
from fractrade_sync.storage.notes import NotesFile, read_inflight, read_records

log = logging.getLogger("fractrade_sync.journal")


def record_received(conn: sqlite3.Connection, received: NotesFile, reject: Callable[[Rejection], bool]) -> int:
    """The noted frames without a row become 'received' rows (resumed at the next start); a frame that no longer
    reads as an action is journaled through `reject`. Then the notes are emptied, or kept aside with an ERROR when
    they do not read back whole. Returns the rows added."""
    raw = received.read()
    if raw is None:
        return 0
    records, whole = read_records(raw)
    added = 0
    with conn:
        for received_at, text in records:
            parsed = parse_frame(text, received_at)
            if isinstance(parsed, Action):
                added += insert(conn, action_columns(parsed, parsed.received_at))
                continue
            whole = False
            reason = parsed.reason if isinstance(parsed, Rejection) else "not an action"
            log.error("a frame noted by the last run no longer reads as an action (%s); journaled as rejected", reason)
            if isinstance(parsed, Rejection):
                reject(parsed)
    received.settle(whole)
    return added


def adopt_inflight(conn: sqlite3.Connection, inflight: NotesFile, expiry_window: float) -> int:
    """Every action noted in flight and not finished becomes 'submitting' with its order's nonce, its time set so
    that time + expiry_window is the order's expiresAfter (or later); one with no row (a power loss took its received
    note and its row) gets one from the note's frame. Then the notes are settled. Returns the rows changed."""
    raw = inflight.read()
    if raw is None:
        return 0
    notes, whole = read_inflight(raw, expiry_window)
    changed = 0
    marks = ",".join("?" * len(OPEN_STATES))
    with conn:
        for key, note in notes.items():
            if conn.execute("SELECT 1 FROM actions WHERE key=?", (key,)).fetchone() is None:
                parsed = parse_frame(note.frame, note.received_at) if note.frame is not None else None
                if not isinstance(parsed, Action) or parsed.key != key:
                    whole = False
                    log.error(
                        "an order with cloid 0x%s may be on the exchange, and nothing in the journal "
                        "says what it was: check it on Hyperliquid",
                        key[:32],
                    )
                    continue
                insert(conn, action_columns(parsed, note.bound))
                log.warning(
                    "%s: in flight when the last run ended, and not in the journal (a power loss?): "
                    "recorded from its in-flight note",
                    parsed.describe(),
                )
            changed += conn.execute(
                f"UPDATE actions SET state=?, nonce=COALESCE(?, nonce), updated_at=MAX(updated_at, ?) "
                f"WHERE key=? AND state IN ({marks})",
                (SUBMITTING, note.nonce, note.bound, key, *OPEN_STATES),
            ).rowcount
    inflight.settle(whole)
    return changed
