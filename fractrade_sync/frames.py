"""Frame -> Action: parse and validate a Fractrade message (an Action, a Rejection with the reason the user sees, or
Ignored). Never raises."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping, Union

from fractrade_sync.actions import ACTION_IDS, TRADE, Action

MAX_FRAME_BYTES = 1 << 20
MAX_EXCERPT = 300
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_\-]{0,31}$")
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(nan|inf|infinity)$", re.IGNORECASE)
_MS_THRESHOLD = 10_000_000_000  # a timestamp above this is in milliseconds (year 2286 in seconds)


@dataclass(frozen=True)
class Rejection:
    """A frame that is not a valid action; the reason is what the user sees."""

    reason: str
    digest: str
    excerpt: str
    received_at: float
    event_id: str | None = None
    action_id: str | None = None
    symbol: str | None = None

    key = property(lambda self: "rejected:" + self.digest)


@dataclass(frozen=True)
class Ignored:
    """A well-formed message that is not an action (another type)."""

    reason: str


Parsed = Union[Action, Rejection, Ignored]


class _Invalid(Exception):
    """Raised inside the parser; becomes a Rejection."""


def parse_frame(
    frame: str | bytes, received_at: float, mid_of: Callable[[str], Decimal | None] = lambda symbol: None
) -> Parsed:
    """Turn one WebSocket frame into an Action, a Rejection with its reason, or Ignored. Never raises. `mid_of`: a
    coin's mid now (the live feed's; None: not known), kept on the Action as its arrival mid."""
    raw = frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass")
    context: dict[str, str | None] = {}
    try:
        if len(raw) > MAX_FRAME_BYTES:
            raise _Invalid(f"frame too large ({len(raw)} bytes; the limit is {MAX_FRAME_BYTES})")
        message, text = _decode(raw)
        return _parse_message(message, text, received_at, context, mid_of)
    except _Invalid as exc:
        reason = str(exc)
    except Exception as exc:  # a parser bug must never stop the receiver
        reason = f"could not parse: {type(exc).__name__}"
    digest = hashlib.sha256(raw).hexdigest()[:32]
    return Rejection(reason, digest, raw[:MAX_EXCERPT].decode("utf-8", "replace"), received_at, **context)


def _decode(raw: bytes) -> tuple[Any, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid("not UTF-8 text") from None
    try:
        message = _DECODER.decode(text)
    except RecursionError:
        raise _Invalid("not JSON: nested too deeply") from None
    except ArithmeticError:  # decimal.InvalidOperation: an exponent past what a Decimal can hold
        raise _Invalid("not JSON: a number out of range") from None
    except (ValueError, _Invalid) as exc:
        detail = str(exc).split(":")[0] if not isinstance(exc, _Invalid) else str(exc)
        raise _Invalid(f"not JSON: {detail}") from None
    if "\\u" in text and not _encodable(message):  # a \ud800 escape decodes to a string UTF-8 cannot hold
        raise _Invalid("not JSON: a lone surrogate \\u escape")
    return message, text


def _encodable(message: Any) -> bool:
    try:
        json.dumps(message, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not a number")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)  # stateless: shared, built once


def _arrival_mid(mid_of: Callable[[str], Decimal | None], symbol: str) -> Decimal | None:
    """The coin's mid now, or None: a feed that fails never costs the action (the mid is a figure, not a check)."""
    try:
        return mid_of(symbol)
    except Exception:
        return None


