"""The simulator's HTTP side: the server that tracks each connection, and the handler that takes a request through
latency, the injected faults (hl_faults), the per-IP weight limit (hl_weights) and its endpoint: /info (hl_views),
/exchange (hl_exchange_endpoint), /control (hl_control), GET /ws (hl_ws).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from fractrade_sync.sim import hl_exchange_endpoint, hl_views, hl_weights
from fractrade_sync.sim.hl_control import control
from fractrade_sync.sim.hl_faults import GATEWAY_PAGE, REFUSALS

log = logging.getLogger(__name__)

# past the IP's weight limit: HTTP 429, body `null` (the SDK raises ClientError(429, None, 'null', None, headers),
# as public bots' logs show it; EXCHANGE.md §2); whether it carries Retry-After is unconfirmed, so it does not
RATE_LIMITED_BODY = "null"


class Server(ThreadingHTTPServer):
    """Serves one simulator (`sim`, an hl_server.HyperliquidSimulator); tracks each connection's socket and thread so
    its stop() can end and join them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, sim):
        self.sim = sim
        self._lock = threading.Lock()
        self._clients: dict = {}  # socket -> the thread serving it
        super().__init__(address, _Handler)

    def clients(self) -> dict:
        """The open connections: socket -> thread (a copy)."""
        with self._lock:
            return dict(self._clients)

    def process_request(self, request, client_address):
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"hl-sim-{self.server_address[1]}-conn-{client_address[1]}",
            daemon=True,
        )
        with self._lock:
            self._clients[request] = thread
        thread.start()

    def shutdown_request(self, request):
        with self._lock:
            self._clients.pop(request, None)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests.Session expects
    # headers and body go out in separate writes: without this, Nagle plus the client's delayed ACK adds ~40 ms
    disable_nagle_algorithm = True
    server_version = "hyperliquid-sim"

    def log_message(self, fmt, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/ws":
            self.server.sim.sockets.serve(self)
        else:
            self._reply(404, "Not Found")

    def do_POST(self) -> None:
        sim = self.server.sim
        path = urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        sim.requests.count(path, body)
        if sim.latency_s > 0:
            sim.stopping.wait(sim.latency_s)
        fault, fault_answer = sim.faults.take(path)
        if self._refused(path, body, fault, fault_answer):
            return
        if fault == "hold":  # still on its way: everything sent after it meanwhile arrives first
            sim.stopping.wait(sim.timeout_s)
        status, answer = self._answer(path, body, fault)
        if fault == "drop":  # applied; the answer is lost with the connection
            self.close_connection = True
            return
        if fault == "timeout":
            sim.stopping.wait(sim.timeout_s)
        if fault == "html":
            self._reply(200, GATEWAY_PAGE, "text/html")
        elif fault == "answer":
            self._reply(200, fault_answer or "", "application/json")
        else:
            self._reply(status, answer)

    def _refused(self, path: str, body, fault: str | None, fault_answer: str | None) -> bool:
        """Answer a request refused before anything is applied: by its fault, or past the IP's weight limit."""
        sim = self.server.sim
        if fault in REFUSALS:
            status, answer = REFUSALS[fault]
            if path == "/exchange":
                sim.requests.record(body, status, answer, fault)
            self._reply(status, answer)
            return True
        if not sim.weights.admit(self.client_address[0], hl_weights.weight(path, body)):
            sim.faults.put_back(fault, path, fault_answer)  # its fault waits for the next request
            if path == "/exchange":
                sim.requests.record(body, 429, RATE_LIMITED_BODY, None)
            self._reply(429, RATE_LIMITED_BODY, "application/json")
            return True
        return False

    def _answer(self, path: str, body, fault: str | None) -> tuple[int, object]:
        """The endpoint's answer to an admitted request (applied, whatever its fault does with the answer)."""
        sim = self.server.sim
        if body is None and path in ("/info", "/exchange", "/control"):
            return 422, f"{hl_exchange_endpoint.BAD_BODY}: expected a JSON object"
        if path == "/info":
            with sim.userdata.changes():  # a scheduled cancel may come due now
                sim.state.tick()
                return hl_views.answer(sim.state, body)
        if path == "/exchange":
            status, answer, signer = hl_exchange_endpoint.answer(sim.state, sim.userdata, body)
            sim.requests.record(body, status, answer, fault, signer)
            return status, answer
        if path == "/control":
            return control(sim, body)
        return 404, "Not Found"

    def _reply(self, status: int, answer, content_type: str = "text/plain; charset=utf-8") -> None:
        if isinstance(answer, str):
            data = answer.encode()
            ctype = content_type
        else:
            data = json.dumps(answer).encode()
            ctype = "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its read timeout)
