"""The whole signal in one request, its protection kept by the exchange (position TP/SL): a stop loss or take profit
without a size is a `positionTpsl` trigger of size 0, which covers the whole position whatever it is when it fires;
an agent's trade and its protection go out in one signed request; the older trigger of the kind goes once the new one
rests; only this service's own triggers are touched; a flat coin keeps none of ours. All of it holds across a crash or
a kill -9 (finished at the next start), a stop loss fired on the exchange, and a trade settled late."""

from __future__ import annotations

import json
import time
from decimal import Decimal

from hyperliquid.exchange import Exchange

from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.execution import pipeline
from fractrade_sync.execution.waves import SIBLINGS_WITHIN, EventShape
from fractrade_sync.frames import parse_frame
from fractrade_sync.outcome import FILLED, RESTING
from fractrade_sync.service import FractradeExecutor
from tests.conftest import (
    info_reads,
    key_of,
    protect_frame,
    push,
    queued_together,
    run_frame,
    start_ready,
    trade_frame,
    wait_drained,
    wait_for,
    wait_state,
)


def _order_requests(sim) -> list[dict]:
    return [e for e in sim.exchange_log() if e["action_type"] == "order"]


def _event(size="0.01", stop="48000", profit="56000", event_id=None):
    event_id = event_id or f"ev-{time.monotonic_ns()}"
    return [
        trade_frame(size=size, event_id=event_id),
        protect_frame("stop_loss", trigger=stop, event_id=event_id),
        protect_frame("take_profit", trigger=profit, event_id=event_id),
    ]


def _triggers(sim, wallet) -> list[tuple]:
    return sorted((o["orderType"], o["sz"], o["isPositionTpsl"]) for o in sim.open_orders(wallet.address))


def test_an_event_goes_in_one_request_its_protection_kept_by_the_exchange(make_service, sim, signals, wallet):
    service = make_service()
    before, reads = len(_order_requests(sim)), info_reads(sim)
    rows = queued_together(service, sim, signals, _event())
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    sent = _order_requests(sim)[before:]
    assert len(sent) == 1 and sent[0]["grouping"] == "positionTpsl", sent  # trade, stop loss, take profit together
    assert info_reads(sim) - reads <= 1  # (the held frame's unknown symbol may reload meta)
    assert _triggers(sim, wallet) == [("Stop Market", "0.0", True), ("Take Profit Market", "0.0", True)]


def test_a_later_trade_needs_no_resize_and_the_stop_closes_the_whole_position(make_service, sim, signals, wallet):
    service = make_service()
    queued_together(service, sim, signals, _event())
    wait_drained(service, "the cleanups")
    orders, reads = sim.request_count("/exchange"), info_reads(sim)
    run_frame(service, signals, trade_frame(size="0.02"))  # adds to the protected position
    wait_drained(service, "the cleanups")
    assert sim.request_count("/exchange") - orders == 1  # the trade only: no modify
    assert info_reads(sim) == reads  # and nothing read
    assert sim.positions(wallet.address) == {"BTC": "0.03"}
    sim.set_mark("BTC", "47900")  # through the stop loss (triggers fire on the mark)
    wait_for(lambda: sim.positions(wallet.address) == {}, what="the whole 0.03 closed by the position stop loss")


def test_a_new_stop_loss_replaces_ours_only_once_it_rests_and_never_a_hand_placed_one(
    make_service, sim, signals, wallet
):
    service = make_service()
    queued_together(service, sim, signals, _event())
    hand = {"trigger": {"triggerPx": 47000, "isMarket": True, "tpsl": "sl"}}
    Exchange(wallet, sim.url).order("BTC", False, 0.01, 42300, hand, reduce_only=True)  # the trader's own stop
    row = run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    assert row["state"] == RESTING, row
    wait_drained(service, "the cleanup")
    stops = sorted(
        (o["triggerPx"], o["isPositionTpsl"])
        for o in sim.open_orders(wallet.address)
        if o["orderType"] == "Stop Market"
    )
    assert stops == [("47000.0", False), ("48500.0", True)], stops  # ours replaced, the trader's kept


def test_a_closing_trade_leaves_no_trigger_of_ours(make_service, sim, signals, wallet):
    service = make_service()
    queued_together(service, sim, signals, _event())
    run_frame(service, signals, trade_frame(side="SELL", size="0.01", reduce_only=True))
    wait_for(lambda: not sim.open_orders(wallet.address), what="the protection of the closed position canceled")


