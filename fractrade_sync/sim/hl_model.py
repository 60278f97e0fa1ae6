"""The simulated exchange's model: its assets, the records it keeps (accounts, positions, orders, fills), its refusal
and the wire's number formats. No behaviour: hl_state and the parts it is built from (hl_nonces, hl_parse, hl_orders,
hl_matching, hl_margin) work on these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from fractrade_sync.sim import hl_dexes

ZERO = Decimal(0)
DAY_MS = 86_400_000
FILLS_KEPT = 10_000  # "only the 10000 most recent fills are available" (API docs, info endpoint: userFillsByTime)

# name, szDecimals, maxLeverage, default mid: one asset per szDecimals 0..5;
# BTC, ETH, ATOM keep their mainnet asset ids 0, 1, 2.
UNIVERSE = (
    ("BTC", 5, 40, "50000"),
    ("ETH", 4, 25, "3000"),
    ("ATOM", 2, 10, "8.5"),
    ("SOL", 2, 20, "150"),
    ("DOGE", 0, 10, "0.2"),
    ("BNB", 3, 10, "600"),
    ("XRP", 1, 20, "0.6"),
    ("kPEPE", 0, 10, "0.012"),
    ("HYPE", 2, 10, "25"),
    ("ZRO", 1, 5, "2.5"),
)
# isolated-only assets: meta marks them `"onlyIsolated": true, "marginMode": "strictIsolated"` (nktkas/hyperliquid
# src/api/info/_methods/meta.ts; ZRO is one on mainnet, as public clients report); cross leverage is refused
# (the HIP-3 dexes' coins, "xyz:NVDA", with theirs: hl_dexes)
ISOLATED_ONLY = frozenset({"ZRO", *hl_dexes.MARGIN_MODES})
SZ_DECIMALS = {**{name: sz for name, sz, _lev, _mid in UNIVERSE}, **hl_dexes.SZ_DECIMALS}
MAX_LEVERAGE = {**{name: lev for name, _sz, lev, _mid in UNIVERSE}, **hl_dexes.MAX_LEVERAGE}
COINS = [name for name, *_rest in UNIVERSE]


class ExchangeError(Exception):
    """An action refused as a whole: {"status": "err", "response": text}."""


@dataclass
class Position:
    szi: Decimal
    entry_px: Decimal


@dataclass
class Order:
    oid: int
    user: str
    signer: str
    nonce: int
    coin: str
    is_buy: bool
    sz: Decimal
    limit_px: Decimal
    tif: str | None
    trigger: dict | None
    reduce_only: bool
    cloid: str | None
    timestamp: int
    status: str = "open"
    status_ts: int = 0
    filled_sz: Decimal = ZERO
    filled_ntl: Decimal = ZERO
    cut: Decimal = ZERO  # what reduce-only shrinking took off: neither filled nor left (origSz stays sz)
    position_tpsl: bool = False  # a positionTpsl leg (frontendOpenOrders' isPositionTpsl): hl_grouping
    parent: int | None = None  # a normalTpsl child waiting for this oid's fill ("waitingForFill"): hl_grouping
    whole: Decimal = ZERO  # a size-0 position leg's size once it fires: the position at that moment (hl_grouping)

    @property
    def remaining(self) -> Decimal:
        # a size-0 position leg is "0.0" until it fires (EXCHANGE.md §8: origSz "0" confirmed, sz "0.0" unconfirmed)
        return (self.sz or self.whole) - self.filled_sz - self.cut

    @property
    def avg_px(self) -> Decimal | None:
        if not self.filled_sz:
            return None
        return (self.filled_ntl / self.filled_sz).quantize(Decimal("1e-8"))


@dataclass
class Fill:
    """One execution of an order, kept for the userFills feed (hl_userdata renders it)."""

    user: str
    coin: str
    is_buy: bool
    px: Decimal
    sz: Decimal
    time: int
    start: Decimal  # the position before this fill
    closed_pnl: Decimal
    oid: int
    cloid: str | None
    crossed: bool  # taker: the order crossed the book when it filled
    tid: int
    fee: Decimal = ZERO  # what the fill cost, charged to the account (hl_ledger.fill_fee)


@dataclass
class Account:
    usdc: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, tuple[str, int]] = field(default_factory=dict)
    agents: dict[str, dict] = field(default_factory=dict)  # agent -> {name, validUntil}
    scheduled_cancel: int | None = None


def dec(text, what: str) -> Decimal:
    """Parse a wire decimal string; ValueError names the field."""
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        raise ValueError(what) from None
    if not value.is_finite():
        raise ValueError(what)
    return value


def fmt(x) -> str:
    """Hyperliquid's float-string style: "50000.0", "0.01"."""
    text = format(Decimal(x).normalize(), "f")
    return text if "." in text else text + ".0"


def usd(x) -> str:
    return fmt(Decimal(x).quantize(Decimal("1e-6")))
