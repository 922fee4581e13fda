"""Server configuration: one TOML file, secrets kept out of it.

The AMI secret is read from the environment (``YHT_AMI_SECRET``) or from a
file named in the configuration, never from code or from the TOML itself, so
the configuration can be shared and committed.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from ivr.ami.session import AmiSettings
from ivr.errors import ConfigError
from ivr.sip_guard import never_block_networks
from routing.survey import FollowUpPolicy
from routing.transfer import Target, parse_targets


@dataclass(frozen=True)
class Agent:
    extension: str
    name: str
    # desk -> level, 1 the most skilled; the router turns levels into penalties.
    skills: dict[str, int]
    auto_login: bool = True


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "yihaotong"
    topic_prefix: str = "ivr"
    spool: str = ""


@dataclass(frozen=True)
class RoutingSettings:
    """``[routing]``: agents' wrap-up and callbacks (issue 4)."""

    # Seconds an agent is held back after each call; per desk in ``wrapup``.
    wrapup_seconds: float = 10.0
    wrapup: dict[str, float] = field(default_factory=dict)
    # How to reach a caller for a callback: {number} is the caller's number.
    callback_dial: str = "PJSIP/{number}@pstn-out"
    callback_caller_id: str = "12345"
    # Seconds between publications of the desks' live statistics.
    status_interval: float = 2.0


@dataclass(frozen=True)
class Config:
    ami: AmiSettings
    mqtt: MqttSettings
    store_path: Path
    dialplan_path: Path
    # Where Asterisk finds the prompts, as Asterisk sees the path.
    sounds_dir: str
    agents: tuple[Agent, ...] = field(default_factory=tuple)
    hotline_number: str = "12345"
    inbound_context: str = "from-pstn"
    source: Path | None = None
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    # Issue 8: the PJSIP ACL file Asterisk includes, where the server denies
    # addresses that fail SIP authentication too often ('' = report only).
    sip_blocklist: str = ""
    # Networks (CIDR) never blocked: the carrier's SBC, the agents' subnet.
    sip_never_block: tuple[str, ...] = ()
    # Issue 8: seconds a write waits for a locked store before the journal
    # (not in the file: the fault suite shortens it, tests/faults/serve.py).
    store_busy_timeout: float = 30.0
    # Issue 6: the automatic follow-up call after a ticket is closed.
    followup: FollowUpPolicy = field(default_factory=FollowUpPolicy)
    # Issue 5: outside platforms for warm transfers ([[transfer.targets]]).
    transfer_targets: tuple[Target, ...] = ()


def load(
    path: str | Path, *, base: Path | None = None, need_ami_secret: bool = True
) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    # Relative paths in the file are relative to the file's own folder.
    base = base or path.resolve().parent
    return from_dict(raw, source=path, base=base, need_ami_secret=need_ami_secret)


