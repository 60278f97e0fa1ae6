"""The exchange adapter's own exceptions: an answer that is not there yet, a symbol the exchange does not list."""

from __future__ import annotations


class TransientError(Exception):
    """No usable answer (network, timeout, 429, 5xx, unreadable). in_flight: the request may still be applied."""

    def __init__(self, message: str, in_flight: bool = True):
        super().__init__(message)
        self.in_flight = in_flight


class UnknownSymbol(Exception):
    """The coin is not a perp of the exchange's meta."""
