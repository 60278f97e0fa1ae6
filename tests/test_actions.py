"""Pure tests of frame -> Action parsing (SPEC §5) and the action key (SPEC §6): tables plus hypothesis fuzz."""

from __future__ import annotations

import copy
import json
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fractrade_sync.actions import ACTION_IDS, STOP_LOSS, TAKE_PROFIT, TRADE, Action
from fractrade_sync.frames import MAX_FRAME_BYTES, Ignored, Rejection, parse_frame
from fractrade_sync.outcome import REJECTED
from fractrade_sync.storage.journal import Journal

NOW = 1_732_450_005.0
COIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_\-]{0,31}$")
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EXPECTED_IDS = "execute_hyperliquid_perp_trade, set_hyperliquid_perp_stop_loss, set_hyperliquid_perp_take_profit"


def trade(**position) -> dict:
    """The SPEC §5 trade example, with position fields overridden (None deletes one)."""
    frame = {
        "type": "ACTION",
        "data": {
            "action_id": "execute_hyperliquid_perp_trade",
            "config": {
                "position": {"symbol": "BTC", "size": "0.01", "side": "BUY", "reduce_only": False},
                "metadata": {
                    "event_id": "ev-1",
                    "agent_id": "agent-7",
                    "timestamp": 1732450000,
                    "price": 50000.0,
                    "leverage": 10,
                    "server_execution": False,
                },
            },
        },
    }
    _override(frame["data"]["config"]["position"], position)
    return frame


def protect(action_id: str = "SET_HYPERLIQUID_PERP_STOP_LOSS", **position) -> dict:
    """The SPEC §5 stop-loss example (or take profit), with position fields overridden."""
    frame = {
        "type": "action",
        "data": {
            "action_id": action_id,
            "config": {
                "position": {"symbol": "BTC", "side": "SELL", "trigger_price": "48500"},
                "metadata": {"event_id": "ev-1", "timestamp": 1732450000123},
            },
        },
    }
    _override(frame["data"]["config"]["position"], position)
    return frame


def _override(target: dict, fields: dict) -> None:
    for name, value in fields.items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value


def meta(frame: dict, **fields) -> dict:
    """The frame with metadata fields overridden (None deletes one)."""
    frame = copy.deepcopy(frame)
    _override(frame["data"]["config"]["metadata"], fields)
    return frame


def dump(frame: object) -> str:
    return json.dumps(frame, default=str)


def parse(frame: object) -> Action | Rejection | Ignored:
    return parse_frame(frame if isinstance(frame, (str, bytes)) else dump(frame), NOW)


def action(frame: object) -> Action:
    result = parse(frame)
    assert isinstance(result, Action), result
    return result


def reason(frame: object) -> str:
    result = parse(frame)
    assert isinstance(result, Rejection), result
    return result.reason


# ---- the SPEC §5 examples ------------------------------------------------------------------------


def test_trade_example_fields():
    got = action(trade())
    assert got.action_id == TRADE and got.kind == "trade"
    assert (got.symbol, got.side, got.size, got.reduce_only) == ("BTC", "BUY", Decimal("0.01"), False)
    assert isinstance(got.size, Decimal)
    assert got.trigger_price is None
    assert (got.event_id, got.agent_id) == ("ev-1", "agent-7")
    assert got.timestamp == 1732450000.0
    assert got.leverage == 10
    assert got.ref_price == Decimal("50000.0") and isinstance(got.ref_price, Decimal)
    assert got.server_execution is False
    assert got.received_at == NOW
    assert got.is_buy
    assert got.age(NOW) == pytest.approx(5.0)
    assert got.describe() == "trade BUY 0.01 BTC"
    assert got.config["position"]["symbol"] == "BTC"


