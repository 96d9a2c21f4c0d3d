"""Where the gateway is and which token to send: options, then ``PRODFLOW_URL`` / ``PRODFLOW_TOKEN``, then the
config file that ``prodflow login`` writes (``$PRODFLOW_CONFIG``, default ``~/.config/prodflow/config.json``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
GATEWAY_URL_FILE = "gateway-url"
"""In a ``prodflow up`` data folder: the URL of the gateway last started on it."""


@dataclass(frozen=True)
class Config:
    """The gateway's URL and the bearer token (``None`` when none is configured)."""

    url: str = DEFAULT_URL
    token: str | None = None


def config_path() -> Path:
    """The config file: ``$PRODFLOW_CONFIG``, else ``$XDG_CONFIG_HOME/prodflow/config.json``."""
    if explicit := os.environ.get("PRODFLOW_CONFIG"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "prodflow" / "config.json"


def read_file(path: Path | None = None) -> Config:
    """The saved config, or the defaults if there is none (an unreadable file is an error, not ignored)."""
    path = path or config_path()
    if not path.exists():
        return Config()
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(saved, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return Config(url=str(saved.get("url") or DEFAULT_URL), token=saved.get("token") or None)


def resolve(url: str | None = None, token: str | None = None) -> Config:
    """Options win over the environment, which wins over the config file."""
    saved = read_file()
    return Config(
        url=(url or os.environ.get("PRODFLOW_URL") or saved.url).rstrip("/"),
        token=token or os.environ.get("PRODFLOW_TOKEN") or saved.token,
    )


def save(config: Config, path: Path | None = None) -> Path:
    """Write the config file, readable by its owner only (it holds a secret)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"url": config.url, "token": config.token}, handle, indent=2)
        handle.write("\n")
    tmp.replace(path)
    return path


def forget(path: Path | None = None) -> bool:
    """Remove the config file; False if there was none."""
    path = path or config_path()
    if not path.exists():
        return False
    path.unlink()
    return True


class ConfigError(Exception):
    """The config file cannot be used."""
