"""The journal's table: its schema, the one INSERT that creates a row, and every read of it (status, the CLI,
recovery). journal.py writes it; this module only reads, apart from `insert`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Iterator

from fractrade_sync.actions import STOP_LOSS, TAKE_PROFIT, Action
from fractrade_sync.frames import parse_frame
from fractrade_sync.outcome import OPEN_STATES, RECEIVED, RESTING, UNKNOWN

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
# what the exchange says happened (ledger.py): each fill of this service's orders once by (tid, oid) (one trade's two
# sides share a tid: the oid tells this account's), each funding settlement once by (time, coin)
LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS fills (
    tid INTEGER NOT NULL, oid INTEGER NOT NULL, action_key TEXT, cloid TEXT, coin TEXT NOT NULL, side TEXT NOT NULL,
    px TEXT NOT NULL, sz TEXT NOT NULL, fee TEXT NOT NULL, closed_pnl TEXT NOT NULL, time INTEGER NOT NULL, dir TEXT,
    hash TEXT, PRIMARY KEY (tid, oid)
);
CREATE INDEX IF NOT EXISTS fills_time ON fills(time);
CREATE TABLE IF NOT EXISTS funding (
    time INTEGER NOT NULL, coin TEXT NOT NULL, usdc TEXT NOT NULL, szi TEXT, rate TEXT, PRIMARY KEY (time, coin)
);
"""
FILL_COLUMNS = tuple("tid oid action_key cloid coin side px sz fee closed_pnl time dir hash".split())
FUNDING_COLUMNS = ("time", "coin", "usdc", "szi", "rate")
SENT = "UPDATE actions SET state=?, nonce=?, attempts=attempts+1, updated_at=? WHERE key=?"
FINISH = "UPDATE actions SET state=?, reason=?, oid=?, filled_sz=?, avg_px=?, latency_ms=?, updated_at=? WHERE key=?"


def create(conn: sqlite3.Connection) -> None:
    """The tables and their indexes (the arrival_mid column added to a journal 0.1.0 wrote)."""
    conn.executescript(SCHEMA + LEDGER_SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(actions)")}
    # the coin's mid when the action arrived (the Action's own, written with its row): the report's slippage against it
    if "arrival_mid" not in columns:
        conn.execute("ALTER TABLE actions ADD COLUMN arrival_mid TEXT")


@dataclass(frozen=True)
class Resumed:
    """An action left unfinished: 'received' (never sent), 'submitting' (an order may be in flight since `since`, a
    wall-clock time) or 'unknown' (the exchange did not say what became of it)."""

    action: Action
    state: str
    since: float
    nonce: int | None = None  # the nonce of the order that may be in flight (None: never sent, or its note was torn)


class Reads:
    """The journal's reads; the class using it provides `_conn()`, this thread's connection."""

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def has_resting_protection(self, symbol: str) -> bool:
        """Whether a stop loss or take profit on this coin was ever left resting (it may still be live)."""
        sql = "SELECT 1 FROM actions WHERE state=? AND action_id IN (?, ?) AND symbol=? COLLATE NOCASE LIMIT 1"
        return self._conn().execute(sql, (RESTING, STOP_LOSS, TAKE_PROFIT, symbol)).fetchone() is not None

    def protected_symbols(self) -> list[str]:
        """The coins a stop loss or take profit of this service was ever left resting on (it may still be live)."""
        sql = "SELECT DISTINCT symbol FROM actions WHERE state=? AND action_id IN (?, ?)"
        return [row[0] for row in self._conn().execute(sql, (RESTING, STOP_LOSS, TAKE_PROFIT))]

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
        sql = (
            "SELECT 1 FROM actions WHERE symbol=? COLLATE NOCASE AND received_at > ? AND key != ? "
            "AND state NOT IN ('rejected', 'skipped', 'expired') LIMIT 1"
        )
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

    # ---- the ledger's reads (ledger.py, report.py) ------------------------------------------------
    def keys_of_orders(self, cloids: list[str], oids: list[int]) -> tuple[dict[str, str], dict[int, str]]:
        """Which actions of this service placed these orders: ({cloid (lower case): key}, {oid: key})."""
        by_cloid: dict[str, str] = {}
        by_oid: dict[int, str] = {}
        conn = self._conn()
        wanted = sorted({c.lower() for c in cloids if c})
        for start in range(0, len(wanted), 500):  # (SQLite's bound on variables in one statement)
            part = wanted[start : start + 500]
            sql = f"SELECT lower(cloid), key FROM actions WHERE lower(cloid) IN ({','.join('?' * len(part))})"
            by_cloid.update(conn.execute(sql, part).fetchall())
        numbers = sorted({o for o in oids if isinstance(o, int)})
        for start in range(0, len(numbers), 500):
            part = numbers[start : start + 500]
            sql = f"SELECT oid, key FROM actions WHERE oid IN ({','.join('?' * len(part))})"
            by_oid.update(conn.execute(sql, part).fetchall())
        return by_cloid, by_oid

    def fills_since(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """The journaled fills at or after a time (ms), oldest first."""
        sql = "SELECT * FROM fills WHERE time >= ? ORDER BY time, tid"
        return [dict(r) for r in self._conn().execute(sql, (since_ms,))]

    def funding_since(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """The journaled funding settlements at or after a time (ms), oldest first."""
        sql = "SELECT * FROM funding WHERE time >= ? ORDER BY time, coin"
        return [dict(r) for r in self._conn().execute(sql, (since_ms,))]

    def last_funding_time(self) -> int | None:
        """The time (ms) of the latest journaled funding settlement."""
        return self._conn().execute("SELECT MAX(time) FROM funding").fetchone()[0]

    def actions_since(self, since: float = 0.0) -> list[dict[str, Any]]:
        """The actions received at or after a wall-clock time, oldest first."""
        sql = "SELECT * FROM actions WHERE received_at >= ? ORDER BY received_at, rowid"
        return [dict(r) for r in self._conn().execute(sql, (since,))]


def action_columns(action: Action, updated_at: float) -> dict[str, Any]:
    return {
        "key": action.key,
        "action_id": action.action_id,
        "event_id": action.event_id,
        "symbol": action.symbol,
        "side": action.side,
        "size": None if action.size is None else str(action.size),
        "trigger_price": None if action.trigger_price is None else str(action.trigger_price),
        "cloid": action.cloid,
        "frame": action.frame,
        "state": RECEIVED,
        "action_ts": action.timestamp,
        "received_at": action.received_at,
        "updated_at": updated_at,
        "arrival_mid": None if action.arrival_mid is None else str(action.arrival_mid),
    }


def insert(conn: sqlite3.Connection, columns: dict[str, Any]) -> int:
    """INSERT OR IGNORE one row; 1 when it was new."""
    sql = f"INSERT OR IGNORE INTO actions ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})"
    return conn.execute(sql, tuple(columns.values())).rowcount
