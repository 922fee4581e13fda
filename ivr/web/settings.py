"""Settings of the admin API and of the folders it manages.

They live in ``admin.toml`` beside the server configuration (or the file
named by ``YHT_ADMIN_CONFIG``); without that file the admin API stays off,
while dial plan versions and the file watcher work all the same::

    host = "127.0.0.1"            # never a public address: put a proxy in front
    port = 8345
    tokens_file = "var/secrets/admin-tokens"   # mode 0600, see ivr.web.auth
    prompts_dir = "recordings/prompts"         # where uploads are kept
    install_dir = "/var/lib/asterisk/sounds/yihaotong"  # what Asterisk plays
    versions_dir = "var/dialplans"             # every published dial plan

Relative paths are relative to the project folder, as in the server's own
configuration. Tokens are secrets and never appear in this file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ivr.config import Config
from ivr.errors import ConfigError

DEFAULT_PORT = 8345
_KEYS = {"host", "port", "tokens_file", "prompts_dir", "install_dir", "versions_dir"}


@dataclass(frozen=True)
class AdminSettings:
    prompts_dir: Path
    versions_dir: Path
    install_dir: Path | None = None  # None: uploads are not copied to Asterisk
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tokens_file: Path | None = None
    source: Path | None = None


def project_folder(config: Config) -> Path:
    """The folder relative paths start from (the configuration's parent's parent)."""
    if config.source is None:
        return Path.cwd()
    return Path(config.source).resolve().parent.parent


def defaults(config: Config) -> AdminSettings:
    return AdminSettings(
        prompts_dir=project_folder(config) / "recordings" / "prompts",
        versions_dir=Path(config.store_path).parent / "dialplans",
        install_dir=Path(config.sounds_dir) if config.sounds_dir else None,
    )


def load_admin_settings(config: Config) -> AdminSettings:
    """The admin settings for ``config``; the API is off without admin.toml."""
    named = os.environ.get("YHT_ADMIN_CONFIG")
    if named:
        path = Path(named)
    elif config.source is not None:
        path = Path(config.source).parent / "admin.toml"
    else:
        return defaults(config)
    if not path.exists():
        if named:
            raise ConfigError(f"{path}: no such admin configuration (YHT_ADMIN_CONFIG)")
        return defaults(config)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return from_dict(raw, config, source=path)


def from_dict(
    raw: dict, config: Config, *, source: Path | None = None
) -> AdminSettings:
    where = str(source or "admin settings")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    base = project_folder(config)
    fallback = defaults(config)

    def path_of(key: str, default: Path | None) -> Path | None:
        value = raw.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a path")
        path = Path(value)
        return path if path.is_absolute() else base / path

    port = raw.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port must be a number from 0 to 65535")
    host = raw.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{where}: host must be an address such as 127.0.0.1")
    tokens = path_of("tokens_file", None)
    if tokens is None:
        raise ConfigError(
            f"{where}: tokens_file is required: the admin API never runs "
            "without authentication"
        )
    prompts = path_of("prompts_dir", fallback.prompts_dir)
    versions = path_of("versions_dir", fallback.versions_dir)
    assert prompts is not None and versions is not None
    return AdminSettings(
        prompts_dir=prompts,
        versions_dir=versions,
        install_dir=path_of("install_dir", fallback.install_dir),
        enabled=True,
        host=host,
        port=port,
        tokens_file=tokens,
        source=source,
    )
