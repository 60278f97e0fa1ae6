"""Settings from flags, the environment and a real .env file; errors that name the variable and hide secrets."""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from hyperliquid.utils.constants import MAINNET_API_URL, TESTNET_API_URL

from fractrade_sync.config.parsing import normalize_ws_url
from fractrade_sync.config.secrets import Secret
from fractrade_sync.config.settings import Settings, load_settings, settings_from_mapping
from fractrade_sync.errors import ConfigError
from tests.conftest import config_env, hex_key

TOKEN = "frac-token-5f3a9c1e7b2d4f60"


@pytest.fixture
def env(account, key) -> dict[str, str]:
    return config_env(account, key, TOKEN)


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f'{name}="{value}"\n' for name, value in values.items()))
    return path


def error_of(environ: dict[str, str], env_file: Path, **flags) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(flags=flags, environ=environ, env_file=env_file)
    return caught.value


def leaks(text: str, secret: str, window: int = 12) -> bool:
    """True when any `window` characters of the secret (without 0x) appear in the text, in any case."""
    body, text = secret.removeprefix("0x").lower(), text.lower()
    return any(body[i : i + window] in text for i in range(len(body) - window + 1))


# ---- precedence: flags > environment > .env ------------------------------------------------------


def test_defaults(env, no_file, account):
    s = load_settings(environ=env, env_file=no_file)
    assert s.max_action_age == 60.0
    assert (s.log_level, s.log_format, s.hl_env) == ("INFO", "text", "mainnet")
    assert s.api_url == MAINNET_API_URL and s.is_mainnet
    assert s.dry_run is False
    assert s.slippage == Decimal("0.01")
    assert s.ws_url == "wss://app.fractrade.xyz/ws/executor/"
    assert s.account_address == account.address.lower() == s.signer_address
    assert not s.is_agent_wallet
    assert s.user_token.reveal() == TOKEN
    assert s.secrets == (TOKEN, env["HYPERLIQUID_PRIVATE_KEY"])
    assert s.paths.journal == s.state_dir / "journal.sqlite3"


def test_env_file_alone_is_enough(env, tmp_path):
    s = load_settings(environ={}, env_file=write_env(tmp_path / ".env", {**env, "LOGLEVEL": "debug"}))
    assert s.user_token.reveal() == TOKEN
    assert s.log_level == "DEBUG"


def test_environment_beats_env_file_and_flags_beat_both(env, tmp_path):
    dotenv = write_env(
        tmp_path / ".env",
        {**env, "LOGLEVEL": "ERROR", "LOG_FORMAT": "json", "FRAC_MAX_ACTION_AGE": "5", "FRAC_DRY_RUN": "1"},
    )
    environ = {"LOGLEVEL": "WARNING", "FRAC_MAX_ACTION_AGE": "30", "FRAC_USER_TOKEN": "from-environ-123"}
    s = load_settings(environ=environ, env_file=dotenv)
    assert (s.log_level, s.max_action_age, s.user_token.reveal()) == ("WARNING", 30.0, "from-environ-123")
    assert s.log_format == "json" and s.dry_run is True  # only in the file: the file's value
    flags = {"LOGLEVEL": "DEBUG", "FRAC_MAX_ACTION_AGE": "90", "LOG_FORMAT": None}  # None = flag not given
    s = load_settings(flags=flags, environ=environ, env_file=dotenv)
    assert (s.log_level, s.max_action_age, s.log_format) == ("DEBUG", 90.0, "json")


def test_default_env_file_is_the_working_directory(env, tmp_path, monkeypatch):
    write_env(tmp_path / ".env", {**env, "FRAC_MAX_ACTION_AGE": "12"})
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).max_action_age == 12.0


def test_flag_fixes_a_bad_environment_value(env, no_file):
    s = load_settings(
        flags={"HYPERLIQUID_ENV": "testnet"}, environ={**env, "HYPERLIQUID_ENV": "moon"}, env_file=no_file
    )
    assert s.hl_env == "testnet"


# ---- networks and wallets --------------------------------------------------------------------------


def test_testnet(env, no_file):
    s = load_settings(environ={**env, "HYPERLIQUID_ENV": "TESTNET"}, env_file=no_file)
    assert (s.hl_env, s.api_url, s.is_mainnet) == ("testnet", TESTNET_API_URL, False)


