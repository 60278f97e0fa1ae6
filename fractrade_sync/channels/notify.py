"""Optional webhook (FRAC_NOTIFY_URL): action outcomes and connection changes, posted from its own thread."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from fractrade_sync.backoff import webhook
from fractrade_sync.outcome import OUTCOME_FIELDS, outcome_fields, outcome_line

if TYPE_CHECKING:
    from fractrade_sync.actions import Action
    from fractrade_sync.outcome import Outcome

TIMEOUT = (3, 5)  # (connect, read) seconds per POST; a 5xx, a 429 or a network error is retried (backoff.webhook)
MAX_LINE = 1900  # Discord refuses `content` over 2000 characters
DROP_WARN_EVERY = 30.0  # seconds; one WARNING per burst of drops, not one per dropped message


class Notifier:
    """One thread, one bounded queue; the caller never waits on the webhook and never sees its errors."""

    def __init__(self, url: str, account: str, logger: logging.Logger | None = None, max_queue: int = 1000):
        self._url = url  # a Discord/Slack webhook URL is itself a secret: never logged, only its host
        self.account = account
        self.logger = logger or logging.getLogger("fractrade_sync.notify")
        self.max_queue = max(1, int(max_queue))
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._where = urlsplit(url).hostname or "webhook"
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self._last_drop_warning = float("-inf")
        self._session = requests.Session()
        # daemon: it holds no state worth saving (the journal has every outcome), and a webhook that hangs
        # must never keep the process alive past supervisord's stopwaitsecs; stop() joins it with a bound.
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)

    # ---- life ----------------------------------------------------------------------------------
    def start(self) -> Notifier:
        """Start the posting thread."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Post what is queued for at most `timeout` seconds, then join; what is left is dropped (and said)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._deadline = time.monotonic() + max(0.0, timeout)
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(max(0.0, self._deadline - time.monotonic()) + 0.1)
        left = self.pending + (1 if self._thread.is_alive() else 0)
        if left:
            self.logger.warning("webhook: %d notification(s) not sent before shutdown (%s)", left, self._where)
        if self._thread.ident is None:  # never started: nothing else will close it
            self._session.close()

    @property
    def pending(self) -> int:
        """Notifications queued, not yet posted."""
        with self._cond:
            return len(self._queue)

    # ---- the caller's side: build, enqueue, return -----------------------------------------------
    def outcome(self, action: Action, outcome: Outcome) -> None:
        """Queue one terminal action outcome."""
        try:
            self._put(outcome_payload(action, outcome, self.account))
        except Exception:
            self.logger.exception("webhook: could not queue an outcome (the service goes on)")

    def connection(self, up: bool, detail: str) -> None:
        """Queue a Fractrade connection loss (up=False) or recovery (up=True)."""
        try:
            self._put(connection_payload(up, detail, self.account))
        except Exception:
            self.logger.exception("webhook: could not queue a connection event (the service goes on)")

    def alert(self, problem: str) -> None:
        """Queue an alert: something needs a human (a thread died; the service stops)."""
        try:
            line = _line(f"fractrade-sync {_short(self.account)}: ALERT: {problem}")
            fields = dict.fromkeys(OUTCOME_FIELDS, None) | {"outcome": "alert", "reason": problem}
            self._put({"text": line, "content": line, "event": "alert", **fields, "account": self.account})
        except Exception:
            self.logger.exception("webhook: could not queue an alert (the service goes on)")

    def _put(self, payload: dict[str, Any]) -> None:
        with self._cond:
            if self._closing:
                self.logger.debug("webhook: stopped; not queued: %s", payload["text"])
                return
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()  # the oldest goes: the newest says the most about the present
                self.dropped += 1
                now = time.monotonic()
                if now - self._last_drop_warning >= DROP_WARN_EVERY:
                    self._last_drop_warning = now
                    self.logger.warning(
                        "webhook: queue full (%d); dropping the oldest notifications (%d dropped so far); "
                        "is %s slow or down?",
                        self.max_queue,
                        self.dropped,
                        self._where,
                    )
            self._queue.append(payload)
            self._cond.notify()

    # ---- the thread: dequeue, post with retries ------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait(1.0)
                if not self._queue or self._past_deadline():
                    break
                payload = self._queue.popleft()
            try:
                self._post(payload)
            except Exception:  # a bug here must not end the thread
                self.logger.exception("webhook: unexpected error while posting")
                self.failed += 1
        self._session.close()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _post(self, payload: dict[str, Any]) -> None:
        """POST, retried on the webhook schedule; never raises for HTTP or network trouble."""
        problem = ""
        for delay in (0.0, *webhook().delays()):
            if delay and not self._pause(delay):
                break
            try:
                response = self._session.post(self._url, json=payload, timeout=TIMEOUT)
            except requests.RequestException as exc:
                # the exception text carries the URL (a webhook token sits in its path): log its type only
                problem = f"network error ({type(exc).__name__})"
                continue
            status = response.status_code
            response.close()
            if 200 <= status < 300:
                self.sent += 1
                return
            problem = f"HTTP {status}"
            if status != 429 and status < 500:
                break  # a 4xx other than 429 will not get better by asking again
        self.logger.warning(
            "webhook: %s from %s; notification not delivered: %s", problem, self._where, payload["text"]
        )
        self.failed += 1  # after the line: whoever watches the count finds it logged

    def _pause(self, seconds: float) -> bool:
        """Back off, cut short by the stop deadline; False when there is no time left to retry."""
        end = time.monotonic() + seconds
        with self._cond:
            while True:
                if self._past_deadline():
                    return False
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return True
                wait = remaining if self._deadline is None else min(remaining, self._deadline - time.monotonic())
                self._cond.wait(max(0.0, wait))


# ---- payloads: only these fields, never a secret ---------------------------------------------------
def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def _line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def outcome_payload(action: Action, outcome: Outcome, account: str) -> dict[str, Any]:
    """The JSON for one action outcome: a human line as `text` (Slack) and `content` (Discord), plus its fields."""
    line = _line(f"fractrade-sync {_short(account)}: " + outcome_line(action, outcome))
    return {"text": line, "content": line, "event": "outcome", **outcome_fields(action, outcome), "account": account}


def connection_payload(up: bool, detail: str, account: str) -> dict[str, Any]:
    """The JSON for a Fractrade connection change; `outcome` is "up" or "down", `reason` the detail."""
    what = "connection to Fractrade restored" if up else "connection to Fractrade lost; reconnecting"
    line = _line(f"fractrade-sync {_short(account)}: {what} ({detail})")
    fields = dict.fromkeys(OUTCOME_FIELDS, None) | {"outcome": "up" if up else "down", "reason": detail}
    return {"text": line, "content": line, "event": "connection", **fields, "account": account}
