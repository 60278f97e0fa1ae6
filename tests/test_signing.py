"""FastSigner signs exactly as the SDK's sign_l1_action, and the exchange's recovery finds the key's address."""

from __future__ import annotations

import pickle

import pytest
from eth_account import Account
from hyperliquid.utils.signing import recover_agent_or_user_from_l1_action, sign_l1_action
from hypothesis import given, settings
from hypothesis import strategies as st

from fractrade_sync.exchange.signing import FastSigner, NonceSource

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big").hex())
nonces = st.integers(0, 2**64 - 1)
expiries = st.none() | st.integers(0, 2**64 - 1)
vaults = st.none() | st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
decimals = st.decimals(0, 10**9, places=6, allow_nan=False).map(lambda d: format(d.normalize(), "f"))
order_wires = st.fixed_dictionaries(
    {
        "a": st.integers(0, 300),
        "b": st.booleans(),
        "p": decimals,
        "s": decimals,
        "r": st.booleans(),
        "t": st.sampled_from([{"limit": {"tif": "Ioc"}}, {"limit": {"tif": "Gtc"}}])
        | st.builds(
            lambda px, kind: {"trigger": {"isMarket": True, "triggerPx": px, "tpsl": kind}},
            decimals,
            st.sampled_from(["sl", "tp"]),
        ),
    },
    optional={"c": st.binary(min_size=16, max_size=16).map(lambda b: "0x" + b.hex())},
)
order_actions = st.builds(
    lambda orders: {"type": "order", "orders": orders, "grouping": "na"}, st.lists(order_wires, min_size=1, max_size=3)
)
other_actions = st.one_of(
    st.builds(
        lambda a, cross, lev: {"type": "updateLeverage", "asset": a, "isCross": cross, "leverage": lev},
        st.integers(0, 300),
        st.booleans(),
        st.integers(1, 50),
    ),
    st.builds(
        lambda cancels: {"type": "cancel", "cancels": cancels},
        st.lists(st.fixed_dictionaries({"a": st.integers(0, 300), "o": st.integers(0, 2**63)}), min_size=1),
    ),
    # anything msgpack can carry: the hash must not depend on what the action means
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
            max_leaves=10,
        ),
        max_size=5,
    ),
)
actions = order_actions | other_actions


@settings(max_examples=150, deadline=None)
@given(key=keys, action=actions, vault=vaults, nonce=nonces, expires=expiries, mainnet=st.booleans())
def test_fast_signer_is_the_sdks_signature(key, action, vault, nonce, expires, mainnet):
    wallet = Account.from_key("0x" + key)
    fast = FastSigner("0x" + key)

    signature = fast.sign_l1(action, vault, nonce, expires, mainnet)

    assert signature == sign_l1_action(wallet, action, vault, nonce, expires, mainnet)
    assert fast.address == wallet.address.lower()
    recovered = recover_agent_or_user_from_l1_action(action, signature, vault, nonce, expires, mainnet)
    assert recovered.lower() == wallet.address.lower()


def test_signature_hex_has_no_zero_padding_like_the_sdk():
    """eth_utils.to_hex(int) trims leading zeros; find an r or s below 2**252 and compare."""
    wallet = Account.create()
    fast = FastSigner(wallet.key.hex())
    action = {"type": "order", "orders": [], "grouping": "na"}
    for nonce in range(2000):
        signature = fast.sign_l1(action, None, nonce, None, False)
        if len(signature["r"]) < 66 or len(signature["s"]) < 66:
            assert signature == sign_l1_action(wallet, action, None, nonce, None, False)
            return
    pytest.fail("no short r or s in 2000 signatures (expected about 1 in 8)")


def test_key_never_shows():
    key = Account.create().key.hex()
    fast = FastSigner(key)
    bare = key.removeprefix("0x")
    assert bare not in repr(fast) and bare not in str(fast) and "***" in repr(fast)
    with pytest.raises(TypeError):
        pickle.dumps(fast)


def test_signing_from_four_threads_at_once_gives_the_sdks_signatures():
    import threading

    wallet = Account.create()
    fast = FastSigner(wallet.key.hex())
    action = {"type": "order", "orders": [], "grouping": "na"}
    jobs = [(nonce, nonce % 2 == 0) for nonce in range(100)]
    expected = [sign_l1_action(wallet, action, None, nonce, None, mainnet) for nonce, mainnet in jobs]
    results: dict[int, list[dict]] = {}
    start = threading.Barrier(4)

    def sign_all(n: int) -> None:
        start.wait()
        results[n] = [fast.sign_l1(action, None, nonce, None, mainnet) for nonce, mainnet in jobs]

    threads = [threading.Thread(target=sign_all, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results.get(n) for n in range(4)] == [expected] * 4


def test_nonces_strictly_increase_under_a_frozen_clock_from_several_threads():
    import threading

    nonces = NonceSource(clock=lambda: 1_700_000_000.0)  # the same millisecond, every time
    results: dict[int, list[int]] = {}
    start = threading.Barrier(4)

    def draw(n: int) -> None:
        start.wait()
        results[n] = [nonces.next() for _ in range(500)]

    threads = [threading.Thread(target=draw, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[n] == sorted(set(results[n])) for n in range(4))  # each thread sees them increase
    drawn = sorted(nonce for n in range(4) for nonce in results[n])
    assert drawn == list(range(1_700_000_000_000, 1_700_000_000_000 + 2000))  # no two alike, none skipped
    assert nonces.next() == 1_700_000_000_000 + 2000


def test_nonces_follow_the_clock_when_it_moves_ahead():
    now = [1_700_000_000.0]
    nonces = NonceSource(clock=lambda: now[0])
    assert nonces.next() == 1_700_000_000_000
    now[0] += 5.0
    assert nonces.next() == 1_700_000_005_000
    now[0] -= 60.0  # a clock stepped back never takes a nonce backwards
    assert nonces.next() == 1_700_000_005_001
