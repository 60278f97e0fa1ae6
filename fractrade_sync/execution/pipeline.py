"""Action -> Outcome, on the worker thread: resume, staleness, the trader's guards, the hook; journal and report."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import time
from typing import Any, Callable, Mapping, Sequence, Union

from fractrade_sync.actions import Action, parse_frame
from fractrade_sync.config.settings import ConfigError, Settings
from fractrade_sync.exchange.client import TransientError
from fractrade_sync.execution.orders import Execution, Refused
from fractrade_sync.execution.sending import Unfinished
from fractrade_sync.outcome import (
    EXPIRED,
    FAILED,
    RECEIVED,
    REJECTED,
    SKIPPED,
    UNKNOWN,
    Outcome,
    outcome_fields,
    outcome_line,
)
from fractrade_sync.storage.journal import Journal, Resumed, Unwritable

Item = Union[Action, Resumed]
FUTURE_TOLERANCE = 5.0  # seconds a signal's timestamp may be ahead of this machine's clock (NTP keeps both close)
# after an unclean stop, actions created up to this long after the start are looked up too (the agent's clock may be
# a little ahead of ours; a restart takes longer than that anyway)
UNCLEAN_MARGIN = 2.0
RECHECK_EVERY = 30.0  # seconds between two attempts to settle an action whose outcome the exchange has not told
Hook = Callable[["ActionConfig"], Any]
# kind -> the seed's name of its hook, the executor's overridable handle_* method
HOOKS = {
    "trade": "handle_hyperliquid_perp_trade",
    "stop_loss": "handle_set_hyperliquid_perp_stop_loss",
    "take_profit": "handle_set_hyperliquid_perp_take_profit",
}


class ActionConfig(dict):
    """The action's raw `config` dict (the seed's hook argument), carrying the parsed Action. A copy, all the way
    down: the hook may change it in place, and the action's own config still says what came."""

    def __init__(self, action: Action):
        super().__init__(_copy(action.config))
        self.action = action


_NESTED = (dict, list)


def _copy(value: dict | list) -> dict | list:
    """A JSON object's or array's copy, all the way down (strings, numbers, Decimals are immutable)."""
    if isinstance(value, dict):
        return {name: _copy(item) if isinstance(item, _NESTED) else item for name, item in value.items()}
    return [_copy(item) if isinstance(item, _NESTED) else item for item in value]


def with_identity(action: Action, original: Action) -> Action:
    """`action` as a hook changed it, with the identity of the action it handles: its key (and so its cloid), event,
    timestamp, receive time and frame. The journal, the duplicate check and the exchange's cloid all see one action,
    whatever the hook changed."""
    same = dataclasses.replace(
        action,
        event_id=original.event_id,
        timestamp=original.timestamp,
        received_at=original.received_at,
        frame=original.frame,
    )
    vars(same)["key"] = original.key  # Action.key is a cached_property: the key is its identity, the cloid its prefix
    if same.key != original.key or same.cloid != original.cloid:
        raise RuntimeError(
            "Action.key is no longer a cached_property: a hook's changed config cannot keep the "
            "action's identity; nothing was sent"
        )
    return same


def refuse_coroutine_hooks(executor: object) -> None:
    """ConfigError when a synchronous executor has an `async def` hook (its coroutine would never run)."""
    names = [name for name in HOOKS.values() if inspect.iscoroutinefunction(getattr(executor, name))]
    if names:
        where = type(executor).__name__ + "." + ", ".join(names)
        raise ConfigError(
            where,
            "an `async def` hook needs the asyncio face of the service: use `from "
            "fractrade_sync.aio import FractradeExecutor` (this class calls its hooks "
            "synchronously on the worker thread)",
        )


