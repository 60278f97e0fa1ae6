"""Command line: run (default), check, status, report, health, pid, send, kill-switch, demo; exit codes 0 / 1 / 78."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from fractrade_sync import __version__
from fractrade_sync.channels.heartbeat import health_problem, read_heartbeat
from fractrade_sync.config.settings import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    ConfigError,
    default_state_dir,
    load_settings,
    merged_env,
)
from fractrade_sync.logs import setup_logging
from fractrade_sync.storage.state import StatePaths, ensure_private_dir, recorded_pid

FLAG_VARS = {
    "ws_url": "FRAC_WS_URL",
    "account": "HYPERLIQUID_PUBLIC_ADDRESS",
    "api_url": "HYPERLIQUID_API_URL",
    "env": "HYPERLIQUID_ENV",
    "state_dir": "FRAC_STATE_DIR",
    "log_level": "LOGLEVEL",
    "log_format": "LOG_FORMAT",
    "max_action_age": "FRAC_MAX_ACTION_AGE",
}

EPILOG = """\
Secrets (FRAC_USER_TOKEN, HYPERLIQUID_PRIVATE_KEY) are read only from the environment or
the .env file, never from flags, so they never show in the process list.

examples:
  fractrade-sync demo                      everything local, no keys: watch the whole flow
  fractrade-sync check                     validate .env, reach Fractrade and Hyperliquid
  fractrade-sync                           run the service (same as `run`)
  fractrade-sync status --json             recent actions and their outcomes
  fractrade-sync report --since 7d         profit, fees, funding and execution quality
  fractrade-sync health || restart-it      for cron and monitors
  fractrade-sync send actions.jsonl        push actions from a file through the same pipeline
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="read this agent's env file instead of ./.env; it must exist (else exit 78)",
    )
    parser.add_argument("--state-dir", help="journal and heartbeat directory (FRAC_STATE_DIR)")


def _service_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ws-url", help="Fractrade WebSocket URL (FRAC_WS_URL)")
    parser.add_argument("--account", help="the trading account address (HYPERLIQUID_PUBLIC_ADDRESS)")
    parser.add_argument("--api-url", help="Hyperliquid API base URL (HYPERLIQUID_API_URL)")
    parser.add_argument("--env", choices=("mainnet", "testnet"), help="HYPERLIQUID_ENV")
    parser.add_argument("--log-level", help="LOGLEVEL: DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--log-format", choices=("text", "json"), help="LOG_FORMAT")
    parser.add_argument("--max-action-age", help="seconds; older actions are never executed (FRAC_MAX_ACTION_AGE)")
    parser.add_argument("--dry-run", action="store_true", help="build and log every order, send nothing")


EXAMPLES = {
    "run": "  fractrade-sync run\n  fractrade-sync run --env-file /etc/fractrade-sync/agent-a.env\n"
    "  fractrade-sync run --dry-run --log-format json\n",
    "check": "  fractrade-sync check\n  fractrade-sync check --env-file /etc/fractrade/.env\n",
    "status": "  fractrade-sync status\n  fractrade-sync status --json -n 100 | jq '.counts'\n",
    "report": "  fractrade-sync report\n  fractrade-sync report --since 7d --json | jq .net_pnl\n"
    "  fractrade-sync report --since 2026-12-01 --html report.html\n",
    "health": "  fractrade-sync health || echo restart it\n  fractrade-sync health --max-age 30\n",
    "pid": '  fractrade-sync pid\n  pid=$(fractrade-sync pid) && kill -TERM "$pid"\n',
    "send": "  fractrade-sync send actions.jsonl\n  fractrade-sync send one-action.json --dry-run\n",
    "kill-switch": "  fractrade-sync kill-switch on\n  fractrade-sync kill-switch status\n",
    "demo": "  fractrade-sync demo\n  fractrade-sync demo --quiet\n  fractrade-sync demo --sub-account --hip3\n",
}


