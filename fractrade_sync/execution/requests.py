"""Which requests a wave's planned orders make (pure; sent by sending.py's `Requests`, each exactly once): the position
TP/SL of a coin in one `positionTpsl` request with the trade on their coin first, the rest in one request per dex. A
trade with its position TP/SL that the exchange refuses as a whole is sent again as two requests (the trade, then its
protection), and from then on always so (EXCHANGE.md §8: whether the exchange takes them together is not confirmed).
"A batched request with n orders is treated as one request for IP based rate limiting, but as n requests for
address-based rate limiting" (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-
user-limits)."""

from __future__ import annotations

from fractrade_sync.exchange import wire
from fractrade_sync.exchange.answers import WHOLE
from fractrade_sync.exchange.dexes import dex_of
from fractrade_sync.execution.hooks import Handling
from fractrade_sync.outcome import REJECTED, Outcome

# a whole request refused with one of these says nothing about sending a trade with its position TP/SL together
NOT_ABOUT_GROUPING = (wire.ADDRESS_LIMIT, "Must deposit", "User or API Wallet", "Invalid nonce")


def requests_of(planned: list[Handling]) -> list[list[Handling]]:
    """A wave's orders as requests: the position TP/SL of a coin in one `positionTpsl` request each, with the trade
    on their coin first (EXCHANGE.md §8: one coin, an entry first, at most one of each kind); the rest in one per
    dex."""
    coins = {h.action.symbol.lower() for h in planned if h.order.position}
    groups: dict[str, list[Handling]] = {}
    for h in planned:
        coin = h.action.symbol.lower()
        together = coin in coins and (h.order.position or h.action.kind == "trade")
        groups.setdefault(coin if together else dex_of(coin) + ":", []).append(h)
    for coin, group in groups.items():
        if not coin.endswith(":"):  # a coin's position TP/SL group: the trade first
            group.sort(key=lambda h: h.action.kind != "trade")  # (stable: the legs keep their order)
    return list(groups.values())


def refused_together(planned: list[Handling], outcomes: list[Outcome]) -> bool:
    """A trade with its position TP/SL refused as a whole: every order refused with the same reason, one that is
    not about the account (the address-based limit, a deposit, the wallet, a nonce)."""
    if len(planned) < 2 or planned[0].order.position or not planned[-1].order.position:
        return False
    reasons = {o.reason.removesuffix(WHOLE) for o in outcomes}
    reason = next(iter(reasons))
    return (
        all(o.state == REJECTED for o in outcomes) and len(reasons) == 1 and not reason.startswith(NOT_ABOUT_GROUPING)
    )
