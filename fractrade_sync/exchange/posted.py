"""What one POST of a signed request to /exchange came to, as a type (execution/delivery.py decides from it what to do
next): the exchange's answer, refused at the door with nothing applied, no answer while it may have landed, or a
4xx. No exception, and no data read off one, leaves the exchange adapter on this path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from hyperliquid.utils.error import ClientError

from fractrade_sync.errors import NothingApplied, TransientError


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


def post_once(
    post: Callable[[dict, Callable[[], None] | None], dict], payload: dict, on_sent: Callable[[], None] | None = None
) -> Posted:
    """One POST of `payload` with the client's `post` (HyperliquidClient.post), as what it came to."""
    try:
        return Took(post(payload, on_sent))
    except NothingApplied as exc:
        return NotTaken(str(exc))
    except TransientError as exc:
        return NoAnswer(str(exc))
    except ClientError as exc:
        return HttpRefused(exc.status_code, str(exc.error_message)[:200])
