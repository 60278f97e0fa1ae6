"""Hyperliquid's grouped orders: the `order` action's "grouping", "na" | "normalTpsl" | "positionTpsl".

The grouping is a field of the signed action (the SDK's signing.order_wires_to_order_action puts it there), so it is
hashed as sent (hl_exchange_endpoint.recover). The state (hl_state) calls in here to refuse a grouped action as a whole
(`refusal`, before the nonce is spent), to place one (`place`), when a normalTpsl parent ends (`parent_ended`), when
a modify replaces a grouped order (`carry_over`) and when a size-0 position leg fires (`whole_position`).

Each fact names its source in EXCHANGE.md §8 ("Grouped orders: normalTpsl and positionTpsl"), or says "unconfirmed".
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # hl_state imports this module
    from fractrade_sync.sim.hl_model import Order
    from fractrade_sync.sim.hl_state import HyperliquidState

GROUPINGS = ("na", "normalTpsl", "positionTpsl")  # §3: NKT order.ts (the newer {"p": rate} is not modelled)
# The bare per-order statuses of a group's TP/SL legs (§3: NKT order.ts; "waitingForFill" live in TW-RO P5b; a
# resting trigger leg answers "waitingForTrigger" with no oid: MM-CORE advanced-orders.e2e.ts, MetaMask/core #9995).
WAITING_FOR_FILL = "waitingForFill"
WAITING_FOR_TRIGGER = "waitingForTrigger"

# Refusals of a grouped action as a whole, a top-level {"status": "err", "response": text}: DOCS-ERR's pre-validation
# returns "only one error ... for the entire payload" (its examples include non-reduce-only TP/SL, §3). Every text
# here is unconfirmed (no source records one); the conditions carry their source at the check below.
INVALID_GROUPING = "Invalid grouping"
ONE_ASSET = "TP/SL orders of a group must all be on one asset."
ONE_OF_EACH = "A group can have at most one take profit and one stop loss."
REDUCE_ONLY_TRIGGERS = "TP/SL orders of a group must be reduce only trigger orders."
NO_PARENT = "A normalTpsl group must start with its parent order."
ENTRY_REFUSED = "A positionTpsl group cannot carry an entry order."
# A normalTpsl child whose parent neither rested nor filled (refused, or an IOC that did not match) is canceled with
# it and answers this error (unconfirmed: §8 leaves "an IOC parent that does not fill at all" open; text unconfirmed).
PARENT_DID_NOT_FILL = "Canceled with its parent order, which did not fill."


def _is_trigger(wire: dict) -> bool:
    return "trigger" in wire["t"]


def refusal(action: dict, refuse_entry: bool) -> str | None:
    """Why a grouped `order` action is refused as a whole, or None (wires already well-formed: hl_parse.wire_asset).
    With `refuse_entry`, a positionTpsl action carrying an entry order is refused too."""
    grouping = action.get("grouping", "na")
    if grouping not in GROUPINGS:
        return INVALID_GROUPING
    wires = action["orders"]
    if grouping == "na" or not wires:
        return None
    # at most one entry, first; the rest are the TP/SL legs (normalTpsl: PYSDK examples/basic_tpsl.py, NKT's live
    # test, TW-RO P5b; positionTpsl: MM-CORE updatePositionTPSL, NOTIONAL; the entry first under positionTpsl is how
    # ccxt PR #27987 sends one, and MetaMask's premise probe says it is refused: unconfirmed, `refuse_entry`)
    entry = None if _is_trigger(wires[0]) else wires[0]
    legs = wires[1:] if entry is not None else wires
    # "They must be reduce-only trigger orders" (NOTIONAL); children are "reduce-only triggers" (§8, PYSDK)
    if not all(_is_trigger(w) and w["r"] for w in legs):
        return REDUCE_ONLY_TRIGGERS
    # "it cannot contain two TPs or two SLs, and all orders in the batch must target the same asset" (NOTIONAL)
    kinds = [w["t"]["trigger"]["tpsl"] for w in legs]
    if len(kinds) != len(set(kinds)):
        return ONE_OF_EACH
    if len({w["a"] for w in wires}) > 1:
        return ONE_ASSET
    if grouping == "normalTpsl" and entry is None:
        return NO_PARENT  # a normalTpsl group without its parent: unconfirmed
    if grouping == "positionTpsl" and entry is not None and refuse_entry:
        # "HyperLiquid rejects the whole batch" (MM-CORE hyperLiquidValidation.ts, a testnet premise probe; §8 and
        # Unconfirmed list 11): nothing of it is applied
        return ENTRY_REFUSED
    return None


def place(st: HyperliquidState, action: dict, user: str, signer: str, nonce: int) -> list:
    """Apply a grouped action that passed `refusal`, in order: the entry (it fills or rests as any order), then each
    leg, checked against what the entry left; one status per order, as for "na"."""
    wires = action["orders"]
    coin = st.asset_name(wires[0]["a"])
    statuses: list = []
    parent: Order | None = None
    legs = wires
    if not _is_trigger(wires[0]):
        legs = wires[1:]
        entered = []
        statuses.append(st.answer_one(wires[0], partial(_entry, st, user, signer, nonce, coin, wires[0], entered)))
        parent = entered[0] if entered and "error" not in statuses[0] else None  # refused: it is no order
    leg = _position_leg if action["grouping"] == "positionTpsl" else partial(_child, parent=parent)
    for wire in legs:
        statuses.append(st.answer_one(wire, partial(leg, st, user, signer, nonce, coin, wire)))
    return statuses


def _entry(st: HyperliquidState, user: str, signer: str, nonce: int, coin: str, wire: dict, entered: list) -> dict:
    """The group's entry (normalTpsl's parent): an ordinary order; `entered` gets it once parsed."""
    order = st.parse_wire(user, signer, nonce, coin, wire)
    entered.append(order)
    return st.enter(order)


def _position_leg(st: HyperliquidState, user: str, signer: str, nonce: int, coin: str, wire: dict) -> str:
    """A positionTpsl leg, checked against the position after the entry. Size "0" is the whole position whenever it
    fires; a positive size is fixed (§8: NOTIONAL, MM-DOC, NKT's live test with a positive size; confirmed). Without
    an opposite position (flat, or the same side) it is refused like any reduce-only order, "Reduce only order would
    increase position. asset=N" (§8: no recorded answer for a leg; unconfirmed). Accepted: the bare
    "waitingForTrigger", no oid (§8, confirmed), though the order has one (frontendOpenOrders shows it)."""
    order = st.parse_wire(user, signer, nonce, coin, wire, whole_ok=True)
    order.position_tpsl = True
    st.enter(order)  # a trigger rests: it is checked against the position when it fires
    return WAITING_FOR_TRIGGER


def _child(
    st: HyperliquidState, user: str, signer: str, nonce: int, coin: str, wire: dict, parent: Order | None
) -> str:
    """A normalTpsl child: its own size, the submitted one (§8). While the parent rests it waits, "waitingForFill"
    (TW-RO P5b; confirmed), and its reduce-only check waits too; after a parent filled at once it is an ordinary
    trigger, "waitingForTrigger" (§8: NKT's live test, indirect; unconfirmed); a parent that neither rested nor
    filled takes it along (unconfirmed, PARENT_DID_NOT_FILL)."""
    order = st.parse_wire(user, signer, nonce, coin, wire)
    if parent is not None and parent.status == "open":
        order.parent = parent.oid
        st.enter(order, waiting=True)
        st.waiting.setdefault(parent.oid, []).append(order)
        return WAITING_FOR_FILL
    if parent is not None and parent.filled_sz > 0:
        st.enter(order)
        return WAITING_FOR_TRIGGER
    st.next_oid += 1
    st.orders.append(order)
    st.set_status(order, "canceled")
    raise ValueError(PARENT_DID_NOT_FILL)


def parent_ended(st: HyperliquidState, parent: Order) -> None:
    """A normalTpsl parent is no longer open. Filled (in part too): its children stay as ordinary reduce-only
    triggers with isPositionTpsl false, at their submitted size, not following the position (MetaMask/metamask-
    extension PR #42414 and #42661, MM-DOC; confirmed; after a partial fill unconfirmed). Ended without a fill
    (canceled): its children end with it, the same status and statusTimestamp (TW-RO P5; confirmed for a cancel)."""
    for child in st.waiting.pop(parent.oid, []):
        if child.status != "open":
            continue
        child.parent = None
        if not parent.filled_sz:
            child.status = parent.status
            child.status_ts = parent.status_ts
            st.note_order(child)


def carry_over(st: HyperliquidState, old: Order, new: Order) -> None:
    """A modify replaced `old` by `new` under a new oid (§3): a parent's waiting children follow the new oid, a
    waiting child's place in its group goes to the new order (unconfirmed; §8 records no modify of a group)."""
    children = st.waiting.pop(old.oid, None)
    if children:
        st.waiting[new.oid] = children
        for child in children:
            child.parent = new.oid
    if new.parent is not None:
        st.waiting.setdefault(new.parent, []).append(new)


def waiting_children(st: HyperliquidState, order: Order) -> list[Order]:
    """A parent's open children, in the order sent: frontendOpenOrders nests them in its `children` and lists them at
    the top level as well (§8: TW-RO P5, MM-CORE; confirmed)."""
    return [child for child in st.waiting.get(order.oid, ()) if child.status == "open"]


def whole_position(st: HyperliquidState, order: Order) -> Decimal:
    """What a size-0 position leg closes when it fires: the whole position at that moment (§8: the docs' "size to your
    entire position", MM-DOC; confirmed). A position on the leg's own side, or none, is not reduced: 0, and the
    fired reduce-only order is canceled "reduceOnlyCanceled" (unconfirmed, as §4's reduce-only order whose position
    closed; position legs are not canceled when the position closes or flips: §8, unconfirmed)."""
    pos = st.accounts[order.user].positions.get(order.coin)
    if pos is None or (pos.szi > 0) == order.is_buy:
        return Decimal(0)
    return abs(pos.szi)