def _sub(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog="examples:\n" + EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fractrade-sync",
        description="Execute your Fractrade agent's actions on Hyperliquid with your own key.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fractrade-sync {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = _sub(sub, "run", "run the service (the default)")
    _common(run)
    _service_flags(run)
    check = _sub(sub, "check", "validate config, reach both endpoints, show the account (exit 2/3/4 tell what failed)")
    _common(check)
    _service_flags(check)
    status = _sub(sub, "status", "recent actions and their outcomes from the journal")
    _common(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("-n", "--limit", type=int, default=20, help="how many actions (default 20)")
    report = _sub(sub, "report", "profit, fees, funding and execution quality from the journal")
    _common(report)
    report.add_argument("--since", help="a span back from now (30m, 24h, 7d, 2w) or a UTC date (2026-12-01)")
    report.add_argument("--json", action="store_true", help="machine-readable output (stable keys)")
    report.add_argument("--html", type=Path, metavar="FILE", help="also write the report as one self-contained page")
    health = _sub(sub, "health", "exit 0 when the running service's heartbeat is fresh and connected")
    _common(health)
    health.add_argument("--max-age", type=float, default=None, help="seconds a heartbeat stays fresh")
    pid = _sub(sub, "pid", "print the pid of the service running with this state dir; exit 1 when none runs")
    _common(pid)
    send = _sub(sub, "send", "push actions from a JSON or JSONL file through the same pipeline")
    _common(send)
    _service_flags(send)
    send.add_argument("file", type=Path, help="a JSON object, a JSON array of messages, or one message per line")
    kill = _sub(sub, "kill-switch", "refuse every new opening trade (reduce-only, SL and TP still run)")
    _common(kill)
    kill.add_argument("state", nargs="?", choices=("on", "off", "status"), default="status")
    demo = _sub(sub, "demo", "everything local, no credentials: simulator + signal server + service")
    demo.add_argument("--quiet", action="store_true", help="only the timeline, no service log")
    sub_help = "trade a sub-account of the demo account, through an API wallet of it (vaultAddress)"
    demo.add_argument("--sub-account", action="store_true", help=sub_help)
    demo.add_argument("--hip3", action="store_true", help="trade a HIP-3 dex's coin (xyz:NVDA) instead of BTC")
    return parser


def _flags(args: argparse.Namespace) -> dict[str, str | None]:
    flags = {var: getattr(args, name, None) for name, var in FLAG_VARS.items()}
    if getattr(args, "dry_run", False):
        flags["FRAC_DRY_RUN"] = "1"
    return flags


def main(argv: Sequence[str] | None = None) -> int:
    """The console script; returns (and exits with) the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    handlers = {
        "run": cmd_run,
        "check": cmd_check,
        "status": cmd_status,
        "report": cmd_report,
        "health": cmd_health,
        "pid": cmd_pid,
        "send": cmd_send,
        "demo": cmd_demo,
        "kill-switch": cmd_kill_switch,
    }
    try:
        code = handlers[args.command or "run"](args)
    except ConfigError as exc:
        print(f"fractrade-sync: configuration error: {exc}", file=sys.stderr)
        code = EXIT_CONFIG
    except KeyboardInterrupt:
        code = EXIT_FAILURE
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from fractrade_sync.service import FractradeExecutor

    settings = load_settings(_flags(args), env_file=_env_file(args))
    setup_logging(settings.log_level, settings.log_format, settings.secrets)
    try:
        return FractradeExecutor(settings).run()
    except ConfigError:
        raise
    except Exception:
        import logging

        logging.getLogger("fractrade_sync").exception("fractrade-sync stopped on an unexpected error")
        return EXIT_FAILURE


def _env_file(args: argparse.Namespace) -> Path | None:
    """--env-file: it replaces ./.env, so one that is not there (a typo, one agent too many) is an error, not an
    empty file: every command would silently run with another agent's settings, or with none."""
    path = args.env_file
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError("--env-file", f"{path.absolute()}: {'not a file' if path.exists() else 'no such file'}")
    if not os.access(path, os.R_OK):
        raise ConfigError("--env-file", f"{path.absolute()}: not readable by this user (uid {os.getuid()})")
    return path


def _paths(args: argparse.Namespace) -> StatePaths:
    """The state paths a command acts on (status, health and the kill switch need no secrets)."""
    env = merged_env(env_file=_env_file(args))
    raw = args.state_dir or env.get("FRAC_STATE_DIR", "").strip()
    return StatePaths(Path(raw).expanduser() if raw else default_state_dir())


def cmd_status(args: argparse.Namespace) -> int:
    from fractrade_sync.outcome import row_fields
    from fractrade_sync.storage.journal import Journal

    path = _paths(args).journal
    if not path.exists():
        print(f"no journal at {path}: the service has not run with this state dir", file=sys.stderr)
        return EXIT_FAILURE
    journal = Journal(path)
    rows, counts = journal.recent(args.limit), journal.counts()
    journal.close()
    if args.json:
        actions = [{"received_at": r["received_at"], "event_id": r["event_id"], **row_fields(r)} for r in rows]
        print(json.dumps({"counts": counts, "actions": actions}, indent=2))
        return EXIT_OK
    print("totals: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no actions yet"))
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["received_at"]))
        what = " ".join(str(r[f]) for f in ("action_id", "side", "size", "symbol") if r.get(f)) or "(unparsed frame)"
        if r.get("trigger_price"):
            what += f" @ {r['trigger_price']}"
        detail = f"filled {r['filled_sz']} @ {r['avg_px']}" if r.get("filled_sz") and r.get("avg_px") else ""
        detail = " ".join(x for x in (detail, f"oid {r['oid']}" if r.get("oid") else "", r.get("reason") or "") if x)
        print(f"{when}  {r['state']:<16} {what}  {detail}".rstrip())
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from fractrade_sync.report.summary import build, parse_since, text
    from fractrade_sync.storage.journal import Journal

    path = _paths(args).journal
    if not path.exists():
        print(f"no journal at {path}: the service has not run with this state dir", file=sys.stderr)
        return EXIT_FAILURE
    try:
        since = parse_since(args.since, time.time())
    except ValueError as exc:
        print(f"fractrade-sync: {exc}", file=sys.stderr)
        return 2
    journal = Journal(path)
    try:
        report = build(journal, since)
    finally:
        journal.close()
    if args.html is not None:
        from fractrade_sync.report.page import page

        args.html.write_text(page(report), encoding="utf-8")
        print(f"wrote {args.html}: open it in a browser (it works offline)", file=sys.stderr)
    print(json.dumps(report, indent=2) if args.json else text(report))
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    beat = read_heartbeat(_paths(args).heartbeat)
    problem = health_problem(beat, args.max_age, time.time())
    if problem:
        print(f"unhealthy: {problem}")
        return EXIT_FAILURE
    print(f"healthy: pid {beat['pid']}, connected, queue {beat.get('queue_depth', 0)}")
    return EXIT_OK


