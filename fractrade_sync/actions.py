"""An action: one validated order instruction from the agent, with the key that makes it execute exactly once and
the cloid its order carries (frames.py reads it from a frame)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType
from typing import Any, Mapping

from fractrade_sync.exchange.rules import canonical

TRADE = "execute_hyperliquid_perp_trade"
STOP_LOSS = "set_hyperliquid_perp_stop_loss"
TAKE_PROFIT = "set_hyperliquid_perp_take_profit"
ACTION_IDS = (TRADE, STOP_LOSS, TAKE_PROFIT)
# how the service names each action (read-only: Action.kind reads it)
KIND_OF = MappingProxyType({TRADE: "trade", STOP_LOSS: "stop_loss", TAKE_PROFIT: "take_profit"})


@dataclass(frozen=True)
class Action:
    """One validated action, with the key that makes it execute exactly once."""

    action_id: str
    symbol: str
    side: str
    size: Decimal | None
    reduce_only: bool
    trigger_price: Decimal | None
    event_id: str
    timestamp: float | None
    leverage: int | None
    ref_price: Decimal | None
    server_execution: bool
    received_at: float
    agent_id: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    frame: str = field(default="", compare=False, repr=False)  # the frame's text, as journaled
    arrival_mid: Decimal | None = field(default=None, compare=False, repr=False)  # its coin's mid as it arrived

    @cached_property  # the frozen dataclass has a __dict__; cached_property writes to it directly
    def key(self) -> str:
        """sha256 of (action_id, event_id, SYMBOL, side, size, trigger_price): 'btc' and 'BTC' are one action."""
        parts = (
            self.action_id,
            self.event_id,
            self.symbol.upper(),
            self.side,
            _canon(self.size),
            _canon(self.trigger_price),
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    @property
    def cloid(self) -> str:
        """The order's client id: the first 16 bytes of the key."""
        return "0x" + self.key[:32]

    @property
    def is_buy(self) -> bool:
        return self.side == "BUY"

    @property
    def kind(self) -> str:
        """trade, stop_loss or take_profit."""
        return KIND_OF[self.action_id]

    def age(self, now: float) -> float:
        """Seconds since the signal was made (its timestamp), else since it was received."""
        return now - (self.timestamp if self.timestamp is not None else self.received_at)

    def describe(self) -> str:
        """A short human label: 'trade BUY 0.01 BTC'."""
        size = _canon(self.size) or "position"
        text = f"{self.kind} {self.side} {size} {self.symbol}"
        if self.trigger_price is not None:
            text += f" @ {_canon(self.trigger_price)}"
        return text


def named(actions: list[Action]) -> str:
    """How log lines name the actions of one request: the first, and how many more."""
    if len(actions) == 1:
        return actions[0].describe()
    return f"{actions[0].describe()} (and {len(actions) - 1} more in the same request)"


def _canon(value: Decimal | None) -> str:
    """Exact canonical text ('0.010' and '0.01' agree; no rounding to the decimal context)."""
    return "" if value is None else canonical(value)
