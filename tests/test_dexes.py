"""HIP-3 dexes: a `dex:COIN` symbol (any case) traded on its own dex, with its own meta, asset id, mids, positions and
open orders; its protection a position TP/SL there; its refusals said in plain words; FRAC_ALLOWED_SYMBOLS takes
`dex:COIN` and `dex:*`."""

from __future__ import annotations

from decimal import Decimal

from fractrade_sync.execution.admission import symbol_allowed
from fractrade_sync.outcome import FILLED, REJECTED, RESTING
from tests.conftest import protect_frame, queued_together, run_frame, trade_frame, wait_for

NVDA = "xyz:NVDA"


def _event(symbol: str, size: str, stop: str, profit: str) -> list[dict]:
    event = f"dex-{symbol}-{size}"
    return [
        trade_frame(symbol=symbol, size=size, event_id=event, leverage=3),
        protect_frame("stop_loss", symbol=symbol, trigger=stop, event_id=event),
        protect_frame("take_profit", symbol=symbol, trigger=profit, event_id=event),
    ]


def test_a_hip3_coin_is_traded_and_protected_on_its_dex(make_service, sim, signals, wallet):
    sim.fund_dex(wallet.address, "xyz", 5_000)
    service = make_service()
    rows = queued_together(service, sim, signals, _event("XYZ:nvda", "1", stop="160", profit="200"))
    assert [r["state"] for r in rows] == [FILLED, RESTING, RESTING], rows
    assert sim.positions(wallet.address, dex="xyz") == {NVDA: "1.0"}
    assert sim.positions(wallet.address) == {}  # nothing on the main dex
    legs = sorted((o["orderType"], o["isPositionTpsl"]) for o in sim.open_orders(wallet.address, dex="xyz"))
    assert legs == [("Stop Market", True), ("Take Profit Market", True)]
    order = next(o for o in sim.applied_orders(wallet.address) if o["coin"] == NVDA)
    assert order["asset"] == 110002  # 100000 + dex index 1 x 10000 + its index in xyz's meta
    assert "isolated margin only" in rows[0]["reason"]  # (xyz:NVDA is isolated-only)
    assert sim.leverage(wallet.address, NVDA) == {"type": "isolated", "value": 3}
    run_frame(service, signals, trade_frame(symbol=NVDA, side="SELL", size="1", reduce_only=True))
    wait_for(lambda: not sim.open_orders(wallet.address, dex="xyz"), what="its protection canceled with the position")


def test_a_hip3_coin_without_collateral_on_its_dex_is_refused_in_plain_words(make_service, sim, signals, wallet):
    service = make_service()
    row = run_frame(service, signals, trade_frame(symbol=NVDA, size="1"))
    assert row["state"] == REJECTED and row["reason"].startswith("Insufficient margin to place order."), row
    assert "USDC must be on that dex" in row["reason"]


def test_an_unknown_dex_or_coin_is_refused_clearly(make_service, sim, signals, wallet):
    service = make_service()
    row = run_frame(service, signals, trade_frame(symbol="nope:NVDA", size="1"))
    assert row["state"] == REJECTED and "no HIP-3 dex 'nope'" in row["reason"], row
    row = run_frame(service, signals, trade_frame(symbol="xyz:NOPE", size="1"))
    assert row["state"] == REJECTED and "unknown symbol 'xyz:NOPE'" in row["reason"], row


def test_an_open_interest_cap_is_said_in_plain_words(make_service, sim, signals, wallet):
    sim.fund_dex(wallet.address, "xyz", 5_000)
    sim.cap_open_interest(NVDA)
    service = make_service()
    row = run_frame(service, signals, trade_frame(symbol=NVDA, size="1"))
    assert row["state"] == REJECTED and "open interest is at its cap" in row["reason"], row


def test_the_dex_mids_come_from_its_own_feed(make_service, sim, signals, wallet):
    sim.fund_dex(wallet.address, "xyz", 5_000)
    service = make_service()
    run_frame(service, signals, trade_frame(symbol=NVDA, size="1"))
    feed = service.client.feed
    sim.set_mid(NVDA, "180")  # a push on the dex's allMids
    wait_for(lambda: feed.get(NVDA) == Decimal("180"), what="the dex's mid from its own allMids")
    assert feed.get("BTC") is not None and "xyz:NVDA" not in feed._mids


def test_allowed_symbols_take_dex_coins_and_whole_dexes():
    assert symbol_allowed("XYZ:nvda", frozenset({"xyz:NVDA"}))
    assert symbol_allowed("xyz:TSLA", frozenset({"BTC", "xyz:*"}))
    assert not symbol_allowed("abc:TSLA", frozenset({"xyz:*"}))
    assert symbol_allowed("btc", frozenset({"BTC"})) and not symbol_allowed("ETH", frozenset({"BTC"}))


def test_a_dex_trade_never_stalls_the_main_dex_account_view(make_service, sim, signals, wallet):
    """The live view holds the main dex: a HIP-3 order's change is not laid over it (no main-dex snapshot could
    ever show it, and the view would stall and be distrusted)."""
    sim.fund_dex(wallet.address, "xyz", 5_000)
    service = make_service()
    account = service.client.account
    account.confirm_within = 0.3
    run_frame(service, signals, trade_frame(size="0.01"))
    wait_for(lambda: account.position("BTC") == Decimal("0.01"), what="the main view trusted")
    run_frame(service, signals, trade_frame(symbol=NVDA, size="1"))
    assert account.pending() == 0
    assert account.position("BTC") == Decimal("0.01") and account.stalls == 0


def test_the_demo_trades_a_hip3_coin_on_a_sub_account_end_to_end():
    import io

    from fractrade_sync.sim.demo import run_demo

    out = io.StringIO()
    assert run_demo(quiet=True, out=out, environ={}, sub_account=True, market="hip3") == 0, out.getvalue()
    text = out.getvalue()
    assert "trading its sub-account" in text and "xyz:NVDA 0 (flat)" in text
    assert text.rstrip().endswith(": the same"), text
