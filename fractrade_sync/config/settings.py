"""Settings from the environment, a `.env` file and CLI flags, validated before any connection."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from hyperliquid.utils.constants import MAINNET_API_URL, TESTNET_API_URL

from fractrade_sync.config.parsing import (
    LOG_LEVELS,
    normalize_api_url,
    normalize_ws_url,
    parse_address,
    parse_bool,
    parse_choice,
    parse_fraction,
    parse_listen_addr,
    parse_number,
    parse_private_key,
    parse_symbols,
)
from fractrade_sync.config.secrets import (
    KNOWN_SECRETS,
    Secret,
    key_shaped,
    redact_url,
    secret_values,
    show_value,
    url_credentials,
    url_secrets,
)
from fractrade_sync.config.sources import merged_env
from fractrade_sync.errors import ConfigError
from fractrade_sync.storage.state_dir import StatePaths

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78  # sysexits: 78 = EX_CONFIG
TELEGRAM_API_URL = "https://api.telegram.org"


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
    # the worst price a triggered stop loss / take profit may fill at, as a fraction past its trigger: Hyperliquid's
    # own interface uses 10% for market TP/SL, so a stop still fills when the market gaps through it
    trigger_slippage: Decimal = Decimal("0.10")
    size_multiplier: Decimal = Decimal(1)  # every size the agent sends is scaled by it (a follower's capital)
    leverage_refused: str = "reject"  # a trade whose leverage update the exchange refused: reject it, or proceed
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
    telegram_token: Secret | None = field(default=None, repr=False)  # None: Telegram is off
    telegram_chat_id: int | None = None  # the one chat the bot reports to and takes commands from
    telegram_api_url: str = TELEGRAM_API_URL
    url_secrets: tuple[str, ...] = field(default=(), repr=False)  # credentials in the API or proxy URLs
    status_addr: tuple[str, int] | None = None  # (host, port) of the status endpoint (/health, /metrics); None: off

    def __repr__(self) -> str:  # the dataclass keeps this one: URLs are shown without their credentials
        shown = []
        for f in fields(self):
            if f.repr:
                value = getattr(self, f.name)
                shown.append(f"{f.name}={(redact_url(value) if f.name.endswith('_url') else value)!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def described(self) -> str:
        """The account, its signer, network, API, sizing and dry run, as the start line says them."""
        signer = " signed by " + self.signer_address if self.is_agent_wallet else ""
        dry = " (DRY RUN: nothing is sent)" if self.dry_run else ""
        where = f"{self.hl_env} via {redact_url(self.api_url)}"
        return f"account {self.account_address}{signer}; {where}; sizes x{self.size_multiplier}{dry}"

    @property
    def is_agent_wallet(self) -> bool:
        """True when the key signs for another account (as its API wallet, or for a sub-account or vault: the
        exchange says which at start, accounts.py)."""
        return self.signer_address.lower() != self.account_address.lower()

    @property
    def is_mainnet(self) -> bool:
        """What the key signs for: HYPERLIQUID_ENV names it, whatever the API URL (a proxy on mainnet signs for
        mainnet; the SDK guesses from the URL, which would sign for testnet there)."""
        return self.hl_env == "mainnet"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The raw secret values (the webhook's token-bearing path, API and proxy URL credentials), for log
        redaction only."""
        values = [s.reveal() for s in (self.user_token, self.private_key) if s.reveal()]
        if self.notify_url:
            parts = urlsplit(self.notify_url)
            values += [self.notify_url, parts.path + ("?" + parts.query if parts.query else "")]
        if self.telegram_token is not None:  # it sits in every Bot API URL's path
            values.append(self.telegram_token.reveal())
        values += [v for v in self.url_secrets if v not in values]
        return tuple(v for v in values if len(v) > 1)

    @property
    def paths(self) -> StatePaths:
        """Where the journal, heartbeat, lock and kill switch live."""
        return StatePaths(self.state_dir)


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
    """Validate every variable in a plain mapping; raise ConfigError on the first bad one, never quoting a value
    that may be a secret (show_value), nor any piece of this mapping's secrets."""
    opt = {k: v for k, v in env.items() if isinstance(v, str)}
    known = secret_values(opt)
    token = KNOWN_SECRETS.set(known)
    try:
        return _settings(opt, require_ws)
    except ConfigError as err:  # a last guard, should a message ever quote a secret after all
        if any(s.lower() in str(err).lower() for s in known):
            raise ConfigError(err.variable, "is not valid (the value is not shown: it may be a secret)") from None
        raise
    finally:
        KNOWN_SECRETS.reset(token)


