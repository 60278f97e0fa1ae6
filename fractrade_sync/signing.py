"""Fast L1 signing: the SDK's `sign_l1_action`, byte for byte, without eth_account's generic EIP-712 path."""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import threading
from functools import partial
from typing import Any, Callable

import coincurve
import msgpack


def _reused_state_keccak(reference: Callable[[bytes], bytes]) -> Callable[[bytes], bytes] | None:
    """Keccak-256 (of bytes) over one reused state of pycryptodome's C core: reset, absorb, digest, three foreign
    calls per hash instead of building a hash object, a smart pointer and a buffer each time. The library is opened
    again with declared argument types, so the calls take bytes and ints as they are (pycryptodome's own handle
    stays untouched). 3 us against 11 us here, and a third less after idle; the order path hashes three times. None, and
    the public API stays in use, unless it matches `reference`."""
    try:
        import Crypto.Hash

        folder = os.path.dirname(Crypto.Hash.__file__)  # found as pycryptodome finds it, whatever FFI it uses itself
        paths = (os.path.join(folder, "_keccak" + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES)
        lib = ctypes.CDLL(next(path for path in paths if os.path.isfile(path)))  # new function objects, our types
        init, reset, absorb, digest = lib.keccak_init, lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest
        void_p, size_t, uint8 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint8
        init.argtypes = [ctypes.POINTER(void_p), size_t, uint8]
        reset.argtypes = [void_p]
        absorb.argtypes = [void_p, ctypes.c_char_p, size_t]
        digest.argtypes = [void_p, ctypes.c_char_p, size_t, uint8]
        for function in (init, reset, absorb, digest):
            function.restype = ctypes.c_int
        state = void_p()
        if init(ctypes.byref(state), 64, 24):  # capacity 2 x 32 bytes, 24 rounds
            return None
        handle, out, lock = state.value, ctypes.create_string_buffer(32), threading.Lock()

        def reused(data: bytes) -> bytes:
            with lock:
                if reset(handle) or absorb(handle, data, len(data)) or digest(handle, out, 32, 0x01):
                    raise ValueError("keccak failed")  # 0x01 above: Keccak's padding, not SHA-3's
                return out.raw

        samples = (b"", b"abc", bytes(range(256)) * 3)
        return reused if all(reused(sample) == reference(sample) for sample in samples) else None
    except Exception:  # pragma: no cover - another pycryptodome: the public API it is
        return None


try:  # pycryptodome comes with eth-account (via eth-keyfile); called directly it skips eth_hash's dispatch
    from Crypto.Hash import keccak as _keccak

    def _object_keccak(data: bytes) -> bytes:
        return _keccak.new(data=data, digest_bits=256).digest()

    keccak = _reused_state_keccak(_object_keccak) or _object_keccak

except ImportError:  # pragma: no cover - eth_hash picks whatever backend is installed
    from eth_hash.auto import keccak


def _direct_signer(key: coincurve.PrivateKey) -> Callable[[bytes], bytes] | None:
    """key.sign_recoverable(digest, hasher=None), calling libsecp256k1 through coincurve's own binding with buffers
    made once: its wrapper allocates three buffers and checks what we already know per call (about 20 us less
    after idle). None, and coincurve's public API stays in use, unless it signs byte for byte as that does."""
    try:
        from coincurve._libsecp256k1 import ffi, lib

        # the key in a C buffer: a traceback that shows locals shows "<cdata 'unsigned char[32]' ...>", not its bytes
        ctx, secret, null, lock = key.context.ctx, ffi.new("unsigned char[32]", key.secret), ffi.NULL, threading.Lock()
        sign, serialize = (
            lib.secp256k1_ecdsa_sign_recoverable,
            lib.secp256k1_ecdsa_recoverable_signature_serialize_compact,
        )
        signature, out, recid = (
            ffi.new("secp256k1_ecdsa_recoverable_signature *"),
            ffi.new("unsigned char[64]"),
            ffi.new("int *"),
        )
        compact = ffi.buffer(out)

        def direct(digest: bytes) -> bytes:
            if len(digest) != 32:
                raise ValueError("Message hash must be 32 bytes long.")
            with lock:
                if not sign(ctx, signature, digest, secret, null, null):  # RFC 6979 nonce, as coincurve's default
                    raise ValueError("The nonce generation function failed, or the private key was invalid.")
                serialize(ctx, out, recid, signature)
                return compact[:] + bytes((recid[0],))

        samples = [keccak(bytes([i])) for i in range(3)]
        return direct if all(direct(d) == key.sign_recoverable(d, hasher=None) for d in samples) else None
    except Exception:  # pragma: no cover - another coincurve: its public API it is
        return None


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


# EIP-712 (https://eips.ethereum.org/EIPS/eip-712) for the SDK's `l1_payload`: the domain and the Agent type are
# fixed, so their hashes are constants; only the Agent's connectionId (the action hash) changes per request.
_DOMAIN_TYPE_HASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
DOMAIN_SEPARATOR = keccak(_DOMAIN_TYPE_HASH + keccak(b"Exchange") + keccak(b"1") + _word(1337) + _word(0))
AGENT_TYPE_HASH = keccak(b"Agent(string source,bytes32 connectionId)")
_SOURCE_HASH = {True: keccak(b"a"), False: keccak(b"b")}  # phantom agent source: "a" mainnet, "b" testnet


def action_hash(action: Any, vault_address: str | None, nonce: int, expires_after: int | None) -> bytes:
    """The SDK's `action_hash`: keccak of msgpack(action) + nonce + vault + expiresAfter."""
    data = msgpack.packb(action) + nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault_address[2:] if vault_address.startswith("0x") else vault_address)
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return keccak(data)


def l1_digest(action: Any, vault_address: str | None, nonce: int, expires_after: int | None, is_mainnet: bool) -> bytes:
    """The EIP-712 digest the SDK signs for an L1 action (the phantom Agent struct)."""
    connection_id = action_hash(action, vault_address, nonce, expires_after)
    struct_hash = keccak(AGENT_TYPE_HASH + _SOURCE_HASH[bool(is_mainnet)] + connection_id)
    return keccak(b"\x19\x01" + DOMAIN_SEPARATOR + struct_hash)


class FastSigner:
    """Signs L1 actions with libsecp256k1 (coincurve); the key never shows in repr, str or pickles."""

    __slots__ = ("_key", "_sign", "address")

    def __init__(self, private_key_hex: str):
        raw = bytes.fromhex(private_key_hex[2:] if private_key_hex.startswith(("0x", "0X")) else private_key_hex)
        self._key = coincurve.PrivateKey(raw)
        self._sign = _direct_signer(self._key) or partial(self._key.sign_recoverable, hasher=None)
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
        signature = self._sign(digest)  # r(32) s(32) recid(1), RFC 6979, low s
        # eth_utils.to_hex(int) is hex(int): no zero padding, as the SDK sends r and s
        return {
            "r": hex(int.from_bytes(signature[:32], "big")),
            "s": hex(int.from_bytes(signature[32:64], "big")),
            "v": 27 + signature[64],
        }
