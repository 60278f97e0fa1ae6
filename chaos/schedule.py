"""What a chaos run draws from, each step: the events and their weights, the agent's frames, and the faults each
event arms on the simulator before the step's action is pushed."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

from fractrade_sync.frames import parse_frame
from fractrade_sync.sim.hl_server import HyperliquidSimulator

# what the schedule draws from, each step (weights)
EVENTS = {
    "none": 8,
    "500": 2,
    "429": 2,
    "timeout": 2,
    "drop": 2,
    "html": 2,
    "hold": 2,
    "info-garbage": 2,
    "clock": 1,
    "kill-in-flight": 2,
    "power-loss": 1,
    "reconnect": 1,
    "redeliver": 2,
    "stale": 1,
    # the live exchange's own ways (EXCHANGE.md): its per-IP weight limit reached (429 null), the address-based
    # limit, an ok answer without per-order statuses, a garbled clearinghouseState, the account feed paused
    "weight-limit": 1,
    "address-limit": 1,
    "ok-unreadable": 1,
    "state-garbage": 1,
    "feed-silent": 1,
}
MAX_AGE = 20.0  # FRAC_MAX_ACTION_AGE for the run


@dataclass
class Sent:
    """One action of the run: its frame (as pushed), key and cloid, and the events around it."""

    frame: dict
    key: str
    cloid: str
    events: list[str] = field(default_factory=list)


def trade(rng: random.Random, event_id: str, stale: bool = False) -> Sent:
    """A market order of the agent's on BTC, ETH or SOL; `stale` sends it older than MAX_AGE."""
    symbol, size = rng.choice((("BTC", "0.001"), ("ETH", "0.01"), ("SOL", "0.1")))
    ts = time.time() - (MAX_AGE + 5 if stale else 0)
    metadata = {"event_id": event_id, "timestamp": ts, "price": 1.0}
    position = {"symbol": symbol, "size": size, "side": rng.choice(("BUY", "SELL")), "reduce_only": False}
    frame = {
        "type": "action",
        "data": {
            "action_id": "execute_hyperliquid_perp_trade",
            "config": {"position": position, "metadata": metadata},
        },
    }
    action = parse_frame(json.dumps(frame), time.time())
    return Sent(frame, action.key, action.cloid)


def protection(trade: Sent, kind: str, mid: float) -> Sent:
    """The stop loss or take profit (no size: a position TP/SL) of the agent's event that `trade` opened, placed
    around the coin's `mid`."""
    config = trade.frame["data"]["config"]
    symbol = config["position"]["symbol"]
    side = config["position"]["side"]
    below = (kind == "stop_loss") == (side == "BUY")  # a long's stop is below the mid, its take profit above
    position = {
        "symbol": symbol,
        "side": "SELL" if side == "BUY" else "BUY",
        "trigger_price": f"{mid * (0.9 if below else 1.1):.0f}",
    }
    data = {
        "action_id": f"set_hyperliquid_perp_{kind}",
        "config": {"position": position, "metadata": dict(config["metadata"])},
    }
    frame = {"type": "action", "data": data}
    action = parse_frame(json.dumps(frame), time.time())
    return Sent(frame, action.key, action.cloid)


def calm(sim: HyperliquidSimulator, address: str) -> None:
    """Undo what an earlier step armed: no faults waiting, the weight limit back, the address free, the feed on."""
    sim.reset_faults()  # each step's faults are its own: one nobody consumed does not pile up for a later start
    sim.set_weight_limit(1200)
    sim.limit_address(address, False)
    sim.pause_userdata(False)


def arm(sim: HyperliquidSimulator, rng: random.Random, event: str, address: str) -> float:
    """Arm the simulator for `event`; returns how long a request may be held in transit by it (0: none)."""
    if event in ("500", "429"):
        sim.inject(event, rng.randint(1, 7), path=rng.choice(("/exchange", "/exchange", "/info")))
    elif event in ("timeout", "drop", "html"):
        sim.timeout_s = rng.uniform(0.6, 2.0)
        sim.inject(event, path="/exchange")
    elif event == "hold":  # the order arrives after its resends, or after a noop took its nonce
        sim.timeout_s = rng.uniform(0.6, 14.0)
        sim.inject("hold", path="/exchange")
        return sim.timeout_s
    elif event == "info-garbage":
        sim.inject("drop", path="/exchange")
        for _ in range(rng.randint(1, 4)):
            sim.inject("answer", path="/info", answer=rng.choice(("null", '{"status":"maintenance"}', "[]")))
    elif event == "weight-limit":  # the IP's minute is spent: 429 null for a while (other agents on the VPS)
        sim.set_weight_limit(sim.weight_used() + rng.randint(0, 30))
    elif event == "address-limit":
        sim.limit_address(address)
    elif event == "ok-unreadable":  # applied; the answer says nothing of the orders: settled by cloid
        sim.inject("answer", path="/exchange", answer='{"status":"ok","response":{"type":"order","data":{}}}')
    elif event == "state-garbage":
        for _ in range(rng.randint(1, 3)):
            sim.inject("answer", path="/info", answer=rng.choice(("{}", '{"error":"internal"}', "null")))
    elif event == "feed-silent":  # the user-data subscriptions die without a word
        sim.pause_userdata(True)
    elif event == "clock":
        sim.set_clock_offset(rng.choice((-3.0, 0.0, 3.0)))
    return 0.0
