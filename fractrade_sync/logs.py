"""Text or JSON logging, with every known secret redacted from every record."""

from __future__ import annotations

import logging
import re
import sys
from typing import IO, Iterable

from .outcome import OUTCOME_FIELDS

LOGGER_NAME = "fractrade_sync"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)-9s %(message)s"
# Stable JSON field names of an outcome line (documented in the README), from `extra=` on its call.
JSON_FIELDS = OUTCOME_FIELDS


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Replace any secret value in a record's message, arguments, exception text or extra fields with '***'."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        # a key is also seen without its 0x prefix and in either hex case; very short values would redact noise
        values = set()
        for s in secrets:
            if s and len(s) >= 8:
                values.add(s)
                if s.lower().startswith("0x"):
                    values.add(s[2:])
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE) if ordered else None

    def _scrub(self, text: str) -> str:
        return self._pattern.sub("***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw msg
            message = str(record.msg)
        record.msg, record.args = self._scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
            record.exc_info = None  # formatters (the JSON one too) then print the scrubbed exc_text
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, self._scrub(value))
        return True


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


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = (), stream: IO[str] | None = None) -> logging.Handler:
    """Install one handler on the root logger (replacing any we installed before); return it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_fractrade", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._fractrade = True  # type: ignore[attr-defined]
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
    sets up: LOGLEVEL, LOG_FORMAT, secrets redacted. A script that configured logging keeps its own: None."""
    if logging.getLogger().handlers:
        return None
    return setup_logging(level, fmt, secrets)
