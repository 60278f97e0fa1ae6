"""The heartbeat file: written by the running service's watchdog, read by `health` (cron, monitors)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_heartbeat(path: Path, data: dict[str, Any]) -> None:
    """Atomically replace the 0600 heartbeat file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat a running service wrote, or None."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def remove_heartbeat(path: Path) -> None:
    """At an orderly stop: no heartbeat, so `health` says the service is not running."""
    path.unlink(missing_ok=True)


def health_problem(beat: dict | None, max_age: float | None, now: float) -> str | None:
    """Why the service is not healthy, or None."""
    if not beat:
        return "no heartbeat: the service is not running"
    limit = max_age if max_age is not None else max(15.0, 3 * float(beat.get("heartbeat_interval", 5)))
    age = now - float(beat.get("time", 0))
    if age > limit:
        return f"heartbeat is {age:.0f}s old (limit {limit:.0f}s)"
    try:
        os.kill(int(beat.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return f"process {beat.get('pid')} is gone"
    except PermissionError:
        pass  # alive, owned by another user
    for name, state in (beat.get("threads") or {}).items():
        if state != "ok":
            return f"the {name} thread is {state}"
    if beat.get("storage"):
        return f"actions are not executed: {beat['storage']}"
    if not beat.get("worker_alive"):
        return "the worker thread is stuck or dead"
    if not beat.get("connected"):
        return "not connected to Fractrade"
    return None
