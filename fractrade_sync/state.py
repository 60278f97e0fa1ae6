"""The state directory: its paths (defined once, for the service and the CLI alike), its mode, its lock."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StatePaths:
    """Where one service keeps its state (dir 0700, files 0600)."""

    dir: Path

    @property
    def journal(self) -> Path:
        return self.dir / "journal.sqlite3"

    @property
    def heartbeat(self) -> Path:
        return self.dir / "heartbeat.json"

    @property
    def kill_switch(self) -> Path:
        return self.dir / "KILL"

    @property
    def lock(self) -> Path:
        return self.dir / "lock"


def ensure_private_dir(path: Path) -> None:
    """Create a directory 0700 (and tighten an existing one)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (path.stat().st_mode & 0o777) != 0o700:
        os.chmod(path, 0o700)


class StateLock:
    """One service per state dir: an exclusive flock held while it runs, with the holder's pid in the file."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
