"""The simulated Hyperliquid perp exchange: accounts, signers, and the /exchange actions applied to them.

Pure state, no I/O; every public method takes the one lock. HyperliquidState is built from its parts: the model
(hl_model), nonces (hl_nonces), order wires (hl_parse), order entry (hl_orders), matching (hl_matching) and margin
(hl_margin). Error texts are Hyperliquid's own, from the API docs' "Error responses" page unless marked
`# text unconfirmed`:
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/error-responses
"""

from __future__ import annotations

import collections
import threading
import time
from decimal import Decimal

from fractrade_sync.sim import hl_accounts, hl_dexes, hl_grouping, hl_ledger
from fractrade_sync.sim.hl_margin import MarginMixin
from fractrade_sync.sim.hl_matching import MatchingMixin
from fractrade_sync.sim.hl_model import (
    COINS,
    DAY_MS,
    FILLS_KEPT,
    UNIVERSE,
    ZERO,
    Account,
    ExchangeError,
    Fill,
    Order,
    dec,
)
from fractrade_sync.sim.hl_nonces import NonceBook
from fractrade_sync.sim.hl_orders import OrderEntryMixin
from fractrade_sync.sim.hl_parse import wire_asset

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


class HyperliquidState(OrderEntryMixin, MatchingMixin, MarginMixin):
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
        self.nonces = NonceBook(self.now_ms)
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
        user = user.lower()
        agent = agent.lower()
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

    # ---- signers ----------------------------------------------------------
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
        self.nonces.spend(signer, nonce)
        return user

    def exchange_approve_agent(self, action: dict, signer: str, nonce: int) -> None:
        """The user-signed approveAgent action: only a funded account may approve."""
        with self.lock:
            self.nonces.check_window(nonce)
            if signer.lower() not in self.accounts:
                raise ExchangeError(f"Must deposit before performing actions. User: {signer}")
            self.authorize(signer, nonce)
            self.approve_agent(signer, action["agentAddress"], action.get("agentName", ""))

    # ---- /exchange --------------------------------------------------------
    def exchange(self, action: dict, signer: str, nonce: int, expires_after=None, vault: str | None = None):
        """Apply one signed L1 action, for the sub-account or vault `vault` if given; returns the "response" object."""
        with self.lock:
            self.tick()
            user = self._admit(action, signer, nonce, expires_after, vault)
            return self._apply(action, user, signer.lower(), nonce)

    def _admit(self, action: dict, signer: str, nonce: int, expires_after, vault: str | None) -> str:
        """Refuse what is refused before the action applies, spend the signer's nonce; the account it applies to."""
        self.nonces.check_window(nonce)
        if expires_after is not None and expires_after < self.now_ms():
            raise ExchangeError("Action already expired")  # text unconfirmed
        kind = action.get("type")
        if kind == "order":  # a malformed body is refused before any nonce is spent
            for wire in action["orders"]:
                wire_asset(wire)
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
        return user

    def _apply(self, action: dict, user: str, signer: str, nonce: int) -> dict:
        """Apply an admitted action for `user`, signed by `signer` (lower case)."""
        kind = action.get("type")
        if kind == "order":
            return self._orders(action, user, signer, nonce)
        if kind == "cancel":
            return self._cancels(user, action["cancels"], "a", "o")
        if kind == "cancelByCloid":
            return self._cancels(user, action["cancels"], "asset", "cloid")
        if kind == "updateLeverage":
            return self._update_leverage(user, action)
        if kind == "batchModify":
            return self._modify(user, signer, nonce, action["modifies"])
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
