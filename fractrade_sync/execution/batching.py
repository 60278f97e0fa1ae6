"""Actions waiting together go out together: the worker hands over everything queued, and each wave of it is one
signed request (Hyperliquid's `order` action takes several orders, applied in the order given).

A wave keeps each coin's arrival order: an action joins it unless an earlier action on its coin is still waiting,
or a trade on its coin is in the wave (a stop loss that needs the trade's resulting position waits for the trade's
answer, then reads the position from the live account view, which lays that answer over the feed); a trade waits
when its coin has an action in the wave (its cleanup must see that action's order as older than itself). An action that
is not executed by the service's own hook (a resumed one, a custom hook) is handled on its own, in its place.
"A batched request with n orders is treated as one request for IP based rate limiting, but as n requests for
address-based rate limiting" (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-
user-limits)."""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from typing import Any, Callable, Sequence

from fractrade_sync.actions import Action
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.answers import WHOLE
from fractrade_sync.exchange.client import TransientError
from fractrade_sync.exchange.dexes import dex_of
from fractrade_sync.exchange.rules import Order
from fractrade_sync.execution.pipeline import HOOKS, Pipeline
from fractrade_sync.execution.sending import Refused, Unfinished
from fractrade_sync.outcome import FAILED, REJECTED, TERMINAL_STATES, UNKNOWN, Outcome
from fractrade_sync.storage.journal import Resumed, Unwritable

log = logging.getLogger("fractrade_sync")
MORE_UP_TO = 128  # actions one hand-over sends before the worker looks up (its cleanups, its idle steps)
# seconds a lone trade waits for the stop loss and take profit its agent's events usually carry (frames of one event
# come back to back: they are in the queue well within this); BENCHMARKS.md has what it costs a plain trade
SIBLINGS_WITHIN = 0.005
# a whole request refused with one of these says nothing about sending a trade with its position TP/SL together
NOT_ABOUT_GROUPING = (wire.ADDRESS_LIMIT, "Must deposit", "User or API Wallet", "Invalid nonce")


def batchable(cls: type, base: type) -> frozenset[str]:
    """The kinds `cls` executes with `base`'s own hooks: those may share a request with others (a hook overridden
    runs on its own, in its place)."""
    return frozenset(kind for kind, name in HOOKS.items() if getattr(cls, name) is base.__dict__[name])


def next_wave(items: Sequence[Any], batchable: frozenset[str], together: bool = True) -> tuple[list[Action], list[Any]]:
    """The actions of `items` that can go out together now, and the rest (in order). Empty when the first item
    must be handled on its own. A stop loss or take profit without a size is a position TP/SL: it joins a trade on
    its coin (one request, the trade first: the exchange checks it against the position the trade leaves), one of
    each kind per coin. A sized one needs the trade's resulting position: it waits for the trade's answer. A trade
    waits when its coin already has an action here (its cleanup must see that action's order as older). Not
    `together` (the exchange refused a trade with its position TP/SL in one request): they wait for its answer too."""
    wave: list[Action] = []
    rest: list[Any] = []
    blocked: set[str] = set()  # coins whose next action waits for the next wave (their arrival order is kept)
    present: set[str] = set()  # coins with an action in the wave
    traded: set[str] = set()  # coins with a trade in the wave
    legs: set[tuple[str, str]] = set()  # (coin, kind) of the position TP/SL in the wave
    for n, item in enumerate(items):
        if not isinstance(item, Action) or item.kind not in batchable:
            return wave, rest + list(items[n:])  # handled on its own, after what came before it
        coin = item.symbol.lower()
        if item.kind == "trade":
            joins = coin not in present
        elif item.size is None:
            joins = (coin, item.kind) not in legs and (together or coin not in traded)
        else:
            joins = coin not in traded
        if coin in blocked or not joins:
            blocked.add(coin)
            rest.append(item)
            continue
        wave.append(item)
        present.add(coin)
        if item.kind == "trade":
            traded.add(coin)
        elif item.size is None:
            legs.add((coin, item.kind))
    return wave, rest


