"""Hyperliquid's /info response shapes of an account and its orders, rendered from the simulator's state, and the
/info dispatcher (`answer`); the market's shapes (meta, contexts, mids) are hl_market.py's.

Callers hold `state.lock`. Field names and string formats follow the API docs
(https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint)
and the SDK's docstrings in hyperliquid/info.py.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Iterable

from fractrade_sync.sim import hl_accounts, hl_dexes, hl_grouping, hl_ledger, hl_market, hl_order_shapes
from fractrade_sync.sim.hl_model import (
    COINS,
    MAX_LEVERAGE,
    SZ_DECIMALS,
    ZERO,
    Account,
    Order,
    fmt,
    usd,
)
from fractrade_sync.sim.hl_state import HyperliquidState


def applied(o: Order) -> dict:
    kind = {"tif": o.tif} if o.tif else {"trigger": {**o.trigger, "triggerPx": fmt(o.trigger["triggerPx"])}}
    avg = fmt(o.avg_px) if o.filled_sz else None
    return {
        "oid": o.oid,
        "cloid": o.cloid,
        "coin": o.coin,
        "asset": hl_dexes.ASSET_IDS.get(o.coin) or COINS.index(o.coin),
        "dex": hl_dexes.dex_of(o.coin),
        "is_buy": o.is_buy,
        "sz": fmt(o.sz),
        "limit_px": fmt(o.limit_px),
        **kind,
        "reduce_only": o.reduce_only,
        "position_tpsl": o.position_tpsl,
        "parent": o.parent,
        "status": o.status,
        "filled_sz": fmt(o.filled_sz),
        "avg_px": avg,
        "user": hl_dexes.owner(o.user),  # (its clearinghouse on a HIP-3 dex is the state's "dex:address")
        "signer": o.signer,
        "nonce": o.nonce,
    }


def owns(user: str, o: Order) -> bool:
    """Whether the order is the user's, on whichever dex."""
    return hl_dexes.owner(o.user) == user.lower()


def frontend(o: Order, children: Iterable[Order] = ()) -> dict:
    """An order as frontendOpenOrders and orderStatus show it; a normalTpsl parent nests its waiting `children` in the
    same shape (EXCHANGE.md §8: TW-RO P5; the nested rows' own fields are unconfirmed). A position leg is
    isPositionTpsl, and one of size 0 shows origSz and sz "0.0" (§8: origSz "0" confirmed, sz unconfirmed)."""
    shape = {"triggerCondition": "N/A", "isTrigger": False, "triggerPx": "0.0"}
    order_type = "Limit"
    tif = o.tif
    if o.trigger:
        tpx = o.trigger["triggerPx"]
        take_profit = o.trigger["tpsl"] == "tp"
        up = take_profit != o.is_buy
        order_type = ("Take Profit" if take_profit else "Stop") + (" Market" if o.trigger["isMarket"] else " Limit")
        cond = f"Price {'above' if up else 'below'} {fmt(tpx)}"  # text unconfirmed
        shape = {"triggerCondition": cond, "isTrigger": True, "triggerPx": fmt(tpx)}
        tif = None
    return {
        "coin": o.coin,
        "side": "B" if o.is_buy else "A",
        "limitPx": fmt(o.limit_px),
        "sz": fmt(o.remaining if o.status == "open" else ZERO),
        "oid": o.oid,
        "timestamp": o.timestamp,
        **shape,
        "children": [frontend(c) for c in children],
        "isPositionTpsl": o.position_tpsl,
        "reduceOnly": o.reduce_only,
        "orderType": order_type,
        "origSz": fmt(o.sz),
        "tif": tif,
        "cloid": o.cloid,
    }