def _parse_message(
    message: Any, text: str, received_at: float, context: dict, mid_of: Callable[[str], Decimal | None]
) -> Parsed:
    if not isinstance(message, dict):
        raise _Invalid(f"message is {_type_name(message)}, not an object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise _Invalid("message has no string 'type'")
    if not kind.isascii() or kind.upper() != "ACTION":
        return Ignored(f"message type '{kind[:40]}' is not an action")
    data = _object(message, "data", "data")
    action_id = data.get("action_id")
    if not isinstance(action_id, str) or not action_id.strip():
        raise _Invalid("data.action_id is missing")
    action_id = action_id.strip().lower()
    context["action_id"] = action_id[:80]
    if not action_id.isascii() or action_id not in ACTION_IDS:
        raise _Invalid(f"unknown action '{action_id[:80]}'; expected one of {', '.join(ACTION_IDS)}")
    config = _object(data, "config", "data.config")
    position = _object(config, "position", "config.position")
    metadata = _object(config, "metadata", "config.metadata")
    event_id = _event_id(metadata)
    context["event_id"] = event_id
    symbol = _symbol(position)
    context["symbol"] = symbol
    side = _side(position)
    if action_id == TRADE:
        size = _decimal(position.get("size"), "position.size", required=True)
        trigger = None
        reduce_only = _bool(position.get("reduce_only"), "position.reduce_only")
    else:
        size = _decimal(position.get("size"), "position.size", required=False, zero_ok=True)
        size = None if size is None or size == 0 else size
        trigger = _decimal(position.get("trigger_price"), "position.trigger_price", required=True)
        reduce_only = True
    return Action(
        action_id=action_id,
        symbol=symbol,
        side=side,
        size=size,
        reduce_only=reduce_only,
        trigger_price=trigger,
        event_id=event_id,
        timestamp=_timestamp(metadata.get("timestamp")),
        leverage=_leverage(metadata.get("leverage")),
        ref_price=_info_price(metadata.get("price")),
        server_execution=_bool(metadata.get("server_execution"), "metadata.server_execution"),
        received_at=received_at,
        agent_id=_short_str(metadata.get("agent_id")),
        config=config,
        frame=text,
        arrival_mid=_arrival_mid(mid_of, symbol),
    )


def _type_name(value: Any) -> str:
    """The JSON type of a value, with its article: 'an array', 'a string'."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _object(parent: Mapping, name: str, label: str) -> dict:
    value = parent.get(name)
    if value is None:
        raise _Invalid(f"{label} is missing")
    if not isinstance(value, dict):
        raise _Invalid(f"{label} must be an object, not {_type_name(value)}")
    return value


def _event_id(metadata: Mapping) -> str:
    value = metadata.get("event_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Invalid("metadata.event_id is missing: without it an action cannot be executed exactly once")
    text = str(value).strip()
    if not text or len(text) > 200:
        raise _Invalid("metadata.event_id must be a non-empty string of at most 200 characters")
    return text


def _symbol(position: Mapping) -> str:
    value = position.get("symbol")
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("position.symbol is missing")
    value = value.strip()
    if not _SYMBOL.match(value):
        raise _Invalid(f"position.symbol '{value[:40]}' is not a coin name")
    return value


def _side(position: Mapping) -> str:
    value = position.get("side")
    if not isinstance(value, str) or not value.isascii() or value.strip().upper() not in ("BUY", "SELL"):
        shown = value[:20] if isinstance(value, str) else _type_name(value) if value is not None else "missing"
        raise _Invalid(f"position.side must be BUY or SELL, not '{shown}'")
    return value.strip().upper()


def _decimal(value: Any, label: str, *, required: bool, zero_ok: bool = False) -> Decimal | None:
    if value is None or value == "":
        if required:
            raise _Invalid(f"{label} is missing")
        return None
    kind = type(value)
    if kind is Decimal:  # a JSON number with a fraction or an exponent (parse_float)
        number = value
    elif kind is str:
        text = value.strip()
        if not _NUMBER.match(text):
            raise _Invalid(f"{label} '{value[:30]}' is not a number")
        try:
            number = Decimal(text)
        except (InvalidOperation, ValueError):
            raise _Invalid(f"{label} '{value[:30]}' is not a number") from None
    elif kind is int or kind is float:
        number = Decimal(str(value))
    else:
        raise _Invalid(f"{label} must be a number or a numeric string, not {_type_name(value)}")
    if not number.is_finite():
        raise _Invalid(f"{label} '{str(value)[:30]}' is not a finite number")
    if number < 0 or (number == 0 and not zero_ok):
        raise _Invalid(f"{label} must be greater than 0, not {str(value)[:30]}")
    magnitude = number.adjusted()
    if magnitude > 15 or (magnitude < -18 and number != 0):
        raise _Invalid(f"{label} {str(value)[:30]} is out of range")
    return number


def _bool(value: Any, label: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise _Invalid(f"{label} must be true or false, not {_type_name(value)}")


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    number = _decimal(value, "metadata.timestamp", required=False)
    if number is None:
        return None
    seconds = float(number) / 1000.0 if number > _MS_THRESHOLD else float(number)
    if not math.isfinite(seconds) or seconds < 1_000_000_000 or seconds > time.time() + 86_400:
        raise _Invalid(f"metadata.timestamp {str(value)[:30]} is not a Unix time in seconds or milliseconds")
    return seconds


def _leverage(value: Any) -> int | None:
    if value is None:
        return None
    number = _decimal(value, "metadata.leverage", required=False)
    if number is None:
        return None
    if number != number.to_integral_value() or number < 1 or number > 1000:
        raise _Invalid(f"metadata.leverage must be a whole number from 1 to 1000, not {str(value)[:30]}")
    return int(number)


def _info_price(value: Any) -> Decimal | None:
    """metadata.price is information only: an unusable one is dropped, not fatal."""
    try:
        return _decimal(value, "metadata.price", required=False)
    except _Invalid:
        return None


def _short_str(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)[:100]
    return None
