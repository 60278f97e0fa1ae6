"""The simulated Hyperliquid perp exchange: accounts, orders, rules, nonces, triggers.

Pure state, no I/O; every public method takes the one lock. Error texts are
Hyperliquid's own, from the API docs' "Error responses" page unless marked
`# text unconfirmed`:
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/error-responses
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import partial

from fractrade_sync.sim import hl_accounts, hl_dexes, hl_grouping, hl_ledger

ZERO = Decimal(0)
DAY_MS = 86_400_000
NONCES_KEPT = 100  # "Hyperliquid keeps the 100 highest nonces for each key"
MIN_NOTIONAL = Decimal(10)
FILLS_KEPT = 10_000  # "only the 10000 most recent fills are available" (API docs, info endpoint: userFillsByTime)
# more cancels than this in one action are refused as a whole, with this text (MarcosACH/tickwright
# docs/research/hyperliquid-reduce-only-cancel-market-probes.md P4, a testnet probe with 201 cancels)
MAX_CANCELS = 200
TOO_MANY_CANCELS = f"Signed action over weight limit of {MAX_CANCELS}."
# the address-based limit (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-
# limits: "Each address starts with an initial buffer of 10000 requests", "1 request per 1 USDC traded"); the live
# refusal, HTTP 200 (MarcosACH/tickwright docs/research/hyperliquid-rate-limit-window-probe.md): "Too many cumulative
# requests sent (97460 > 97456) for cumulative volume traded $87457.46. Place taker orders to free up 1 request per
# USDC traded."
ADDRESS_BUFFER = 10_000
ADDRESS_LIMITED = (
    "Too many cumulative requests sent ({sent} > {cap}) for cumulative volume traded ${volume}. "
    "Place taker orders to free up 1 request per USDC traded."
)
# the live refusal of cross margin on an isolated-only asset, as several public clients quote it (seen on xyz:SMSN,
# OX, ZRO, W); EXCHANGE.md §5
CROSS_NOT_ALLOWED = "Cross margin is not allowed for this asset."

# name, szDecimals, maxLeverage, default mid: one asset per szDecimals 0..5;
# BTC, ETH, ATOM keep their mainnet asset ids 0, 1, 2.
UNIVERSE = (
    ("BTC", 5, 40, "50000"),
    ("ETH", 4, 25, "3000"),
    ("ATOM", 2, 10, "8.5"),
    ("SOL", 2, 20, "150"),
    ("DOGE", 0, 10, "0.2"),
    ("BNB", 3, 10, "600"),
    ("XRP", 1, 20, "0.6"),
    ("kPEPE", 0, 10, "0.012"),
    ("HYPE", 2, 10, "25"),
    ("ZRO", 1, 5, "2.5"),
)
# isolated-only assets: meta marks them `"onlyIsolated": true, "marginMode": "strictIsolated"` (nktkas/hyperliquid
# src/api/info/_methods/meta.ts; ZRO is one on mainnet, as public clients report); cross leverage is refused
# (the HIP-3 dexes' coins, "xyz:NVDA", with theirs: hl_dexes)
ISOLATED_ONLY = frozenset({"ZRO", *hl_dexes.MARGIN_MODES})
SZ_DECIMALS = {**{name: sz for name, sz, _lev, _mid in UNIVERSE}, **hl_dexes.SZ_DECIMALS}
MAX_LEVERAGE = {**{name: lev for name, _sz, lev, _mid in UNIVERSE}, **hl_dexes.MAX_LEVERAGE}
COINS = [name for name, *_rest in UNIVERSE]


# an order refused at placement -> its status in orderStatus (names: nktkas/hyperliquid
# src/api/info/_methods/orderStatus.ts; the pairing with the texts is unconfirmed)
REJECTED_STATUSES = (
    ("Order must have minimum value", "minTradeNtlRejected"),
    ("Reduce only order would increase position", "reduceOnlyRejected"),
    ("Insufficient margin to place order", "perpMarginRejected"),
    ("Order could not immediately match", "iocCancelRejected"),
    ("Post only order would have immediately matched", "badAloPxRejected"),
    ("Order price cannot be more than 80% away", "oracleRejected"),
    (hl_dexes.OI_CAPPED, hl_dexes.OI_CAPPED_STATUS),
)


class ExchangeError(Exception):
    """An action refused as a whole: {"status": "err", "response": text}."""


class _Bare(ValueError):
    """An order error that Hyperliquid sends without the " asset=N" suffix."""


@dataclass
class Position:
    szi: Decimal
    entry_px: Decimal


@dataclass
class Order:
    oid: int
    user: str
    signer: str
    nonce: int
    coin: str
    is_buy: bool
    sz: Decimal
    limit_px: Decimal
    tif: str | None
    trigger: dict | None
    reduce_only: bool
    cloid: str | None
    timestamp: int
    status: str = "open"
    status_ts: int = 0
    filled_sz: Decimal = ZERO
    filled_ntl: Decimal = ZERO
    cut: Decimal = ZERO  # what reduce-only shrinking took off: neither filled nor left (origSz stays sz)
    position_tpsl: bool = False  # a positionTpsl leg (frontendOpenOrders' isPositionTpsl): hl_grouping
    parent: int | None = None  # a normalTpsl child waiting for this oid's fill ("waitingForFill"): hl_grouping
    whole: Decimal = ZERO  # a size-0 position leg's size once it fires: the position at that moment (hl_grouping)

    @property
    def remaining(self) -> Decimal:
        # a size-0 position leg is "0.0" until it fires (EXCHANGE.md §8: origSz "0" confirmed, sz "0.0" unconfirmed)
        return (self.sz or self.whole) - self.filled_sz - self.cut

    @property
    def avg_px(self) -> Decimal | None:
        if not self.filled_sz:
            return None
        return (self.filled_ntl / self.filled_sz).quantize(Decimal("1e-8"))


@dataclass
class Fill:
    """One execution of an order, kept for the userFills feed (hl_userdata renders it)."""

    user: str
    coin: str
    is_buy: bool
    px: Decimal
    sz: Decimal
    time: int
    start: Decimal  # the position before this fill
    closed_pnl: Decimal
    oid: int
    cloid: str | None
    crossed: bool  # taker: the order crossed the book when it filled
    tid: int
    fee: Decimal = ZERO  # what the fill cost, charged to the account (hl_ledger.fill_fee)


@dataclass
class Account:
    usdc: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, tuple[str, int]] = field(default_factory=dict)
    agents: dict[str, dict] = field(default_factory=dict)  # agent -> {name, validUntil}
    scheduled_cancel: int | None = None


def dec(text, what: str) -> Decimal:
    """Parse a wire decimal string; ValueError names the field."""
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        raise ValueError(what) from None
    if not value.is_finite():
        raise ValueError(what)
    return value


def _wire_asset(wire: dict) -> int:
    """The asset of a well-formed order wire; TypeError (HTTP 422) for a malformed one."""
    kind = wire.get("t") if isinstance(wire, dict) else None
    ok = isinstance(kind, dict) and all(k in wire for k in "abpsr")
    if ok and "limit" in kind:
        ok = kind["limit"].get("tif") in ("Gtc", "Ioc", "Alo")
    elif ok:
        ok = {"triggerPx", "isMarket", "tpsl"} <= set(kind.get("trigger", {})) and kind["trigger"]["tpsl"] in (
            "tp",
            "sl",
        )
    if not ok:
        raise TypeError(f"orders: invalid order {wire!r}")
    return wire["a"]


def decimals(x: Decimal) -> int:
    return max(0, -x.normalize().as_tuple().exponent)


def price_error(px: Decimal, sz_decimals: int) -> str | None:
    """Hyperliquid's perp price rule, or None when px is valid."""
    if px <= 0 or decimals(px) > 6 - sz_decimals:
        return "Order has invalid price."
    if px != px.to_integral_value() and len(px.normalize().as_tuple().digits) > 5:
        # More than 5 significant figures is refused with the tick-size text
        # (observed on testnet; e.g. "Price must be divisible by tick size. asset=3").
        return "Price must be divisible by tick size."
    return None


