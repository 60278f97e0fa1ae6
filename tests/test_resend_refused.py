"""A 429 answering the resend of an order that may have landed says nothing of the first send: the order is settled by
its nonce and cloid, never journaled as not executed. End to end against the simulator (Sender._send)."""

from __future__ import annotations

import pytest

from tests.conftest import key_of, push, trade_frame, wait_state

RESENDS = 5  # exchange_retries(): 5 retries after the first send


@pytest.mark.parametrize("first", ["drop", "timeout"])
def test_a_429_to_the_resend_of_an_order_that_landed_is_no_proof_it_did_not(make_service, sim, signals, wallet, first):
    """The first send is applied and its answer lost (dropped, or too late); every resend is refused with a 429 at
    the door. The order landed: the noop of its nonce is refused as used and the cloid finds it filled, once."""
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.timeout_s = 1.0  # "timeout": applied, answered after the client's 0.5 s
    sim.inject(first)
    sim.inject("429", RESENDS)
    row = wait_state(service, key_of(push(signals, trade_frame(size="0.01"))), timeout=40)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row
    assert len(sim.applied_orders(wallet.address)) == 1
    log = sim.exchange_log()
    orders = [e for e in log if e["action_type"] == "order"]
    assert orders[0]["fault"] == first and orders[0]["ok"]  # applied
    assert [e["http_status"] for e in orders[1:]] == [429] * RESENDS  # the identical resends, refused at the door
    assert len({e["nonce"] for e in orders}) == 1  # one order signed: never a second one
    (noop,) = [e for e in log if e["action_type"] == "noop"]
    assert noop["nonce"] == orders[0]["nonce"] and noop["errors"] == [f"Invalid nonce: duplicate nonce {noop['nonce']}"]
