"""An /exchange order wire read as Hyperliquid reads it: its shape, its asset, and its size and price formats.

Error texts are Hyperliquid's own, from the API docs' "Error responses" page unless marked `# text unconfirmed`:
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/error-responses
"""

from __future__ import annotations

from decimal import Decimal

from fractrade_sync.sim import hl_dexes
from fractrade_sync.sim.hl_model import COINS, SZ_DECIMALS, ExchangeError, Order, dec


class BareError(ValueError):
    """An order error that Hyperliquid sends without the " asset=N" suffix."""


def wire_asset(wire: dict) -> int:
    """The asset of a well-formed order wire; TypeError (HTTP 422) for a malformed one."""
    kind = wire.get("t") if isinstance(wire, dict) else None
    ok = isinstance(kind, dict) and all(k in wire for k in "abpsr")
    if ok and "limit" in kind:
        ok = kind["limit"].get("tif") in ("Gtc", "Ioc", "Alo")
    elif ok:
        ok = {"triggerPx", "isMarket", "tpsl"} <= set(kind.get("trigger", {})) and kind["trigger"]["tpsl"] in (
            "tp",
            "sl",
        )
    if not ok:
        raise TypeError(f"orders: invalid order {wire!r}")
    return wire["a"]


def asset_coin(asset) -> str:
    """The coin an asset id names: a main perp's index, or a HIP-3 dex's 100000 + dex index x 10000 + its index."""
    if coin := hl_dexes.coin_of(asset):
        return coin
    if not isinstance(asset, int) or not 0 <= asset < len(COINS):
        raise ExchangeError(f"Invalid asset {asset}")  # text unconfirmed
    return COINS[asset]


def decimals(x: Decimal) -> int:
    return max(0, -x.normalize().as_tuple().exponent)


def price_error(px: Decimal, sz_decimals: int) -> str | None:
    """Hyperliquid's perp price rule, or None when px is valid."""
    if px <= 0 or decimals(px) > 6 - sz_decimals:
        return "Order has invalid price."
    if px != px.to_integral_value() and len(px.normalize().as_tuple().digits) > 5:
        # More than 5 significant figures is refused with the tick-size text
        # (observed on testnet; e.g. "Price must be divisible by tick size. asset=3").
        return "Price must be divisible by tick size."
    return None


def parse_order(wire: dict, coin: str, oid: int, user: str, signer: str, nonce: int, now_ms, whole_ok=False) -> Order:
    """Wire -> Order, enforcing the size and price formats; size 0 only where `whole_ok` (a positionTpsl leg).
    `user` is the account the order is for (on a HIP-3 dex: the user's clearinghouse there); `now_ms()` the
    exchange's clock."""
    sz_dec = SZ_DECIMALS[coin]
    sz = dec(wire["s"], "Order has invalid size.")
    px = dec(wire["p"], "Order has invalid price.")
    if sz == 0 and not whole_ok:
        # EXCHANGE.md §3 (ccxt's exception map) and §8 (hummingbot issue #7322); whether a size-0 trigger under
        # "na" is taken as the whole position instead is unconfirmed (§8): refused here
        raise ValueError("Order has zero size.")
    if sz < 0 or decimals(sz) > sz_dec:
        raise ValueError("Order has invalid size.")
    if err := price_error(px, sz_dec):
        raise ValueError(err)
    trigger = wire["t"].get("trigger")
    if trigger:
        trigger = {
            **trigger,
            "triggerPx": dec(trigger["triggerPx"], "Order has invalid price."),
        }
        if err := price_error(trigger["triggerPx"], sz_dec):
            raise ValueError(err)
    now = now_ms()
    return Order(
        oid=oid,
        user=user,
        signer=signer,
        nonce=nonce,
        coin=coin,
        is_buy=bool(wire["b"]),
        sz=sz,
        limit_px=px,
        tif=None if trigger else wire["t"]["limit"]["tif"],
        trigger=trigger,
        reduce_only=bool(wire.get("r", False)),
        cloid=wire.get("c"),
        timestamp=now,
        status_ts=now,
    )
