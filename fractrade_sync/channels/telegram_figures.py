"""What Telegram's /profit, /daily, /positions and /balance answer (on the bot's polling thread): the first two from
the journal (report.py), the last two from one read of the exchange each over REST on the caller's thread (never the
worker's connection), as /status's positions are read."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

import requests

from fractrade_sync.exchange.wire import trigger_kind
from fractrade_sync.report.summary import build_from


def _day_start(now: float) -> float:
    """The start of today (UTC) as wall-clock seconds."""
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    return dt.datetime(today.year, today.month, today.day, tzinfo=dt.timezone.utc).timestamp()


def _money_line(label: str, figures: dict[str, Any]) -> str:
    return (
        f"{label}: net {figures['net_pnl']} USDC (realized {figures['realized_pnl']}, fees {figures['fees']}, "
        f"funding {figures['funding']})"
    )


def profit_text(journal: Path, now: float) -> str:
    """/profit: realized PnL, fees, funding and net, today (UTC) and since the first action."""
    today = build_from(journal, _day_start(now))
    everything = build_from(journal)
    lines = [_money_line("today", today), _money_line("since the first action", everything)]
    slip = everything["slippage_bps"]
    if slip["count"]:
        lines.append(f"slippage vs the signal: p50 {slip['p50']} bps, worst {slip['max']} bps ({slip['count']} trades)")
    return "\n".join(lines)


def daily_text(journal: Path, now: float, days: int = 7) -> str:
    """/daily: net PnL of each of the last `days` days (UTC), today last."""
    since = _day_start(now) - (days - 1) * 86_400
    per_day = build_from(journal, since)["per_day"]
    lines = []
    for n in range(days):
        day = dt.datetime.fromtimestamp(since + n * 86_400, dt.timezone.utc).date().isoformat()
        figures = per_day.get(day)
        lines.append(_money_line(day, figures) if figures else f"{day}: no fills, no funding")
    return "\n".join(lines)


def _info(api_url: str, payload: dict) -> Any:
    answer = requests.post(api_url.rstrip("/") + "/info", json=payload, timeout=5)
    answer.raise_for_status()
    return answer.json()


def _covers(orders: list[dict], coin: str, size: Decimal, kind: str) -> str:
    """Whether reduce-only triggers of a kind ("stop_loss" or "take_profit") cover a position: whole, partly, or
    not."""
    mine = [o for o in orders if o.get("coin") == coin and trigger_kind(o) == kind]
    if any(o.get("isPositionTpsl") for o in mine):
        return "whole"
    covered = sum((Decimal(str(o.get("sz", "0"))) for o in mine), Decimal(0))
    return "whole" if mine and covered >= abs(size) else ("partly" if mine else "NONE")


def positions_text(api_url: str, user: str, read: Callable[[str, dict], Any] = _info) -> str:
    """/positions: each open position with entry, size, unrealized PnL, and whether a stop loss and a take profit
    cover it."""
    try:
        state = read(api_url, {"type": "clearinghouseState", "user": user})
        orders = read(api_url, {"type": "frontendOpenOrders", "user": user})
        positions = [p["position"] for p in state["assetPositions"]]
        lines = []
        for p in positions:
            size = Decimal(str(p["szi"]))
            stop = _covers(orders, p["coin"], size, "stop_loss")
            take = _covers(orders, p["coin"], size, "take_profit")
            lines.append(
                f"{p['coin']} {'long' if size > 0 else 'short'} {abs(size)} @ {p['entryPx']}; unrealized "
                f"{p['unrealizedPnl']} USDC; stop loss: {stop}; take profit: {take}"
            )
    except (requests.RequestException, ValueError, KeyError, TypeError, InvalidOperation) as exc:
        return f"positions unknown ({type(exc).__name__}): the exchange could not be read"
    return "\n".join(lines) or "no open positions"


def balance_text(api_url: str, user: str, read: Callable[[str, dict], Any] = _info) -> str:
    """/balance: account value, margin used, what can be withdrawn."""
    try:
        state = read(api_url, {"type": "clearinghouseState", "user": user})
        summary = state["marginSummary"]
        return (
            f"account value {summary['accountValue']} USDC; margin used {summary['totalMarginUsed']}; "
            f"positions' notional {summary['totalNtlPos']}; withdrawable {state.get('withdrawable', '?')}"
        )
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        return f"balance unknown ({type(exc).__name__}): the exchange could not be read"
