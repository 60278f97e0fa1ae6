"""Hyperliquid's /info response shapes, rendered from the simulator's state.

Callers hold `state.lock`. Field names and string formats follow the API docs
(https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint)
and the SDK's docstrings in hyperliquid/info.py.
"""

from __future__ import annotations

from decimal import Decimal

from fractrade_sync.sim.hl_state import (
    COINS,
    MAX_LEVERAGE,
    UNIVERSE,
    ZERO,
    Account,
    HyperliquidState,
    Order,
    fmt,
    usd,
)


def applied(o: Order) -> dict:
    kind = {"tif": o.tif} if o.tif else {"trigger": {**o.trigger, "triggerPx": fmt(o.trigger["triggerPx"])}}
    avg = fmt(o.avg_px) if o.filled_sz else None
    return {
        "oid": o.oid,
        "cloid": o.cloid,
        "coin": o.coin,
        "asset": COINS.index(o.coin),
        "is_buy": o.is_buy,
        "sz": fmt(o.sz),
        "limit_px": fmt(o.limit_px),
        **kind,
        "reduce_only": o.reduce_only,
        "status": o.status,
        "filled_sz": fmt(o.filled_sz),
        "avg_px": avg,
        "user": o.user,
        "signer": o.signer,
        "nonce": o.nonce,
    }


def frontend(o: Order) -> dict:
    """An order as frontendOpenOrders and orderStatus show it."""
    shape = {"triggerCondition": "N/A", "isTrigger": False, "triggerPx": "0.0"}
    order_type, tif = "Limit", o.tif
    if o.trigger:
        tpx, tp = o.trigger["triggerPx"], o.trigger["tpsl"] == "tp"
        up = tp != o.is_buy
        order_type = ("Take Profit" if tp else "Stop") + (" Market" if o.trigger["isMarket"] else " Limit")
        cond = f"Price {'above' if up else 'below'} {fmt(tpx)}"  # text unconfirmed
        shape, tif = (
            {"triggerCondition": cond, "isTrigger": True, "triggerPx": fmt(tpx)},
            None,
        )
    return {
        "coin": o.coin,
        "side": "B" if o.is_buy else "A",
        "limitPx": fmt(o.limit_px),
        "sz": fmt(o.remaining if o.status == "open" else ZERO),
        "oid": o.oid,
        "timestamp": o.timestamp,
        **shape,
        "children": [],
        "isPositionTpsl": False,
        "reduceOnly": o.reduce_only,
        "orderType": order_type,
        "origSz": fmt(o.sz),
        "tif": tif,
        "cloid": o.cloid,
    }


def _meta() -> dict:
    universe = [{"name": n, "szDecimals": s, "maxLeverage": lev, "marginTableId": lev} for n, s, lev, _mid in UNIVERSE]
    # Margin tables with id < 50 are one tier whose max leverage is the id.
    tables = [
        [
            lev,
            {
                "description": "",
                "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}],
            },
        ]
        for lev in sorted(set(MAX_LEVERAGE.values()))
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


def _ctxs(st: HyperliquidState) -> list[dict]:
    out = []
    for coin in COINS:
        mid = fmt(st.mids[coin])
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
                "markPx": mid,
                "midPx": mid,
                "impactPxs": [mid, mid],
                "dayBaseVlm": "0.0",
            }
        )
    return out


def _clearinghouse(st: HyperliquidState, user: str) -> dict:
    acct = st.accounts.get(user.lower()) or Account(usdc=ZERO)
    rows, ntl = [], ZERO
    for coin, p in acct.positions.items():
        kind, lev = st.lev(acct, coin)
        mid = st.mids[coin]
        value, upnl = abs(p.szi) * mid, p.szi * (mid - p.entry_px)
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
    raw = value - sum((p.szi * st.mids[c] for c, p in acct.positions.items()), ZERO)
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
    if isinstance(oid, str):
        found = [o for o in st.orders if o.user == user and (o.cloid or "").lower() == oid.lower()]
    else:
        found = [o for o in st.orders if o.user == user and o.oid == oid]
    if not found:
        return {"status": "unknownOid"}
    o = found[-1]
    return {
        "status": "order",
        "order": {
            "order": frontend(o),
            "status": o.status,
            "statusTimestamp": o.status_ts,
        },
    }


def _user_role(st: HyperliquidState, user: str) -> dict:
    user = user.lower()
    if user in st.accounts:
        return {"role": "user"}
    if user in st.agent_owner:
        return {"role": "agent", "data": {"user": st.agent_owner[user]}}
    return {"role": "missing"}


def answer(st: HyperliquidState, body: dict):
    kind, user = body.get("type"), str(body.get("user", ""))
    mine = [o for o in st.orders if o.user == user.lower() and o.status == "open"]
    views = {
        "meta": lambda: _meta(),
        "spotMeta": lambda: SPOT_META,
        "metaAndAssetCtxs": lambda: [_meta(), _ctxs(st)],
        "allMids": lambda: {c: fmt(px) for mids in (st.mids, st.spot_mids) for c, px in mids.items()},
        "clearinghouseState": lambda: _clearinghouse(st, user),
        "openOrders": lambda: [
            {
                "coin": o.coin,
                "side": "B" if o.is_buy else "A",
                "limitPx": fmt(o.limit_px),
                "sz": fmt(o.remaining),
                "oid": o.oid,
                "timestamp": o.timestamp,
                "origSz": fmt(o.sz),
                **({"cloid": o.cloid} if o.cloid else {}),
            }
            for o in mine
        ],
        "frontendOpenOrders": lambda: [frontend(o) for o in mine],
        "orderStatus": lambda: _order_status(st, user, body.get("oid")),
        "userRole": lambda: _user_role(st, user),
        "activeAssetData": lambda: _active_asset_data(st, user, str(body.get("coin", ""))),
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


def _active_asset_data(st: HyperliquidState, user: str, coin: str) -> dict:
    """The user's leverage setting on one coin, position or not (what the trade form shows)."""
    acct = st.accounts.get(user.lower())
    if acct is None or coin not in st.mids:
        return {}
    kind, value = st.lev(acct, coin)
    return {"user": user.lower(), "coin": coin, "leverage": {"type": kind, "value": value},
            "markPx": fmt(st.mids[coin])}  # fmt: skip


def positions(st: HyperliquidState, user: str) -> dict[str, str]:
    """coin -> signed size, non-zero positions only."""
    acct = st.accounts.get(user.lower())
    return {c: fmt(p.szi) for c, p in acct.positions.items()} if acct else {}


def open_orders(st: HyperliquidState, user: str) -> list[dict]:
    return [frontend(o) for o in st.orders if o.user == user.lower() and o.status == "open"]


def web_data_parts(st: HyperliquidState, user: str) -> dict:
    """What webData2 shares with /info answers, so the feed and a poll can never disagree on a shape."""
    return {"clearinghouseState": _clearinghouse(st, user), "openOrders": open_orders(st, user), "meta": _meta(),
            "assetCtxs": _ctxs(st)}  # fmt: skip
