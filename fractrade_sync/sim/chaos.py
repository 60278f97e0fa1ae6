"""Chaos: the service (a real process) against the simulators while a seeded schedule mixes every fault we know
with kill -9, power-loss restores of the state dir, reconnects and redeliveries; then, per action, what the
exchange applied. The invariant: every action applied exactly once, or never with a recorded reason (stale,
refused): zero doubles, zero silent losses, and a journal that tells the truth.

    python scripts/chaos --seed 7 --actions 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account

from fractrade_sync.actions import parse_frame
from fractrade_sync.channels.heartbeat import read_heartbeat
from fractrade_sync.outcome import OPEN_STATES
from fractrade_sync.sim.hl_server import HyperliquidSimulator
from fractrade_sync.sim.signal_server import SignalServer

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
APPLIED = ("filled", "partially_filled", "resting")
NEVER = ("expired", "rejected", "failed", "skipped")


@dataclass
class Sent:
    """One action of the run: its frame (as pushed), key and cloid, and the events around it."""

    frame: dict
    key: str
    cloid: str
    events: list[str] = field(default_factory=list)


class Chaos:
    def __init__(self, seed: int, actions: int, workdir: Path, out=sys.stdout):
        self.rng = random.Random(seed)
        self.seed, self.count, self.workdir, self.out = seed, actions, workdir, out
        self.wallet = Account.create()
        self.sim = HyperliquidSimulator().start()
        self.sim.add_account(self.wallet.address, 1_000_000)
        token = "chaos-" + os.urandom(8).hex()
        self.signals = SignalServer(token=token).start()
        self.state = workdir / "state"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))},
            "FRAC_WS_URL": self.signals.url,
            "FRAC_USER_TOKEN": token,
            "HYPERLIQUID_PRIVATE_KEY": "0x" + self.wallet.key.hex().removeprefix("0x"),
            "HYPERLIQUID_PUBLIC_ADDRESS": self.wallet.address,
            "HYPERLIQUID_API_URL": self.sim.url,
            "HYPERLIQUID_ENV": "testnet",
            "FRAC_STATE_DIR": str(self.state),
            "FRAC_HTTP_TIMEOUT": "0.5",
            "FRAC_HEARTBEAT_INTERVAL": "0.2",
            "FRAC_MAX_ACTION_AGE": str(MAX_AGE),
            "FRAC_DRAIN_TIMEOUT": "3",
            "LOGLEVEL": "INFO",
        }
        self.log = open(workdir / "service.log", "a")  # noqa: SIM115 (the run's whole life)
        self.proc: subprocess.Popen | None = None
        self.sent: list[Sent] = []
        self.snapshot: tuple[Path, int] | None = None  # a power-loss image of the state dir, and len(sent) then
        self.longest_hold = 0.0

    # ---- the service ---------------------------------------------------------------------------
    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fractrade_sync", "run"],
            env=self.env,
            cwd=self.workdir,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 120  # (its preparation backs off while the exchange answers 429)
        while time.monotonic() < deadline:
            beat = read_heartbeat(self.state / "heartbeat.json") or {}
            if beat.get("pid") == self.proc.pid and beat.get("connected") and beat.get("exchange_ready"):
                if self.signals.clients >= 1:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with {self.proc.returncode}: see {self.log.name}")
            time.sleep(0.05)
        raise RuntimeError(f"the service did not become ready: see {self.log.name}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        (self.state / "heartbeat.json").unlink(missing_ok=True)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def take_snapshot(self) -> None:
        """What the disk holds at this instant (the process paused: one consistent image)."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            image = self.workdir / f"snapshot-{len(self.sent)}"
            shutil.copytree(self.state, image)
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.snapshot = (image, len(self.sent) - 1)  # taken before the current action is pushed

    # ---- the journal, read as a bystander --------------------------------------------------------
    def rows(self) -> dict[str, dict]:
        path = self.state / "journal.sqlite3"
        if not path.exists():
            return {}
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return {r["key"]: dict(r) for r in conn.execute("SELECT key, state, reason FROM actions")}
        finally:
            conn.close()

    def wait_settled(self, keys: list[str], timeout: float, unknown_too: bool = False) -> None:
        """Until each action has its outcome (or, unless unknown_too, is 'unknown': reported, settled later)."""
        waiting = OPEN_STATES if unknown_too else ("received", "submitting")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.rows()
            if all(k in rows and rows[k]["state"] not in waiting for k in keys):
                return
            time.sleep(0.05)

    # ---- the schedule ----------------------------------------------------------------------------
    def new_frame(self, stale: bool = False) -> Sent:
        symbol, size = self.rng.choice((("BTC", "0.001"), ("ETH", "0.01"), ("SOL", "0.1")))
        ts = time.time() - (MAX_AGE + 5 if stale else 0)
        metadata = {"event_id": f"chaos-{self.seed}-{len(self.sent)}", "timestamp": ts, "price": 1.0}
        position = {"symbol": symbol, "size": size, "side": self.rng.choice(("BUY", "SELL")), "reduce_only": False}
        frame = {
            "type": "action",
            "data": {
                "action_id": "execute_hyperliquid_perp_trade",
                "config": {"position": position, "metadata": metadata},
            },
        }
        action = parse_frame(json.dumps(frame), time.time())
        return Sent(frame, action.key, action.cloid)

    def protection(self, trade: Sent, kind: str) -> Sent:
        """The stop loss or take profit (no size: a position TP/SL) of the agent's event that `trade` opened."""
        config = trade.frame["data"]["config"]
        symbol, side = config["position"]["symbol"], config["position"]["side"]
        mid = float(self.sim.mids()[symbol])
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

    def push(self, sent: Sent) -> None:
        self.signals.push(sent.frame)

    def redeliver(self, since: int) -> None:
        """What the signal server would send again after a reconnect: the actions from `since` on."""
        for sent in self.sent[since:]:
            sent.events.append("redelivered")
            self.push(sent)

    def step(self, i: int) -> None:
        event = self.rng.choices(list(EVENTS), weights=list(EVENTS.values()))[0]
        sim = self.sim
        sent = self.new_frame(stale=event == "stale")
        sent.events.append(event)
        self.sent.append(sent)
        sim.reset_faults()  # each step's faults are its own: one nobody consumed does not pile up for a later start
        sim.set_weight_limit(1200)
        sim.limit_address(self.wallet.address, False)
        sim.pause_userdata(False)
        if event in ("500", "429"):
            sim.inject(event, self.rng.randint(1, 7), path=self.rng.choice(("/exchange", "/exchange", "/info")))
        elif event in ("timeout", "drop", "html"):
            sim.timeout_s = self.rng.uniform(0.6, 2.0)
            sim.inject(event, path="/exchange")
        elif event == "hold":  # the order arrives after its resends, or after a noop took its nonce
            sim.timeout_s = self.rng.uniform(0.6, 14.0)
            self.longest_hold = max(self.longest_hold, sim.timeout_s)
            sim.inject("hold", path="/exchange")
        elif event == "info-garbage":
            sim.inject("drop", path="/exchange")
            for _ in range(self.rng.randint(1, 4)):
                sim.inject("answer", path="/info", answer=self.rng.choice(("null", '{"status":"maintenance"}', "[]")))
        elif event == "weight-limit":  # the IP's minute is spent: 429 null for a while (other agents on the VPS)
            sim.set_weight_limit(sim.weight_used() + self.rng.randint(0, 30))
        elif event == "address-limit":
            sim.limit_address(self.wallet.address)
        elif event == "ok-unreadable":  # applied; the answer says nothing of the orders: settled by cloid
            sim.inject("answer", path="/exchange", answer='{"status":"ok","response":{"type":"order","data":{}}}')
        elif event == "state-garbage":
            for _ in range(self.rng.randint(1, 3)):
                sim.inject("answer", path="/info", answer=self.rng.choice(("{}", '{"error":"internal"}', "null")))
        elif event == "feed-silent":  # the user-data subscriptions die without a word
            sim.pause_userdata(True)
        elif event == "clock":
            sim.set_clock_offset(self.rng.choice((-3.0, 0.0, 3.0)))
        elif event == "power-loss" and self.snapshot is None:
            self.take_snapshot()
        self.push(sent)
        if self.rng.random() < 1 / 3:  # an agent's event: the trade, its stop loss and take profit (one request)
            for kind in ("stop_loss", "take_profit"):
                leg = self.protection(sent, kind)
                leg.events.append("event")
                self.sent.append(leg)
                self.push(leg)
        for _ in range(self.rng.choice((0, 0, 1, 2))):  # more of the agent's actions right behind it: they share
            more = self.new_frame()  # requests (batches) with each other, and meet the same faults
            more.events.append("batched")
            self.sent.append(more)
            self.push(more)
        if event == "kill-in-flight":
            time.sleep(self.rng.uniform(0.0, 0.3))
            self.kill()
            self.start()
            self.redeliver(max(0, len(self.sent) - 5))
        elif event == "power-loss" and self.snapshot is not None and self.snapshot[1] < len(self.sent) - 1:
            time.sleep(self.rng.uniform(0.0, 0.5))
            image, since = self.snapshot
            self.kill()
            shutil.rmtree(self.state)
            shutil.copytree(image, self.state)
            self.snapshot = None
            self.start()
            self.redeliver(since)
        elif event == "reconnect":
            self.signals.drop_all()
            self._wait_connected()
            self.redeliver(len(self.sent) - 1)
        elif event == "redeliver":
            earlier = self.rng.choice(self.sent)
            earlier.events.append("redelivered")
            self.push(earlier)
        self.wait_settled([s.key for s in self.sent[-5:]], timeout=40)

    def _wait_connected(self) -> None:
        deadline = time.monotonic() + 20
        while self.signals.clients < 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    # ---- the run and its verdict ---------------------------------------------------------------------
    def run(self) -> bool:
        self.start()
        for i in range(self.count):
            self.step(i)
        self.sim.reset_faults()
        self.sim.set_clock_offset(0.0)
        self.sim.set_weight_limit(1200)
        self.sim.limit_address(self.wallet.address, False)
        self.sim.pause_userdata(False)
        time.sleep(self.longest_hold + 1)  # every request held in transit has arrived (and been refused)
        self.stop()
        self.start()  # a last start settles anything left open (unknown, in flight at a stop)
        self.wait_settled([s.key for s in self.sent], timeout=60, unknown_too=True)
        time.sleep(1.0)
        self.stop()
        return self.verdict()

    def verdict(self) -> bool:
        rows = self.rows()
        applied: dict[str, int] = {}
        for order in self.sim.applied_orders(self.wallet.address):
            cloid = str(order.get("cloid") or "").lower()
            applied[cloid] = applied.get(cloid, 0) + 1
        tally = {"once": 0, "never": 0, "double": 0, "lost": 0, "wrong record": 0, "unsettled": 0}
        print(f"chaos seed {self.seed}: {len(self.sent)} actions", file=self.out)
        for i, sent in enumerate(self.sent):
            times = applied.get(sent.cloid.lower(), 0)
            row = rows.get(sent.key)
            state = row["state"] if row else None
            if times > 1:
                verdict = "double"
            elif row is None:
                verdict = "lost"
            elif state in OPEN_STATES:
                verdict = "unsettled"
            elif times == 1:
                verdict = "once" if state in APPLIED else "wrong record"
            else:
                verdict = "never" if state in NEVER and row["reason"] else "wrong record"
            tally[verdict] += 1
            reason = f" ({row['reason'][:90]})" if row and row["reason"] and times != 1 else ""
            print(
                f"{i:4d} {sent.key[:10]} applied={times} journal={state}{reason} [{', '.join(sent.events)}]"
                f" -> {verdict}",
                file=self.out,
            )
        print("summary: " + ", ".join(f"{k} {v}" for k, v in tally.items()), file=self.out)
        return tally["double"] == tally["lost"] == tally["wrong record"] == tally["unsettled"] == 0

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self.signals.stop()
        self.sim.stop()
        self.log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--actions", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (state, snapshots, service log)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{args.seed}-"))
    chaos = Chaos(args.seed, args.actions, workdir)
    try:
        ok = chaos.run()
    finally:
        chaos.close()
        if args.keep or not locals().get("ok"):
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
