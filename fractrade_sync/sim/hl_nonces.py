"""Nonces as the exchange keeps them: the window a nonce must fall in, and each signer's 100 highest.

https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/nonces-and-api-wallets
"""

from __future__ import annotations

from collections.abc import Callable

from fractrade_sync.sim.hl_model import DAY_MS, ExchangeError

NONCES_KEPT = 100  # "Hyperliquid keeps the 100 highest nonces for each key"


class NonceBook:
    """The nonces each signer has spent, judged by the exchange's clock `now_ms`."""

    def __init__(self, now_ms: Callable[[], int]):
        self.now_ms = now_ms
        self.kept: dict[str, list[int]] = {}

    def check_window(self, nonce: int) -> None:
        """Refuse a nonce more than two days behind the exchange's clock or a day ahead of it."""
        now = self.now_ms()
        low = now - 2 * DAY_MS
        high = now + DAY_MS
        if nonce <= low:
            raise ExchangeError(f"Invalid nonce: nonce too low {nonce} < {low}")
        if nonce >= high:
            raise ExchangeError(f"Invalid nonce: nonce too high {nonce} > {high}")

    def spend(self, signer: str, nonce: int) -> None:
        """Mark the (lower-case) signer's nonce used; refused when it was, or is below its 100 highest."""
        kept = self.kept.setdefault(signer, [])
        if nonce in kept:
            raise ExchangeError(f"Invalid nonce: duplicate nonce {nonce}")
        if len(kept) >= NONCES_KEPT and nonce <= kept[0]:
            raise ExchangeError(f"Invalid nonce: nonce too low {nonce} < {kept[0]}")
        kept.append(nonce)
        kept.sort()
        del kept[:-NONCES_KEPT]
