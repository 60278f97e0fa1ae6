"""The hooks a user's executor overrides (the seed's handle_* names), what each is given (`ActionConfig`) and what it
produces: a plan, recorded on the action's own `Handling` (an order to send with its wave, or an outcome without
one). The stock hooks and a user's run the same way: the pipeline sends every planned order of a wave together."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from typing import Any, Callable

from fractrade_sync.actions import Action
from fractrade_sync.errors import ConfigError
from fractrade_sync.exchange.rules import Order
from fractrade_sync.outcome import Outcome
from fractrade_sync.storage.journal_table import Resumed

Hook = Callable[["ActionConfig"], Any]
# kind -> the seed's name of its hook, the executor's overridable handle_* method
HOOKS = {
    "trade": "handle_hyperliquid_perp_trade",
    "stop_loss": "handle_set_hyperliquid_perp_stop_loss",
    "take_profit": "handle_set_hyperliquid_perp_take_profit",
}


class Stage(enum.Enum):
    """Where a Handling stands in its wave."""

    NEW = "new"  # not planned yet
    HOOKING = "hooking"  # its hook runs
    PLANNED = "planned"  # its hook returned
    WAITING = "waiting"  # its order waits for the wave's request
    SENDING = "sending"  # its order is being sent


COROUTINE_RETURNED = (
    "the hook returned a coroutine (nothing was executed); for async hooks use "
    "`from fractrade_sync.aio import FractradeExecutor`"
)


class ActionConfig(dict):
    """The action's raw `config` dict (the seed's hook argument), carrying the parsed Action. A copy, all the way
    down: the hook may change it in place, and the action's own config still says what came."""

    def __init__(self, action: Action):
        super().__init__(_copy(action.config))
        self.action = action


def _nowhere(handling: Handling | None) -> None:
    raise RuntimeError("this action's wave sends its orders only while its hook runs")


@dataclasses.dataclass(eq=False)
class Handling:
    """One action's way through a wave, its own (never shared between actions): the item as queued, whether a trade
    on its coin goes first in the same request, and the plan its hook made: the action as the hook passed it on
    (same key and cloid), its order and a note for its outcome."""

    item: Action | Resumed
    original: Action = dataclasses.field(init=False)  # the action as it came
    action: Action = dataclasses.field(init=False)  # what executes: as its hook changed it (same key), else as it came
    after_trade: bool = False
    order: Order | None = None
    note: str = ""
    concluded: bool = False  # journaled and reported
    # sends what its wave planned before it now (and, given, this handling's order too): its wave's, given at creation
    send_planned: Callable[[Handling | None], None] = _nowhere
    stage: Stage = Stage.NEW
    sent: Outcome | None = None  # what became of its order, once it was sent
    planned_order: PlannedOrder | None = None  # what the stock hook returned for it

    def __post_init__(self) -> None:
        self.original = self.action = self.item.action if isinstance(self.item, Resumed) else self.item

    def __repr__(self) -> str:
        planned = f"order planned ({self.action.describe()})" if self.order is not None else "no order planned"
        return f"<Handling {self.original.describe()}: {planned}>"


class PlannedOrder:
    """What a stock hook returns: the action's order, planned, which goes out with its wave once the hook returns it.
    Reading a field of its outcome (state, reason, oid, filled_sz, ...) sends it at once, with what its wave planned
    before it, so that a hook that looks at what its parent did sees the exchange's answer."""

    def __init__(self, handling: Handling):
        self._handling = handling

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        handling = self._handling
        if handling.sent is None and handling.stage == Stage.HOOKING:  # its own hook asks: its order goes now
            handling.send_planned(handling)
        elif handling.sent is None and handling.stage == Stage.WAITING:  # another action's hook asks: the wave goes now
            handling.send_planned(None)
        if handling.sent is None:
            raise RuntimeError(f"{handling.action.describe()}: its order was not sent (its hook did not return it)")
        return getattr(handling.sent, name)

    def __repr__(self) -> str:
        handling = self._handling
        return f"<PlannedOrder {handling.action.describe()}: {handling.sent or 'sent with its wave'}>"


_NESTED = (dict, list)


def _copy(value: dict | list) -> dict | list:
    """A JSON object's or array's copy, all the way down (strings, numbers, Decimals are immutable)."""
    if isinstance(value, dict):
        return {name: _copy(item) if isinstance(item, _NESTED) else item for name, item in value.items()}
    return [_copy(item) if isinstance(item, _NESTED) else item for item in value]


def with_identity(action: Action, original: Action) -> Action:
    """`action` as a hook changed it, with the identity of the action it handles: its key (and so its cloid), event,
    timestamp, receive time and frame. The journal, the duplicate check and the exchange's cloid all see one action,
    whatever the hook changed."""
    same = dataclasses.replace(
        action,
        event_id=original.event_id,
        timestamp=original.timestamp,
        received_at=original.received_at,
        frame=original.frame,
        arrival_mid=original.arrival_mid,
    )
    vars(same)["key"] = original.key  # Action.key is a cached_property: the key is its identity, the cloid its prefix
    if same.key != original.key or same.cloid != original.cloid:
        raise RuntimeError(
            "Action.key is no longer a cached_property: a hook's changed config cannot keep the "
            "action's identity; nothing was sent"
        )
    return same


def refuse_coroutine_hooks(executor: object) -> None:
    """ConfigError when a synchronous executor has an `async def` hook (its coroutine would never run)."""
    names = [name for name in HOOKS.values() if inspect.iscoroutinefunction(getattr(executor, name))]
    if names:
        where = type(executor).__name__ + "." + ", ".join(names)
        raise ConfigError(
            where,
            "an `async def` hook needs the asyncio face of the service: use `from "
            "fractrade_sync.aio import FractradeExecutor` (this class calls its hooks "
            "synchronously on the worker thread)",
        )


def hooks_of(executor: object) -> dict[str, Hook]:
    """kind -> the executor's handle_* method (the stock one, or the user's override)."""
    return {kind: getattr(executor, name) for kind, name in HOOKS.items()}
