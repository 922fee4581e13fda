"""The work-order catalog file: units, categories and areas (YAML)."""

from __future__ import annotations

import os
from pathlib import Path

from ivr.errors import ConfigError
from routing.workorder import Catalog
from routing.yamlsource import load_located

MAX_BYTES = 1_000_000
DEFAULT_NAME = "workorder.yaml"


def catalog_path(config_path: str | os.PathLike[str]) -> Path:
    """Where the catalog lives: ``YHT_WORKORDER`` or beside the server config."""
    named = os.environ.get("YHT_WORKORDER")
    if named:
        return Path(named)
    return Path(config_path).resolve().parent / DEFAULT_NAME


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    name = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{name}: larger than 1 MB; refused")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text") from None
    located, problems = load_located(text)
    fatal = [p for p in problems if p.fatal]
    if located is None or fatal:
        first = fatal[0] if fatal else None
        where = f":{first.pos.line}" if first else ""
        raise ConfigError(f"{name}{where}: {first.message if first else 'empty'}")
    if not isinstance(located.data, dict):
        raise ConfigError(f"{name}: expected units, categories and areas")
    try:
        return Catalog.from_dict(located.data)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
