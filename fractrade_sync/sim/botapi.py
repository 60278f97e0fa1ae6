"""A local Telegram Bot API on 127.0.0.1 for the tests and `demo`: getMe, sendMessage, getUpdates (held as a long
poll), with faults (429 with retry_after, 5xx, 401, ...) and slowness on demand.

The shapes follow https://core.telegram.org/bots/api:
- "All queries to the Telegram Bot API must be served over HTTPS and need to be presented in this form:
  https://api.telegram.org/bot<token>/METHOD_NAME"; "We support GET and POST HTTP methods".
- "The response contains a JSON object, which always has a Boolean field 'ok' and may have an optional String field
  'description' with a human-readable description of the result. If 'ok' equals True, the request was successful and
  the result of the query can be found in the 'result' field. In case of an unsuccessful request, 'ok' equals false
  and the error is explained in the 'description'. An Integer 'error_code' field is also returned".
- ResponseParameters.retry_after: "In case of exceeding flood control, the number of seconds left to wait before the
  request can be repeated".
- sendMessage: chat_id, "text: Text of the message to be sent, 1-4096 characters after entities parsing".
- getUpdates: "offset: Identifier of the first update to be returned. Must be greater by one than the highest among
  the identifiers of previously received updates. ... An update is considered confirmed as soon as getUpdates is
  called with an offset higher than its update_id"; "limit: ... Values between 1-100 are accepted. Defaults to 100";
  "timeout: Timeout in seconds for long polling. Defaults to 0, i.e. usual short polling"; "allowed_updates".
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fractrade_sync.sim.wsserver import shut_down

DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
MAX_POLL = 50.0  # seconds: the longest long poll held


class FakeBotAPI:
    """The Bot API of one bot (its `token`); `url` is what FRAC_TELEGRAM_API_URL takes."""

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0, username: str = "fractrade_test_bot"):
        self.token = token
        self.username = username
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.messages: list[dict[str, Any]] = []  # every sendMessage accepted: chat_id, text, at (monotonic)
        self.requests: list[tuple[float, str, int]] = []  # (monotonic arrival, method, status answered)
        self.latency: dict[str, float] = {}  # method -> seconds to wait before answering
        self.started: collections.Counter[str] = collections.Counter()  # calls arrived (answered or not yet), by method
        self.quote_path = False  # a 404 quotes the request's path, token and all, as some gateways' pages do
        self._faults: collections.deque[tuple[str | None, int, int | None]] = collections.deque()
        self._updates: list[dict[str, Any]] = []  # not yet confirmed
        self._next_update = 700_000_001
        self._next_message = 1
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.polls_waiting = 0  # long polls held right now
        self._server = _Server((host, port), self)
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # ---- life ----------------------------------------------------------------------------------
    def start(self) -> FakeBotAPI:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"botapi-{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, end held polls, drop every connection; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._server.shutdown()
        with self._cond:
            clients = list(self._server.clients)
        shut_down(clients)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- what a test does ----------------------------------------------------------------------
    def say(self, chat_id: int, text: str, *, date: float | None = None, from_id: int | None = None) -> int:
        """A user writes `text` in chat `chat_id` (negative: a group); returns the update_id."""
        with self._cond:
            update_id = self._next_update
            message_id = self._next_message
            self._next_update = update_id + 1
            self._next_message = message_id + 1
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
            sender = {"id": from_id or abs(chat_id), "is_bot": False, "first_name": "Tester"}
            message = {
                "message_id": message_id,
                "from": sender,
                "chat": chat,
                "date": int(time.time() if date is None else date),
                "text": text,
            }
            self._updates.append({"update_id": update_id, "message": message})
            self._cond.notify_all()
        return update_id

    def fail(self, status: int, method: str | None = None, *, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` calls of `method` (None: any) with this error (429: with retry_after)."""
        with self._cond:
            self._faults.extend([(method, status, retry_after)] * times)

    def env(self, chat_id: int) -> dict[str, str]:
        """The settings that point a service's bot here, reporting to `chat_id` (for `demo` and tests)."""
        return {
            "FRAC_TELEGRAM_TOKEN": self.token,
            "FRAC_TELEGRAM_CHAT_ID": str(chat_id),
            "FRAC_TELEGRAM_API_URL": self.url,
        }

    def texts(self, chat_id: int | None = None) -> list[str]:
        """The texts sent, in order (to one chat, or all)."""
        with self._cond:
            return [m["text"] for m in self.messages if chat_id is None or m["chat_id"] == chat_id]

    def calls(self, method: str) -> list[tuple[float, int]]:
        """(arrival, status) of each call of `method`."""
        with self._cond:
            return [(at, status) for at, name, status in self.requests if name == method]

    # ---- the server's side ---------------------------------------------------------------------
    def answer(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, JSON) for one request."""
        arrived = time.monotonic()
        prefix, _, method = path.lstrip("/").partition("/")
        with self._cond:
            self.started[method] += 1
        if prefix != f"bot{self.token}" or not method:  # Telegram's answer to a wrong token in the path
            quoted = f"Not Found: {path}" if self.quote_path else None
            return self._log(arrived, method, _error(404, description=quoted))
        if self._stop.wait(self.latency.get(method, 0.0)):
            return self._log(arrived, method, _error(500))
        with self._cond:
            fault = next((f for f in self._faults if f[0] in (None, method)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None:
            return self._log(arrived, method, _error(fault[1], fault[2]))
        handler = {"getMe": self._get_me, "sendMessage": self._send_message, "getUpdates": self._get_updates}
        if method not in handler:
            return self._log(arrived, method, _error(404))
        return self._log(arrived, method, handler[method](params))

    def _log(self, arrived: float, method: str, answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self.requests.append((arrived, method, answer[0]))
        return answer

    def _get_me(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        me = {"id": self.bot_id, "is_bot": True, "first_name": "Fractrade test", "username": self.username}
        return 200, {"ok": True, "result": me}

    def _send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = params.get("text")
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            return _error(400, description="Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return _error(400, description="Bad Request: message text is empty")
        if len(text) > 4096:
            return _error(400, description="Bad Request: message is too long")
        with self._cond:
            message_id = self._next_message
            self._next_message = self._next_message + 1
            self.messages.append({"chat_id": int(chat_id), "text": text, "at": time.monotonic()})
        chat = {"id": int(chat_id), "type": "private" if int(chat_id) > 0 else "group"}
        return 200, {
            "ok": True,
            "result": {"message_id": message_id, "chat": chat, "date": int(time.time()), "text": text},
        }

    def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), MAX_POLL)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self.polls_waiting += 1
            try:
                while not self._updates and not self._stop.is_set() and time.monotonic() < deadline:
                    self._cond.wait(deadline - time.monotonic())
            finally:
                self.polls_waiting -= 1
            return 200, {"ok": True, "result": list(self._updates[:limit])}


def _error(status: int, retry_after: int | None = None, description: str | None = None) -> tuple[int, dict]:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": status,
        "description": description or DESCRIPTIONS.get(status, f"Error {status}"),
    }
    if status == 429:
        body["description"] = f"Too Many Requests: retry after {retry_after or 1}"
        body["parameters"] = {"retry_after": retry_after or 1}
    return status, body


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: FakeBotAPI):
        self.owner = owner
        self.clients: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        with self.owner._cond:
            self.clients.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self.owner._cond:
            self.clients.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as Telegram's
    timeout = 120  # an idle kept-alive connection is dropped after this
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._serve(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._serve(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _serve(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        try:
            if body and "json" in (self.headers.get("Content-Type") or ""):
                params.update(json.loads(body))
            elif body:
                params.update(parse_qsl(body.decode()))
        except ValueError:
            status, answer = _error(400, description="Bad Request: can't parse JSON")
        else:
            status, answer = self.server.owner.answer(parts.path, params)
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a poll cut by stop()): nobody to answer
            self.close_connection = True

    def log_message(self, format, *args) -> None:  # noqa: A002 - the request line holds the token: never printed
        pass