class HyperliquidState:
    """The exchange engine behind the simulator's /info and /exchange."""

    def __init__(self, mids=None, clock=time.time):
        self.lock = threading.RLock()
        self.clock = clock
        self.clock_offset = 0.0  # seconds the exchange's clock is ahead of this machine's (set_clock_offset)
        self.mids = {name: Decimal(mid) for name, _sz, _lev, mid in UNIVERSE}
        self.mids.update({coin: Decimal(mid) for coin, mid in hl_dexes.MIDS.items()})  # the HIP-3 dexes' coins
        for coin, px in (mids or {}).items():
            self.mids[coin] = dec(px, "mid")
        # "TP/SL are triggered by mark price, and then executed" (https://hyperliquid.gitbook.io/hyperliquid-docs/
        # support/faq/trade-outcome-looks-incorrect/my-tp-sl-did-not-execute-correctly); positions are valued at it
        # too (the docs' "Robust price indices": margining and unrealized pnl); set_mid moves it with the mid
        self.marks = dict(self.mids)
        self.liquidity: dict[str, Decimal | None] = {}
        self.spot_mids: dict[str, Decimal] = {}  # "@N" markets that are not perps here: allMids carries them only
        self.accounts: dict[str, Account] = {}
        self.agent_owner: dict[str, str] = {}
        self.nonces: dict[str, list[int]] = {}
        self.orders: list[Order] = []
        self.rejected: list[Order] = []  # orders refused at placement: orderStatus still knows them, with an oid
        self.next_oid = 1
        self.limited: set[str] = set()  # users over the address-based limit (limit_address)
        self.waiting: dict[int, list[Order]] = {}  # a normalTpsl parent's oid -> its children (hl_grouping)
        self.refuse_entry = False  # refuse a positionTpsl action that carries an entry (hl_grouping.refusal)
        self.vaults: dict[str, tuple[str, str, str]] = {}  # sub-account or vault -> (role, master, name): hl_accounts
        self.oi_capped: set[str] = set()  # coins at their open-interest cap (hl_dexes.OI_CAPPED)
        self.fills: collections.deque[Fill] = collections.deque(maxlen=FILLS_KEPT)
        self.next_tid = 1
        self.funding: collections.deque[hl_ledger.FundingPayment] = collections.deque(maxlen=FILLS_KEPT)
        # what changed for whom since hl_userdata last drained it: ("order", user, snapshot), ("fill", user, Fill),
        # ("account", user, None); the feed pushes them in this order
        self.journal: list[tuple[str, str, object]] = []

    def now_ms(self) -> int:
        """The exchange's clock: nonces' window, expiresAfter and timestamps are judged by it, not the client's."""
        return int((self.clock() + self.clock_offset) * 1000)

    # ---- set-up and market ------------------------------------------------
    def add_account(self, address: str, usdc=100_000) -> None:
        with self.lock:
            self.accounts[address.lower()] = Account(usdc=dec(usdc, "usdc"))
            for dex in hl_dexes.NAMES[1:]:  # its clearinghouse on each HIP-3 dex: nothing there until funded
                self.accounts[hl_dexes.account_key(address, dex)] = Account(usdc=ZERO)

    def approve_agent(self, user: str, agent: str, name: str = "", days: float = 180) -> None:
        user, agent = user.lower(), agent.lower()
        with self.lock:
            acct = self.accounts.get(user)
            if acct is None:
                raise ExchangeError(f"User or API Wallet {user} does not exist.")
            # A new agent under the same name (or a new unnamed one) replaces the old.
            for old, info in list(acct.agents.items()):
                if info["name"] == name:
                    del acct.agents[old]
                    self.agent_owner.pop(old, None)
            valid = self.now_ms() + int(days * DAY_MS)
            acct.agents[agent] = {"name": name, "validUntil": valid}
            self.agent_owner[agent] = user

    def set_mid(self, coin: str, px) -> None:
        with self.lock:
            if coin not in self.mids:
                raise KeyError(f"unknown coin {coin!r}; known: {', '.join(COINS)}")
            self.mids[coin] = self.marks[coin] = dec(px, "mid")
            self.tick()
            self._match_resting(coin)

    def set_mark(self, coin: str, px) -> None:
        """Move only the mark price (the mid stays): triggers fire on it."""
        with self.lock:
            if coin not in self.marks:
                raise KeyError(f"unknown coin {coin!r}; known: {', '.join(COINS)}")
            self.marks[coin] = dec(px, "mark")
            self.tick()
            self._match_resting(coin)

    def set_liquidity(self, coin: str, sz) -> None:
        """Cap every fill on coin at sz (None removes the cap)."""
        with self.lock:
            self.liquidity[coin] = None if sz is None else dec(sz, "liquidity")

    # ---- nonces and signers -------------------------------------------------
    def check_nonce_window(self, nonce: int) -> None:
        now = self.now_ms()
        low, high = now - 2 * DAY_MS, now + DAY_MS
        if nonce <= low:
            raise ExchangeError(f"Invalid nonce: nonce too low {nonce} < {low}")
        if nonce >= high:
            raise ExchangeError(f"Invalid nonce: nonce too high {nonce} > {high}")

    def user_of(self, signer: str) -> str:
        """The account signer trades for; refused when there is none."""
        signer = signer.lower()
        user = signer if signer in self.accounts else self.agent_owner.get(signer)
        if user is not None and user != signer and self.accounts[user].agents[signer]["validUntil"] <= self.now_ms():
            user = None  # an expired approval: as if the wallet were not there (text assumed, unconfirmed)
        if user is None:
            raise ExchangeError(f"User or API Wallet {signer} does not exist.")
        return user

    def authorize(self, signer: str, nonce: int) -> str:
        """Return the account signer trades for, and spend its nonce."""
        signer = signer.lower()
        user = self.user_of(signer)
        kept = self.nonces.setdefault(signer, [])
        if nonce in kept:
            raise ExchangeError(f"Invalid nonce: duplicate nonce {nonce}")
        if len(kept) >= NONCES_KEPT and nonce <= kept[0]:
            raise ExchangeError(f"Invalid nonce: nonce too low {nonce} < {kept[0]}")
        kept.append(nonce)
        kept.sort()
        del kept[:-NONCES_KEPT]
        return user

    # ---- /exchange --------------------------------------------------------
    def exchange(self, action: dict, signer: str, nonce: int, expires_after=None, vault: str | None = None):
        """Apply one signed L1 action, for the sub-account or vault `vault` if given; returns the "response" object."""
        with self.lock:
            self.tick()
            self.check_nonce_window(nonce)
            if expires_after is not None and expires_after < self.now_ms():
                raise ExchangeError("Action already expired")  # text unconfirmed
            kind = action.get("type")
            if kind == "order":  # a malformed body is refused before any nonce is spent
                for wire in action["orders"]:
                    _wire_asset(wire)
                # a grouped action refused as a whole by pre-validation: before the nonce is spent, as the cancel cap
                # below (unconfirmed)
                if refusal := hl_grouping.refusal(action, self.refuse_entry):
                    raise ExchangeError(refusal)
            if kind in ("cancel", "cancelByCloid") and len(action["cancels"]) > MAX_CANCELS:
                raise ExchangeError(TOO_MANY_CANCELS)  # before the nonce is spent: unconfirmed
            # the account it applies to: the signer's own, or the vaultAddress's (hl_accounts), refused before the
            # nonce is spent as an unknown signer is (unconfirmed)
            user = hl_accounts.acting_for(self, self.user_of(signer), vault)
            if user is None:
                raise ExchangeError(hl_accounts.NOT_REGISTERED.format(vault=str(vault).lower()))
            if kind in ("order", "batchModify"):
                self._check_address_limit(user)
            # "a single API wallet signing for a user, vault, or subaccount all share the same nonce set" (the docs'
            # "Nonces and API wallets", as quoted in ccxt issue #24628): the signer's nonce, whatever the account
            self.authorize(signer, nonce)
            if kind == "order":
                return self._orders(action, user, signer.lower(), nonce)
            if kind == "cancel":
                return self._cancels(user, action["cancels"], "a", "o")
            if kind == "cancelByCloid":
                return self._cancels(user, action["cancels"], "asset", "cloid")
            if kind == "updateLeverage":
                return self._update_leverage(user, action)
            if kind == "batchModify":
                return self._modify(user, signer.lower(), nonce, action["modifies"])
            if kind == "noop":
                # "This action does not do anything (no operation), but causes the nonce to be marked as used."
                # https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/exchange-endpoint
                # (#invalidate-pending-nonce-noop); the answer {"status":"ok","response":{"type":"default"}}
                return {"type": "default"}
            if kind == "scheduleCancel":
                self.accounts[user].scheduled_cancel = action.get("time")
                return {"type": "default"}
            raise ExchangeError(f"Unsupported action type {kind!r}")  # text unconfirmed

    def _check_address_limit(self, user: str) -> None:
        """Refuse an order or modify while limit_address holds the user (cancels have a higher limit: the docs'
        "Cancels have cumulative limit min(limit + 100000, limit * 2)"). The nonce is not spent: unconfirmed."""
        if user not in self.limited:
            return
        # the budget is all used; a refused request does not use more (one probe: tickwright, as above)
        volume = sum((f.px * f.sz for f in self.fills if f.user == user), ZERO)
        cap = ADDRESS_BUFFER + int(volume)
        raise ExchangeError(ADDRESS_LIMITED.format(sent=cap + 1, cap=cap, volume=f"{volume:.2f}"))

    def exchange_approve_agent(self, action: dict, signer: str, nonce: int) -> None:
        """The user-signed approveAgent action: only a funded account may approve."""
        with self.lock:
            self.check_nonce_window(nonce)
            if signer.lower() not in self.accounts:
                raise ExchangeError(f"Must deposit before performing actions. User: {signer}")
            self.authorize(signer, nonce)
            self.approve_agent(signer, action["agentAddress"], action.get("agentName", ""))

    def _coin(self, asset) -> str:
        if coin := hl_dexes.coin_of(asset):  # a HIP-3 dex's: 100000 + dex index x 10000 + index in its meta
            return coin
        if not isinstance(asset, int) or not 0 <= asset < len(COINS):
            raise ExchangeError(f"Invalid asset {asset}")  # text unconfirmed
        return COINS[asset]

    def _orders(self, action, user, signer, nonce) -> dict:
        coins = [self._coin(wire["a"]) for wire in action["orders"]]  # all or nothing
        if action.get("grouping", "na") == "na":
            statuses = [
                self._answer(wire, partial(self._place, user, signer, nonce, coin, wire))
                for coin, wire in zip(coins, action["orders"], strict=True)
            ]
        else:
            statuses = hl_grouping.place(self, action, user, signer, nonce)
        self._match_resting(None)
        return {"type": "order", "data": {"statuses": statuses}}

    @staticmethod
    def _answer(wire: dict, step) -> dict | str:
        """One order's status: what step() answers, or its refusal; a refused order does not stop the batch."""
        try:
            return step()
        except _Bare as exc:
            return {"error": str(exc)}
        except ValueError as exc:
            return {"error": f"{exc} asset={wire['a']}"}

    def _place(self, user, signer, nonce, coin, wire) -> dict:
        """Check one order wire against the rules, then rest or fill it."""
        return self._enter(self._parse(user, signer, nonce, coin, wire))

    def _enter(self, order: Order, waiting: bool = False) -> dict:
        """Check a parsed order against the rules (the reduce-only one not while `waiting` for a parent's fill), then
        rest or fill it; refused: ValueError, and the order's record is kept."""
        mid = self.mids[order.coin]
        crosses = order.limit_px >= mid if order.is_buy else order.limit_px <= mid
        try:
            self._check(order, waiting)
            if order.tif == "Alo" and crosses:
                bbo = f"{fmt(mid)}@{fmt(mid)}"
                raise ValueError(f"Post only order would have immediately matched, bbo was {bbo}.")
            if order.tif == "Ioc" and (not crosses or self._fill_qty(order) == 0):
                raise ValueError("Order could not immediately match against any resting orders.")
        except ValueError as exc:
            self._keep_rejected(order, str(exc))
            raise
        self.next_oid += 1
        self.orders.append(order)
        ident = {"oid": order.oid, **({"cloid": order.cloid} if order.cloid else {})}
        if order.trigger or order.tif == "Alo" or not crosses:
            if not order.trigger:
                self._shrink(order)  # rests at most the position's size (tickwright, see _shrink)
            self._note_order(order)
            return {"resting": ident}
        self._execute(order, mid)
        if order.tif == "Ioc" and order.status == "open":
            self._set_status(order, "canceled")  # the unfilled part of an IOC
        if order.status == "open":
            self._note_order(order)
            return {"resting": ident}  # a GTC partly filled; the rest rests
        return {"filled": {"totalSz": fmt(order.filled_sz), "avgPx": fmt(order.avg_px), **ident}}

    def _keep_rejected(self, order: Order, error: str) -> None:
        """Keep a refused order with its oid and a rejected status, as orderStatus answers it by cloid (the status
        names: nktkas/hyperliquid src/api/info/_methods/orderStatus.ts; that such an order has a record, and which
        text maps to which status, is unconfirmed; the answer's {"error"} carries no oid). Not an applied order; no
        orderUpdates push tells of it (unconfirmed)."""
        status = next((name for text, name in REJECTED_STATUSES if error.startswith(text)), "rejected")
        self.rejected.append(replace(order, status=status, status_ts=self.now_ms()))
        self.next_oid += 1

    def _parse(self, user, signer, nonce, coin, wire, whole_ok: bool = False) -> Order:
        """Wire -> Order, enforcing the size and price formats; size 0 only where `whole_ok` (a positionTpsl leg)."""
        sz_dec = SZ_DECIMALS[coin]
        sz = dec(wire["s"], "Order has invalid size.")
        px = dec(wire["p"], "Order has invalid price.")
        if sz == 0 and not whole_ok:
            # EXCHANGE.md §3 (ccxt's exception map) and §8 (hummingbot issue #7322); whether a size-0 trigger under
            # "na" is taken as the whole position instead is unconfirmed (§8): refused here
            raise ValueError("Order has zero size.")
        if sz < 0 or decimals(sz) > sz_dec:
            raise ValueError("Order has invalid size.")
        if err := price_error(px, sz_dec):
            raise ValueError(err)
        trigger = wire["t"].get("trigger")
        if trigger:
            trigger = {
                **trigger,
                "triggerPx": dec(trigger["triggerPx"], "Order has invalid price."),
            }
            if err := price_error(trigger["triggerPx"], sz_dec):
                raise ValueError(err)
        now = self.now_ms()
        return Order(
            oid=self.next_oid,
            user=hl_dexes.account_key(user, hl_dexes.dex_of(coin)),  # on a HIP-3 dex: the user's clearinghouse there
            signer=signer,
            nonce=nonce,
            coin=coin,
            is_buy=bool(wire["b"]),
            sz=sz,
            limit_px=px,
            tif=None if trigger else wire["t"]["limit"]["tif"],
            trigger=trigger,
            reduce_only=bool(wire.get("r", False)),
            cloid=wire.get("c"),
            timestamp=now,
            status_ts=now,
        )

    def _check(self, o: Order, waiting: bool = False) -> None:
        """The value, price-band, reduce-only (not while `waiting` for a parent's fill) and margin rules."""
        acct, mid = self.accounts[o.user], self.mids[o.coin]
        pos = acct.positions.get(o.coin)
        szi = pos.szi if pos else ZERO
        market_trigger = o.trigger and o.trigger["isMarket"]
        ref_px = o.trigger["triggerPx"] if market_trigger else o.limit_px
        # A reduce-only order that closes the whole position is exempt from $10 (a size-0 position leg always does:
        # it is the whole position, EXCHANGE.md §8).
        closes_all = o.reduce_only and szi and (szi < 0) == o.is_buy and o.sz >= abs(szi)
        if o.sz * ref_px < MIN_NOTIONAL and not closes_all and not (o.position_tpsl and o.sz == 0):
            raise ValueError("Order must have minimum value of $10.")
        if abs(o.limit_px - mid) > mid * Decimal("0.8"):
            # Hyperliquid sends this one without the " asset=N" suffix.
            raise _Bare("Order price cannot be more than 80% away from the reference price")
        if o.reduce_only and not waiting and (szi == 0 or (szi > 0) == o.is_buy):
            raise ValueError("Reduce only order would increase position.")
        if not o.reduce_only:
            grows = abs(szi + (o.sz if o.is_buy else -o.sz)) - abs(szi)
            need = grows * o.limit_px / self.lev(acct, o.coin)[1]
            if grows > 0 and o.coin in self.oi_capped:  # cap_open_interest (hl_dexes.OI_CAPPED)
                raise ValueError(hl_dexes.OI_CAPPED)
            if grows > 0 and need > self.available(o.user):
                raise ValueError("Insufficient margin to place order.")

    def _cancels(self, user, cancels, asset_key, id_key) -> dict:
        statuses = []
        for item in cancels:
            coin = self._coin(item[asset_key])
            found = [
                o
                for o in self.orders
                if o.user == hl_dexes.account_key(user, hl_dexes.dex_of(coin))
                and o.coin == coin
                and o.status == "open"
                and (o.oid if id_key == "o" else o.cloid) == item[id_key]
            ]
            for order in found:
                self._set_status(order, "canceled")
            if found:
                statuses.append("success")
            else:
                text = "Order was never placed, already canceled, or filled."
                statuses.append({"error": f"{text} asset={item[asset_key]}"})
        return {"type": "cancel", "data": {"statuses": statuses}}

    def _modify(self, user, signer, nonce, modifies) -> dict:
        """batchModify (the SDK's bulk_modify_orders_new): each open order, found by oid or cloid, is canceled and
        replaced by the new wire's order under a NEW oid (nautilus_trader issue #3827 / PR #3831, from live logs).
        The new order keeps the old one's cloid when the wire has none (unconfirmed: leaving `c` out may drop it).
        https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/exchange-endpoint#modify-multiple-orders"""
        statuses = []
        for item in modifies:
            ident, wire = item["oid"], item["order"]
            found = self._open_order(user, ident)
            if found is None:
                statuses.append({"error": "Cannot modify canceled or filled order"})  # text unconfirmed
                continue
            try:
                # a position leg stays one, size 0 allowed (unconfirmed, EXCHANGE.md §8 "Modifying a position TP/SL")
                new = self._parse(user, signer, nonce, self._coin(wire["a"]), wire, whole_ok=found.position_tpsl)
                new.position_tpsl, new.parent = found.position_tpsl, found.parent
                found.status = "canceled"  # its margin is free for the new order's check
                self._check(new, waiting=new.parent is not None)
            except ValueError as exc:
                found.status = "open"
                statuses.append({"error": f"{exc} asset={wire['a']}"})
                continue
            hl_grouping.carry_over(self, found, new)  # before the cancel: a parent's children go to the new oid
            self._set_status(found, "canceled")
            new.cloid = new.cloid or found.cloid
            self.next_oid += 1
            self.orders.append(new)
            self._note_order(new)
            statuses.append({"resting": {"oid": new.oid, **({"cloid": new.cloid} if new.cloid else {})}})
        self._match_resting(None)
        return {"type": "order", "data": {"statuses": statuses}}

    def _open_order(self, user: str, ident) -> Order | None:
        """The user's open order with this oid (an int) or cloid (a string)."""
        for o in self.orders:
            if hl_dexes.owner(o.user) != user or o.status != "open":
                continue
            if (o.cloid or "").lower() == ident.lower() if isinstance(ident, str) else o.oid == ident:
                return o
        return None

    def _update_leverage(self, user, action) -> dict:
        coin, value = self._coin(action["asset"]), action["leverage"]
        if not isinstance(value, int) or not 1 <= value <= MAX_LEVERAGE[coin]:
            raise ExchangeError("Invalid leverage value")
        kind = "cross" if action["isCross"] else "isolated"
        if kind == "cross" and coin in ISOLATED_ONLY:
            raise ExchangeError(CROSS_NOT_ALLOWED)
        user = hl_dexes.account_key(user, hl_dexes.dex_of(coin))  # a HIP-3 coin's leverage is its dex clearinghouse's
        acct = self.accounts[user]
        if coin in acct.positions and self.lev(acct, coin)[0] != kind:
            # as public clients quote Hyperliquid's refusal (the docs' "Error responses" page does not list it)
            raise ExchangeError("Cannot switch leverage type with open position.")
        acct.leverage[coin] = (kind, value)
        self.journal.append(("account", user, coin))
        return {"type": "default"}

    # ---- matching, fills, triggers ------------------------------------------
    def _fill_qty(self, order: Order) -> Decimal:
        """What can fill now: capped by the coin's liquidity and, if reduce-only, the position."""
        qty, cap = order.remaining, self.liquidity.get(order.coin)
        if cap is not None:
            qty = min(qty, cap)
        if order.reduce_only:
            pos = self.accounts[order.user].positions.get(order.coin)
            if pos is None or (pos.szi > 0) == order.is_buy:
                return ZERO
            qty = min(qty, abs(pos.szi))
        return max(qty, ZERO)

    def _shrink(self, order: Order) -> None:
        """A reduce-only order larger than the position is shrunk to it, not rejected: `sz` becomes what can fill,
        origSz stays the size asked, so origSz - sz is not what filled (MarcosACH/tickwright docs/research/
        hyperliquid-reduce-only-cancel-market-probes.md P1/P2: "sz":"0.02","origSz":"0.05" with nothing filled)."""
        pos = self.accounts[order.user].positions.get(order.coin)
        if order.reduce_only and pos is not None and (pos.szi > 0) != order.is_buy and order.remaining > abs(pos.szi):
            order.cut += order.remaining - abs(pos.szi)

    def _follow_position(self, user: str, coin: str) -> None:
        """Resting reduce-only limit orders shrink as the position shrinks and end "reduceOnlyCanceled" when it is
        closed (tickwright, as above); triggers are checked only when they fire (unconfirmed for resting ones)."""
        pos = self.accounts[user].positions.get(coin)
        for o in self.orders:
            if o.user != user or o.coin != coin or o.status != "open" or not o.reduce_only or o.trigger:
                continue
            if pos is None or (pos.szi > 0) == o.is_buy:
                self._set_status(o, "reduceOnlyCanceled")
            elif o.remaining > abs(pos.szi):
                self._shrink(o)
                self._note_order(o)

    def _execute(self, order: Order, px: Decimal, crossed: bool = True) -> None:
        acct = self.accounts[order.user]
        self._shrink(order)
        qty = self._fill_qty(order)
        if qty == 0:
            if order.reduce_only:
                self._set_status(order, "reduceOnlyCanceled")
            return
        pos, usdc = acct.positions.get(order.coin), acct.usdc
        start = pos.szi if pos else ZERO
        self._apply_fill(acct, order.coin, qty if order.is_buy else -qty, px)
        self._record_fill(order, px, qty, start, acct.usdc - usdc, crossed)
        order.filled_sz += qty
        order.filled_ntl += qty * px
        if order.remaining == 0:
            self._set_status(order, "filled")
        elif order.reduce_only and order.coin not in acct.positions:
            self._set_status(order, "reduceOnlyCanceled")  # nothing left to reduce
        self._follow_position(order.user, order.coin)

    def _record_fill(self, o: Order, px: Decimal, qty: Decimal, start: Decimal, pnl: Decimal, crossed: bool) -> None:
        tid, self.next_tid = self.next_tid, self.next_tid + 1
        fee = hl_ledger.fill_fee(px, qty, crossed)
        self.accounts[o.user].usdc -= fee  # closedPnl stays before the fee, as the exchange reports it (hl_ledger)
        fill = Fill(o.user, o.coin, o.is_buy, px, qty, self.now_ms(), start, pnl, o.oid, o.cloid, crossed, tid, fee)
        self.fills.append(fill)
        self.journal.append(("fill", o.user, fill))

    def _apply_fill(self, acct: Account, coin: str, delta: Decimal, px: Decimal) -> None:
        pos = acct.positions.get(coin)
        if pos is None or pos.szi == 0:
            acct.positions[coin] = Position(delta, px)
            return
        new = pos.szi + delta
        if (pos.szi > 0) == (delta > 0):  # adding: average the entry
            pos.entry_px = (abs(pos.szi) * pos.entry_px + abs(delta) * px) / abs(new)
            pos.entry_px = pos.entry_px.quantize(Decimal("1e-8")).normalize()
        else:
            closed = min(abs(delta), abs(pos.szi))
            sign = 1 if pos.szi > 0 else -1
            acct.usdc += closed * (px - pos.entry_px) * sign
            if abs(delta) > abs(pos.szi):
                pos.entry_px = px  # flipped: the new side starts at this fill
        pos.szi = new
        if new == 0:
            del acct.positions[coin]

    def _match_resting(self, only_coin: str | None) -> None:
        """Fire crossed triggers and fill crossed resting limit orders."""
        for order in [o for o in self.orders if o.status == "open"]:
            # another coin, ended meanwhile (a fill before it closed the position), or a normalTpsl child still
            # waiting for its parent's fill
            if (only_coin and order.coin != only_coin) or order.status != "open" or order.parent is not None:
                continue
            mid, mark = self.mids[order.coin], self.marks[order.coin]
            if order.trigger:
                tpx, tp = order.trigger["triggerPx"], order.trigger["tpsl"] == "tp"
                # A sell stop protects a long: fires as the price falls to it; on the mark price (see __init__)
                up = tp != order.is_buy
                if (mark >= tpx) if up else (mark <= tpx):
                    # orderUpdates reports the order "triggered", then how it ended (this order keeps its oid)
                    self._note_order(replace(order, status="triggered", status_ts=self.now_ms()))
                    # a triggered market order fills only within its limit price, its slippage bound ("TP/SL market
                    # orders have a slippage tolerance of 10%": Hyperliquid's docs, "Take profit and stop loss
                    # orders"); past it, nothing fills and the order is done
                    within = (mid <= order.limit_px) if order.is_buy else (mid >= order.limit_px)
                    if not order.sz:  # a size-0 position leg: the whole position as it is now (hl_grouping)
                        order.whole = hl_grouping.whole_position(self, order)
                    if not order.trigger["isMarket"]:
                        self._execute(order, order.limit_px)
                    elif within:
                        self._execute(order, mid)
                    if order.status == "open":
                        self._set_status(order, "canceled")
            elif (mid <= order.limit_px) if order.is_buy else (mid >= order.limit_px):
                filled = order.filled_sz
                self._execute(order, order.limit_px, crossed=False)  # a resting order is the maker
                if order.status == "open" and order.filled_sz != filled:
                    self._note_order(order)  # partly filled, still resting

    def tick(self) -> None:
        """Run scheduled cancels whose time has come (the dead man's switch)."""
        now = self.now_ms()
        for user, acct in self.accounts.items():
            if acct.scheduled_cancel is not None and acct.scheduled_cancel <= now:
                acct.scheduled_cancel = None
                for order in self.orders:
                    if hl_dexes.owner(order.user) == user and order.status == "open":
                        self._set_status(order, "scheduledCancel")

    def _set_status(self, order: Order, status: str) -> None:
        order.status, order.status_ts = status, self.now_ms()
        self._note_order(order)
        if order.oid in self.waiting and status != "open":
            hl_grouping.parent_ended(self, order)  # its normalTpsl children go live, or end with it

    def _note_order(self, order: Order) -> None:
        """Journal the order as it is now (a copy: later changes must not rewrite what was reported)."""
        self.journal.append(("order", order.user, replace(order)))

    # ---- margin -----------------------------------------------------------
    def lev(self, acct: Account, coin: str) -> tuple[str, int]:
        default = "isolated" if coin in ISOLATED_ONLY else "cross"
        return acct.leverage.get(coin, (default, min(20, MAX_LEVERAGE[coin])))

    def account_value(self, acct: Account) -> Decimal:
        upnl = sum(
            (p.szi * (self.marks[c] - p.entry_px) for c, p in acct.positions.items()),
            ZERO,
        )
        return acct.usdc + upnl

    def margin_used(self, acct: Account) -> Decimal:
        return sum(
            (abs(p.szi) * self.marks[c] / self.lev(acct, c)[1] for c, p in acct.positions.items()),
            ZERO,
        )

    def available(self, user: str) -> Decimal:
        """Free margin: value minus position margin minus resting orders' margin."""
        acct = self.accounts.get(user) or Account(usdc=ZERO)
        reserved = sum(
            (
                o.remaining * o.limit_px / self.lev(acct, o.coin)[1]
                for o in self.orders
                if o.user == user and o.status == "open" and not o.reduce_only
            ),
            ZERO,
        )
        return self.account_value(acct) - self.margin_used(acct) - reserved


def fmt(x) -> str:
    """Hyperliquid's float-string style: "50000.0", "0.01"."""
    text = format(Decimal(x).normalize(), "f")
    return text if "." in text else text + ".0"


def usd(x) -> str:
    return fmt(Decimal(x).quantize(Decimal("1e-6")))