def from_dict(
    raw: dict,
    *,
    source: Path | None = None,
    base: Path,
    need_ami_secret: bool = True,
) -> Config:
    """Build the configuration; offline commands pass ``need_ami_secret=False``."""
    where = str(source or "configuration")
    known = {
        "ami",
        "mqtt",
        "store",
        "dialplan",
        "asterisk",
        "agents",
        "hotline",
        "routing",
        "followup",
        "transfer",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown sections {sorted(unknown)}")
    _check_keys(raw, where)
    ami = dict(raw.get("ami", {}))
    secret = os.environ.get("YHT_AMI_SECRET") or ""
    secret_file = ami.pop("secret_file", "")
    if not secret and secret_file and need_ami_secret:
        secret_path = _resolve(base, secret_file)
        try:
            secret = secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{where}: [ami] secret_file {secret_path}: {exc.strerror}"
            ) from None
    if "secret" in ami:
        raise ConfigError(
            f"{where}: [ami] secret must not be written in the configuration; "
            "use secret_file or the YHT_AMI_SECRET environment variable"
        )
    if not secret and need_ami_secret:
        raise ConfigError(
            f"{where}: no AMI secret: set [ami] secret_file or YHT_AMI_SECRET"
        )
    try:
        ami_settings = AmiSettings(**ami, secret=secret)
        mqtt = MqttSettings(**raw.get("mqtt", {}))
        routing = _routing(raw.get("routing", {}))
        followup = _followup(raw.get("followup", {}))
        transfer_targets = parse_targets(raw.get("transfer", {}))
        never_block = never_block_networks(
            raw.get("asterisk", {}).get("sip_never_block", [])
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    agents = []
    for index, entry in enumerate(raw.get("agents", []), start=1):
        try:
            agents.append(
                Agent(
                    extension=str(entry["extension"]),
                    name=str(entry.get("name", entry["extension"])),
                    skills={str(k): int(v) for k, v in entry.get("skills", {}).items()},
                    auto_login=bool(entry.get("auto_login", True)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: agents entry {index}: {exc}") from None
    hotline = raw.get("hotline", {})
    return Config(
        ami=ami_settings,
        mqtt=mqtt,
        store_path=_resolve(base, raw.get("store", {}).get("path", "var/tickets.db")),
        dialplan_path=_resolve(
            base, raw.get("dialplan", {}).get("path", "dialplans/12345.yaml")
        ),
        sounds_dir=os.environ.get("YHT_SOUNDS_DIR")
        or raw.get("asterisk", {}).get("sounds_dir", ""),
        sip_blocklist=_blocklist(base, raw.get("asterisk", {})),
        sip_never_block=tuple(str(network) for network in never_block),
        agents=tuple(agents),
        hotline_number=str(hotline.get("number", "12345")),
        inbound_context=str(hotline.get("inbound_context", "from-pstn")),
        source=source,
        routing=routing,
        followup=followup,
        transfer_targets=transfer_targets,
    )


def _routing(raw: dict) -> RoutingSettings:
    settings = RoutingSettings(**raw)
    wrapups = {"wrapup_seconds": settings.wrapup_seconds, **settings.wrapup}
    for key, seconds in wrapups.items():
        if not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
            raise ValueError(f"[routing] {key} = {seconds!r}: use 0 to 3600 seconds")
    if "{number}" not in settings.callback_dial:
        raise ValueError("[routing] callback_dial must contain {number}")
    return settings


def _followup(raw: dict) -> FollowUpPolicy:
    if not isinstance(raw, dict):
        raise ValueError("[followup] must be a table")
    known = {f.name for f in fields(FollowUpPolicy)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(
            f"[followup] unknown key {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    values = dict(raw)
    if "hours" in values:
        hours = values["hours"]
        if not isinstance(hours, list) or not all(isinstance(h, str) for h in hours):
            raise ValueError('[followup] hours: a list such as ["09:00-20:00"]')
        values["hours"] = tuple(hours)
    return FollowUpPolicy(**values)


# The keys each simple section takes; a misspelt one must not pass in silence.
_SECTION_KEYS = {
    "ami": {f.name for f in fields(AmiSettings)} - {"secret"} | {"secret_file"},
    "mqtt": {f.name for f in fields(MqttSettings)},
    "store": {"path"},
    "dialplan": {"path"},
    "asterisk": {"sounds_dir", "sip_blocklist", "sip_never_block"},
    "hotline": {"number", "inbound_context"},
}


def _check_keys(raw: dict, where: str) -> None:
    for section, allowed in _SECTION_KEYS.items():
        values = raw.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        # "secret" has its own, more helpful refusal below.
        unknown = set(values) - allowed - {"secret"}
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ConfigError(
                f"{where}: [{section}] unknown key {names}; "
                f"known: {', '.join(sorted(allowed))}"
            )
    for key in ("port",):
        for section in ("ami", "mqtt"):
            port = raw.get(section, {}).get(key)
            if port is not None and not (isinstance(port, int) and 0 < port < 65536):
                raise ConfigError(
                    f"{where}: [{section}] port must be a number from 1 to 65535, "
                    f"not {port!r}"
                )


def _blocklist(base: Path, asterisk: dict) -> str:
    value = asterisk.get("sip_blocklist", "")
    return str(_resolve(base, value)) if value else ""


def _resolve(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path
