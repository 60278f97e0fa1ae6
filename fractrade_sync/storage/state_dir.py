"""The state directory: its paths (defined once, for the service and the CLI alike), its mode, its lock; the signer's
lock; both, as one run holds them (RunLocks)."""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fractrade_sync.errors import ConfigError


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
    """One service per state dir: an exclusive flock held while it runs, with the holder's pid in the file.

    The pid is also the run's unclean-stop marker: written and made durable (fsync, file and directory) the moment
    the lock is taken, removed only by an orderly release. A pid found at acquire means the last run did not stop
    in order (kill -9, a crash, a power loss, even in its first seconds): `unclean` is then True."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self.unclean = False

    def acquire(self) -> bool:
        """Take the lock; False when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.unclean = bool(os.pread(fd, 32, 0).strip())
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        os.fsync(fd)
        _fsync_dir(self.path.parent)
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self, orderly: bool = True) -> None:
        """Let go of the lock; an orderly release first clears the pid (the next start is a clean one)."""
        fd = self._fd
        self._fd = None
        if fd is None:
            return
        try:
            if orderly:
                os.ftruncate(fd, 0)
                os.fsync(fd)
        finally:
            os.close(fd)


def signers_dir() -> Path:
    """Where this user's running agents hold their signers' locks: one place for all of them, whatever each one's
    state dir ($XDG_RUNTIME_DIR, else the temporary directory)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"fractrade-sync-{os.getuid()}" / "signers"


class SignerLock:
    """One running agent per signer on this machine: Hyperliquid's nonces are per signer, so two agents signing with
    one key (or one API wallet) could spend each other's nonces. An exclusive flock on the signer's address, with
    the holder's state dir and pid in the file (for the refusal's text)."""

    def __init__(self, signer: str, holder: str, where: Path | None = None):
        self.path = (where or signers_dir()) / f"{signer.lower()}.lock"
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock; None, or why not: who holds it."""
        ensure_private_dir(self.path.parent.parent)
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            why = "Hyperliquid's nonces are per signer, so give each agent its own API wallet"
            return f"its signer {self.path.stem} is held by another running agent ({holder}): {why}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"state dir {self.holder}, pid {os.getpid()}".encode(), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        fd = self._fd
        self._fd = None
        if fd is not None:
            os.close(fd)


class RunLocks:
    """What one run holds while it runs: its state directory (StateLock) and its signer (SignerLock)."""

    def __init__(self, paths: StatePaths, signer: str):
        self.state_dir = paths.dir
        self.state = StateLock(paths.lock)
        self.signer = SignerLock(signer, str(paths.dir))

    @property
    def held(self) -> bool:
        return self.state.held

    def acquire(self) -> bool:
        """Both, or neither and a ConfigError that says who holds which; True when the last run that held the state
        directory did not stop in order."""
        ensure_private_dir(self.state_dir)
        if not self.state.acquire():
            raise ConfigError(
                "FRAC_STATE_DIR", f"another fractrade-sync is running with {self.state_dir}; stop it first"
            )
        refused = self.signer.acquire()
        if refused is not None:  # (a last run that did not stop in order stays known as such for the next start)
            self.state.release(orderly=not self.state.unclean)
            raise ConfigError("HYPERLIQUID_PRIVATE_KEY", refused)
        return self.state.unclean

    def release(self, orderly: bool = True) -> None:
        """Let go of both; an orderly release marks the stop as clean (StateLock.release)."""
        self.state.release(orderly)
        self.signer.release()


def recorded_pid(path: Path) -> int | None:
    """The pid a running (or uncleanly stopped) service recorded under its lock; None when none is recorded."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
