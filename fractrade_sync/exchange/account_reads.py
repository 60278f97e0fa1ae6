"""The account's reads (positions, open orders, leverage, fills, order status, funding; and the API wallets an
approver gave, for `check`) for the exchange adapter (client.py): from the live account view when it can say, else
over REST, read strictly (wire.py): an answer that does not say what it should is TransientError, never "flat", "no
orders" or "no leverage". A HIP-3 dex's (dexes.py) always over REST with its `dex`: the live view holds the main
dex."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from fractrade_sync.errors import TransientError, UnreadableAnswer
from fractrade_sync.exchange import wire
from fractrade_sync.exchange.dexes import dex_of

LEVERAGE_TTL = 60.0  # seconds a leverage read over REST is trusted on the order path (the UI can change it)


def _asset_data(user: str, coin: str) -> dict:
    return {"type": "activeAssetData", "user": user, "coin": coin}


class AccountReads:
    """Mixed into HyperliquidClient: its `_info`, `address`, `account`, `feed`, `logger`, `_notice`, `_leverage`,
    `_watched` and `_measured_clock` are used here."""

    def _account_notice(self, what: str) -> None:
        feed = self.feed
        account = self.account
        if feed is None or not feed.started or account is None:
            return  # (no feed by design, in check and scripts: REST is the plan)
        # the exchange refused a subscription: said once already (exchange_feed.py), REST is the plan
        if account.refused:
            self.logger.debug(
                "account subscription %s refused by the exchange; %s read over REST",
                "/".join(sorted(account.refused)),
                what,
            )
            return
        self._notice(
            "account",
            "live account state not trusted now (user-data feed %s); %s read over REST",
            "down" if not feed.connected.is_set() else "not confirmed",
            what,
        )

    def account_state(self, dex: str = "") -> dict:
        """clearinghouseState (of a HIP-3 `dex`: its own clearinghouse), read strictly (its positions and time must
        be there: else TransientError, never "flat"); its "time" (the exchange's clock, in ms) measures the clock
        offset on the way."""
        sent = time.time()
        body = {"type": "clearinghouseState", "user": self.address}
        state = self._info({**body, "dex": dex} if dex else body)
        try:
            wire.positions(state)
            when = wire.state_time(state)
        except UnreadableAnswer as exc:
            raise TransientError(f"unreadable account state: {exc}") from None
        self._measured_clock(when / 1000 - (sent + time.time()) / 2)
        return state

    def position(self, coin: str, live: bool = True) -> Decimal:
        """The signed position size on a coin (0 when flat): from the live account view when it is trusted (and
        `live`), else one REST read (which refreshes the leverage cache on the way). Raises TransientError when the
        answer does not say it."""
        dex = dex_of(coin)
        if live and self.account is not None and not dex:  # (the live view holds the main dex's)
            held = self.account.position(coin)
            if held is not None:
                return held
            self._account_notice(f"{coin} position")
        state = self.account_state(dex)
        for item in state["assetPositions"]:
            pos = item["position"]
            if pos["coin"] == coin:
                self._remember_leverage(coin, pos)
        return wire.positions(state).get(coin, Decimal(0))

    def leverage(self, coin: str) -> tuple[str, int] | None:
        """The leverage set on a coin (it can change in the UI too): from its activeAssetData subscription while the
        feed is live; else a REST read, trusted for LEVERAGE_TTL. The coin is watched from its first use."""
        if self.feed is not None and self.account is not None:
            if coin not in self._watched:  # (the feed keeps it subscribed from then on, across reconnects)
                self.feed.watch(coin)
                self._watched.add(coin)
            pushed = self.account.leverage(coin)
            if pushed is not None:
                return pushed
        cached = self._leverage.get(coin)
        if cached is None or time.monotonic() - cached[2] > LEVERAGE_TTL:
            self._remember_leverage(coin, self._info(_asset_data(self.address, coin)))
            cached = self._leverage[coin]
        return cached[0], cached[1]

    def _remember_leverage(self, coin: str, data: Any) -> None:
        try:
            kind, value = wire.leverage(data, coin)
        except UnreadableAnswer as exc:  # e.g. null: unreadable, not "no leverage"
            raise TransientError(str(exc)) from None
        self._leverage[coin] = (kind, value, time.monotonic())

    def open_orders(self, dex: str = "") -> list[dict]:
        """The open orders (frontendOpenOrders; of a HIP-3 `dex`: its own): from the live account view when trusted
        (the main dex's), else one REST read (TransientError when it is not a list of orders)."""
        live = self.account.open_orders() if self.account is not None and not dex else None
        if live is not None:
            return live
        if not dex:
            self._account_notice("open orders")
        return self.rest_open_orders(dex)

    def rest_open_orders(self, dex: str = "") -> list[dict]:
        """frontendOpenOrders over REST (of a HIP-3 `dex`: its own), read strictly."""
        body = {"type": "frontendOpenOrders", "user": self.address}
        try:
            return wire.open_orders(self._info({**body, "dex": dex} if dex else body))
        except UnreadableAnswer as exc:
            raise TransientError(f"unreadable open orders: {exc}") from None

    def fills(self) -> list[dict]:
        """The account's recent fills (userFills over REST: about the last 2000), read strictly."""
        try:
            return wire.fills(self._info({"type": "userFills", "user": self.address}))
        except UnreadableAnswer as exc:
            raise TransientError(f"unreadable fills: {exc}") from None

    def order_status(self, cloid: str) -> dict:
        """What the exchange knows of an order by its cloid ({'status': 'unknownOid'} when nothing); may raise."""
        return self._info({"type": "orderStatus", "user": self.address, "oid": cloid})

    def funding(self, start_ms: int) -> Any:
        """The account's funding payments from `start_ms` on (userFunding: at most 500 an answer; read by the
        ledger)."""
        return self._info({"type": "userFunding", "user": self.address, "startTime": start_ms})

    def extra_agents(self, user: str) -> Any:
        """The API wallets `user` approved (extraAgents), as the exchange answers."""
        return self._info({"type": "extraAgents", "user": user})
