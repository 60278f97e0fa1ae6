"""A local Hyperliquid: /info, /exchange, /control and the /ws socket (allMids, and the user-data feeds of hl_userdata).

Speaks exactly what `hyperliquid-python-sdk` sends, checks every /exchange
signature, counts request weights per client IP (hl_weights) and injects faults
(5xx, 429, timeouts, dropped responses) on demand.
"""

from __future__ import annotations

import collections
import json
import logging
import socket
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from eth_keys.exceptions import BadSignature
from hyperliquid.utils import signing

from fractrade_sync.sim import hl_accounts, hl_dexes, hl_ledger, hl_userdata, hl_views, hl_weights, wsserver
from fractrade_sync.sim.hl_state import ExchangeError, HyperliquidState

log = logging.getLogger(__name__)

FAULTS = ("500", "429", "403", "timeout", "drop", "html", "answer", "hold")
# A gateway in front of the exchange (Cloudflare, a proxy) can answer 200 with its own HTML page; Hyperliquid's own
# API answers JSON only (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint).
GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"
BAD_BODY = "Failed to deserialize the JSON body into the target type"
# past the IP's weight limit: HTTP 429, body `null` (the SDK raises ClientError(429, None, 'null', None, headers),
# as public bots' logs show it; EXCHANGE.md §2); whether it carries Retry-After is unconfirmed, so it does not
RATE_LIMITED_BODY = "null"
# the /ws answer to a webData2 subscription since 2026-07: an error frame echoing the request (haocn-ops/hyperopen
# docs/exec-plans/active/2026-07-14-base-dex-clearinghouse-stream-replaces-webdata2.md, a live probe; nktkas/hyperliquid
# removed the subscription on 2026-07-15); the echo is the text as received here (its exact form is unconfirmed)
WS_REFUSED = "Error parsing JSON into valid websocket request: "
APPROVE_AGENT_TYPES = [
    {"name": "hyperliquidChain", "type": "string"},
    {"name": "agentAddress", "type": "address"},
    {"name": "agentName", "type": "string"},
    {"name": "nonce", "type": "uint64"},
]


