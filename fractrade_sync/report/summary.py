"""How the agent is doing, from the journal alone: realized PnL, fees, funding and net (exact decimal strings, USDC),
actions by outcome, per coin and per day (UTC), and execution quality per action: latency (frame received -> the
exchange's answer) and slippage in basis points of the average fill price against the signal's `metadata.price` and
against the coin's mid when the action arrived (positive: worse for the trader). The keys of `build()` are stable:
`report --json`, `GET /report.json`, the page and Telegram read them."""

from __future__ import annotations

import datetime as dt
import math
import re
import sqlite3
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

from fractrade_sync.actions import TRADE, Action
from fractrade_sync.frames import parse_frame
from fractrade_sync.storage.journal_table import Reads

ZERO = Decimal(0)
MONEY = ("realized_pnl", "fees", "funding", "net_pnl")
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$", re.IGNORECASE)
_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None, now: float) -> float:
    """`--since`: a span back from now (`30m`, `24h`, `7d`, `2w`) or a UTC date (`2026-12-01`) or date and time
    (`2026-12-01T08:00`); None or '' for everything. ValueError says what is accepted."""
    if not text:
        return 0.0
    span = _SPAN.match(text)
    if span:
        return now - float(span.group(1)) * _SECONDS[span.group(2).lower()]
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: use a span (30m, 24h, 7d, 2w) or a UTC date (2026-12-01)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def day_of(ms: float) -> str:
    """The UTC date of a time in ms, as YYYY-MM-DD."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date().isoformat()


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def spread(values: Iterable[float], digits: int = 1) -> dict[str, Any]:
    """p50, p95 (nearest rank) and max of some figures, and how many; None each when there are none."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "max": None, "count": 0}

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)], digits)

    return {"p50": rank(50), "p95": rank(95), "max": round(ordered[-1], digits), "count": len(ordered)}


def slippage_bps(avg_px: Decimal, reference: Decimal | None, is_buy: bool) -> float | None:
    """The average fill price against a reference, in basis points; positive when the trader got a worse price
    (paid more on a buy, got less on a sell)."""
    if reference is None or reference <= 0:
        return None
    moved = (avg_px - reference) if is_buy else (reference - avg_px)
    return float(moved / reference * 10_000)


def _money(totals: dict[str, Decimal]) -> dict[str, str]:
    realized = totals["realized_pnl"]
    fees = totals["fees"]
    funding = totals["funding"]
    return {
        "realized_pnl": str(realized),
        "fees": str(fees),
        "funding": str(funding),
        "net_pnl": str(realized - fees + funding),
    }


def _new_totals() -> dict[str, Decimal]:
    return {"realized_pnl": ZERO, "fees": ZERO, "funding": ZERO}


def execution(row: dict[str, Any], fills: list[dict[str, Any]]) -> dict[str, Any]:
    """One action's line: what it was, its outcome, its fills' realized PnL and fees, latency and slippage."""
    line = {
        "time": iso(row["received_at"]),
        "action": row["action_id"],
        "symbol": row["symbol"],
        "side": row["side"],
        "size": row["size"],
        "outcome": row["state"],
        "avg_px": row["avg_px"],
        "filled_sz": row["filled_sz"],
        "latency_ms": None if row["latency_ms"] is None else round(float(row["latency_ms"]), 1),
        "ref_price": None,
        "arrival_mid": row.get("arrival_mid"),
        "slippage_bps": None,
        "slippage_vs_mid_bps": None,
        "realized_pnl": str(sum((Decimal(f["closed_pnl"]) for f in fills), ZERO)),
        "fees": str(sum((Decimal(f["fee"]) for f in fills), ZERO)),
    }
    if row["action_id"] != TRADE or not row["avg_px"]:
        return line
    action = parse_frame(row["frame"], row["received_at"])
    if not isinstance(action, Action):
        return line
    avg = Decimal(row["avg_px"])
    line["ref_price"] = None if action.ref_price is None else str(action.ref_price)
    signal = slippage_bps(avg, action.ref_price, action.is_buy)
    mid = slippage_bps(avg, Decimal(row["arrival_mid"]) if row.get("arrival_mid") else None, action.is_buy)
    line["slippage_bps"] = None if signal is None else round(signal, 2)
    line["slippage_vs_mid_bps"] = None if mid is None else round(mid, 2)
    return line


