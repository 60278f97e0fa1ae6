"""The synchronous hooks: what a hook passes on is what executes, under the action's own key and cloid; a careless
hook (one catching every Exception, one calling its parent twice) neither swallows a stop nor doubles an order."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.errors import ConfigError
from fractrade_sync.execution.hooks import HOOKS, with_identity
from fractrade_sync.frames import parse_frame
from fractrade_sync.outcome import FAILED, FILLED, REJECTED, RESTING
from fractrade_sync.service import FractradeExecutor
from tests.conftest import key_of, protect_frame, push, queued_together, run_frame, trade_frame, wait_for

KINDS = ("trade", "stop_loss", "take_profit")
MODES = ("in_place", "copy", "unchanged")
TRIGGERS = {"stop_loss": "48500", "take_profit": "55000"}


def change(config, mode: str, **position):
    """The config a hook passes on: changed in place, a changed plain-dict copy, or the same."""
    if mode == "unchanged":
        return config
    passed = config if mode == "in_place" else copy.deepcopy(dict(config))
    assert mode == "in_place" or type(passed) is dict
    passed["position"].update(position)
    return passed


def halving(kind: str, mode: str) -> type[FractradeExecutor]:
    """A subclass whose `kind` hook halves the size (in place or in a copy), or passes the config on unchanged."""
    name = HOOKS[kind]

    def hook(self, config):
        self.seen.append(config)
        half = str(Decimal(str(config["position"]["size"])) / 2)
        return getattr(super(cls, self), name)(change(config, mode, size=half))

    cls = type(f"Halving_{kind}_{mode}", (FractradeExecutor,), {name: hook, "seen": []})
    return cls


def action_frame(kind: str, size: str) -> dict:
    if kind == "trade":
        return trade_frame(size=size)
    return protect_frame(kind, trigger=TRIGGERS[kind], size=size)


def orders_of(sim, wallet, key: str) -> list[dict]:
    cloid = "0x" + key[:32]
    return [o for o in sim.applied_orders(wallet.address) if o["cloid"] == cloid]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_hook_changes_what_executes_and_the_action_keeps_its_key_and_cloid(
    kind, mode, make_service, sim, signals, wallet
):
    service = make_service(halving(kind, mode))
    if kind != "trade":  # a position to protect, opened through the trade hook (not overridden here)
        assert run_frame(service, signals, trade_frame(size="0.04"))["state"] == FILLED
    frame = action_frame(kind, "0.02")
    key = key_of(frame)
    row = run_frame(service, signals, frame)
    assert row["state"] == (FILLED if kind == "trade" else RESTING), row
    assert row["key"] == key and row["cloid"] == "0x" + key[:32]
    (order,) = orders_of(sim, wallet, key)  # the original action's cloid
    assert order["sz"] == ("0.02" if mode == "unchanged" else "0.01")
    assert service.seen and service.seen[-1].action.key == key
    # a redelivery of the same frame is a duplicate: still one order, one journal row
    signals.push(frame)
    marker = run_frame(service, signals, trade_frame(size="0.02"))
    assert marker["state"] == FILLED
    assert len(orders_of(sim, wallet, key)) == 1
    assert [r["key"] for r in service.journal.all()].count(key) == 1
    assert len(sim.applied_orders(wallet.address)) == (2 if kind == "trade" else 3)  # (+ the position's trade)


def test_a_change_that_makes_the_action_invalid_is_rejected_with_the_reason(make_service, sim, signals, wallet):
    class Garbling(FractradeExecutor):
        def handle_hyperliquid_perp_trade(self, config):
            config["position"]["size"] = "abc"
            return super().handle_hyperliquid_perp_trade(config)

    service = make_service(Garbling)
    row = run_frame(service, signals, trade_frame())
    assert row["state"] == REJECTED
    assert "position.size 'abc' is not a number" in row["reason"]
    assert sim.applied_orders(wallet.address) == []


def test_a_changed_config_is_held_to_the_traders_guards(make_service, sim, signals, wallet):
    class Switching(FractradeExecutor):
        def handle_hyperliquid_perp_trade(self, config):
            return super().handle_hyperliquid_perp_trade(change(config, "copy", symbol="ETH"))

    service = make_service(Switching, FRAC_ALLOWED_SYMBOLS="BTC")
    row = run_frame(service, signals, trade_frame(symbol="BTC"))
    assert row["state"] == REJECTED and row["reason"] == "symbol ETH is not in FRAC_ALLOWED_SYMBOLS"
    assert sim.applied_orders(wallet.address) == []


def test_an_async_hook_on_the_synchronous_class_is_refused_at_start(env, sim, signals):
    class AsyncHooks(FractradeExecutor):
        async def handle_set_hyperliquid_perp_take_profit(self, config):
            return await super().handle_set_hyperliquid_perp_take_profit(config)

    service = AsyncHooks(settings_from_mapping(env))
    with pytest.raises(ConfigError) as caught:
        service.start()
    message = str(caught.value)
    assert message.startswith("AsyncHooks.handle_set_hyperliquid_perp_take_profit: ")
    assert "from fractrade_sync.aio import FractradeExecutor" in message
    # before anything: no connection, no request, no state dir
    assert signals.connections_total == 0
    assert sim.request_count("/info") == 0 and sim.request_count("/exchange") == 0
    assert not Path(env["FRAC_STATE_DIR"]).exists()


def test_a_hook_that_returns_a_coroutine_fails_the_action_instead_of_skipping_it(make_service, sim, signals, wallet):
    class Sneaky(FractradeExecutor):  # a plain def returning a coroutine: the start-up check cannot see it
        def handle_hyperliquid_perp_trade(self, config):
            return self._later(config)

        async def _later(self, config):
            raise AssertionError("never runs")

    service = make_service(Sneaky)
    row = run_frame(service, signals, trade_frame())
    assert row["state"] == FAILED and "returned a coroutine" in row["reason"]
    assert sim.applied_orders(wallet.address) == []


class Reading(FractradeExecutor):
    """A hook that looks at what its parent did before returning it."""

    def handle_hyperliquid_perp_trade(self, config):
        outcome = super().handle_hyperliquid_perp_trade(config)
        self.saw = (outcome.state, outcome.filled_sz)
        return outcome


def test_a_hook_reading_its_parents_outcome_sees_the_exchanges_answer(make_service, sim, signals, wallet):
    service = make_service(Reading)
    frame = trade_frame(size="0.02")
    row = run_frame(service, signals, frame)
    assert row["state"] == FILLED and service.saw == (FILLED, "0.02")
    assert len(orders_of(sim, wallet, key_of(frame))) == 1


class Overriding(FractradeExecutor):
    """A hook that asks its parent for the order, then says an outcome of its own."""

    def handle_hyperliquid_perp_trade(self, config):
        from fractrade_sync.outcome import SKIPPED, Outcome

        super().handle_hyperliquid_perp_trade(config)
        return Outcome(SKIPPED, "told by my hook")


def test_a_hook_returning_its_own_outcome_after_its_parent_sends_the_order_and_journals_its_word(
    make_service, sim, signals, wallet
):
    service = make_service(Overriding)
    frame = trade_frame()
    row = run_frame(service, signals, frame)
    assert (row["state"], row["reason"]) == ("skipped", "told by my hook")
    assert len(orders_of(sim, wallet, key_of(frame))) == 1  # as its parent was asked


class SizingStops(FractradeExecutor):
    """A stop-loss hook that gives the agent's position stop loss a size."""

    def handle_set_hyperliquid_perp_stop_loss(self, config):
        return super().handle_set_hyperliquid_perp_stop_loss(change(config, "copy", size="0.01"))


