"""Secrets in the configuration: a secret pasted into the wrong variable is never echoed, URL credentials are never
shown, and a `.env` other users can read is warned about. Every key and token here is made at test time."""

from __future__ import annotations

import io
import logging
import secrets
from pathlib import Path

import pytest

from fractrade_sync.config import parsing
from fractrade_sync.config.secrets import redact_url, show_value
from fractrade_sync.config.settings import load_settings, settings_from_mapping
from fractrade_sync.errors import ConfigError
from tests.conftest import config_env, redacted_log


@pytest.fixture
def token() -> str:
    return "tk-" + secrets.token_urlsafe(24)  # '-' makes every piece of it non-hex: only the secret rule hides it


@pytest.fixture
def env(account, key, token) -> dict[str, str]:
    return config_env(account, key, token)


def leaks(text: str, secret: str, window: int = 8) -> bool:
    """True when any `window` characters of the secret (without 0x) appear in the text, in any case."""
    body, text = secret.removeprefix("0x").lower(), text.lower()
    return any(body[i : i + window] in text for i in range(len(body) - window + 1))


def error_of(environ: dict[str, str], env_file: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ, env_file=env_file)
    return caught.value


def pasted_values(key: str, token: str) -> dict[str, str]:
    telegram = f"{secrets.randbelow(10**9) + 10**9}:AA{secrets.token_urlsafe(33)}"  # the shape of a bot token
    return {
        "key": key,
        "key without 0x": key[2:],
        "key in upper case": "0x" + key[2:].upper(),
        "Fractrade token": token,
        "telegram token": telegram,
        "hex token": secrets.token_hex(16),
    }


PASTED_INTO = [
    "LOGLEVEL",
    "LOG_FORMAT",
    "HYPERLIQUID_ENV",
    "FRAC_DRY_RUN",
    "FRAC_HTTP_TIMEOUT",
    "FRAC_MAX_ACTION_AGE",
    "FRAC_DRAIN_TIMEOUT",
    "FRAC_SLIPPAGE",
    "FRAC_MAX_LEVERAGE",
    "FRAC_MAX_ORDER_USD",
    "FRAC_MARGIN_MODE",
    "HYPERLIQUID_API_URL",
    "FRAC_WS_URL",
    "HYPERLIQUID_PUBLIC_ADDRESS",
    "FRAC_NOTIFY_URL",
    "FRAC_STATE_DIR",
    "FRAC_ALLOWED_SYMBOLS",
]
KINDS = ["key", "key without 0x", "key in upper case", "Fractrade token", "telegram token", "hex token"]


# ---- 1. no configuration error shows a value that could be a secret ------------------------------


CASES = [
    (variable, kind)
    for variable in PASTED_INTO
    for kind in KINDS
    if (variable, kind) != ("FRAC_STATE_DIR", "telegram token")  # a directory may have any name (see below)
]


@pytest.mark.parametrize("variable, kind", CASES)
def test_a_secret_pasted_into_the_wrong_variable_is_not_echoed(env, no_file, key, token, variable, kind):
    pasted = pasted_values(key, token)[kind]
    err = error_of({**env, variable: pasted}, no_file)
    assert err.variable == variable
    for text in (str(err), repr(err), err.message):
        assert not leaks(text, pasted), text
        assert not leaks(text, key) and not leaks(text, token)


@pytest.mark.parametrize(
    "variable, template",
    [
        ("HYPERLIQUID_API_URL", "http://{}"),  # http:// off loopback: the host was quoted
        ("HYPERLIQUID_API_URL", "http://{}.example.com"),
        ("FRAC_WS_URL", "ws://{}"),  # ws:// off loopback: the host was quoted
        ("FRAC_WS_URL", "wss://app.fractrade.xyz:{}"),  # a bad port: Python's message quotes it
        ("HYPERLIQUID_API_URL", "https://api.example.com:{}"),
        ("FRAC_WS_URL", "wss://[{}]/"),  # a bracketed host: urlsplit's own ValueError quotes it
        ("HYPERLIQUID_API_URL", "https://[{}]"),
        ("FRAC_WS_URL", "{}://app.fractrade.xyz"),  # a scheme
    ],
)
def test_a_secret_inside_a_url_is_not_echoed(env, no_file, variable, template):
    pasted = secrets.token_hex(16) if "{}://" in template else secrets.token_hex(32)
    if "{}://" in template:
        pasted = "x" + pasted  # a scheme begins with a letter
    err = error_of({**env, variable: template.format(pasted)}, no_file)  # a ConfigError, never a bare ValueError
    assert err.variable == variable
    assert not leaks(str(err), pasted), str(err)


