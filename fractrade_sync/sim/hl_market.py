"""Hyperliquid's /info shapes of the market, rendered from the simulator's state: meta (the main dex's or a HIP-3
dex's), spotMeta, metaAndAssetCtxs's contexts and allMids. Callers hold `state.lock` (for those that read it).
Field names and string formats follow the API docs
(https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint) and the SDK's docstrings."""

from __future__ import annotations

from fractrade_sync.sim import hl_dexes
from fractrade_sync.sim.hl_model import COINS, ISOLATED_ONLY, UNIVERSE, ZERO, fmt
from fractrade_sync.sim.hl_state import HyperliquidState


def asset_entry(name: str, sz_decimals: int, lev: int) -> dict:
    """One meta.universe entry; an isolated-only one carries `onlyIsolated` (deprecated) and `marginMode`
    (nktkas/hyperliquid src/api/info/_methods/meta.ts)."""
    entry = {"name": name, "szDecimals": sz_decimals, "maxLeverage": lev, "marginTableId": lev}
    if name in ISOLATED_ONLY:
        entry.update({"onlyIsolated": True, "marginMode": hl_dexes.MARGIN_MODES.get(name, "strictIsolated")})
    return entry


def meta(dex: str = "") -> dict | None:
    """meta for the main dex or a HIP-3 dex (names "xyz:NVDA"); null for a dex there is not (df-hyperliquid-core:
    "An unknown dex answers `null`")."""
    if dex and dex not in hl_dexes.UNIVERSES:
        return None
    rows = [row[:3] for row in hl_dexes.UNIVERSES[dex]] if dex else [row[:3] for row in UNIVERSE]
    universe = [asset_entry(n, s, lev) for n, s, lev in rows]
    # Margin tables with id < 50 are one tier whose max leverage is the id.
    tables = [
        [
            lev,
            {
                "description": "",
                "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}],
            },
        ]
        for lev in sorted({lev for _n, _s, lev in rows})
    ]
    return {"universe": universe, "marginTables": tables, "collateralToken": 0}


SPOT_META = {
    "universe": [],
    "tokens": [
        {
            "name": "USDC",
            "szDecimals": 8,
            "weiDecimals": 8,
            "index": 0,
            "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
            "isCanonical": True,
            "evmContract": None,
            "fullName": None,
        }
    ],
}


def asset_ctxs(st: HyperliquidState, dex: str = "") -> list[dict]:
    out = []
    for coin in [row[0] for row in hl_dexes.UNIVERSES[dex]] if dex else COINS:
        mid = fmt(st.mids[coin])
        mark = fmt(st.marks[coin])
        oi = sum(
            (abs(a.positions[coin].szi) for a in st.accounts.values() if coin in a.positions),
            ZERO,
        )
        out.append(
            {
                "funding": "0.0000125",
                "openInterest": fmt(oi),
                "prevDayPx": mid,
                "dayNtlVlm": "0.0",
                "premium": "0.0",
                "oraclePx": mid,
                "markPx": mark,
                "midPx": mid,
                "impactPxs": [mid, mid],
                "dayBaseVlm": "0.0",
            }
        )
    return out


def all_mids(st: HyperliquidState, dex: str = "") -> dict[str, str] | None:
    """allMids: the main perps' mids and the spot ones, or a HIP-3 dex's own ("xyz:NVDA": ..., the SDK reads
    all_mids(dex)[coin]); null for a dex there is not (unconfirmed)."""
    if dex:
        rows = hl_dexes.UNIVERSES.get(dex)
        return None if rows is None else {row[0]: fmt(st.mids[row[0]]) for row in rows}
    return {c: fmt(px) for mids in (st.mids, st.spot_mids) for c, px in mids.items() if ":" not in c}
