"""Actions waiting together go out together: the worker hands over everything queued, and each wave of it is one
signed request (Hyperliquid's `order` action takes several orders, applied in the order given).

A wave keeps each coin's arrival order: an action joins it unless an earlier action on its coin is still waiting,
or a trade on its coin is in the wave (a stop loss that needs the trade's resulting position waits for the trade's
answer, then reads the position from the live account view, which lays that answer over the feed); a trade waits
when its coin has an action in the wave (its cleanup must see that action's order as older than itself). Every action
takes this way, new or resumed, whether its hook is the stock one or the user's.
"A batched request with n orders is treated as one request for IP based rate limiting, but as n requests for
address-based rate limiting" (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-
user-limits)."""

from __future__ import annotations

import collections
from typing import Any, Sequence

from fractrade_sync.actions import Action
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.answers import WHOLE
from fractrade_sync.exchange.dexes import dex_of
from fractrade_sync.execution.hooks import Handling
from fractrade_sync.outcome import REJECTED, Outcome
from fractrade_sync.storage.table import Resumed

MORE_UP_TO = 128  # actions one hand-over sends before the worker looks up (its cleanups, its idle steps)
# seconds a lone trade waits for the stop loss and take profit its agent's events usually carry (frames of one event
# come back to back: they are in the queue well within this); BENCHMARKS.md has what it costs a plain trade
SIBLINGS_WITHIN = 0.005
# a whole request refused with one of these says nothing about sending a trade with its position TP/SL together
NOT_ABOUT_GROUPING = (wire.ADDRESS_LIMIT, "Must deposit", "User or API Wallet", "Invalid nonce")


def action_of(item: Action | Resumed) -> Action:
    """The action of a queued item (a new one, or one resumed from the journal)."""
    return item.action if isinstance(item, Resumed) else item


def next_wave(items: Sequence[Any], together: bool = True) -> tuple[list[Any], list[Any]]:
    """The items (new or resumed actions) of `items` that go out together now, and the rest (in order). A stop loss
    or take profit without a size is a position TP/SL: it joins a trade on its coin (one request, the trade first:
    the exchange checks it against the position the trade leaves), one of each kind per coin. A sized one needs the
    trade's resulting position: it waits for the trade's answer. A trade waits when its coin already has an action
    here (its cleanup must see that action's order as older). Not `together` (the exchange refused a trade with its
    position TP/SL in one request): they wait for its answer too. Decided by each action as it came (a hook may
    change what it executes, never where it stands in its coin's order)."""
    wave: list[Any] = []
    rest: list[Any] = []
    blocked: set[str] = set()  # coins whose next action waits for the next wave (their arrival order is kept)
    present: set[str] = set()  # coins with an action in the wave
    traded: set[str] = set()  # coins with a trade in the wave
    legs: set[tuple[str, str]] = set()  # (coin, kind) of the position TP/SL in the wave
    for item in items:
        action = action_of(item)
        coin = action.symbol.lower()
        if action.kind == "trade":
            joins = coin not in present
        elif action.size is None:
            joins = (coin, action.kind) not in legs and (together or coin not in traded)
        else:
            joins = coin not in traded
        if coin in blocked or not joins:
            blocked.add(coin)
            rest.append(item)
            continue
        wave.append(item)
        present.add(coin)
        if action.kind == "trade":
            traded.add(coin)
        elif action.size is None:
            legs.add((coin, action.kind))
    return wave, rest


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


class EventShape:
    """Whether this agent's trades come with a stop loss and take profit without a size (the same event_id, back to
    back), learnt from its recent events: then the worker waits a few milliseconds for a lone trade's protection so
    that the whole event goes in one request. A trade whose events never carry protection never waits."""

    def __init__(self, kept: int = 20):
        self.kept = kept
        self._events: collections.OrderedDict[str, set[str]] = collections.OrderedDict()  # trade's event -> kinds

    def traded(self, action: Action) -> None:
        self._events[action.event_id] = set()
        self._events.move_to_end(action.event_id)
        while len(self._events) > self.kept:
            self._events.popitem(last=False)

    def protected(self, action: Action) -> None:
        if action.size is None and action.event_id in self._events:
            self._events[action.event_id].add(action.kind)

    def expected(self) -> frozenset[str]:
        """The kinds a trade's event usually carries: those most of the recent events carried (a trade's first
        events count as carrying both, until seen otherwise)."""
        seen = list(self._events.values())
        share = {k: (sum(k in kinds for kinds in seen) + 1) / (len(seen) + 2) for k in ("stop_loss", "take_profit")}
        return frozenset(k for k, part in share.items() if part >= 0.5)


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
