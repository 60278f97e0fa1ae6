"""The exchange's answers read as Outcomes (pure): an order's answer, an orderStatus, an error's text."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from fractrade_sync.errors import TransientError
from fractrade_sync.exchange.rules import to_wire
from fractrade_sync.outcome import FILLED, PARTIALLY_FILLED, REJECTED, RESTING, Outcome

FOUND = "found on the exchange by cloid"
WHOLE = " (for the whole request)"  # a reason the exchange gave once for every order of a request


WAITING = {  # bare-string statuses of a grouped order (EXCHANGE.md): accepted, and waiting
    "waitingForFill": "waiting for its parent order to fill",
    "waitingForTrigger": "waiting for its trigger",
}


def order_outcome(result: dict, size: Decimal, latency_ms: float, index: int = 0) -> Outcome | None:
    """The outcome of one order from the exchange's answer to the request that carried it (`size`: what was asked;
    `index`: its place in the request: the answer has one status per order, in order). A request refused as a
    whole refuses each of its orders. None when the request was taken (`ok`) but this order's status cannot be
    read: it is settled by cloid, as a lost answer is."""
    if result.get("status") != "ok":
        return Outcome(REJECTED, error_text(result), latency_ms=latency_ms)
    response = result.get("response")
    data = response.get("data") if isinstance(response, dict) else None
    statuses = data.get("statuses") if isinstance(data, dict) else None
    status = statuses[index] if isinstance(statuses, list) and index < len(statuses) else None
    if status is None and isinstance(statuses, list) and len(statuses) == 1 and _is_error(statuses[0]):
        # pre-validation "returns only one error ... for the entire payload": none of it was applied (EXCHANGE.md)
        return Outcome(REJECTED, f"{statuses[0]['error']}{WHOLE}", latency_ms=latency_ms)
    if isinstance(status, str) and status in WAITING:
        return Outcome(RESTING, WAITING[status], latency_ms=latency_ms)
    if not isinstance(status, dict):
        return None
    try:
        if "filled" in status:
            filled = status["filled"]
            total = Decimal(str(filled["totalSz"]))
            state = FILLED if total >= size else PARTIALLY_FILLED
            return Outcome(state, "", filled.get("oid"), to_wire(total), str(filled["avgPx"]), latency_ms)
        if "resting" in status:
            return Outcome(RESTING, "", status["resting"]["oid"], latency_ms=latency_ms)
    except (KeyError, TypeError, ArithmeticError):
        return None
    if "error" in status:
        return Outcome(REJECTED, plain(str(status["error"])), latency_ms=latency_ms)
    return None


def _is_error(status: Any) -> bool:
    return isinstance(status, dict) and "error" in status


def status_outcome(status: Any, fills: Callable[[int], tuple[Decimal, str | None]]) -> Outcome | None:
    """What an orderStatus answer says happened to the order; None only for the exchange's explicit "unknown".
    `fills(oid)`: the size filled and its average price, from the fills (an order's `origSz - sz` is not what
    filled: the exchange shrinks a reduce-only order to the position; EXCHANGE.md).

    https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint#query-order-status-by-oid-or-cloid
    {"status": "unknownOid"} when the exchange has no such order, {"status": "order", "order": {"order": {...},
    "status": "filled", ...}} when it has. Anything else (a gateway's page, null, another shape) is "don't know
    yet" (TransientError), never a reason to send again."""
    kind = status.get("status") if isinstance(status, dict) else None
    if kind == "unknownOid":
        return None
    info = status.get("order") if kind == "order" else None
    order = info.get("order") if isinstance(info, dict) else None
    state = info.get("status") if isinstance(info, dict) else None
    if not isinstance(order, dict) or not isinstance(order.get("oid"), int) or not isinstance(state, str):
        raise TransientError(f"orderStatus answered neither an order nor unknownOid: {str(status)[:120]}")
    oid = order["oid"]
    try:
        asked = Decimal(str(order["origSz"]))
        untouched = asked == Decimal(str(order["sz"])) and state != "filled"
    except (KeyError, ArithmeticError):
        raise TransientError(f"orderStatus answered an unreadable order: {str(order)[:120]}") from None
    filled, avg = (Decimal(0), None) if untouched else fills(oid)
    if state == "filled" and filled <= 0:  # its fills are not shown (yet): don't know how much
        raise TransientError(f"order {oid} filled, but its fills are not shown yet")
    if state in ("open", "triggered"):
        return Outcome(RESTING, FOUND, oid=oid, filled_sz=to_wire(filled) if filled else None, avg_px=avg)
    if state == "filled" and filled >= asked:  # (as an answer's "filled" is read: order_outcome)
        return Outcome(FILLED, FOUND, oid=oid, filled_sz=to_wire(filled), avg_px=avg)
    if order.get("isTrigger") and filled == 0 and state.endswith(("canceled", "Canceled")):
        # a trigger the exchange took (it rested), canceled since (replaced, its position closed): it was executed;
        # only a "...Rejected" status says it never rested (EXCHANGE.md §4)
        return Outcome(RESTING, f"{FOUND} (it rested; {state} since)", oid=oid)
    if filled > 0:
        return Outcome(PARTIALLY_FILLED, f"{FOUND} ({state})", oid=oid, filled_sz=to_wire(filled), avg_px=avg)
    return Outcome(REJECTED, f"{FOUND}: {state}", oid=oid)


def filled_by(fills: list[dict], oid: int) -> tuple[Decimal, str | None]:
    """The size an order filled and its average price, from fills (wire.fills checked their shape)."""
    mine = [(Decimal(str(f["sz"])), Decimal(str(f["px"]))) for f in fills if f.get("oid") == oid]
    size = sum((sz for sz, _ in mine), Decimal(0))
    if not size:
        return Decimal(0), None
    return size, to_wire(sum((sz * px for sz, px in mine), Decimal(0)) / size)


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


PLAIN = {  # the exchange's texts (EXCHANGE.md §3) that say little to a trader, and what they mean
    "Order would increase open interest while open interest is capped": "the coin's open interest is at its cap: "
    "the exchange takes no order that adds to it now (closing orders still go)",
    "Insufficient margin to place order": "not enough margin for it on the account (for a HIP-3 coin: USDC must "
    "be on that dex, or the account's dex abstraction enabled; see the README)",
}


def plain(text: str) -> str:
    """The exchange's refusal, verbatim, with what it means when that is not plain."""
    meaning = next((m for prefix, m in PLAIN.items() if text.startswith(prefix)), None)
    return f"{text} ({meaning})" if meaning else text


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
