"""The service under chaos: a real process (`python -m fractrade_sync run`) with its own state dir and log, started,
killed -9, stopped, its disk imaged; and its journal, read as a bystander."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fractrade_sync.channels.heartbeat import read_heartbeat
from fractrade_sync.outcome import OPEN_STATES
from fractrade_sync.sim.signal_server import SignalServer


class Service:
    """The service in `workdir` (state dir `workdir/state`, log `workdir/service.log`), run with `env`; ready once
    its heartbeat says so and `signals` has its connection."""

    def __init__(self, workdir: Path, env: dict[str, str], signals: SignalServer):
        self.workdir = workdir
        self.env = env
        self.signals = signals
        self.state = workdir / "state"
        self.log = open(workdir / "service.log", "a")  # noqa: SIM115 (the run's whole life)
        self.proc: subprocess.Popen | None = None

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

    def image(self, name: str) -> Path:
        """What the disk holds at this instant (the process paused: one consistent image), copied to `name`."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            image = self.workdir / name
            shutil.copytree(self.state, image)
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)
        return image

    def restore(self, image: Path) -> None:
        """Put an image back as the state dir (the process killed first: a power loss)."""
        self.kill()
        shutil.rmtree(self.state)
        shutil.copytree(image, self.state)

    def rows(self) -> dict[str, dict]:
        """The journal's actions: key -> {key, state, reason}."""
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

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self.log.close()