class HyperliquidSimulator:
    """The simulated exchange on 127.0.0.1; `url` is the SDK's base_url."""

    def __init__(self, host="127.0.0.1", port=0, *, mids=None):
        self.state = HyperliquidState(mids)
        self.latency_s = 0.0
        self.timeout_s = 3.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._mids_order = threading.Lock()  # serializes allMids snapshots and pushes
        self._faults: collections.deque[tuple[str, str, str | None]] = collections.deque()
        self._log: list[dict] = []
        self._counts: collections.Counter = collections.Counter()
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._ws: dict[object, set[str]] = {}  # connection -> the dexes whose allMids it subscribed to ("": main)
        self._userdata = hl_userdata.UserFeed(self.state)  # orderUpdates, userFills and the account's state
        self.weights = hl_weights.RequestWeights()
        self._server = _Server((host, port), self)
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
        self._userdata.start(name=f"hl-sim-{self._server.server_address[1]}-userdata")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, drop every connection, join threads (bounded); idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()  # wakes injected sleeps and WebSocket loops
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._server.shutdown()
        with self._lock:
            conns, clients = list(self._ws), dict(self._clients)
        for conn in conns:
            conn.abort()
        wsserver.shut_down(clients)
        self._server.server_close()
        self._userdata.stop(max(0.0, deadline - time.monotonic()))
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
        with self._userdata.changes():
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
        with self._userdata.changes():
            self.state.set_mid(coin, px)
        self._push_mids(hl_dexes.dex_of(coin))

    def set_mark(self, coin: str, px) -> None:
        """Move only a mark price (set_mid moves mid and mark together); triggers fire on the mark."""
        with self._userdata.changes():
            self.state.set_mark(coin, px)

    def set_liquidity(self, coin: str, sz) -> None:
        self.state.set_liquidity(coin, sz)

    def pay_funding(self, coin: str, rate) -> list[dict]:
        """Settle funding on a coin now at `rate` for every account holding it (hl_ledger); the userFunding records."""
        with self._userdata.changes():
            paid = hl_ledger.pay_funding(self.state, coin, rate)
        return [hl_ledger.funding_record(p) for p in paid]

    def books(self, user: str) -> dict[str, str]:
        """The simulator's own totals for an account: realized PnL, fees, funding, net (hl_ledger.books)."""
        return hl_ledger.books(self.state, user)

    def mids(self, dex: str = "") -> dict[str, str]:
        """What allMids says: the main perps' mids, then the spot-style ones the ticker adds; a HIP-3 dex's own."""
        with self.state.lock:
            return hl_views.all_mids(self.state, dex)

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
        while not self._stop.wait(interval):
            with self.state.lock:
                spots = self.state.spot_mids
                if spots:  # "@0" .. "@N-1", one per push in turn
                    coin = f"@{step % len(spots)}"
                    tick = Decimal(1).scaleb(spots[coin].as_tuple().exponent)  # its last digit
                    spots[coin] += tick if (step // len(spots)) % 2 else -tick  # down one round, up the next
            step += 1
            self._push_mids()

    # ---- the user-data feeds ------------------------------------------------------
    def set_userdata_delay(self, seconds: float) -> None:
        """Every user-data push leaves `seconds` later: a lagging feed, still in order."""
        self._userdata.set_delay(seconds)

    def pause_userdata(self, paused: bool = True) -> None:
        """While paused, user-data pushes (snapshots too) are dropped silently; subscriptions stay, pings get pongs
        and allMids goes on: a subscription that died without a word."""
        self._userdata.pause(paused)

    def set_account_push_interval(self, seconds: float) -> None:
        """Also push clearinghouseState and openOrders every `seconds`, changed or not (0: only on a change)."""
        # how often the exchange pushes them unprompted is unconfirmed: its docs do not say
        self._userdata.set_interval(seconds)

    def set_userdata_snapshots(self, on: bool) -> None:
        """Whether clearinghouseState / openOrders / activeAssetData send the state at once on subscribe."""
        # on (the default) or only at the next change: the live behaviour is unconfirmed, a client must take both
        self._userdata.set_snapshots(on)

    def userdata_pushes(self) -> int:
        """How many user-data messages went out, counted per connection, snapshots included."""
        return self._userdata.pushes()

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
        if kind not in FAULTS:
            raise ValueError(f"fault kind {kind!r}: use one of {', '.join(FAULTS)}")
        with self._lock:
            self._faults.extend([(kind, path, answer)] * count)

    def set_clock_offset(self, seconds: float) -> None:
        """The exchange's clock runs `seconds` ahead of this machine's (negative: behind)."""
        with self.state.lock:
            self.state.clock_offset = float(seconds)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> tuple[str | None, str | None]:
        with self._lock:
            for i, (kind, fault_path, answer) in enumerate(self._faults):
                if fault_path == path:
                    del self._faults[i]
                    return kind, answer
        return None, None

    def _put_back_fault(self, kind: str | None, path: str, answer: str | None) -> None:
        """Return a taken fault to the head of the line: the request it was meant for never got through."""
        if kind is not None:
            with self._lock:
                self._faults.appendleft((kind, path, answer))

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
        with self._lock:
            return json.loads(json.dumps(self._log))

    def request_count(self, path: str = "/exchange", type: str | None = None) -> int:
        with self._lock:
            return sum(n for (p, t), n in self._counts.items() if p == path and type in (None, t))

    # ---- request handling (called from handler threads) -------------------------
    def _count(self, path: str, body) -> None:
        kind = None
        if isinstance(body, dict):
            action = body.get("action")
            kind = action.get("type") if isinstance(action, dict) else body.get("type", body.get("op"))
        with self._lock:
            self._counts[(path, kind)] += 1

    def _record(self, body, status: int, response, fault: str | None, signer=None) -> None:
        action = body.get("action") if isinstance(body, dict) else None
        if isinstance(response, dict) and response.get("status") == "err":
            errors = [response.get("response")]
        elif isinstance(response, dict) and response.get("status") == "ok":
            statuses = (response["response"].get("data") or {}).get("statuses", [])
            errors = [s["error"] for s in statuses if isinstance(s, dict) and "error" in s]
        else:
            errors = [response]
        entry = {
            "action_type": action.get("type") if isinstance(action, dict) else None,
            # an order action's grouping as sent ("na", "normalTpsl", "positionTpsl"; hl_grouping), else None
            "grouping": action.get("grouping") if isinstance(action, dict) and action.get("type") == "order" else None,
            "nonce": body.get("nonce") if isinstance(body, dict) else None,
            "expiresAfter": body.get("expiresAfter") if isinstance(body, dict) else None,
            "vaultAddress": body.get("vaultAddress") if isinstance(body, dict) else None,
            "signer": signer,
            "http_status": status,
            "ok": status == 200 and isinstance(response, dict) and response.get("status") == "ok",
            "errors": errors,
            "response": response,
            "fault": fault,
        }
        with self._lock:
            self._log.append(entry)

    def _exchange(self, body) -> tuple[int, object, str | None]:
        """Verify and apply one /exchange body: (http status, answer, signer)."""
        try:
            action, nonce, sig = body["action"], body["nonce"], body["signature"]
            vault, expires = body.get("vaultAddress"), body.get("expiresAfter")
            kind = action["type"]
        except (KeyError, TypeError) as exc:
            return 422, f"{BAD_BODY}: missing field {exc}", None
        signer = None
        try:
            try:
                signer = self._recover(kind, action, sig, nonce, expires, vault).lower()
            except (ValueError, KeyError, TypeError, BadSignature):
                # A malformed signature: there is no address to name.
                raise ExchangeError("Unable to recover signer.") from None
            with self._userdata.changes():
                if kind == "approveAgent":
                    self.state.exchange_approve_agent(action, signer, nonce)
                    answer = {"type": "default"}
                else:
                    answer = self.state.exchange(action, signer, nonce, expires, vault)
            return 200, {"status": "ok", "response": answer}, signer
        except ExchangeError as exc:
            return 200, {"status": "err", "response": str(exc)}, signer
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            return 422, f"{BAD_BODY}: {exc!r}", signer

    @staticmethod
    def _recover(kind, action, sig, nonce, expires, vault) -> str:
        # A local base_url is never MAINNET_API_URL, so the SDK signs as testnet.
        if kind == "approveAgent":
            # The SDK signs agentName "" and then drops the key when no name is given.
            signed = {"agentName": "", **action}
            return signing.recover_user_from_user_signed_action(
                signed,
                sig,
                APPROVE_AGENT_TYPES,
                "HyperliquidTransaction:ApproveAgent",
                False,
            )
        # the action is hashed as it came, every field in the order sent: the order action's "grouping" ("na",
        # "normalTpsl", "positionTpsl") is part of what is signed (the SDK's signing.order_wires_to_order_action), so
        # an action sent with another grouping than signed recovers another address, one with no account. So is the
        # vaultAddress: the SDK's signing.action_hash appends it to the hashed action, so it is recovered with the one
        # received, and one sent with another vault than signed (or none) names another signer. (An approveAgent is
        # user-signed, for the signer's own account: a vaultAddress beside it is ignored here, unconfirmed.)
        return signing.recover_agent_or_user_from_l1_action(action, sig, vault, nonce, expires, False)

    def _control(self, body) -> tuple[int, object]:
        """The /control API: the Python API above, as JSON."""
        op = body.pop("op", None) if isinstance(body, dict) else None
        ops = {
            "add_account": self.add_account,
            "approve_agent": self.approve_agent,
            "set_mid": self.set_mid,
            "set_mark": self.set_mark,
            "start_ticker": self.start_ticker,
            "set_liquidity": self.set_liquidity,
            "add_sub_account": self.add_sub_account,
            "add_vault": self.add_vault,
            "fund_dex": self.fund_dex,
            "cap_open_interest": self.cap_open_interest,
            "pay_funding": self.pay_funding,
            "books": self.books,
            "inject": self.inject,
            "reset_faults": self.reset_faults,
            "set_latency": lambda seconds: setattr(self, "latency_s", float(seconds)),
            "set_timeout": lambda seconds: setattr(self, "timeout_s", float(seconds)),
            "set_clock_offset": self.set_clock_offset,
            "set_userdata_delay": self.set_userdata_delay,
            "pause_userdata": self.pause_userdata,
            "set_account_push_interval": self.set_account_push_interval,
            "set_userdata_snapshots": self.set_userdata_snapshots,
            "userdata_pushes": self.userdata_pushes,
            "weight_used": self.weight_used,
            "set_weight_limit": self.set_weight_limit,
            "reset_weights": self.reset_weights,
            "limit_address": self.limit_address,
            "refuse_entry_in_position_tpsl": self.refuse_entry_in_position_tpsl,
            "rejected_orders": self.rejected_orders,
            "mids": self.mids,
            "applied_orders": self.applied_orders,
            "applied_count": self.applied_count,
            "positions": self.positions,
            "open_orders": self.open_orders,
            "leverage": self.leverage,
            "exchange_log": self.exchange_log,
            "request_count": self.request_count,
        }
        if op not in ops:
            return 400, {"error": f"unknown op {op!r}; ops: {', '.join(ops)}"}
        try:
            result = ops[op](**body)
        except (TypeError, ValueError, KeyError, ExchangeError) as exc:
            return 400, {"error": f"{op}: {exc}"}
        return 200, {"ok": True} if result is None else result

    # ---- /ws ------------------------------------------------------------------
    def _serve_ws(self, handler: BaseHTTPRequestHandler) -> None:
        conn = wsserver.accept(handler)
        if conn is None:
            return
        with self._lock:
            self._ws[conn] = set()
        try:
            while not self._stop.is_set() and not conn.closed:
                try:
                    text = conn.recv(timeout=0.2)
                except TimeoutError:
                    continue
                if text is None:
                    break
                self._ws_message(conn, text)
        finally:
            with self._lock:
                self._ws.pop(conn, None)
            self._userdata.drop(conn)
            conn.abort()

    def _ws_message(self, conn, text: str) -> None:
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
            self._userdata.unsubscribe(conn, user_key)  # before the answer: nothing comes after it
        elif all_mids:
            with self._lock:
                (self._ws[conn].add if method == "subscribe" else self._ws[conn].discard)(dex)
        _send(conn, {"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}})
        if user_key and method == "subscribe":
            self._userdata.subscribe(conn, user_key)  # after the answer, which its snapshot must follow
        elif method == "subscribe":
            with self._mids_order:  # a snapshot never overtakes a newer push
                wsserver.broadcast([conn], self._mids_message(dex))

    def push_ws_raw(self, text: str | bytes) -> int:
        """Send one text frame as it is (bytes may be anything) to every allMids subscriber: what a broken feed
        could send. Returns how many got it."""
        with self._mids_order:
            return wsserver.broadcast(self._subscribers(), text)

    def _push_mids(self, dex: str = "") -> None:
        with self._mids_order:  # pushes leave in the order the mids moved, as on the exchange
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
            return [conn for conn, dexes in self._ws.items() if dex in dexes]


def _send(conn, message: dict) -> None:
    """Send one JSON message; a closed peer is noticed and dropped by its reader loop."""
    wsserver.broadcast([conn], json.dumps(message))


class _Server(ThreadingHTTPServer):
    """Tracks each connection's socket and thread so stop() can end and join them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, sim: HyperliquidSimulator):
        self.sim = sim
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"hl-sim-{self.server_address[1]}-conn-{client_address[1]}",
            daemon=True,
        )
        with self.sim._lock:
            self.sim._clients[request] = thread
        thread.start()

    def shutdown_request(self, request):
        with self.sim._lock:
            self.sim._clients.pop(request, None)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests.Session expects
    # headers and body go out in separate writes: without this, Nagle plus the client's delayed ACK adds ~40 ms
    disable_nagle_algorithm = True
    server_version = "hyperliquid-sim"

    def log_message(self, fmt, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self) -> None:
        sim: HyperliquidSimulator = self.server.sim
        if urlsplit(self.path).path == "/ws":
            sim._serve_ws(self)
        else:
            self._reply(404, "Not Found")

    def do_POST(self) -> None:
        sim: HyperliquidSimulator = self.server.sim
        path = urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        sim._count(path, body)
        if sim.latency_s > 0:
            sim._stop.wait(sim.latency_s)
        fault, fault_answer = sim._take_fault(path)
        if fault in ("500", "429", "403"):  # refused before anything is applied (403: a gateway's, e.g. a WAF)
            status, answer = {"500": (500, "Internal Server Error"), "429": (429, ""), "403": (403, "Forbidden")}[fault]
            if path == "/exchange":
                sim._record(body, status, answer, fault)
            self._reply(status, answer)
            return
        if not sim.weights.admit(self.client_address[0], hl_weights.weight(path, body)):
            sim._put_back_fault(fault, path, fault_answer)  # refused, not applied: past the IP's weight limit
            if path == "/exchange":
                sim._record(body, 429, RATE_LIMITED_BODY, None)
            self._reply(429, RATE_LIMITED_BODY, "application/json")
            return
        if fault == "hold":  # still on its way: everything sent after it meanwhile arrives first
            sim._stop.wait(sim.timeout_s)
        signer = None
        if body is None and path in ("/info", "/exchange", "/control"):
            status, answer = 422, f"{BAD_BODY}: expected a JSON object"
        elif path == "/info":
            with sim._userdata.changes():  # a scheduled cancel may come due now
                sim.state.tick()
                status, answer = hl_views.answer(sim.state, body)
        elif path == "/exchange":
            status, answer, signer = sim._exchange(body)
            sim._record(body, status, answer, fault, signer)
        elif path == "/control":
            status, answer = sim._control(body)
        else:
            status, answer = 404, "Not Found"
        if fault == "drop":  # applied; the answer is lost with the connection
            self.close_connection = True
            return
        if fault == "timeout":
            sim._stop.wait(sim.timeout_s)
        if fault == "html":
            self._reply(200, GATEWAY_PAGE, "text/html")
            return
        if fault == "answer":
            self._reply(200, fault_answer or "", "application/json")
            return
        self._reply(status, answer)

    def _reply(self, status: int, answer, content_type: str = "text/plain; charset=utf-8") -> None:
        if isinstance(answer, str):
            data, ctype = answer.encode(), content_type
        else:
            data, ctype = json.dumps(answer).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its read timeout)
