"""Command line: run (default), check, status, report, health, pid, send, kill-switch, demo; exit codes 0 / 1 / 78."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from fractrade_sync import __version__
from fractrade_sync.cli.commands import (
    cmd_check,
    cmd_demo,
    cmd_health,
    cmd_kill_switch,
    cmd_pid,
    cmd_report,
    cmd_run,
    cmd_send,
    cmd_status,
)
from fractrade_sync.config.settings import EXIT_CONFIG, EXIT_FAILURE
from fractrade_sync.errors import ConfigError

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
    kill = _sub(
        sub,
        "kill-switch",
        "refuse every new opening trade (reduce-only trades, stop losses and take profits still run)",
    )
    _common(kill)
    kill.add_argument("state", nargs="?", choices=("on", "off", "status"), default="status")
    demo = _sub(sub, "demo", "everything local, no credentials: simulator + signal server + service")
    demo.add_argument("--quiet", action="store_true", help="only the timeline, no service log")
    sub_help = "trade a sub-account of the demo account, through an API wallet of it (vaultAddress)"
    demo.add_argument("--sub-account", action="store_true", help=sub_help)
    demo.add_argument("--hip3", action="store_true", help="trade a HIP-3 dex's coin (xyz:NVDA) instead of BTC")
    return parser


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
