"""The client against the live exchange's behaviour: the subscriptions it serves and refuses, reads that do not say
what they should, the request weights it counts, the address-based limit, isolated-only assets, and order status as
the exchange reports it (each shape with its source in EXCHANGE.md)."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal

import pytest
import requests

from fractrade_sync.errors import TransientError, UnreadableAnswer
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.answers import order_outcome
from fractrade_sync.exchange.budget import WeightBudget
from fractrade_sync.feeds import account_feed, exchange_feed
from fractrade_sync.feeds.account import AccountView
from fractrade_sync.outcome import FILLED, RESTING
from fractrade_sync.sim.hl_model import ISOLATED_ONLY
from tests.conftest import info_reads, protect_frame, run_frame, trade_frame, wait_drained, wait_for
from tests.test_notify import Webhook

ISOLATED_COIN = sorted(ISOLATED_ONLY)[0]


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.close()


# ---- the subscriptions the exchange serves today ------------------------------------------------------------------
class Sent:
    """A socket that records what the feed sends."""

    def __init__(self):
        self.sent: list[dict] = []

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def test_the_feed_asks_for_what_the_exchange_serves_and_never_webdata2():
    feed = exchange_feed.ExchangeFeed("http://127.0.0.1:1", user="0x" + "ab" * 20)
    ws = Sent()
    feed.channels.ask(ws)
    kinds = [(m["subscription"]["type"], m["subscription"].get("dex")) for m in ws.sent]
    assert kinds == [("clearinghouseState", ""), ("openOrders", ""), ("orderUpdates", None), ("userFills", None)]
    feed.watch("BTC")
    feed.channels.ask(ws, again=True)
    assert ws.sent[-1]["subscription"] == {"type": "activeAssetData", "user": "0x" + "ab" * 20, "coin": "BTC"}
    feed.channels.ask(ws, again=True)  # nothing new: nothing sent
    assert len(ws.sent) == 5 and not any(m["subscription"]["type"] == "webData2" for m in ws.sent)


def test_a_refused_subscription_is_warned_once_and_not_asked_again_in_a_loop(caplog):
    clock = [1000.0]
    user = "0x" + "ab" * 20
    feed = exchange_feed.ExchangeFeed("http://127.0.0.1:1", user=user, clock=lambda: clock[0])
    request = json.dumps(
        {"method": "subscribe", "subscription": {"type": "clearinghouseState", "user": user, "dex": ""}}
    )
    error = json.dumps({"channel": "error", "data": f"Error parsing JSON into valid websocket request: {request}"})
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            feed.take(error)
    refusals = [r for r in caplog.records if "refused the clearinghouseState subscription" in r.message]
    assert len(refusals) == 1, caplog.text
    assert feed.account.refused == {"clearinghouseState"}
    ws = Sent()
    feed.channels.ask(ws)  # a reconnect: the refused one is not asked again yet
    assert "clearinghouseState" not in [m["subscription"]["type"] for m in ws.sent]
    clock[0] += account_feed.ASK_AGAIN_AFTER
    feed.channels.ask(ws, again=True)  # ten minutes on: asked once more
    assert [m["subscription"]["type"] for m in ws.sent].count("clearinghouseState") == 1


def test_the_service_trusts_the_live_feeds_the_simulator_serves(make_service, sim, signals, wallet):
    service = make_service()
    account = service.client.account
    run_frame(service, signals, trade_frame(size="0.01"))
    wait_for(lambda: account.position("BTC") == Decimal("0.01"), what="the view trusted, showing the fill")
    reads = info_reads(sim)
    assert run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))["state"] == RESTING
    assert info_reads(sim) == reads  # sized from the live view: nothing read


def test_an_error_frame_for_the_account_feed_means_rest_with_one_warning(make_service, sim, signals, wallet, caplog):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    request = {"method": "subscribe", "subscription": {"type": "openOrders", "user": wallet.address, "dex": ""}}
    sim.push_ws_raw(
        json.dumps(
            {"channel": "error", "data": f"Error parsing JSON into valid websocket request: {json.dumps(request)}"}
        )
    )
    wait_for(lambda: service.client.account.refused, what="the refusal taken")
    sim.pause_userdata()  # (a refused subscription pushes nothing)
    reads = sim.request_count("/info", "frontendOpenOrders")
    row = run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    assert row["state"] == RESTING
    wait_for(lambda: sim.request_count("/info", "frontendOpenOrders") > reads, what="the cleanup's REST read")
    assert caplog.text.count("refused the openOrders subscription") == 1
    assert "not trusted now" not in caplog.text  # no WARNING a minute on top of the one that said why


# ---- a read that does not say what it should is "don't know" --------------------------------------------------------
@pytest.mark.parametrize("garbled", ["{}", '{"error": "internal"}', '{"assetPositions": null, "time": 1}'])
def test_a_garbled_position_read_is_never_flat(make_service, sim, signals, wallet, garbled):
    """An add-on trade's cleanup reads the position over REST: a garbled answer once canceled the stop loss."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    sim.inject("answer", count=3, path="/info", answer=garbled)
    run_frame(service, signals, trade_frame(size="0.01"))
    wait_drained(service, "the cleanup")
    stops = [o for o in sim.open_orders(wallet.address) if o["orderType"] == "Stop Market"]
    assert len(stops) == 1, "a garbled read was taken as 'flat': the stop loss was canceled"