@pytest.mark.parametrize(
    "hl_env, api_url, mainnet",
    [
        ("mainnet", MAINNET_API_URL + "/", True),
        ("mainnet", "http://127.0.0.1:8080", True),  # HYPERLIQUID_ENV names the network, whatever the URL
        ("mainnet", "https://proxy.example.com", True),  # (the SDK would sign for testnet here: every order refused)
        ("testnet", TESTNET_API_URL, False),
        ("testnet", "https://proxy.example.com", False),
    ],
)
def test_hyperliquid_env_decides_what_the_key_signs_for(env, no_file, hl_env, api_url, mainnet):
    s = load_settings(environ={**env, "HYPERLIQUID_ENV": hl_env, "HYPERLIQUID_API_URL": api_url}, env_file=no_file)
    assert s.is_mainnet is mainnet
    assert not s.api_url.endswith("/")


@pytest.mark.parametrize("hl_env, api_url", [("testnet", MAINNET_API_URL), ("mainnet", TESTNET_API_URL + "/")])
def test_the_other_networks_official_url_is_a_configuration_error(env, no_file, hl_env, api_url):
    with pytest.raises(ConfigError) as err:
        load_settings(environ={**env, "HYPERLIQUID_ENV": hl_env, "HYPERLIQUID_API_URL": api_url}, env_file=no_file)
    assert str(err.value) == (
        f"HYPERLIQUID_API_URL: is {api_url.rstrip('/')}, the other network's API, while "
        f"HYPERLIQUID_ENV is {hl_env}: set HYPERLIQUID_ENV to match, or the URL"
    )


def test_agent_wallet_when_the_address_is_another_account(env, no_file, account):
    trader = Account.create()
    s = load_settings(environ={**env, "HYPERLIQUID_PUBLIC_ADDRESS": trader.address}, env_file=no_file)
    assert s.is_agent_wallet
    assert s.account_address == trader.address.lower()
    assert s.signer_address == account.address.lower()


def test_same_address_in_any_case_is_not_an_agent_wallet(env, no_file, account):
    for address in (account.address.lower(), "0x" + account.address[2:].upper()):
        s = load_settings(environ={**env, "HYPERLIQUID_PUBLIC_ADDRESS": address}, env_file=no_file)
        assert not s.is_agent_wallet


# ---- the WebSocket URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, url",
    [
        ("https://app.fractrade.xyz", "wss://app.fractrade.xyz/ws/executor/"),
        ("https://app.fractrade.xyz/", "wss://app.fractrade.xyz/ws/executor/"),
        ("http://localhost:8000", "ws://localhost:8000/ws/executor/"),
        ("wss://h.io/custom/path", "wss://h.io/custom/path"),
        ("wss://h.io/ws/executor/?agent=1#frag", "wss://h.io/ws/executor/?agent=1"),
        ("ws://127.0.0.1:9/", "ws://127.0.0.1:9/ws/executor/"),
        ("ws://127.5.5.5", "ws://127.5.5.5/ws/executor/"),
        ("ws://[::1]:9", "ws://[::1]:9/ws/executor/"),
        ("WSS://h.io", "wss://h.io/ws/executor/"),
        ("  wss://h.io  ", "wss://h.io/ws/executor/"),
    ],
)
def test_ws_url_mapping(raw, url, env, no_file):
    assert normalize_ws_url(raw) == url
    assert load_settings(environ={**env, "FRAC_WS_URL": raw}, env_file=no_file).ws_url == url


@pytest.mark.parametrize(
    "raw, message",
    [
        ("ws://example.com", "ws:// is only allowed for localhost, not 'example.com'; use wss://"),
        ("http://10.0.0.1", "ws:// is only allowed for localhost, not '10.0.0.1'; use wss://"),
        ("ftp://h.io", "scheme 'ftp' is not supported; use wss://host/path (ws:// only for localhost)"),
        ("app.fractrade.xyz", "scheme '(none)' is not supported; use wss://host/path (ws:// only for localhost)"),
        ("wss://", "the URL has no host; use wss://host/path"),
        ("wss://h.io:99999", "not a valid URL (Port out of range 0-65535); use wss://host/path"),
        ("wss://user:pw@h.io", "credentials in the URL are not allowed; put the token in FRAC_USER_TOKEN"),
        ("", "is not set; set it to your agent's wss:// URL"),
    ],
)
def test_ws_url_errors(raw, message, env, no_file):
    err = error_of({**env, "FRAC_WS_URL": raw}, no_file)
    assert err.variable == "FRAC_WS_URL"
    assert err.message == message
    assert str(err) == f"FRAC_WS_URL: {message}"


