"""Actions waiting together go out together: the worker hands over everything queued, and each wave of it goes out in
as few signed requests as the exchange takes (requests.py; Hyperliquid's `order` action takes several orders, applied
in the order given).

A wave keeps each coin's arrival order: an action joins it unless an earlier action on its coin is still waiting,
or a trade on its coin is in the wave (a stop loss that needs the trade's resulting position waits for the trade's
answer, then reads the position from the live account view, which lays that answer over the feed); a trade waits
when its coin has an action in the wave (its cleanup must see that action's order as older than itself). Every action
takes this way, new or resumed, whether its hook is the stock one or the user's."""

from __future__ import annotations

import collections
import time
from typing import Any, Callable, Sequence

from fractrade_sync.actions import Action
from fractrade_sync.exchange.rules import TPSL
from fractrade_sync.storage.journal_table import Resumed

PROTECTION_KINDS = tuple(TPSL)  # stop_loss, take_profit
MORE_UP_TO = 128  # actions one hand-over sends before the worker looks up (its cleanups, its idle steps)
# seconds a lone trade waits for the stop loss and take profit its agent's events usually carry (frames of one event
# come back to back: they are in the queue well within this); BENCHMARKS.md has what it costs a plain trade
SIBLINGS_WITHIN = 0.005


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
        action = item.action if isinstance(item, Resumed) else item
        coin = action.symbol.lower()
        if coin in blocked:
            rest.append(item)
            continue
        kind = action.kind
        if kind == "trade":
            joins = coin not in present
        elif action.size is None:
            joins = (coin, kind) not in legs and (together or coin not in traded)
        else:
            joins = coin not in traded
        if not joins:
            blocked.add(coin)
            rest.append(item)
            continue
        wave.append(item)
        present.add(coin)
        if kind == "trade":
            traded.add(coin)
        elif action.size is None:
            legs.add((coin, kind))
    return wave, rest


class EventShape:
    """Whether this agent's trades come with a stop loss and take profit without a size (the same event_id, back to
    back), learnt from its recent events: then the worker waits a few milliseconds for a lone trade's protection so
    that the whole event goes in one request. A trade whose events never carry protection never waits."""

    def __init__(self, kept: int = 20):
        self.kept = kept
        self._events: collections.OrderedDict[str, set[str]] = collections.OrderedDict()  # trade's event -> kinds
        self._carried = collections.Counter()  # kind -> how many of the kept events carried it (kept in step)

    def traded(self, action: Action) -> None:
        self._forget(self._events.pop(action.event_id, set()))
        self._events[action.event_id] = set()
        while len(self._events) > self.kept:
            self._forget(self._events.popitem(last=False)[1])

    def protected(self, action: Action) -> None:
        kinds = self._events.get(action.event_id) if action.size is None else None
        if kinds is not None and action.kind not in kinds:
            kinds.add(action.kind)
            self._carried[action.kind] += 1

    def _forget(self, kinds: set[str]) -> None:
        self._carried.subtract(kinds)

    def expected(self) -> frozenset[str]:
        """The kinds a trade's event usually carries: those most of the recent events carried (a trade's first
        events count as carrying both, until seen otherwise)."""
        seen = len(self._events)
        return frozenset(k for k in PROTECTION_KINDS if (self._carried[k] + 1) / (seen + 2) >= 0.5)


class Waves:
    """The next wave of what is queued: each coin's order kept (next_wave), and a trade at the head waits a few
    milliseconds for the stop loss and take profit its agent's events usually carry (EventShape)."""

    def __init__(self):
        self.shape = EventShape()

    def next(
        self, pending: list[Any], fresh: list[Any], more: Callable[[float], list], taken: int, together: bool
    ) -> tuple[list[Any], list[Any]]:
        """The next wave of what is pending (`fresh`: queued since the last wave, after it), and the rest.
        `more(wait)`: what the worker has queued since; `together`: a trade and its position TP/SL may share a
        request (Requests.together)."""
        pending.extend(self._learn(fresh))
        self._gather(pending, taken, more)
        return next_wave(pending, together)

    def _learn(self, items: list[Any]) -> list[Any]:
        """Note which trades' events carried a stop loss or take profit (the wait for an event's protection)."""
        for item in items:
            if isinstance(item, Action):
                self.shape.protected(item)
        return items

    def _gather(self, pending: list[Any], taken: int, more: Callable[[float], list]) -> None:
        """A trade at the head whose event's stop loss and take profit (as this agent's events usually carry) are
        not queued yet: wait for them up to SIBLINGS_WITHIN, so that the whole event goes in one request."""
        head = pending[0]
        if not isinstance(head, Action) or head.kind != "trade" or taken >= MORE_UP_TO:
            return
        wanted = self.shape.expected()
        self.shape.traded(head)
        self._learn([a for a in pending if isinstance(a, Action) and a.event_id == head.event_id])
        deadline = time.monotonic() + SIBLINGS_WITHIN
        while True:
            have = {a.kind for a in pending if isinstance(a, Action) and a.event_id == head.event_id and a.size is None}
            left = deadline - time.monotonic()
            if wanted <= have or left <= 0:
                break
            pending.extend(self._learn(more(left)))