def test_a_garbled_read_at_start_never_sweeps_the_stops(make_service, sim, signals, wallet, caplog):
    """Every start sweeps the protection a crash left; a garbled position read once canceled every stop."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    run_frame(service, signals, protect_frame("stop_loss", trigger="48000"))
    service.stop(timeout=5)

    def info(**body):
        return json.dumps(requests.post(sim.url + "/info", json=body, timeout=5).json())

    # the next start's reads, in order: meta, clearinghouseState (clock), then the sweep's open orders and positions
    for answer in (
        info(type="meta"),
        info(type="clearinghouseState", user=wallet.address),
        info(type="frontendOpenOrders", user=wallet.address),
        "{}",
    ):
        sim.inject("answer", path="/info", answer=answer)
    make_service()
    assert "checking the protection left by the last run failed" in caplog.text
    assert len(sim.open_orders(wallet.address)) == 1, "a garbled read was taken as 'flat': the stop was swept"


def test_unreadable_reads_raise_instead_of_meaning_nothing():
    with pytest.raises(UnreadableAnswer):
        wire.positions({"error": "x"})
    with pytest.raises(UnreadableAnswer):
        wire.open_orders({"error": "x"})
    with pytest.raises(UnreadableAnswer):
        wire.leverage({"leverage": {"type": "cross", "value": None}}, "BTC")
    with pytest.raises(UnreadableAnswer):
        wire.leverage({}, "BTC")
    assert wire.positions({"assetPositions": []}) == {}


def test_an_ok_answer_without_a_readable_status_is_settled_by_cloid(make_service, sim, signals, wallet):
    service = make_service()
    sim.inject("answer", answer=json.dumps({"status": "ok", "response": {"type": "order", "data": {}}}))
    row = run_frame(service, signals, trade_frame(size="0.01"))
    assert row["state"] == FILLED and row["reason"].startswith("found on the exchange by cloid"), row
    assert row["filled_sz"] == "0.01"
    assert sim.applied_count(wallet.address) == 1


def test_the_bare_string_statuses_are_understood():
    for text in ("waitingForFill", "waitingForTrigger"):
        answer = {"status": "ok", "response": {"type": "order", "data": {"statuses": [text]}}}
        assert order_outcome(answer, Decimal("1"), 1.0).state == RESTING
    unreadable = {"status": "ok", "response": {"type": "order", "data": {"statuses": [{"filled": {}}]}}}
    assert order_outcome(unreadable, Decimal("1"), 1.0) is None  # settled by cloid, never "failed"


# ---- the request weights the exchange counts ----------------------------------------------------------------------
def test_weights_as_the_exchange_counts_them():
    assert wire.info_weight({"type": "allMids"}) == 2 and wire.info_weight({"type": "userRole"}) == 60
    assert wire.info_weight({"type": "frontendOpenOrders"}) == 20
    assert wire.exchange_weight({"type": "order", "orders": [{}] * 79}) == 2


def test_reads_leave_room_for_orders(make_service, sim, signals, wallet):
    service = make_service()
    client = service.client
    client.endpoint.weights = WeightBudget(limit=100)  # reads may use 75 of it
    for _ in range(3):
        client.rest_open_orders()  # 20 each
    with pytest.raises(TransientError, match="reads wait so that orders keep room"):
        client.rest_open_orders()
    assert run_frame(service, signals, trade_frame(size="0.01"))["state"] == FILLED  # the order still goes


def test_idle_reads_no_leverage_and_stays_light(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01", leverage=10))
    wait_for(lambda: service.client.account.leverage("BTC") is not None, what="the activeAssetData push")
    before = sim.request_count("/info", "activeAssetData")
    spent = service.client.endpoint.weights.total
    for _ in range(5):
        service.client.keep_warm(idle=0)
    assert sim.request_count("/info", "activeAssetData") == before  # leverage comes from the subscription
    assert service.client.endpoint.weights.total - spent == 5 * wire.INFO_WEIGHTS["clearinghouseState"]


def test_a_leverage_change_pushed_by_the_exchange_is_used(make_service, sim, signals, wallet):
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01", leverage=10))
    wait_for(lambda: service.client.account.leverage("BTC") == ("cross", 10), what="the activeAssetData push")
    reads = sim.request_count("/info", "activeAssetData")
    run_frame(service, signals, trade_frame(size="0.01", leverage=10))
    assert sim.request_count("/info", "activeAssetData") == reads  # no read on the order path


def test_the_address_based_limit_is_a_rejection_with_one_alert(make_service, sim, signals, wallet, webhook):
    service = make_service(FRAC_NOTIFY_URL=webhook.url)
    sim.limit_address(wallet.address)
    first = run_frame(service, signals, trade_frame(size="0.01"))
    second = run_frame(service, signals, trade_frame(size="0.02"))
    for row in (first, second):
        assert row["state"] == "rejected" and row["reason"].startswith(wire.ADDRESS_LIMIT), row
    assert sim.request_count("/exchange", "order") == 2  # no retries of it
    wait_for(lambda: webhook.events("alert"), what="the alert")
    alerts = webhook.events("alert")
    assert len(alerts) == 1 and "address-based limit" in json.dumps(alerts[0]), alerts


# ---- isolated-only assets ------------------------------------------------------------------------------------------
def test_an_isolated_only_asset_gets_an_isolated_leverage_update(make_service, sim, signals, wallet):
    service = make_service()  # FRAC_MARGIN_MODE defaults to cross
    row = run_frame(service, signals, trade_frame(symbol=ISOLATED_COIN, size="10", leverage=3))
    assert row["state"] == FILLED, row
    assert "isolated margin only" in row["reason"], row
    assert sim.leverage(wallet.address, ISOLATED_COIN) == {"type": "isolated", "value": 3}


# ---- the account view, ordered by the exchange's own time ------------------------------------------------------------
CLOID = "0x" + "cd" * 16


def _view():
    clock = [100.0]
    view = AccountView(live=lambda: True, clock=lambda: clock[0])
    return view, clock


def _positions(view, held: dict, when: int, generation: int = 1) -> None:
    state = {"assetPositions": [{"position": {"coin": c, "szi": s}} for c, s in held.items()], "time": when}
    view.on_positions(state, wire.positions(state), wire.state_time(state), generation, subscribed_at=0.0)


def _fill(view, clock, size: str, oid: int = 9) -> None:
    """Our trade's answer: filled `size` (sent a moment before)."""
    wire_ = {"a": 0, "b": True, "p": "50500", "s": size, "r": False, "c": CLOID, "t": {"limit": {"tif": "Ioc"}}}
    answer = {
        "status": "ok",
        "response": {
            "type": "order",
            "data": {"statuses": [{"filled": {"totalSz": size, "avgPx": "50000", "oid": oid}}]},
        },
    }
    view.applied({"type": "order", "orders": [wire_]}, answer, {0: "BTC"}, sent_at=clock[0] - 0.05)


