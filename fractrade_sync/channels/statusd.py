"""The status endpoint (FRAC_STATUS_ADDR): `GET /health` (200, or 503 saying what is wrong), `GET /metrics`
(Prometheus), and how the agent is doing: `GET /` (the report page, reloading itself) and `GET /report.json`,
served from a daemon thread. It only reads: a scrape never waits for the worker."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import TYPE_CHECKING, Any, Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST

from fractrade_sync.channels.heartbeat import health_problem, read_heartbeat
from fractrade_sync.channels.metrics import Metrics
from fractrade_sync.config.parsing import is_loopback
from fractrade_sync.errors import ConfigError
from fractrade_sync.report.summary import build_from, money_by_coin

if TYPE_CHECKING:
    from fractrade_sync.channels.probe import ServiceProbe
    from fractrade_sync.config.settings import Settings

VAR = "FRAC_STATUS_ADDR"
# seconds a client has to send its request line and headers, in all: one that sends nothing, or trickles a byte at a
# time (slowloris), is cut then and does not hold its thread longer; writing the answer has as long again
REQUEST_TIMEOUT = 10.0
POLL = 0.2  # seconds between two looks at the stop flag
PAGE_REFRESH = 60  # seconds between two reloads of the report page (GET /)

Health = Callable[[], tuple[bool, dict[str, Any]]]


def heartbeat_age(path: Path) -> float | None:
    """Seconds since the heartbeat file was written (by its own `time`), or None when there is none."""
    beat = read_heartbeat(path)
    try:
        return None if beat is None else round(time.time() - float(beat["time"]), 3)
    except (KeyError, TypeError, ValueError):
        return None


def service_health(
    live_status: Callable[[], Mapping[str, Any] | None],
    heartbeat: Path,
    clock_offset: Callable[[], float | None] = lambda: None,
    max_age: float | None = None,
) -> Health:
    """The /health callable of a running service: the watchdog's live status (the heartbeat's content; None before
    the watchdog is built) judged as `fractrade-sync health` judges the heartbeat file, plus the file's age (a
    watchdog that stopped writing it fails too)."""

    def health() -> tuple[bool, dict[str, Any]]:
        status = live_status()
        if status is None:
            return False, {"problem": "starting: the service is not built yet"}
        age = heartbeat_age(heartbeat)
        now = time.time()
        if age is None:
            problem = "no heartbeat file yet: the watchdog writes one within a second of the start"
        else:  # the live status, dated by the file: its age is judged, everything else is now
            problem = health_problem({**status, "time": now - age}, max_age, now)
        offset = clock_offset()
        data = {
            "problem": problem,
            **status,
            "heartbeat_age": age,
            "clock_offset": None if offset is None else round(offset, 3),
        }
        return problem is None, data

    return health


def status_endpoint(
    settings: Settings, probe: ServiceProbe, addr: tuple[str, int] | None = None
) -> tuple[Metrics, StatusServer]:
    """The Metrics and the StatusServer (not started, on `addr` or FRAC_STATUS_ADDR) of a service, read through its
    probe at each request (a part not built yet is absent, or 'starting'). The caller gives `metrics.outcome` to
    the pipeline as a listener and `metrics.request` to the exchange client as its on_request."""
    paths = settings.paths
    metrics = Metrics(
        reconnects=probe.reconnects,
        queue_depth=probe.queue_depth,
        clock_offset=probe.clock_offset,
        connected=probe.connected,
        threads=probe.threads,
        heartbeat_age=lambda: heartbeat_age(paths.heartbeat),
        money_by_coin=lambda: money_by_coin(paths.journal),
    )
    health = service_health(probe.live_status, paths.heartbeat, probe.clock_offset)
    report = lambda: build_from(paths.journal)  # (report.py reads the journal on its own connection)
    return metrics, StatusServer(addr or settings.status_addr, health, metrics, report=report)


class StatusServer:
    """`GET /health` -> 200 or 503 with the health callable's JSON (plus "ok"); `GET /metrics` -> the Prometheus
    text format; anything else -> 404. start() binds (a ConfigError when it cannot) and serves from a daemon
    thread; stop(timeout) is bounded. Each connection has `request_timeout` seconds to send its request, in all."""

    def __init__(
        self,
        addr: tuple[str, int],
        health: Health,
        metrics: Metrics,
        logger: logging.Logger | None = None,
        request_timeout: float | None = None,
        report: Callable[[], dict[str, Any]] | None = None,
    ):
        self.addr = (addr[0], int(addr[1]))
        self.request_timeout = REQUEST_TIMEOUT if request_timeout is None else float(request_timeout)
        self.health = health
        self.metrics = metrics
        self.logger = logger or logging.getLogger("fractrade_sync.status")
        self.address: tuple[str, int] | None = None  # where it listens once started (the port 0 picked)
        self.report = report  # report.build's figures (GET /, /report.json); None: those are 404
        self._server: _Server | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StatusServer:
        """Bind and serve; ConfigError(FRAC_STATUS_ADDR) when the address cannot be listened on (in use, ...)."""
        if self._server is not None:
            raise RuntimeError("the status server is started already")
        self._stop.clear()
        host, port = self.addr
        try:
            self._server = _Server(self.addr, _handler(self))
        except OSError as exc:
            raise ConfigError(VAR, f"cannot listen on {_shown(host)}:{port}: {_why(exc)}") from None
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._serve, name="status", daemon=True)
        self._thread.start()
        where = f"http://{_shown(self.address[0])}:{self.address[1]}"
        if is_loopback(host):
            self.logger.info("status endpoint on %s (/health, /metrics)", where)
        else:
            self.logger.warning(
                "status endpoint on %s (/health, /metrics) is reachable from other machines; it "
                "shows no secrets, but limit who can reach it (a firewall)",
                where,
            )
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving and close the socket; waits at most `timeout` (a request in progress ends on its own)."""
        server = self._server
        self._server = None
        if server is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
        server.server_close()

    def _serve(self) -> None:
        server = self._server
        while server is not None and not self._stop.is_set():
            try:
                server.handle_request()  # at most POLL seconds; each request gets its own daemon thread
            except Exception:
                if self._stop.is_set():
                    break
                self.logger.exception("status endpoint: accepting a request failed (it goes on)")
                time.sleep(POLL)

    # ---- the answers (a request thread) --------------------------------------------------------------
    def answer(self, path: str) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for a GET of `path`."""
        if path == "/health":
            try:
                ok, data = self.health()
            except Exception as exc:
                self.logger.exception("status endpoint: the health check failed")
                ok = False
                data = {"problem": f"the health check failed ({type(exc).__name__})"}
            body = json.dumps({"ok": bool(ok), **data}, default=str, sort_keys=True).encode() + b"\n"
            return (200 if ok else 503), "application/json", body
        if path == "/metrics":
            try:
                return 200, CONTENT_TYPE_LATEST, self.metrics.exposition()
            except Exception:
                self.logger.exception("status endpoint: the metrics could not be collected")
                return 500, "text/plain; charset=utf-8", b"metrics could not be collected\n"
        if path in ("/", "/report.json") and self.report is not None:
            return self._report(path)
        return 404, "text/plain; charset=utf-8", b"not found: /, /report.json, /health or /metrics\n"

    def _report(self, path: str) -> tuple[int, str, bytes]:
        try:
            figures = self.report()
            if path == "/report.json":
                return 200, "application/json", json.dumps(figures, indent=2).encode() + b"\n"
            from fractrade_sync.report.page import page

            return 200, "text/html; charset=utf-8", page(figures, refresh=PAGE_REFRESH).encode()
        except Exception:
            self.logger.exception("status endpoint: the report could not be made")
            return 500, "text/plain; charset=utf-8", b"the report could not be made (see the service's log)\n"


class _Server(ThreadingHTTPServer):
    timeout = POLL  # handle_request() returns after this long without a request
    allow_reuse_port = False  # SO_REUSEPORT would let a second process listen on the same port, silently
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # HTTPServer's own would look the host's name up (getfqdn): it may hang on DNS
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


def _handler(status: StatusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fractrade-sync"
        sys_version = ""
        timeout = status.request_timeout

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # read through the deadline instead: a per-read timeout alone lets a trickle go on
            deadline = time.monotonic() + status.request_timeout
            self.rfile = io.BufferedReader(_UntilDeadline(self.connection, deadline))

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            code, kind, body = status.answer(self.path.split("?", 1)[0])
            self.connection.settimeout(status.request_timeout)  # the answer's write: bounded too (a client not reading)
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # no line per scrape
            pass

    return Handler


class _UntilDeadline(io.RawIOBase):
    """A connection's incoming bytes, each read given only the time left until one deadline: TimeoutError after it
    (http.server then closes the connection without an answer)."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request was not sent in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _why(exc: OSError) -> str:
    """A bind failure, said plainly, with what to do."""
    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({exc.strerror or exc})"
    if exc.errno == errno.EADDRINUSE:
        return "the address is already in use (another fractrade-sync, or another program); choose another port"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); choose a port from 1024 up"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address; use one of its own, 127.0.0.1, or 0.0.0.0 for all"
    return exc.strerror or os.strerror(exc.errno or 0) or type(exc).__name__
