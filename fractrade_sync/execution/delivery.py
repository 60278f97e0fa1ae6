"""One signed request's delivery to the exchange, attempt after attempt, as types: where it stands (`Unsent`: nothing
of it can have reached the exchange; `MaybeLanded`: a send of it may have) and how it ended (`Answered`,
`NonceSpent`, `RefusedHttp`, `Undecided`). sending.py turns each ending into the orders' outcomes.

Hyperliquid applies a nonce once per signer: after an uncertain failure the identical signed request is sent again,
and the exchange's answer to it is the truth; a resend refused for its nonce means the fate of the first is frozen."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Union

from hyperliquid.utils.error import ClientError

from fractrade_sync.backoff import exchange_retries
from fractrade_sync.errors import TransientError, Unwritable
from fractrade_sync.exchange.answers import error_text, nonce_refusal


@dataclass(frozen=True)
class Unsent:
    """Nothing of the request can have reached the exchange (yet): refused at the door, or not sent."""

    why: str = ""


@dataclass(frozen=True)
class MaybeLanded:
    """A send of the request may have reached the exchange: only its answer, a resend's, or its nonce decide."""

    why: str


@dataclass(frozen=True)
class Answered:
    """The exchange's answer to the request, or to its identical resend."""

    result: dict


@dataclass(frozen=True)
class NonceSpent:
    """A resend found the request's nonce used (or out of the window): its fate is frozen, found by cloid."""

    result: dict


@dataclass(frozen=True)
class RefusedHttp:
    """A 4xx before any send may have landed: refused, certainly not applied."""

    status: int
    text: str


@dataclass(frozen=True)
class Undecided:
    """The attempts ended (spent, stopping, stale, or a resend that says nothing of the first) without an answer."""

    state: Unsent | MaybeLanded
    attempts: int


Ending = Union[Answered, NonceSpent, RefusedHttp, Undecided]


def deliver(
    payload: dict,
    note: Callable[[], Callable[[], None] | None],
    post: Callable[[dict, Callable[[], None] | None], dict],
    stopping: threading.Event,
    stale: Callable[[], bool],
    named: Callable[[], str],
    logger: logging.Logger,
) -> Ending:
    """Send the signed request, resending it identically after an uncertain failure, with backoff, until it ends.
    `note()` writes its in-flight note before each send (and returns what runs once it is written): Unwritable before
    anything may have landed is raised (not executed); on a resend the first note (same nonce) covers it."""
    state: Unsent | MaybeLanded = Unsent()
    attempts = 0
    for attempts, delay in enumerate((0.0, *exchange_retries().delays()), start=1):
        if attempts > 1 and (stopping.wait(delay) or stale()):
            return Undecided(state, attempts)
        try:
            on_sent = note()
        except Unwritable:
            if isinstance(state, Unsent):
                raise  # nothing of it left: not executed
            on_sent = None
        try:
            result = post(payload, on_sent)
        except TransientError as exc:
            landed = isinstance(state, MaybeLanded) or exc.in_flight
            state = MaybeLanded(str(exc)) if landed else Unsent(str(exc))
            then = "resending the identical signed order" if landed else "retrying"
            logger.warning("%s: %s (attempt %d); %s", named(), exc, attempts, then)
            continue
        except ClientError as exc:  # a 4xx: refused, unless an earlier send may have landed (then no answer)
            if isinstance(state, Unsent):
                return RefusedHttp(exc.status_code, str(exc.error_message)[:200])
            return Undecided(MaybeLanded(f"resend answered HTTP {exc.status_code}"), attempts)
        if isinstance(state, Unsent) or result.get("status") == "ok":
            return Answered(result)
        if nonce_refusal(result) is not None:
            return NonceSpent(result)
        # e.g. expired: says nothing of the first one
        return Undecided(MaybeLanded(f"resend refused: {error_text(result)}"), attempts)
    return Undecided(state, attempts)