class Pipeline:
    """The worker's handler: one action (live, or resumed from the journal) to its one terminal outcome."""

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        execution: Execution,
        hooks: Mapping[str, Hook],
        on_outcome: Sequence[Callable[[Action, Outcome], None]] = (),
        clock: Callable[[], float] = time.time,
        unclean_since: float | None = None,
        on_storage: Callable[[str | None], None] = lambda problem: None,
    ):
        self.settings = settings
        self.journal = journal
        self.execution = execution
        self.hooks = hooks  # kind (trade, stop_loss, take_profit) -> the service's overridable handle_* method
        self.on_outcome = tuple(on_outcome)
        self.clock = clock
        # the start of a run after an unclean stop: what the last run sent may be missing from the journal
        self.unclean_since = unclean_since
        self.on_storage = on_storage
        self.logger = logging.getLogger("fractrade_sync")
        self._kill_switch = os.fspath(settings.paths.kill_switch)
        self.current: Action | None = None  # the action a hook is handling now (worker thread)
        self.executed: Action | None = None  # what it executes, when the hook changed its config

    def __call__(self, item: Item) -> bool:
        """Decide, journal and report one action; False when it is left for the next start (a stop came first)."""
        action = item.action if isinstance(item, Resumed) else item
        self.executed = None
        self.execution.sender.sent_for = None
        self.execution.protection.flush()  # the cleanups that waited come before anything handled on its own
        try:
            outcome = self.decide(item)
        except Unfinished as exc:  # it stays 'received' or 'submitting' in the journal; the next start settles it
            self.logger.warning("%s: %s", action.describe(), exc)
            return False
        except Unwritable as exc:  # before its order left: nothing was sent
            outcome = Outcome(FAILED, f"not executed: {exc}")
            self.on_storage(str(exc))
            self.conclude(item, self.executed or action, outcome, unwritable=True)
            return True
        self.conclude(item, self.executed or action, outcome)  # as a hook changed it: the same key
        return True

    def conclude(self, item: Item, action: Action, outcome: Outcome, unwritable: bool = False) -> None:
        """Journal an action's outcome and report it (once: a still-unknown one resumed is not told again)."""
        try:
            self.journal.finish(action, outcome)
        except Unwritable as exc:  # what happened is still told, on every channel
            self.logger.error("%s: its outcome (%s) is not journaled: %s", action.describe(), outcome.state, exc)
            self.on_storage(str(exc))
        else:
            if not unwritable:
                self.on_storage(None)  # a commit went through: the journal can be written again
        if outcome.state == UNKNOWN and isinstance(item, Resumed) and item.state == UNKNOWN:
            self.logger.debug("%s: still unknown (%s)", action.describe(), outcome.reason)  # reported once already
        else:
            self.report(action, outcome)

    def recheck(self) -> None:
        """Worker, when idle: try again to settle the actions whose outcome is unknown (at most every
        RECHECK_EVERY each); a settled one is reported like any outcome."""
        for item in self.journal.unsettled(self.clock() - RECHECK_EVERY):
            self(item)

    def decide(self, item: Item) -> Outcome:
        """The action's outcome: found on the exchange (resumed), expired, skipped, refused, or what it did."""
        seen = self.before_hook(item)
        if seen is not None:
            return seen
        return self._run_hook(item.action if isinstance(item, Resumed) else item)

    def before_hook(self, item: Item) -> Outcome | None:
        """An outcome decided before any hook runs (found on the exchange, expired, skipped, refused by the
        trader's guards), or None: the action's hook executes it."""
        if isinstance(item, Resumed):
            seen = self._resume(item)
            if seen is not None:
                return seen
            action = item.action
        else:
            action = item
            seen = self._sent_before_an_unclean_stop(action)
            if seen is not None:
                return seen
        age, limit = action.age(self.clock()), self.settings.max_action_age
        if age > limit:
            return Outcome(EXPIRED, f"{age:.0f}s old, over FRAC_MAX_ACTION_AGE={limit:g}s")
        if age < -FUTURE_TOLERANCE:  # a broken clock, ours or the agent's: its age would be wrong everywhere
            return Outcome(REJECTED, f"metadata.timestamp is {-age:.0f}s in the future; check the clocks")
        if action.server_execution:
            return Outcome(SKIPPED, "metadata.server_execution is true: the platform executes it")
        refusal = self.guard(action)
        return Outcome(REJECTED, refusal) if refusal else None

    def _resume(self, item: Resumed) -> Outcome | None:
        """Ask the exchange before anything else. A 'submitting' or 'unknown' action has an order that may be in
        flight: settled by its nonce (a noop) and cloid. A 'received' one was never sent, unless an OS crash lost
        its in-flight note: ask by cloid."""
        action, execution = item.action, self.execution
        try:
            if item.state == RECEIVED:
                seen = self._looked_up(action)
            else:
                seen = execution.sender.settle(action, item.nonce, item.since)
        except TransientError as exc:
            return _unknown(f"outcome unknown ({exc})", action)
        if seen is not None:
            self._after_late(action, seen)
        return seen

    def _looked_up(self, action: Action) -> Outcome | None:
        """The action's cloid asked of the exchange, again on an unreadable answer, like any read an order depends
        on (a stop leaves the action for the next start)."""
        return self.execution.with_retries(lambda: self.execution.sender.lookup(action), reading_for=action)

    def _after_late(self, action: Action, seen: Outcome) -> None:
        """An outcome learnt late (resumed, settled, found after an unclean stop): its protection cleanup runs only
        when no newer action on the coin followed it; else that cleanup would cancel the protection placed since."""
        if self.journal.newer_on_symbol(action.symbol, action.received_at, action.key):
            self.logger.warning(
                "%s: settled late as %s; its protection cleanup is skipped (newer actions on %s followed it)",
                action.describe(),
                seen.state,
                action.symbol,
            )
            return
        self.execution.after(action, seen)

    def _sent_before_an_unclean_stop(self, action: Action) -> Outcome | None:
        """After an unclean stop (a power loss can take the journal's last writes with it), an action created before
        this start may be one the last run executed: asked by cloid before it is sent."""
        since = self.unclean_since
        if since is None:
            return None
        now = self.clock()
        if now - action.age(now) > since + UNCLEAN_MARGIN:
            return None  # created since: the last run never saw it (a stale one is asked too: the record tells)
        try:
            seen = self._looked_up(action)
        except TransientError as exc:
            return _unknown(f"sent before an unclean stop? the cloid check failed ({exc})", action)
        if seen is not None:
            self.logger.warning(
                "%s: executed by the last run, whose journal lost it (unclean stop): %s", action.describe(), seen.state
            )
            self._after_late(action, seen)
        return seen

    def guard(self, action: Action) -> str | None:
        """The trader's own limits; a refusal reason, or None."""
        allowed = self.settings.allowed_symbols
        if allowed is not None and not symbol_allowed(action.symbol, allowed):
            return f"symbol {action.symbol} is not in FRAC_ALLOWED_SYMBOLS"
        opening = action.kind == "trade" and not action.reduce_only
        if opening and os.path.exists(self._kill_switch):
            return f"kill switch is on ({self.settings.paths.kill_switch}): opening trades are refused"
        return None

    def action_for(self, config: Mapping[str, Any], action_id: str) -> Action:
        """The Action a hook's config means (the base hooks execute this): as the hook passed it on, changed or not,
        with the identity of the action being handled, so it still executes once; Refused when the change made it
        invalid or the trader's guards refuse it."""
        original = self.current if self.current is not None else getattr(config, "action", None)
        if isinstance(original, Action) and original.action_id == action_id and config == original.config:
            return original  # unchanged: the action as it came
        frame = json.dumps({"type": "ACTION", "data": {"action_id": action_id, "config": config}}, default=str)
        parsed = parse_frame(frame, original.received_at if isinstance(original, Action) else self.clock())
        if not isinstance(parsed, Action):
            raise Refused(f"the hook's config: {getattr(parsed, 'reason', 'not an action')}")
        if not isinstance(original, Action):  # called outside the pipeline: a new action
            return parsed
        executed = with_identity(parsed, original)
        refusal = self.guard(executed)
        if refusal:
            raise Refused(refusal)
        self.executed = executed
        return executed

    def _run_hook(self, action: Action) -> Outcome:
        """Call the action's hook; what it raises or returns becomes the outcome."""
        self.current = action
        try:
            result = self.hooks[action.kind](ActionConfig(action))
            if inspect.isawaitable(result):  # an async hook on the synchronous class: it never ran
                getattr(result, "close", lambda: None)()
                return Outcome(
                    FAILED,
                    "the hook returned a coroutine (nothing was executed); for async hooks use "
                    "`from fractrade_sync.aio import FractradeExecutor`",
                )
        except Refused as exc:
            return Outcome(REJECTED, str(exc))
        except (Unfinished, Unwritable):
            raise
        except TransientError as exc:
            return Outcome(FAILED, f"exchange unreachable: {exc}")
        except Exception as exc:
            self.logger.exception("%s failed", action.describe())
            return Outcome(FAILED, f"{type(exc).__name__}: {exc}"[:300])
        finally:
            self.current = None
        if isinstance(result, Outcome):
            return result
        placed = "handled by a custom hook" if result else "handled by a custom hook that placed no order"
        return Outcome(SKIPPED, placed)

    def report(self, action: Action, outcome: Outcome) -> None:
        """One INFO line per action with the essentials (its OUTCOME_FIELDS in a JSON log); then the notifiers."""
        level = logging.WARNING if outcome.state == FAILED else logging.INFO
        self.logger.log(level, outcome_line(action, outcome), extra=outcome_fields(action, outcome))
        for listener in self.on_outcome:
            listener(action, outcome)


def _unknown(why: str, action: Action) -> Outcome:
    """The outcome of an action the exchange has not told about yet: open, settled by cloid later."""
    return Outcome(UNKNOWN, f"{why}; settled by cloid {action.cloid} as soon as the exchange answers")


def symbol_allowed(symbol: str, allowed: frozenset[str]) -> bool:
    """FRAC_ALLOWED_SYMBOLS: a coin by name (any case), a HIP-3 coin as `dex:COIN`, every coin of a dex as `dex:*`."""
    wanted = symbol.lower()
    return any(wanted == a.lower() or (a.endswith(":*") and wanted.startswith(a[:-1].lower())) for a in allowed)