def test_an_action_keeps_its_coins_mid_as_it_arrived_and_a_failing_feed_costs_nothing():
    frame = json.dumps(trade())
    assert parse_frame(frame, NOW).arrival_mid is None  # (no feed: not known)
    assert parse_frame(frame, NOW, lambda coin: {"BTC": Decimal("50010")}.get(coin)).arrival_mid == Decimal("50010")

    def broken(coin: str) -> Decimal | None:
        raise RuntimeError("the feed is broken")

    got = parse_frame(frame, NOW, broken)
    assert isinstance(got, Action) and got.arrival_mid is None and got.key == action(trade()).key


def test_stop_loss_example_fields():
    got = action(protect())
    assert got.action_id == STOP_LOSS and got.kind == "stop_loss"
    assert (got.symbol, got.side, got.size) == ("BTC", "SELL", None)
    assert got.trigger_price == Decimal("48500") and isinstance(got.trigger_price, Decimal)
    assert got.reduce_only is True
    assert got.timestamp == pytest.approx(1732450000.123)
    assert (got.leverage, got.ref_price, got.agent_id) == (None, None, None)
    assert not got.is_buy
    assert got.describe() == "stop_loss SELL position BTC @ 48500"


def test_take_profit_with_size():
    got = action(protect("set_hyperliquid_perp_take_profit", side="buy", trigger_price=51000.5, size="0.5"))
    assert (got.action_id, got.kind) == (TAKE_PROFIT, "take_profit")
    assert (got.side, got.size, got.trigger_price) == ("BUY", Decimal("0.5"), Decimal("51000.5"))
    assert got.describe() == "take_profit BUY 0.5 BTC @ 51000.5"


@pytest.mark.parametrize("size", [None, 0, "0", "0.000", "", -0.0])
def test_protective_size_absent_or_zero_means_whole_position(size):
    frame = protect(size=size) if size is not None else protect()
    assert action(frame).size is None


@pytest.mark.parametrize("kind", ["ACTION", "action", "Action", "aCtIoN"])
@pytest.mark.parametrize(
    "action_id",
    ["execute_hyperliquid_perp_trade", "EXECUTE_HYPERLIQUID_PERP_TRADE", " Execute_Hyperliquid_Perp_Trade "],
)
@pytest.mark.parametrize("side", ["BUY", "buy", "Buy", " bUy "])
def test_type_action_id_and_side_are_case_insensitive(kind, action_id, side):
    frame = trade(side=side)
    frame["type"] = kind
    frame["data"]["action_id"] = action_id
    got = action(frame)
    assert (got.action_id, got.side) == (TRADE, "BUY")
    assert got.key == action(trade()).key


@pytest.mark.parametrize(
    "stamp, seconds",
    [
        (1732450000, 1732450000.0),
        (1732450000123, 1732450000.123),
        (1732450000.5, 1732450000.5),
        ("1732450000", 1732450000.0),
        ("1732450000123", 1732450000.123),
    ],
)
def test_timestamp_seconds_or_milliseconds(stamp, seconds):
    assert action(meta(trade(), timestamp=stamp)).timestamp == pytest.approx(seconds)


@pytest.mark.parametrize(
    "stamp", [10_000_000_000, 1_732_450_000_123_456, time.time() + 2 * 86_400], ids=["s", "us", "2d"]
)
def test_far_future_timestamps_are_rejected(stamp):
    # year 2286 in seconds, microseconds read as milliseconds, two days ahead: it would never expire
    got = parse_frame(dump(meta(trade(), timestamp=stamp)), NOW)
    assert isinstance(got, Rejection) and "is not a Unix time in seconds or milliseconds" in got.reason


def test_missing_timestamp_ages_from_receipt():
    got = action(meta(trade(), timestamp=None))
    assert got.timestamp is None
    assert got.age(NOW + 7) == pytest.approx(7.0)


@pytest.mark.parametrize("flag", [True, False])
def test_server_execution(flag):
    assert action(meta(trade(), server_execution=flag)).server_execution is flag
    assert action(meta(trade(), server_execution=None)).server_execution is False


