"""Margin: leverage, account value (at the mark), margin used and free, and the rules an order must pass to be
placed (value, price band, reduce-only, open-interest cap, margin). A part of hl_state.HyperliquidState.
"""

from __future__ import annotations

from decimal import Decimal

from fractrade_sync.sim import hl_dexes
from fractrade_sync.sim.hl_model import ISOLATED_ONLY, MAX_LEVERAGE, ZERO, Account, ExchangeError, Order
from fractrade_sync.sim.hl_parse import BareError, asset_coin

MIN_NOTIONAL = Decimal(10)
# the live refusal of cross margin on an isolated-only asset, as several public clients quote it (seen on xyz:SMSN,
# OX, ZRO, W); EXCHANGE.md §5
CROSS_NOT_ALLOWED = "Cross margin is not allowed for this asset."


class MarginMixin:
    """Needs the state's accounts, orders, marks, mids, oi_capped and journal (hl_state.HyperliquidState)."""

    def lev(self, acct: Account, coin: str) -> tuple[str, int]:
        default = "isolated" if coin in ISOLATED_ONLY else "cross"
        return acct.leverage.get(coin, (default, min(20, MAX_LEVERAGE[coin])))

    def account_value(self, acct: Account) -> Decimal:
        upnl = sum(
            (p.szi * (self.marks[c] - p.entry_px) for c, p in acct.positions.items()),
            ZERO,
        )
        return acct.usdc + upnl

    def margin_used(self, acct: Account) -> Decimal:
        return sum(
            (abs(p.szi) * self.marks[c] / self.lev(acct, c)[1] for c, p in acct.positions.items()),
            ZERO,
        )

    def available(self, user: str) -> Decimal:
        """Free margin: value minus position margin minus resting orders' margin."""
        acct = self.accounts.get(user) or Account(usdc=ZERO)
        reserved = sum(
            (
                o.remaining * o.limit_px / self.lev(acct, o.coin)[1]
                for o in self.orders
                if o.user == user and o.status == "open" and not o.reduce_only
            ),
            ZERO,
        )
        return self.account_value(acct) - self.margin_used(acct) - reserved

    def _check(self, o: Order, waiting: bool = False) -> None:
        """The value, price-band, reduce-only (not while `waiting` for a parent's fill) and margin rules."""
        acct = self.accounts[o.user]
        mid = self.mids[o.coin]
        pos = acct.positions.get(o.coin)
        szi = pos.szi if pos else ZERO
        market_trigger = o.trigger and o.trigger["isMarket"]
        ref_px = o.trigger["triggerPx"] if market_trigger else o.limit_px
        # A reduce-only order that closes the whole position is exempt from $10 (a size-0 position leg always does:
        # it is the whole position, EXCHANGE.md §8).
        closes_all = o.reduce_only and szi and (szi < 0) == o.is_buy and o.sz >= abs(szi)
        if o.sz * ref_px < MIN_NOTIONAL and not closes_all and not (o.position_tpsl and o.sz == 0):
            raise ValueError("Order must have minimum value of $10.")
        if abs(o.limit_px - mid) > mid * Decimal("0.8"):
            # Hyperliquid sends this one without the " asset=N" suffix.
            raise BareError("Order price cannot be more than 80% away from the reference price")
        if o.reduce_only and not waiting and (szi == 0 or (szi > 0) == o.is_buy):
            raise ValueError("Reduce only order would increase position.")
        if not o.reduce_only:
            grows = abs(szi + (o.sz if o.is_buy else -o.sz)) - abs(szi)
            need = grows * o.limit_px / self.lev(acct, o.coin)[1]
            if grows > 0 and o.coin in self.oi_capped:  # cap_open_interest (hl_dexes.OI_CAPPED)
                raise ValueError(hl_dexes.OI_CAPPED)
            if grows > 0 and need > self.available(o.user):
                raise ValueError("Insufficient margin to place order.")

    def _update_leverage(self, user, action) -> dict:
        coin = asset_coin(action["asset"])
        value = action["leverage"]
        if not isinstance(value, int) or not 1 <= value <= MAX_LEVERAGE[coin]:
            raise ExchangeError("Invalid leverage value")
        kind = "cross" if action["isCross"] else "isolated"
        if kind == "cross" and coin in ISOLATED_ONLY:
            raise ExchangeError(CROSS_NOT_ALLOWED)
        user = hl_dexes.account_key(user, hl_dexes.dex_of(coin))  # a HIP-3 coin's leverage is its dex clearinghouse's
        acct = self.accounts[user]
        if coin in acct.positions and self.lev(acct, coin)[0] != kind:
            # as public clients quote Hyperliquid's refusal (the docs' "Error responses" page does not list it)
            raise ExchangeError("Cannot switch leverage type with open position.")
        acct.leverage[coin] = (kind, value)
        self.journal.append(("account", user, coin))
        return {"type": "default"}
