"""Exactly once by the exchange's own guarantees, never by this machine's clock: one nonce is applied once at most,
and a noop spends a nonce so that the order signed with it can never land; a 4xx or a 429 answering the resend of an
order that may have landed is no answer, and the noop decides. Against the simulator, with its clock apart from ours
and requests held in transit."""

from __future__ import annotations

import logging

import pytest
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action

from fractrade_sync.backoff import exchange_retries
from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.exchange.client import HyperliquidClient, expiry_window
from tests.conftest import key_of, push, trade_frame, wait_for, wait_state

RESENDS = 5  # exchange_retries(): 5 retries after the first send


def _orders(sim) -> list[dict]:
    return [e for e in sim.exchange_log() if e["action_type"] == "order"]


def _applied_once(sim, wallet) -> None:
    """One order applied; every other order request was the same order refused for its spent nonce."""
    assert len(sim.applied_orders(wallet.address)) == 1
    orders = _orders(sim)
    assert sum(e["ok"] for e in orders) == 1, orders
    for e in orders:
        if not e["ok"] and e["http_status"] == 200:  # refused, nothing applied (the late ones may have expired)
            assert e["errors"] in ([f"Invalid nonce: duplicate nonce {e['nonce']}"], ["Action already expired"]), e


# ---- the simulator's rules, as Hyperliquid documents them ------------------------------------------------------


def _post(sim, wallet, action: dict, nonce: int, expires: int | None = None):
    import requests

    signature = sign_l1_action(wallet, action, None, nonce, expires, False)
    body = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None}
    if expires is not None:
        body["expiresAfter"] = expires
    return requests.post(sim.url + "/exchange", json=body, timeout=5).json()


def _order(cloid: str) -> dict:
    wire = {"a": 0, "b": True, "p": "51000", "s": "0.01", "r": False, "t": {"limit": {"tif": "Ioc"}}, "c": cloid}
    return {"type": "order", "orders": [wire], "grouping": "na"}


def test_sim_a_noop_spends_the_nonce_so_the_order_signed_with_it_never_lands(sim, wallet):
    nonce = get_timestamp_ms()
    assert _post(sim, wallet, {"type": "noop"}, nonce) == {"status": "ok", "response": {"type": "default"}}
    late = _post(sim, wallet, _order("0x" + "1" * 32), nonce)
    assert late == {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}
    assert sim.applied_orders(wallet.address) == []
    # and the other way round: the order first, then the noop is refused, which says the order landed
    nonce += 1
    assert _post(sim, wallet, _order("0x" + "2" * 32), nonce)["status"] == "ok"
    assert _post(sim, wallet, {"type": "noop"}, nonce)["response"] == f"Invalid nonce: duplicate nonce {nonce}"


def test_sim_judges_expires_after_by_its_own_clock(sim, wallet):
    now = get_timestamp_ms()
    sim.set_clock_offset(-5)  # the exchange's clock is 5 s behind ours
    assert _post(sim, wallet, _order("0x" + "3" * 32), now, expires=now - 2000)["status"] == "ok"
    sim.set_clock_offset(5)  # 5 s ahead: an expiresAfter 2 s ahead of ours has passed already
    answer = _post(sim, wallet, _order("0x" + "4" * 32), now + 1, expires=now + 2000)
    assert answer == {"status": "err", "response": "Action already expired"}


# ---- the service ---------------------------------------------------------------------------------------------


def test_a_request_held_in_transit_with_the_clock_ahead_of_the_exchange_gives_one_order(
    make_service, sim, signals, wallet
):
    """The old way: wait until expiresAfter + 1 s by this machine's clock, ask by cloid, then send a new order. With
    our clock 3 s ahead and the first request held 4 s in transit, that lookup comes too early and both land."""
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.set_clock_offset(-3)
    sim.timeout_s = 4.0
    sim.inject("hold")  # the first request arrives 4 s late, after everything sent meanwhile
    frame = push(signals, trade_frame())
    row = wait_state(service, key_of(frame), timeout=20)
    assert row["state"] == "filled", row
    wait_for(lambda: len(_orders(sim)) == 2, what="the held request to arrive")
    _applied_once(sim, wallet)
    assert len({e["nonce"] for e in _orders(sim)}) == 1  # one signed order, sent twice


def test_a_resend_that_cannot_decide_is_settled_by_a_noop_then_sent_anew(make_service, sim, signals, wallet):
    """Held in transit, then the exchange errs on every identical resend: the noop takes the nonce first (the held
    order can never land), and a new order is signed and filled. The late original is refused."""
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.timeout_s = 15.0  # the retry schedule is about 8 s
    sim.inject("hold")
    sim.inject("500", 5)
    frame = push(signals, trade_frame())
    row = wait_state(service, key_of(frame), timeout=30)
    assert row["state"] == "filled", row
    noops = [e for e in sim.exchange_log() if e["action_type"] == "noop"]
    assert [e["ok"] for e in noops] == [True]
    wait_for(lambda: len(_orders(sim)) == 7, timeout=20, what="the held request to arrive")  # 5 x 500, new, held
    _applied_once(sim, wallet)
    (filled,) = [e for e in _orders(sim) if e["ok"]]
    assert noops[0]["nonce"] == _orders(sim)[0]["nonce"] != filled["nonce"]  # the noop spent the first order's


