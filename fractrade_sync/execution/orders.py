"""Action -> order: what each action means on Hyperliquid (its checks, its order), planned by the stock hooks;
sending.py sends it exactly once."""

from __future__ import annotations

import json
import logging
import threading
from decimal import Decimal
from typing import Any, Callable, Mapping

from fractrade_sync.actions import STOP_LOSS, TAKE_PROFIT, TRADE, Action
from fractrade_sync.backoff import exchange_retries
from fractrade_sync.config.settings import Settings
from fractrade_sync.errors import Refused, TransientError, Unfinished, UnknownSymbol
from fractrade_sync.exchange.answers import error_text
from fractrade_sync.exchange.client import HyperliquidClient
from fractrade_sync.exchange.rules import (
    MIN_ORDER_VALUE,
    TPSL,
    Asset,
    Order,
    price_problem,
    round_price,
    round_size,
    slippage_price,
)
from fractrade_sync.execution.hooks import Handling, PlannedOrder, with_identity
from fractrade_sync.frames import parse_frame
from fractrade_sync.outcome import Outcome


class Execution:
    """What each action means on Hyperliquid, on the worker thread: its order after every local check (its mid, its
    position, its leverage), planned on the action's Handling by the stock hooks, or Refused with the reason the user
    sees. Sends no order (sending.py does)."""

    def __init__(
        self,
        settings: Settings,
        client: HyperliquidClient,
        logger: logging.Logger,
        expired: Callable[[Action, str], Outcome | None],
        guard: Callable[[Action], str | None],
        stopping: threading.Event,
    ):
        self.settings = settings
        self.client = client
        self.logger = logger
        self.expired = expired  # EXPIRED when the action went stale meanwhile (Sender.expired)
        self.guard = guard  # the trader's own limits, for a config a hook changed (Admission.guard)
        self.stopping = stopping
        self.current: Handling | None = None  # the action whose hook runs now (set by the pipeline)

    def prepare(self) -> None:
        """Before the first plan: the exchange ready (its meta, the live feed's first snapshot)."""
        self.client.prepare()

    # ---- what the stock hooks call (the pipeline sets `current` while the action's hook runs) ----------------
    def plan(self, config: Mapping[str, Any], action_id: str) -> PlannedOrder | Outcome:
        """The stock hooks' work: the order the config means (its checks, its leverage), planned on the action's
        handling and sent with its wave; or its outcome when it has none (it went stale). One order per action: a
        hook that calls its parent twice gets the first plan again."""
        h = self.current
        if h is None:
            raise RuntimeError(
                "a handle_* hook plans only on the worker thread, for the action it was given: to execute an "
                "action from a script, give its frame to accept_frame()"
            )
        if h.planned_order is not None:
            self.logger.warning(
                "%s: an order of this action was planned already (cloid %s): one action is one order; "
                "the hook's second call gets the first one's plan",
                h.action.describe(),
                h.action.cloid,
            )
            return h.planned_order
        action = self.action_for(config, action_id)
        if action.kind == "trade":
            made = self.trade_order(action)
            if isinstance(made, Outcome):
                return made
            h.order, h.note = made
        else:
            if h.after_trade and action.size is not None:  # a hook sized a leg: it needs its trade's answer first
                h.send_planned(None)
                h.after_trade = False
            h.order = self.protect_order(action, TPSL[action.kind], h.after_trade)
        h.planned_order = PlannedOrder(h)
        return h.planned_order

    def action_for(self, config: Mapping[str, Any], action_id: str) -> Action:
        """The Action a hook's config means: as the hook passed it on, changed or not, with the identity of the action
        being handled, so it still executes once; Refused when the change made it invalid or the trader's guards
        refuse it."""
        h = self.current
        original = h.original
        if original.action_id == action_id and config == original.config:
            return original  # unchanged: the action as it came
        frame = json.dumps({"type": "ACTION", "data": {"action_id": action_id, "config": config}}, default=str)
        parsed = parse_frame(frame, original.received_at)
        if not isinstance(parsed, Action):
            raise Refused(f"the hook's config: {getattr(parsed, 'reason', 'not an action')}")
        executed = with_identity(parsed, original)
        refusal = self.guard(executed)
        if refusal:
            raise Refused(refusal)
        h.action = executed
        return executed

    def trade_order(self, action: Action) -> tuple[Order, str] | Outcome:
        """A trade's order (and a note for its outcome), after every local check; an Outcome when it went stale
        before its leverage was set. Refused when a check fails."""
        asset = self._asset(action)
        size = self._scaled(action.size, asset)
        position = self._check_reduces(action, asset) if action.reduce_only else None
        mid = self._mid(action, asset)
        px = slippage_price(mid, action.is_buy, self.settings.slippage, asset.sz_decimals)
        order = Order(asset, action.is_buy, size, px, action.reduce_only, action.cloid, tif="Ioc")
        self._check_price(px, mid, action.is_buy)
        self._check_value(order, mid, closes_all=position is not None and size >= abs(position))
        note = ""
        if action.leverage is not None and not action.reduce_only:
            late = self._ensure_leverage(action, asset)  # after every local check: a refused trade changes nothing
            if isinstance(late, Outcome):
                return late
            note = late or ""
        return order, note

    def protect_order(self, action: Action, tpsl: str, after_trade: bool = False) -> Order:
        """A stop loss's or take profit's trigger order. Without a size: a position TP/SL (size 0), which the
        exchange keeps sized to the whole position whatever it is when it fires; its position is read only to
        refuse it with a clear reason (live view: no request), and not at all when a trade on its coin goes first in
        the same request (`after_trade`: the exchange checks it against the position that trade leaves). With a
        size: a trigger of that size, at most the position."""
        asset = self._asset(action)
        position = None if after_trade and action.size is None else self._protected(action, asset)
        trigger = round_price(action.trigger_price, asset.sz_decimals, "nearest")
        # the worst price the triggered market order may fill at: the trigger +/- FRAC_TRIGGER_SLIPPAGE (10%, as
        # Hyperliquid's own interface): a stop must still fill when the market gaps through its trigger
        limit = slippage_price(trigger, action.is_buy, self.settings.trigger_slippage, asset.sz_decimals)
        self._check_price(trigger, self._mid(action, asset))
        self._check_price(limit, trigger, action.is_buy)
        if action.size is None:
            whole = Decimal(0)  # (size 0: the whole position)
            cloid = action.cloid
            return Order(asset, action.is_buy, whole, limit, True, cloid, trigger_px=trigger, tpsl=tpsl, position=True)
        size = min(self._scaled(action.size, asset), abs(position))  # type: ignore[arg-type]
        order = Order(asset, action.is_buy, size, limit, True, action.cloid, trigger_px=trigger, tpsl=tpsl)
        self._check_value(order, trigger, closes_all=size >= abs(position))  # type: ignore[arg-type]
        return order

    def _protected(self, action: Action, asset: Asset) -> Decimal:
        """The position a stop loss or take profit protects (live, or read); Refused when there is none, or when
        it is on the side the order would increase."""
        position = self.with_retries(lambda: self.client.position(asset.name), reading_for=action)
        if position == 0:
            raise Refused(f"no open {asset.name} position to protect")
        if (position > 0) == action.is_buy:
            held = "long" if position > 0 else "short"
            raise Refused(
                f"a {action.side} {action.kind.replace('_', ' ')} would increase the {held} {asset.name} position"
            )
        return position

    # ---- checks ------------------------------------------------------------------------------
    def _asset(self, action: Action) -> Asset:
        try:
            return self.client.asset(action.symbol)
        except UnknownSymbol as exc:
            raise Refused(str(exc)) from None

    def _scaled(self, size: Decimal, asset: Asset) -> Decimal:
        """An agent's size for this account: times FRAC_SIZE_MULTIPLIER, rounded down to the coin's lot."""
        mult = self.settings.size_multiplier
        scaled = round_size(size * mult, asset.sz_decimals)
        if scaled <= 0:
            times = f" x FRAC_SIZE_MULTIPLIER {mult}" if mult != 1 else ""
            raise Refused(f"size {size}{times} rounds to 0 at {asset.sz_decimals} decimals for {asset.name}")
        return scaled

    def _check_price(self, px: Decimal, reference: Decimal, is_buy: bool | None = None) -> None:
        problem = price_problem(px, reference, is_buy)
        if problem:
            raise Refused(problem)

    def _mid(self, action: Action, asset: Asset) -> Decimal:
        try:
            return self.with_retries(lambda: self.client.mid(asset.name), reading_for=action)
        except UnknownSymbol as exc:
            raise Refused(str(exc)) from None

    def _check_value(self, order: Order, mid: Decimal, closes_all: bool = False) -> None:
        # Hyperliquid exempts a reduce-only order that closes the whole position from its $10 minimum
        if order.value < MIN_ORDER_VALUE and not closes_all:
            mult = self.settings.size_multiplier
            times = f" (the agent's size x FRAC_SIZE_MULTIPLIER {mult})" if mult != 1 else ""
            raise Refused(f"order value ${order.value:.2f}{times} is under Hyperliquid's $10 minimum")
        cap = self.settings.max_order_usd
        if cap is not None and not order.reduce_only and order.size * mid > cap:
            raise Refused(f"order value ${order.size * mid:.2f} is over FRAC_MAX_ORDER_USD ${cap}")

    def _check_reduces(self, action: Action, asset: Asset) -> Decimal:
        """The position a reduce-only trade reduces; refused when there is none to reduce."""
        is_buy = action.is_buy
        position = self.with_retries(lambda: self.client.position(asset.name), reading_for=action)
        if position == 0:
            raise Refused(f"reduce-only: no open {asset.name} position to reduce")
        if (position > 0) == is_buy:
            raise Refused(f"reduce-only: a {'BUY' if is_buy else 'SELL'} would increase the {asset.name} position")
        return position

    def _ensure_leverage(self, action: Action, asset: Asset) -> Outcome | str | None:
        """Update the coin's leverage when it differs; EXPIRED (and no update) when the action went stale. When the
        exchange refuses the update (e.g. a margin-mode change with a position open): Refused, or with
        FRAC_LEVERAGE_REFUSED=proceed a note for the outcome (the trade goes on at the coin's current leverage)."""
        wanted = action.leverage
        target = min(wanted, asset.max_leverage, self.settings.max_leverage or wanted)
        if target < wanted:
            self.logger.warning(
                "leverage %dx for %s capped to %dx (asset max %dx, FRAC_MAX_LEVERAGE %s)",
                wanted,
                asset.name,
                target,
                asset.max_leverage,
                self.settings.max_leverage or "unset",
            )
        mode = self.settings.margin_mode
        isolated_only = asset.only_isolated and mode == "cross"
        if isolated_only:  # the exchange refuses a cross update on it ("Cross margin is not allowed for this asset.")
            mode = "isolated"
        note = f"{asset.name} takes isolated margin only: leverage set isolated" if isolated_only else None
        if self.with_retries(lambda: self.client.leverage(asset.name), reading_for=action) == (mode, target):
            return note
        late = self.expired(action, "not sent")  # the reads took that long: a stale trade changes nothing
        if late is not None:
            return late
        if self.settings.dry_run:
            self.logger.info("dry run: would set %s leverage to %dx %s", asset.name, target, mode)
            return note
        result = self.with_retries(lambda: self.client.update_leverage(asset, target, mode == "cross"))
        if result.get("status") != "ok":
            current = self.client.leverage(asset.name)
            now = f"{current[1]}x {current[0]}" if current else "its current leverage"
            refusal = f"leverage update to {target}x {mode} refused by the exchange: {error_text(result)}"
            if self.settings.leverage_refused != "proceed":
                raise Refused(
                    f"{refusal}; the trade was not sent ({asset.name} stays at {now}; "
                    "FRAC_LEVERAGE_REFUSED=proceed trades at it instead)"
                )
            self.logger.warning(
                "%s: %s; trading at %s (FRAC_LEVERAGE_REFUSED=proceed)", action.describe(), refusal, now
            )
            return f"traded at {now}: {refusal}"
        self.logger.info("leverage for %s set to %dx %s", asset.name, target, mode)
        return note

    def with_retries(self, call: Callable[[], Any], reading_for: Action | None = None) -> Any:
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
                        raise Unfinished(
                            "stopped while the exchange was unreachable; nothing was sent, the action "
                            "is resumed at the next start"
                        ) from None
                    raise
        raise AssertionError("unreachable")


class StockHooks:
    """The seed's three hooks, which the service class carries: each plans its action's order (Execution.plan), sent
    with its wave. A user's subclass overrides them (worker thread); super() is these."""

    execution: Execution | None

    def handle_hyperliquid_perp_trade(self, config: Mapping[str, Any]) -> Any:
        """Execute a trade: a marketable IOC order (planned here, sent with its wave)."""
        return self.execution.plan(config, TRADE)

    def handle_set_hyperliquid_perp_stop_loss(self, config: Mapping[str, Any]) -> Any:
        """Set (replace) the stop loss of a position."""
        return self.execution.plan(config, STOP_LOSS)

    def handle_set_hyperliquid_perp_take_profit(self, config: Mapping[str, Any]) -> Any:
        """Set (replace) the take profit of a position."""
        return self.execution.plan(config, TAKE_PROFIT)