def test_a_sized_stop_loss_stays_a_sized_trigger(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    assert run_frame(service, signals, protect_frame("stop_loss", trigger="48000", size="0.01"))["state"] == RESTING
    assert _triggers(sim, wallet) == [("Stop Market", "0.01", False)]
    assert _order_requests(sim)[-1]["grouping"] == "na"


def test_when_the_exchange_refuses_them_together_the_trade_goes_first_then_its_protection(
    make_service, sim, signals, wallet, caplog
):
    service = make_service()
    sim.refuse_entry_in_position_tpsl(True)
    rows = queued_together(service, sim, signals, _event())
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    assert caplog.text.count("refused a trade and its position TP/SL in one request") == 1
    assert _triggers(sim, wallet) == [("Stop Market", "0.0", True), ("Take Profit Market", "0.0", True)]
    before = len(_order_requests(sim))
    rows = queued_together(service, sim, signals, _event(size="0.01", stop="48100", profit="55000"))
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    assert len(_order_requests(sim)) - before == 2  # from then on: the trade, then its protection; none refused
    assert sim.positions(wallet.address) == {"BTC": "0.02"}


def test_an_ambiguous_grouped_request_is_settled_order_by_order_by_cloid(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    rows = queued_together(service, sim, signals, _event(), before_release=lambda: sim.inject("drop"))
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    assert all(r["reason"].startswith("found on the exchange by cloid") for r in rows), rows
    assert sim.positions(wallet.address) == {"BTC": "0.01"} and len(sim.open_orders(wallet.address)) == 2


def test_an_events_frames_arriving_one_by_one_still_go_in_one_request(make_service, sim, signals, wallet):
    """The worker takes the trade the moment it arrives; its agent's events carry protection, so it waits a few
    milliseconds for it instead of sending the trade alone."""
    service = make_service()
    before = len(_order_requests(sim))
    frames = _event()
    for frame in frames:
        push(signals, frame)
    rows = [wait_state(service, key) for key in map(_key, frames)]
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    assert len(_order_requests(sim)) - before == 1


def _key(frame):
    from tests.conftest import key_of

    return key_of(frame)


def test_a_trade_whose_agent_sends_no_protection_does_not_wait():
    """Learnt from the agent's recent events: after trades that came alone, a trade expects nothing."""

    def parsed(frame):
        return parse_frame(json.dumps(frame), time.time())

    shape = EventShape()
    assert shape.expected() == {"stop_loss", "take_profit"}  # before anything is known: one event's few ms
    for _ in range(2):
        shape.traded(parsed(trade_frame()))
    assert shape.expected() == frozenset()  # this agent's trades come alone: no wait
    for _ in range(6):  # then its events carry a stop loss (and no take profit)
        trade, stop_loss, _ = map(parsed, _event())
        shape.traded(trade)
        shape.protected(stop_loss)
    assert shape.expected() == {"stop_loss"}
    assert SIBLINGS_WITHIN <= 0.005  # "a few milliseconds at most"


def test_what_an_agents_events_carry_is_counted_as_the_recent_events_say():
    """EventShape keeps its counts in step as events come and go (pure logic): after any sequence of trades and
    protection (repeated events, unsized and sized legs, more events than it keeps), what it expects is what the
    kept events themselves say: a kind most of them carried (a first event counting as carrying both)."""
    import collections
    import random
    from types import SimpleNamespace

    def said(events: collections.OrderedDict) -> frozenset:
        seen = list(events.values())
        share = {k: (sum(k in kinds for kinds in seen) + 1) / (len(seen) + 2) for k in ("stop_loss", "take_profit")}
        return frozenset(k for k, part in share.items() if part >= 0.5)

    rng = random.Random(7)
    for _ in range(200):
        shape, events = EventShape(kept=rng.randint(1, 6)), collections.OrderedDict()
        for _ in range(rng.randint(0, 40)):
            event = f"e{rng.randint(0, 8)}"
            kind = rng.choice(("trade", "stop_loss", "take_profit"))
            size = rng.choice((None, "0.01")) if kind != "trade" else "0.01"
            action = SimpleNamespace(event_id=event, kind=kind, size=size)
            if kind == "trade":
                shape.traded(action)
                events.pop(event, None)
                events[event] = set()
                while len(events) > shape.kept:
                    events.popitem(last=False)
            else:
                shape.protected(action)
                if size is None and event in events:
                    events[event].add(kind)
            assert shape.expected() == said(events)


def test_a_stop_loss_replaced_since_is_found_as_executed_after_a_crash(env, sim, signals, wallet):
    """A stop loss placed, then canceled by its replacement, then looked up by cloid after a kill -9 (its outcome not
    journaled) is recorded as having rested, never "rejected: canceled"."""
    from fractrade_sync.exchange.answers import status_outcome

    order = {"coin": "BTC", "oid": 7, "origSz": "0.0", "sz": "0.0", "isTrigger": True, "orderType": "Stop Market"}
    found = status_outcome({"status": "order", "order": {"order": order, "status": "canceled"}}, lambda oid: (0, None))
    assert found.state == RESTING and "canceled since" in found.reason
    rejected = {"status": "order", "order": {"order": order, "status": "reduceOnlyRejected"}}
    assert status_outcome(rejected, lambda oid: (0, None)).state == "rejected"


def test_a_whole_request_refused_with_one_status_still_sends_the_trade(make_service, sim, signals, wallet):
    """EXCHANGE.md §3: pre-validation refuses a whole batch "as a top-level err or as one status for the whole batch";
    answers.order_outcome reads the second shape as a whole refusal, but requests.refused_together then sees two
    reasons ("X" for the trade, "X (for the whole request)" for the legs) and never falls back: the trade is
    rejected, and so is every later event's trade."""
    service = make_service()
    sim.refuse_entry_in_position_tpsl(True)  # nothing of the grouped request is applied
    one_status = json.dumps(
        {
            "status": "ok",
            "response": {
                "type": "order",
                "data": {"statuses": [{"error": "Every order in a positionTpsl batch must be a trigger order"}]},
            },
        }
    )

    def refused_with_one_status():
        sim.inject("answer", answer=one_status)

    rows = queued_together(service, sim, signals, _event(), before_release=refused_with_one_status)
    assert sim.positions(wallet.address) == {"BTC": "0.01"}, [(r["state"], r["reason"]) for r in rows]
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows


def test_a_stop_loss_replacing_one_not_yet_shown_by_the_feed_cancels_it(make_service, sim, signals, wallet):
    """Two stop losses without a size in one burst: both answered "waitingForTrigger" (no oid). At the flush the older
    one is only in the live view's overlay (oid None: the feed lags, still trusted): protection._plan cancels it by
    that oid, None; the exchange answers "Order was never placed", the INFO line says it was canceled, and the
    replaced stop stays live beside the new one (until the next start's sweep)."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    wait_drained(service, "the trade's cleanup")
    wait_for(lambda: service.client.account.position("BTC") == Decimal("0.01"), what="the live view trusted")
    sim.set_userdata_delay(0.6)  # a lagging feed, still in order (trusted: well inside 5 s)
    first = protect_frame("stop_loss", trigger="48000")
    second = protect_frame("stop_loss", trigger="47000")
    rows = queued_together(service, sim, signals, [first, second])
    assert [r["state"] for r in rows] == [RESTING, RESTING], rows
    wait_for(lambda: any(e["action_type"] == "cancel" for e in sim.exchange_log()), what="the replace's cancel")
    wait_drained(service, "the cleanups")
    cancels = [e for e in sim.exchange_log() if e["action_type"] == "cancel"]
    stops = sorted(o["triggerPx"] for o in sim.open_orders(wallet.address) if o["orderType"] == "Stop Market")
    assert stops == ["47000.0"], (stops, [c["errors"] for c in cancels])  # the replaced stop at 48000 must be gone


def _trigger_prices(sim, wallet) -> list[tuple]:
    return [(o["orderType"], o["triggerPx"]) for o in sim.open_orders(wallet.address) if o.get("isTrigger")]


def test_resume_after_a_crash_between_a_new_stop_loss_and_the_cancel_of_the_old(env, sim, signals, wallet):
    settings = settings_from_mapping(env)
    first = start_ready(settings)
    wait_state(first, key_of(push(signals, trade_frame(size="0.02"))))
    wait_state(first, key_of(push(signals, protect_frame("stop_loss", trigger="48000"))))
    second_sl = protect_frame("stop_loss", trigger="49000")
    # die right after the exchange rested the new stop loss: no cancel, no terminal journal row
    first.pipeline.protection.after_outcome = lambda *args: None
    finish = first.journal.finish
    first.journal.finish = lambda action, outcome: None if action.key == key_of(second_sl) else finish(action, outcome)
    signals.push(second_sl)
    wait_for(lambda: len(_trigger_prices(sim, wallet)) == 2, what="the second stop loss resting")
    first.stop(timeout=2)
    again = FractradeExecutor(settings).start()
    try:
        row = wait_state(again, key_of(second_sl), timeout=20)
        wait_for(lambda: len(_trigger_prices(sim, wallet)) == 1, what="the older stop loss canceled")
    finally:
        again.stop(timeout=2)
    assert row["state"] == "resting" and _trigger_prices(sim, wallet) == [("Stop Market", "49000.0")]


def test_a_take_profit_left_by_a_fired_stop_loss_never_closes_the_next_position(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.02"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    run_frame(service, signals, protect_frame("take_profit", trigger="55000"))
    sim.set_mid("BTC", 47900)  # the stop loss fires on the exchange: flat, the take profit stays
    assert sim.positions(wallet.address) == {} and len(_trigger_prices(sim, wallet)) == 1
    # (the feed sees 47900 first: else its late push could follow the wait below and price the trade off it)
    wait_for(lambda: service.client.feed.get("BTC") == 47900, what="the feed's low mid")
    sim.set_mid("BTC", 50000)
    wait_for(lambda: service.client.feed.get("BTC") == 50000, what="the feed's new mid")
    row = run_frame(service, signals, trade_frame(size="0.02"))  # a new long, from flat
    assert row["state"] == "filled", row
    assert _trigger_prices(sim, wallet) == []
    sim.set_mid("BTC", 55100)
    assert sim.positions(wallet.address) == {"BTC": "0.02"}


def _killed_before_its_cleanup(env, sim, signals, wallet, last: dict) -> None:
    """A run that opens 0.02 BTC with a stop loss at 48000, then executes `last` and dies before that action's
    cleanup (cleanups wait until the queue drains: a kill -9 loses one still waiting)."""
    settings = settings_from_mapping(env)
    first = start_ready(settings)
    wait_state(first, key_of(push(signals, trade_frame(size="0.02"))))
    wait_state(first, key_of(push(signals, protect_frame("stop_loss", trigger="48000"))))
    first.pipeline.protection.after_outcome = lambda *args: None
    wait_state(first, key_of(push(signals, last)))
    first.stop(timeout=2)


def test_a_replace_a_kill_cut_short_is_finished_at_the_next_start(env, sim, signals, wallet):
    _killed_before_its_cleanup(env, sim, signals, wallet, protect_frame("stop_loss", trigger="49000"))
    assert len(_trigger_prices(sim, wallet)) == 2  # the new stop loss, and the old one it replaces
    again = FractradeExecutor(settings_from_mapping(env)).start()
    try:
        wait_for(lambda: _trigger_prices(sim, wallet) == [("Stop Market", "49000.0")], what="the older stop canceled")
    finally:
        again.stop(timeout=2)


def test_a_stop_left_on_a_coin_a_kill_left_flat_is_canceled_at_the_next_start(env, sim, signals, wallet):
    _killed_before_its_cleanup(env, sim, signals, wallet, trade_frame(side="SELL", size="0.02", reduce_only=True))
    assert sim.positions(wallet.address) == {} and len(_trigger_prices(sim, wallet)) == 1
    again = FractradeExecutor(settings_from_mapping(env)).start()
    try:
        wait_for(lambda: _trigger_prices(sim, wallet) == [], what="the void stop canceled")
    finally:
        again.stop(timeout=2)


def test_a_closing_trade_settled_late_still_cancels_the_stop_of_the_position_it_closed(
    make_service, sim, signals, wallet, monkeypatch
):
    """A trade closes a protected position, its answer lost and every resend and noop refused at the door: 'unknown'.
    When the recheck finds it filled, its cleanup runs then: the stop loss of the closed position does not stay."""
    monkeypatch.setattr(pipeline, "RECHECK_EVERY", 1.0)
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    assert run_frame(service, signals, trade_frame(size="0.01"))["state"] == FILLED
    assert run_frame(service, signals, protect_frame(trigger="45000", size="0.01"))["state"] == RESTING
    assert len(sim.open_orders(wallet.address)) == 1
    sim.inject("drop")
    sim.inject("500", 11)
    frame = push(signals, trade_frame(size="0.01", side="SELL"))
    assert wait_state(service, key_of(frame), timeout=40)["state"] == "unknown"
    assert len(sim.open_orders(wallet.address)) == 1  # nothing known yet: nothing canceled
    sim.reset_faults()
    wait_for(lambda: service.journal.get(key_of(frame))["state"] == "filled", timeout=30, what="settled")
    assert sim.positions(wallet.address) == {}
    wait_for(lambda: sim.open_orders(wallet.address) == [], timeout=10, what="the closed position's stop canceled")


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
    wait_drained(service, "idle")
    assert len(sim.open_orders(wallet.address)) == 1, "the live stop loss of the open position was canceled"
