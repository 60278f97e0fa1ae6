"""Optional Telegram bot (FRAC_TELEGRAM_TOKEN, FRAC_TELEGRAM_CHAT_ID): outcomes and events to one chat, folded and
sent from their own thread; /status, /pause, /resume and /help from that chat only, long-polled by a second thread."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fractrade_sync.backoff import Backoff
from fractrade_sync.channels.telegram_api import Answer, BotApiClient
from fractrade_sync.channels.texts import fold, outcome_text

if TYPE_CHECKING:
    from fractrade_sync.actions import Action
    from fractrade_sync.config.settings import Settings
    from fractrade_sync.outcome import Outcome

# sendMessage: "Text of the message to be sent, 1-4096 characters after entities parsing" (core.telegram.org/bots/api)
MAX_TEXT = 4096
MAX_LINE = 3500  # one outcome, event or reply; a longer one is cut, so the first line of a message always fits
# Bot FAQ: "When sending messages inside a particular chat, avoid sending more than one message per second ... your
# bot will not be able to send more than 20 messages per minute to the same group": the least time between two sends
FOLD_WINDOW = 1.0
GROUP_FOLD_WINDOW = 3.0
POLL_TIMEOUT = 25.0  # getUpdates: "Timeout in seconds for long polling"; a poll in flight is cut by stop()
PROXIED_POLL_TIMEOUT = 5.0  # behind a proxy (requests) a poll cannot be cut: stop() may wait this long for it
SEND_TIMEOUT = 10.0
MAX_COMMAND_AGE = 120.0  # seconds; an older command (sent while the service was down) is not run


class TelegramBot:
    """Two threads: one sends the queued lines (the caller never waits on Telegram), one long-polls for commands."""

    def __init__(
        self,
        settings: Settings,
        commands: Mapping[str, Callable[[], str]] | None = None,
        *,
        logger: logging.Logger | None = None,
        max_queue: int = 500,
        poll_timeout: float = POLL_TIMEOUT,
        fold_window: float | None = None,
        max_command_age: float = MAX_COMMAND_AGE,
    ):
        if settings.telegram_token is None or settings.telegram_chat_id is None:
            raise ValueError("Telegram is off: set FRAC_TELEGRAM_TOKEN and FRAC_TELEGRAM_CHAT_ID")
        token = settings.telegram_token.reveal()  # it is in every URL's path: never logged, scrubbed from text
        self.chat_id = int(settings.telegram_chat_id)
        self.api_url = settings.telegram_api_url
        self.commands = {n.lstrip("/").lower(): fn for n, fn in (commands or {}).items() if n.lower() != "help"}
        self.logger = logger or logging.getLogger("fractrade_sync.telegram")
        self.max_queue = max(1, int(max_queue))
        self.max_command_age = max_command_age
        self.fold_window = fold_window or (GROUP_FOLD_WINDOW if self.chat_id < 0 else FOLD_WINDOW)
        self.username: str | None = None  # the bot's own, from getMe: "/status@OtherBot" is for another bot
        self.sent = self.failed = self.dropped = 0  # messages sent, messages refused, lines never sent
        self._queue: collections.deque[str] = collections.deque()
        self._replies: collections.deque[str] = collections.deque()  # answers to commands go out first
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._closing = False
        self._deadline = None
        self._not_before = 0.0
        self._failures = 0
        self._backoff = Backoff(1.0, cap=30.0, jitter=0.5)  # sendMessage after a 5xx or a network error
        self._warned: dict[str, set] = {"send": set(), "poll": set()}  # troubles said at WARNING since it last worked
        self._send_api = BotApiClient(self.api_url, token, SEND_TIMEOUT)
        self._poll_api = BotApiClient(self.api_url, token, poll_timeout + 10.0)
        self._scrub = self._send_api.scrub
        self.poll_timeout = PROXIED_POLL_TIMEOUT if self._poll_api.proxied else poll_timeout
        self._sender = threading.Thread(target=self._send_loop, name="telegram", daemon=True)
        self._poller = threading.Thread(target=self._poll_loop, name="telegram-poll", daemon=True)

    # ---- life ----------------------------------------------------------------------------------
    def start(self) -> TelegramBot:
        """Start sending and polling."""
        self._sender.start()
        self._poller.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued for at most `timeout` s and end both threads by then (a poll is cut at once)."""
        timeout = max(0.0, timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closing:
                return
            # the sender's own deadline comes a little earlier: a send still in flight then is cut, and it ends
            self._closing = True
            self._deadline = deadline - min(0.25, timeout / 4)
            self._cond.notify_all()
        self._stopping.set()
        self._end(self._poller, self._poll_api, deadline)
        if self._sender.ident is not None:
            self._sender.join(max(0.0, self._deadline - time.monotonic()))  # drain what is queued
        self._end(self._sender, self._send_api, deadline)
        if self.pending:
            self.logger.warning("telegram: %d line(s) not sent before shutdown", self.pending)

    @staticmethod
    def _end(thread: threading.Thread, api: BotApiClient, deadline: float) -> None:
        if thread.ident is None:  # never started
            api.close()
        while thread.is_alive():
            # cut its call in flight (wakes a blocked recv at once), again and again: catches a connect that raced a cut
            api.cut()
            thread.join(0.05)
            if time.monotonic() >= deadline:
                break

    @property
    def pending(self) -> int:
        """Lines queued, not yet sent."""
        with self._cond:
            return len(self._queue) + len(self._replies)

    # ---- the caller's side: a line into the queue, at once ---------------------------------------
    def outcome(self, action: Action, outcome: Outcome) -> None:
        """Queue one action's outcome as one short line."""
        try:
            self._put(outcome_text(action, outcome))
        except Exception:
            self.logger.exception("telegram: could not queue an outcome (the service goes on)")

    def event(self, text: str) -> None:
        """Queue an event: the connection lost or restored, a thread died, the clock's offset, the kill switch."""
        self._put(" ".join(str(text).split()))

    def _put(self, line: str, reply: bool = False) -> None:
        line = self._scrub(line.strip())
        line = line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
        with self._cond:
            if self._closing or not line:
                return
            (self._replies if reply else self._queue).append(line)
            self._trim()
            self._cond.notify_all()

    def _trim(self) -> None:
        """Keep the queue bounded: the oldest lines go (under the lock)."""
        while len(self._queue) + len(self._replies) > self.max_queue:
            (self._queue or self._replies).popleft()
            self.dropped += 1
            if self.dropped % 100 == 1:  # one WARNING per hundred lines dropped, not one per line
                self.logger.warning("telegram: queue full; %d line(s) dropped so far; is Telegram down?", self.dropped)

    # ---- the sending thread: everything queued, folded into one message ------------------------
    def _send_loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._deliver(batch)
            except Exception as exc:  # a bug here must not end the thread
                self.logger.error("telegram: unexpected error while sending (it goes on): %s", self._scrub(repr(exc)))
        self._send_api.close()

    def _next_batch(self) -> list[str] | None:
        """Wait until lines are queued and the chat may take a message; take them all. None: time to end."""
        with self._cond:
            while True:
                now = time.monotonic()
                queued = bool(self._queue or self._replies)
                if (self._deadline is not None and now >= self._deadline) or (self._closing and not queued):
                    return None
                if queued and now >= self._not_before:
                    batch = [*self._replies, *self._queue]
                    self._replies.clear()
                    self._queue.clear()
                    return batch
                wait = self._not_before - now if queued else 1.0
                self._cond.wait(wait if self._deadline is None else min(wait, self._deadline - now))

    def _deliver(self, batch: list[str]) -> None:
        text, left = fold(batch, MAX_TEXT)
        started = time.monotonic()
        answer = self._send_api.call("sendMessage", {"chat_id": self.chat_id, "text": text})
        wait = 0.0
        restored = False
        with self._cond:
            self._not_before = started + self.fold_window
            if answer.transient:
                self._failures += 1
                wait = answer.retry_after or self._backoff.delay(self._failures - 1)
                self._not_before = max(self._not_before, time.monotonic() + wait)
                self._queue.extendleft(reversed(batch))  # asked again, with whatever comes meanwhile
                self._trim()
            else:
                restored = self._failures > 0
                self._failures = 0
                if answer.ok:
                    self.sent = self.sent + 1
                    self.dropped = self.dropped + left
                else:
                    self.failed += 1
        if answer.transient:
            self._warn("send", answer, f"sendMessage failed ({answer.said()}); asking again in {wait:.1f} s")
        elif not answer.ok:
            self._warn(
                "send",
                answer,
                f"sendMessage refused ({answer.said()}); {len(batch)} line(s) not delivered; "
                "check FRAC_TELEGRAM_TOKEN and FRAC_TELEGRAM_CHAT_ID",
            )
        elif restored:
            self.logger.info("telegram: sending works again")
        if answer.ok:
            self._warned["send"].clear()

    # ---- the polling thread: commands from the configured chat -----------------------------------
    def _poll_loop(self) -> None:
        offset = None
        backoff = Backoff(1.0, cap=60.0, jitter=0.5)
        while not self._stopping.is_set():
            try:
                offset, wait = self._poll_once(offset, backoff)
            except Exception as exc:  # a bug here must not end the thread
                self.logger.error("telegram: unexpected error while polling (it goes on): %s", self._scrub(repr(exc)))
                wait = backoff.next_delay()
            if wait:
                self._stopping.wait(wait)
        self._poll_api.close()

    def _poll_once(self, offset: int | None, backoff: Backoff) -> tuple[int | None, float]:
        """getMe once, then getUpdates and its commands: the next offset, and how long to wait before the next call."""
        # getUpdates' offset "Must be greater by one than the highest among the identifiers of previously received
        # updates ... An update is considered confirmed as soon as getUpdates is called with an offset higher than its"
        payload = {"timeout": max(1, int(self.poll_timeout)), "allowed_updates": ["message"], "offset": offset}
        method, payload = ("getMe", {}) if self.username is None else ("getUpdates", payload)
        answer = self._poll_api.call(method, {k: v for k, v in payload.items() if v is not None})
        if self._stopping.is_set():
            return offset, 0.0
        if not answer.ok:
            wait = answer.retry_after if answer.code == 429 and answer.retry_after else backoff.next_delay()
            wait = wait if answer.transient else max(wait, 30.0)  # a bad token (401), another poller (409): not soon
            self._warn("poll", answer, f"{method} failed ({answer.said()}); asking again in {wait:.1f} s")
            return offset, wait
        if self._warned["poll"]:
            self.logger.info("telegram: receiving commands works again")
            self._warned["poll"].clear()
        backoff.attempts = 0
        if method == "getMe":
            self.username = str(answer.result.get("username") or "") if isinstance(answer.result, dict) else ""
        for update in answer.result if method == "getUpdates" and isinstance(answer.result, list) else []:
            if isinstance(update, dict) and isinstance(update.get("update_id"), int):
                offset = max(offset or 0, update["update_id"] + 1)  # confirmed before it runs: never run twice
                self._handle(update.get("message"))
        return offset, 0.0 if answer.result else 0.2  # a server that answers an empty poll at once is not spun on

    def _handle(self, message: Any) -> None:
        """One message: a command from the configured chat is run and answered; anything else is ignored."""
        if not isinstance(message, dict):
            return
        chat = message["chat"].get("id") if isinstance(message.get("chat"), dict) else None
        if chat != self.chat_id:  # the chat id only: the text may be anything, from anyone
            self.logger.warning(
                "telegram: ignored a message from chat %s; only FRAC_TELEGRAM_CHAT_ID's (%d) commands are taken",
                chat if isinstance(chat, int) else "(none)",
                self.chat_id,
            )
            return
        text = message.get("text")
        if not isinstance(text, str) or not text.startswith("/"):
            return
        name, _, addressee = text.split()[0][1:].partition("@")
        if not name or (addressee and self.username and addressee.lower() != self.username.lower()):
            return  # "/status@OtherBot" in a group: for another bot
        name = name.lower()
        sent_at = message.get("date")
        age = time.time() - sent_at if isinstance(sent_at, (int, float)) else 0.0
        if age > self.max_command_age:
            self.logger.warning("telegram: /%s not run: it was sent %.0f s ago", name, age)
            self._put(
                f"/{name} not run: it was sent {age:.0f} s ago (the limit is {self.max_command_age:.0f} s); "
                "send it again",
                reply=True,
            )
            return
        self._put(self._run(name), reply=True)

    def _run(self, name: str) -> str:
        if name == "help":
            return self.help_text()
        command = self.commands.get(name)
        if command is None:
            return f"unknown command /{name}; " + self.help_text()
        self.logger.info("telegram: /%s from chat %d", name, self.chat_id)
        try:
            return str(command()).strip() or f"/{name}: done"
        except Exception as exc:
            self.logger.error("telegram: /%s failed", name, exc_info=True)
            return f"/{name} failed ({type(exc).__name__}); see the service's log"

    def help_text(self) -> str:
        """'commands: /pause /resume /status /help'."""
        return "commands: " + " ".join(f"/{name}" for name in [*sorted(self.commands), "help"])

    # ---- the log ------------------------------------------------------------------------------
    def _warn(self, side: str, answer: Answer, message: str) -> None:
        """WARNING once per kind of trouble until it works again (a 429 every time), DEBUG after."""
        key = (answer.code, answer.description)
        level = logging.DEBUG if key in self._warned[side] and answer.code != 429 else logging.WARNING
        self._warned[side].add(key)
        self.logger.log(level, "telegram: %s", message)
