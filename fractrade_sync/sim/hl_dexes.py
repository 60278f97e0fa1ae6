"""HIP-3 builder-deployed perp dexes: the dex list, each dex's universe and asset ids, and whose clearinghouse an
order on a dex lands in.

Pure definitions and keys (no state): hl_state, hl_views, hl_userdata and hl_server call in here. A user's
clearinghouse on a dex is an account of its own in the state, keyed "dex:address" (`account_key`): its own USDC (what
was moved to the dex, `fund_dex`), positions, leverage and margin, so the engine's rules apply to it unchanged.

Each fact names its source, or says "unconfirmed"; EXCHANGE.md §10 collects them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # hl_state imports this module
    from fractrade_sync.sim.hl_state import HyperliquidState

# "Builder-deployed perps expect 100000 + perp_dex_index * 10000 + index_in_meta. For example, test:ABC on testnet
# has perp_dex_index = 1, index_in_meta = 0, asset = 110000. Note that builder-deployed perps always have name in the
# format {dex}:{coin}." (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/asset-ids); the SDK's
# info.py gives perpDexs()[1:] the offsets 110000 + i * 10000
HIP3_BASE = 100_000
DEX_SPAN = 10_000
# perpDexs: "Array of perpetual dexes (null is main dex)" (nktkas/hyperliquid src/api/info/_methods/perpDexs.ts);
# a dex's place in it is its perp_dex_index. "xyz" as mainnet answered it on 2026-10-06 (df-hyperliquid-core's
# recorded perpDexs: fullName "XYZ", its deployer and fee recipient)
NAMES = ("", "xyz")
DEX_INFO = {
    "xyz": {
        "fullName": "XYZ",
        "deployer": "0x88806a71d74ad0a510b350545c9ae490912f0888",
        "oracleUpdater": None,
        "feeRecipient": "0x83ffcfb1f2ad843c474b2e28df86c721cb869d3a",
    },
}
# name, szDecimals, maxLeverage, default mid, marginMode (None: cross allowed). XYZ100, TSLA, NVDA as the docs' example
# answer of a second perp dex shows them ("onlyIsolated":true, "marginMode":"strictIsolated"; the info endpoint's
# perpetuals page, allPerpMetas / metaAndAssetCtxs example), mids near its markPx; SILVER as df-hyperliquid-core's later
# recorded xyz meta lists it (szDecimals 4, maxLeverage 25, no margin mode): which xyz assets are isolated-only today
# is unconfirmed (that later recording shows NVDA without the flags too)
UNIVERSES = {
    "xyz": (
        ("xyz:XYZ100", 4, 20, "25451", "strictIsolated"),
        ("xyz:TSLA", 3, 10, "465.13", "strictIsolated"),
        ("xyz:NVDA", 3, 10, "177.06", "strictIsolated"),
        ("xyz:SILVER", 4, 25, "30.5", None),
    ),
}
ASSET_IDS = {
    row[0]: HIP3_BASE + NAMES.index(dex) * DEX_SPAN + i for dex, rows in UNIVERSES.items() for i, row in enumerate(rows)
}
COIN_OF_ASSET = {asset: coin for coin, asset in ASSET_IDS.items()}
COINS = tuple(ASSET_IDS)
SZ_DECIMALS = {row[0]: row[1] for rows in UNIVERSES.values() for row in rows}
MAX_LEVERAGE = {row[0]: row[2] for rows in UNIVERSES.values() for row in rows}
MIDS = {row[0]: row[3] for rows in UNIVERSES.values() for row in rows}
MARGIN_MODES = {row[0]: row[4] for rows in UNIVERSES.values() for row in rows if row[4]}
# an open-interest cap refusal: the docs' "Error responses" page, with " asset=N" as every order error carries it live
# (EXCHANGE.md §3); the orderStatus name nktkas lists, paired with it here (the pairing is unconfirmed)
OI_CAPPED = "Order would increase open interest while open interest is capped"
OI_CAPPED_STATUS = "positionIncreaseAtOpenInterestCapRejected"


def dex_of(coin: str) -> str:
    """The dex a coin trades on: "xyz" for "xyz:NVDA", "" (the main dex) for "BTC"."""
    return coin.partition(":")[0] if ":" in coin else ""


def account_key(user: str, dex: str) -> str:
    """The state's key for a user's clearinghouse on `dex`: the address itself on the main dex, "dex:address" else."""
    user = user.lower()
    return f"{dex}:{user}" if dex else user


def split_key(key: str) -> tuple[str, str]:
    """(address, dex) of an account key."""
    dex, _sep, user = key.rpartition(":")
    return user, dex


def owner(key: str) -> str:
    """The address an account key belongs to, whatever the dex."""
    return key.rpartition(":")[2]


def coin_of(asset) -> str | None:
    """The coin of a HIP-3 asset id; None for any other id (the main dex's, an unknown one)."""
    return COIN_OF_ASSET.get(asset) if isinstance(asset, int) and asset >= HIP3_BASE else None


def perp_dexs() -> list:
    """The perpDexs answer: null for the main dex, then each dex's entry, in nktkas' field order. The streaming OI
    caps and funding multipliers are lists of [coin, value] sorted by coin, as recorded live; the values are made up."""
    out: list = [None]
    for name in NAMES[1:]:
        coins = sorted(row[0] for row in UNIVERSES[name])
        out.append(
            {
                "name": name,
                **DEX_INFO[name],
                "assetToStreamingOiCap": [[coin, "100000000.0"] for coin in coins],
                "subDeployers": [],
                "deployerFeeScale": "1.0",
                "lastDeployerFeeScaleChangeTime": "1970-01-01T00:00:00",
                "assetToFundingMultiplier": [[coin, "1.0"] for coin in coins],
            }
        )
    return out


def fund_dex(st: HyperliquidState, user: str, dex: str, usdc) -> None:
    """Move `usdc` from the user's main-dex balance to its clearinghouse on `dex`: a HIP-3 dex margins its positions
    with collateral on that dex (MetaMask/metamask-mobile PR #23301 moves collateral before a HIP-3 order; the SDK
    has sendAsset/usdClassTransfer and userDexAbstraction for it). Without it an order there is refused for margin,
    "Insufficient margin to place order. asset=N" (the text for a dex with no collateral is unconfirmed). Dex
    abstraction (collateral drawn from the main dex by itself) is not modelled."""
    amount = Decimal(str(usdc))
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"usdc must be a positive amount, not {usdc!r}")
    if dex not in NAMES[1:]:
        raise ValueError(f"unknown dex {dex!r}; HIP-3 dexes: {', '.join(NAMES[1:])}")
    user = user.lower()
    with st.lock:
        if user not in st.accounts:
            raise ValueError(f"no account {user}; add it first")
        if st.available(user) < amount:
            raise ValueError(f"{user} has less than {amount} USDC free on the main dex")
        st.accounts[user].usdc -= amount
        st.accounts[account_key(user, dex)].usdc += amount
        st.journal.extend([("account", user, None), ("account", account_key(user, dex), None)])
