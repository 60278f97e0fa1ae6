"""The worker's one handler: everything queued at once -> waves -> one signed request each -> an outcome for each
action, journaled and reported. Every action takes this way, new or resumed, stock hook or user's:

    admission (decided before any hook?) -> the hook plans (an order, or an outcome) -> the wave's requests are sent
    (exactly once: sending.py) -> each outcome journaled and reported -> its protection (protection.py)."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from typing import Any, Callable, Mapping, Sequence

from fractrade_sync.actions import Action
from fractrade_sync.errors import Refused, TransientError, Unfinished, Unwritable
from fractrade_sync.execution.admission import Admission, FoundLate
from fractrade_sync.execution.hooks import (
    COROUTINE_RETURNED,
    ActionConfig,
    Handling,
    Hook,
    Stage,
)
from fractrade_sync.execution.orders import Execution
from fractrade_sync.execution.protection import Protection
from fractrade_sync.execution.sending import Requests, Sent
from fractrade_sync.execution.waves import MORE_UP_TO, Waves
from fractrade_sync.outcome import (
    FAILED,
    REJECTED,
    SKIPPED,
    TERMINAL_STATES,
    UNKNOWN,
    Outcome,
    outcome_fields,
    outcome_line,
)
from fractrade_sync.storage.journal import Journal
from fractrade_sync.storage.journal_table import Resumed

RECHECK_EVERY = 30.0  # seconds between two attempts to settle an action whose outcome the exchange has not told
log = logging.getLogger("fractrade_sync")


def _failed(action: Action, exc: Exception) -> Outcome:
    """The outcome of a hook that raised (nothing of it was sent)."""
    if isinstance(exc, Refused):
        return Outcome(REJECTED, str(exc))
    if isinstance(exc, TransientError):
        return Outcome(FAILED, f"exchange unreachable: {exc}")
    log.exception("%s failed", action.describe())
    return Outcome(FAILED, f"{type(exc).__name__}: {exc}"[:300])


def _nothing_more(wait: float) -> list:
    return []


def _never() -> bool:
    return False


class Pipeline:
    """Items (new actions, or resumed from the journal) -> one terminal outcome each; returns how many it left for
    the next start (a stop came first)."""

    def __init__(
        self,
        journal: Journal,
        admission: Admission,
        execution: Execution,
        waves: Waves,
        requests: Requests,
        protection: Protection,
        hooks: Mapping[str, Hook],
        on_outcome: Sequence[Callable[[Action, Outcome], None]] = (),
        on_storage: Callable[[str | None], None] = lambda problem: None,
        clock: Callable[[], float] = time.time,
    ):
        self.journal = journal
        self.admission = admission
        self.execution = execution
        self.waves = waves
        self.requests = requests
        self.protection = protection
        self.clock = clock
        self.hooks = hooks  # kind (trade, stop_loss, take_profit) -> the service's overridable handle_* method
        self.on_outcome = tuple(on_outcome)
        self.on_storage = on_storage

    # ---- the worker's steps ---------------------------------------------------------------------
    def prepare(self) -> None:
        """Before the first action: the exchange ready, then the protection a crash left tidied."""
        self.execution.prepare()
        self.protection.at_start()

    def drained(self) -> None:
        """The queue is empty: the cleanups that waited run now."""
        self.protection.when_drained()

    def recheck(self) -> None:
        """When idle: try again to settle the actions whose outcome is unknown (at most every RECHECK_EVERY each)."""
        for item in self.journal.unsettled(self.clock() - RECHECK_EVERY):
            self([item])

    def __call__(
        self,
        items: list[Any],
        more: Callable[[float], list] = _nothing_more,
        past_deadline: Callable[[], bool] = _never,
    ) -> int:
        """Everything queued at once: waves of one request each, in arrival order. `more(wait)`: what was queued since
        (the worker's); `past_deadline()`: a stop's drain time is over."""
        pending = []
        fresh = list(items)
        left = 0
        taken = 0
        while pending or fresh:
            if past_deadline():  # stopping: what is not started stays in the journal for the next start
                return left + len(pending) + len(fresh)
            wave, pending = self.waves.next(pending, fresh, more, taken, self.requests.together)
            fresh = []
            taken += len(wave)
            unfinished, stopped = self._wave(wave)
            left += unfinished
            if stopped:
                left += len(pending)
                log.warning("stopping; %d action(s) left for the next start", left)
                return left
            if taken < MORE_UP_TO:  # what arrived during that request joins (an event's last frames)
                fresh = more(0.0)
        return left

    # ---- one wave: plan each action, send its requests, conclude each ----------------------------
    def _wave(self, items: list[Any], settling: bool = False) -> tuple[int, bool]:
        """One wave: how many of it are left for the next start, and whether a stop left them. A bug: what was not
        concluded is settled from its journal row (once: `settling` is that settling)."""
        run = _Wave(self, items)
        wave = run.handlings
        if self.protection.deferred:  # (nothing waits, nothing to run first: protection is not entered)
            self.protection.before_wave({h.original.symbol for h in wave if h.original.kind == "trade"})
        try:
            run.run()
        except Unfinished as exc:  # stopping: the rest stays in the journal, resumed at the next start
            log.warning("%s", exc)
            return sum(not h.concluded for h in wave), True
        except (Exception, _SendingFailed) as exc:  # a bug: what was not concluded may have been sent
            cause = exc.__cause__ if isinstance(exc, _SendingFailed) else exc
            open_ = [h.original for h in wave if not h.concluded]
            if settling:
                log.error("%s: left for the next start", open_[0].describe() if open_ else "settling", exc_info=cause)
                return len(open_), False
            log.error(
                "a wave of %d action(s) failed; each one left open is settled from its journal row",
                len(wave),
                exc_info=cause,
            )
            return self._settle(open_), False
        return 0, False

    def _plan(self, h: Handling) -> bool:
        """Decide the action before its hook, else run its hook: True when it planned an order to send."""
        try:
            outcome = self.admission(h.item)
            if isinstance(outcome, FoundLate):  # the exchange did it already: its protection's cleanup, then it ends
                self.protection.settled_late(h.action, outcome.outcome)
                outcome = outcome.outcome
            if outcome is None:
                outcome = self._hooked(h)
        except Unwritable as exc:  # before its order left: nothing was sent
            self.on_storage(str(exc))
            self._conclude(h, Outcome(FAILED, f"not executed: {exc}"), unwritable=True)
            return False
        if outcome is not None:
            self._conclude(h, outcome)
            return False
        return True

    def _hooked(self, h: Handling) -> Outcome | None:
        """Run the action's hook: None when it planned an order (it goes out with the wave), else its outcome."""
        self.execution.current = h  # (what the stock hooks plan on: Execution.plan)
        h.stage = Stage.HOOKING
        try:
            result = self.hooks[h.original.kind](ActionConfig(h.original))
            if inspect.isawaitable(result):  # an async hook on the synchronous class: it never ran
                getattr(result, "close", lambda: None)()
                h.order = None
                return Outcome(FAILED, COROUTINE_RETURNED)
        except (Unfinished, Unwritable):
            raise
        except Exception as exc:  # (an order already sent for it: what the exchange did is its outcome)
            return h.sent or _failed(h.original, exc)
        finally:
            self.execution.current = None
            h.stage = Stage.PLANNED
        if h.sent is not None:  # its order went out while the hook ran (it read what its parent did)
            return result if isinstance(result, Outcome) else h.sent
        if h.order is not None and isinstance(result, Outcome):  # its parent's order, and an outcome of its own
            h.send_planned(h)  # the order goes out, as its parent was asked; the hook's outcome is what it says
            return result
        if h.order is not None:  # the hook asked for its order (the stock hook, or super()): sent with the wave
            return None
        if isinstance(result, Outcome):
            return result
        placed = "handled by a custom hook" if result else "handled by a custom hook that placed no order"
        return Outcome(SKIPPED, placed)

    def _concluded(self, request: list[Handling], sent: Sent, hooked: Handling | None = None) -> None:
        """One request's outcomes: each one's protection after it, its note, journaled and reported; but the one
        whose hook is still running (`hooked`) keeps its outcome for the hook (concluded once the hook returns)."""
        if sent.unwritable is not None:  # before the request left: nothing of it was sent
            self.on_storage(sent.unwritable)
        for h, outcome in zip(request, sent.outcomes, strict=True):
            self.protection.after_outcome(h.action, outcome)
            if h.note:
                reason = f"{outcome.reason}; {h.note}" if outcome.reason else h.note
                outcome = dataclasses.replace(outcome, reason=reason)
            h.sent = outcome  # (what its PlannedOrder says from now on)
            if h is not hooked:
                self._conclude(h, outcome, unwritable=sent.unwritable is not None)

    def _settle(self, actions: list[Action]) -> int:
        """Each action as the next start would take it: by its journal row ('received': asked by cloid first;
        'submitting': by its nonce and cloid); returns how many are left."""
        left = 0
        for action in actions:
            row = self.journal.get(action.key)
            if row is None or row["state"] in TERMINAL_STATES:
                continue
            resumed = Resumed(action, row["state"], row["updated_at"], row["nonce"])
            left += self._wave([resumed], settling=True)[0]  # (the same bug again: left, the others go on)
        return left

    # ---- journal and report ---------------------------------------------------------------------
    def _conclude(self, h: Handling, outcome: Outcome, unwritable: bool = False) -> None:
        self.conclude(h.item, h.action, outcome, unwritable)
        h.concluded = True

    def conclude(self, item: Action | Resumed, action: Action, outcome: Outcome, unwritable: bool = False) -> None:
        """Journal an action's outcome and report it (once: a still-unknown one resumed is not told again)."""
        try:
            self.journal.finish(action, outcome)
        except Unwritable as exc:  # what happened is still told, on every channel
            log.error("%s: its outcome (%s) is not journaled: %s", action.describe(), outcome.state, exc)
            self.on_storage(str(exc))
        else:
            if not unwritable:
                self.on_storage(None)  # a commit went through: the journal can be written again
        if outcome.state == UNKNOWN and isinstance(item, Resumed) and item.state == UNKNOWN:
            log.debug("%s: still unknown (%s)", action.describe(), outcome.reason)  # reported once already
        else:
            self.report(action, outcome)

    def report(self, action: Action, outcome: Outcome) -> None:
        """One INFO line per action with the essentials (its OUTCOME_FIELDS in a JSON log); then the notifiers."""
        level = logging.WARNING if outcome.state == FAILED else logging.INFO
        log.log(level, outcome_line(action, outcome), extra=outcome_fields(action, outcome))
        for listener in self.on_outcome:
            listener(action, outcome)


class _SendingFailed(BaseException):  # (not an Exception: a hook that sent its order early must not swallow it)
    """Sending a wave's orders failed unexpectedly (a bug): the wave fails, whoever started the sending."""


class _Wave:
    """One wave's plans, its own: sent together once every action is planned, or earlier when a hook needs an answer
    (its order's outcome, or the position a trade planned before it leaves)."""

    def __init__(self, pipeline: Pipeline, items: list[Any]):
        self.pipeline = pipeline
        self.handlings = [Handling(item, send_planned=self.send) for item in items]  # each action's own
        self.planned: list[Handling] = []
        self.traded: set[str] = set()  # coins with a trade planned and not sent yet: its position TP/SL go right behind

    def run(self) -> None:
        for h in self.handlings:
            h.after_trade = self.pipeline.requests.together and h.original.symbol.lower() in self.traded
            if self.pipeline._plan(h):
                self._add(h)
        self.send()

    def _add(self, h: Handling) -> None:
        coin = h.action.symbol.lower()
        if coin != h.original.symbol.lower():  # a hook moved it to another coin: what is planned there goes first
            if any(o.action.symbol.lower() == coin for o in self.planned):
                self.send()
            if h.action.kind == "trade" and self.pipeline.protection.deferred:
                self.pipeline.protection.before_wave({h.action.symbol})
        h.stage = Stage.WAITING
        self.planned.append(h)
        if h.action.kind == "trade":
            self.traded.add(coin)

    def send(self, this: Handling | None = None) -> None:
        """What is planned, sent now (and `this` action's order last, its outcome kept for its running hook)."""
        ready = [*self.planned, this] if this is not None and this not in self.planned else list(self.planned)
        self.planned.clear()
        self.traded.clear()
        for h in ready:
            h.stage = Stage.SENDING
        try:
            for request, sent in self.pipeline.requests.send(ready):
                self.pipeline._concluded(request, sent, this)
        except Unfinished:
            raise
        except Exception as exc:
            raise _SendingFailed() from exc
