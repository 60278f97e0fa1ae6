"""A local Hyperliquid: /info, /exchange, /control and the /ws socket (allMids, and the user-data feeds of hl_userdata).

Speaks exactly what `hyperliquid-python-sdk` sends, checks every /exchange signature (hl_exchange_endpoint), counts
request weights per client IP (hl_weights) and injects faults (5xx, 429, timeouts, dropped responses) on demand
(hl_faults); the HTTP side is hl_http, the socket hl_ws, the JSON control API hl_control.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from fractrade_sync.sim import hl_accounts, hl_dexes, hl_ledger, hl_userdata, hl_views, hl_weights, wsserver
from fractrade_sync.sim.hl_faults import FaultQueue
from fractrade_sync.sim.hl_http import Server
from fractrade_sync.sim.hl_requests import RequestLog
from fractrade_sync.sim.hl_state import HyperliquidState
from fractrade_sync.sim.hl_ws import SocketFeeds


class HyperliquidSimulator:
    """The simulated exchange on 127.0.0.1; `url` is the SDK's base_url."""

    def __init__(self, host="127.0.0.1", port=0, *, mids=None):
        self.state = HyperliquidState(mids)
        self.latency_s = 0.0
        self.timeout_s = 3.0
        self._lock = threading.Lock()  # one ticker at most (start_ticker)
        self.stopping = threading.Event()  # set by stop(): wakes injected sleeps and WebSocket loops
        self.faults = FaultQueue()
        self.requests = RequestLog()
        self.userdata = hl_userdata.UserFeed(self.state)  # orderUpdates, userFills and the account's state
        self.sockets = SocketFeeds(self.state, self.userdata, self.stopping)  # /ws: allMids and the user-data feeds
        self.weights = hl_weights.RequestWeights()
        self._server = Server((host, port), self)
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------
    def start(self) -> HyperliquidSimulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"hl-sim-{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        self.userdata.start(name=f"hl-sim-{self._server.server_address[1]}-userdata")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, drop every connection, join threads (bounded); idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()  # wakes injected sleeps and WebSocket loops
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._server.shutdown()
        conns = self.sockets.connections()
        clients = self._server.clients()
        for conn in conns:
            conn.abort()
        wsserver.shut_down(clients)
        self._server.server_close()
        self.userdata.stop(max(0.0, deadline - time.monotonic()))
        for thread in [self._thread, self._ticker, *clients.values()]:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- accounts and market ----------------------------------------------
    def add_account(self, address: str, usdc=100_000) -> None:
        self.state.add_account(address, usdc)

    def approve_agent(self, user: str, agent: str, name: str = "", days: float = 180) -> None:
        """Approve an API wallet for `days` (Hyperliquid's interface offers up to 180)."""
        self.state.approve_agent(user, agent, name, days)

    def add_sub_account(self, master: str, sub: str, usdc=100_000, name: str = "") -> None:
        """Open `sub` as a sub-account of `master`: its own balance, positions, orders, leverage and fills, traded by
        the master's key or API wallets with vaultAddress = sub (hl_accounts)."""
        hl_accounts.add(self.state, hl_accounts.SUB_ACCOUNT, master, sub, usdc, name or f"sub {sub[:8]}")

    def add_vault(self, leader: str, vault: str, usdc=100_000, name: str = "") -> None:
        """Open `vault` as a vault led by `leader`, traded by the leader's key or API wallets (hl_accounts)."""
        hl_accounts.add(self.state, hl_accounts.VAULT, leader, vault, usdc, name or f"vault {vault[:8]}")

    def fund_dex(self, user: str, dex: str, usdc) -> None:
        """Move `usdc` from the user's main-dex balance to its clearinghouse on HIP-3 dex `dex` (hl_dexes.fund_dex)."""
        with self.userdata.changes():
            hl_dexes.fund_dex(self.state, user, dex, usdc)

    def cap_open_interest(self, coin: str, on: bool = True) -> None:
        """While on, an order that would grow a position on `coin` is refused, "Order would increase open interest
        while open interest is capped asset=N" (reduce-only and closing orders pass)."""
        if not isinstance(on, bool):
            raise ValueError(f"on must be true or false, not {on!r}")
        with self.state.lock:
            if coin not in self.state.mids:
                raise KeyError(f"unknown coin {coin!r}")
            (self.state.oi_capped.add if on else self.state.oi_capped.discard)(coin)

    def set_mid(self, coin: str, px) -> None:
        """Move a mid, fire what it crosses, and push allMids (and what the triggers did) to /ws subscribers."""
        with self.userdata.changes():
            self.state.set_mid(coin, px)
        self.sockets.push_mids(hl_dexes.dex_of(coin))

    def set_mark(self, coin: str, px) -> None:
        """Move only a mark price (set_mid moves mid and mark together); triggers fire on the mark."""
        with self.userdata.changes():
            self.state.set_mark(coin, px)

    def set_liquidity(self, coin: str, sz) -> None:
        self.state.set_liquidity(coin, sz)

    def pay_funding(self, coin: str, rate) -> list[dict]:
        """Settle funding on a coin now at `rate` for every account holding it (hl_ledger); the userFunding records."""
        with self.userdata.changes():
            paid = hl_ledger.pay_funding(self.state, coin, rate)
        return [hl_ledger.funding_record(p) for p in paid]

    def books(self, user: str) -> dict[str, str]:
        """The simulator's own totals for an account: realized PnL, fees, funding, net (hl_ledger.books)."""
        return hl_ledger.books(self.state, user)

    def mids(self, dex: str = "") -> dict[str, str]:
        """What allMids says: the main perps' mids, then the spot-style ones the ticker adds; a HIP-3 dex's own."""
        return self.sockets.mids(dex)

    def start_ticker(self, interval: float = 0.07, spot_coins: int = 500) -> None:
        """Market data as on Hyperliquid: allMids pushed whole to /ws subscribers every `interval` seconds (a
        block is about 70 ms), carrying `spot_coins` spot-style "@N" mids besides the perps, so each push is as
        large as the real one (10 KB or so). One "@N" mid moves per push; the perps' mids move only by set_mid,
        so trading is unaffected. Runs until stop(); a second start is a no-op."""
        if not interval > 0:
            raise ValueError(f"interval must be over 0 seconds, not {interval}")
        with self._lock:
            if self._ticker is not None:
                return
            with self.state.lock:
                for i in range(spot_coins):
                    # five significant figures over several magnitudes, as spot prices run: 0.0014286 .. 1428.6
                    px = (Decimal(1 + i % 97) / 7).scaleb(i % 7 - 3).quantize(Decimal(10) ** (i % 7 - 7))
                    self.state.spot_mids.setdefault(f"@{i}", px)
            self._ticker = threading.Thread(
                target=self._tick, args=(float(interval),), name="hl-sim-ticker", daemon=True
            )
            self._ticker.start()

    def _tick(self, interval: float) -> None:
        step = 0
        while not self.stopping.wait(interval):
            with self.state.lock:
                spots = self.state.spot_mids
                if spots:  # "@0" .. "@N-1", one per push in turn
                    coin = f"@{step % len(spots)}"
                    tick = Decimal(1).scaleb(spots[coin].as_tuple().exponent)  # its last digit
                    spots[coin] += tick if (step // len(spots)) % 2 else -tick  # down one round, up the next
            step += 1
            self.sockets.push_mids()

    # ---- the user-data feeds ------------------------------------------------------
    def set_userdata_delay(self, seconds: float) -> None:
        """Every user-data push leaves `seconds` later: a lagging feed, still in order."""
        self.userdata.set_delay(seconds)

    def pause_userdata(self, paused: bool = True) -> None:
        """While paused, user-data pushes (snapshots too) are dropped silently; subscriptions stay, pings get pongs
        and allMids goes on: a subscription that died without a word."""
        self.userdata.pause(paused)

    def set_account_push_interval(self, seconds: float) -> None:
        """Also push clearinghouseState and openOrders every `seconds`, changed or not (0: only on a change)."""
        # how often the exchange pushes them unprompted is unconfirmed: its docs do not say
        self.userdata.set_interval(seconds)

    def set_userdata_snapshots(self, on: bool) -> None:
        """Whether clearinghouseState / openOrders / activeAssetData send the state at once on subscribe."""
        # on (the default) or only at the next change: the live behaviour is unconfirmed, a client must take both
        self.userdata.set_snapshots(on)

    def userdata_pushes(self) -> int:
        """How many user-data messages went out, counted per connection, snapshots included."""
        return self.userdata.pushes()

    # ---- limits -------------------------------------------------------------
    def weight_used(self, ip: str = "127.0.0.1") -> int:
        """The request weight `ip` spent in the last minute (hl_weights)."""
        return self.weights.used(ip)

    def set_weight_limit(self, n: int) -> None:
        """The weight an IP may spend a minute before it is answered 429 (1200, as on the exchange)."""
        self.weights.set_limit(n)

    def reset_weights(self) -> None:
        """Forget every IP's spending: a fresh minute."""
        self.weights.reset()

    def limit_address(self, user: str, on: bool = True) -> None:
        """While on, the user's order and batchModify actions get the address-based limit's refusal; cancels pass."""
        with self.state.lock:
            if on:
                self.state.limited.add(user.lower())
            else:
                self.state.limited.discard(user.lower())

    def refuse_entry_in_position_tpsl(self, on: bool = True) -> None:
        """While on, a positionTpsl action that carries an entry order is refused as a whole, nothing of it applied
        (MetaMask's testnet premise: the exchange "rejects the whole batch"; unconfirmed, EXCHANGE.md §8). Off (the
        default), the entry goes first and the legs are checked against the position it leaves (hl_grouping)."""
        if not isinstance(on, bool):
            raise ValueError(f"on must be true or false, not {on!r}")
        with self.state.lock:
            self.state.refuse_entry = on

    # ---- faults -------------------------------------------------------------
    def inject(self, kind: str, count: int = 1, path: str = "/exchange", answer: str | None = None) -> None:
        """The next `count` requests to `path` fail so: 500 / 429 / 403 (refused, nothing applied), timeout (applied,
        answered late), drop (applied, answer lost), html (applied, a gateway's HTML page instead of the answer),
        answer (applied, `answer` as the JSON text instead of the real one), hold (held in transit for timeout_s
        seconds, then applied: the client has given up on it by then, and may have sent more meanwhile).

        A request the weight limit refuses (429) leaves its fault for the next one. Shapes a client must survive,
        by answer: an order "ok" with no per-order statuses,
        answer='{"status":"ok","response":{"type":"order","data":{}}}'; a garbled /info answer, path="/info" with
        answer="{}", '{"error":"..."}' or "null"."""
        self.faults.inject(kind, count, path, answer)

    def set_clock_offset(self, seconds: float) -> None:
        """The exchange's clock runs `seconds` ahead of this machine's (negative: behind)."""
        with self.state.lock:
            self.state.clock_offset = float(seconds)

    def reset_faults(self) -> None:
        self.faults.reset()

    # ---- inspection (copies) ---------------------------------------------------
    def applied_orders(self, user: str | None = None) -> list[dict]:
        with self.state.lock:
            return [hl_views.applied(o) for o in self.state.orders if user is None or hl_views.owns(user, o)]

    def rejected_orders(self, user: str | None = None) -> list[dict]:
        """Orders the exchange refused at placement, kept with their oid and rejected status."""
        with self.state.lock:
            return [hl_views.applied(o) for o in self.state.rejected if user is None or hl_views.owns(user, o)]

    def applied_count(self, user: str | None = None) -> int:
        """How many orders the exchange applied (for a user): applied_orders' length, without building it."""
        with self.state.lock:
            return sum(1 for o in self.state.orders if user is None or hl_views.owns(user, o))

    def positions(self, user: str, dex: str = "") -> dict[str, str]:
        """coin -> signed size on `dex` ("" the main dex, "xyz" a HIP-3 dex)."""
        with self.state.lock:
            return hl_views.positions(self.state, hl_dexes.account_key(user, dex))

    def open_orders(self, user: str, dex: str = "") -> list[dict]:
        with self.state.lock:
            return hl_views.open_orders(self.state, hl_dexes.account_key(user, dex))

    def leverage(self, user: str, coin: str) -> dict:
        with self.state.lock:
            kind, value = self.state.lev(self.state.accounts[hl_dexes.account_key(user, hl_dexes.dex_of(coin))], coin)
            return {"type": kind, "value": value}

    def exchange_log(self) -> list[dict]:
        return self.requests.exchange_log()

    def request_count(self, path: str = "/exchange", type: str | None = None) -> int:
        return self.requests.request_count(path, type)

    # ---- /ws ------------------------------------------------------------------
    def push_ws_raw(self, text: str | bytes) -> int:
        """Send one text frame as it is (bytes may be anything) to every allMids subscriber: what a broken feed
        could send. Returns how many got it."""
        return self.sockets.push_raw(text)
