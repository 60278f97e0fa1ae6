"""`fractrade-sync check`: validate the config, reach both endpoints, show the account and the key's rights."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import websocket

from fractrade_sync.config.secrets import redact_url
from fractrade_sync.config.settings import Settings
from fractrade_sync.errors import TransientError
from fractrade_sync.exchange.accounts import Relation
from fractrade_sync.exchange.answers import error_text
from fractrade_sync.exchange.client import CLOCK_WARN, HyperliquidClient

EXIT_OK = 0
EXIT_FRACTRADE = 2
EXIT_HYPERLIQUID = 3
EXIT_WALLET = 4
EXIT_CLOCK = 5


def check_fractrade(settings: Settings, timeout: float = 10.0) -> str | None:
    """Open and close the WebSocket with the token; None when it works, else the reason."""
    try:
        ws = websocket.create_connection(
            settings.ws_url,
            header={"Authorization": f"Token {settings.user_token.reveal()}"},
            timeout=timeout,
        )
    except websocket.WebSocketBadStatusException as exc:
        if exc.status_code in (401, 403):
            return f"authentication refused (HTTP {exc.status_code}): check FRAC_USER_TOKEN"
        return f"handshake refused with HTTP {exc.status_code}"
    except (OSError, websocket.WebSocketException) as exc:
        return f"cannot connect: {type(exc).__name__}: {exc}"[:300]
    ws.close()
    return None


def clock_line(offset: float | None) -> str:
    """This machine's clock against the exchange's, as `check` says it."""
    if offset is None:
        return "offset to the exchange unknown (its answer carried no time)"
    if abs(offset) <= CLOCK_WARN:
        return f"ok ({offset:+.2f}s to the exchange's)"
    side = "behind" if offset > 0 else "ahead of"
    return f"{abs(offset):.1f}s {side} the exchange's: WARNING, action ages and order expiries depend on it (fix: NTP)"


def run_check(settings: Settings, out: TextIO | None = None) -> int:
    """Print what works and what does not; exit 0, or 2 Fractrade, 3 Hyperliquid, 4 wallet not allowed (or its
    approval expired), 5 this machine's clock more than a second off the exchange's."""
    out = out or sys.stdout
    print(f"config      ok (state dir {settings.state_dir}{', DRY RUN' if settings.dry_run else ''})", file=out)
    problem = check_fractrade(settings)
    print(f"fractrade   {'ok: ' + settings.ws_url if problem is None else 'FAILED: ' + problem}", file=out)
    code = EXIT_OK if problem is None else EXIT_FRACTRADE
    client = HyperliquidClient(settings)
    api = redact_url(settings.api_url)  # printed, not logged: the log's redaction does not reach it
    try:
        assets = client.load_meta()
        state = client.account_state()
        orders = client.open_orders()
        relation = client.relation()
    except (TransientError, OSError, ValueError, KeyError) as exc:
        print(f"hyperliquid FAILED: {api}: {exc}", file=out)
        return code or EXIT_HYPERLIQUID
    except Exception as exc:  # the SDK's ClientError and friends
        print(f"hyperliquid FAILED: {api}: {type(exc).__name__}: {exc}"[:300], file=out)
        return code or EXIT_HYPERLIQUID
    print(f"hyperliquid ok: {api} ({len(assets)} perps)", file=out)
    print(f"clock       {clock_line(client.clock_offset)}", file=out)
    if client.clock_offset is not None and abs(client.clock_offset) > CLOCK_WARN:
        code = code or EXIT_CLOCK  # ages and expiries depend on it: a problem to fix before money moves
    print(f"account     {settings.account_address}: {relation.text or 'NOT ALLOWED'}", file=out)
    print_account(state, orders, out)
    mult = settings.size_multiplier
    print(
        f"sizing      FRAC_SIZE_MULTIPLIER {mult}"
        + (" (the agent's sizes as sent)" if mult == 1 else f": every size the agent sends is multiplied by {mult}"),
        file=out,
    )
    print(f"caps        {caps_line(settings)}", file=out)
    print(f"network     {settings.hl_env}: the key signs for {settings.hl_env} (HYPERLIQUID_ENV)", file=out)
    if not may_trade(client, settings, relation, out):
        return code or EXIT_WALLET
    return code


def print_account(state: dict, orders: list[dict], out: TextIO) -> None:
    """The account's value, positions and open orders, as `check` shows them."""
    summary = state.get("marginSummary", {})
    print(f"  value     ${summary.get('accountValue', '0')}  withdrawable ${state.get('withdrawable', '0')}", file=out)
    positions = [p["position"] for p in state.get("assetPositions", [])]
    print(f"  positions {len(positions)}", file=out)
    for p in positions:
        lev = p.get("leverage", {})
        print(
            f"    {p['coin']:<8} {p['szi']:>12} entry {p.get('entryPx')} {lev.get('value')}x {lev.get('type')}",
            file=out,
        )
    print(f"  open orders {len(orders)}", file=out)
    for o in orders:
        trig = f" trigger {o.get('triggerPx')}" if o.get("isTrigger") else ""
        print(f"    {o['coin']:<8} {o['side']} {o['sz']} @ {o['limitPx']} {o.get('orderType', '')}{trig}", file=out)