@pytest.mark.parametrize("size", ["0.01", 0.01, "0.010", " 0.01 ", "1e-2", "1E-2", "0.0100000"])
def test_size_string_or_number_is_an_exact_decimal(size):
    got = action(trade(size=size))
    assert got.size == Decimal("0.01") and isinstance(got.size, Decimal)


@pytest.mark.parametrize("price", ["oops", True, [1], -5, 0, {"a": 1}])
def test_unusable_reference_price_is_dropped_not_fatal(price):
    assert action(meta(trade(), price=price)).ref_price is None


def test_reduce_only_and_integer_event_id_and_leverage_string():
    got = action(meta(trade(reduce_only=True), event_id=12345, leverage="20.0"))
    assert got.reduce_only is True
    assert got.event_id == "12345"
    assert got.leverage == 20


@pytest.mark.parametrize("symbol", ["BTC", "kPEPE", "HYPE", "xyz:TSLA", "1INCH", " ETH "])
def test_coin_names(symbol):
    assert action(trade(symbol=symbol)).symbol == symbol.strip()


@pytest.mark.parametrize(
    "frame",
    [{"type": "ping"}, {"type": "pong", "data": 1}, {"type": "subscribed", "data": {"action_id": "x"}}, {"type": ""}],
)
def test_other_message_types_are_ignored(frame):
    result = parse(frame)
    assert isinstance(result, Ignored)
    assert result.reason == f"message type '{frame['type']}' is not an action"


# ---- the action key and cloid ----------------------------------------------------------------------


BARE = dump(trade())


@pytest.mark.parametrize("text", [BARE, "  " + BARE + "\r\n", "\n" + BARE, BARE + " "])
def test_blanks_around_the_object_are_allowed_and_change_nothing(text):
    """The C scanner takes a bare object; with blanks around it, json's own decode does, to the same Action."""
    parsed = parse(text)
    assert isinstance(parsed, Action) and parsed == parse(BARE) and parsed.key == parse(BARE).key


def test_key_is_stable_and_hex():
    first, second = action(trade()), parse_frame(dump(trade()).encode(), NOW + 100)
    assert first.key == second.key
    assert re.fullmatch(r"[0-9a-f]{64}", first.key)
    assert re.fullmatch(r"0x[0-9a-f]{32}", first.cloid)
    assert first.cloid == "0x" + first.key[:32]


def test_key_is_pinned():
    """The key survives restarts, so its formula must not drift (sha256 of the \\x1f-joined canonical fields)."""
    import hashlib

    expected = hashlib.sha256("\x1f".join([TRADE, "ev-1", "BTC", "BUY", "0.01", ""]).encode()).hexdigest()
    assert action(trade()).key == expected


@pytest.mark.parametrize("size", ["0.010", "0.01", 0.01, "1e-2", "0.0100", "00.01"])
def test_key_uses_canonical_decimals(size):
    assert action(trade(size=size)).key == action(trade(size="0.01")).key


@pytest.mark.parametrize("trigger", ["48500", "48500.0", 48500, "4.85e4", 48500.000])
def test_key_canonical_trigger(trigger):
    assert action(protect(trigger_price=trigger)).key == action(protect()).key


def test_key_ignores_fields_outside_the_identity():
    base = action(trade()).key
    assert action(meta(trade(), agent_id="other", timestamp=1732459999, price=1, leverage=3)).key == base
    assert action(trade(reduce_only=True)).key == base
    assert parse_frame(dump(trade()), NOW + 50).key == base


@pytest.mark.parametrize(
    "other",
    [
        protect(size="0.01", trigger_price="1"),  # another action_id
        meta(trade(), event_id="ev-2"),
        trade(symbol="ETH"),
        trade(side="SELL"),
        trade(size="0.02"),
        trade(size="0.0100001"),
        trade(size="100"),
    ],
    ids=["action_id", "event_id", "symbol", "side", "size", "size-tiny", "size-100"],
)
def test_key_differs_when_an_identity_field_differs(other):
    assert action(other).key != action(trade()).key
    assert action(other).cloid != action(trade()).cloid


