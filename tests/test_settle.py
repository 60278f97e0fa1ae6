"""Settling what the exchange has not said yet, without ever losing or doubling it: found by a review of the nonce
design (each test failed before its fix)."""

from __future__ import annotations

from fractrade_sync.execution import pipeline
from fractrade_sync.service import FractradeExecutor
from tests.conftest import key_of, protect_frame, push, run_frame, trade_frame, wait_for, wait_state


def test_a_trade_settled_late_never_cancels_the_stop_placed_since(make_service, sim, signals, wallet, monkeypatch):
    """Applied, its answer lost, every resend and noop refused at the door: 'unknown'. The agent's stop loss rests;
    the recheck then finds the trade filled, and its cleanup ('opened from flat') would cancel that stop."""
    monkeypatch.setattr(pipeline, "RECHECK_EVERY", 1.0)
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.inject("drop")
    sim.inject("500", 11)
    frame = push(signals, trade_frame(size="0.01"))
    assert wait_state(service, key_of(frame), timeout=40)["state"] == "unknown"
    sim.reset_faults()
    assert run_frame(service, signals, protect_frame(trigger="45000"))["state"] == "resting"
    wait_for(lambda: service.journal.get(key_of(frame))["state"] == "filled", timeout=30, what="settled")
    wait_for(lambda: service.queue.unfinished_tasks == 0, what="idle")
    assert len(sim.open_orders(wallet.address)) == 1, "the live stop loss of the open position was canceled"


def test_a_gateways_4xx_to_a_resend_is_no_answer_not_a_refusal(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.inject("drop")  # applied, answer lost
    sim.inject("403")  # the identical resend: a WAF's 403
    row = wait_state(service, key_of(push(signals, trade_frame(size="0.01"))), timeout=30)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row
    assert len(sim.applied_orders(wallet.address)) == 1


def test_a_4xx_on_the_first_send_is_a_refusal(make_service, sim, signals, wallet):
    service = make_service()
    sim.inject("403")
    row = run_frame(service, signals, trade_frame(size="0.01"))
    assert row["state"] == "failed" and "403" in row["reason"], row
    assert sim.applied_orders(wallet.address) == []


def test_disk_full_at_a_resend_never_records_an_applied_order_as_not_executed(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    notes, calls = service.journal._inflight, []
    real = notes.append

    def append(data, may_empty):  # the first note is written; then the disk is full (ENOSPC)
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(28, "No space left on device")
        return real(data, may_empty)

    notes.append = append
    sim.inject("drop")
    row = wait_state(service, key_of(push(signals, trade_frame(size="0.01"))), timeout=30)
    assert row["state"] == "filled" and len(sim.applied_orders(wallet.address)) == 1, row


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