def test_a_noop_refused_as_used_means_the_order_landed(make_service, sim, signals, wallet, caplog):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.timeout_s = 1.0
    sim.inject("timeout")  # applied, its answer too late
    sim.inject("500", 5)  # and no resend gets an answer: the noop decides
    frame = push(signals, trade_frame())
    row = wait_state(service, key_of(frame), timeout=30)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row
    (noop,) = [e for e in sim.exchange_log() if e["action_type"] == "noop"]
    assert noop["errors"] == [f"Invalid nonce: duplicate nonce {noop['nonce']}"]
    _applied_once(sim, wallet)


def test_a_gateways_4xx_to_a_resend_is_no_answer_not_a_refusal(make_service, sim, signals, wallet):
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.inject("drop")  # applied, answer lost
    sim.inject("403")  # the identical resend: a WAF's 403
    row = wait_state(service, key_of(push(signals, trade_frame(size="0.01"))), timeout=30)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row
    assert len(sim.applied_orders(wallet.address)) == 1


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


def test_a_noop_without_an_answer_is_asked_again_until_the_exchange_says(make_service, sim, signals, wallet, caplog):
    """The order is applied and its answer lost, no resend is answered, and the noop itself first meets a gateway's
    403 and then a 500: neither says anything of the nonce, so the noop is sent again until the exchange answers
    (its nonce used: the order is found by cloid, once)."""
    service = make_service(FRAC_HTTP_TIMEOUT="0.5")
    sim.inject("drop")  # applied, its answer lost
    sim.inject("500", RESENDS)  # every identical resend: no answer
    sim.inject("403")  # the noop: a gateway's 4xx
    sim.inject("500")  # the noop again: no answer
    row = wait_state(service, key_of(push(signals, trade_frame(size="0.01"))), timeout=40)
    assert row["state"] == "filled" and row["reason"] == "found on the exchange by cloid", row
    noops = [e for e in sim.exchange_log() if e["action_type"] == "noop"]
    assert [e["http_status"] for e in noops] == [403, 500, 200], noops
    assert noops[-1]["errors"] == [f"Invalid nonce: duplicate nonce {noops[-1]['nonce']}"]
    assert "noop for nonce" in caplog.text and "HTTP 403" in caplog.text
    _applied_once(sim, wallet)


def test_the_clock_offset_is_measured_said_and_allowed_for(make_service, sim, signals, wallet, caplog):
    """Our clock 90 s behind the exchange's: every expiresAfter computed by our clock alone would have passed on
    arrival. The offset is measured at start, said loudly, and the orders' expiresAfter allow for it."""
    caplog.set_level(logging.WARNING)
    sim.set_clock_offset(90)
    service = make_service()
    assert service.client.clock_offset is not None and 89 < service.client.clock_offset < 91
    assert "this machine's clock is 90.0s behind the exchange's" in caplog.text
    row = wait_state(service, key_of(push(signals, trade_frame())))
    assert row["state"] == "filled", row


def test_check_shows_the_clock_offset(env, sim):
    import io

    from fractrade_sync.cli.check import run_check

    sim.set_clock_offset(-2.5)
    client = HyperliquidClient(settings_from_mapping(env))
    client.account_state()
    assert -2.6 < client.clock_offset < -2.4
    out = io.StringIO()
    assert run_check(settings_from_mapping(env), out) == 5  # a problem to fix before money moves
    assert "clock       2.5s ahead of the exchange's: WARNING, action ages and order expiries" in out.getvalue()
    sim.set_clock_offset(0)
    out = io.StringIO()
    assert run_check(settings_from_mapping(env), out) == 0
    assert "clock       ok (" in out.getvalue()


def test_the_expiry_window_is_one_value_that_outlasts_every_resend():
    """The journal's recovery, the signer and the sender's settling reckon with the same window (a window drawn
    afresh at each use let a settle check fall before the order's expiresAfter), and it outlasts the whole resend
    schedule: every attempt its HTTP timeout, every wait its longest."""
    windows = {expiry_window(5.0) for _ in range(50)}
    assert len(windows) == 1
    retries = exchange_retries()
    longest = sum(retries.ceiling(attempt) for attempt in range(retries.tries))
    assert windows.pop() >= 5.0 * (retries.tries + 1) + longest
    assert max(sum(exchange_retries().delays()) for _ in range(200)) <= longest == retries.longest()