def _settings(opt: dict[str, str], require_ws: bool) -> Settings:
    if not require_ws:  # `send` and `check --no-ws` never connect to Fractrade
        opt.setdefault("FRAC_WS_URL", "ws://127.0.0.1/")
        opt.setdefault("FRAC_USER_TOKEN", "unused")
    ws_url = normalize_ws_url(_required(opt, "FRAC_WS_URL", "set it to your agent's wss:// URL"))
    token = _required(opt, "FRAC_USER_TOKEN", "set it to your Fractrade user token").strip()
    if any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError("FRAC_USER_TOKEN", "contains spaces or control characters (the value is not shown)")
    key, signer = parse_private_key(_required(opt, "HYPERLIQUID_PRIVATE_KEY", "set it to your 0x-hex key"))
    account = parse_address(_required(opt, "HYPERLIQUID_PUBLIC_ADDRESS", "set it to your account's 0x address"))
    hl_env, api_url = _network(opt)
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
        leverage_refused=parse_choice(
            opt.get("FRAC_LEVERAGE_REFUSED") or "reject", "FRAC_LEVERAGE_REFUSED", ("reject", "proceed")
        ),
    )
    if opt.get("FRAC_STATE_DIR", "").strip():
        state_dir = Path(opt["FRAC_STATE_DIR"].strip()).expanduser()
        if any(key_shaped(part) for part in state_dir.parts):  # it would be shown by every status line
            raise ConfigError("FRAC_STATE_DIR", "looks like a key or token, not a directory (the value is not shown)")
        values["state_dir"] = state_dir
    _numbers(opt, values)
    if opt.get("FRAC_ALLOWED_SYMBOLS", "").strip():
        values["allowed_symbols"] = parse_symbols(opt["FRAC_ALLOWED_SYMBOLS"])
    if opt.get("FRAC_NOTIFY_URL", "").strip():
        values["notify_url"] = normalize_api_url(opt["FRAC_NOTIFY_URL"], "FRAC_NOTIFY_URL")
    values["url_secrets"] = url_secrets(api_url, opt)
    if opt.get("FRAC_STATUS_ADDR", "").strip():
        values["status_addr"] = parse_listen_addr(opt["FRAC_STATUS_ADDR"], "FRAC_STATUS_ADDR")
    _telegram(opt, values)
    return Settings(**values)


def _network(opt: Mapping[str, str]) -> tuple[str, str]:
    """HYPERLIQUID_ENV (what the key signs for) and the API URL; the other network's official URL is an error."""
    hl_env = parse_choice(opt.get("HYPERLIQUID_ENV") or "mainnet", "HYPERLIQUID_ENV", ("mainnet", "testnet"))
    default_api = MAINNET_API_URL if hl_env == "mainnet" else TESTNET_API_URL
    api_url = normalize_api_url(opt.get("HYPERLIQUID_API_URL") or default_api)
    other = TESTNET_API_URL if hl_env == "mainnet" else MAINNET_API_URL
    if api_url.rstrip("/") == other:
        raise ConfigError(
            "HYPERLIQUID_API_URL",
            f"is {other}, the other network's API, while HYPERLIQUID_ENV is "
            f"{hl_env}: set HYPERLIQUID_ENV to match, or the URL",
        )
    return hl_env, api_url


def _numbers(opt: Mapping[str, str], values: dict) -> None:
    """The numeric settings: timings, slippages, the size multiplier, the caps."""
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
    fractions = {"FRAC_SLIPPAGE": "slippage", "FRAC_TRIGGER_SLIPPAGE": "trigger_slippage"}
    for var, name in fractions.items():
        if opt.get(var, "").strip():
            values[name] = parse_fraction(opt[var], var)
    if opt.get("FRAC_SIZE_MULTIPLIER", "").strip():
        parse_number(opt["FRAC_SIZE_MULTIPLIER"], "FRAC_SIZE_MULTIPLIER")
        values["size_multiplier"] = Decimal(opt["FRAC_SIZE_MULTIPLIER"].strip())
    if opt.get("FRAC_MAX_LEVERAGE", "").strip():
        values["max_leverage"] = parse_number(opt["FRAC_MAX_LEVERAGE"], "FRAC_MAX_LEVERAGE", integer=True)
    if opt.get("FRAC_MAX_ORDER_USD", "").strip():
        parse_number(opt["FRAC_MAX_ORDER_USD"], "FRAC_MAX_ORDER_USD")
        values["max_order_usd"] = Decimal(opt["FRAC_MAX_ORDER_USD"].strip())


# BotFather's tokens look like "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11" (Bot API, "Authorizing your bot")
_TELEGRAM_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{30,64}$")
_CHAT_ID = re.compile(r"^-?[0-9]{1,16}$")  # Chat.id "has at most 52 significant bits"; a group's is negative


def _telegram(opt: Mapping[str, str], values: dict) -> None:
    """FRAC_TELEGRAM_TOKEN and FRAC_TELEGRAM_CHAT_ID (both, or neither: Telegram is off); FRAC_TELEGRAM_API_URL."""
    api_url = normalize_api_url(opt.get("FRAC_TELEGRAM_API_URL") or TELEGRAM_API_URL, "FRAC_TELEGRAM_API_URL")
    values["telegram_api_url"] = api_url
    values["url_secrets"] = tuple(dict.fromkeys((*values.get("url_secrets", ()), *url_credentials(api_url))))
    token = opt.get("FRAC_TELEGRAM_TOKEN", "").strip()
    chat = opt.get("FRAC_TELEGRAM_CHAT_ID", "").strip()
    if not token and not chat:
        return
    if not chat:
        raise ConfigError(
            "FRAC_TELEGRAM_CHAT_ID",
            "is not set while FRAC_TELEGRAM_TOKEN is; Telegram needs both: "
            "set it to the id of the chat the bot reports to",
        )
    if not token:
        raise ConfigError(
            "FRAC_TELEGRAM_TOKEN",
            "is not set while FRAC_TELEGRAM_CHAT_ID is; Telegram needs both: "
            "set it to the token BotFather gave your bot",
        )
    if not _TELEGRAM_TOKEN.match(token):
        raise ConfigError(
            "FRAC_TELEGRAM_TOKEN",
            "is not a bot token (the value is not shown); BotFather's look "
            "like <digits>:<about 35 letters, digits, - and _>",
        )
    if not _CHAT_ID.match(chat) or int(chat) == 0:
        raise ConfigError(
            "FRAC_TELEGRAM_CHAT_ID",
            f"{show_value(chat)} is not a chat id; use the chat's whole number, e.g. 123456789 (a group's is negative)",
        )
    values["telegram_token"] = Secret(token)
    values["telegram_chat_id"] = int(chat)
