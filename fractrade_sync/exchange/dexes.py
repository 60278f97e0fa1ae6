"""HIP-3 builder-deployed perp dexes: symbols `dex:COIN`, each dex with its own meta, mids, clearinghouse and open
orders; an asset's id is 100000 + the dex's index in `perpDexs` x 10000 + its index in that dex's meta
(EXCHANGE.md §10). Loaded on demand: the dex list and a dex's meta when a symbol of it first arrives, again at most
once a minute for an unknown dex or coin."""

from __future__ import annotations

import time
from typing import Any, Callable

from fractrade_sync.errors import UnknownSymbol, UnreadableAnswer
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.rules import Asset

RELOAD_EVERY = 60.0  # seconds: an unknown dex or coin reloads the dex list (and its meta) at most this often
FIRST_DEX_ID = 100000
PER_DEX = 10000


def dex_of(symbol: str) -> str:
    """The dex of a symbol, in lower case ("" for the main dex's coins)."""
    dex, sep, _ = symbol.partition(":")
    return dex.lower() if sep else ""


class Dexes:
    """The HIP-3 dexes' assets this service has needed; `info` posts one /info request (the client's)."""

    def __init__(self, info: Callable[[dict], Any], clock: Callable[[], float] = time.monotonic):
        self.info = info
        self.clock = clock
        self.index: dict[str, int] = {}  # dex name (lower case) -> its index in perpDexs
        self.assets: dict[str, dict[str, Asset]] = {}  # dex -> {name (as its meta spells it): asset}
        self._loaded_at: dict[str, float] = {}  # dex ("" for the list) -> when last loaded

    def asset(self, symbol: str) -> Asset:
        """The asset of `dex:COIN` (both parts case-insensitive); UnknownSymbol when the exchange lists no such
        dex or coin; UnreadableAnswer when its answers cannot be read."""
        dex = dex_of(symbol)
        for attempt in range(2):
            found = self._find(dex, symbol)
            if found is not None:
                return found
            if attempt == 0 and self._due(dex):
                self._load(dex)
        known = "" if dex in self.index else f": no HIP-3 dex '{dex}' on this exchange"
        raise UnknownSymbol(f"unknown symbol '{symbol}'{known or ': not a perp of its dex'}")

    def coins(self) -> dict[int, str]:
        """Asset id -> name, for every dex asset loaded."""
        return {a.index: a.name for assets in self.assets.values() for a in assets.values()}

    def _find(self, dex: str, symbol: str) -> Asset | None:
        wanted = symbol.lower()
        matches = [a for name, a in self.assets.get(dex, {}).items() if name.lower() == wanted]
        return matches[0] if len(matches) == 1 else None

    def _due(self, dex: str) -> bool:
        now = self.clock()
        return now - self._loaded_at.get(dex, float("-inf")) >= RELOAD_EVERY

    def _load(self, dex: str) -> None:
        """The dex list (perpDexs: null for the main dex, then {"name", ...}), then the dex's meta."""
        self._loaded_at[dex] = self.clock()
        listed = self.info({"type": "perpDexs"})
        if not isinstance(listed, list):
            raise UnreadableAnswer(f"perpDexs answered {str(listed)[:120]}")
        self.index = {
            str(entry["name"]).lower(): i
            for i, entry in enumerate(listed)
            if isinstance(entry, dict) and isinstance(entry.get("name"), str)
        }
        if dex not in self.index:
            return
        meta = self.info({"type": "meta", "dex": dex})
        universe = meta.get("universe") if isinstance(meta, dict) else None
        if not isinstance(universe, list):
            raise UnreadableAnswer(f"meta for dex {dex} answered {str(meta)[:120]}")
        base = FIRST_DEX_ID + self.index[dex] * PER_DEX
        assets = {}
        for i, entry in enumerate(universe):
            if not isinstance(entry, dict) or entry.get("isDelisted"):
                continue
            try:
                name = str(entry["name"])
                name = name if ":" in name else f"{dex}:{name}"  # (the meta spells them "xyz:NVDA")
                sz = int(entry["szDecimals"])
                lev = int(entry.get("maxLeverage", 50))
                assets[name] = Asset(name, base + i, sz, lev, wire.only_isolated(entry))
            except (KeyError, TypeError, ValueError):
                raise UnreadableAnswer(f"meta for dex {dex} with an unreadable entry: {str(entry)[:120]}") from None
        self.assets[dex] = assets
