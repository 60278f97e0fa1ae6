"""Where the settings' values come from: the process environment over a `.env` file (flags, over both, are laid on
by settings.load_settings)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Mapping

logger = logging.getLogger("fractrade_sync.config")


def read_env_file(path: Path) -> dict[str, str]:
    """Variables from a .env file (python-dotenv), empty when the file does not exist. A file other users may read
    or change (it holds the key) is warned about, by name only, each time it is read."""
    if not path.is_file():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning(
            "%s is open to other users (mode %03o) and may hold your key and token: run `chmod 600 %s`",
            path,
            mode,
            path,
        )
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def merged_env(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> dict[str, str]:
    """The `.env` file's values under the process environment (the environment wins)."""
    environ = os.environ if environ is None else environ
    path = env_file if env_file is not None else Path.cwd() / ".env"
    merged = read_env_file(path)
    merged.update(environ)
    return merged