def clearinghouse(st: HyperliquidState, user: str) -> dict:
    """The clearinghouseState answer (also the clearinghouseState feed's payload)."""
    acct = st.accounts.get(user.lower()) or Account(usdc=ZERO)
    rows = []
    ntl = ZERO
    for coin, p in acct.positions.items():
        kind, lev = st.lev(acct, coin)
        mark = st.marks[coin]  # positions are valued at the mark (hl_state.HyperliquidState.__init__)
        value = abs(p.szi) * mark
        upnl = p.szi * (mark - p.entry_px)
        ntl += value
        side = 1 if p.szi > 0 else -1
        liq = p.entry_px * (1 - Decimal(side) / lev)  # isolated-style estimate
        leverage = {"type": kind, "value": lev}
        if kind == "isolated":
            leverage["rawUsd"] = usd(-p.szi * p.entry_px + value / lev)
        rows.append(
            {
                "type": "oneWay",
                "position": {
                    "coin": coin,
                    "szi": fmt(p.szi),
                    "leverage": leverage,
                    "entryPx": fmt(p.entry_px),
                    "positionValue": usd(value),
                    "unrealizedPnl": usd(upnl),
                    "returnOnEquity": fmt((upnl * lev / (abs(p.szi) * p.entry_px)).quantize(Decimal("1e-8"))),
                    "liquidationPx": fmt(liq.quantize(Decimal("1e-6"))),
                    "marginUsed": usd(value / lev),
                    "maxLeverage": MAX_LEVERAGE[coin],
                    "cumFunding": {
                        "allTime": "0.0",
                        "sinceOpen": "0.0",
                        "sinceChange": "0.0",
                    },
                },
            }
        )
    value = st.account_value(acct)
    used = st.margin_used(acct)
    raw = value - sum((p.szi * st.marks[c] for c, p in acct.positions.items()), ZERO)
    summary = {
        "accountValue": usd(value),
        "totalNtlPos": usd(ntl),
        "totalRawUsd": usd(raw),
        "totalMarginUsed": usd(used),
    }
    return {
        "marginSummary": summary,
        "crossMarginSummary": dict(summary),
        "crossMaintenanceMarginUsed": usd(used / 2),
        "withdrawable": usd(max(st.available(user.lower()), ZERO)),
        "assetPositions": rows,
        "time": st.now_ms(),
    }


def _order_status(st: HyperliquidState, user: str, oid) -> dict:
    user = user.lower()
    # a refused order is known too; oids are the exchange's, so one on a HIP-3 dex is found as well (unconfirmed)
    known = [o for o in (*st.orders, *st.rejected) if hl_dexes.owner(o.user) == user]
    if isinstance(oid, str):
        found = [o for o in known if (o.cloid or "").lower() == oid.lower()]
    else:
        found = [o for o in known if o.oid == oid]
    if not found:
        return {"status": "unknownOid"}
    o = max(found, key=lambda o: o.oid)  # a reused cloid: the latest order
    return {
        "status": "order",
        "order": {
            "order": frontend(o, hl_grouping.waiting_children(st, o)),
            "status": o.status,
            "statusTimestamp": o.status_ts,
        },
    }


# the requests that take a "dex" ("" or absent: the main dex; nktkas' request schemas); an unknown dex answers null
# (df-hyperliquid-core for meta; for the others unconfirmed)
DEX_REQUESTS = ("meta", "metaAndAssetCtxs", "allMids", "clearinghouseState", "openOrders", "frontendOpenOrders")


def answer(st: HyperliquidState, body: dict):
    kind = body.get("type")
    user = str(body.get("user", ""))
    dex = body.get("dex") or ""
    if kind in DEX_REQUESTS and dex not in hl_dexes.NAMES:
        return 200, None
    held = hl_dexes.account_key(user, dex)  # the user's clearinghouse on that dex
    mine = [o for o in st.orders if o.user == held and o.status == "open"]
    views = {
        "meta": lambda: hl_market.meta(dex),
        "spotMeta": lambda: hl_market.SPOT_META,
        "metaAndAssetCtxs": lambda: [hl_market.meta(dex), hl_market.asset_ctxs(st, dex)],
        "allMids": lambda: hl_market.all_mids(st, dex),
        "perpDexs": hl_dexes.perp_dexs,
        "clearinghouseState": lambda: clearinghouse(st, held),
        "openOrders": lambda: [hl_order_shapes.basic_order(o) for o in mine],
        "frontendOpenOrders": lambda: open_orders(st, held),
        # still answered over /info on 2026-07-14 while refused on /ws (haocn-ops/hyperopen, as in hl_server)
        "webData2": lambda: web_data2(st, user.lower()),
        "orderStatus": lambda: _order_status(st, user, body.get("oid")),
        "userFills": lambda: _user_fills(st, user),
        "userFunding": lambda: hl_ledger.user_funding(st, user, body.get("startTime"), body.get("endTime")),
        "userRole": lambda: hl_accounts.user_role(st, user),
        "subAccounts": lambda: hl_accounts.sub_accounts(st, user, clearinghouse),
        "vaultDetails": lambda: hl_accounts.vault_details(st, body.get("vaultAddress", "")),
        "activeAssetData": lambda: active_asset_data(st, user, str(body.get("coin", ""))),
        "extraAgents": lambda: [
            {"name": a["name"], "address": addr, "validUntil": a["validUntil"]}
            for addr, a in (st.accounts[user.lower()].agents.items() if user.lower() in st.accounts else [])
        ],
    }
    if kind not in views:
        # Hyperliquid's (axum) answer to a body it cannot deserialize: 422, plain text.
        return 422, (
            "Failed to deserialize the JSON body into the target type: "
            f"unknown variant `{kind}`"  # text unconfirmed past the first sentence
        )
    return 200, views[kind]()


