"""How the operator's channels word what happened: an outcome on one line, a journal row as /status lists it, and
lines folded into one message under a size limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from fractrade_sync.actions import KIND_OF

if TYPE_CHECKING:
    from fractrade_sync.actions import Action
    from fractrade_sync.outcome import Outcome


def outcome_text(action: Action, outcome: Outcome) -> str:
    """One short line: 'trade BUY 0.01 BTC -> filled 0.01 @ 50000.0, 12 ms'."""
    text = f"{action.describe()} -> {outcome.state}"
    text += f" {outcome.filled_sz} @ {outcome.avg_px}" if outcome.filled_sz else ""
    text += f", {outcome.latency_ms:.0f} ms" if outcome.latency_ms is not None else ""
    return text + (f": {outcome.reason[:200]}" if outcome.reason else "")


def journal_line(row: Mapping[str, Any]) -> str:
    """One journal row as /status lists it: 'trade BUY 0.01 BTC: filled'; a rejected frame that named no action (not
    JSON, not an object) as 'frame: rejected (its reason)'."""
    action_id = row.get("action_id")
    kind = KIND_OF.get(action_id, action_id) if isinstance(action_id, str) and action_id else "frame"
    words = [_shown(kind, 40), *(_shown(row[name], 40) for name in ("side", "size", "symbol") if row.get(name))]
    reason = row.get("reason")
    return f"{' '.join(words)}: {row.get('state') or 'unknown'}" + (f" ({_shown(reason, 80)})" if reason else "")


def _shown(value: Any, limit: int) -> str:
    """A journal field on one line, cut to `limit` characters (a rejected frame's fields are whatever it carried)."""
    return " ".join(str(value).split())[:limit]


def fold(lines: list[str], limit: int) -> tuple[str, int]:
    """Lines joined into one message of at most `limit` characters, '… and N more' for those that do not fit; and N.
    The first line always fits when it and that tail do (telegram.py cuts each line to MAX_LINE for that)."""
    tail = len(f"\n… and {len(lines)} more")
    kept: list[str] = []
    size = -1
    for i, line in enumerate(lines):
        if size + 1 + len(line) + (0 if i == len(lines) - 1 else tail) > limit:
            break
        kept.append(line)
        size += 1 + len(line)
    left = len(lines) - len(kept)
    return "\n".join(kept) + (f"\n… and {left} more" if left else ""), left
