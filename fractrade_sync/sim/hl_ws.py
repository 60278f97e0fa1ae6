"""The simulator's /ws socket: each connection's loop, subscribe and unsubscribe answered as Hyperliquid's /ws does,
allMids snapshots and pushes (the main dex's and each HIP-3 dex's); the user-data feeds are hl_userdata's.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler

from fractrade_sync.sim import hl_dexes, hl_market, hl_userdata, wsserver

# the /ws answer to a webData2 subscription since 2026-07: an error frame echoing the request (haocn-ops/hyperopen
# docs/exec-plans/active/2026-07-14-base-dex-clearinghouse-stream-replaces-webdata2.md, a live probe; nktkas/hyperliquid
# removed the subscription on 2026-07-15); the echo is the text as received here (its exact form is unconfirmed)
WS_REFUSED = "Error parsing JSON into valid websocket request: "


class SocketFeeds:
    """The /ws connections of one simulator and their allMids subscriptions; `stop` ends every connection's loop."""

    def __init__(self, state, userdata: hl_userdata.UserFeed, stop: threading.Event):
        self.state = state
        self.userdata = userdata
        self.stop = stop
        self._lock = threading.Lock()
        self._order = threading.Lock()  # serializes allMids snapshots and pushes
        self._subscribed: dict[object, set[str]] = {}  # connection -> the dexes whose allMids it subscribed to

    def connections(self) -> list:
        with self._lock:
            return list(self._subscribed)

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        """Upgrade a GET /ws and answer its messages until it closes or the simulator stops."""
        conn = wsserver.accept(handler)
        if conn is None:
            return
        with self._lock:
            self._subscribed[conn] = set()
        try:
            while not self.stop.is_set() and not conn.closed:
                try:
                    text = conn.recv(timeout=0.2)
                except TimeoutError:
                    continue
                if text is None:
                    break
                self._message(conn, text)
        finally:
            with self._lock:
                self._subscribed.pop(conn, None)
            self.userdata.drop(conn)
            conn.abort()

    def _message(self, conn, text: str) -> None:
        """Answer one client message as Hyperliquid's /ws does (allMids and the user-data feeds)."""
        try:
            msg = json.loads(text)
            method = msg["method"]
        except (ValueError, KeyError, TypeError):
            # Seen in third-party captures; the exact tail is unconfirmed.
            _send(conn, {"channel": "error", "data": f"Error parsing JSON into valid websocket request: {text}"})
            return
        if method == "ping":
            _send(conn, {"channel": "pong"})
            return
        sub = msg.get("subscription") or {}
        if isinstance(sub, dict) and sub.get("type") == "webData2":
            _send(conn, {"channel": "error", "data": WS_REFUSED + text})  # nothing else follows
            return
        user_key = hl_userdata.subscription_key(sub)  # (channel, user, dex or coin); None: not a user-data feed
        # allMids with "dex": that dex's mids, main when absent or "" (nktkas/hyperliquid src/api/subscription/_methods/
        # allMids.ts); an unknown dex is an invalid subscription here (the live answer is unconfirmed)
        all_mids = isinstance(sub, dict) and sub.get("type") == "allMids" and (sub.get("dex") or "") in hl_dexes.NAMES
        dex = (sub.get("dex") or "") if all_mids else ""
        if method not in ("subscribe", "unsubscribe") or not (all_mids or user_key):
            _send(conn, {"channel": "error", "data": f"Invalid subscription {json.dumps(sub)}"})  # text unconfirmed
            return
        if user_key and method == "unsubscribe":
            self.userdata.unsubscribe(conn, user_key)  # before the answer: nothing comes after it
        elif all_mids:
            with self._lock:
                (self._subscribed[conn].add if method == "subscribe" else self._subscribed[conn].discard)(dex)
        _send(conn, {"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}})
        if user_key and method == "subscribe":
            self.userdata.subscribe(conn, user_key)  # after the answer, which its snapshot must follow
        elif method == "subscribe":
            with self._order:  # a snapshot never overtakes a newer push
                wsserver.broadcast([conn], self._mids_message(dex))

    def mids(self, dex: str = "") -> dict[str, str]:
        """What allMids says: the main perps' mids, then the spot-style ones the ticker adds; a HIP-3 dex's own."""
        with self.state.lock:
            return hl_market.all_mids(self.state, dex)

    def push_raw(self, text: str | bytes) -> int:
        """Send one text frame as it is to every allMids subscriber of the main dex; how many got it."""
        with self._order:
            return wsserver.broadcast(self._subscribers(), text)

    def push_mids(self, dex: str = "") -> None:
        with self._order:  # pushes leave in the order the mids moved, as on the exchange
            subscribers = self._subscribers(dex)
            if subscribers:
                wsserver.broadcast(subscribers, self._mids_message(dex))

    def _mids_message(self, dex: str) -> str:
        """An allMids push: {"mids"} for the main dex, {"mids", "dex"} for a HIP-3 dex (nktkas' AllMidsEvent, whose
        `dex` is absent for the main dex: "same value as in response")."""
        data = {"mids": self.mids(dex), **({"dex": dex} if dex else {})}
        return json.dumps({"channel": "allMids", "data": data})

    def _subscribers(self, dex: str = "") -> list:
        with self._lock:
            return [conn for conn, dexes in self._subscribed.items() if dex in dexes]


def _send(conn, message: dict) -> None:
    """Send one JSON message; a closed peer is noticed and dropped by its reader loop."""
    wsserver.broadcast([conn], json.dumps(message))
