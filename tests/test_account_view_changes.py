"""The account view's own changes against the feed's snapshots: resizes superseded or fired before a snapshot showed
them never stall a healthy feed; a cancel is not taken as shown by a snapshot older than its order; a push of a
stalled socket is never trusted; a view distrusted by age asks for a new socket; the position before an order of ours
is its earliest fill's start."""

from __future__ import annotations

from decimal import Decimal

from fractrade_sync.feeds.account import AccountView
from tests.account_snapshots import CLOID, STOP_ORDER, push_snapshot, snapshot

OK = lambda statuses: {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}  # noqa: E731


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _view(clock):
    stalls = []
    view = AccountView(live=lambda: True, clock=clock, on_stall=lambda: stalls.append(clock()))
    push_snapshot(view, snapshot({"BTC": "0.01"}, [STOP_ORDER]), 1, subscribed_at=clock() - 1)
    view.on_events("orderUpdates", [{"order": {"oid": 7, "cloid": CLOID, "coin": "BTC"}, "status": "open"}])
    push_snapshot(view, snapshot({"BTC": "0.01"}, [STOP_ORDER]), 1)
    return view, stalls


def _resize(view, size):
    wire = {
        "a": 0,
        "b": False,
        "p": "43200",
        "s": size,
        "r": True,
        "c": CLOID,
        "t": {"trigger": {"isMarket": True, "triggerPx": "48000", "tpsl": "sl"}},
    }
    view.applied(
        {"type": "batchModify", "modifies": [{"oid": CLOID, "order": wire}]}, OK([{"resting": {"oid": 7}}]), {0: "BTC"}
    )


def test_a_resize_superseded_by_a_second_resize_never_stalls_a_healthy_feed():
    """Two trades on BTC within one snapshot interval: the protection is resized to 0.02, then 0.03. The healthy
    feed's next snapshots list the stop at 0.03 only: the 0.03 resize supersedes the 0.02 one (never awaited), the view
    stays trusted and the subscription is never cut."""
    clock = Clock()
    view, stalls = _view(clock)
    _resize(view, "0.02")
    clock.t += 0.2
    _resize(view, "0.03")
    for _ in range(7):  # healthy feed: a snapshot every second, showing the stop at its final size
        clock.t += 1
        push_snapshot(view, snapshot({"BTC": "0.03"}, [dict(STOP_ORDER, sz="0.03")]), 1)
    assert view.position("BTC") == Decimal("0.03"), "a healthy feed showing everything is distrusted"
    assert stalls == [], "a healthy subscription was cut as silently dead"


def test_a_resized_stop_that_fires_never_stalls_a_healthy_feed():
    """The stop is resized, then fires (or is canceled) before a snapshot lists it at its new size: a snapshot
    without the stop settles the pending resize, so the view stays trusted and the subscription is never cut."""
    clock = Clock()
    view, stalls = _view(clock)
    _resize(view, "0.02")
    for _ in range(7):  # the stop fired: the position is flat and the order is gone
        clock.t += 1
        push_snapshot(view, snapshot({}, []), 1)
    assert view.position("BTC") == Decimal("0"), "a healthy feed showing everything is distrusted"
    assert stalls == []


def test_a_cancel_is_not_shown_by_a_snapshot_that_predates_its_order():
    """A stop placed (its answer laid over), then canceled by the next trade's cleanup; the next snapshot predates
    the stop and does not list it. That absence does not count as the cancel shown: the view never lists the
    canceled stop as open."""
    clock = Clock()
    view = AccountView(live=lambda: True, clock=clock)
    push_snapshot(view, snapshot({"BTC": "0.01"}), 1)
    wire = {
        "a": 0,
        "b": False,
        "p": "43200",
        "s": "0.01",
        "r": True,
        "c": CLOID,
        "t": {"trigger": {"isMarket": True, "triggerPx": "48000", "tpsl": "sl"}},
    }
    view.applied({"type": "order", "orders": [wire]}, OK([{"resting": {"oid": 7}}]), {0: "BTC"})
    clock.t += 0.1
    view.applied(
        {"type": "cancel", "cancels": [{"a": 0, "o": 7}]},
        {"status": "ok", "response": {"type": "cancel", "data": {"statuses": ["success"]}}},
        {0: "BTC"},
    )
    assert view.open_orders() == []
    clock.t += 0.1
    push_snapshot(view, snapshot({"BTC": "0.01"}), 1)  # computed before the stop was placed (feed lag)
    assert view.open_orders() == [], "the canceled stop shows as open"


