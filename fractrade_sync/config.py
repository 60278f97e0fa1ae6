"""Settings from the environment, a `.env` file and CLI flags, validated before any connection."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

from hyperliquid.utils.constants import MAINNET_API_URL, TESTNET_API_URL

from .state import StatePaths

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 78  # sysexits: 78 = EX_CONFIG
EXECUTOR_PATH = "/ws/executor/"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """A configuration value is missing or wrong; names the variable and the fix, never its secret value."""

    def __init__(self, variable: str, message: str):
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


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


def default_state_dir() -> Path:
    """The per-user state directory (XDG)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "fractrade-sync"


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, validated."""

    ws_url: str
    user_token: Secret = field(repr=False)
    private_key: Secret = field(repr=False)
    account_address: str
    signer_address: str
    api_url: str
    hl_env: str = "mainnet"
    log_level: str = "INFO"
    log_format: str = "text"
    state_dir: Path = field(default_factory=default_state_dir)
    dry_run: bool = False
    max_action_age: float = 60.0
    slippage: Decimal = Decimal("0.01")
    drain_timeout: float = 20.0
    http_timeout: float = 10.0
    ping_interval: float = 20.0
    silence_timeout: float = 60.0
    heartbeat_interval: float = 5.0
    max_leverage: int | None = None
    margin_mode: str = "cross"
    max_order_usd: Decimal | None = None
    allowed_symbols: frozenset[str] | None = None
    notify_url: str | None = field(default=None, repr=False)  # Slack/Discord webhook URLs carry a token

    @property
    def is_agent_wallet(self) -> bool:
        """True when the key signs for another account (an API wallet)."""
        return self.signer_address.lower() != self.account_address.lower()

    @property
    def is_mainnet(self) -> bool:
        """Signing chain: the SDK signs as mainnet only for mainnet's own URL, so we do too."""
        return self.api_url.rstrip("/") == MAINNET_API_URL

    @property
    def secrets(self) -> tuple[str, ...]:
        """The raw secret values (and the webhook's token-bearing path), for log redaction only."""
        values = [s.reveal() for s in (self.user_token, self.private_key) if s.reveal()]
        if self.notify_url:
            parts = urlsplit(self.notify_url)
            values += [self.notify_url, parts.path + ("?" + parts.query if parts.query else "")]
        return tuple(v for v in values if len(v) > 1)

    @property
    def paths(self) -> StatePaths:
        """Where the journal, heartbeat, lock and kill switch live."""
        return StatePaths(self.state_dir)


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


def normalize_ws_url(raw: str) -> str:
    """Map http(s) to ws(s), require wss:// off loopback, append the executor path when none."""
    var = "FRAC_WS_URL"
    raw = raw.strip()
    parts = urlsplit(raw)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("ws", "wss"):
        shown = parts.scheme or "(none)"
        raise ConfigError(var, f"scheme '{shown}' is not supported; use wss://host/path (ws:// only for localhost)")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(var, f"not a valid URL ({exc}); use wss://host/path") from None
    if not host:
        raise ConfigError(var, "the URL has no host; use wss://host/path")
    if parts.username or parts.password:
        raise ConfigError(var, "credentials in the URL are not allowed; put the token in FRAC_USER_TOKEN")
    if scheme == "ws" and not is_loopback(host):
        raise ConfigError(var, f"ws:// is only allowed for localhost, not '{host}'; use wss://")
    path = parts.path if parts.path not in ("", "/") else EXECUTOR_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def normalize_api_url(raw: str, var: str = "HYPERLIQUID_API_URL") -> str:
    """An http(s) base URL without a trailing slash; https required off loopback."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = "(not shown: a webhook URL carries its token)" if var == "FRAC_NOTIFY_URL" else f"'{raw}'"
        raise ConfigError(var, f"{shown} is not an http(s) URL; use https://host")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(var, f"http:// is only allowed for localhost, not '{parts.hostname}'; use https://")
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
        if _HEX_KEY.match(value) or len(value) > 42:  # a key pasted in the wrong place must not be echoed
            raise ConfigError(var, f"is not an address ({len(value)} characters, not shown; is it a key?); "
                                   "use 0x followed by 40 hex digits")  # fmt: skip
        raise ConfigError(var, f"'{value}' is not an address; use 0x followed by 40 hex digits")
    return value.lower()


def parse_bool(raw: str, var: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(var, f"'{raw}' is not a boolean; use 1/0, true/false, yes/no or on/off")


def parse_number(raw: str, var: str, *, minimum: float = 0.0, integer: bool = False) -> float:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigError(var, f"'{raw}' is not a number") from None
    if not value.is_finite() or value <= Decimal(str(minimum)):
        raise ConfigError(var, f"'{raw}' must be a number greater than {minimum:g}")
    if integer and value != value.to_integral_value():
        raise ConfigError(var, f"'{raw}' must be a whole number")
    result = int(value) if integer else float(value)
    if not math.isfinite(result) or result <= minimum or result > 1e9:
        raise ConfigError(var, f"'{raw}' is out of range; use a number greater than {minimum:g} and at most 1e9")
    return result


def parse_choice(raw: str, var: str, choices: tuple[str, ...], upper: bool = False) -> str:
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in choices:
        raise ConfigError(var, f"'{raw}' is not one of: {', '.join(choices)}")
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """Variables from a .env file (python-dotenv), empty when the file does not exist."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def merged_env(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> dict[str, str]:
    """The `.env` file's values under the process environment (the environment wins)."""
    environ = os.environ if environ is None else environ
    path = env_file if env_file is not None else Path.cwd() / ".env"
    merged = read_env_file(path)
    merged.update(environ)
    return merged


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    require_ws: bool = True,
) -> Settings:
    """Build Settings: flags win over the environment, which wins over `.env`."""
    env = merged_env(environ, env_file)
    for name, value in (flags or {}).items():
        if value is not None:
            env[name] = value
    return settings_from_mapping(env, require_ws=require_ws)


