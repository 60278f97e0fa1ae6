"""A wave's orders sent as the requests the exchange takes (`Requests`: which ones, requests.py), each exactly once, by
the exchange's own guarantees and never by this machine's clock (`Sender`).

Hyperliquid applies a nonce once per signer: an uncertain failure (a timeout, a lost answer, a 5xx) resends the
identical signed order, and the exchange's answer to it is the truth. When resending cannot decide (the order
expired, the exchange stays unreachable), a noop with the order's nonce does: taken, the order can never land;
refused as used, it landed and is found by cloid. Only then is a new order signed."""

from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from hyperliquid.utils.signing import order_wires_to_order_action

from fractrade_sync.actions import Action, named
from fractrade_sync.config.settings import Settings
from fractrade_sync.errors import TransientError, Unfinished, Unwritable
from fractrade_sync.exchange.answers import error_text, order_outcome
from fractrade_sync.exchange.client import HyperliquidClient
from fractrade_sync.exchange.delivery import HttpRefused, NonceSpent, NotTaken, Took, deliver, deliver_noop
from fractrade_sync.exchange.endpoint import Endpoint
from fractrade_sync.exchange.rules import Order, grouping
from fractrade_sync.exchange.signing import ActionSigner
from fractrade_sync.execution.hooks import Handling
from fractrade_sync.execution.records import by_cloid, lookup, shown_in_account
from fractrade_sync.execution.requests import refused_together, requests_of
from fractrade_sync.outcome import (
    EXPIRED,
    FAILED,
    REJECTED,
    SKIPPED,
    UNKNOWN,
    Outcome,
    unknown_outcome,
)
from fractrade_sync.storage.journal import Journal

log = logging.getLogger("fractrade_sync")
FRESH_ORDERS = 2  # orders signed for one action at most: a second only once the first is certainly not applied
NOT_FOUND = "not executed: the exchange shows no order with its cloid"


@dataclass(frozen=True)
class NotApplied:
    """An order of a request certainly not applied, and now never can be: signed afresh in the next round, or FAILED
    with `why` when no round is left."""

    why: str


@dataclass(frozen=True)
class Sent:
    """A request's orders, sent: each one's outcome, and why the journal could not be written when that stopped a
    round before its request left (None: it could)."""

    outcomes: list[Outcome]
    unwritable: str | None = None


