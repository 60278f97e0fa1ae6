"""The journal's table: its schema, the one INSERT that creates a row, and every read of it (status, the CLI,
recovery). journal.py writes it; this module only reads, apart from `insert`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Iterator

from .actions import STOP_LOSS, TAKE_PROFIT, Action, parse_frame
from .outcome import OPEN_STATES, RECEIVED, RESTING, UNKNOWN

SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    key TEXT PRIMARY KEY, action_id TEXT, event_id TEXT, symbol TEXT, side TEXT, size TEXT, trigger_price TEXT,
    cloid TEXT, frame TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, oid INTEGER, filled_sz TEXT, avg_px TEXT,
    latency_ms REAL, attempts INTEGER NOT NULL DEFAULT 0, action_ts REAL, received_at REAL NOT NULL,
    updated_at REAL NOT NULL, nonce INTEGER
);
CREATE INDEX IF NOT EXISTS actions_state ON actions(state);
CREATE INDEX IF NOT EXISTS actions_updated ON actions(updated_at);
"""
SENT = "UPDATE actions SET state=?, nonce=?, attempts=attempts+1, updated_at=? WHERE key=?"
FINISH = "UPDATE actions SET state=?, reason=?, oid=?, filled_sz=?, avg_px=?, latency_ms=?, updated_at=? WHERE key=?"


def create(conn: sqlite3.Connection) -> None:
    """The table and its indexes (the nonce column added to a journal of an older version)."""
    conn.executescript(SCHEMA)
    if "nonce" not in {row[1] for row in conn.execute("PRAGMA table_info(actions)")}:
        conn.execute("ALTER TABLE actions ADD COLUMN nonce INTEGER")


@dataclass(frozen=True)
class Resumed:
    """An action left unfinished: 'received' (never sent), 'submitting' (an order may be in flight since `since`, a
    wall-clock time) or 'unknown' (the exchange did not say what became of it)."""

    action: Action
    state: str
    since: float
    nonce: int | None = None  # the nonce of the order that may be in flight (None: never sent, or an older run's)


class Reads:
    """The journal's reads; the class using it provides `_conn()`, this thread's connection."""

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def has_resting_protection(self, symbol: str) -> bool:
        """Whether a stop loss or take profit on this coin was ever left resting (it may still be live)."""
        sql = "SELECT 1 FROM actions WHERE state=? AND action_id IN (?, ?) AND symbol=? COLLATE NOCASE LIMIT 1"
        return self._conn().execute(sql, (RESTING, STOP_LOSS, TAKE_PROFIT, symbol)).fetchone() is not None

    def own_protection(self, cloids: list[str]) -> dict[str, str | None]:
        """Which of these cloids are stop losses / take profits this service placed: {cloid (lower case): the size
        it was set with, None when it covers the whole position}."""
        wanted = [c.lower() for c in cloids if c]
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        sql = f"SELECT cloid, size FROM actions WHERE action_id IN (?, ?) AND lower(cloid) IN ({marks})"
        return {row[0].lower(): row[1] for row in self._conn().execute(sql, (STOP_LOSS, TAKE_PROFIT, *wanted))}

    def newer_on_symbol(self, symbol: str, received_at: float, key: str) -> bool:
        """Whether another action on this coin, received after `received_at`, was taken (not refused or skipped)."""
        sql = ("SELECT 1 FROM actions WHERE symbol=? COLLATE NOCASE AND received_at > ? AND key != ? "
               "AND state NOT IN ('rejected', 'skipped', 'expired') LIMIT 1")  # fmt: skip
        return self._conn().execute(sql, (symbol, received_at, key)).fetchone() is not None

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM actions WHERE key=?", (key,)).fetchone()
        return dict(row) if row else None

    def unfinished(self) -> list[dict[str, Any]]:
        """Actions received or in flight but not finished, oldest first."""
        marks = ",".join("?" * len(OPEN_STATES))
        sql = f"SELECT * FROM actions WHERE state IN ({marks}) ORDER BY received_at, rowid"
        return [dict(r) for r in self._conn().execute(sql, OPEN_STATES)]

    def unsettled(self, checked_before: float) -> list[Resumed]:
        """Actions whose outcome the exchange has not told yet ('unknown'), last looked at before a wall-clock
        time, oldest first."""
        sql = "SELECT * FROM actions WHERE state=? AND updated_at < ? ORDER BY received_at, rowid"
        found = []
        for row in self._conn().execute(sql, (UNKNOWN, checked_before)):
            action = parse_frame(row["frame"], row["received_at"])
            if isinstance(action, Action) and action.key == row["key"]:
                found.append(Resumed(action, UNKNOWN, row["updated_at"], row["nonce"]))
        return found

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest actions, newest first."""
        rows = self._conn().execute("SELECT * FROM actions ORDER BY received_at DESC, rowid DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many actions are in each state."""
        return {state: n for state, n in self._conn().execute("SELECT state, COUNT(*) FROM actions GROUP BY state")}

    def all(self) -> Iterator[dict[str, Any]]:
        for row in self._conn().execute("SELECT * FROM actions ORDER BY rowid"):
            yield dict(row)


def action_columns(action: Action, updated_at: float) -> dict[str, Any]:
    return {"key": action.key, "action_id": action.action_id, "event_id": action.event_id, "symbol": action.symbol,
            "side": action.side, "size": None if action.size is None else str(action.size),
            "trigger_price": None if action.trigger_price is None else str(action.trigger_price),
            "cloid": action.cloid, "frame": action.frame, "state": RECEIVED, "action_ts": action.timestamp,
            "received_at": action.received_at, "updated_at": updated_at}  # fmt: skip


def insert(conn: sqlite3.Connection, columns: dict[str, Any]) -> int:
    """INSERT OR IGNORE one row; 1 when it was new."""
    sql = f"INSERT OR IGNORE INTO actions ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})"
    return conn.execute(sql, tuple(columns.values())).rowcount
