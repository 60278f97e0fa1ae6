"""The simulator's books beyond positions, as Hyperliquid keeps them: a fee on every fill (taker and maker rates), each
fill's `fee` and `closedPnl`, and funding paid on demand (`pay_funding`), served as `userFunding`. Each fact with its
public source (EXCHANGE.md §9); hl_matching.py books a fill's fee through `fill_fee`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from fractrade_sync.sim.hl_dexes import owner
from fractrade_sync.sim.hl_model import dec, fmt

if TYPE_CHECKING:
    from fractrade_sync.sim.hl_state import HyperliquidState

# The base tier's perp rates (14-day volume under $5M): taker 0.045%, maker 0.015% ("Fees",
# https://hyperliquid.gitbook.io/hyperliquid-docs/trading/fees; the same table in hypernode-docs.polynode.dev/
# research/fees: "Perpetuals 4.5 bps (0.045%) 1.5 bps (0.015%)", "Cross means taker, Add means maker")
TAKER_RATE = Decimal("0.00045")
MAKER_RATE = Decimal("0.00015")
# USDC amounts (fees, funding) to 6 decimals, as the exchange reports them (a fill's "fee":"0.072565" in
# richkuo/go-trader#698); the rounding mode is unconfirmed (RELIABILITY.md's assumptions)
USDC_STEP = Decimal("0.000001")
# a funding record's "hash": funding is no user transaction; the zero hash is unconfirmed (RELIABILITY.md)
ZERO_HASH = "0x" + "0" * 64
FUNDING_KEPT = 500  # userFunding answers at most 500 records per request (unconfirmed: the docs' page size)


def fill_fee(px: Decimal, sz: Decimal, crossed: bool) -> Decimal:
    """A fill's fee in USDC: its notional times the taker rate (it crossed the book) or the maker rate."""
    return (px * sz * (TAKER_RATE if crossed else MAKER_RATE)).quantize(USDC_STEP, ROUND_HALF_UP)


@dataclass(frozen=True)
class FundingPayment:
    """One hourly funding settlement of one account's position (userFunding's `delta`)."""

    user: str
    coin: str
    time: int
    usdc: Decimal  # from the account's side: negative when it paid
    szi: Decimal
    rate: Decimal


def pay_funding(state: HyperliquidState, coin: str, rate: Any) -> list[FundingPayment]:
    """Settle funding on `coin` now at `rate` for every account holding it: payment = position size x oracle price x
    rate, longs paying shorts when the rate is positive (Hyperliquid's docs, "Funding": "funding payment = position
    size * oracle price * funding rate", paid hourly). The simulator has no separate oracle: its mark stands in."""

    rate = dec(rate, "rate")
    with state.lock:
        if coin not in state.marks:
            raise KeyError(f"unknown coin {coin!r}")
        last = state.funding[-1].time if state.funding else 0
        when = max(state.now_ms(), last + 1)  # one settlement per coin and time, as hourly ones are
        paid = []
        for user, acct in state.accounts.items():
            pos = acct.positions.get(coin)
            if pos is None or pos.szi == 0:
                continue
            usdc = (-pos.szi * state.marks[coin] * rate).quantize(USDC_STEP, ROUND_HALF_UP)
            acct.usdc += usdc
            payment = FundingPayment(user, coin, when, usdc, pos.szi, rate)
            state.funding.append(payment)
            state.journal.append(("account", user, None))  # its account value changed: clearinghouseState pushes
            paid.append(payment)
        return paid


def funding_record(p: FundingPayment) -> dict:
    """A userFunding entry (nktkas/hyperliquid src/api/info/_methods/userFunding.ts: time, hash, delta {type
    "funding", coin, usdc, szi, fundingRate, nSamples})."""

    delta = {
        "type": "funding",
        "coin": p.coin,
        "usdc": fmt(p.usdc),
        "szi": fmt(p.szi),
        "fundingRate": fmt(p.rate),
        "nSamples": None,
    }
    return {"time": p.time, "hash": ZERO_HASH, "delta": delta}


def user_funding(state: HyperliquidState, user: str, start: Any, end: Any = None) -> list[dict]:
    """The /info `userFunding` answer: the user's funding records with startTime <= time <= endTime, oldest first, at
    most FUNDING_KEPT (a client pages on by the last time it saw)."""
    start = int(start or 0)
    end = None if end is None else int(end)
    with state.lock:
        mine = [
            p for p in state.funding if p.user == user.lower() and p.time >= start and (end is None or p.time <= end)
        ]
        return [funding_record(p) for p in mine[:FUNDING_KEPT]]


def books(state: HyperliquidState, user: str) -> dict[str, str]:
    """The simulator's own totals for an account, on every dex (its HIP-3 dexes' clearinghouses too), exact decimal
    strings: realized PnL (the sum of its fills' closedPnl), fees, funding, net (realized - fees + funding)."""

    user = user.lower()
    with state.lock:
        fills = [f for f in state.fills if owner(f.user) == user]
        realized = sum((f.closed_pnl for f in fills), Decimal(0))
        fees = sum((f.fee for f in fills), Decimal(0))
        funding = sum((p.usdc for p in state.funding if owner(p.user) == user), Decimal(0))
    return {
        "realized_pnl": str(realized),
        "fees": str(fees),
        "funding": str(funding),
        "net_pnl": str(realized - fees + funding),
    }