def _required(env: Mapping[str, str], var: str, hint: str) -> str:
    value = env.get(var, "")
    if not value.strip():
        raise ConfigError(var, f"is not set; {hint}")
    return value


def settings_from_mapping(env: Mapping[str, str], require_ws: bool = True) -> Settings:
    """Validate every variable in a plain mapping; raise ConfigError on the first bad one."""
    opt = {k: v for k, v in env.items() if isinstance(v, str)}
    if not require_ws:  # `send` and `check --no-ws` never connect to Fractrade
        opt.setdefault("FRAC_WS_URL", "ws://127.0.0.1/")
        opt.setdefault("FRAC_USER_TOKEN", "unused")
    ws_url = normalize_ws_url(_required(opt, "FRAC_WS_URL", "set it to your agent's wss:// URL"))
    token = _required(opt, "FRAC_USER_TOKEN", "set it to your Fractrade user token").strip()
    if any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError("FRAC_USER_TOKEN", "contains spaces or control characters (the value is not shown)")
    key, signer = parse_private_key(_required(opt, "HYPERLIQUID_PRIVATE_KEY", "set it to your 0x-hex key"))
    account = parse_address(_required(opt, "HYPERLIQUID_PUBLIC_ADDRESS", "set it to your account's 0x address"))
    hl_env = parse_choice(opt.get("HYPERLIQUID_ENV") or "mainnet", "HYPERLIQUID_ENV", ("mainnet", "testnet"))
    default_api = MAINNET_API_URL if hl_env == "mainnet" else TESTNET_API_URL
    api_url = normalize_api_url(opt.get("HYPERLIQUID_API_URL") or default_api)
    values: dict = dict(
        ws_url=ws_url,
        user_token=Secret(token),
        private_key=key,
        account_address=account,
        signer_address=signer.lower(),
        api_url=api_url,
        hl_env=hl_env,
        log_level=parse_choice(opt.get("LOGLEVEL") or "INFO", "LOGLEVEL", LOG_LEVELS, upper=True),
        log_format=parse_choice(opt.get("LOG_FORMAT") or "text", "LOG_FORMAT", ("text", "json")),
        dry_run=parse_bool(opt.get("FRAC_DRY_RUN", ""), "FRAC_DRY_RUN"),
        margin_mode=parse_choice(opt.get("FRAC_MARGIN_MODE") or "cross", "FRAC_MARGIN_MODE", ("cross", "isolated")),
    )
    if opt.get("FRAC_STATE_DIR", "").strip():
        values["state_dir"] = Path(opt["FRAC_STATE_DIR"].strip()).expanduser()
    numbers = {
        "FRAC_MAX_ACTION_AGE": "max_action_age",
        "FRAC_DRAIN_TIMEOUT": "drain_timeout",
        "FRAC_HTTP_TIMEOUT": "http_timeout",
        "FRAC_PING_INTERVAL": "ping_interval",
        "FRAC_SILENCE_TIMEOUT": "silence_timeout",
        "FRAC_HEARTBEAT_INTERVAL": "heartbeat_interval",
    }
    for var, name in numbers.items():
        if opt.get(var, "").strip():
            values[name] = parse_number(opt[var], var)
    if opt.get("FRAC_SLIPPAGE", "").strip():
        parse_number(opt["FRAC_SLIPPAGE"], "FRAC_SLIPPAGE")
        slip = Decimal(opt["FRAC_SLIPPAGE"].strip())
        if slip >= Decimal("0.5"):
            raise ConfigError("FRAC_SLIPPAGE", f"'{opt['FRAC_SLIPPAGE']}' is a fraction (0.01 = 1%) and must be < 0.5")
        values["slippage"] = slip
    if opt.get("FRAC_MAX_LEVERAGE", "").strip():
        values["max_leverage"] = parse_number(opt["FRAC_MAX_LEVERAGE"], "FRAC_MAX_LEVERAGE", integer=True)
    if opt.get("FRAC_MAX_ORDER_USD", "").strip():
        parse_number(opt["FRAC_MAX_ORDER_USD"], "FRAC_MAX_ORDER_USD")
        values["max_order_usd"] = Decimal(opt["FRAC_MAX_ORDER_USD"].strip())
    if opt.get("FRAC_ALLOWED_SYMBOLS", "").strip():
        symbols = frozenset(s.strip() for s in opt["FRAC_ALLOWED_SYMBOLS"].split(",") if s.strip())
        values["allowed_symbols"] = symbols
    if opt.get("FRAC_NOTIFY_URL", "").strip():
        values["notify_url"] = normalize_api_url(opt["FRAC_NOTIFY_URL"], "FRAC_NOTIFY_URL")
    return Settings(**values)