def _user_fills(st: HyperliquidState, user: str) -> list[dict]:
    """The user's fills, newest first, at most 2000 ("Returns at most 2000 most recent fills", info endpoint docs:
    https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint#retrieve-a-users-fills); each
    in the WsFill shape the userFills feed uses (nktkas/hyperliquid src/api/info/_methods/userFills.ts)."""

    # every dex's (unconfirmed: userFills takes no "dex")
    return [
        hl_order_shapes.ws_fill(f)
        for f in reversed([f for f in st.fills if hl_dexes.owner(f.user) == user.lower()][-2000:])
    ]


def active_asset_data(st: HyperliquidState, user: str, coin: str) -> dict:
    """The user's leverage, trade sizes and mark on one coin, position or not (the activeAssetData answer and feed;
    shape: nktkas/hyperliquid src/api/info/_methods/activeAssetData.ts). [buy, sell]: free margin times leverage,
    plus what would close the position on its closing side, in USD and in coin (the formula is unconfirmed). A HIP-3
    coin's are its dex clearinghouse's."""
    held = hl_dexes.account_key(user, hl_dexes.dex_of(coin))
    acct = st.accounts.get(held)
    if acct is None or coin not in st.mids:
        return {}
    kind, value = st.lev(acct, coin)
    leverage = {"type": kind, "value": value}
    mark = st.marks[coin]
    pos = acct.positions.get(coin)
    szi = pos.szi if pos else ZERO
    if kind == "isolated":
        leverage["rawUsd"] = usd(-szi * pos.entry_px + abs(szi) * mark / value if pos else ZERO)
    free = max(st.available(held), ZERO) * value
    lot = Decimal(1).scaleb(-SZ_DECIMALS[coin])
    sizes = [free / mark + (-szi if szi < 0 else ZERO), free / mark + (szi if szi > 0 else ZERO)]
    return {
        "user": user.lower(),
        "coin": coin,
        "leverage": leverage,
        "maxTradeSzs": [fmt(sz.quantize(lot, rounding=ROUND_DOWN)) for sz in sizes],
        "availableToTrade": [usd(free), usd(free)],
        "markPx": fmt(mark),
    }


def positions(st: HyperliquidState, user: str) -> dict[str, str]:
    """coin -> signed size, non-zero positions only."""
    acct = st.accounts.get(user.lower())
    return {c: fmt(p.szi) for c, p in acct.positions.items()} if acct else {}


def open_orders(st: HyperliquidState, user: str) -> list[dict]:
    """frontendOpenOrders (and the openOrders push): every open order at the top level, a normalTpsl parent's waiting
    children nested in it too (EXCHANGE.md §8: TW-RO P5, MM-CORE; confirmed)."""
    user = user.lower()
    return [
        frontend(o, hl_grouping.waiting_children(st, o)) for o in st.orders if o.user == user and o.status == "open"
    ]


def web_data2(st: HyperliquidState, user: str) -> dict:
    """WebData2, in the field order of nktkas/hyperliquid's WebData2Response (src/api/info/_methods/webData2.ts).
    clearinghouseState, openOrders (frontendOpenOrders' shape), meta and assetCtxs are the /info answers; this
    simulator has no vaults, spot or TWAPs, so those are empty. agentAddress is the user's unnamed API wallet (the
    one the web app approves; unconfirmed), cumLedger "0.0" (deposits are not tracked here)."""
    acct = st.accounts.get(user)
    agents = [(a, info["validUntil"]) for a, info in (acct.agents.items() if acct else []) if info["name"] == ""]
    agent, valid_until = agents[0] if agents else (None, None)
    return {
        "clearinghouseState": clearinghouse(st, user),
        "leadingVaults": [],
        "totalVaultEquity": "0.0",
        "openOrders": open_orders(st, user),
        "agentAddress": agent,
        "agentValidUntil": valid_until,
        "cumLedger": "0.0",
        "meta": hl_market.meta(),
        "assetCtxs": hl_market.asset_ctxs(st),
        "serverTime": st.now_ms(),
        "isVault": hl_accounts.user_role(st, user)["role"] == hl_accounts.VAULT,
        "user": user,
        "twapStates": [],
        "spotAssetCtxs": [],
    }