class JournalFile(Reads):
    """A journal file read for one report on its own connection (the status endpoint's request threads come and go:
    the journal's per-thread connections would pile up); close() after."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(path, timeout=10.0)
        self._db.row_factory = sqlite3.Row

    def _conn(self) -> sqlite3.Connection:
        return self._db

    def close(self) -> None:
        self._db.close()


def build_from(path: Path, since: float = 0.0) -> dict[str, Any]:
    """The report over a journal file (the running service's: `GET /report.json`, `GET /`)."""
    journal = JournalFile(path)
    try:
        return build(journal, since)
    finally:
        journal.close()


def money_by_coin(path: Path) -> dict[str, dict[str, Decimal]]:
    """The journal's totals by coin since its start: realized PnL, fees, funding (the metrics read it per scrape)."""
    journal = JournalFile(path)
    try:
        fills = journal.fills_since(0)
        funding = journal.funding_since(0)
    finally:
        journal.close()
    coins: dict[str, dict[str, Decimal]] = defaultdict(_new_totals)
    for fill in fills:
        coins[fill["coin"]]["realized_pnl"] += Decimal(fill["closed_pnl"])
        coins[fill["coin"]]["fees"] += Decimal(fill["fee"])
    for record in funding:
        coins[record["coin"]]["funding"] += Decimal(record["usdc"])
    return dict(coins)


def build(journal: Reads, since: float = 0.0, now: float | None = None) -> dict[str, Any]:
    """The report over the journal from `since` (wall-clock seconds; 0: everything)."""
    now = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    since_ms = int(since * 1000)
    fills = journal.fills_since(since_ms)
    funding = journal.funding_since(since_ms)
    actions = journal.actions_since(since)
    totals = _new_totals()
    per_coin: dict[str, dict[str, Any]] = defaultdict(_new_totals)
    per_day: dict[str, dict[str, Any]] = defaultdict(_new_totals)
    by_action: dict[str, list[dict]] = defaultdict(list)
    events: list[tuple[int, Decimal]] = []  # (time ms, net change): the cumulative net PnL
    for fill in fills:
        pnl = Decimal(fill["closed_pnl"])
        fee = Decimal(fill["fee"])
        for bucket in (totals, per_coin[fill["coin"]], per_day[day_of(fill["time"])]):
            bucket["realized_pnl"] += pnl
            bucket["fees"] += fee
        by_action[fill["action_key"]].append(fill)
        events.append((fill["time"], pnl - fee))
    for record in funding:
        usdc = Decimal(record["usdc"])
        for bucket in (totals, per_coin[record["coin"]], per_day[day_of(record["time"])]):
            bucket["funding"] += usdc
        events.append((record["time"], usdc))
    lines = [execution(row, by_action.get(row["key"], [])) for row in actions]
    cumulative = []
    net = ZERO
    for when, change in sorted(events):
        net += change
        cumulative.append({"time": iso(when / 1000), "net_pnl": str(net)})
    day_actions = Counter(day_of(row["received_at"] * 1000) for row in actions)
    return {
        "since": iso(since) if since else None,
        "until": iso(now),
        **_money(totals),
        "actions": dict(sorted(Counter(row["state"] for row in actions).items())),
        "per_coin": {
            coin: {**_money(t), "fills": sum(1 for f in fills if f["coin"] == coin)}
            for coin, t in sorted(per_coin.items())
        },
        "per_day": {
            day: {**_money(per_day[day]), "actions": day_actions.get(day, 0)}
            for day in sorted(set(per_day) | set(day_actions))
        },
        "latency_ms": spread(line["latency_ms"] for line in lines if line["latency_ms"] is not None),
        "slippage_bps": spread((line["slippage_bps"] for line in lines if line["slippage_bps"] is not None), 2),
        "slippage_vs_mid_bps": spread(
            (line["slippage_vs_mid_bps"] for line in lines if line["slippage_vs_mid_bps"] is not None), 2
        ),
        "cumulative": cumulative,
        "executions": lines,
    }


def text(report: dict[str, Any]) -> str:
    """The report for a terminal."""
    span = f"since {report['since']}" if report["since"] else "since the first action"
    out = [
        f"fractrade-sync report {span} (until {report['until']}), USDC",
        f"  realized PnL {report['realized_pnl']}  fees {report['fees']}  funding {report['funding']}  "
        f"net {report['net_pnl']}",
        "  actions: " + (", ".join(f"{state} {n}" for state, n in report["actions"].items()) or "none"),
    ]
    for name, unit in (("latency_ms", "ms"), ("slippage_bps", "bps vs signal"), ("slippage_vs_mid_bps", "bps vs mid")):
        figures = report[name]
        if figures["count"]:
            out.append(
                f"  {name.split('_')[0]} ({unit}): p50 {figures['p50']}  p95 {figures['p95']}  "
                f"worst {figures['max']}  ({figures['count']} actions)"
            )
    if report["per_coin"]:
        out.append("  per coin:")
        out += [
            f"    {coin:<8} net {c['net_pnl']}  (realized {c['realized_pnl']}, fees {c['fees']}, funding "
            f"{c['funding']}; {c['fills']} fills)"
            for coin, c in report["per_coin"].items()
        ]
    if report["per_day"]:
        out.append("  per day (UTC):")
        out += [
            f"    {day}  net {d['net_pnl']}  (realized {d['realized_pnl']}, fees {d['fees']}, funding "
            f"{d['funding']}; {d['actions']} actions)"
            for day, d in report["per_day"].items()
        ]
    return "\n".join(out)