def test_a_piece_of_the_token_is_not_echoed_even_when_short(env, no_file, token):
    """10 characters pass the length rule, but they are a piece of FRAC_USER_TOKEN: not shown either."""
    err = error_of({**env, "LOGLEVEL": token[:10]}, no_file)
    assert err.variable == "LOGLEVEL"
    assert token[:10].lower() not in str(err).lower()
    assert "not shown" in err.message


def test_the_rule_in_one_helper(key):
    assert show_value("LOUD") == "'LOUD'"
    assert show_value(" maybe ") == "'maybe'"
    assert show_value("0x1234") == "'0x1234'"
    assert show_value("12345678") == "'12345678'"  # 8 hex digits: still a number, shown
    assert show_value(key) == "(a 66-character value, not shown: it may be a secret)"
    assert show_value(secrets.token_hex(5)) == "(a 10-character value, not shown: it may be a secret)"
    assert show_value("0x" + secrets.token_hex(5)) == "(a 12-character value, not shown: it may be a secret)"
    assert show_value("abcdefghijklm") == "(a 13-character value, not shown: it may be a secret)"
    assert show_value("a\x1b[2Jb") == "(a 6-character value, not shown: it may be a secret)"  # control characters


def test_short_harmless_values_are_still_shown(env, no_file):
    assert error_of({**env, "LOGLEVEL": "LOUD"}, no_file).message == (
        "'LOUD' is not one of: DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    assert (
        "'api.hyperliquid-testnet.xyz'"
        in error_of({**env, "HYPERLIQUID_API_URL": "http://api.hyperliquid-testnet.xyz"}, no_file).message
    )


def test_a_message_that_would_quote_a_secret_is_replaced(env, key, token, monkeypatch):
    """The last guard: should a message ever quote a secret of the mapping, the whole message is replaced."""
    # a future mistake: the parser quotes the value (patched where parse_choice looks it up)
    monkeypatch.setattr(parsing, "show_value", lambda value: f"'{value}'")
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({**env, "LOGLEVEL": token})
    assert caught.value.variable == "LOGLEVEL"
    assert caught.value.message == "is not valid (the value is not shown: it may be a secret)"  # the guard's own
    assert not leaks(str(caught.value), token)


def test_a_key_in_the_state_dir_or_the_symbols_never_reaches_the_settings(env, no_file, key, tmp_path):
    telegram = pasted_values(key, "")["telegram token"]
    env = {**env, "TELEGRAM_BOT_TOKEN": telegram}  # a secret-named variable: its value is a known secret
    for variable, value, secret in [
        ("FRAC_STATE_DIR", str(tmp_path / key), key),
        ("FRAC_STATE_DIR", str(tmp_path / telegram), telegram),
        ("FRAC_ALLOWED_SYMBOLS", f"BTC,{key[2:]}", key),
    ]:
        err = error_of({**env, variable: value}, no_file)
        assert err.variable == variable and not leaks(str(err), secret)
    s = load_settings(environ={**env, "FRAC_ALLOWED_SYMBOLS": "BTC,kPEPE,@107,xyz:TSLA"}, env_file=no_file)
    assert s.allowed_symbols == frozenset({"BTC", "kPEPE", "@107", "xyz:TSLA"})


# ---- 2. URL credentials are never shown --------------------------------------------------------


@pytest.mark.parametrize(
    "url, redacted",
    [
        ("http://user:{pw}@proxy.example.com:3128/path?q=1", "http://***@proxy.example.com:3128/path?q=1"),
        ("https://{pw}@api.example.com", "https://***@api.example.com"),
        ("socks5h://user:{pw}@10.0.0.1:1080", "socks5h://***@10.0.0.1:1080"),
        ("user:{pw}@proxy:3128", "***@proxy:3128"),  # a proxy variable without a scheme
        ("https://a:b@c:{pw}@host/x", "https://***@host/x"),  # an unescaped @ in the password
        ("https://api.example.com/x@y", "https://api.example.com/x@y"),  # an @ in the path is no credential
        ("https://api.hyperliquid.xyz", "https://api.hyperliquid.xyz"),
    ],
)
def test_redact_url(url, redacted):
    password = secrets.token_urlsafe(12)
    assert redact_url(url.format(pw=password)) == redacted
    assert password not in redact_url(url.format(pw=password))


