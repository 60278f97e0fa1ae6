"""What may be shown: a Secret never shows itself; a bad value is quoted only when it cannot be a secret
(`show_value`); URLs are shown without their credentials (`redact_url`); and which values no message may quote
(`secret_values`, `url_secrets`, for the log redaction)."""

from __future__ import annotations

import ipaddress
import re
from contextvars import ContextVar
from typing import Mapping


class Secret:
    """A string that never shows itself: repr and str are '***'."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that must use it."""
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        raise TypeError("a Secret is not serialisable")


SHOWN_MAX = 12  # the longest bad value an error may quote
HEX_BODY = re.compile(r"^(?:0[xX])?([0-9a-fA-F]+)$")
_WORD_LABEL = re.compile(r"^[A-Za-z-]{1,63}$")  # a host label of letters only: a name, not a token
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PRIVATE|(?:^|_)KEY$", re.IGNORECASE)
_NOT_SECRET_NAME = re.compile(r"_(?:PATH|FILE|DIR)$", re.IGNORECASE)  # SSH_PRIVATE_KEY_PATH names a file
_PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
# the secret values of the mapping settings_from_mapping is validating: no message may quote any part of them
KNOWN_SECRETS: ContextVar[tuple[str, ...]] = ContextVar("fractrade_sync_known_secrets", default=())


def _overlaps_a_secret(text: str) -> bool:
    """True when the text is a piece (8+ characters) of a known secret, or holds one."""
    low = text.lower()
    return any((len(low) >= 8 and low in s.lower()) or (len(s) >= 6 and s.lower() in low) for s in KNOWN_SECRETS.get())


def _may_be_secret(text: str) -> bool:
    """The one rule: a value may be quoted only when it is at most SHOWN_MAX printable characters, is not a run of
    more than 8 hex digits (with or without 0x) and is no piece of a known secret."""
    if len(text) > SHOWN_MAX or not text.isprintable():
        return True
    hex_body = HEX_BODY.match(text)
    return bool(hex_body and len(hex_body.group(1)) > 8) or _overlaps_a_secret(text)


def show_value(value: str) -> str:
    """A bad value as an error shows it: quoted when it cannot be a secret, else only its length."""
    text = str(value).strip()
    if _may_be_secret(text):
        return f"(a {len(text)}-character value, not shown: it may be a secret)"
    return f"'{text}'"


def show_host(host: str) -> str:
    """A host name as an error shows it: an IP address, or a name whose every label passes show_value's rule or
    is letters only (`api.hyperliquid-testnet.xyz`); anything else (a key pasted as a URL) only by its length."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return f"'{host}'"
    except ValueError:
        pass
    labels = host.split(".")
    if len(host) <= 100 and not _overlaps_a_secret(host):
        if all(_WORD_LABEL.match(label) or (label and not _may_be_secret(label)) for label in labels):
            return f"'{host}'"
    return f"(a {len(host)}-character host, not shown: it may be a secret)"


_URL_PARTS = re.compile(r"^(?P<head>(?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?(?P<auth>[^/?#]*)(?P<rest>.*)$", re.DOTALL)


def redact_url(url: str) -> str:
    """The URL with its credentials (`user:password@`) replaced by `***@`: for any log line or message.
    A proxy URL without a scheme (`user:pw@host:3128`) is redacted too; nothing else changes."""
    text = str(url)
    m = _URL_PARTS.match(text)
    if m is None or "@" not in m["auth"]:
        return text
    return (m["head"] or "") + "***@" + m["auth"].rsplit("@", 1)[1] + m["rest"]


def url_credentials(url: str) -> tuple[str, ...]:
    """The `user:password` of a URL and its password alone (empty when it has none): values for log redaction."""
    m = _URL_PARTS.match(str(url))
    if m is None or "@" not in m["auth"]:
        return ()
    userinfo = m["auth"].rsplit("@", 1)[0]
    return tuple(v for v in (userinfo, userinfo.partition(":")[2]) if v)


def secret_values(opt: Mapping[str, str]) -> tuple[str, ...]:
    """What no message may quote: the values of secret-named variables, URL credentials, a webhook's token."""
    names = [k for k in opt if _SECRET_NAME.search(k) and not _NOT_SECRET_NAME.search(k)]
    values = {opt[k].strip() for k in names if opt[k].strip()}
    for var in ("HYPERLIQUID_API_URL", "FRAC_WS_URL", "FRAC_TELEGRAM_API_URL", *_PROXY_VARS):
        values.update(url_credentials(opt.get(var, "").strip()))
    notify = opt.get("FRAC_NOTIFY_URL", "").strip()
    values.add(_URL_PARTS.match(notify)["rest"] if notify else "")
    return tuple(v for v in values if len(v) >= 6)


def key_shaped(value: str) -> bool:
    """A private key or a hex token (32+ hex digits), or a piece of a known secret."""
    hex_body = HEX_BODY.match(value)
    return bool(hex_body and len(hex_body.group(1)) >= 32) or _overlaps_a_secret(value)


def url_secrets(api_url: str, opt: Mapping[str, str]) -> tuple[str, ...]:
    """The credentials in the API URL and the proxy variables (requests reads them): for log redaction."""
    proxies = [opt.get(var, "").strip() for var in _PROXY_VARS]
    return tuple(dict.fromkeys(v for url in (api_url, *proxies) for v in url_credentials(url)))
