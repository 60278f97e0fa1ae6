"""One variable's text -> a checked value, or a ConfigError that names the variable and the fix and never quotes
a value that may be a secret (secrets.py)."""

from __future__ import annotations

import ipaddress
import math
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit, urlunsplit

from fractrade_sync.config.secrets import HEX_BODY, Secret, key_shaped, redact_url, show_host, show_value
from fractrade_sync.errors import ConfigError

EXECUTOR_PATH = "/ws/executor/"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(raw: str, var: str, example: str):
    """urlsplit, whose errors may quote the value (`'…' does not appear to be an IPv4 or IPv6 address`), as a
    ConfigError that does not."""
    try:
        return urlsplit(raw)
    except ValueError:
        raise ConfigError(var, f"not a valid URL (the value is not shown); use {example}") from None


def _check_port(parts, var: str, example: str) -> None:
    """A bad port as a ConfigError; Python's own message quotes the port, which may be a pasted secret."""
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        detail = "Port out of range 0-65535" if "out of range" in str(exc) else "the port is not a number"
        raise ConfigError(var, f"not a valid URL ({detail}); use {example}") from None


def normalize_ws_url(raw: str) -> str:
    """Map http(s) to ws(s), require wss:// off loopback, append the executor path when none."""
    var = "FRAC_WS_URL"
    example = "wss://host/path"
    raw = raw.strip()
    parts = _split(raw, var, example)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("ws", "wss"):
        shown = show_value(parts.scheme) if parts.scheme else "'(none)'"
        raise ConfigError(var, f"scheme {shown} is not supported; use {example} (ws:// only for localhost)")
    host = parts.hostname
    _check_port(parts, var, example)
    if not host:
        raise ConfigError(var, f"the URL has no host; use {example}")
    if parts.username or parts.password:
        raise ConfigError(var, "credentials in the URL are not allowed; put the token in FRAC_USER_TOKEN")
    if scheme == "ws" and not is_loopback(host):
        raise ConfigError(var, f"ws:// is only allowed for localhost, not {show_host(host)}; use wss://")
    path = parts.path if parts.path not in ("", "/") else EXECUTOR_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def normalize_api_url(raw: str, var: str = "HYPERLIQUID_API_URL") -> str:
    """An http(s) base URL without a trailing slash; https required off loopback. Credentials (`user:pw@`, an
    authenticating proxy in front of the API) are kept but never shown."""
    example = "https://host"
    parts = _split(raw.strip(), var, example)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        if var == "FRAC_NOTIFY_URL":
            shown = "(not shown: a webhook URL carries its token)"
        else:
            shown = show_value(redact_url(raw.strip()))
        raise ConfigError(var, f"{shown} is not an http(s) URL; use {example}")
    _check_port(parts, var, example)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(var, f"http:// is only allowed for localhost, not {show_host(parts.hostname)}; use https://")
    return raw.strip().rstrip("/")


_HEX_KEY = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def parse_private_key(raw: str) -> tuple[Secret, str]:
    """Validate a 0x-hex private key; return it as a Secret with its address."""
    from eth_account import Account

    var = "HYPERLIQUID_PRIVATE_KEY"
    value = raw.strip()
    if not _HEX_KEY.match(value):
        raise ConfigError(var, "must be 0x followed by 64 hex digits (the value is not shown)")
    try:
        address = Account.from_key(value).address
    except Exception:  # eth_keys raises ValidationError for 0 or >= the curve order
        raise ConfigError(var, "is not a valid secp256k1 private key (the value is not shown)") from None
    return Secret(value), address


def parse_address(raw: str, var: str = "HYPERLIQUID_PUBLIC_ADDRESS") -> str:
    """A 0x-prefixed 20-byte hex address, lower-cased."""
    value = raw.strip()
    if not _ADDRESS.match(value):
        hint = " (is it a key?)" if _HEX_KEY.match(value) or len(value) > 42 else ""
        raise ConfigError(var, f"{show_value(value)} is not an address{hint}; use 0x followed by 40 hex digits")
    return value.lower()


def parse_bool(raw: str, var: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(var, f"{show_value(raw)} is not a boolean; use 1/0, true/false, yes/no or on/off")


def parse_number(raw: str, var: str, *, minimum: float = 0.0, integer: bool = False) -> float:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigError(var, f"{show_value(raw)} is not a number") from None
    if not value.is_finite() or value <= Decimal(str(minimum)):
        raise ConfigError(var, f"{show_value(raw)} must be a number greater than {minimum:g}")
    if integer and value != value.to_integral_value():
        raise ConfigError(var, f"{show_value(raw)} must be a whole number")
    result = int(value) if integer else float(value)
    if not math.isfinite(result) or result <= minimum or result > 1e9:
        raise ConfigError(
            var, f"{show_value(raw)} is out of range; use a number greater than {minimum:g} and at most 1e9"
        )
    return result


def parse_choice(raw: str, var: str, choices: tuple[str, ...], upper: bool = False) -> str:
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in choices:
        raise ConfigError(var, f"{show_value(raw)} is not one of: {', '.join(choices)}")
    return value


def parse_symbols(raw: str) -> frozenset[str]:
    """FRAC_ALLOWED_SYMBOLS: coin names, comma-separated; an entry shaped like a key or token is refused unquoted."""
    symbols = frozenset(s.strip() for s in raw.split(",") if s.strip())
    if any(len(s) > 32 or key_shaped(s) or (HEX_BODY.match(s) and len(s) > 8) for s in symbols):
        raise ConfigError(
            "FRAC_ALLOWED_SYMBOLS",
            "an entry looks like a key or token, not a symbol (the value is not shown); use e.g. BTC,ETH",
        )
    return symbols


def parse_fraction(raw: str, var: str, below: str = "0.5") -> Decimal:
    """A slippage: a fraction (0.01 = 1%), greater than 0 and below `below`."""
    parse_number(raw, var)
    value = Decimal(raw.strip())
    if value >= Decimal(below):
        raise ConfigError(var, f"{show_value(raw)} is a fraction (0.01 = 1%) and must be < {below}")
    return value


_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def parse_listen_addr(raw: str, var: str) -> tuple[str, int]:
    """`host:port` to listen on (a name, an IPv4 address or a bracketed IPv6 one; `:port` alone is 127.0.0.1)."""
    text = raw.strip()
    use = "use host:port, e.g. 127.0.0.1:9108 (or :9108 for 127.0.0.1)"
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ConfigError(var, f"{show_value(raw)} is not host:port; {use}")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise ConfigError(var, f"{show_value(raw)}: the port must be a number from 1 to 65535; {use}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(var, f"{show_value(raw)}: not an IPv6 address in brackets; {use}") from None
        return host, int(port)
    if not host:
        return "127.0.0.1", int(port)
    labels = host.split(".")
    numeric = all(label.isdigit() for label in labels)  # then it must be an IPv4 address, not a name
    if (
        ":" in host
        or len(host) > 253
        or not all(_HOST_LABEL.match(label) for label in labels)
        or (numeric and not _is_ipv4(host))
    ):
        raise ConfigError(
            var,
            f"{show_value(raw)}: the host is not a name or an IP address (an IPv6 address goes "
            f"in brackets: [::1]:9108); {use}",
        )
    if any(key_shaped(label) for label in labels) or key_shaped(host):
        raise ConfigError(var, f"the host looks like a key or token (the value is not shown); {use}")
    return host, int(port)


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False
