"""Text or JSON logging, with every known secret redacted from every record."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import IO, Iterable
from urllib.parse import quote

from fractrade_sync.outcome import OUTCOME_FIELDS

LOGGER_NAME = "fractrade_sync"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)-9s %(message)s"
# the loggers that log a request's URL (a webhook's secret path, a Bot API token, credentials) at DEBUG: urllib3's
# request lines, retries and redirects; requests'; websocket-client's handshake and its trace
SECRET_CARRIERS = (
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.util.retry",
    "urllib3.connection",
    "requests",
    "websocket",
)
# Stable JSON field names of an outcome line (documented in the README), from `extra=` on its call.
JSON_FIELDS = OUTCOME_FIELDS


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Replace any secret value in a record's message, arguments, exception text or extra fields with '***'. A record
    that carries no secret is left as it is (its args and exc_info too: other handlers may want them)."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact these values too (another service's, in the same process)."""
        # a key is also seen without its 0x prefix and in either hex case, a URL's secret percent-encoded; very short
        # values would redact noise
        values = set(self.secrets)
        for s in secrets:
            if s and len(s) >= 8:
                values.update((s, quote(s, safe="")))
                if s.lower().startswith("0x"):
                    values.add(s[2:])
        if values == self.secrets:
            return
        ordered = sorted(values, key=len, reverse=True)
        self.secrets = frozenset(values)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE) if ordered else None

    def _scrub(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern is not None else text

    def filter(self, record: logging.LogRecord) -> bool:
        pattern = self._pattern
        if pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw msg
            record.msg = self._scrub(str(record.msg))
            record.args = None
        else:
            if pattern.search(message):
                record.msg = self._scrub(message)
                record.args = None
        text = record.exc_text
        if record.exc_info and not text:
            text = logging.Formatter().formatException(record.exc_info)
        if text and pattern.search(text):
            record.exc_text = self._scrub(text)
            record.exc_info = None  # formatters (the JSON one too) then print the scrubbed exc_text
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, self._scrub(value))
        return True


def redact(target: logging.Logger | logging.Handler, secrets: Iterable[str]) -> None:
    """Put a RedactingFilter for `secrets` on a logger or handler: one filter each, extended by later calls."""
    ours = [f for f in target.filters if isinstance(f, RedactingFilter)]
    if ours:
        ours[0].add(secrets)
    else:
        target.addFilter(RedactingFilter(secrets))


def redact_configured(secrets: Iterable[str]) -> None:
    """Redaction under logging set up by someone else (a script embedding the service): on the loggers of the
    libraries that log URLs and headers at DEBUG (a handler added later gets their records redacted too), and on
    every handler a record reaches now: the root logger's, and those on the way from those loggers and ours."""
    secrets = tuple(secrets)
    handlers: dict[int, logging.Handler] = {id(h): h for h in logging.getLogger().handlers}
    for name in (*SECRET_CARRIERS, LOGGER_NAME):
        logger: logging.Logger | None = logging.getLogger(name)
        if name != LOGGER_NAME:
            redact(logger, secrets)
        while logger is not None:
            handlers.update((id(h), h) for h in logger.handlers)
            logger = logger.parent if logger.propagate else None
    for handler in handlers.values():
        redact(handler, secrets)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """Text with its control characters (newlines too) escaped: what a frame carries cannot forge a log line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """One record, one line: the message's control characters are escaped (a traceback still follows on its own
    lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = one_line(record.message)
        return super().formatMessage(record)


def make_formatter(fmt: str) -> logging.Formatter:
    """A text formatter, or python-json-logger's JSON formatter."""
    if fmt == "json":
        try:
            from pythonjsonlogger.json import JsonFormatter
        except ImportError:  # python-json-logger < 3
            from pythonjsonlogger.jsonlogger import JsonFormatter
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(threadName)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time", "threadName": "thread"},
        )
    return TextFormatter(TEXT_FORMAT)


class ServiceHandler(logging.StreamHandler):
    """The handler setup_logging installs on the root logger (a second setup replaces it, never a script's own)."""


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = (), stream: IO[str] | None = None) -> logging.Handler:
    """Install one handler on the root logger (replacing any we installed before); return it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, ServiceHandler):
            root.removeHandler(handler)
    handler = ServiceHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    handler.addFilter(RedactingFilter(secrets))
    root.addHandler(handler)
    root.setLevel(level)
    # third-party chatter stays at WARNING unless the user asked for DEBUG
    third_party = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("urllib3", "websocket"):
        logging.getLogger(name).setLevel(third_party)
    return handler


def setup_logging_unless_configured(level: str, fmt: str, secrets: Iterable[str] = ()) -> logging.Handler | None:
    """A script that embeds the service and configured no logging (the root logger has no handler) gets what the CLI
    sets up: LOGLEVEL, LOG_FORMAT, secrets redacted. A script that configured logging keeps its own, with the
    secrets redacted from it (redact_configured): None."""
    if logging.getLogger().handlers:
        redact_configured(secrets)
        return None
    return setup_logging(level, fmt, secrets)


class RestNotices:
    """A WARNING when a live cache could not answer and REST did, at most once a `every` seconds per kind (a dead
    feed must not flood the log), counting the ones in between."""

    def __init__(self, logger: logging.Logger, every: float = 60.0):
        self.logger = logger
        self.every = every
        self._at: dict[str, float] = {}
        self._unnoticed: dict[str, int] = {}

    def __call__(self, kind: str, text: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._at.get(kind, float("-inf")) < self.every:
            self._unnoticed[kind] = self._unnoticed.get(kind, 0) + 1
            return
        more = self._unnoticed.pop(kind, 0)
        self.logger.warning(text + (f"; {more} more since the last notice" if more else ""), *args)
        self._at[kind] = now
