"""Matching: fills against the mid (capped by liquidity and, reduce-only, by the position), positions and realized
pnl, triggers firing on the mark, resting orders crossing, scheduled cancels, and the journal of what changed for
whom (hl_userdata pushes it). A part of hl_state.HyperliquidState.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from fractrade_sync.sim import hl_dexes, hl_grouping, hl_ledger
from fractrade_sync.sim.hl_model import ZERO, Account, Fill, Order, Position


class MatchingMixin:
    """Needs the state's accounts, orders, mids, marks, liquidity, fills, journal, waiting and clock
    (hl_state.HyperliquidState)."""

    def _fill_qty(self, order: Order) -> Decimal:
        """What can fill now: capped by the coin's liquidity and, if reduce-only, the position."""
        qty = order.remaining
        cap = self.liquidity.get(order.coin)
        if cap is not None:
            qty = min(qty, cap)
        if order.reduce_only:
            pos = self.accounts[order.user].positions.get(order.coin)
            if pos is None or (pos.szi > 0) == order.is_buy:
                return ZERO
            qty = min(qty, abs(pos.szi))
        return max(qty, ZERO)

    def _shrink(self, order: Order) -> None:
        """A reduce-only order larger than the position is shrunk to it, not rejected: `sz` becomes what can fill,
        origSz stays the size asked, so origSz - sz is not what filled (MarcosACH/tickwright docs/research/
        hyperliquid-reduce-only-cancel-market-probes.md P1/P2: "sz":"0.02","origSz":"0.05" with nothing filled)."""
        pos = self.accounts[order.user].positions.get(order.coin)
        if order.reduce_only and pos is not None and (pos.szi > 0) != order.is_buy and order.remaining > abs(pos.szi):
            order.cut += order.remaining - abs(pos.szi)

    def _follow_position(self, user: str, coin: str) -> None:
        """Resting reduce-only limit orders shrink as the position shrinks and end "reduceOnlyCanceled" when it is
        closed (tickwright, as above); triggers are checked only when they fire (unconfirmed for resting ones)."""
        pos = self.accounts[user].positions.get(coin)
        for o in self.orders:
            if o.user != user or o.coin != coin or o.status != "open" or not o.reduce_only or o.trigger:
                continue
            if pos is None or (pos.szi > 0) == o.is_buy:
                self.set_status(o, "reduceOnlyCanceled")
            elif o.remaining > abs(pos.szi):
                self._shrink(o)
                self.note_order(o)

    def _execute(self, order: Order, px: Decimal, crossed: bool = True) -> None:
        acct = self.accounts[order.user]
        self._shrink(order)
        qty = self._fill_qty(order)
        if qty == 0:
            if order.reduce_only:
                self.set_status(order, "reduceOnlyCanceled")
            return
        pos = acct.positions.get(order.coin)
        usdc = acct.usdc
        start = pos.szi if pos else ZERO
        self._apply_fill(acct, order.coin, qty if order.is_buy else -qty, px)
        self._record_fill(order, px, qty, start, acct.usdc - usdc, crossed)
        order.filled_sz += qty
        order.filled_ntl += qty * px
        if order.remaining == 0:
            self.set_status(order, "filled")
        elif order.reduce_only and order.coin not in acct.positions:
            self.set_status(order, "reduceOnlyCanceled")  # nothing left to reduce
        self._follow_position(order.user, order.coin)

    def _record_fill(self, o: Order, px: Decimal, qty: Decimal, start: Decimal, pnl: Decimal, crossed: bool) -> None:
        tid = self.next_tid
        self.next_tid = self.next_tid + 1
        fee = hl_ledger.fill_fee(px, qty, crossed)
        self.accounts[o.user].usdc -= fee  # closedPnl stays before the fee, as the exchange reports it (hl_ledger)
        fill = Fill(o.user, o.coin, o.is_buy, px, qty, self.now_ms(), start, pnl, o.oid, o.cloid, crossed, tid, fee)
        self.fills.append(fill)
        self.journal.append(("fill", o.user, fill))

    def _apply_fill(self, acct: Account, coin: str, delta: Decimal, px: Decimal) -> None:
        pos = acct.positions.get(coin)
        if pos is None or pos.szi == 0:
            acct.positions[coin] = Position(delta, px)
            return
        new = pos.szi + delta
        if (pos.szi > 0) == (delta > 0):  # adding: average the entry
            pos.entry_px = (abs(pos.szi) * pos.entry_px + abs(delta) * px) / abs(new)
            pos.entry_px = pos.entry_px.quantize(Decimal("1e-8")).normalize()
        else:
            closed = min(abs(delta), abs(pos.szi))
            sign = 1 if pos.szi > 0 else -1
            acct.usdc += closed * (px - pos.entry_px) * sign
            if abs(delta) > abs(pos.szi):
                pos.entry_px = px  # flipped: the new side starts at this fill
        pos.szi = new
        if new == 0:
            del acct.positions[coin]

    def _match_resting(self, only_coin: str | None) -> None:
        """Fire crossed triggers and fill crossed resting limit orders."""
        for order in [o for o in self.orders if o.status == "open"]:
            # another coin, ended meanwhile (a fill before it closed the position), or a normalTpsl child still
            # waiting for its parent's fill
            if (only_coin and order.coin != only_coin) or order.status != "open" or order.parent is not None:
                continue
            mid = self.mids[order.coin]
            if order.trigger:
                self._fire_if_crossed(order)
            elif (mid <= order.limit_px) if order.is_buy else (mid >= order.limit_px):
                filled = order.filled_sz
                self._execute(order, order.limit_px, crossed=False)  # a resting order is the maker
                if order.status == "open" and order.filled_sz != filled:
                    self.note_order(order)  # partly filled, still resting

    def _fire_if_crossed(self, order: Order) -> None:
        """Fire a trigger order whose price the mark has reached."""
        mid = self.mids[order.coin]
        mark = self.marks[order.coin]
        tpx = order.trigger["triggerPx"]
        take_profit = order.trigger["tpsl"] == "tp"
        # A sell stop protects a long: fires as the price falls to it; on the mark price (hl_state's __init__)
        up = take_profit != order.is_buy
        if not ((mark >= tpx) if up else (mark <= tpx)):
            return
        # orderUpdates reports the order "triggered", then how it ended (this order keeps its oid)
        self.note_order(replace(order, status="triggered", status_ts=self.now_ms()))
        # a triggered market order fills only within its limit price, its slippage bound ("TP/SL market
        # orders have a slippage tolerance of 10%": Hyperliquid's docs, "Take profit and stop loss
        # orders"); past it, nothing fills and the order is done
        within = (mid <= order.limit_px) if order.is_buy else (mid >= order.limit_px)
        if not order.sz:  # a size-0 position leg: the whole position as it is now (hl_grouping)
            order.whole = hl_grouping.whole_position(self, order)
        if not order.trigger["isMarket"]:
            self._execute(order, order.limit_px)
        elif within:
            self._execute(order, mid)
        if order.status == "open":
            self.set_status(order, "canceled")

    def tick(self) -> None:
        """Run scheduled cancels whose time has come (the dead man's switch)."""
        now = self.now_ms()
        for user, acct in self.accounts.items():
            if acct.scheduled_cancel is not None and acct.scheduled_cancel <= now:
                acct.scheduled_cancel = None
                for order in self.orders:
                    if hl_dexes.owner(order.user) == user and order.status == "open":
                        self.set_status(order, "scheduledCancel")

    def set_status(self, order: Order, status: str) -> None:
        order.status = status
        order.status_ts = self.now_ms()
        self.note_order(order)
        if order.oid in self.waiting and status != "open":
            hl_grouping.parent_ended(self, order)  # its normalTpsl children go live, or end with it

    def note_order(self, order: Order) -> None:
        """Journal the order as it is now (a copy: later changes must not rewrite what was reported)."""
        self.journal.append(("order", order.user, replace(order)))
