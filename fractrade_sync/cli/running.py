"""Which process is the service running with a state dir: the pid `pid` prints and the kill switch names, only
when it is really that service (never a stale pid a stranger may have reused)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from fractrade_sync.storage.state_dir import StatePaths, recorded_pid


def live_service_pid(paths: StatePaths) -> int | None:
    """The pid recorded under the state dir's lock, only while that very process is alive and holds the lock.

    A pid left by an unclean stop (the lock free, the pid perhaps reused by a stranger) is None: never signal it.
    Linux shows which open file holds a flock (/proc/<pid>/fdinfo), so the check takes no lock and cannot make a
    service starting at that moment fail. Where that cannot be read (another user's process, no /proc): the lock
    is held by someone (a shared-lock probe) and the pid is a live process whose command line names fractrade-sync."""
    pid = recorded_pid(paths.lock)
    if not pid:
        return None
    holds = _holds_flock(pid, paths.lock)
    if holds is None:
        holds = _lock_is_held(paths.lock) and _runs_fractrade_sync(pid)
    return pid if holds else None


def _holds_flock(pid: int, lock: Path) -> bool | None:
    """True when process `pid` has `lock` open with an exclusive flock on it; None when this cannot be told."""
    try:
        want = os.stat(lock)
    except OSError:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = os.listdir(fd_dir)
    except FileNotFoundError:
        return False if os.path.isdir("/proc/self/fd") else None  # gone (or no /proc here)
    except OSError:
        return None  # another user's process
    unsure = False
    for fd in fds:
        try:
            st = os.stat(fd_dir / fd)
            if (st.st_dev, st.st_ino) != (want.st_dev, want.st_ino):
                continue
            lines = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
        except OSError:
            continue  # closed meanwhile
        if any(line.startswith("lock:") and " FLOCK " in line and " WRITE " in line for line in lines):
            return True
        unsure = True  # open without a lock line: not holding it, or a kernel that does not show locks (< 4.1)
    return None if unsure else False


def _lock_is_held(lock: Path) -> bool:
    """Someone holds the lock: a shared lock cannot be had (taken and dropped at once when it can)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (closing drops a lock just taken)
    return False


def _runs_fractrade_sync(pid: int) -> bool:
    """`pid` is a live process whose command line names fractrade-sync (without /proc: just alive)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    except OSError:
        return False
    return b"fractrade_sync" in args or b"fractrade-sync" in args
