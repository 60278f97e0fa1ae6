"""An action's outcome: the journal's states, the Outcome, and its fields, listed once for every channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from fractrade_sync.actions import Action

RECEIVED = "received"
SUBMITTING = "submitting"
FILLED = "filled"
PARTIALLY_FILLED = "partially_filled"
RESTING = "resting"
REJECTED = "rejected"
SKIPPED = "skipped"
FAILED = "failed"
EXPIRED = "expired"
# the exchange did not say what became of an order that may be in flight: not final, settled by cloid and nonce as
# soon as the exchange answers (the journal ends with the truth)
UNKNOWN = "unknown"
OPEN_STATES = (RECEIVED, SUBMITTING, UNKNOWN)
TERMINAL_STATES = (FILLED, PARTIALLY_FILLED, RESTING, REJECTED, SKIPPED, FAILED, EXPIRED)

# The outcome's fields, by the names every channel uses: the JSON log, the webhook and `status --json`.
OUTCOME_FIELDS = (
    "action_key",
    "action",
    "symbol",
    "side",
    "size",
    "trigger_price",
    "outcome",
    "reason",
    "oid",
    "filled_sz",
    "avg_px",
    "latency_ms",
)
_ROW_COLUMNS = {"action_key": "key", "action": "action_id", "outcome": "state"}  # journal column, where it differs


@dataclass(frozen=True)
class Outcome:
    """The terminal result of one action, as journaled and logged."""

    state: str
    reason: str = ""
    oid: int | None = None
    filled_sz: str | None = None
    avg_px: str | None = None
    latency_ms: float | None = None


def unknown_outcome(why: str, action: Action) -> Outcome:
    """The outcome of an action the exchange has not told about yet: open, settled by cloid later."""
    return Outcome(UNKNOWN, f"{why}; settled by cloid {action.cloid} as soon as the exchange answers")


def outcome_fields(action: Action, outcome: Outcome) -> dict[str, Any]:
    """OUTCOME_FIELDS of one action's outcome (numbers as exact text, latency in ms)."""
    return {
        "action_key": action.key,
        "action": action.action_id,
        "symbol": action.symbol,
        "side": action.side,
        "size": None if action.size is None else str(action.size),
        "trigger_price": None if action.trigger_price is None else str(action.trigger_price),
        "outcome": outcome.state,
        "reason": outcome.reason or None,
        "oid": outcome.oid,
        "filled_sz": outcome.filled_sz,
        "avg_px": None if outcome.avg_px is None else str(outcome.avg_px),
        "latency_ms": None if outcome.latency_ms is None else round(float(outcome.latency_ms), 1),
    }


def row_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """OUTCOME_FIELDS of a journal row."""
    return {name: row.get(_ROW_COLUMNS.get(name, name)) for name in OUTCOME_FIELDS}


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