def test_key_differs_for_trigger_and_protective_size():
    base = action(protect())
    assert action(protect(trigger_price="48501")).key != base.key
    assert action(protect(size="0.01")).key != base.key
    assert action(protect("set_hyperliquid_perp_take_profit")).key != base.key


def test_key_separates_fields_unambiguously():
    """'AB'+'C' and 'A'+'BC' must not collide: the fields are joined with a separator."""
    one = action(meta(trade(symbol="TC"), event_id="ev-1B"))
    two = action(meta(trade(symbol="BTC"), event_id="ev-1"))
    assert one.key != two.key


@given(
    a=st.decimals(min_value=Decimal("1e-8"), max_value=Decimal("1e9"), places=8),
    b=st.decimals(min_value=Decimal("1e-8"), max_value=Decimal("1e9"), places=8),
)
@settings(max_examples=200, deadline=None)
def test_key_equal_iff_sizes_equal(a, b):
    ka, kb = action(trade(size=str(a))).key, action(trade(size=str(b))).key
    assert (ka == kb) == (a == b)


def test_key_differs_for_sizes_beyond_28_significant_digits():
    one = action(trade(size="1.0000000000000000000000000001"))
    two = action(trade(size="1"))
    assert one.size != two.size
    assert one.key != two.key


# ---- rejections: the exact reasons the user sees --------------------------------------------------

DEEP = "[" * 100_000
NO_EVENT = "metadata.event_id is missing: without it an action cannot be executed exactly once"
TOO_BIG = b'{"type": "ping", "pad": "' + b"x" * MAX_FRAME_BYTES + b'"}'

