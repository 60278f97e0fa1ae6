"""Hyperliquid's price and size rules as pure functions: known values plus hypothesis properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fractrade_sync.exchange.rules import (
    MAX_PERP_DECIMALS,
    is_valid_price,
    is_valid_size,
    price_decimals,
    round_price,
    round_size,
    slippage_price,
    to_wire,
)

D = Decimal
PROPS = settings(max_examples=250, deadline=None)
SZ_DECIMALS = st.integers(min_value=0, max_value=5)
SLIPPAGE = st.decimals(min_value=D("0.001"), max_value=D("0.1"), places=4)


@st.composite
def decimals_between(draw, low: int, high: int, max_digits: int = 9) -> Decimal:
    """A positive Decimal with 1..max_digits significant digits and adjusted exponent in [low, high] (log-uniform)."""
    digits = draw(st.integers(min_value=1, max_value=max_digits))
    coefficient = draw(st.integers(min_value=10 ** (digits - 1), max_value=10**digits - 1))
    adjusted = draw(st.integers(min_value=low, max_value=high))
    return D(coefficient).scaleb(adjusted - (digits - 1))


MIDS = decimals_between(-6, 5)  # 1e-6 <= mid < 1e6
PRICES = decimals_between(-12, 14, max_digits=20)  # any positive price the code could ever see
SIZES = decimals_between(-18, 15, max_digits=12)  # the range frames.py accepts


def tick(sz_decimals: int) -> Decimal:
    """The smallest price step an asset allows: 6 - szDecimals decimals."""
    return D(1).scaleb(-(MAX_PERP_DECIMALS - sz_decimals))


# ---- known values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "px, szd, mode, expected",
    [
        ("50500.123", 5, "up", "50501"),
        ("50500.123", 5, "down", "50500"),
        ("50500.123", 5, "nearest", "50500"),
        ("50500.5", 5, "nearest", "50500"),  # half-even
        ("50501.5", 5, "nearest", "50502"),
        ("123456.7", 0, "up", "123457"),  # integers are always valid, even past 5 significant figures
        ("0.0123456", 0, "up", "0.012346"),
        ("0.0123456", 0, "down", "0.012345"),
        ("9.99999", 2, "up", "10"),  # the carry gains a digit
        ("9999.95", 0, "up", "10000"),
        ("9.99999", 2, "down", "9.9999"),
        ("1.234567", 0, "nearest", "1.2346"),
        ("1.234567", 0, "down", "1.2345"),
        ("123.4567", 3, "down", "123.45"),
        ("3.14159", 4, "up", "3.15"),  # 6 - 4 = 2 decimals
        ("3.14159", 4, "down", "3.14"),
        ("0.0123", 5, "up", "0.1"),  # 1 decimal at most for szDecimals 5
        ("0.05", 5, "down", "0.1"),  # rounded to zero: the smallest tick instead
        ("2000", 1, "up", "2000"),
        ("0.000001", 0, "nearest", "0.000001"),
    ],
)
def test_round_price_known_values(px, szd, mode, expected):
    out = round_price(D(px), szd, mode)
    assert out == D(expected)
    assert is_valid_price(out, szd)


@pytest.mark.parametrize("px", ["0", "-1", "-0.0001"])
def test_round_price_refuses_non_positive(px):
    with pytest.raises(ValueError, match="price must be positive"):
        round_price(D(px), 2)


@pytest.mark.parametrize(
    "px, szd, decimals",
    [("50000", 5, 0), ("1.5", 5, 1), ("1.5", 0, 4), ("0.0123", 0, 6), ("0.0123", 2, 4), ("1234.5", 0, 1)],
)
def test_price_decimals(px, szd, decimals):
    assert price_decimals(D(px), szd) == decimals


@pytest.mark.parametrize(
    "px, szd, valid",
    [
        ("50000", 5, True),
        ("123456", 5, True),
        ("10.000", 2, True),
        ("1.2345", 0, True),
        ("1.23456", 0, False),  # 6 significant figures
        ("0.012345", 0, True),
        ("0.0123456", 0, False),  # 7 decimals
        ("0.01", 5, False),  # more than 6 - 5 decimals
        ("0.1", 5, True),
        ("0", 0, False),
        ("-1", 0, False),
    ],
)
def test_is_valid_price_known_values(px, szd, valid):
    assert is_valid_price(D(px), szd) is valid


@pytest.mark.parametrize(
    "size, szd, expected",
    [("1.23456789", 3, "1.234"), ("0.019", 2, "0.01"), ("5", 0, "5"), ("5.9", 0, "5"), ("0.0009", 3, "0")],
)
def test_round_size_known_values(size, szd, expected):
    assert round_size(D(size), szd) == D(expected)


@pytest.mark.parametrize(
    "size, szd, valid",
    [("0.01", 2, True), ("0.001", 2, False), ("1", 0, True), ("1.0", 0, True), ("0", 3, False), ("-1", 0, False)],
)
def test_is_valid_size_known_values(size, szd, valid):
    assert is_valid_size(D(size), szd) is valid


@pytest.mark.parametrize(
    "mid, buy, slip, szd, expected",
    [
        ("50000", True, "0.01", 5, "50500"),
        ("50000", False, "0.01", 5, "49500"),
        ("3000.05", True, "0.005", 4, "3015.1"),
        ("3000.05", False, "0.005", 4, "2985"),
        ("0.0123456", True, "0.01", 0, "0.01247"),
        ("0.0123456", False, "0.01", 0, "0.012222"),
    ],
)
def test_slippage_price_known_values(mid, buy, slip, szd, expected):
    assert slippage_price(D(mid), buy, D(slip), szd) == D(expected)


@pytest.mark.parametrize(
    "value, wire",
    [
        ("1E+2", "100"),
        ("100", "100"),
        ("0.0100", "0.01"),
        ("50500.000", "50500"),
        ("0E-8", "0"),
        ("-0", "0"),
        ("1.5E-7", "0.00000015"),
        ("123456789.123", "123456789.123"),
    ],
)
def test_to_wire_known_values(value, wire):
    assert to_wire(D(value)) == wire


# ---- properties ----------------------------------------------------------------------------------------


@given(mid=MIDS, szd=SZ_DECIMALS, slip=SLIPPAGE, buy=st.booleans())
@PROPS
def test_slippage_price_is_valid_and_marketable(mid, szd, slip, buy):
    px = slippage_price(mid, buy, slip, szd)
    assert px > 0
    assert is_valid_price(px, szd), px
    if buy:
        assert px >= mid * (1 + slip)
    elif mid * (1 - slip) >= tick(szd):
        assert px <= mid * (1 - slip)
    else:  # no positive tick is that low: the smallest one (an IOC that may not fill, never a worse price)
        assert px == tick(szd)


@given(mid=MIDS, szd=SZ_DECIMALS, slip=SLIPPAGE, buy=st.booleans())
@PROPS
def test_slippage_price_stays_near_the_mid(mid, szd, slip, buy):
    """For a mid of at least 10 ticks (any real book), the limit stays within 80% of the mid."""
    if mid < 10 * tick(szd):
        mid = 10 * tick(szd) + mid
    px = slippage_price(mid, buy, slip, szd)
    assert mid * D("0.2") <= px <= mid * D("1.8")
    assert abs(px - mid) <= mid * slip + tick(szd) + mid * D("0.0002")


@given(px=PRICES, szd=SZ_DECIMALS, mode=st.sampled_from(["up", "down", "nearest"]))
@PROPS
def test_round_price_is_always_valid(px, szd, mode):
    out = round_price(px, szd, mode)
    assert out > 0
    assert is_valid_price(out, szd), (px, out)
    assert round_price(out, szd, mode) == out  # idempotent
    if mode == "up":
        assert out >= px
    elif mode == "down" and out != tick(szd):
        assert out <= px


@given(px=PRICES, szd=SZ_DECIMALS)
@PROPS
def test_round_price_nearest_is_between_down_and_up(px, szd):
    down, up = round_price(px, szd, "down"), round_price(px, szd, "up")
    assert down <= round_price(px, szd, "nearest") <= up


@given(size=SIZES, szd=SZ_DECIMALS)
@PROPS
def test_round_size_never_exceeds_and_is_valid(size, szd):
    out = round_size(size, szd)
    assert 0 <= out <= size
    assert size - out < tick(6 - szd)  # less than one lot lost
    if out > 0:
        assert is_valid_size(out, szd)
    assert round_size(out, szd) == out


@given(value=decimals_between(-18, 15, max_digits=28) | st.just(D(0)), sign=st.sampled_from([1, -1]))
@PROPS
def test_to_wire_has_no_exponent_or_trailing_zeros_and_round_trips(value, sign):
    value = value * sign
    for form in (value, value.normalize(), value.quantize(D(1)) if value.adjusted() < 20 else value):
        wire = to_wire(form)
        assert "e" not in wire.lower()
        assert "." not in wire or not wire.endswith("0")
        assert not wire.endswith(".")
        assert wire != "-0"
        assert D(wire) == form
    # the same number written differently has one wire form
    assert to_wire(value) == to_wire(value.normalize()) == to_wire(D(str(value)))


@given(px=PRICES, szd=SZ_DECIMALS)
@PROPS
def test_to_wire_of_a_rounded_price_parses_to_a_valid_price(px, szd):
    out = round_price(px, szd)
    assert D(to_wire(out)) == out
    assert is_valid_price(D(to_wire(out)), szd)


def test_the_order_wire_is_the_sdks_and_refuses_what_it_cannot_carry_exactly():
    from fractrade_sync.exchange.rules import Asset, Order

    btc = Asset("BTC", 0, 5, 50)
    order = Order(btc, True, Decimal("0.01234"), Decimal("95123.4"), False, "0x" + "ab" * 16)
    assert order.wire() == {
        "a": 0,
        "b": True,
        "p": "95123.4",
        "s": "0.01234",
        "r": False,
        "t": {"limit": {"tif": "Ioc"}},
        "c": "0x" + "ab" * 16,
    }
    trigger = Order(btc, False, Decimal("2"), Decimal("43650"), True, None, trigger_px=Decimal("48500"), tpsl="sl")
    assert trigger.wire()["t"] == {"trigger": {"isMarket": True, "triggerPx": "48500", "tpsl": "sl"}}
    huge = Order(Asset("PEPE", 9, 0, 5), True, Decimal("472245243.576"), Decimal("0.000012"), False, None)
    with pytest.raises(ValueError, match=r"size 472245243.576 cannot be sent exactly"):
        huge.wire()
