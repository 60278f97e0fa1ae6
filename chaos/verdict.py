"""The verdict of a chaos run, per action: applied once, or never with a recorded reason; else a double, a silent
loss, a wrong record or an unsettled action."""

from __future__ import annotations

from chaos.schedule import Sent
from fractrade_sync.outcome import OPEN_STATES

APPLIED = ("filled", "partially_filled", "resting")
NEVER = ("expired", "rejected", "failed", "skipped")


def judge(times: int, row: dict | None) -> str:
    """What became of one action: the exchange applied it `times` times, its journal row is `row`."""
    state = row["state"] if row else None
    if times > 1:
        return "double"
    if row is None:
        return "lost"
    if state in OPEN_STATES:
        return "unsettled"
    if times == 1:
        return "once" if state in APPLIED else "wrong record"
    return "never" if state in NEVER and row["reason"] else "wrong record"


def report(seed: int, sent: list[Sent], rows: dict[str, dict], applied_orders: list[dict], out) -> bool:
    """Print each action's verdict and the summary to `out`; True when nothing went wrong."""
    applied: dict[str, int] = {}
    for order in applied_orders:
        cloid = str(order.get("cloid") or "").lower()
        applied[cloid] = applied.get(cloid, 0) + 1
    tally = {"once": 0, "never": 0, "double": 0, "lost": 0, "wrong record": 0, "unsettled": 0}
    print(f"chaos seed {seed}: {len(sent)} actions", file=out)
    for i, one in enumerate(sent):
        times = applied.get(one.cloid.lower(), 0)
        row = rows.get(one.key)
        verdict = judge(times, row)
        tally[verdict] += 1
        state = row["state"] if row else None
        reason = f" ({row['reason'][:90]})" if row and row["reason"] and times != 1 else ""
        print(
            f"{i:4d} {one.key[:10]} applied={times} journal={state}{reason} [{', '.join(one.events)}] -> {verdict}",
            file=out,
        )
    print("summary: " + ", ".join(f"{k} {v}" for k, v in tally.items()), file=out)
    return tally["double"] == tally["lost"] == tally["wrong record"] == tally["unsettled"] == 0
