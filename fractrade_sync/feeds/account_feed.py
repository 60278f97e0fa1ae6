"""The account's own subscriptions, on the exchange feed's socket (exchange_feed.py): positions (clearinghouseState) and
open orders (openOrders) of the main dex, the events that say an order changed (orderUpdates, userFills), and leverage
per coin in use (activeAssetData); never webData2, refused as a subscription since 2026 (EXCHANGE.md). Each push is read
strictly (wire.py) into the account view; a subscription the exchange refuses gets one WARNING and is asked again at
most every ASK_AGAIN_AFTER. Runs on the feed's thread; `watch` may be called from any."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from fractrade_sync.errors import SubscriptionDead, UnreadableAnswer
from fractrade_sync.exchange import wire
from fractrade_sync.feeds.account import AccountView

ACCOUNT_CHANNELS = ("clearinghouseState", "openOrders", "orderUpdates", "userFills")
USER_CHANNELS = (*ACCOUNT_CHANNELS, "activeAssetData")
# seconds without a clearinghouseState push before it is asked for again (unsubscribe, subscribe: a snapshot comes on
# subscribing, EXCHANGE.md), so that a silently dead subscription shows and a quiet account's view stays proven
REFRESH_AFTER = 5.0
ASK_AGAIN_AFTER = 600.0  # seconds before a subscription the exchange refused is asked for again (not in a loop)
# the error frames that refuse a subscription (EXCHANGE.md); "Already subscribed: {...}" refuses nothing
REFUSALS = ("Error parsing JSON into valid websocket request", "Invalid subscription")


def user_request(method: str, channel: str, user: str, coin: str | None = None) -> str:
    """A user-data (un)subscription as sent: `{"method", "subscription": {"type", "user", ["dex"], ["coin"]}}`."""
    subscription: dict = {"type": channel, "user": user}
    if channel in ("clearinghouseState", "openOrders"):
        subscription["dex"] = ""
    if coin is not None:
        subscription["coin"] = coin
    return json.dumps({"method": method, "subscription": subscription})


def refused_channel(data: object) -> str | None:
    """Which of our user-data subscriptions an error frame refuses: the exchange quotes the request in its text
    ("Error parsing JSON into valid websocket request: {...}", EXCHANGE.md); None when it names none of them."""
    text = str(data)
    if not text.startswith(REFUSALS):  # e.g. "Already subscribed: {...}" refuses nothing
        return None
    for channel in (*USER_CHANNELS, "webData2"):
        if f'"type":"{channel}"' in text.replace(" ", "") or f"'type': '{channel}'" in text:
            return channel
    return None


class AccountChannels:
    """The account's subscriptions on one feed: what to ask on each socket, and each push into the view."""

    def __init__(
        self,
        account: AccountView,
        user: str,
        logger: logging.Logger,
        clock: Callable[[], float],
        on_fills: Callable[[list], object] | None = None,
    ):
        self.account = account
        self.user = user
        self.logger = logger
        self.clock = clock
        self.on_fills = on_fills  # told of each userFills push's fills (the ledger), on the feed's thread
        self.generation = 0  # the feed's connection the pushes come on
        self._subscribed_at = float("-inf")
        self._refused_at: dict[str, float] = {}  # subscription (channel, or activeAssetData:COIN) -> when refused
        self._coins: set[str] = set()  # coins whose activeAssetData is wanted (the worker's watch())
        self._asked: set[str] = set()  # of those, subscribed on the current socket

    def connected(self, ws: Any, generation: int) -> None:
        """A new socket: ask for everything (a refused one only once ASK_AGAIN_AFTER has passed)."""
        self.generation = generation
        self._subscribed_at = self.account.clock()
        self._asked = set()
        self.ask(ws)

    def watch(self, coin: str) -> None:
        """Keep the coin's activeAssetData (its leverage) subscribed from now on (any thread; the feed thread sends
        the request)."""
        if coin not in self._coins:
            self._coins = self._coins | {coin}  # swap, never mutate: the feed thread iterates it

    def ask(self, ws: Any, channels: tuple[str, ...] = ACCOUNT_CHANNELS, again: bool = False) -> None:
        """Subscribe what is not subscribed on this socket yet: the account's channels (on connecting; a refused one
        again only after ASK_AGAIN_AFTER) and the activeAssetData of every watched coin."""
        now = self.clock()
        wanted = [(c, None) for c in channels] + [("activeAssetData", coin) for coin in self._coins]
        for channel, coin in wanted:
            name = channel if coin is None else f"{channel}:{coin}"
            refused = self._refused_at.get(name)
            if refused is not None and now - refused < ASK_AGAIN_AFTER:
                continue
            if name in self._asked and refused is None:
                continue
            if again and coin is None and refused is None:
                continue  # (the account's channels are asked on connecting)
            self._refused_at.pop(name, None)
            self._asked.add(name)
            ws.send(user_request("subscribe", channel, self.user, coin))

    def refreshed(self, ws: Any, last: float) -> float:
        """Ask for clearinghouseState again when none came for REFRESH_AFTER (and not more often); returns when it
        last asked. Past the view's snapshot bound despite asking: the subscription is dead, a new socket."""
        account = self.account
        now = account.clock()
        quiet = now - account.positions_at
        if "clearinghouseState" in account.refused or quiet < REFRESH_AFTER or now - last < REFRESH_AFTER:
            return last
        bound = account.max_snapshot_age
        if account.snapshots and quiet > 2 * bound and now - self._subscribed_at > 2 * bound:
            raise SubscriptionDead(f"no clearinghouseState for {quiet:.0f}s despite asking again")
        for method in ("unsubscribe", "subscribe"):
            ws.send(user_request(method, "clearinghouseState", self.user))
        return now

    def refused(self, data: object) -> bool:
        """An error frame: one WARNING naming the subscription of ours it refuses (asked again in ASK_AGAIN_AFTER);
        False when it names none of ours."""
        channel = refused_channel(data)
        if channel is None:
            return False
        coin = None
        if channel == "activeAssetData":
            coin = next((c for c in self._coins if f'"coin":"{c}"' in str(data).replace(" ", "")), None)
        name = channel if coin is None else f"{channel}:{coin}"
        if name not in self._refused_at:
            self.logger.warning(
                "account feed: the exchange refused the %s subscription (%s); what it would give "
                "comes over REST; asked again in %.0f minutes",
                name,
                str(data)[:160],
                ASK_AGAIN_AFTER / 60,
            )
        self._refused_at[name] = self.clock()
        if channel in ACCOUNT_CHANNELS:
            self.account.refuse(channel)
        return True

    def _tell_fills(self, fills: list) -> None:
        try:
            self.on_fills(fills)  # type: ignore[misc]
        except Exception:  # (e.g. a journal that cannot be written): the feed goes on; the ledger reads them later
            self.logger.exception("account feed: the fills of a userFills push could not be recorded")

    def push(self, channel: str, data: object) -> None:
        """One user-data push, read strictly (wire.py) into the account view; unreadable: the view is behind."""
        account = self.account
        try:
            if channel == "clearinghouseState":
                state = wire.user_push(data, "clearinghouseState", self.user)
                held = wire.positions(state)
                when = wire.state_time(state)
                account.on_positions(state, held, when, self.generation, self._subscribed_at)
            elif channel == "openOrders":
                orders = wire.open_orders(wire.user_push(data, "orders", self.user))
                account.on_orders(orders, self.generation, self._subscribed_at)
            elif channel == "activeAssetData":
                coin = data.get("coin") if isinstance(data, dict) else None
                if not isinstance(coin, str) or str(data.get("user", "")).lower() != self.user.lower():
                    raise UnreadableAnswer(f"activeAssetData for another account or coin: {str(data)[:80]}")
                account.on_leverage(coin, wire.leverage(data, coin))
            else:
                account.on_events(channel, data)
                if channel == "userFills" and self.on_fills is not None and isinstance(data, dict):
                    self._tell_fills(data.get("fills") or [])
        except UnreadableAnswer as exc:
            account.lost()
            self.logger.warning(
                "account feed: a %s push that cannot be read (%s); REST until the next one", channel, exc
            )
