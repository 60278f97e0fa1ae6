"""POST /control: the simulator's Python API (hl_server.HyperliquidSimulator) as JSON, {"op": name, **arguments},
for a process that drives a simulator it did not start.
"""

from __future__ import annotations

from fractrade_sync.sim.hl_model import ExchangeError

# the simulator's methods /control offers, by op name (set_latency and set_timeout set its attributes)
OPS = (
    "add_account",
    "approve_agent",
    "set_mid",
    "set_mark",
    "start_ticker",
    "set_liquidity",
    "add_sub_account",
    "add_vault",
    "fund_dex",
    "cap_open_interest",
    "pay_funding",
    "books",
    "inject",
    "reset_faults",
    "set_latency",
    "set_timeout",
    "set_clock_offset",
    "set_userdata_delay",
    "pause_userdata",
    "set_account_push_interval",
    "set_userdata_snapshots",
    "userdata_pushes",
    "weight_used",
    "set_weight_limit",
    "reset_weights",
    "limit_address",
    "refuse_entry_in_position_tpsl",
    "rejected_orders",
    "mids",
    "applied_orders",
    "applied_count",
    "positions",
    "open_orders",
    "leverage",
    "exchange_log",
    "request_count",
)
_KNOWN = frozenset(OPS)  # an unhashable op raises TypeError: the request goes unanswered


def control(sim, body) -> tuple[int, object]:
    """Run one /control request on `sim`: (http status, answer)."""
    op = body.pop("op", None) if isinstance(body, dict) else None
    if op not in _KNOWN:
        return 400, {"error": f"unknown op {op!r}; ops: {', '.join(OPS)}"}
    if op == "set_latency":
        call = lambda seconds: setattr(sim, "latency_s", float(seconds))
    elif op == "set_timeout":
        call = lambda seconds: setattr(sim, "timeout_s", float(seconds))
    else:
        call = getattr(sim, op)
    try:
        result = call(**body)
    except (TypeError, ValueError, KeyError, ExchangeError) as exc:
        return 400, {"error": f"{op}: {exc}"}
    return 200, {"ok": True} if result is None else result
