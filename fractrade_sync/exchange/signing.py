"""L1 signing that gives the SDK's `sign_l1_action` byte for byte, the nonces that go with it, and the account's
actions signed as the payloads /exchange takes (ActionSigner)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import coincurve
from eth_utils import keccak
from hyperliquid.utils.signing import action_hash

__all__ = [
    "AGENT_TYPE_HASH",
    "DOMAIN_SEPARATOR",
    "ActionSigner",
    "FastSigner",
    "NonceSource",
    "action_hash",
    "l1_digest",
]


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


# EIP-712 (https://eips.ethereum.org/EIPS/eip-712) for the SDK's `l1_payload`: the domain and the Agent type are
# fixed, so their hashes are constants; only the Agent's connectionId (the action hash) changes per request.
_DOMAIN_TYPE_HASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
DOMAIN_SEPARATOR = keccak(_DOMAIN_TYPE_HASH + keccak(b"Exchange") + keccak(b"1") + _word(1337) + _word(0))
AGENT_TYPE_HASH = keccak(b"Agent(string source,bytes32 connectionId)")
_SOURCE_HASH = {True: keccak(b"a"), False: keccak(b"b")}  # phantom agent source: "a" mainnet, "b" testnet


def l1_digest(action: Any, vault_address: str | None, nonce: int, expires_after: int | None, is_mainnet: bool) -> bytes:
    """The EIP-712 digest the SDK signs for an L1 action (the phantom Agent struct)."""
    connection_id = action_hash(action, vault_address, nonce, expires_after)
    struct_hash = keccak(AGENT_TYPE_HASH + _SOURCE_HASH[bool(is_mainnet)] + connection_id)
    return keccak(b"\x19\x01" + DOMAIN_SEPARATOR + struct_hash)


class FastSigner:
    """Signs L1 actions with coincurve; the key never shows in repr, str or pickles."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key_hex: str):
        raw = bytes.fromhex(private_key_hex[2:] if private_key_hex.startswith(("0x", "0X")) else private_key_hex)
        self._key = coincurve.PrivateKey(raw)
        public = self._key.public_key.format(compressed=False)[1:]
        self.address = "0x" + keccak(public)[-20:].hex()  # lower-case; compare case-insensitively

    def __repr__(self) -> str:
        return "FastSigner(***)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a FastSigner is not serialisable")

    def sign_l1(
        self, action: Any, vault_address: str | None, nonce: int, expires_after: int | None, is_mainnet: bool
    ) -> dict[str, Any]:
        """What `hyperliquid.utils.signing.sign_l1_action` returns for the same arguments."""
        digest = l1_digest(action, vault_address, nonce, expires_after, is_mainnet)
        signature = self._key.sign_recoverable(digest, hasher=None)  # r(32) s(32) recid(1), RFC 6979, low s
        # eth_utils.to_hex(int) is hex(int): no zero padding, as the SDK sends r and s
        return {
            "r": hex(int.from_bytes(signature[:32], "big")),
            "s": hex(int.from_bytes(signature[32:64], "big")),
            "v": 27 + signature[64],
        }


@dataclass
class NonceSource:
    """Strictly increasing millisecond nonces: two requests in one millisecond must not collide."""

    clock: Any = time.time
    _last: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> int:
        with self._lock:
            self._last = max(int(self.clock() * 1000), self._last + 1)
            return self._last


class ActionSigner:
    """The account's L1 actions signed as /exchange takes them: a fresh nonce each, the vaultAddress of a sub-account
    or vault, an expiresAfter on the exchange's clock. The client tells it the vault (once it knows how the key may
    trade the account) and the clock offset (each time it measures it)."""

    def __init__(self, private_key_hex: str, is_mainnet: bool, expiry_window: float):
        self.signer = FastSigner(private_key_hex)
        self.nonces = NonceSource()
        self.is_mainnet = is_mainnet
        # seconds an action stays valid: long enough for every identical resend (one nonce: applied once at most)
        self.expiry_window = expiry_window
        self.vault: str | None = None  # the vaultAddress every action is signed with (a sub-account or vault)
        self.clock_offset: float | None = None  # seconds the exchange's clock is ahead of ours (None: not measured)

    def __repr__(self) -> str:
        return f"ActionSigner({self.signer!r}, vault={self.vault!r})"

    def payload(self, action: dict, deadline: float | None = None) -> dict:
        """Sign an L1 action with a fresh nonce and an expiresAfter (never past `deadline`, a wall-clock time: the
        exchange applies nothing of a stale action); the payload as it would be posted. expiresAfter is judged by
        the exchange's clock: the measured offset is added."""
        nonce = self.nonces.next()
        offset_ms = int((self.clock_offset or 0.0) * 1000)
        expires = nonce + offset_ms + int(self.expiry_window * 1000)
        if deadline is not None:
            expires = max(nonce + offset_ms + 1, min(expires, int(deadline * 1000) + offset_ms))
        signature = self.signer.sign_l1(action, self.vault, nonce, expires, self.is_mainnet)
        payload = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": self.vault}
        return {**payload, "expiresAfter": expires}

    def noop(self, nonce: int) -> dict:
        """The signed noop that spends `nonce` (taken: nothing else signed with it can apply; a used nonce is refused
        "Invalid nonce: duplicate nonce"). No expiresAfter: a late noop is harmless. Resend it as is."""
        signature = self.signer.sign_l1({"type": "noop"}, self.vault, nonce, None, self.is_mainnet)
        return {"action": {"type": "noop"}, "nonce": nonce, "signature": signature, "vaultAddress": self.vault}
