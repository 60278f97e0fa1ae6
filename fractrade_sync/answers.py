"""The exchange's answers read as Outcomes (pure): an order's answer, an orderStatus, an error's text."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .exchange import TransientError
from .outcome import FAILED, FILLED, PARTIALLY_FILLED, REJECTED, RESTING, Outcome
from .rules import to_wire

FOUND = "found on the exchange by cloid"


def order_outcome(result: dict, size: Decimal, latency_ms: float, index: int = 0) -> Outcome:
    """The outcome of one order from the exchange's answer to the request that carried it (`size`: what was asked;
    `index`: its place in the request: the answer has one status per order, in order). A request refused as a
    whole refuses each of its orders."""
    if result.get("status") != "ok":
        return Outcome(REJECTED, error_text(result), latency_ms=latency_ms)
    statuses = result.get("response", {}).get("data", {}).get("statuses") or []
    status = statuses[index] if index < len(statuses) else {}
    if isinstance(status, dict) and "filled" in status:
        filled = status["filled"]
        total = Decimal(str(filled.get("totalSz", "0")))
        state = FILLED if total >= size else PARTIALLY_FILLED
        return Outcome(state, "", filled.get("oid"), to_wire(total), str(filled.get("avgPx")), latency_ms)
    if isinstance(status, dict) and "resting" in status:
        return Outcome(RESTING, "", status["resting"].get("oid"), latency_ms=latency_ms)
    if isinstance(status, dict) and "error" in status:
        return Outcome(REJECTED, str(status["error"]), latency_ms=latency_ms)
    return Outcome(FAILED, f"unexpected answer from the exchange: {str(result)[:200]}", latency_ms=latency_ms)


def status_outcome(status: Any) -> Outcome | None:
    """What an orderStatus answer says happened to the order; None only for the exchange's explicit "unknown".

    https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint#query-order-status-by-oid-or-cloid
    {"status": "unknownOid"} when the exchange has no such order, {"status": "order", "order": {"order": {...},
    "status": "filled", ...}} when it has. Anything else (a gateway's page, null, another shape) is "don't know
    yet" (TransientError), never a reason to send again."""
    kind = status.get("status") if isinstance(status, dict) else None
    if kind == "unknownOid":
        return None
    info = status.get("order") if kind == "order" else None
    order = info.get("order") if isinstance(info, dict) else None
    if not isinstance(order, dict):
        raise TransientError(f"orderStatus answered neither an order nor unknownOid: {str(status)[:120]}")
    state = info.get("status", "")
    oid = order.get("oid")
    orig = Decimal(str(order.get("origSz", "0")))
    filled = orig - Decimal(str(order.get("sz", "0")))
    if state in ("open", "triggered"):
        return Outcome(RESTING, FOUND, oid=oid, filled_sz=to_wire(filled))
    if state == "filled":
        return Outcome(FILLED, FOUND, oid=oid, filled_sz=to_wire(orig))
    if filled > 0:
        return Outcome(PARTIALLY_FILLED, f"{FOUND} ({state})", oid=oid, filled_sz=to_wire(filled))
    return Outcome(REJECTED, f"{FOUND}: {state}", oid=oid)


def nonce_refusal(result: dict) -> str | None:
    """'used' when the exchange refused a request because its nonce was used already, 'low' when the nonce left the
    window (it can never be used again either); else None. Hyperliquid's texts: "Invalid nonce: duplicate nonce
    <n>", "Invalid nonce: nonce too low <n> < <least>" (as public clients quote them; the docs describe the rule:
    https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/nonces-and-api-wallets)."""
    if result.get("status") != "err":
        return None
    text = str(result.get("response", ""))
    if text.startswith("Invalid nonce: duplicate nonce"):
        return "used"
    if text.startswith("Invalid nonce: nonce too low"):
        return "low"
    return None


def error_text(result: dict) -> str:
    """The exchange's reason for refusing a request, verbatim."""
    response = result.get("response")
    if isinstance(response, str):
        return response
    if isinstance(response, dict):
        statuses = response.get("data", {}).get("statuses") or []
        for status in statuses:
            if isinstance(status, dict) and "error" in status:
                return str(status["error"])
    return str(result.get("error") or result)[:300]
