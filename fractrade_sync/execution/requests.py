"""A wave's planned orders as the requests the exchange takes, each sent exactly once (sending.py): the position
TP/SL of a coin in one `positionTpsl` request with the trade on their coin first, the rest in one request per dex. A
trade with its position TP/SL that the exchange refuses as a whole is sent again as two requests (the trade, then its
protection), and from then on always so (EXCHANGE.md §8: whether the exchange takes them together is not confirmed).
"A batched request with n orders is treated as one request for IP based rate limiting, but as n requests for
address-based rate limiting" (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-
user-limits)."""

from __future__ import annotations

import logging
from typing import Iterator

from fractrade_sync.exchange import wire
from fractrade_sync.exchange.answers import WHOLE
from fractrade_sync.exchange.dexes import dex_of
from fractrade_sync.execution.admission import unknown
from fractrade_sync.execution.hooks import Handling
from fractrade_sync.execution.sending import Sender, Sent
from fractrade_sync.outcome import REJECTED, Outcome

log = logging.getLogger("fractrade_sync")

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


class Requests:
    """Sends a wave's plans, request by request; `together`: a trade and its position TP/SL may share a request."""

    def __init__(self, sender: Sender):
        self.sender = sender
        self.together = True  # (False once the exchange refused them together)

    def send(self, planned: list[Handling]) -> Iterator[tuple[list[Handling], Sent]]:
        """Each request's handlings and what became of their orders, one request after the other (the caller
        concludes each before the next is sent)."""
        for request in requests_of(planned):
            yield from self._send(request)

    def _send(self, request: list[Handling]) -> Iterator[tuple[list[Handling], Sent]]:
        if not self.together and len(request) > 1 and not request[0].order.position and request[-1].order.position:
            for part in ([request[0]], request[1:]):
                yield from self._send(part)
            return
        try:
            sent = self.sender.submit_batch([(h.action, h.order) for h in request])
        except Exception as exc:  # a bug: the request may have left, so the exchange decides (by cloid, later)
            log.exception("sending %d order(s) failed", len(request))
            why = f"outcome unknown ({type(exc).__name__}: {str(exc)[:200]})"
            sent = Sent([unknown(why, h.action) for h in request])
        if self.together and refused_together(request, sent.outcomes):
            self.together = False
            log.warning(
                "the exchange refused a trade and its position TP/SL in one request (%s); from now on the "
                "trade goes first and its protection right after its answer",
                sent.outcomes[0].reason[:160],
            )
            yield from self._send(request)
            return
        yield request, sent