def _filled_view():
    """A trusted view (flat, no orders, the exchange's time 1000) with our 0.01 fill laid over it, a second on."""
    view, clock = _view()
    _positions(view, {}, when=1_000)
    view.on_orders([], 1)
    clock[0] += 1
    _fill(view, clock, "0.01")
    return view, clock


def _report_fill(view) -> None:
    """The userFills feed reports our fill, at the exchange's time 2000."""
    view.on_events("userFills", {"user": "0x0", "fills": [{"oid": 9, "coin": "BTC", "time": 2_000}]})


def test_an_own_fill_reported_before_any_snapshot_since_is_kept():
    view, clock = _filled_view()
    _report_fill(view)
    assert view.position("BTC") == Decimal("0.01"), "the reported fill was dropped before a snapshot showed it"
    _positions(view, {}, when=1_500)  # older than the one held: ignored
    assert view.position("BTC") == Decimal("0.01")
    _positions(view, {"BTC": "0.01"}, when=2_000)  # at the fill's time: it shows the fill
    assert view.position("BTC") == Decimal("0.01") and view.pending() == 0


def test_a_snapshot_older_than_the_fill_never_undoes_it():
    view, clock = _filled_view()
    _report_fill(view)
    _positions(view, {}, when=1_900)  # taken before the fill, delivered after its report
    assert view.position("BTC") == Decimal("0.01")