def test_a_hook_sizing_an_events_stop_loss_gets_it_placed_after_its_trade(make_service, sim, signals, wallet):
    """The trade and its stop loss (no size) wait together and join one wave; the hook gives the stop loss a size:
    it needs the trade's position, so the trade is sent first and the stop loss right after, sized against it."""

    service = make_service(SizingStops)
    event = "ev-" + key_of(trade_frame())[:8]
    trade, stop = trade_frame(size="0.02", event_id=event), protect_frame("stop_loss", event_id=event)
    rows = queued_together(service, sim, signals, [trade, stop])
    assert [r["state"] for r in rows] == [FILLED, RESTING], rows
    (order,) = orders_of(sim, wallet, key_of(stop))
    assert order["sz"] == "0.01"


def test_a_bug_on_one_action_leaves_the_others_of_its_hand_over_executed(make_service, sim, signals, wallet, caplog):
    """An unexpected error before one action's hook: that action is settled from its journal row (once, no loop), and
    the actions queued with it still execute."""

    service = make_service()
    admission, calls = service.pipeline.admission, []

    def failing(item):
        calls.append(item)
        action = item.action if hasattr(item, "action") else item
        if action.symbol == "SOL":
            raise ValueError("a bug")
        return admission.__class__.__call__(admission, item)

    service.pipeline.admission = failing
    frames = [trade_frame(symbol="SOL"), trade_frame(symbol="ETH"), trade_frame(symbol="ETH", side="SELL")]
    rows = queued_together(service, sim, signals, frames, waited=frames[1:])
    assert [r["state"] for r in rows] == [FILLED, FILLED], rows
    assert service.journal.get(key_of(frames[0]))["state"] == "received"  # left for the next start, as it says
    mine = [c for c in calls if (c.action if hasattr(c, "action") else c).symbol != "NOPE"]  # (the holding frame)
    assert len(mine) == 4  # the SOL action twice (its wave, then its settling), each ETH trade once: no loop


class Remembering(FractradeExecutor):
    """A trade hook that keeps what its parent returned; a stop-loss hook that looks at it later."""

    last = None

    def handle_hyperliquid_perp_trade(self, config):
        self.last = super().handle_hyperliquid_perp_trade(config)
        return self.last

    def handle_set_hyperliquid_perp_stop_loss(self, config):
        self.seen_filled = self.last.filled_sz if self.last is not None else None
        return super().handle_set_hyperliquid_perp_stop_loss(config)


