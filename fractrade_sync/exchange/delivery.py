"""One signed request's delivery to /exchange: what each send came to and how the delivery ended are types; no
exception from the exchange, and no data read off one, leaves this module (what it raises is the service's own:
Unwritable, Unfinished, TransientError).

What one POST came to (`post_once`): the exchange's answer (`Took`), refused at the door with nothing applied
(`NotTaken`), no answer while it may have landed (`NoAnswer`), or a 4xx (`HttpRefused`). A request delivered attempt
after attempt (`deliver`): where it stands (`NotTaken`, then `NoAnswer` once a send of it may have landed) and how it
ended (`Took`, `NonceSpent`, `HttpRefused`, `Undecided`); execution/sending.py turns each ending into the orders'
outcomes. A noop of the request's nonce (`deliver_noop`) ends in `Invalidated` or `NonceSpent`.

Hyperliquid applies a nonce once per signer: after an uncertain failure the identical signed request is sent again,
and the exchange's answer to it is the truth; a resend refused for its nonce means the fate of the first is frozen."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Union

from hyperliquid.utils.error import ClientError

from fractrade_sync.backoff import exchange_retries
from fractrade_sync.errors import NothingApplied, TransientError, Unfinished, Unwritable
from fractrade_sync.exchange.answers import error_text, nonce_refusal

# the signed POST to /exchange (Endpoint.post): the payload, and what runs once its bytes are written
SignedPost = Callable[[dict, Callable[[], None] | None], dict]


@dataclass(frozen=True)
class Took:
    """The exchange's JSON answer, with its status ("ok" or "err")."""

    result: dict


@dataclass(frozen=True)
class NotTaken:
    """No answer, and nothing of it was applied: refused at the door (429) or never sent."""

    why: str = ""


@dataclass(frozen=True)
class NoAnswer:
    """No usable answer (network, timeout, 5xx, a gateway's page) while it may have reached the exchange."""

    why: str


@dataclass(frozen=True)
class HttpRefused:
    """A 4xx: the exchange (or a gateway in front of it) refused the request."""

    status: int
    text: str


Posted = Union[Took, NotTaken, NoAnswer, HttpRefused]


def post_once(post: SignedPost, payload: dict, on_sent: Callable[[], None] | None = None) -> Posted:
    """One POST of `payload` with the endpoint's `post` (Endpoint.post), as what it came to."""
    try:
        return Took(post(payload, on_sent))
    except NothingApplied as exc:
        return NotTaken(str(exc))
    except TransientError as exc:
        return NoAnswer(str(exc))
    except ClientError as exc:
        return HttpRefused(exc.status_code, str(exc.error_message)[:200])


@dataclass(frozen=True)
class NonceSpent:
    """A resend, or the noop of its nonce, found the request's nonce used (or out of the window): its fate is frozen,
    found by cloid."""

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
    post: SignedPost,
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
        posted = post_once(post, payload, on_sent)
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
    payload: dict, post: SignedPost, stopping: threading.Event, named: str, logger: logging.Logger
) -> Invalidated | NonceSpent:
    """Send the signed noop of a request's nonce (`payload`) until the exchange answers it: Invalidated, or NonceSpent
    (refused as used or too low: the request's fate is frozen). No answer, or a gateway's 4xx, is no answer: asked
    again, with backoff. Raises Unfinished when stopping, TransientError when the exchange gives no usable answer."""
    nonce = payload["nonce"]
    last = ""
    for attempt, delay in enumerate((0.0, *exchange_retries().delays())):
        if attempt and stopping.wait(delay):
            raise Unfinished(f"stopped while settling nonce {nonce}; settled at the next start")
        posted = post_once(post, payload)
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