def requests_of(planned: list[tuple[Action, Order, str]]) -> list[list[tuple[Action, Order, str]]]:
    """A wave's orders as requests: the position TP/SL of a coin in one `positionTpsl` request each, with the trade
    on their coin first (EXCHANGE.md §8: one coin, an entry first, at most one of each kind); the rest in one."""
    coins = {a.symbol.lower() for a, order, _ in planned if order.position}
    groups: dict[str, list] = {}
    for item in planned:
        action, order, _ = item
        coin = action.symbol.lower()
        together = coin in coins and (order.position or action.kind == "trade")
        groups.setdefault(coin if together else dex_of(coin) + ":", []).append(item)  # (one request per dex)
    for coin, group in groups.items():
        if not coin.endswith(":"):  # a coin's position TP/SL group: the trade first
            group.sort(key=lambda item: item[0].kind != "trade")  # (stable: the legs keep their order)
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


class Batches:
    """The worker's handler for everything queued at once: waves of one request each, and the actions that are
    handled on their own, in arrival order. Returns how many are left for the next start (a stop came first)."""

    def __init__(self, pipeline: Pipeline, batchable: frozenset[str]):
        self.pipeline, self.batchable = pipeline, batchable
        self._concluded: set[str] = set()  # keys of the current wave's actions journaled and reported
        self.past_deadline: Callable[[], bool] = lambda: False  # a stop's drain time is over (the worker's)
        self.more: Callable[[float], list] = lambda wait: []  # what was queued since the hand-over (take_more)
        self.shape = EventShape()
        self.together = True  # a trade and its position TP/SL in one request (False once the exchange refused it)

    def __call__(self, items: list[Any]) -> int:
        pending, left, taken = list(items), 0, 0
        self._learn(pending)
        while pending:
            if self.past_deadline():  # stopping: what is not started stays in the journal for the next start
                return left + len(pending)
            self._gather(pending, taken)
            wave, pending = next_wave(pending, self.batchable, self.together)
            if not wave:
                if self.pipeline(pending.pop(0)) is False:
                    left += 1
                continue
            self._concluded = set()
            taken += len(wave)
            try:
                self._send(wave)
            except Unfinished as exc:  # stopping: the rest stays in the journal, resumed at the next start
                left += len(wave) - len(self._concluded) + len(pending)
                log.warning("%s; %d action(s) left for the next start", exc, left)
                return left
            except Exception:  # a bug: what was not concluded may have been sent; its journal row says how far
                log.exception(
                    "a wave of %d action(s) failed; each one left open is settled from its journal row", len(wave)
                )
                left += self._settle([a for a in wave if a.key not in self._concluded])
            if taken < MORE_UP_TO:  # what arrived during that request joins (an event's last frames)
                pending.extend(self._learn(self.more(0.0)))
        return left

    def _learn(self, items: list[Any]) -> list[Any]:
        """Note which trades' events carried a stop loss or take profit (the wait for an event's protection)."""
        for item in items:
            if isinstance(item, Action):
                self.shape.protected(item)
        return items

    def _gather(self, pending: list[Any], taken: int) -> None:
        """A trade at the head whose event's stop loss and take profit (as this agent's events usually carry) are
        not queued yet: wait for them up to SIBLINGS_WITHIN, so that the whole event goes in one request."""
        head = pending[0]
        if not isinstance(head, Action) or head.kind != "trade" or taken >= MORE_UP_TO:
            return
        wanted = self.shape.expected() & self.batchable
        self.shape.traded(head)
        self._learn(pending)
        deadline = time.monotonic() + SIBLINGS_WITHIN
        while True:
            have = {a.kind for a in pending if isinstance(a, Action) and a.event_id == head.event_id and a.size is None}
            left = deadline - time.monotonic()
            if wanted <= have or left <= 0:
                break
            pending.extend(self._learn(self.more(left)))

    def _settle(self, actions: list[Action]) -> int:
        """Each action as the next start would take it: by its journal row ('received': asked by cloid first;
        'submitting': by its nonce and cloid); returns how many are left."""
        left = 0
        for action in actions:
            row = self.pipeline.journal.get(action.key)
            if row is None or row["state"] in TERMINAL_STATES:
                continue
            resumed = Resumed(action, row["state"], row["updated_at"], row["nonce"])
            try:
                left += self.pipeline(resumed) is False
            except Exception:  # the same bug again: this one waits for the next start, the others go on
                log.exception("%s: left for the next start", action.describe())
                left += 1
        return left

    def _send(self, wave: list[Action]) -> None:
        """One wave: each action's checks and order, then one request for all the orders, then each outcome
        journaled and reported. Cleanups wait (protection.py), unless a trade here must not overtake one."""
        pipeline, execution = self.pipeline, self.pipeline.execution
        if execution.protection.waiting_on({a.symbol for a in wave if a.kind == "trade"}):
            execution.protection.flush()
        planned: list[tuple[Action, Any, str]] = []
        for action in wave:
            outcome = pipeline.before_hook(action) or self._plan(action, planned)
            if outcome is not None:
                self._conclude(action, outcome)
        for request in requests_of(planned):
            self._request(request)

    def _request(self, planned: list[tuple[Action, Any, str]]) -> None:
        """One request's orders sent, each outcome journaled and reported. A trade with its position TP/SL that the
        exchange refuses as a whole is sent again as two requests (the trade, then its protection), and from then
        on always so (EXCHANGE.md §8: whether the exchange takes them together is not confirmed)."""
        pipeline, execution = self.pipeline, self.pipeline.execution
        if not self.together and len(planned) > 1 and planned[0][1].position is False and planned[-1][1].position:
            for part in ([planned[0]], planned[1:]):
                self._request(part)
            return
        try:
            outcomes = execution.sender.submit_batch([(a, order) for a, order, _ in planned])
        except Unwritable as exc:  # before the request left: nothing of it was sent (an earlier round's stands)
            pipeline.on_storage(str(exc))
            known = getattr(exc, "known", {})
            for action, _, _ in planned:
                outcome = known.get(action.key) or Outcome(FAILED, f"not executed: {exc}")
                execution.protection.defer(action, outcome)
                self._conclude(action, outcome, unwritable=True)
            return
        except Exception as exc:  # a bug: the request may have left, so the exchange decides (by cloid, later)
            log.exception("sending %d order(s) failed", len(planned))
            outcomes = [
                Outcome(
                    UNKNOWN,
                    f"outcome unknown ({type(exc).__name__}: {str(exc)[:200]}); settled by "
                    f"cloid {a.cloid} as soon as the exchange answers",
                )
                for a, _, _ in planned
            ]
        if self.together and _refused_together(planned, outcomes):
            self.together = False
            log.warning(
                "the exchange refused a trade and its position TP/SL in one request (%s); from now on the "
                "trade goes first and its protection right after its answer",
                outcomes[0].reason[:160],
            )
            self._request(planned)
            return
        for (action, _, note), outcome in zip(planned, outcomes, strict=True):
            execution.protection.defer(action, outcome)
            if note:
                outcome = dataclasses.replace(outcome, reason=f"{outcome.reason}; {note}" if outcome.reason else note)
            self._conclude(action, outcome)

    def _conclude(self, action: Action, outcome: Outcome, unwritable: bool = False) -> None:
        self.pipeline.conclude(action, action, outcome, unwritable)
        self._concluded.add(action.key)

    def _plan(self, action: Action, planned: list) -> Outcome | None:
        """The action's order added to `planned`, or its outcome when it has none (refused, stale, unreachable)."""
        execution = self.pipeline.execution
        try:
            if action.kind == "trade":
                made = execution.trade_order(action)
                if isinstance(made, Outcome):
                    return made
                order, note = made
            else:  # (a position TP/SL right behind a trade on its coin: the exchange checks it after the trade)
                coin = action.symbol.lower()
                after_trade = any(a.kind == "trade" and a.symbol.lower() == coin for a, _, _ in planned)
                tpsl = "sl" if action.kind == "stop_loss" else "tp"
                order, note = execution.protect_order(action, tpsl, after_trade and self.together), ""
        except Refused as exc:
            return Outcome(REJECTED, str(exc))
        except TransientError as exc:
            return Outcome(FAILED, f"exchange unreachable: {exc}")
        except (Unfinished, Unwritable):
            raise
        except Exception as exc:
            log.exception("%s failed", action.describe())
            return Outcome(FAILED, f"{type(exc).__name__}: {exc}"[:300])
        planned.append((action, order, note))
        return None


def _refused_together(planned: list[tuple[Action, Any, str]], outcomes: list[Outcome]) -> bool:
    """A trade with its position TP/SL refused as a whole: every order refused with the same reason, one that is
    not about the account (the address-based limit, a deposit, the wallet, a nonce)."""
    if len(planned) < 2 or planned[0][1].position or not planned[-1][1].position:
        return False
    reasons = {o.reason.removesuffix(WHOLE) for o in outcomes}
    reason = next(iter(reasons))
    return (
        all(o.state == REJECTED for o in outcomes) and len(reasons) == 1 and not reason.startswith(NOT_ABOUT_GROUPING)
    )
