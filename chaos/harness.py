"""Chaos: the service (a real process) against the simulators while a seeded schedule mixes every fault we know
with kill -9, power-loss restores of the state dir, reconnects and redeliveries; then, per action, what the
exchange applied. The invariant: every action applied exactly once, or never with a recorded reason (stale,
refused): zero doubles, zero silent losses, and a journal that tells the truth.

    python scripts/chaos --seed 7 --actions 100
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account

from chaos import schedule, verdict
from chaos.schedule import MAX_AGE, Sent
from chaos.service import Service
from fractrade_sync.sim.hl_server import HyperliquidSimulator
from fractrade_sync.sim.signal_server import SignalServer


class Chaos:
    def __init__(self, seed: int, actions: int, workdir: Path, out=sys.stdout):
        self.rng = random.Random(seed)
        self.seed = seed
        self.count = actions
        self.workdir = workdir
        self.out = out
        self.wallet = Account.create()
        self.sim = HyperliquidSimulator().start()
        self.sim.add_account(self.wallet.address, 1_000_000)
        token = "chaos-" + os.urandom(8).hex()
        self.signals = SignalServer(token=token).start()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))},
            "FRAC_WS_URL": self.signals.url,
            "FRAC_USER_TOKEN": token,
            "HYPERLIQUID_PRIVATE_KEY": "0x" + self.wallet.key.hex().removeprefix("0x"),
            "HYPERLIQUID_PUBLIC_ADDRESS": self.wallet.address,
            "HYPERLIQUID_API_URL": self.sim.url,
            "HYPERLIQUID_ENV": "testnet",
            "FRAC_STATE_DIR": str(workdir / "state"),
            "FRAC_HTTP_TIMEOUT": "0.5",
            "FRAC_HEARTBEAT_INTERVAL": "0.2",
            "FRAC_MAX_ACTION_AGE": str(MAX_AGE),
            "FRAC_DRAIN_TIMEOUT": "3",
            "LOGLEVEL": "INFO",
        }
        self.service = Service(workdir, env, self.signals)
        self.sent: list[Sent] = []
        self.snapshot: tuple[Path, int] | None = None  # a power-loss image of the state dir, and len(sent) then
        self.longest_hold = 0.0

    # ---- the schedule ----------------------------------------------------------------------------
    def new_frame(self, stale: bool = False) -> Sent:
        return schedule.trade(self.rng, f"chaos-{self.seed}-{len(self.sent)}", stale)

    def push(self, sent: Sent) -> None:
        self.signals.push(sent.frame)

    def redeliver(self, since: int) -> None:
        """What the signal server would send again after a reconnect: the actions from `since` on."""
        for sent in self.sent[since:]:
            sent.events.append("redelivered")
            self.push(sent)

    def step(self, i: int) -> None:
        event = self.rng.choices(list(schedule.EVENTS), weights=list(schedule.EVENTS.values()))[0]
        sent = self.new_frame(stale=event == "stale")
        sent.events.append(event)
        self.sent.append(sent)
        schedule.calm(self.sim, self.wallet.address)
        self.longest_hold = max(self.longest_hold, schedule.arm(self.sim, self.rng, event, self.wallet.address))
        if event == "power-loss" and self.snapshot is None:
            self.take_snapshot()
        self.push(sent)
        self.push_more(sent)
        self.disrupt(event)
        self.service.wait_settled([s.key for s in self.sent[-5:]], timeout=40)

    def take_snapshot(self) -> None:
        image = self.service.image(f"snapshot-{len(self.sent)}")
        self.snapshot = (image, len(self.sent) - 1)  # taken before the current action is pushed

    def push_more(self, sent: Sent) -> None:
        """What the agent sends with `sent`: maybe its event's stop loss and take profit, maybe more trades."""
        if self.rng.random() < 1 / 3:  # an agent's event: the trade, its stop loss and take profit (one request)
            symbol = sent.frame["data"]["config"]["position"]["symbol"]
            for kind in ("stop_loss", "take_profit"):
                leg = schedule.protection(sent, kind, float(self.sim.mids()[symbol]))
                leg.events.append("event")
                self.sent.append(leg)
                self.push(leg)
        for _ in range(self.rng.choice((0, 0, 1, 2))):  # more of the agent's actions right behind it: they share
            more = self.new_frame()  # requests (batches) with each other, and meet the same faults
            more.events.append("batched")
            self.sent.append(more)
            self.push(more)

    def disrupt(self, event: str) -> None:
        """The step's disruption once its actions are pushed: a kill, a power loss, a reconnect, a redelivery."""
        if event == "kill-in-flight":
            time.sleep(self.rng.uniform(0.0, 0.3))
            self.service.kill()
            self.service.start()
            self.redeliver(max(0, len(self.sent) - 5))
        elif event == "power-loss" and self.snapshot is not None and self.snapshot[1] < len(self.sent) - 1:
            time.sleep(self.rng.uniform(0.0, 0.5))
            image, since = self.snapshot
            self.service.restore(image)
            self.snapshot = None
            self.service.start()
            self.redeliver(since)
        elif event == "reconnect":
            self.signals.drop_all()
            self._wait_connected()
            self.redeliver(len(self.sent) - 1)
        elif event == "redeliver":
            earlier = self.rng.choice(self.sent)
            earlier.events.append("redelivered")
            self.push(earlier)

    def _wait_connected(self) -> None:
        deadline = time.monotonic() + 20
        while self.signals.clients < 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    # ---- the run and its verdict ---------------------------------------------------------------------
    def run(self) -> bool:
        self.service.start()
        for i in range(self.count):
            self.step(i)
        schedule.calm(self.sim, self.wallet.address)
        self.sim.set_clock_offset(0.0)
        time.sleep(self.longest_hold + 1)  # every request held in transit has arrived (and been refused)
        self.service.stop()
        self.service.start()  # a last start settles anything left open (unknown, in flight at a stop)
        self.service.wait_settled([s.key for s in self.sent], timeout=60, unknown_too=True)
        time.sleep(1.0)
        self.service.stop()
        return self.verdict()

    def verdict(self) -> bool:
        rows = self.service.rows()
        return verdict.report(self.seed, self.sent, rows, self.sim.applied_orders(self.wallet.address), self.out)

    def close(self) -> None:
        self.service.close()
        self.signals.stop()
        self.sim.stop()


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
