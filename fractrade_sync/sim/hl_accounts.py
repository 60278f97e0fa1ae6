"""Sub-accounts and vaults: accounts with no key of their own, traded by their master's (or leader's) key or one of
its API wallets, with `vaultAddress` = the account in the signed L1 action.

The state (hl_state) asks `acting_for` which account a signed action applies to; hl_views answers userRole,
subAccounts and vaultDetails through here. Each fact names its source, or says "unconfirmed"; EXCHANGE.md §10
collects them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # hl_state imports this module
    from fractrade_sync.sim.hl_state import HyperliquidState

SUB_ACCOUNT = "subAccount"
VAULT = "vault"
# "Subaccounts and vaults do not have private keys. To perform actions on behalf of a subaccount or vault signing
# should be done by the master account and the vaultAddress field should be set to the address of the subaccount or
# vault." (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/exchange-endpoint#subaccounts-and-vaults)
# A vaultAddress the signer may not trade is refused so, the address lower-cased: "Vault not registered: 0x…"
# (hyperliquid-python-sdk issue #172, nomeida/hyperliquid issues #85 and #92, live answers, older ones prefixed
# "L1 error: "); that the same text answers a real sub-account signed by another master is unconfirmed.
NOT_REGISTERED = "Vault not registered: {vault}"


def add(st: HyperliquidState, role: str, owner: str, address: str, usdc, name: str) -> None:
    """Open `address` as a sub-account of (or a vault led by) `owner`, with its own balance and nothing else."""
    owner = owner.lower()
    address = address.lower()
    with st.lock:
        if owner not in st.accounts or owner in st.vaults:
            raise ValueError(f"{owner} has no account of its own to hold a {role}; add_account first")
        if address in st.accounts:
            raise ValueError(f"{address} already has an account")
        st.add_account(address, usdc)
        st.vaults[address] = (role, owner, name)


def acting_for(st: HyperliquidState, user: str, vault: str | None) -> str | None:
    """The account an action signed for `user` (the signer, or the account it is an API wallet of) applies to: `user`
    itself without a vaultAddress (an order so signed lands on the master's own account: hummingbot issue #7312,
    "Orders submitted from SubAccount are created to MainAccount"), the vault when `user` is its master or leader,
    None when the signer may not trade it (NOT_REGISTERED)."""
    if vault is None:
        return user
    vault = vault.lower()
    entry = st.vaults.get(vault)
    return vault if entry is not None and entry[1] == user else None


def user_role(st: HyperliquidState, user: str) -> dict:
    """userRole: {"role": "subAccount", "data": {"master"}}, {"role": "vault"}, {"role": "agent", "data": {"user"}},
    {"role": "user"} or {"role": "missing"} (nktkas/hyperliquid src/api/info/_methods/userRole.ts)."""
    user = user.lower()
    entry = st.vaults.get(user)
    if entry is not None and entry[0] == SUB_ACCOUNT:
        return {"role": SUB_ACCOUNT, "data": {"master": entry[1]}}
    if entry is not None:
        return {"role": VAULT}
    if user in st.accounts:
        return {"role": "user"}
    if user in st.agent_owner:
        return {"role": "agent", "data": {"user": st.agent_owner[user]}}
    return {"role": "missing"}


def sub_accounts(
    st: HyperliquidState, user: str, clearinghouse: Callable[[HyperliquidState, str], dict]
) -> list[dict] | None:
    """subAccounts: each of the master's sub-accounts with its main-dex clearinghouse (hl_views renders it) and spot
    state, or null when it has none (nktkas/hyperliquid src/api/info/_methods/subAccounts.ts); the spot state is
    empty (no spot here)."""

    user = user.lower()
    subs = [
        {
            "name": name,
            "subAccountUser": address,
            "master": master,
            "clearinghouseState": clearinghouse(st, address),
            "spotState": {"balances": []},
        }
        for address, (role, master, name) in st.vaults.items()
        if role == SUB_ACCOUNT and master == user
    ]
    return subs or None


def vault_details(st: HyperliquidState, vault: str) -> dict | None:
    """vaultDetails: the vault's name, address and `leader`, or null for no vault (nktkas/hyperliquid
    src/api/info/_methods/vaultDetails.ts). No followers, portfolio or APR are modelled: zeros and empty lists."""
    vault = str(vault).lower()
    entry = st.vaults.get(vault)
    if entry is None or entry[0] != VAULT:
        return None
    return {
        "name": entry[2],
        "vaultAddress": vault,
        "leader": entry[1],
        "description": "",
        "portfolio": [],
        "apr": 0,
        "followerState": None,
        "leaderFraction": 1,
        "leaderCommission": 0,
        "followers": [],
        "maxDistributable": 0,
        "maxWithdrawable": 0,
        "isClosed": False,
        "relationship": {"type": "normal"},
        "allowDeposits": True,
        "alwaysCloseOnWithdraw": False,
    }
