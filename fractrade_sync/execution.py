"""Action -> order -> outcome: what each action means on Hyperliquid, sent safely exactly once."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any, Callable

from . import outcome as J
from .actions import Action
from .answers import error_text, nonce_refusal, order_outcome, status_outcome
from .backoff import exchange_retries
from .config import Settings
from .exchange import HyperliquidClient, TransientError, UnknownSymbol
from .journal import Journal
from .outcome import Outcome
from .rules import (
    MIN_ORDER_VALUE,
    Asset,
    Order,
    order_action,
    price_problem,
    round_price,
    round_size,
    slippage_price,
    to_wire,
)

FRESH_ORDERS = 2  # orders signed for one action at most: a second only once the first is certainly not applied
# seconds an order the exchange applied may take to show by cloid on /info (an assumption: RELIABILITY.md)
INFO_LAG = 8.0
# only for an older run's in-flight note without a nonce: seconds past its expiresAfter before a cloid check counts
SETTLE_MARGIN = 1.0


class Refused(Exception):
    """Refused locally, before anything is sent; the message is the reason the user sees."""


class Unfinished(Exception):
    """Stopping: the action stays in the journal ('submitting') and is settled by cloid at the next start."""


class Execution:
    """Executes one action at a time on the worker thread; every path ends in an Outcome."""

    def __init__(
        self,
        settings: Settings,
        client: HyperliquidClient,
        journal: Journal,
        logger: logging.Logger,
        clock: Callable[[], float] = time.time,
        stopping: threading.Event | None = None,
    ):
        self.settings = settings
        self.client = client
        self.journal = journal
        self.logger = logger
        self.clock = clock
        self.stopping = stopping or threading.Event()

    # ---- the three actions -------------------------------------------------------------------
    def trade(self, action: Action) -> Outcome:
        """A marketable IOC limit order at mid +/- slippage."""
        asset = self._asset(action)
        size = round_size(action.size, asset.sz_decimals)
        if size <= 0:
            raise Refused(f"size {action.size} rounds to 0 at {asset.sz_decimals} decimals for {asset.name}")
        position = self._check_reduces(action, asset) if action.reduce_only else None
        mid = self._mid(action, asset)
        px = slippage_price(mid, action.is_buy, self.settings.slippage, asset.sz_decimals)
        order = Order(asset, action.is_buy, size, px, action.reduce_only, action.cloid, tif="Ioc")
        self._check_price(px, mid, action.is_buy)
        self._check_value(order, mid, closes_all=position is not None and size >= abs(position))
        if action.leverage is not None and not action.reduce_only:
            late = self._ensure_leverage(action, asset)  # after every local check: a refused trade changes nothing
            if late is not None:
                return late
        outcome = self.submit(action, order)
        self.after(action, outcome)
        return outcome

    def protect(self, action: Action, tpsl: str) -> Outcome:
        """Set (replace) a stop loss or take profit: a reduce-only market trigger order."""
        asset = self._asset(action)
        position = self._with_retries(lambda: self.client.position(asset.name), reading_for=action)
        if position == 0:
            raise Refused(f"no open {asset.name} position to protect")
        if (position > 0) == action.is_buy:
            held = "long" if position > 0 else "short"
            raise Refused(f"a {action.side} {tpsl.upper()} would increase the {held} {asset.name} position")
        size = abs(position) if action.size is None else min(round_size(action.size, asset.sz_decimals), abs(position))
        if size <= 0:
            raise Refused(f"size {action.size} rounds to 0 at {asset.sz_decimals} decimals for {asset.name}")
        trigger = round_price(action.trigger_price, asset.sz_decimals, "nearest")
        # the worst price the triggered market order may fill at: the trigger +/- slippage
        limit = slippage_price(trigger, action.is_buy, self.settings.slippage, asset.sz_decimals)
        order = Order(asset, action.is_buy, size, limit, True, action.cloid, trigger_px=trigger, tpsl=tpsl)
        self._check_price(trigger, self._mid(action, asset))
        self._check_price(limit, trigger, action.is_buy)
        self._check_value(order, trigger, closes_all=size >= abs(position))
        outcome = self.submit(action, order)
        self.after(action, outcome)
        return outcome

    def after(self, action: Action, outcome: Outcome) -> None:
        """Keep protection consistent once the exchange took an order (live, or found by cloid on resume):
        a new stop loss / take profit replaces the older ones of its kind; a trade that leaves the coin flat, or
        opens it from flat, cancels the triggers left from the previous position. Never changes the outcome."""
        if self.settings.dry_run:
            return
        try:
            asset = self.client.asset(action.symbol)
            if action.kind != "trade":
                if outcome.state == J.RESTING and outcome.oid is not None:
                    tpsl, kind = ("sl", "Stop") if action.kind == "stop_loss" else ("tp", "Take Profit")
                    self._cancel_triggers(asset, f"replaced {tpsl} on {asset.name}", kind=kind, keep=outcome.oid)
            elif outcome.state in (J.FILLED, J.PARTIALLY_FILLED) and self.journal.has_resting_protection(asset.name):
                self._cancel_orphaned_protection(asset, action, outcome)
        except Exception:  # cleanup must never turn a fill into a failure
            self.logger.exception("protection cleanup after %s failed; the order itself stands", action.describe())

    # ---- checks ------------------------------------------------------------------------------
    def _asset(self, action: Action) -> Asset:
        try:
            return self.client.asset(action.symbol)
        except UnknownSymbol as exc:
            raise Refused(str(exc)) from None

    def _check_price(self, px: Decimal, reference: Decimal, is_buy: bool | None = None) -> None:
        problem = price_problem(px, reference, is_buy)
        if problem:
            raise Refused(problem)

    def _mid(self, action: Action, asset: Asset) -> Decimal:
        try:
            return self._with_retries(lambda: self.client.mid(asset.name), reading_for=action)
        except UnknownSymbol as exc:
            raise Refused(str(exc)) from None

    def _check_value(self, order: Order, mid: Decimal, closes_all: bool = False) -> None:
        # Hyperliquid exempts a reduce-only order that closes the whole position from its $10 minimum
        if order.value < MIN_ORDER_VALUE and not closes_all:
            raise Refused(f"order value ${order.value:.2f} is under Hyperliquid's $10 minimum")
        cap = self.settings.max_order_usd
        if cap is not None and not order.reduce_only and order.size * mid > cap:
            raise Refused(f"order value ${order.size * mid:.2f} is over FRAC_MAX_ORDER_USD ${cap}")

    def _check_reduces(self, action: Action, asset: Asset) -> Decimal:
        """The position a reduce-only trade reduces; refused when there is none to reduce."""
        is_buy = action.is_buy
        position = self._with_retries(lambda: self.client.position(asset.name), reading_for=action)
        if position == 0:
            raise Refused(f"reduce-only: no open {asset.name} position to reduce")
        if (position > 0) == is_buy:
            raise Refused(f"reduce-only: a {'BUY' if is_buy else 'SELL'} would increase the {asset.name} position")
        return position

    def _ensure_leverage(self, action: Action, asset: Asset) -> Outcome | None:
        """Update the coin's leverage when it differs; EXPIRED (and no update) when the action went stale."""
        wanted = action.leverage
        target = min(wanted, asset.max_leverage, self.settings.max_leverage or wanted)
        if target < wanted:
            self.logger.warning(
                "leverage %dx for %s capped to %dx (asset max %dx, FRAC_MAX_LEVERAGE %s)",
                wanted, asset.name, target, asset.max_leverage, self.settings.max_leverage or "unset",
            )  # fmt: skip
        mode = self.settings.margin_mode
        if self._with_retries(lambda: self.client.leverage(asset.name), reading_for=action) == (mode, target):
            return None
        late = self._expired(action, "not sent")  # the reads took that long: a stale trade changes nothing
        if late is not None:
            return late
        if self.settings.dry_run:
            self.logger.info("dry run: would set %s leverage to %dx %s", asset.name, target, mode)
            return None
        result = self._with_retries(lambda: self.client.update_leverage(asset, target, mode == "cross"))
        if result.get("status") != "ok":
            raise Refused(f"leverage update to {target}x refused: {error_text(result)}")
        self.logger.info("leverage for %s set to %dx %s", asset.name, target, mode)
        return None

    # ---- sending, exactly once ---------------------------------------------------------------
    def submit(self, action: Action, order: Order) -> Outcome:
        """Journal 'submitting' and send; exactly once by the exchange's own guarantee, never by this machine's
        clock: an uncertain failure resends the identical signed order (one nonce: the exchange applies it once at
        most), and when that cannot decide, a noop with the nonce does. Only then is a new order signed."""
        deadline = self._deadline(action)
        try:
            body = order_action([order])
        except ValueError as exc:  # a number the wire cannot carry exactly
            return Outcome(J.REJECTED, str(exc))
        payload = self.client.signed_payload(body, deadline)
        if self.settings.dry_run:
            self.logger.info("dry run: would send %s", json.dumps(payload["action"], separators=(",", ":")))
            return Outcome(J.SKIPPED, f"dry run: {_describe(order)} not sent")
        why = "not sent"  # retried reads or a leverage update took that long
        for round_ in range(FRESH_ORDERS):
            late = self._expired(action, why)
            if late is not None:
                return late
            if round_:
                if self.stopping.is_set():
                    raise Unfinished(f"{why}; the action is resumed at the next start")
                payload = self.client.signed_payload(body, deadline)
            try:
                outcome, why = self._send(action, order, payload)
            except TransientError as exc:
                return Outcome(J.UNKNOWN, f"outcome unknown ({exc}); settled by cloid {order.cloid} and nonce "
                                          f"{payload['nonce']} as soon as the exchange answers")  # fmt: skip
            if outcome is not None:
                return outcome
        return Outcome(J.FAILED, why)

    def _send(self, action: Action, order: Order, payload: dict) -> tuple[Outcome | None, str]:
        """Send one signed order, resending it identically after an uncertain failure: (its outcome, "") or
        (None, why it was certainly not applied). Raises TransientError when that cannot be known yet."""
        maybe, last, attempt = False, "", 0  # maybe: a send of it may have reached the exchange
        for attempt, delay in enumerate((0.0, *exchange_retries().delays())):
            if attempt and (self.stopping.wait(delay) or self._expired(action, "") is not None):
                break
            on_sent = self.journal.sending(action, payload["expiresAfter"], payload["nonce"])
            try:
                result = self.client.post(payload, on_sent)
            except TransientError as exc:
                maybe, last = maybe or exc.in_flight, str(exc)
                then = "resending the identical signed order" if maybe else "retrying"
                self.logger.warning("%s: %s (attempt %d); %s", action.describe(), exc, attempt + 1, then)
                continue
            if not maybe or result.get("status") == "ok":  # its answer, or the answer to its identical resend
                return order_outcome(result, order.size, round((self.clock() - action.received_at) * 1000, 1)), ""
            if nonce_refusal(result) is not None:  # the nonce is spent (or out of the window): the fate is frozen
                self.logger.info("%s: a resend found nonce %d spent: %s", action.describe(), payload["nonce"],
                                 error_text(result))  # fmt: skip
                return self._frozen(action), "not executed: the exchange shows no order with its cloid"
            last = f"resend refused: {error_text(result)}"  # e.g. expired: says nothing of the first one
            break
        if not maybe:
            if self.stopping.is_set():
                raise Unfinished("not sent; the action is resumed at the next start")
            return None, f"not executed: exchange unreachable after {attempt + 1} attempts: {last}"
        seen = self.void(action, payload["nonce"])
        return seen, "" if seen is not None else f"not executed ({last}; its nonce invalidated by a noop)"

    def void(self, action: Action, nonce: int) -> Outcome | None:
        """Settle an order that may be in flight with a noop of its nonce. Taken: the order was never applied and
        now never can be (None). Refused as used or too low: the order's fate is frozen, and it is found by cloid
        (or had no effect: None). TransientError when the exchange gives no usable answer."""
        payload, last = self.client.noop(nonce), ""
        for attempt, delay in enumerate((0.0, *exchange_retries().delays())):
            if attempt and self.stopping.wait(delay):
                raise Unfinished(f"stopped while settling nonce {nonce}; settled at the next start")
            try:
                result = self.client.post(payload)
            except TransientError as exc:
                last = str(exc)
                self.logger.warning("%s: noop for nonce %d: %s; asking again", action.describe(), nonce, exc)
                continue
            if result.get("status") == "ok":
                self.logger.info("%s: nonce %d invalidated by a noop: its order was never applied", action.describe(),
                                 nonce)  # fmt: skip
                return None
            if nonce_refusal(result) is not None:
                return self._frozen(action)
            raise TransientError(f"noop for nonce {nonce} refused: {error_text(result)}")
        raise TransientError(f"noop for nonce {nonce} unanswered: {last}")

    def _frozen(self, action: Action) -> Outcome | None:
        """The order's nonce is spent: it was applied, or never will be. Asked by cloid over INFO_LAG (an applied
        order may take that long to show); None only when the exchange kept saying it has no such order: it had
        no effect. An unreadable answer is never that: TransientError when the last one could not be read."""
        start = time.monotonic()
        for delay in (*exchange_retries().delays(), None):
            try:
                seen = self.lookup(action)
            except TransientError as exc:
                if delay is None:
                    raise
                self.logger.warning("%s: cloid check failed: %s; asking again", action.describe(), exc)
            else:
                if seen is not None:
                    return seen
                if delay is None or time.monotonic() - start >= INFO_LAG:
                    return None
            if self.stopping.wait(delay):
                raise Unfinished("stopped while asking the exchange by cloid; settled at the next start")
        raise AssertionError("unreachable")

    def _deadline(self, action: Action) -> float:
        """The wall-clock time after which the action is stale: no order of it may be applied after that."""
        now = self.clock()
        return now - action.age(now) + self.settings.max_action_age

    def _expired(self, action: Action, what: str) -> Outcome | None:
        """EXPIRED when the action is now older than FRAC_MAX_ACTION_AGE, else None."""
        age = action.age(self.clock())
        if age <= self.settings.max_action_age:
            return None
        return Outcome(J.EXPIRED, f"{what}: {age:.0f}s old, over FRAC_MAX_ACTION_AGE={self.settings.max_action_age:g}s")

    def settle(self, item_action: Action, nonce: int | None, since: float) -> Outcome | None:
        """What became of an order left in flight (by a crash, or an unknown outcome): by its nonce when known
        (a noop), else, for an older run's note, wait until it can no longer be applied and ask by cloid. None:
        never applied. Raises TransientError."""
        seen = self.lookup(item_action)
        if seen is not None:
            return seen
        if nonce is not None:
            return self.void(item_action, nonce)
        settle_at = since + self.client.expiry_window + SETTLE_MARGIN
        wait = settle_at - self.clock()
        if wait > 0 and self.stopping.wait(wait) and self.clock() < settle_at:
            raise Unfinished("stopped with an order that may still be in flight; settled at the next start")
        return self.lookup(item_action)

    def lookup(self, action: Action) -> Outcome | None:
        """What the exchange did with this action's cloid; None when it never saw it. Raises TransientError."""
        return status_outcome(self.client.order_status(action.cloid))

    def _with_retries(self, call: Callable[[], Any], reading_for: Action | None = None) -> Any:
        """Retry an idempotent request (leverage, cancel, a read) on transient errors; bounded (~8 s of waits), and a
        stop ends the waiting (a cleanup cut short is logged; its triggers stay live).
        reading_for: a read an action's order depends on (position, mid, leverage), retried like the order itself:
        each retry is logged, and a stop leaves the action for the next start (submit() checks its age again
        before sending, so the waiting never sends a stale order)."""
        for delay in (*exchange_retries().delays(), None):
            try:
                return call()
            except TransientError as exc:
                if delay is None:
                    raise
                if reading_for is not None:
                    self.logger.warning("%s: %s; retrying the read in %.1fs", reading_for.describe(), exc, delay)
                if self.stopping.wait(delay):
                    if reading_for is not None:
                        raise Unfinished("stopped while the exchange was unreachable; nothing was sent, the action "
                                         "is resumed at the next start") from None  # fmt: skip
                    raise
        raise AssertionError("unreachable")

    def _cancel_orphaned_protection(self, asset: Asset, action: Action, outcome: Outcome) -> None:
        """Triggers left from a previous position would act on the next one: cancel them when this trade closed
        the coin, or opened it from flat (the new position's own protection always comes after)."""
        position = self._with_retries(lambda: self.client.position(asset.name))
        filled = Decimal(outcome.filled_sz or "0") * (1 if action.is_buy else -1)
        if position == 0:
            why = "position closed, its protection is void"
        elif not action.reduce_only and position == filled:
            why = "position opened from flat: triggers of the previous position canceled"
        else:
            return
        self._cancel_triggers(asset, f"{asset.name} {why}")

    def _cancel_triggers(self, asset: Asset, why: str, kind: str = "", keep: int | None = None) -> None:
        """Cancel the reduce-only trigger orders on a coin (of one kind, but the one to keep)."""
        try:
            old = [
                o["oid"]
                for o in self._with_retries(self.client.open_orders)
                if o.get("coin") == asset.name
                and o.get("isTrigger")
                and o.get("reduceOnly", True)
                and str(o.get("orderType", "")).startswith(kind)
                and o.get("oid") != keep
            ]
            if old:
                result = self._with_retries(lambda: self.client.cancel(asset, old))
                self.logger.info("%s: canceled trigger oids %s (%s)", why, old, result.get("status"))
        except TransientError as exc:
            self.logger.error("%s, but canceling the triggers failed: %s; they stay live", why, exc)


def _describe(order: Order) -> str:
    side = "BUY" if order.is_buy else "SELL"
    extra = f" trigger {to_wire(order.trigger_px)} {order.tpsl}" if order.trigger_px is not None else ""
    return f"{side} {to_wire(order.size)} {order.asset.name} @ {to_wire(order.limit_px)}{extra}"