def test_a_snapshot_after_the_send_with_the_fill_not_reported_yet_is_dont_know():
    """The snapshot may or may not include the fill: neither 0.01 nor 0.02 is known, so REST decides."""
    view, clock = _filled_view()
    clock[0] += 0.01
    _positions(view, {"BTC": "0.01"}, when=2_100)
    assert view.position("BTC") is None
    _report_fill(view)
    assert view.position("BTC") == Decimal("0.01")


def test_the_view_needs_both_the_positions_and_the_orders_of_this_connection():
    view, clock = _view()
    _positions(view, {"BTC": "0.01"}, when=1_000)
    assert view.position("BTC") is None  # no openOrders snapshot yet
    view.on_orders([], 1)
    assert view.position("BTC") == Decimal("0.01")
    view.lost()
    _positions(view, {"BTC": "0.01"}, when=1_100, generation=2)
    assert view.position("BTC") is None and view.open_orders() is None


def test_only_a_refusal_is_a_refusal():
    request = '{"type":"clearinghouseState","user":"0xab","dex":""}'
    assert account_feed.refused_channel(f"Already subscribed: {request}") is None
    assert account_feed.refused_channel(f"Invalid subscription {request}") == "clearinghouseState"
    assert (
        account_feed.refused_channel(f'Error parsing JSON into valid websocket request: {{"subscription":{request}}}')
        == "clearinghouseState"
    )


def test_one_error_for_a_whole_request_refuses_each_of_its_orders():
    answer = {"status": "ok", "response": {"type": "order", "data": {"statuses": [{"error": "Invalid TP/SL price."}]}}}
    second = order_outcome(answer, Decimal("1"), 1.0, index=1)
    assert second.state == "rejected" and second.reason == "Invalid TP/SL price. (for the whole request)"


def test_a_shrunk_reduce_only_order_found_by_cloid_reports_what_filled(make_service, sim, signals, wallet):
    """The exchange shrinks a reduce-only order to the position: its record says filled with origSz 0.05, but only
    the 0.01 held filled (EXCHANGE.md §4). The size comes from the fills, never from origSz - sz."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))
    sim.inject("drop")  # applied, its answer lost: settled by cloid
    row = run_frame(service, signals, trade_frame(side="SELL", size="0.05", reduce_only=True))
    assert row["reason"].startswith("found on the exchange by cloid"), row
    assert (row["state"], row["filled_sz"]) == ("partially_filled", "0.01"), row
    assert sim.positions(wallet.address) == {}


def test_a_leverage_pushed_on_a_lost_connection_is_not_trusted_on_the_next_one():
    """account.AccountView.leverage: positions and orders are trusted only once the new socket sent them, but a
    leverage pushed on the old socket is taken as the coin's leverage on the new one before (or without) any
    activeAssetData push there: a leverage changed in the UI during the outage is missed, no update is sent, and the
    trade goes out at the UI's leverage."""

    from fractrade_sync.feeds.account import AccountView

    view = AccountView(live=lambda: True)
    view.on_positions({}, {}, 1_000, 1, subscribed_at=0.0)
    view.on_orders([], 1, subscribed_at=0.0)
    view.on_leverage("BTC", ("cross", 5))
    assert view.leverage("BTC") == ("cross", 5)
    view.lost()  # the socket dropped; meanwhile the trader sets BTC to 20x in the UI
    view.on_positions({}, {}, 2_000, 2, subscribed_at=1.0)
    view.on_orders([], 2, subscribed_at=1.0)
    assert view.leverage("BTC") is None  # nothing on this socket said it yet: REST


