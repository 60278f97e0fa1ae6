"""What is decided before any hook runs: a resumed action found on the exchange (by its nonce and cloid), one the
last run sent before an unclean stop, a stale one, a skipped one, one the trader's own guards refuse."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from fractrade_sync.actions import Action
from fractrade_sync.config.settings import Settings
from fractrade_sync.errors import TransientError
from fractrade_sync.execution.sending import Sender
from fractrade_sync.outcome import EXPIRED, RECEIVED, REJECTED, SKIPPED, Outcome, unknown_outcome
from fractrade_sync.storage.journal import Journal
from fractrade_sync.storage.journal_table import Resumed

FUTURE_TOLERANCE = 5.0  # seconds a signal's timestamp may be ahead of this machine's clock (NTP keeps both close)
# an in-flight note without a nonce (torn by a power loss): seconds past its expiresAfter before a cloid check counts
SETTLE_MARGIN = 1.0
# after an unclean stop, actions created up to this long after the start are looked up too (the agent's clock may be
# a little ahead of ours; a restart takes longer than that anyway)
UNCLEAN_MARGIN = 2.0


@dataclass(frozen=True)
class FoundLate:
    """What the exchange did with an action, learnt late (resumed and settled, or found after an unclean stop): its
    outcome, and its protection's cleanup to run now (Protection.settled_late, called by the pipeline)."""

    outcome: Outcome


class Admission:
    """Before the hook: an outcome already decided (FoundLate when the exchange already did it), or None (the
    action's hook plans it)."""

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        sender: Sender,
        retried: Callable[..., Any],
        expiry_window: float,
        clock: Callable[[], float] = time.time,
        unclean_since: float | None = None,
    ):
        self.settings = settings
        self.journal = journal
        self.sender = sender
        self.expiry_window = expiry_window  # how long a signed order of the last run could still land (signing.py)
        self.clock = clock
        self.retried = retried  # a read an action depends on, retried like its order (Execution.with_retries)
        # the start of a run after an unclean stop: what the last run sent may be missing from the journal
        self.unclean_since = unclean_since
        self.logger = logging.getLogger("fractrade_sync")
        self._kill_switch = os.fspath(settings.paths.kill_switch)

    def __call__(self, item: Action | Resumed) -> Outcome | FoundLate | None:
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
        age = action.age(self.clock())
        limit = self.settings.max_action_age
        if age > limit:
            return Outcome(EXPIRED, f"{age:.0f}s old, over FRAC_MAX_ACTION_AGE={limit:g}s")
        if age < -FUTURE_TOLERANCE:  # a broken clock, ours or the agent's: its age would be wrong everywhere
            return Outcome(REJECTED, f"metadata.timestamp is {-age:.0f}s in the future; check the clocks")
        if action.server_execution:
            return Outcome(SKIPPED, "metadata.server_execution is true: the platform executes it")
        refusal = self.guard(action)
        return Outcome(REJECTED, refusal) if refusal else None

    def guard(self, action: Action) -> str | None:
        """The trader's own limits; a refusal reason, or None."""
        return guard(self.settings, action, self._kill_switch)

    def _resume(self, item: Resumed) -> Outcome | FoundLate | None:
        """Ask the exchange before anything else. A 'submitting' or 'unknown' action has an order that may be in
        flight: settled by its nonce (a noop) and cloid. A 'received' one was never sent, unless an OS crash lost
        its in-flight note: ask by cloid."""
        action = item.action
        try:
            if item.state == RECEIVED:
                seen = self._looked_up(action)
            else:
                seen = self._settle(action, item.nonce, item.since)
        except TransientError as exc:
            return unknown_outcome(f"outcome unknown ({exc})", action)
        return None if seen is None else FoundLate(seen)

    def _settle(self, action: Action, nonce: int | None, since: float) -> Outcome | None:
        """What became of an order left in flight (by a crash, or an unknown outcome): asked by cloid, then settled
        by its nonce when known (a noop); without one, conclusive only once no order of it can land any more. None:
        never applied. Raises TransientError."""
        seen = self.sender.lookup(action)
        if seen is not None:
            return seen
        if nonce is not None:
            return self.sender.invalidate(nonce, [action])[0]
        # no nonce (a note torn by a power loss, or a lookup that failed before anything was sent): no order of the
        # action can land past its deadline (expiresAfter never reaches past it); until then, "not seen" is not "no",
        # and the worker does not wait for it: the action stays open and is asked again (recheck)
        settle_at = min(since + self.expiry_window, self.sender.deadline(action)) + SETTLE_MARGIN
        if self.clock() < settle_at:
            raise TransientError(
                f"not seen by cloid yet; an order of it could still land until "
                f"{time.strftime('%H:%M:%S', time.localtime(settle_at))}"
            )
        return None  # the lookup above came after settle_at: no order of it can land any more

    def _looked_up(self, action: Action) -> Outcome | None:
        """The action's cloid asked of the exchange, again on an unreadable answer, like any read an order depends
        on (a stop leaves the action for the next start)."""
        return self.retried(lambda: self.sender.lookup(action), reading_for=action)

    def _sent_before_an_unclean_stop(self, action: Action) -> Outcome | FoundLate | None:
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
            return unknown_outcome(f"sent before an unclean stop? the cloid check failed ({exc})", action)
        if seen is None:
            return None
        self.logger.warning(
            "%s: executed by the last run, whose journal lost it (unclean stop): %s", action.describe(), seen.state
        )
        return FoundLate(seen)


def guard(settings: Settings, action: Action, kill_switch: str | None = None) -> str | None:
    """The trader's own limits (FRAC_ALLOWED_SYMBOLS, the kill switch); a refusal reason, or None."""
    allowed = settings.allowed_symbols
    if allowed is not None and not symbol_allowed(action.symbol, allowed):
        return f"symbol {action.symbol} is not in FRAC_ALLOWED_SYMBOLS"
    opening = action.kind == "trade" and not action.reduce_only
    if opening and os.path.exists(kill_switch or settings.paths.kill_switch):
        return f"kill switch is on ({settings.paths.kill_switch}): opening trades are refused"
    return None


def symbol_allowed(symbol: str, allowed: frozenset[str]) -> bool:
    """FRAC_ALLOWED_SYMBOLS: a coin by name (any case), a HIP-3 coin as `dex:COIN`, every coin of a dex as `dex:*`."""
    wanted = symbol.lower()
    return any(wanted == a.lower() or (a.endswith(":*") and wanted.startswith(a[:-1].lower())) for a in allowed)
