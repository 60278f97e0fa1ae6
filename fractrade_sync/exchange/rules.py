"""Hyperliquid's order rules, as pure functions on Decimals: rounding, minimum value; the order and its wire."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from hyperliquid.utils.signing import order_request_to_order_wire
from hyperliquid.utils.types import Cloid

# https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/tick-and-lot-size
MAX_PERP_DECIMALS = 6
SIG_FIGS = 5
MIN_ORDER_VALUE = Decimal("10")


@dataclass(frozen=True)
class Asset:
    """One perp of the exchange's meta."""

    name: str
    index: int
    sz_decimals: int
    max_leverage: int
    only_isolated: bool = False  # meta's onlyIsolated / marginMode strictIsolated or noCross: no cross leverage


def round_size(size: Decimal, sz_decimals: int) -> Decimal:
    """Round a size down to the asset's lot: never more than the signal asked for."""
    return size.quantize(Decimal(1).scaleb(-sz_decimals), rounding=ROUND_DOWN)


def price_decimals(px: Decimal, sz_decimals: int) -> int:
    """How many decimals a price may have: 5 significant figures and at most 6 - szDecimals."""
    return max(0, min(MAX_PERP_DECIMALS - sz_decimals, SIG_FIGS - 1 - px.adjusted()))


def round_price(px: Decimal, sz_decimals: int, mode: str = "nearest") -> Decimal:
    """Round a price to a valid tick: 'up' (buys stay marketable), 'down' (sells), or 'nearest'."""
    if px <= 0:
        raise ValueError("price must be positive")
    rounding = {"up": ROUND_CEILING, "down": ROUND_FLOOR, "nearest": ROUND_HALF_EVEN}[mode]
    if px.adjusted() >= SIG_FIGS - 1:  # integer prices are always allowed
        out = px.quantize(Decimal(1), rounding=rounding)
    else:
        out = px.quantize(Decimal(1).scaleb(-price_decimals(px, sz_decimals)), rounding=rounding)
        if out.adjusted() != px.adjusted():  # rounding carried into a new digit (9.99999 -> 10.0000)
            out = out.quantize(Decimal(1).scaleb(-price_decimals(out, sz_decimals)), rounding=rounding)
    if out <= 0:  # a tiny sell price rounded down to zero: take the smallest tick instead
        out = Decimal(1).scaleb(-price_decimals(px, sz_decimals))
    return out


def is_valid_price(px: Decimal, sz_decimals: int) -> bool:
    """The exchange's check: integers always; else <= 5 significant figures and <= 6 - szDecimals decimals."""
    if px <= 0:
        return False
    if px == px.to_integral_value():
        return True
    exponent = px.normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    digits = len(px.normalize().as_tuple().digits)
    return decimals <= MAX_PERP_DECIMALS - sz_decimals and digits <= SIG_FIGS


def is_valid_size(sz: Decimal, sz_decimals: int) -> bool:
    """Positive, with at most szDecimals decimals."""
    return sz > 0 and sz == sz.quantize(Decimal(1).scaleb(-sz_decimals), rounding=ROUND_DOWN)


def slippage_price(mid: Decimal, is_buy: bool, slippage: Decimal, sz_decimals: int) -> Decimal:
    """The limit price of a marketable IOC: mid +/- slippage, rounded away from the book's far side."""
    if is_buy:
        return round_price(mid * (1 + slippage), sz_decimals, "up")
    return round_price(mid * (1 - slippage), sz_decimals, "down")


def canonical(value: Decimal) -> str:
    """Exact decimal text with no exponent and no trailing zeros (no rounding to the decimal context)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "", "-") else text


def to_wire(value: Decimal) -> str:
    """A number as the exchange hashes it: no exponent, no trailing zeros."""
    return canonical(value)


MAX_DISTANCE = Decimal("0.8")  # "Order price cannot be more than 80% away from the reference price"


def price_problem(px: Decimal, reference: Decimal, is_buy: bool | None = None) -> str | None:
    """Why a rounded limit price cannot be sent (too far from the reference, or not marketable), or None."""
    if abs(px - reference) > reference * MAX_DISTANCE:
        return f"the nearest valid price {to_wire(px)} is more than 80% away from {to_wire(reference)}"
    if is_buy is not None and (px < reference if is_buy else px > reference):
        return f"no valid marketable price: {to_wire(px)} against a mid of {to_wire(reference)}"
    return None


TPSL = {"stop_loss": "sl", "take_profit": "tp"}  # an action kind -> its trigger order's tpsl on the wire


@dataclass(frozen=True)
class Order:
    """One order as it goes on the wire."""

    asset: Asset
    is_buy: bool
    size: Decimal
    limit_px: Decimal
    reduce_only: bool
    cloid: str | None
    tif: str = "Ioc"
    trigger_px: Decimal | None = None
    tpsl: str | None = None
    # a position TP/SL (grouping positionTpsl, size 0): the exchange keeps it sized to the whole position, whatever
    # the position is when it fires (EXCHANGE.md §8)
    position: bool = False

    def wire(self) -> dict:
        """The SDK's order wire for this order (what the signature hashes)."""
        if self.trigger_px is not None:
            kind: dict = {"trigger": {"isMarket": True, "triggerPx": float(self.trigger_px), "tpsl": self.tpsl}}
        else:
            kind = {"limit": {"tif": self.tif}}
        request = {
            "coin": self.asset.name,
            "is_buy": self.is_buy,
            "sz": float(self.size),
            "limit_px": float(self.limit_px),
            "order_type": kind,
            "reduce_only": self.reduce_only,
            "cloid": None if self.cloid is None else Cloid.from_str(self.cloid),
        }
        wire = order_request_to_order_wire(request, self.asset.index)  # type: ignore[arg-type]
        # the SDK's float_to_wire goes through a float: past 2**26 a fraction can come back with other digits
        sent = {"size": (wire["s"], self.size), "price": (wire["p"], self.limit_px)}
        if self.trigger_px is not None:
            sent["trigger price"] = (wire["t"]["trigger"]["triggerPx"], self.trigger_px)  # type: ignore[index]
        for name, (text, value) in sent.items():
            if text != to_wire(value):
                raise ValueError(f"{name} {to_wire(value)} cannot be sent exactly (the SDK's wire would round it)")
        return wire

    def describe(self) -> str:
        """How a log line names it: 'BUY 0.01 BTC @ 60000' (and its trigger)."""
        side = "BUY" if self.is_buy else "SELL"
        extra = f" trigger {to_wire(self.trigger_px)} {self.tpsl}" if self.trigger_px is not None else ""
        return f"{side} {to_wire(self.size)} {self.asset.name} @ {to_wire(self.limit_px)}{extra}"

    @property
    def value(self) -> Decimal:
        """Notional at the limit (or trigger) price, as the exchange measures its $10 minimum."""
        return self.size * (self.trigger_px if self.trigger_px is not None else self.limit_px)


def grouping(orders: list[Order]) -> str:
    """The `order` action's grouping for these orders: "positionTpsl" when they carry a position TP/SL (then an
    optional entry first and at most one stop loss and one take profit, all on one coin), else "na"."""
    return "positionTpsl" if any(o.position for o in orders) else "na"