class Sender:
    """Sends an action's order on the worker thread; every path ends in an Outcome, Unfinished or TransientError."""

    def __init__(
        self,
        settings: Settings,
        client: HyperliquidClient,
        signing: ActionSigner,
        endpoint: Endpoint,
        journal: Journal,
        logger: logging.Logger,
        clock: Callable[[], float],
        stopping: threading.Event,
    ):
        self.settings = settings
        self.client = client
        self.signing = signing
        self.endpoint = endpoint  # where each signed request goes (its answer laid over the account view there)
        self.journal = journal
        self.logger = logger
        self.clock = clock
        self.stopping = stopping
        self._invalidated: set[int] = set()  # nonces our own noop spent: no request signed with one can ever apply

    def submit_batch(self, pairs: list[tuple[Action, Order]]) -> Sent:
        """Several actions' orders in one signed request, each with its own cloid, journal row and outcome (the
        exchange takes them in this order). Exactly once by the exchange's own guarantee, never by this machine's
        clock: an uncertain failure resends the identical signed request (one nonce: the exchange applies it once
        at most), and when that cannot decide, a noop with the nonce does; an ambiguous request is settled order by
        order, by cloid. Only an order certainly not applied is signed again. The journal unwritable before a
        round's request left: that round's orders are not executed (`Sent.unwritable` says why)."""
        outcomes: dict[int, Outcome] = {}
        wires = self._wires(pairs, outcomes)
        pending = list(wires)
        # why each order not applied yet is not executed, if it ends so (reads or a leverage update took long)
        unapplied = {i: NotApplied("not sent") for i in pending}
        unwritable: str | None = None
        for signing in range(FRESH_ORDERS):  # 0: the first order; 1: a fresh one, the first certainly not applied
            for i in pending:
                late = self.expired(pairs[i][0], unapplied[i].why)
                if late is not None:
                    outcomes[i] = late
            pending = [i for i in pending if i not in outcomes]
            if not pending:
                break
            if signing and self.stopping.is_set():
                raise Unfinished(f"{unapplied[pending[0]].why}; the action is resumed at the next start")
            actions = [pairs[i][0] for i in pending]
            orders = [pairs[i][1] for i in pending]
            body = order_wires_to_order_action([wires[i] for i in pending], None, grouping(orders))
            payload = self.signing.payload(body, min(self.deadline(a) for a in actions))
            try:
                results = self._send(actions, orders, payload)
            except Unwritable as exc:  # nothing of this round was sent; what earlier rounds settled stands
                unwritable = str(exc)
                outcomes.update({i: Outcome(FAILED, f"not executed: {exc}") for i in pending})
                pending = []
                break
            except TransientError as exc:
                for i in pending:
                    outcomes[i] = Outcome(
                        UNKNOWN,
                        f"outcome unknown ({exc}); settled by cloid {pairs[i][1].cloid} "
                        f"and nonce {payload['nonce']} as soon as the exchange answers",
                    )
                pending = []
                break
            for i, seen in zip(pending, results, strict=True):
                if isinstance(seen, NotApplied):
                    unapplied[i] = seen
                else:
                    outcomes[i] = seen
            pending = [i for i in pending if i not in outcomes]  # (found applied: never "stale" in the next round)
        for i in pending:
            outcomes.setdefault(i, Outcome(FAILED, unapplied[i].why))
        return Sent([outcomes[i] for i in range(len(pairs))], unwritable)

    def _wires(self, pairs: list[tuple[Action, Order]], outcomes: dict[int, Outcome]) -> dict[int, dict]:
        """Each order's wire, by its place: the ones to send. An order the wire cannot carry is REJECTED; in a dry
        run each one is SKIPPED, logged as it would have been sent (none to send)."""
        wires: dict[int, dict] = {}
        for i, (_, order) in enumerate(pairs):
            try:
                wires[i] = order.wire()
            except ValueError as exc:  # a number the wire cannot carry exactly
                outcomes[i] = Outcome(REJECTED, str(exc))
        if self.settings.dry_run and wires:
            body = order_wires_to_order_action(list(wires.values()), None, grouping([p[1] for p in pairs]))
            self.logger.info("dry run: would send %s", json.dumps(body, separators=(",", ":")))
            outcomes.update({i: Outcome(SKIPPED, f"dry run: {pairs[i][1].describe()} not sent") for i in wires})
            return {}
        return wires

    def _send(self, actions: list[Action], orders: list[Order], payload: dict) -> list[Outcome | NotApplied]:
        """Send one signed request exactly once (exchange/delivery.py): each order's outcome, or NotApplied for an order
        certainly not applied. Raises TransientError when that cannot be known yet."""
        account = self.client.account
        sent_at = account.clock() if account is not None else 0.0  # (as a view of the account measures time)
        ending = deliver(
            payload,
            note=functools.partial(self.journal.sending, actions, payload["expiresAfter"], payload["nonce"]),
            post=self.endpoint.post,
            stopping=self.stopping,
            stale=lambda: any(self.expired(a, "") for a in actions),
            named=lambda: named(actions),
            logger=self.logger,
        )
        if isinstance(ending, Took):
            return _or_not_applied(self._answered(actions, orders, ending.result, sent_at), NOT_FOUND)
        if isinstance(ending, NonceSpent):
            spent = error_text(ending.result)
            self.logger.info("%s: a resend found nonce %d spent: %s", named(actions), payload["nonce"], spent)
            return _or_not_applied(
                shown_in_account(self.client.account, orders, self._by_cloid(actions), sent_at), NOT_FOUND
            )
        if isinstance(ending, HttpRefused):
            refused = f"not executed: HTTP {ending.status} from the exchange: {ending.text}"
            return [Outcome(FAILED, refused) for _ in actions]
        if isinstance(ending.state, NotTaken):  # every attempt refused at the door (429, no connection): not applied
            if self.stopping.is_set():
                raise Unfinished("not sent; the action is resumed at the next start")
            unsent = f"not executed: exchange unreachable after {ending.attempts} attempts: {ending.state.why}"
            return [self.expired(a, unsent) or Outcome(FAILED, unsent) for a in actions]
        seen = shown_in_account(self.client.account, orders, self.invalidate(payload["nonce"], actions), sent_at)
        return _or_not_applied(seen, f"not executed ({ending.state.why}; its nonce invalidated by a noop)")

    def _answered(
        self, actions: list[Action], orders: list[Order], result: dict, sent_at: float
    ) -> list[Outcome | None]:
        """Each order's outcome from the request's answer. An order the answer took (`ok`) without a status that
        can be read is settled by cloid, as a lost answer is (its nonce is spent: its fate is frozen); if the
        exchange cannot say yet, its outcome is UNKNOWN, settled later: never a final failure."""
        now = self.clock()
        outcomes: list[Outcome | None] = [
            order_outcome(result, o.size, round((now - a.received_at) * 1000, 1), i)
            for i, (a, o) in enumerate(zip(actions, orders, strict=True))
        ]
        unread = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not unread:
            return outcomes
        self.logger.warning(
            "%s: the exchange took the request but its answer says nothing readable of %d order(s): "
            "%s; asking by cloid",
            named(actions),
            len(unread),
            str(result)[:160],
        )
        try:
            found = shown_in_account(
                self.client.account, [orders[i] for i in unread], self._by_cloid([actions[i] for i in unread]), sent_at
            )
        except TransientError as exc:
            found = [unknown_outcome(f"outcome unknown ({exc})", actions[i]) for i in unread]
        for i, seen in zip(unread, found, strict=True):
            outcomes[i] = seen
        return outcomes

    def invalidate(self, nonce: int, actions: list[Action]) -> list[Outcome | None]:
        """Settle a request that may be in flight (these actions' orders) with a noop of its nonce (deliver_noop).
        Taken: none of them was applied and now none can be (None each). Refused as used or too low: the request's
        fate is frozen, and each order is found by cloid (or had no effect: None). TransientError when the exchange
        gives no usable answer."""
        if nonce in self._invalidated:  # our own noop spent it already (another action of the same request)
            return [None] * len(actions)
        ending = deliver_noop(self.signing.noop(nonce), self.endpoint.post, self.stopping, named(actions), self.logger)
        if isinstance(ending, NonceSpent):
            return self._by_cloid(actions)
        self._invalidated.add(nonce)
        return [None] * len(actions)

    def _by_cloid(self, actions: list[Action]) -> list[Outcome | None]:
        """The request's nonce is spent: each order asked by cloid (records.py)."""
        return by_cloid(self.client, actions, self.stopping, named(actions), self.logger, self.lookup)

    def deadline(self, action: Action) -> float:
        """The wall-clock time after which the action is stale: no order of it may be applied after that."""
        now = self.clock()
        return now - action.age(now) + self.settings.max_action_age

    def expired(self, action: Action, what: str) -> Outcome | None:
        """EXPIRED when the action is now older than FRAC_MAX_ACTION_AGE, else None."""
        age = action.age(self.clock())
        if age <= self.settings.max_action_age:
            return None
        return Outcome(EXPIRED, f"{what}: {age:.0f}s old, over FRAC_MAX_ACTION_AGE={self.settings.max_action_age:g}s")

    def lookup(self, action: Action) -> Outcome | None:
        """What the exchange did with this action's cloid; None when it never saw it (records.py)."""
        return lookup(self.client, action)


