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

import dataclasses
import logging
from typing import Any, Callable, Sequence

from .actions import Action
from .exchange import TransientError
from .journal import Resumed, Unwritable
from .outcome import FAILED, REJECTED, TERMINAL_STATES, UNKNOWN, Outcome
from .pipeline import HOOKS, Pipeline
from .sending import Refused, Unfinished

log = logging.getLogger("fractrade_sync")
MORE_UP_TO = 128  # actions one hand-over sends before the worker looks up (its cleanups, its idle steps)


def batchable(cls: type, base: type) -> frozenset[str]:
    """The kinds `cls` executes with `base`'s own hooks: those may share a request with others (a hook overridden
    runs on its own, in its place)."""
    return frozenset(kind for kind, name in HOOKS.items() if getattr(cls, name) is base.__dict__[name])


def next_wave(items: Sequence[Any], batchable: frozenset[str]) -> tuple[list[Action], list[Any]]:
    """The actions of `items` that can share one request, and the rest (in order). Empty when the first item must
    be handled on its own."""
    wave: list[Action] = []
    rest: list[Any] = []
    held: set[str] = set()  # coins whose next action waits for the next wave
    present: set[str] = set()  # coins with an action in the wave
    for n, item in enumerate(items):
        if not isinstance(item, Action) or item.kind not in batchable:
            return wave, rest + list(items[n:])  # handled on its own, after what came before it
        coin = item.symbol.lower()
        if coin in held or (item.kind == "trade" and coin in present):
            held.add(coin)  # a trade goes after the cleanup of what came before it on its coin
            rest.append(item)
            continue
        wave.append(item)
        present.add(coin)
        if item.kind == "trade":
            held.add(coin)  # what follows on this coin needs its answer
    return wave, rest


class Batches:
    """The worker's handler for everything queued at once: waves of one request each, and the actions that are
    handled on their own, in arrival order. Returns how many are left for the next start (a stop came first)."""

    def __init__(self, pipeline: Pipeline, batchable: frozenset[str]):
        self.pipeline, self.batchable = pipeline, batchable
        self._concluded: set[str] = set()  # keys of the current wave's actions journaled and reported
        self.past_deadline: Callable[[], bool] = lambda: False  # a stop's drain time is over (the worker's)
        self.more: Callable[[], list] = lambda: []  # what was queued since the hand-over (the worker's take_more)

    def __call__(self, items: list[Any]) -> int:
        pending, left, taken = list(items), 0, 0
        while pending:
            if self.past_deadline():  # stopping: what is not started stays in the journal for the next start
                return left + len(pending)
            wave, pending = next_wave(pending, self.batchable)
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
                log.exception("a wave of %d action(s) failed; each one left open is settled from its journal row",
                              len(wave))  # fmt: skip
                left += self._settle([a for a in wave if a.key not in self._concluded])
            if taken < MORE_UP_TO:  # what arrived during that request joins (an event's last frames)
                pending.extend(self.more())
        return left

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
        if not planned:
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
            outcomes = [Outcome(UNKNOWN, f"outcome unknown ({type(exc).__name__}: {str(exc)[:200]}); settled by "
                                         f"cloid {a.cloid} as soon as the exchange answers") for a, _, _ in planned]
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
            else:
                order, note = execution.protect_order(action, "sl" if action.kind == "stop_loss" else "tp"), ""
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
