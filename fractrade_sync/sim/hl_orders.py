"""Order entry: the order, cancel and batchModify actions, each order checked (hl_margin), then rested or filled
(hl_matching); a refused order is kept with its rejected status. A part of hl_state.HyperliquidState.

Error texts are Hyperliquid's own, from the API docs' "Error responses" page unless marked `# text unconfirmed`:
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/error-responses
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from fractrade_sync.sim import hl_dexes, hl_grouping
from fractrade_sync.sim.hl_model import Order, fmt
from fractrade_sync.sim.hl_parse import BareError, asset_coin, parse_order

# an order refused at placement -> its status in orderStatus (names: nktkas/hyperliquid
# src/api/info/_methods/orderStatus.ts; the pairing with the texts is unconfirmed)
REJECTED_STATUSES = (
    ("Order must have minimum value", "minTradeNtlRejected"),
    ("Reduce only order would increase position", "reduceOnlyRejected"),
    ("Insufficient margin to place order", "perpMarginRejected"),
    ("Order could not immediately match", "iocCancelRejected"),
    ("Post only order would have immediately matched", "badAloPxRejected"),
    ("Order price cannot be more than 80% away", "oracleRejected"),
    (hl_dexes.OI_CAPPED, hl_dexes.OI_CAPPED_STATUS),
)


class OrderEntryMixin:
    """Needs the state's orders, rejected, next_oid, mids and clock, the margin rules (hl_margin) and matching
    (hl_matching): hl_state.HyperliquidState."""

    def asset_name(self, asset) -> str:
        return asset_coin(asset)

    def _orders(self, action, user, signer, nonce) -> dict:
        coins = [self.asset_name(wire["a"]) for wire in action["orders"]]  # all or nothing
        if action.get("grouping", "na") == "na":
            statuses = [
                self.answer_one(wire, partial(self._place, user, signer, nonce, coin, wire))
                for coin, wire in zip(coins, action["orders"], strict=True)
            ]
        else:
            statuses = hl_grouping.place(self, action, user, signer, nonce)
        self._match_resting(None)
        return {"type": "order", "data": {"statuses": statuses}}

    @staticmethod
    def answer_one(wire: dict, step) -> dict | str:
        """One order's status: what step() answers, or its refusal; a refused order does not stop the batch."""
        try:
            return step()
        except BareError as exc:
            return {"error": str(exc)}
        except ValueError as exc:
            return {"error": f"{exc} asset={wire['a']}"}

    def _place(self, user, signer, nonce, coin, wire) -> dict:
        """Check one order wire against the rules, then rest or fill it."""
        return self.enter(self.parse_wire(user, signer, nonce, coin, wire))

    def enter(self, order: Order, waiting: bool = False) -> dict:
        """Check a parsed order against the rules (the reduce-only one not while `waiting` for a parent's fill), then
        rest or fill it; refused: ValueError, and the order's record is kept."""
        mid = self.mids[order.coin]
        crosses = order.limit_px >= mid if order.is_buy else order.limit_px <= mid
        try:
            self._check(order, waiting)
            if order.tif == "Alo" and crosses:
                bbo = f"{fmt(mid)}@{fmt(mid)}"
                raise ValueError(f"Post only order would have immediately matched, bbo was {bbo}.")
            if order.tif == "Ioc" and (not crosses or self._fill_qty(order) == 0):
                raise ValueError("Order could not immediately match against any resting orders.")
        except ValueError as exc:
            self._keep_rejected(order, str(exc))
            raise
        self.next_oid += 1
        self.orders.append(order)
        ident = {"oid": order.oid, **({"cloid": order.cloid} if order.cloid else {})}
        if order.trigger or order.tif == "Alo" or not crosses:
            if not order.trigger:
                self._shrink(order)  # rests at most the position's size (tickwright, see _shrink)
            self.note_order(order)
            return {"resting": ident}
        self._execute(order, mid)
        if order.tif == "Ioc" and order.status == "open":
            self.set_status(order, "canceled")  # the unfilled part of an IOC
        if order.status == "open":
            self.note_order(order)
            return {"resting": ident}  # a GTC partly filled; the rest rests
        return {"filled": {"totalSz": fmt(order.filled_sz), "avgPx": fmt(order.avg_px), **ident}}

    def _keep_rejected(self, order: Order, error: str) -> None:
        """Keep a refused order with its oid and a rejected status, as orderStatus answers it by cloid (the status
        names: nktkas/hyperliquid src/api/info/_methods/orderStatus.ts; that such an order has a record, and which
        text maps to which status, is unconfirmed; the answer's {"error"} carries no oid). Not an applied order; no
        orderUpdates push tells of it (unconfirmed)."""
        status = next((name for text, name in REJECTED_STATUSES if error.startswith(text)), "rejected")
        self.rejected.append(replace(order, status=status, status_ts=self.now_ms()))
        self.next_oid += 1

    def parse_wire(self, user, signer, nonce, coin, wire, whole_ok: bool = False) -> Order:
        """Wire -> Order under the next oid, for the user's account on the coin's dex (hl_parse.parse_order)."""
        account = hl_dexes.account_key(user, hl_dexes.dex_of(coin))  # on a HIP-3 dex: the user's clearinghouse there
        return parse_order(wire, coin, self.next_oid, account, signer, nonce, self.now_ms, whole_ok)

    def _cancels(self, user, cancels, asset_key, id_key) -> dict:
        statuses = []
        for item in cancels:
            coin = self.asset_name(item[asset_key])
            found = [
                o
                for o in self.orders
                if o.user == hl_dexes.account_key(user, hl_dexes.dex_of(coin))
                and o.coin == coin
                and o.status == "open"
                and (o.oid if id_key == "o" else o.cloid) == item[id_key]
            ]
            for order in found:
                self.set_status(order, "canceled")
            if found:
                statuses.append("success")
            else:
                text = "Order was never placed, already canceled, or filled."
                statuses.append({"error": f"{text} asset={item[asset_key]}"})
        return {"type": "cancel", "data": {"statuses": statuses}}

    def _modify(self, user, signer, nonce, modifies) -> dict:
        """batchModify (the SDK's bulk_modify_orders_new): each open order, found by oid or cloid, is canceled and
        replaced by the new wire's order under a NEW oid (nautilus_trader issue #3827 / PR #3831, from live logs).
        The new order keeps the old one's cloid when the wire has none (unconfirmed: leaving `c` out may drop it).
        https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/exchange-endpoint#modify-multiple-orders"""
        statuses = []
        for item in modifies:
            ident = item["oid"]
            wire = item["order"]
            found = self._open_order(user, ident)
            if found is None:
                statuses.append({"error": "Cannot modify canceled or filled order"})  # text unconfirmed
                continue
            try:
                # a position leg stays one, size 0 allowed (unconfirmed, EXCHANGE.md §8 "Modifying a position TP/SL")
                new = self.parse_wire(
                    user, signer, nonce, self.asset_name(wire["a"]), wire, whole_ok=found.position_tpsl
                )
                new.position_tpsl = found.position_tpsl
                new.parent = found.parent
                found.status = "canceled"  # its margin is free for the new order's check
                self._check(new, waiting=new.parent is not None)
            except ValueError as exc:
                found.status = "open"
                statuses.append({"error": f"{exc} asset={wire['a']}"})
                continue
            hl_grouping.carry_over(self, found, new)  # before the cancel: a parent's children go to the new oid
            self.set_status(found, "canceled")
            new.cloid = new.cloid or found.cloid
            self.next_oid += 1
            self.orders.append(new)
            self.note_order(new)
            statuses.append({"resting": {"oid": new.oid, **({"cloid": new.cloid} if new.cloid else {})}})
        self._match_resting(None)
        return {"type": "order", "data": {"statuses": statuses}}

    def _open_order(self, user: str, ident) -> Order | None:
        """The user's open order with this oid (an int) or cloid (a string)."""
        for o in self.orders:
            if hl_dexes.owner(o.user) != user or o.status != "open":
                continue
            if (o.cloid or "").lower() == ident.lower() if isinstance(ident, str) else o.oid == ident:
                return o
        return None