def test_settings_repr_hides_api_url_credentials(env, no_file):
    password = secrets.token_urlsafe(16)
    api = f"https://trader:{password}@gateway.example.com:8443"
    s = load_settings(environ={**env, "HYPERLIQUID_API_URL": api}, env_file=no_file)
    assert s.api_url == api  # the client still gets the credentials
    for text in (repr(s), str(s), f"{s!r}"):
        assert password not in text and "trader:" not in text
        assert "api_url='https://***@gateway.example.com:8443'" in text
        assert "ws_url='wss://app.fractrade.xyz/ws/executor/'" in text


def test_url_credentials_are_redacted_from_the_logs(env, no_file):
    """The API URL's and the proxy variables' passwords join Settings.secrets, which the log filter scrubs."""
    api_pw, proxy_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    environ = {
        **env,
        "HYPERLIQUID_API_URL": f"https://trader:{api_pw}@gateway.example.com",
        "HTTPS_PROXY": f"http://me:{proxy_pw}@proxy.example.com:3128",
    }
    s = load_settings(environ=environ, env_file=no_file)
    assert api_pw in s.secrets and proxy_pw in s.secrets
    with redacted_log(s.secrets, "test_config_redaction") as (log, stream):
        log.warning("connecting to %s via %s", s.api_url, environ["HTTPS_PROXY"])
    assert api_pw not in stream.getvalue() and proxy_pw not in stream.getvalue()
    assert "gateway.example.com" in stream.getvalue()


@pytest.mark.parametrize(
    "variable, template",
    [
        ("HYPERLIQUID_API_URL", "ftp://u:{pw}@h"),  # short enough to quote: quoted without its credentials
        ("HYPERLIQUID_API_URL", "ftp://user:{pw}@proxy.example.com"),
        ("HYPERLIQUID_API_URL", "http://user:{pw}@api.example.com"),  # http:// off loopback
        ("FRAC_WS_URL", "wss://user:{pw}@app.fractrade.xyz"),
        ("FRAC_NOTIFY_URL", "ftp://user:{pw}@hooks.example.com"),
    ],
)
def test_config_errors_never_show_url_credentials(env, no_file, variable, template):
    password = "pw" + secrets.token_hex(2)  # short: only the redaction keeps it out
    err = error_of({**env, variable: template.format(pw=password)}, no_file)
    assert err.variable == variable
    assert password not in str(err), str(err)


# ---- 3. a `.env` other users may read is warned about ------------------------------------------


def write_env(path: Path, values: dict[str, str], mode: int) -> Path:
    path.write_text("".join(f'{name}="{value}"\n' for name, value in values.items()))
    path.chmod(mode)
    return path


def config_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fractrade_sync.config" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o620, 0o602, 0o610, 0o601], ids=oct)
def test_an_env_file_open_to_others_is_warned_about_once(env, tmp_path, caplog, key, token, mode):
    dotenv = write_env(tmp_path / ".env", env, mode)
    with caplog.at_level(logging.WARNING, logger="fractrade_sync.config"):
        s = load_settings(environ={}, env_file=dotenv)
    assert s.user_token.reveal() == token  # the settings still load
    records = config_warnings(caplog)
    assert len(records) == 1
    text = records[0].getMessage()
    assert str(dotenv) in text and "chmod 600" in text
    assert not leaks(text, key) and not leaks(text, token)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700], ids=oct)
def test_a_private_env_file_loads_quietly(env, tmp_path, caplog, mode):
    dotenv = write_env(tmp_path / ".env", env, mode)
    with caplog.at_level(logging.DEBUG, logger="fractrade_sync.config"):
        load_settings(environ={}, env_file=dotenv)
    assert config_warnings(caplog) == []


def test_check_and_reprs_show_no_url_credentials(env, sim):
    """`check` prints to stdout, out of the log's redaction: the API URL's credentials are never in it."""

    from fractrade_sync.cli.check import run_check
    from fractrade_sync.exchange.client import HyperliquidClient
    from fractrade_sync.feeds.exchange_feed import ExchangeFeed

    password = secrets.token_urlsafe(12)
    url = sim.url.replace("http://", f"http://trader:{password}@")
    settings = settings_from_mapping({**env, "HYPERLIQUID_API_URL": url})
    out = io.StringIO()
    run_check(settings, out)
    assert "hyperliquid ok: http://***@127.0.0.1:" in out.getvalue(), out.getvalue()
    assert password not in out.getvalue() and "trader" not in out.getvalue()
    assert password not in repr(HyperliquidClient(settings)) and password not in repr(ExchangeFeed(url))
