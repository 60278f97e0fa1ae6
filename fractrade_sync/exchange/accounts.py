"""Which account the key trades, and how: its own, one it is an API wallet for, or a sub-account or vault of either
(then every action is signed with `vaultAddress` = the trading account). Asked of the exchange (`userRole`,
`vaultDetails`: EXCHANGE.md §10) once at start and by `check`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Relation:
    """How the key may trade the account: `vault` is the vaultAddress every action is signed with (None: the key
    trades the account as its own or as its API wallet); `text` names it for `check` and the start line; `problem`,
    when set, says why the key may not trade it at all."""

    vault: str | None
    text: str
    problem: str | None = None
    approver: str | None = None  # the account whose approval lets the key trade (an API wallet's), or None


def _role(answer: Any) -> tuple[str, dict]:
    """userRole's answer as (role, data): {"role": "user" | "agent" | "vault" | "subAccount" | "missing", "data"?}."""
    if not isinstance(answer, dict) or not isinstance(answer.get("role"), str):
        raise ValueError(f"userRole answered {str(answer)[:120]}")
    data = answer.get("data")
    return answer["role"], data if isinstance(data, dict) else {}


def _address(data: dict, key: str) -> str:
    return str(data.get(key) or "").lower()


def resolve(info: Callable[[dict], Any], account: str, signer: str) -> Relation:
    """The relation of the key (`signer`) to the trading `account` (both lower case). `info` posts one /info
    request; ValueError when an answer cannot be read (the caller retries: "don't know" is not "no")."""
    if account == signer:
        return Relation(None, "the key's own account")
    role, data = _role(info({"type": "userRole", "user": signer}))
    owner = signer
    via = ""
    if role == "agent":
        owner = _address(data, "user")
        via = f" through API wallet {signer}"
        if owner == account:
            return Relation(None, f"through API wallet {signer}", approver=owner)
    elif role != "user":
        problem = f"the key's address {signer} is not an API wallet approved for {account}, nor an account on this "
        return Relation(None, "", problem + f"exchange (exchange says role={role!r})")
    kind, data = _role(info({"type": "userRole", "user": account}))
    if kind == "subAccount" and _address(data, "master") == owner:
        return Relation(account, f"sub-account of {owner}{via}", approver=owner if via else None)
    if kind == "vault":
        details = info({"type": "vaultDetails", "vaultAddress": account})
        leader = _address(details, "leader") if isinstance(details, dict) else ""
        if leader == owner:
            return Relation(account, f"vault led by {owner}{via}", approver=owner if via else None)
    if role == "agent":
        what = f"the key's address {signer} is an API wallet of {owner}, not of {account}"
    else:
        what = f"the key's address {signer} is not an API wallet approved for {account}"
    return Relation(
        None, "", f"{what}, and {account} is no sub-account or vault of {owner} (exchange says role={kind!r})"
    )