REASONS = [
    # frame level
    (b"\xff\xfe\x00", "not UTF-8 text"),
    (b'{"type": "action", "x": "\xc3"}', "not UTF-8 text"),
    ("\ud800", "not UTF-8 text"),  # a lone surrogate cannot be UTF-8 encoded
    (TOO_BIG, f"frame too large ({len(TOO_BIG)} bytes; the limit is {MAX_FRAME_BYTES})"),
    (DEEP, "not JSON: nested too deeply"),
    ('{"a": NaN}', "not JSON: NaN is not a number"),
    ('{"a": Infinity}', "not JSON: Infinity is not a number"),
    ('{"a": -Infinity}', "not JSON: -Infinity is not a number"),
    (dump(trade()).replace('"0.01"', "NaN"), "not JSON: NaN is not a number"),
    ("", "not JSON: Expecting value"),
    ("{", "not JSON: Expecting property name enclosed in double quotes"),
    ('{"a": 1} x', "not JSON: Extra data"),
    ('{"a": 1}}', "not JSON: Extra data"),  # starts and ends like one object: the scanner's fast path
    ('{"a": 1} {"b": 2}', "not JSON: Extra data"),
    ('{"a": [1, 2}', "not JSON: Expecting ',' delimiter"),
    ('{"a": tru}', "not JSON: Expecting value"),
    ('{"a": 1e999999999999999999999}', "not JSON: a number out of range"),
    ("{'type': 'action'}", "not JSON: Expecting property name enclosed in double quotes"),
    ('{"a": ' + "9" * 5000 + "}", "not JSON: Exceeds the limit (4300 digits) for integer string conversion"),
    # message level
    ("null", "message is null, not an object"),
    ("[]", "message is an array, not an object"),
    ('"ACTION"', "message is a string, not an object"),
    ("1.5", "message is a number, not an object"),
    ("true", "message is a boolean, not an object"),
    ("{}", "message has no string 'type'"),
    ('{"type": 1}', "message has no string 'type'"),
    ('{"type": ["ACTION"]}', "message has no string 'type'"),
    ({"type": "ACTION"}, "data is missing"),
    ({"type": "ACTION", "data": []}, "data must be an object, not an array"),
    ({"type": "ACTION", "data": {}}, "data.action_id is missing"),
    ({"type": "ACTION", "data": {"action_id": "  "}}, "data.action_id is missing"),
    ({"type": "ACTION", "data": {"action_id": 7}}, "data.action_id is missing"),
    (
        {"type": "ACTION", "data": {"action_id": "close_everything"}},
        f"unknown action 'close_everything'; expected one of {EXPECTED_IDS}",
    ),
    ({"type": "ACTION", "data": {"action_id": TRADE}}, "data.config is missing"),
    ({"type": "ACTION", "data": {"action_id": TRADE, "config": "x"}}, "data.config must be an object, not a string"),
    ({"type": "ACTION", "data": {"action_id": TRADE, "config": {}}}, "config.position is missing"),
    (
        {"type": "ACTION", "data": {"action_id": TRADE, "config": {"position": {}, "metadata": 3}}},
        "config.metadata must be an object, not a number",
    ),
    # metadata
    (meta(trade(), event_id=None), NO_EVENT),
    (meta(trade(), event_id=True), NO_EVENT),
    (meta(trade(), event_id=1.5), NO_EVENT),
    (meta(trade(), event_id="  "), "metadata.event_id must be a non-empty string of at most 200 characters"),
    (meta(trade(), event_id="e" * 201), "metadata.event_id must be a non-empty string of at most 200 characters"),
    (meta(trade(), timestamp="soon"), "metadata.timestamp 'soon' is not a number"),
    (meta(trade(), timestamp=True), "metadata.timestamp must be a number or a numeric string, not a boolean"),
    (meta(trade(), timestamp=12345), "metadata.timestamp 12345 is not a Unix time in seconds or milliseconds"),
    (meta(trade(), timestamp=0), "metadata.timestamp must be greater than 0, not 0"),
    (meta(trade(), timestamp=-1732450000), "metadata.timestamp must be greater than 0, not -1732450000"),
    (meta(trade(), timestamp="1e400"), "metadata.timestamp 1e400 is out of range"),
    (meta(trade(), leverage=2.5), "metadata.leverage must be a whole number from 1 to 1000, not 2.5"),
    (meta(trade(), leverage=1001), "metadata.leverage must be a whole number from 1 to 1000, not 1001"),
    (meta(trade(), leverage=0), "metadata.leverage must be greater than 0, not 0"),
    (meta(trade(), leverage=False), "metadata.leverage must be a number or a numeric string, not a boolean"),
    (meta(trade(), server_execution="yes"), "metadata.server_execution must be true or false, not a string"),
    (meta(trade(), server_execution=1), "metadata.server_execution must be true or false, not a number"),
    # position
    (trade(symbol=None), "position.symbol is missing"),
    (trade(symbol=""), "position.symbol is missing"),
    (trade(symbol=42), "position.symbol is missing"),
    (trade(symbol="₿TC"), "position.symbol '₿TC' is not a coin name"),
    (trade(symbol="ＢＴＣ"), "position.symbol 'ＢＴＣ' is not a coin name"),
    (trade(symbol="BTC/USD"), "position.symbol 'BTC/USD' is not a coin name"),
    (trade(symbol="BTC USD"), "position.symbol 'BTC USD' is not a coin name"),
    (trade(symbol="-BTC"), "position.symbol '-BTC' is not a coin name"),
    (trade(symbol="A" * 33), f"position.symbol '{'A' * 33}' is not a coin name"),
    (trade(side=None), "position.side must be BUY or SELL, not 'missing'"),
    (trade(side="LONG"), "position.side must be BUY or SELL, not 'LONG'"),
    (trade(side=1), "position.side must be BUY or SELL, not 'a number'"),
    (trade(side=True), "position.side must be BUY or SELL, not 'a boolean'"),
    (trade(side=["BUY"]), "position.side must be BUY or SELL, not 'an array'"),
    (trade(side="ＢＵＹ"), "position.side must be BUY or SELL, not 'ＢＵＹ'"),
    (trade(size=None), "position.size is missing"),
    (trade(size=""), "position.size is missing"),
    (trade(size=True), "position.size must be a number or a numeric string, not a boolean"),
    (trade(size=[1]), "position.size must be a number or a numeric string, not an array"),
    (trade(size={"v": 1}), "position.size must be a number or a numeric string, not an object"),
    (trade(size="abc"), "position.size 'abc' is not a number"),
    (trade(size="0x10"), "position.size '0x10' is not a number"),
    (trade(size="NaN"), "position.size 'NaN' is not a finite number"),
    (trade(size="-Infinity"), "position.size '-Infinity' is not a finite number"),
    (trade(size="-1"), "position.size must be greater than 0, not -1"),
    (trade(size=0), "position.size must be greater than 0, not 0"),
    (trade(size="0.000"), "position.size must be greater than 0, not 0.000"),
    (trade(size="1e400"), "position.size 1e400 is out of range"),
    (dump(trade()).replace('"0.01"', "1e400"), "position.size 1E+400 is out of range"),
    (trade(size=10**16), "position.size 10000000000000000 is out of range"),
    (trade(size="1e-19"), "position.size 1e-19 is out of range"),
    (trade(reduce_only="true"), "position.reduce_only must be true or false, not a string"),
    (trade(reduce_only=0), "position.reduce_only must be true or false, not a number"),
    (protect(trigger_price=None), "position.trigger_price is missing"),
    (protect(trigger_price=0), "position.trigger_price must be greater than 0, not 0"),
    (protect(trigger_price="-48500"), "position.trigger_price must be greater than 0, not -48500"),
    (protect(trigger_price=True), "position.trigger_price must be a number or a numeric string, not a boolean"),
    (protect(trigger_price="Infinity"), "position.trigger_price 'Infinity' is not a finite number"),
    (protect(size="-0.5"), "position.size must be greater than 0, not -0.5"),
    (protect(size=False), "position.size must be a number or a numeric string, not a boolean"),
]


