"""One signed request's delivery to the exchange, attempt after attempt, as types (each send's result is one of
exchange/posted.py's): where it stands (`NotTaken`: nothing of it can have been applied yet; `NoAnswer`: a send of it
may have landed) and how it ended (`Took`: the exchange's answer, `NonceSpent`, `HttpRefused`, `Undecided`). sending.py
turns each ending into the orders' outcomes. A noop of the request's nonce (`deliver_noop`) ends in `Invalidated` or
`NonceSpent`.

Hyperliquid applies a nonce once per signer: after an uncertain failure the identical signed request is sent again,
and the exchange's answer to it is the truth; a resend refused for its nonce means the fate of the first is frozen."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Union

from fractrade_sync.backoff import exchange_retries
from fractrade_sync.errors import TransientError, Unfinished, Unwritable
from fractrade_sync.exchange.answers import error_text, nonce_refusal
from fractrade_sync.exchange.posted import HttpRefused, NoAnswer, NotTaken, Posted, Took


@dataclass(frozen=True)
class NonceSpent:
    """A resend found the request's nonce used (or out of the window): its fate is frozen, found by cloid."""

    result: dict


@dataclass(frozen=True)
class Undecided:
    """The attempts ended (spent, stopping, stale, or a resend that says nothing of the first) without an answer."""

    state: NotTaken | NoAnswer  # where it stood: NoAnswer once a send of it may have landed
    attempts: int


# Took: the exchange's answer to the request (or to its identical resend); HttpRefused: a 4xx before any send of it
# may have landed
Ending = Union[Took, NonceSpent, HttpRefused, Undecided]


def deliver(
    payload: dict,
    note: Callable[[], Callable[[], None] | None],
    post: Callable[[dict, Callable[[], None] | None], Posted],
    stopping: threading.Event,
    stale: Callable[[], bool],
    named: Callable[[], str],
    logger: logging.Logger,
) -> Ending:
    """Send the signed request, resending it identically after an uncertain failure, with backoff, until it ends.
    `note()` writes its in-flight note before each send (and returns what runs once it is written): Unwritable before
    anything may have landed is raised (not executed); on a resend the first note (same nonce) covers it."""
    state: NotTaken | NoAnswer = NotTaken()
    attempts = 0
    for attempts, delay in enumerate((0.0, *exchange_retries().delays()), start=1):
        if attempts > 1 and (stopping.wait(delay) or stale()):
            return Undecided(state, attempts)
        try:
            on_sent = note()
        except Unwritable:
            if isinstance(state, NotTaken):
                raise  # nothing of it left: not executed
            on_sent = None
        posted = post(payload, on_sent)
        if isinstance(posted, (NotTaken, NoAnswer)):
            landed = isinstance(state, NoAnswer) or isinstance(posted, NoAnswer)
            state = NoAnswer(posted.why) if landed else posted
            then = "resending the identical signed order" if landed else "retrying"
            logger.warning("%s: %s (attempt %d); %s", named(), posted.why, attempts, then)
            continue
        if isinstance(posted, HttpRefused):  # refused, unless an earlier send may have landed (then no answer)
            if isinstance(state, NotTaken):
                return posted
            return Undecided(NoAnswer(f"resend answered HTTP {posted.status}"), attempts)
        result = posted.result
        if isinstance(state, NotTaken) or result.get("status") == "ok":
            return posted
        if nonce_refusal(result) is not None:
            return NonceSpent(result)
        # e.g. expired: says nothing of the first one
        return Undecided(NoAnswer(f"resend refused: {error_text(result)}"), attempts)
    return Undecided(state, attempts)


@dataclass(frozen=True)
class Invalidated:
    """The noop of a request's nonce was taken: nothing signed with that nonce was ever applied, and now none can be."""


def deliver_noop(
    payload: dict, post: Callable[[dict], Posted], stopping: threading.Event, named: str, logger: logging.Logger
) -> Invalidated | NonceSpent:
    """Send the signed noop of a request's nonce (`payload`) until the exchange answers it: Invalidated, or NonceSpent
    (refused as used or too low: the request's fate is frozen). No answer, or a gateway's 4xx, is no answer: asked
    again, with backoff. Raises Unfinished when stopping, TransientError when the exchange gives no usable answer."""
    nonce = payload["nonce"]
    last = ""
    for attempt, delay in enumerate((0.0, *exchange_retries().delays())):
        if attempt and stopping.wait(delay):
            raise Unfinished(f"stopped while settling nonce {nonce}; settled at the next start")
        posted = post(payload)
        if not isinstance(posted, Took):
            last = f"HTTP {posted.status}: {posted.text}" if isinstance(posted, HttpRefused) else posted.why
            logger.warning("%s: noop for nonce %d: %s; asking again", named, nonce, last)
            continue
        result = posted.result
        if result.get("status") == "ok":
            logger.info("%s: nonce %d invalidated by a noop: its order was never applied", named, nonce)
            return Invalidated()
        if nonce_refusal(result) is not None:
            return NonceSpent(result)
        raise TransientError(f"noop for nonce {nonce} refused: {error_text(result)}")
    raise TransientError(f"noop for nonce {nonce} unanswered: {last}")
