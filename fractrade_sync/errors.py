"""The service's exceptions, in one home: every module raises and catches them from here."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration value is missing or wrong; names the variable and the fix, never its secret value."""

    def __init__(self, variable: str, message: str):
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


class TransientError(Exception):
    """No usable answer (network, timeout, 5xx, unreadable): a request that changes the account may still be
    applied."""


class NothingApplied(TransientError):
    """No usable answer, and nothing of the request was applied: refused at the door (429, the request weight kept
    for orders) or never sent (the connection could not be opened)."""


class NotSent(Exception):
    """Nothing of the request left this process (connecting failed): it cannot be applied."""


class UnreadableAnswer(Exception):
    """An answer or push whose shape is not the one the exchange gives: it says nothing."""


class SubscriptionDead(Exception):
    """The account's subscription is dead on this socket: the feed takes a new one."""


class UnknownSymbol(Exception):
    """The coin is not a perp of the exchange's meta."""


class Refused(Exception):
    """Refused locally, before anything is sent; the message is the reason the user sees."""


class Unfinished(BaseException):  # (not an Exception: a hook's `except Exception` must not swallow it)
    """Stopping: the action stays in the journal ('received' or 'submitting') and is settled at the next start."""


class ThreadFailure(RuntimeError):
    """A thread of the service died or is stuck: it stops with a non-zero exit, so its supervisor restarts it."""


class Unwritable(Exception):
    """The journal (its notes or its database) cannot be written: disk full, a read-only or vanished state dir.
    Nothing that would need the record may happen: exactly-once cannot be promised without it."""
