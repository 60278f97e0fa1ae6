"""The commands' implementations: each takes the arguments main.py parsed and returns the exit code. The flags
become settings (FLAG_VARS, --env-file) here; which process is the running service is running.py's."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from fractrade_sync.channels.heartbeat import health_problem, read_heartbeat
from fractrade_sync.cli.running import live_service_pid
from fractrade_sync.config.settings import EXIT_FAILURE, EXIT_OK, default_state_dir, load_settings
from fractrade_sync.config.sources import merged_env
from fractrade_sync.errors import ConfigError
from fractrade_sync.logs import setup_logging
from fractrade_sync.storage.state_dir import StatePaths, ensure_private_dir, recorded_pid

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


def _flags(args: argparse.Namespace) -> dict[str, str | None]:
    flags = {var: getattr(args, name, None) for name, var in FLAG_VARS.items()}
    if getattr(args, "dry_run", False):
        flags["FRAC_DRY_RUN"] = "1"
    return flags


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


def _journal_path(args: argparse.Namespace) -> Path | None:
    """The state dir's journal, or None (said on stderr) when the service has not run with it."""
    path = _paths(args).journal
    if not path.exists():
        print(f"no journal at {path}: the service has not run with this state dir", file=sys.stderr)
        return None
    return path


def cmd_status(args: argparse.Namespace) -> int:
    from fractrade_sync.outcome import row_fields
    from fractrade_sync.storage.journal import Journal

    path = _journal_path(args)
    if path is None:
        return EXIT_FAILURE
    journal = Journal(path)
    rows = journal.recent(args.limit)
    counts = journal.counts()
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

    path = _journal_path(args)
    if path is None:
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