@pytest.mark.parametrize("frame, expected", REASONS, ids=[f"r{i:02d}" for i in range(len(REASONS))])
def test_rejection_reasons(frame, expected):
    result = parse(frame)
    assert isinstance(result, Rejection), result
    assert result.reason == expected
    assert result.received_at == NOW
    assert re.fullmatch(r"[0-9a-f]{32}", result.digest)
    assert result.key == "rejected:" + result.digest
    assert len(result.excerpt) <= 300


def test_rejection_count_covers_the_brief():
    assert len({expected for _, expected in REASONS}) >= 25


def test_frame_of_exactly_the_limit_is_parsed():
    frame = dump(trade()).encode()
    padded = frame[:-1] + b" " * (MAX_FRAME_BYTES - len(frame)) + b"}"
    assert len(padded) == MAX_FRAME_BYTES
    assert isinstance(parse_frame(padded, NOW), Action)
    assert parse_frame(padded + b" ", NOW).reason.startswith("frame too large")


def test_frame_size_limit_counts_utf8_bytes_of_text():
    text = "€" * (MAX_FRAME_BYTES // 3 + 1)  # fewer characters than the limit, more bytes
    assert len(text) < MAX_FRAME_BYTES
    assert (
        parse_frame(text, NOW).reason == f"frame too large ({len(text.encode())} bytes; the limit is {MAX_FRAME_BYTES})"
    )


def test_rejection_carries_what_is_known():
    bad_side = parse(meta(trade(side="LONG"), event_id="ev-9"))
    assert (bad_side.action_id, bad_side.event_id, bad_side.symbol) == (TRADE, "ev-9", "BTC")
    bad_id = parse({"type": "action", "data": {"action_id": "Frobnicate"}})
    assert (bad_id.action_id, bad_id.event_id, bad_id.symbol) == ("frobnicate", None, None)
    assert parse("{").action_id is None


def test_rejection_digest_identifies_the_frame():
    one, two = parse(trade(side="LONG")), parse(trade(side="LONG"))
    assert one.digest == two.digest
    assert parse(trade(side="SHORT")).digest != one.digest
    assert parse_frame(dump(trade(side="LONG")).encode(), NOW).digest == one.digest


def test_excerpt_is_short_and_readable_for_binary():
    result = parse_frame(b"\xff" * 5000, NOW)
    assert result.excerpt == "\ufffd" * 300


# ---- fuzz -------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["0", "-0", "1e400", "1e-400", "NaN", "0.01", "BUY", "sell", "BTC", "", " ", "1732450000123"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

PATHS = [
    (),
    ("type",),
    ("data",),
    ("data", "action_id"),
    ("data", "config"),
    ("data", "config", "position"),
    ("data", "config", "metadata"),
    *[("data", "config", "position", f) for f in ("symbol", "size", "side", "reduce_only", "trigger_price", "x")],
    *[
        ("data", "config", "metadata", f)
        for f in ("event_id", "agent_id", "timestamp", "price", "leverage", "server_execution", "x")
    ],
]


def check_action(got: Action) -> None:
    """Every invariant an Action promises the worker."""
    assert got.action_id in ACTION_IDS
    assert got.side in ("BUY", "SELL")
    assert COIN.match(got.symbol)
    assert isinstance(got.event_id, str) and 0 < len(got.event_id) <= 200
    if got.action_id == TRADE:
        assert isinstance(got.size, Decimal) and got.size.is_finite() and got.size > 0
        assert got.trigger_price is None
    else:
        assert got.size is None or (got.size.is_finite() and got.size > 0)
        assert isinstance(got.trigger_price, Decimal) and got.trigger_price.is_finite() and got.trigger_price > 0
        assert got.reduce_only is True
    assert isinstance(got.reduce_only, bool) and isinstance(got.server_execution, bool)
    assert got.leverage is None or (type(got.leverage) is int and 1 <= got.leverage <= 1000)
    assert got.timestamp is None or got.timestamp >= 1_000_000_000
    assert got.ref_price is None or got.ref_price > 0
    assert re.fullmatch(r"[0-9a-f]{64}", got.key)
    assert re.fullmatch(r"0x[0-9a-f]{32}", got.cloid)
    assert isinstance(got.describe(), str)


def check_parsed(result: object) -> None:
    assert isinstance(result, (Action, Rejection, Ignored))
    if isinstance(result, Action):
        check_action(result)
    elif isinstance(result, Rejection):
        assert isinstance(result.reason, str) and result.reason
        assert not result.reason.startswith("could not parse"), result.reason  # a parser bug, not a reason


@given(st.binary(max_size=2000))
@settings(max_examples=250, deadline=None)
def test_fuzz_bytes_never_raise(frame):
    check_parsed(parse_frame(frame, NOW))


@given(st.text(max_size=2000))
@settings(max_examples=250, deadline=None)
def test_fuzz_text_never_raises(frame):
    check_parsed(parse_frame(frame, NOW))


def _insert(frame: dict, path: tuple, value: object) -> object:
    if not path:
        return value
    node = frame
    for name in path[:-1]:
        if not isinstance(node, dict):
            return frame
        node = node.setdefault(name, {})
    if isinstance(node, dict):
        node[path[-1]] = value
    return frame


def mutated_frames():
    base = st.sampled_from([trade(), protect(), protect("set_hyperliquid_perp_take_profit", size="0.3")])
    return st.builds(lambda f, p, v: _insert(copy.deepcopy(f), p, v), base, st.sampled_from(PATHS), JSON_VALUES)


@given(mutated_frames())
@settings(max_examples=300, deadline=None)
def test_fuzz_values_anywhere_in_a_valid_frame(frame):
    check_parsed(parse_frame(dump(frame), NOW))


@given(st.integers(min_value=1, max_value=3000), st.sampled_from(PATHS[1:]))
@settings(max_examples=40, deadline=None)
def test_fuzz_deep_nesting_anywhere(depth, path):
    frame = dump(_insert(trade(), path, "@deep@"))
    frame = frame.replace('"@deep@"', "[" * depth + "]" * depth)
    check_parsed(parse_frame(frame, NOW))


@pytest.fixture
def journal(tmp_path: Path):
    """One journal for all of a test's hypothesis examples (a repeated example finds its row already there)."""
    journal = Journal(tmp_path / "state" / "journal.sqlite3")
    journal.rejects_per_minute = 10**9  # every example's rejection is journaled (a service keeps 100 a minute)
    yield journal
    journal.close()


@given(frame=mutated_frames())
@FUZZ
def test_fuzz_journal_round_trip(journal: Journal, frame):
    text = dump(frame)
    result = parse_frame(text, NOW)
    if isinstance(result, Action):
        known = journal.get(result.key) is not None
        assert journal.admit(result) is (not known)
        journal.enqueued(result)
        assert journal.admit(result) is False
        row = journal.get(result.key)
        assert (row["cloid"], row["symbol"], row["side"]) == (result.cloid, result.symbol, result.side)
        assert row["state"] == "received"
    elif isinstance(result, Rejection):
        known = journal.get(result.key) is not None
        assert journal.reject(result) is (not known)
        assert journal.reject(result) is False
        row = journal.get(result.key)
        assert (row["state"], row["reason"]) == (REJECTED, result.reason)


@given(frame=st.binary(max_size=400) | st.text(max_size=400))
@FUZZ
def test_fuzz_journal_takes_every_rejection_of_raw_frames(journal: Journal, frame):
    result = parse_frame(frame, NOW)
    assume(isinstance(result, Rejection))
    journal.reject(result)
    assert journal.get(result.key)["state"] == REJECTED


# ---- unicode that JSON can carry but UTF-8 cannot: lone surrogates as \\u escapes -------------------


def test_lone_surrogate_in_event_id_is_rejected_or_keyed(journal: Journal):
    text = dump(trade()).replace('"ev-1"', '"\\ud800"')
    result = parse_frame(text, NOW)
    if isinstance(result, Action):
        assert re.fullmatch(r"[0-9a-f]{64}", result.key)
        assert journal.admit(result) is True
        journal.enqueued(result)
        assert journal.get(result.key)["frame"] == text
    else:
        assert isinstance(result, Rejection)
        assert journal.reject(result) is True


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "action", "data": {"action_id": "\\udc00x"}}',
        dump(trade()).replace('"BUY"', '"\\udc00"'),
        dump(trade()).replace('"BTC"', '"B\\udc00"'),
    ],
    ids=["action_id", "side", "symbol"],
)
def test_lone_surrogate_rejection_can_be_journaled(journal: Journal, text):
    result = parse_frame(text, NOW)
    assert isinstance(result, Rejection)
    assert journal.reject(result) is True
    result.reason.encode("utf-8")


@pytest.mark.parametrize(
    "frame,reason",
    [
        (trade(side="ſell"), "position.side must be BUY or SELL, not 'ſell'"),
        (trade(size="０.０１"), "position.size '０.０１' is not a number"),
        (trade(size="1_000"), "position.size '1_000' is not a number"),
    ],
)
def test_look_alike_characters_are_not_accepted(frame, reason):
    got = parse_frame(dump(frame), NOW)
    assert isinstance(got, Rejection) and got.reason == reason


def test_look_alike_type_is_not_an_action():
    frame = trade()
    frame["type"] = "actıon"  # dotless i
    assert isinstance(parse_frame(dump(frame), NOW), Ignored)
