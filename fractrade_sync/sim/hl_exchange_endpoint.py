"""POST /exchange: the body read, its signature recovered as `hyperliquid-python-sdk` signs it, the action applied to
the state (hl_state), and the answer as Hyperliquid gives it.
"""

from __future__ import annotations

from eth_keys.exceptions import BadSignature
from hyperliquid.utils import signing

from fractrade_sync.sim.hl_model import ExchangeError

BAD_BODY = "Failed to deserialize the JSON body into the target type"
APPROVE_AGENT_TYPES = [
    {"name": "hyperliquidChain", "type": "string"},
    {"name": "agentAddress", "type": "address"},
    {"name": "agentName", "type": "string"},
    {"name": "nonce", "type": "uint64"},
]


def answer(state, userdata, body) -> tuple[int, object, str | None]:
    """Verify and apply one /exchange body to `state` (its changes told through `userdata`, hl_userdata.UserFeed):
    (http status, answer, signer)."""
    try:
        action = body["action"]
        nonce = body["nonce"]
        sig = body["signature"]
        vault = body.get("vaultAddress")
        expires = body.get("expiresAfter")
        kind = action["type"]
    except (KeyError, TypeError) as exc:
        return 422, f"{BAD_BODY}: missing field {exc}", None
    signer = None
    try:
        try:
            signer = recover(kind, action, sig, nonce, expires, vault).lower()
        except (ValueError, KeyError, TypeError, BadSignature):
            # A malformed signature: there is no address to name.
            raise ExchangeError("Unable to recover signer.") from None
        with userdata.changes():
            if kind == "approveAgent":
                state.exchange_approve_agent(action, signer, nonce)
                response = {"type": "default"}
            else:
                response = state.exchange(action, signer, nonce, expires, vault)
        return 200, {"status": "ok", "response": response}, signer
    except ExchangeError as exc:
        return 200, {"status": "err", "response": str(exc)}, signer
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        return 422, f"{BAD_BODY}: {exc!r}", signer


def recover(kind, action, sig, nonce, expires, vault) -> str:
    """The address that signed the action."""
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