def test_a_planned_order_read_after_it_went_out_is_never_sent_again(make_service, sim, signals, wallet):
    service = make_service(Remembering)
    trade = trade_frame(size="0.02")
    assert run_frame(service, signals, trade)["state"] == FILLED
    assert run_frame(service, signals, protect_frame("stop_loss", trigger="45000"))["state"] == RESTING
    assert service.seen_filled == "0.02"
    assert len(orders_of(sim, wallet, key_of(trade))) == 1
    assert service.journal.get(key_of(trade))["state"] == FILLED


def test_a_planned_order_of_the_same_wave_read_by_another_hook_goes_out_once(make_service, sim, signals, wallet):

    service = make_service(Remembering)
    event = "ev-" + key_of(trade_frame())[:8]
    trade, stop = trade_frame(size="0.02", event_id=event), protect_frame("stop_loss", event_id=event)
    rows = queued_together(service, sim, signals, [trade, stop])
    assert [r["state"] for r in rows] == [FILLED, RESTING], rows
    assert service.seen_filled == "0.02"
    assert len(orders_of(sim, wallet, key_of(trade))) == 1


def test_a_failure_while_a_hook_sends_early_fails_the_wave_not_the_hooks_action(make_service, sim, signals, wallet):
    """Sending a wave's orders early (a hook reads its order's outcome) and failing on a bug: not the hook's failure;
    the wave's actions are settled from their journal rows, by what the exchange did."""

    service = make_service(Reading)
    protection, real, failed = service.pipeline.protection, service.pipeline.protection.after_outcome, []

    def failing(action, outcome):
        if action.symbol == "ETH" and not failed:  # once: the wave fails; its settling goes through
            failed.append(action)
            raise ValueError("a bug")
        return real(action, outcome)

    protection.after_outcome = failing
    frames = [trade_frame(symbol="ETH"), trade_frame(symbol="BTC")]
    rows = queued_together(service, sim, signals, frames)
    assert [r["state"] for r in rows] == [FILLED, FILLED], rows
    for frame in frames:
        assert len(orders_of(sim, wallet, key_of(frame))) == 1


class _Careless(FractradeExecutor):
    """A hook that catches every Exception its parent raises, and one that calls its parent twice."""

    def handle_hyperliquid_perp_trade(self, config):
        try:
            return super().handle_hyperliquid_perp_trade(config)
        except Exception:
            return None

    def handle_set_hyperliquid_perp_stop_loss(self, config):
        super().handle_set_hyperliquid_perp_stop_loss(config)
        return super().handle_set_hyperliquid_perp_stop_loss(config)


def test_a_hook_catching_exception_cannot_swallow_a_stop_with_an_order_in_flight(env, sim, signals, wallet):
    from fractrade_sync.config.settings import settings_from_mapping
    from tests.conftest import restart_until_done, start_ready

    settings = settings_from_mapping({**env, "FRAC_HTTP_TIMEOUT": "0.5"})
    first = start_ready(settings)
    first.__class__ = _Careless  # (its hooks are looked up at each call)
    first.pipeline.hooks = first._hooks()
    sim.timeout_s = 3.0
    sim.inject("hold")  # the order is on its way
    sim.inject("500", 30)  # and nothing else gets an answer: a stop comes first
    frame = push(signals, trade_frame(size="0.01"))
    wait_for(lambda: sim.request_count("/exchange") >= 2, what="the resends")
    first.stop(timeout=0.5)
    assert first.journal.get(key_of(frame))["state"] == "submitting"  # not 'skipped': left for the next start
    sim.reset_faults()
    row = restart_until_done(settings, key_of(frame))
    assert row["state"] == "filled" and len(sim.applied_orders(wallet.address)) == 1, row


def test_a_hook_calling_its_parent_twice_sends_one_order(make_service, sim, signals, wallet):
    service = make_service(_Careless)
    run_frame(service, signals, trade_frame(size="0.02"))
    row = run_frame(service, signals, protect_frame(trigger="45000"))
    assert row["state"] == "resting", row  # the first call's outcome, told again to the second
    assert len(sim.open_orders(wallet.address)) == 1
    assert sim.request_count("/exchange", "order") == 2  # the trade and one stop loss


def test_a_changed_action_keeps_the_identity_and_the_arrival_of_the_one_handled():
    """A hook's changed config is the same action: its key, cloid, times and the mid its coin had as it arrived."""
    frame = json.dumps(trade_frame())
    original = parse_frame(frame, 1.0, mid_of=lambda coin: Decimal("50000") if coin == "BTC" else None)
    changed = parse_frame(json.dumps(trade_frame(size="0.02")), 2.0)
    same = with_identity(changed, original)
    assert (same.key, same.cloid, same.received_at, same.frame) == (original.key, original.cloid, 1.0, frame)
    assert (same.size, same.arrival_mid, changed.arrival_mid) == (Decimal("0.02"), Decimal("50000"), None)