def may_trade(client: HyperliquidClient, settings: Settings, relation: Relation, out: TextIO) -> bool:
    """The approval's expiry, then whether the key may trade for the account: the account's relation to the signer,
    then a signed noop (each printed); False when it may not (the approval expired, or either refuses)."""
    expiry, expired = approval_line(client, settings, relation.approver)
    print(f"approval    {expiry}", file=out)
    if expired:
        return False
    refused = relation.problem or signing_problem(client)
    if refused:
        print(f"trading     NOT ALLOWED: {refused}", file=out)
        return False
    print(
        f"trading     ok: the key may trade for this account ({settings.hl_env}: a signed noop was accepted)", file=out
    )
    return True


def caps_line(settings: Settings) -> str:
    """The trader's own limits, as set."""
    symbols = ",".join(sorted(settings.allowed_symbols)) if settings.allowed_symbols else "any"
    return (
        f"max order ${settings.max_order_usd or 'unset'}, max leverage {settings.max_leverage or 'unset'}, "
        f"symbols {symbols}, max action age {settings.max_action_age:g}s"
    )


APPROVAL_WARN_DAYS = 7


def approval_line(
    client: HyperliquidClient, settings: Settings, approver: str | None = None, now: float | None = None
) -> tuple[str, bool]:
    """When the API wallet's approval by `approver` expires (extraAgents' validUntil): (the line, whether it has
    expired). `approver` None: the key trades as an account itself."""
    if approver is None:
        return "the key is the account's own: no approval to expire", False
    try:
        agents = client.extra_agents(approver)
    except Exception as exc:  # (a 4xx too: check reports, never a traceback)
        return f"unknown: extraAgents could not be read ({type(exc).__name__}: {str(exc)[:80]})", False
    mine = [a for a in agents if isinstance(a, dict) and str(a.get("address", "")).lower() == settings.signer_address]
    if not mine or not isinstance(mine[0].get("validUntil"), (int, float)):
        return "unknown: the API wallet is not in the account's extraAgents list", False
    days = (mine[0]["validUntil"] / 1000 - (time.time() if now is None else now)) / 86400
    if days <= 0:
        return f"EXPIRED {-days:.1f} days ago: approve a new API wallet on Hyperliquid (API page)", True
    if days < APPROVAL_WARN_DAYS:
        return f"WARNING: expires in {days:.1f} days: approve a new API wallet before then (API page)", False
    return f"ok: valid for {days:.0f} more days", False


def signing_problem(client: HyperliquidClient) -> str | None:
    """Whether the exchange takes what this key signs, for this network: a noop with a fresh nonce (it spends the
    nonce and nothing else). A key signing for the other network is not recognised there."""
    try:
        result = client.endpoint.post(client.signing.noop(client.signing.nonces.next()))
    except TransientError as exc:
        return f"the signed noop got no answer ({exc})"
    if result.get("status") == "ok":
        return None
    other = "testnet" if client.settings.is_mainnet else "mainnet"
    return (
        f"the exchange refused a signed noop: {error_text(result)} (does HYPERLIQUID_ENV name the right network? "
        f"it is {client.settings.hl_env}; this API may be {other}'s)"
    )