# ---- every error names its variable and never shows a secret -------------------------------------

BAD = [
    ("FRAC_USER_TOKEN", "", "is not set; set it to your Fractrade user token"),
    ("FRAC_USER_TOKEN", "   ", "is not set; set it to your Fractrade user token"),
    ("FRAC_USER_TOKEN", TOKEN + " x", "contains spaces or control characters (the value is not shown)"),
    ("FRAC_USER_TOKEN", TOKEN + "\x07", "contains spaces or control characters (the value is not shown)"),
    ("HYPERLIQUID_PRIVATE_KEY", "", "is not set; set it to your 0x-hex key"),
    ("HYPERLIQUID_PUBLIC_ADDRESS", "", "is not set; set it to your account's 0x address"),
    ("HYPERLIQUID_PUBLIC_ADDRESS", "0x1234", "'0x1234' is not an address; use 0x followed by 40 hex digits"),
    ("HYPERLIQUID_ENV", "moon", "'moon' is not one of: mainnet, testnet"),
    ("HYPERLIQUID_API_URL", "ftp://x", "'ftp://x' is not an http(s) URL; use https://host"),
    (
        "HYPERLIQUID_API_URL",
        "http://api.example.com",
        "http:// is only allowed for localhost, not 'api.example.com'; use https://",
    ),
    ("LOGLEVEL", "LOUD", "'LOUD' is not one of: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("LOG_FORMAT", "xml", "'xml' is not one of: text, json"),
    ("FRAC_DRY_RUN", "maybe", "'maybe' is not a boolean; use 1/0, true/false, yes/no or on/off"),
    ("FRAC_MAX_ACTION_AGE", "soon", "'soon' is not a number"),
    ("FRAC_MAX_ACTION_AGE", "0", "'0' must be a number greater than 0"),
    ("FRAC_MAX_ACTION_AGE", "-5", "'-5' must be a number greater than 0"),
    ("FRAC_MAX_ACTION_AGE", "nan", "'nan' must be a number greater than 0"),
    ("FRAC_DRAIN_TIMEOUT", "inf", "'inf' must be a number greater than 0"),
    ("FRAC_SLIPPAGE", "0.5", "'0.5' is a fraction (0.01 = 1%) and must be < 0.5"),
    ("FRAC_MAX_LEVERAGE", "2.5", "'2.5' must be a whole number"),
    ("FRAC_MARGIN_MODE", "portfolio", "'portfolio' is not one of: cross, isolated"),
    (
        "FRAC_NOTIFY_URL",
        "mailto:me@example.com",
        "(not shown: a webhook URL carries its token) is not an http(s) URL; use https://host",
    ),
]


@pytest.mark.parametrize("variable, value, message", BAD, ids=[f"{v}={x!r}" for v, x, _ in BAD])
def test_errors_name_the_variable(env, no_file, variable, value, message):
    err = error_of({**env, variable: value}, no_file)
    assert (err.variable, err.message) == (variable, message)
    assert str(err).startswith(variable + ": ")
    for secret in (TOKEN, env["HYPERLIQUID_PRIVATE_KEY"]):
        assert not leaks(str(err), secret)
        assert not leaks(repr(err), secret)


def bad_keys(account) -> list[str]:
    key = hex_key(account)
    return [
        key[2:],  # no 0x
        key[:-1],  # 63 hex digits
        key + "0",
        key[:-1] + "g",
        "0x" + "0" * 64,  # not a valid secp256k1 scalar
        "0x" + "f" * 64,  # above the curve order
        " " + key[:-2] + " x",
    ]


@pytest.mark.parametrize("index", range(7))
def test_bad_private_key_is_never_shown(env, no_file, account, index):
    bad = bad_keys(account)[index]
    err = error_of({**env, "HYPERLIQUID_PRIVATE_KEY": bad}, no_file)
    assert err.variable == "HYPERLIQUID_PRIVATE_KEY"
    assert "(the value is not shown)" in err.message
    assert not leaks(str(err), bad.strip())
    assert bad.strip() not in str(err)


@pytest.mark.parametrize(
    "token", [TOKEN + " tail", "line1\nline2-" + TOKEN, TOKEN[:8] + "\t" + TOKEN[8:], "\x00" + TOKEN]
)
def test_bad_token_is_never_shown(env, no_file, token):
    err = error_of({**env, "FRAC_USER_TOKEN": token}, no_file)
    assert err.variable == "FRAC_USER_TOKEN"
    assert TOKEN not in str(err) and not leaks(str(err), TOKEN, window=8)


def test_errors_after_the_secrets_do_not_show_them(env, no_file):
    """An error in a later variable must not echo the valid token or key read before it."""
    for variable, value in [("LOGLEVEL", "LOUD"), ("FRAC_WS_URL", "ftp://h"), ("HYPERLIQUID_API_URL", "x")]:
        err = error_of({**env, variable: value}, no_file)
        assert not leaks(str(err), TOKEN, window=8)
        assert not leaks(str(err), env["HYPERLIQUID_PRIVATE_KEY"])


def test_key_pasted_as_the_address_is_not_shown(env, no_file, key):
    err = error_of({**env, "HYPERLIQUID_PUBLIC_ADDRESS": key}, no_file)
    assert err.variable == "HYPERLIQUID_PUBLIC_ADDRESS"
    assert not leaks(str(err), key)


@pytest.mark.parametrize("variable, value", [("FRAC_DRAIN_TIMEOUT", "1e400"), ("FRAC_HTTP_TIMEOUT", "1e-400")])
def test_numbers_that_do_not_fit_a_float_are_config_errors(env, no_file, variable, value):
    err = error_of({**env, variable: value}, no_file)
    assert err.variable == variable


def test_numbers_and_optional_settings(env, no_file, tmp_path):
    s = load_settings(
        environ={
            **env,
            "FRAC_SLIPPAGE": "0.02",
            "FRAC_MAX_LEVERAGE": "5",
            "FRAC_MAX_ORDER_USD": "1000",
            "FRAC_ALLOWED_SYMBOLS": "BTC, ETH,,",
            "FRAC_STATE_DIR": str(tmp_path / "state"),
            "FRAC_DRY_RUN": "yes",
            "FRAC_MARGIN_MODE": "Isolated",
            "FRAC_NOTIFY_URL": "https://hooks.example.com/x/",
        },
        env_file=no_file,
    )
    assert (s.slippage, s.max_leverage, s.max_order_usd) == (Decimal("0.02"), 5, Decimal("1000"))
    assert s.allowed_symbols == frozenset({"BTC", "ETH"})
    assert s.state_dir == tmp_path / "state" and s.dry_run and s.margin_mode == "isolated"
    assert s.notify_url == "https://hooks.example.com/x"


def test_without_ws_settings(env, no_file):
    environ = {k: v for k, v in env.items() if not k.startswith("FRAC_")}
    s = load_settings(environ=environ, env_file=no_file, require_ws=False)
    assert s.account_address == env["HYPERLIQUID_PUBLIC_ADDRESS"].lower()
    assert error_of(environ, no_file).variable == "FRAC_WS_URL"


# ---- Secret and Settings never show a secret -------------------------------------------------------


def test_secret_hides_itself():
    secret = Secret(TOKEN)
    assert repr(secret) == str(secret) == f"{secret}" == "***"
    assert TOKEN not in repr([secret]) and TOKEN not in repr({"t": secret})
    assert secret.reveal() == TOKEN
    assert secret == Secret(TOKEN) and secret != Secret("other") and secret != TOKEN
    assert hash(secret) == hash(Secret(TOKEN))


@pytest.mark.parametrize("dump", [pickle.dumps, copy.copy, copy.deepcopy])
def test_secret_refuses_serialisation(dump):
    with pytest.raises(TypeError, match="not serialisable"):
        dump(Secret(TOKEN))


def test_secret_has_no_dict_to_peek_into():
    with pytest.raises(AttributeError):
        Secret(TOKEN).__dict__  # noqa: B018
    with pytest.raises(AttributeError):
        Secret(TOKEN).other = 1  # type: ignore[attr-defined]


def test_settings_repr_shows_no_secret(env, no_file):
    s = load_settings(environ=env, env_file=no_file)
    key = env["HYPERLIQUID_PRIVATE_KEY"]
    for text in (repr(s), str(s), f"{s!r}", repr(vars(s) if hasattr(s, "__dict__") else s)):
        assert TOKEN not in text and not leaks(text, key)
    assert "user_token" not in repr(s) and "private_key" not in repr(s)
    assert isinstance(s, Settings)
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_settings_from_mapping_ignores_non_strings(env):
    s = settings_from_mapping({**env, "FRAC_MAX_ACTION_AGE": 5})  # type: ignore[dict-item]
    assert s.max_action_age == 60.0
