"""The whole signal in one request, its protection kept by the exchange (position TP/SL): a stop loss or take profit
without a size is a `positionTpsl` trigger of size 0, which covers the whole position whatever it is when it fires;
an agent's trade and its protection go out in one signed request; the older trigger of the kind goes once the new one
rests; only this service's own triggers are touched; a flat coin keeps none of ours."""

from __future__ import annotations

import json
import time
from decimal import Decimal

from hyperliquid.exchange import Exchange

from fractrade_sync.actions import parse_frame
from fractrade_sync.execution.waves import SIBLINGS_WITHIN, EventShape
from fractrade_sync.outcome import FILLED, RESTING
from tests.conftest import protect_frame, push, run_frame, trade_frame, wait_for, wait_state
from tests.test_batching import _queued_together


def _order_requests(sim) -> list[dict]:
    return [e for e in sim.exchange_log() if e["action_type"] == "order"]


def _event(size="0.01", sl="48000", tp="56000", event_id=None):
    event_id = event_id or f"ev-{time.monotonic_ns()}"
    return [
        trade_frame(size=size, event_id=event_id),
        protect_frame("stop_loss", trigger=sl, event_id=event_id),
        protect_frame("take_profit", trigger=tp, event_id=event_id),
    ]


def _triggers(sim, wallet) -> list[tuple]:
    return sorted((o["orderType"], o["sz"], o["isPositionTpsl"]) for o in sim.open_orders(wallet.address))


def test_an_event_goes_in_one_request_its_protection_kept_by_the_exchange(make_service, sim, signals, wallet):
    service = make_service()
    before, reads = len(_order_requests(sim)), sim.request_count("/info")
    rows = _queued_together(service, sim, signals, _event())
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    sent = _order_requests(sim)[before:]
    assert len(sent) == 1 and sent[0]["grouping"] == "positionTpsl", sent  # trade, stop loss, take profit together
    assert sim.request_count("/info") - reads <= 1  # (the held frame's unknown symbol may reload meta)
    assert _triggers(sim, wallet) == [("Stop Market", "0.0", True), ("Take Profit Market", "0.0", True)]


def test_a_later_trade_needs_no_resize_and_the_stop_closes_the_whole_position(make_service, sim, signals, wallet):
    service = make_service()
    _queued_together(service, sim, signals, _event())
    wait_for(lambda: service.queue.unfinished_tasks == 0, what="the cleanups")
    orders, reads = sim.request_count("/exchange"), sim.request_count("/info")
    run_frame(service, signals, trade_frame(size="0.02"))  # adds to the protected position
    wait_for(lambda: service.queue.unfinished_tasks == 0, what="the cleanups")
    assert sim.request_count("/exchange") - orders == 1  # the trade only: no modify
    assert sim.request_count("/info") == reads  # and nothing read
    assert sim.positions(wallet.address) == {"BTC": "0.03"}
    sim.set_mark("BTC", "47900")  # through the stop loss (triggers fire on the mark)
    wait_for(lambda: sim.positions(wallet.address) == {}, what="the whole 0.03 closed by the position stop loss")


def test_a_new_stop_loss_replaces_ours_only_once_it_rests_and_never_a_hand_placed_one(
    make_service, sim, signals, wallet
):
    service = make_service()
    _queued_together(service, sim, signals, _event())
    hand = {"trigger": {"triggerPx": 47000, "isMarket": True, "tpsl": "sl"}}
    Exchange(wallet, sim.url).order("BTC", False, 0.01, 42300, hand, reduce_only=True)  # the trader's own stop
    row = run_frame(service, signals, protect_frame("stop_loss", trigger="48500"))
    assert row["state"] == RESTING, row
    wait_for(lambda: service.queue.unfinished_tasks == 0, what="the cleanup")
    stops = sorted(
        (o["triggerPx"], o["isPositionTpsl"])
        for o in sim.open_orders(wallet.address)
        if o["orderType"] == "Stop Market"
    )
    assert stops == [("47000.0", False), ("48500.0", True)], stops  # ours replaced, the trader's kept


def test_a_closing_trade_leaves_no_trigger_of_ours(make_service, sim, signals, wallet):
    service = make_service()
    _queued_together(service, sim, signals, _event())
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
    rows = _queued_together(service, sim, signals, _event())
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    assert caplog.text.count("refused a trade and its position TP/SL in one request") == 1
    assert _triggers(sim, wallet) == [("Stop Market", "0.0", True), ("Take Profit Market", "0.0", True)]
    before = len(_order_requests(sim))
    rows = _queued_together(service, sim, signals, _event(size="0.01", sl="48100", tp="55000"))
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    assert len(_order_requests(sim)) - before == 2  # from then on: the trade, then its protection; none refused
    assert sim.positions(wallet.address) == {"BTC": "0.02"}


def test_an_ambiguous_grouped_request_is_settled_order_by_order_by_cloid(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    rows = _queued_together(service, sim, signals, _event(), before_release=lambda: sim.inject("drop"))
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


def test_a_stop_loss_replaced_since_is_found_as_executed_after_a_crash(env, sim, signals, wallet):
    """Found by chaos: a stop loss placed, then canceled by its replacement, then looked up by cloid after a kill -9
    (its outcome not journaled) was recorded "rejected: canceled" although it had rested."""
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

    rows = _queued_together(service, sim, signals, _event(), before_release=refused_with_one_status)
    assert sim.positions(wallet.address) == {"BTC": "0.01"}, [(r["state"], r["reason"]) for r in rows]
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows


def test_a_stop_loss_replacing_one_not_yet_shown_by_the_feed_cancels_it(make_service, sim, signals, wallet):
    """Two stop losses without a size in one burst: both answered "waitingForTrigger" (no oid). At the flush the older
    one is only in the live view's overlay (oid None: the feed lags, still trusted): protection._plan cancels it by
    that oid, None; the exchange answers "Order was never placed", the INFO line says it was canceled, and the
    replaced stop stays live beside the new one (until the next start's sweep)."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    wait_for(lambda: service.queue.unfinished_tasks == 0, what="the trade's cleanup")
    wait_for(lambda: service.client.account.position("BTC") == Decimal("0.01"), what="the live view trusted")
    sim.set_userdata_delay(0.6)  # a lagging feed, still in order (trusted: well inside 5 s)
    first = protect_frame("stop_loss", trigger="48000")
    second = protect_frame("stop_loss", trigger="47000")
    rows = _queued_together(service, sim, signals, [first, second])
    assert [r["state"] for r in rows] == [RESTING, RESTING], rows
    wait_for(lambda: any(e["action_type"] == "cancel" for e in sim.exchange_log()), what="the replace's cancel")
    wait_for(lambda: service.queue.unfinished_tasks == 0, what="the cleanups")
    cancels = [e for e in sim.exchange_log() if e["action_type"] == "cancel"]
    stops = sorted(o["triggerPx"] for o in sim.open_orders(wallet.address) if o["orderType"] == "Stop Market")
    assert stops == ["47000.0"], (stops, [c["errors"] for c in cancels])  # the replaced stop at 48000 must be gone