def test_a_fill_learnt_by_cloid_is_not_counted_again_over_a_snapshot_that_shows_it():
    """A fill found by cloid (records.shown_in_account) is laid over the view as of when its order was sent,
    not when it was found: a positions snapshot that came in between and already shows it is not added to again (the
    position reads as the snapshot's, or "don't know"; never twice the fill)."""
    from fractrade_sync.exchange.rules import Asset, Order
    from fractrade_sync.execution.records import shown_in_account
    from fractrade_sync.outcome import Outcome

    now = [0.0]
    view = AccountView(live=lambda: True, clock=lambda: now[0])
    view.on_positions({}, {}, 1_000, 1, subscribed_at=0.0)
    view.on_orders([], 1, subscribed_at=0.0)
    sent_at = now[0] = 1.0  # the order leaves; its answer is lost, its userFills report too (an unreadable push)
    now[0] = 3.0
    view.on_positions({}, {"BTC": Decimal("0.01")}, 3_000, 1)  # a later snapshot shows the fill
    now[0] = 6.0  # resend refused "duplicate nonce", found filled by cloid: shown_in_account lays it over the view
    order = Order(Asset("BTC", 0, 5, 50), True, Decimal("0.01"), Decimal("50500"), False, "0x" + "ab" * 16)
    shown_in_account(view, [order], [Outcome(FILLED, "found", 7, "0.01")], sent_at)
    assert sent_at < now[0]
    assert view.position("BTC") in (None, Decimal("0.01")), view.position("BTC")


def test_the_status_commands_positions_are_unknown_when_the_answer_does_not_say(env, sim):
    """channels.positions_text (Telegram /status): a clearinghouseState answer without assetPositions (a gateway's
    JSON, an error object) is shown as unknown, never as "positions: none"."""
    from fractrade_sync.channels.hub import positions_text
    from fractrade_sync.config.settings import settings_from_mapping

    settings = settings_from_mapping(env)  # (no service: nothing else takes the fault)
    sim.inject("answer", path="/info", answer='{"error": "gateway"}')
    assert positions_text(settings).startswith("unknown")
    assert sim.request_count("/info") == 1


def test_an_applied_order_whose_record_aged_out_is_found_in_its_fills(make_service, sim, signals, wallet):
    """orderStatus keeps about the account's last 2000 orders: after the nonce is spent, "no such cloid" is not yet
    "no effect" while the fills (which carry the cloid) or the open orders show it."""
    from fractrade_sync.frames import parse_frame

    service = make_service()
    frame = trade_frame(size="0.01")
    row = run_frame(service, signals, frame)
    assert row["state"] == FILLED
    with sim.state.lock:  # its record ages out (a busy account's next 2000 orders)
        sim.state.orders = [o for o in sim.state.orders if (o.cloid or "").lower() != row["cloid"].lower()]
    assert requests.post(
        sim.url + "/info", json={"type": "orderStatus", "user": wallet.address, "oid": row["cloid"]}, timeout=5
    ).json() == {"status": "unknownOid"}
    action = parse_frame(json.dumps(frame), time.time())
    sender = service.pipeline.requests.sender
    sender.stopping = threading.Event()
    with patched_info_lag(0.0):
        (found,) = sender._by_cloid([action])
    assert found is not None and found.state == FILLED and found.filled_sz == "0.01", found
    assert "its order record is gone" in found.reason


def test_an_ok_answer_silent_on_its_order_whose_cloid_check_fails_is_unknown_never_failed(
    make_service, sim, signals, wallet
):
    """The exchange took the request (`ok`) but its answer says nothing of the order, and the cloid check that follows
    gets no readable answer: the outcome is unknown, settled by cloid later; never a failure, never "not executed"."""
    service = make_service()
    run_frame(service, signals, trade_frame(size="0.01"))  # warm: the next trade's reads come from the live views
    sim.inject("answer", answer='{"status":"ok","response":{"type":"order","data":{}}}')
    sim.inject("answer", count=50, path="/info", answer="null")  # every read garbled meanwhile
    with patched_info_lag(0.0):
        row = run_frame(service, signals, trade_frame(size="0.01"))
    assert row["state"] == "unknown", (row["state"], row["reason"])
    assert row["reason"].startswith("outcome unknown (") and row["reason"].endswith(
        f"settled by cloid {row['cloid']} as soon as the exchange answers"
    ), row["reason"]
    assert sim.positions(wallet.address) == {"BTC": "0.02"}  # it was applied
    sim.reset_faults()


def patched_info_lag(seconds: float):
    import contextlib

    from fractrade_sync.execution import records

    @contextlib.contextmanager
    def patched():
        saved = records.INFO_LAG
        records.INFO_LAG = seconds
        try:
            yield
        finally:
            records.INFO_LAG = saved

    return patched()