class Requests:
    """Sends a wave's plans, request by request; `together`: a trade and its position TP/SL may share a request."""

    def __init__(self, sender: Sender):
        self.sender = sender
        self.together = True  # (False once the exchange refused them together)

    def send(self, planned: list[Handling]) -> Iterator[tuple[list[Handling], Sent]]:
        """Each request's handlings and what became of their orders, one request after the other (the caller
        concludes each before the next is sent)."""
        for request in requests_of(planned):
            yield from self._send(request)

    def _send(self, request: list[Handling]) -> Iterator[tuple[list[Handling], Sent]]:
        if not self.together and len(request) > 1 and not request[0].order.position and request[-1].order.position:
            for part in ([request[0]], request[1:]):
                yield from self._send(part)
            return
        try:
            sent = self.sender.submit_batch([(h.action, h.order) for h in request])
        except Exception as exc:  # a bug: the request may have left, so the exchange decides (by cloid, later)
            log.exception("sending %d order(s) failed", len(request))
            why = f"outcome unknown ({type(exc).__name__}: {str(exc)[:200]})"
            sent = Sent([unknown_outcome(why, h.action) for h in request])
        if self.together and refused_together(request, sent.outcomes):
            self.together = False
            log.warning(
                "the exchange refused a trade and its position TP/SL in one request (%s); from now on the "
                "trade goes first and its protection right after its answer",
                sent.outcomes[0].reason[:160],
            )
            yield from self._send(request)
            return
        yield request, sent


def _or_not_applied(seen: list[Outcome | None], why: str) -> list[Outcome | NotApplied]:
    """Each order's outcome; NotApplied (`why`) for one certainly not applied (None: not found, or its nonce spent by
    our noop)."""
    return [NotApplied(why) if outcome is None else outcome for outcome in seen]