def cmd_pid(args: argparse.Namespace) -> int:
    """For scripts (the cron watchdog) and people: the pid to signal, only when it is really the running service."""
    paths = _paths(args)
    pid = live_service_pid(paths)
    if pid is not None:
        print(pid)
        return EXIT_OK
    stale = recorded_pid(paths.lock)
    why = f" (pid {stale} in {paths.lock} was left by a run that did not stop in order)" if stale else ""
    print(f"no fractrade-sync is running with {paths.dir}{why}", file=sys.stderr)
    return EXIT_FAILURE


def cmd_kill_switch(args: argparse.Namespace) -> int:
    """The kill switch is a file in the state dir: a running service sees it at the next action."""
    paths = _paths(args)
    path = paths.kill_switch
    if args.state == "on":
        ensure_private_dir(paths.dir)
        path.write_text(f"kill switch set at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    elif args.state == "off":
        path.unlink(missing_ok=True)
    on = path.exists()
    pid = live_service_pid(paths)
    if pid is None:
        service = "no service is running with this state dir"
    else:
        service = f"the service running there, pid {pid}, {'refuses' if on else 'accepts'} opening trades now"
    state = "ON: opening trades are refused" if on else "off: opening trades are allowed"
    print(f"kill switch is {state} in {paths.dir} ({service})")
    return EXIT_OK


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


def cmd_send(args: argparse.Namespace) -> int:
    from fractrade_sync.cli.sendfile import send_file

    settings = load_settings(_flags(args), env_file=_env_file(args), require_ws=False)
    setup_logging(settings.log_level, settings.log_format, settings.secrets)
    return send_file(settings, args.file)


def cmd_check(args: argparse.Namespace) -> int:
    from fractrade_sync.cli.check import run_check

    settings = load_settings(_flags(args), env_file=_env_file(args))
    setup_logging("WARNING", "text", settings.secrets)
    return run_check(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from fractrade_sync.sim.demo import run_demo

    return run_demo(quiet=args.quiet, sub_account=args.sub_account, market="hip3" if args.hip3 else "main")