def test_a_dead_subscription_with_a_change_pending_gets_a_new_socket_even_past_the_age_bound():
    """The user-data subscription dies while nothing of ours is pending (pongs, allMids still flow). Past the age
    bound the view is distrusted by age, and an own change made since is still checked: unconfirmed, it calls
    on_stall (a new socket), not only the same-socket refresh."""
    clock = Clock()
    view, stalls = _view(clock)
    clock.t += 20  # no snapshot since
    other = "0x" + "cd" * 16  # (a cloid of its own: the stop's reported one would confirm it)
    order = {"a": 0, "b": True, "p": "51000", "s": "0.01", "r": False, "t": {"limit": {"tif": "Ioc"}}, "c": other}
    view.applied({"type": "order", "orders": [order]}, OK([{"filled": {"totalSz": "0.01", "oid": 9}}]), {0: "BTC"})
    for _ in range(60):
        clock.t += 10
        assert view.position("BTC") is None
    assert stalls, "10 minutes of a dead subscription and it was never replaced"


def test_a_push_of_the_stalled_socket_is_never_trusted():
    """A worker read stalls the view while the feed thread parses a push of that same socket: the push, arriving
    after the stall, is not taken (the dead generation is checked under the lock), so the view is never trusted
    again on the subscription just declared dead, without the own fill it had laid over."""
    clock = Clock()
    view = AccountView(live=lambda: True, clock=clock)
    push_snapshot(view, snapshot({}), 1)
    order = {"a": 0, "b": True, "p": "51000", "s": "0.01", "r": False, "t": {"limit": {"tif": "Ioc"}}, "c": CLOID}
    view.applied({"type": "order", "orders": [order]}, OK([{"filled": {"totalSz": "0.01", "oid": 9}}]), {0: "BTC"})
    clock.t += 6  # the feed never showed the fill

    class Push(dict):  # the worker reads while the feed thread is parsing this push (a large webData2 takes a while)
        def __getitem__(self, key):
            if key == "openOrders":
                assert view.position("BTC") is None  # the worker's read: stall, generation 1 is now dead
            return dict.__getitem__(self, key)

    push_snapshot(view, Push(snapshot({})), 1)  # a late push of the stalled socket, without the fill
    assert view.position("BTC") is None, "trusted on the stalled socket, without the own fill: 0 instead of 0.01"


def test_the_position_before_an_order_is_its_earliest_fills_start():
    """An order that fills in several pieces: the position before it is the start of its first fill (a buy's least,
    a sell's most), whichever order userFills reports the pieces in."""
    view = AccountView(live=lambda: True)
    buy = [{"oid": 9, "time": 2, "side": "B", "startPosition": "0.01"}]
    first = [{"oid": 9, "time": 1, "side": "B", "startPosition": "0.0"}]
    sell = [{"oid": 5, "time": 3, "side": "A", "startPosition": "0.02"}, {"oid": 5, "time": 4, "side": "A"}]
    later = {"oid": 5, "time": 5, "side": "A", "startPosition": "0.01"}  # (reported after the earliest: not taken)
    view.on_events("userFills", {"fills": buy})
    view.on_events("userFills", {"fills": first})
    view.on_events("userFills", {"fills": buy})  # (a snapshot repeats a piece)
    view.on_events("userFills", {"fills": [*sell, later]})
    assert view.position_before(9) == Decimal("0.0")
    assert view.position_before(5) == Decimal("0.02")
    assert view.position_before(6) is None
