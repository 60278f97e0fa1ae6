"""The ledger: what the exchange says happened to this service's orders and the account, journaled exactly once.

Fills (price, size, fee, closedPnl, time) of this service's orders, matched to their actions by cloid (else by oid),
and the account's funding settlements go into the journal's `fills` and `funding` tables, each once by the
exchange's own identity (a fill by tid and oid, a settlement by time and coin), so a fill seen twice (the userFills
feed and a REST read, a reconnect's snapshot, a restart) is one fill. Reads over REST are few and light: the account's
fills after an action filled, its funding at start and once an hour (funding settles hourly), and both when asked;
all on the worker's idle step, through the exchange endpoint's request-weight budget. (The coin's mid when each
action arrived is the action's own, kept on its journal row: slippage against it is in report.py.)"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable

from fractrade_sync.errors import TransientError
from fractrade_sync.outcome import FILLED, PARTIALLY_FILLED

if TYPE_CHECKING:
    from fractrade_sync.actions import Action
    from fractrade_sync.exchange.client import HyperliquidClient
    from fractrade_sync.feeds.exchange_feed import ExchangeFeed
    from fractrade_sync.outcome import Outcome
    from fractrade_sync.storage.journal import Journal

log = logging.getLogger("fractrade_sync.ledger")
FUNDING_EVERY = 3600.0  # seconds between two reads of the account's funding: it settles once an hour
FUNDING_LAG = 60.0  # seconds past the hour before reading it (the settlement's record is there by then)
PUSHED_KEPT = 256  # fills held for the worker's idle step at most; past it the feed's thread journals them at once
FEED_GRACE = 10.0  # seconds the userFills feed has to report an action's fill before the account's fills are read
HOUR_MS = 3_600_000


def _number(value: Any) -> str | None:
    """An exchange decimal as exact text, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return str(value) if number.is_finite() else None


def fill_row(fill: Any) -> dict[str, Any] | None:
    """A userFills fill (push or answer) as a journal row, or None when it does not say what a fill must say."""
    if not isinstance(fill, dict):
        return None
    tid = fill.get("tid")
    oid = fill.get("oid")
    when = fill.get("time")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (tid, oid, when)):
        return None
    numbers = {
        name: _number(fill.get(field))
        for name, field in (("px", "px"), ("sz", "sz"), ("fee", "fee"), ("closed_pnl", "closedPnl"))
    }
    if None in numbers.values() or not isinstance(fill.get("coin"), str) or fill.get("side") not in ("B", "A"):
        return None
    cloid = fill.get("cloid")
    return {
        "tid": tid,
        "oid": oid,
        "cloid": cloid.lower() if isinstance(cloid, str) else None,
        "coin": fill["coin"],
        "side": fill["side"],
        "time": when,
        "dir": fill.get("dir"),
        "hash": fill.get("hash"),
        **numbers,
    }


def funding_row(record: Any) -> dict[str, Any] | None:
    """A userFunding record as a journal row, or None when it is not a funding settlement that says its amount."""
    delta = record.get("delta") if isinstance(record, dict) else None
    if not isinstance(delta, dict) or delta.get("type") != "funding" or not isinstance(delta.get("coin"), str):
        return None
    when = record.get("time")
    usdc = _number(delta.get("usdc"))
    if not isinstance(when, int) or isinstance(when, bool) or usdc is None:
        return None
    return {
        "time": when,
        "coin": delta["coin"],
        "usdc": usdc,
        "szi": _number(delta.get("szi")),
        "rate": _number(delta.get("fundingRate")),
    }


