"""`fractrade-sync send FILE`: push actions from a JSON or JSONL file through the same pipeline."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from fractrade_sync.config.settings import EXIT_FAILURE, EXIT_OK, Settings
from fractrade_sync.errors import ConfigError
from fractrade_sync.outcome import FAILED, RECEIVED, SUBMITTING, UNKNOWN
from fractrade_sync.service import FractradeExecutor


def read_frames(path: Path) -> list[str]:
    """Frames from a file: one JSON object, a JSON array of messages, or one message per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("FILE", f"cannot read {path}: {exc.strerror}") from None
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except ValueError:
        return [line for line in text.splitlines() if line.strip()]  # JSONL; bad lines are rejected downstream
    if isinstance(whole, list):
        return [json.dumps(item) for item in whole]
    return [stripped]


def send_file(settings: Settings, path: Path, timeout: float = 120.0) -> int:
    """Journal and execute each frame like a received one; wait until all are done; 0 when none failed."""
    frames = read_frames(path)
    service = FractradeExecutor(settings)
    service.start(receive=False)
    logger = logging.getLogger("fractrade_sync.send")
    keys = []
    try:
        for frame in frames:
            action = service.accept_frame(frame)
            if action is not None:
                keys.append(action.key)
        deadline = time.monotonic() + timeout
        while not service.worker.ready.wait(0.05) and service.fatal is None and time.monotonic() < deadline:
            pass  # the exchange ready first (a refusal there is the command's failure, even with nothing queued)
        service.worker.wait_done(max(0.0, deadline - time.monotonic()), give_up=lambda: service.fatal is not None)
        rows = [service.journal.get(key) for key in keys]
        states = [row["state"] if row else RECEIVED for row in rows]  # no row yet: still only noted, queued
    finally:
        service.stop()
    if service.fatal is not None:
        raise service.fatal
    failed = sum(1 for state in states if state in (FAILED, RECEIVED, SUBMITTING, UNKNOWN))
    logger.info("send: %d frame(s) read, %d new action(s), %d not completed", len(frames), len(keys), failed)
    return EXIT_FAILURE if failed else EXIT_OK
