"""An order's fate asked of the exchange by its cloid: its order record (`orderStatus`), and where that record is gone
(the exchange keeps about the account's last 2000 orders, EXCHANGE.md §4), its fills and the open orders. Once a
request's nonce is spent, `by_cloid` asks over INFO_LAG before "never seen" counts (Unfinished when stopping); what it
finds is laid over the live account view as an answer's would be (`shown_in_account`)."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

from hyperliquid.utils.error import ClientError

from fractrade_sync.actions import Action
from fractrade_sync.backoff import exchange_retries
from fractrade_sync.errors import TransientError, Unfinished
from fractrade_sync.exchange.answers import filled_by, status_outcome
from fractrade_sync.exchange.client import HyperliquidClient
from fractrade_sync.exchange.rules import Order, to_wire
from fractrade_sync.outcome import FILLED, PARTIALLY_FILLED, RESTING, Outcome

if TYPE_CHECKING:  # (the view is handed in)
    from fractrade_sync.feeds.account import AccountView

FOUND_BEYOND = "found on the exchange by cloid in its fills and open orders (its order record is gone)"
# seconds an order the exchange applied may take to show by cloid on /info (an assumption: RELIABILITY.md)
INFO_LAG = 8.0


def lookup(client: HyperliquidClient, action: Action) -> Outcome | None:
    """What the exchange did with this action's cloid; None when it never saw it. Raises TransientError (a 4xx
    too: only the exchange's explicit "unknownOid" counts as unseen)."""

    def filled(oid: int) -> tuple:  # what an order found by cloid filled, from the account's fills (REST userFills)
        try:
            return filled_by(client.fills(), oid)
        except ClientError as exc:
            raise TransientError(f"userFills answered HTTP {exc.status_code}") from None

    try:
        return status_outcome(client.order_status(action.cloid), filled)
    except ClientError as exc:
        raise TransientError(f"orderStatus answered HTTP {exc.status_code}") from None


def beyond_records(client: HyperliquidClient, actions: list[Action], places: list[int]) -> dict[int, Outcome]:
    """The nonce is spent and orderStatus knows no such cloid: the applied order's record may be gone. Its fills
    (userFills carries the cloid) and the open orders outlive it: an order found there was applied (its place in
    `places` -> its outcome); only then is "no effect" concluded."""
    wanted = {a.cloid.lower(): i for a, i in zip(actions, places, strict=True)}
    try:
        fills = client.fills()
        listed = client.rest_open_orders()
    except (TransientError, ClientError) as exc:
        raise TransientError(f"no record by cloid, and the fills could not be read: {exc}") from None
    outcomes: dict[int, Outcome] = {}
    for cloid, i in wanted.items():
        mine = [f for f in fills if str(f.get("cloid") or "").lower() == cloid]
        if mine:
            size, avg = filled_by(mine, mine[0]["oid"])
            outcomes[i] = Outcome(FILLED, f"{FOUND_BEYOND}: filled", mine[0]["oid"], to_wire(size), avg)
        elif any(str(o.get("cloid") or "").lower() == cloid for o in listed):
            oid = next(o["oid"] for o in listed if str(o.get("cloid") or "").lower() == cloid)
            outcomes[i] = Outcome(RESTING, f"{FOUND_BEYOND}: open", oid)
    return outcomes


def by_cloid(
    client: HyperliquidClient,
    actions: list[Action],
    stopping: threading.Event,
    named: str,
    logger: logging.Logger,
    look: Callable[[Action], Outcome | None],
) -> list[Outcome | None]:
    """A request's nonce is spent: its orders were applied, or never will be. Each is asked by cloid over INFO_LAG (an
    applied order may take that long to show); None only when the exchange kept saying it has no such order: it had
    no effect. An unreadable answer is never that: TransientError when the last one could not be read. `look`: how
    one action is asked (the Sender's lookup)."""
    start = time.monotonic()
    delays = exchange_retries().delays()
    found: dict[int, Outcome] = {}
    while True:
        unreadable: TransientError | None = None
        for i, action in enumerate(actions):
            if i in found:
                continue
            try:
                seen = look(action)
            except TransientError as exc:
                unreadable = exc
            else:
                if seen is not None:
                    found[i] = seen
        if len(found) == len(actions):
            return [found[i] for i in range(len(actions))]
        elapsed = time.monotonic() - start
        if elapsed >= INFO_LAG:  # asked again past the lag: this last answer decides
            if unreadable is not None:
                raise unreadable
            missing = [i for i in range(len(actions)) if i not in found]
            found.update(beyond_records(client, [actions[i] for i in missing], missing))
            return [found.get(i) for i in range(len(actions))]
        if unreadable is not None:
            logger.warning("%s: cloid check failed: %s; asking again", named, unreadable)
        if stopping.wait(min(next(delays, 2.0), max(0.05, INFO_LAG - elapsed))):
            raise Unfinished("stopped while asking the exchange by cloid; settled at the next start")


def shown_in_account(
    account: AccountView | None, orders: list[Order], seen: list[Outcome | None], sent_at: float
) -> list[Outcome | None]:
    """Outcomes found by cloid after a lost answer, laid over the live account view as an answer's would be (a stop
    loss right after must see the fill its trade made), as of `sent_at`: when the request was first sent (a snapshot
    that came since may show it already). Returns `seen`."""
    wires = []
    statuses = []
    for order, outcome in zip(orders, seen, strict=True):
        if account is None or outcome is None or outcome.oid is None:
            continue
        if outcome.state in (FILLED, PARTIALLY_FILLED) and outcome.filled_sz:
            statuses.append({"filled": {"totalSz": outcome.filled_sz, "oid": outcome.oid}})
        elif outcome.state == RESTING:
            statuses.append({"resting": {"oid": outcome.oid}})
        else:
            continue
        wires.append(order.wire())
    if account is not None and wires:
        coins = {o.asset.index: o.asset.name for o in orders}
        answer = {"status": "ok", "response": {"data": {"statuses": statuses}}}
        account.applied({"type": "order", "orders": wires}, answer, coins, sent_at)
    return seen