class Ledger:
    """Fills and funding into the journal, once each. `fills` may be called from any thread (the userFills feed's,
    the worker's); `idle` runs on the worker (the only thread using the client)."""

    def __init__(
        self,
        journal: Journal,
        client: HyperliquidClient,
        feed: ExchangeFeed | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.journal = journal
        self.client = client
        self.feed = feed
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._fills_due = True  # read the account's fills at the next idle step (at start; a fill the feed missed)
        self._awaiting: dict[str, float] = {}  # action key -> until when its fill is awaited from the feed
        self._pushed: list[Any] = []  # fills the feed reported, not journaled yet
        self._funding_due = True
        self._funding_next = float("-inf")  # wall-clock time of the next hourly funding read

    # ---- entry points -----------------------------------------------------------------------------------
    def pushed(self, fills: list[Any]) -> None:
        """A userFills push's fills (the feed's thread): kept until the worker's next idle step journals them, so
        that no journal write competes with orders being sent (a burst's fills are journaled once it is over)."""
        with self._lock:
            self._pushed.extend(fills)
            many = len(self._pushed) >= PUSHED_KEPT
            batch, self._pushed = (self._pushed, []) if many else ([], self._pushed)
        if batch:  # a long busy spell: journaled here, in one transaction, rather than held without bound
            self.fills(batch)

    def fills(self, fills: list[Any]) -> int:
        """Journal the fills of this service's orders among these (a userFills push or answer); each once. Returns
        how many were new. A fill of an order this service did not place is left out."""
        rows = [row for row in map(fill_row, fills) if row is not None]
        if len(rows) < len(fills):
            log.warning("ledger: %d fill(s) that do not say what a fill must say were left out", len(fills) - len(rows))
        if not rows:
            return 0
        by_cloid, by_oid = self.journal.keys_of_orders([r["cloid"] for r in rows], [r["oid"] for r in rows])
        mine = []
        for row in rows:
            key = by_cloid.get(row["cloid"] or "") or by_oid.get(row["oid"])
            if key is not None:
                mine.append({**row, "action_key": key})
        with self._lock:
            for row in mine:
                self._awaiting.pop(row["action_key"], None)
        return len(self.journal.record_fills(mine))

    def funding(self, records: list[Any]) -> int:
        """Journal the account's funding settlements among these (a userFunding answer); each once. Returns how many
        were new."""
        rows = [row for row in map(funding_row, records) if row is not None]
        return len(self.journal.record_funding(rows))

    def outcome(self, action: Action, outcome: Outcome) -> None:
        """A pipeline listener: an order that filled is awaited from the userFills feed (no request); the account's
        fills are read at an idle step only when the feed has not reported it within FEED_GRACE (or there is no
        feed)."""
        if outcome.state in (FILLED, PARTIALLY_FILLED):
            if self.feed is None:
                self._fills_due = True
            else:
                with self._lock:
                    self._awaiting[action.key] = self.monotonic() + FEED_GRACE

    def ask(self) -> None:
        """Read the account's fills and funding at the next idle step (a test, a report that wants them now)."""
        self._fills_due = self._funding_due = True

    # ---- the worker's idle step ---------------------------------------------------------------------------
    def idle(self) -> None:
        """Worker, when idle: journal the fills the feed pushed; read the account's fills when due; its funding when
        due."""
        with self._lock:
            pushed = self._pushed
            self._pushed = []
        if pushed:
            self.fills(pushed)
        with self._lock:
            late = [key for key, until in self._awaiting.items() if until <= self.monotonic()]
            for key in late:
                del self._awaiting[key]
        if self._fills_due or late:
            self._fills_due = False
            self._read_fills()
        now = self.clock()
        if self._funding_due or now >= self._funding_next:
            self._funding_due = False
            self._funding_next = (now // FUNDING_EVERY + 1) * FUNDING_EVERY + FUNDING_LAG
            self._read_funding()

    def _read_fills(self) -> None:
        try:
            self.fills(self.client.fills())
        except TransientError as exc:  # asked again at the next idle step
            self._fills_due = True
            log.debug("ledger: the account's fills could not be read now (%s)", exc)

    def _read_funding(self) -> None:
        """The account's funding since the last one journaled (an hour before it: a settlement's record may come
        late), or since the start of the first journaled action's hour; paged by the last time seen."""
        last = self.journal.last_funding_time()
        if last is None:
            first = self.journal.actions_since(0.0)[:1]
            if not first:
                return  # nothing traded yet: no funding of this service's to read
            last = int(first[0]["received_at"] * 1000)
        start = max(0, last - HOUR_MS)
        try:
            for _page in range(10):  # at most 10 requests a read (each 20 weight or more)
                records = self.client.funding(start)
                if not isinstance(records, list):
                    log.warning("ledger: a userFunding answer that is not a list: %s", str(records)[:120])
                    return
                self.funding(records)
                times = [r["time"] for r in records if isinstance(r, dict) and isinstance(r.get("time"), int)]
                if len(records) < 500 or not times or max(times) + 1 <= start:
                    return
                start = max(times) + 1
        except TransientError as exc:
            self._funding_due = True
            log.debug("ledger: the account's funding could not be read now (%s)", exc)
