"""People who log in to the web pages: a name, a role and an argon2 hash.

The users file is JSON, mode 0600 like the tokens file beside it, and is
managed with ``hotline users add|remove|list``::

    {"users": {"wang": {"role": "admin", "agent": null, "hash": "$argon2id$..."}}}

An agent account names the agent extension it works as (``--agent 6001``);
the desktop acts on that extension only. Passwords are never stored or
logged, only their argon2id hashes (argon2-cffi's defaults, RFC 9106's low
memory profile).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ivr import log
from ivr.errors import ConfigError
from ivr.web.auth import Role, read_private_file

USERS_FILE_NAME = "web-users.json"
MIN_PASSWORD_LENGTH = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_EXTENSION = re.compile(r"^[0-9]{2,8}$")
_HASHER = PasswordHasher()
# Verified against when the name is unknown, so the time taken is the same.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    agent: str | None = None  # the agent extension of an agent account
    # The tail of the password hash: a new password ends the old sessions.
    version: str = field(default="", repr=False)

    @property
    def role_name(self) -> str:
        return self.role.name.lower()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"user name {name!r}: letters, digits and _.@- only, at most 64"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"a password needs {MIN_PASSWORD_LENGTH} or more characters")
    return password


def role_of(word: str, where: str = "role") -> Role:
    try:
        return Role[word.upper()]
    except KeyError:
        raise ConfigError(
            f"{where}: {word!r} is not admin, supervisor or agent"
        ) from None


class UserBook:
    """The accounts of a users file; reads it on load, writes it on change."""

    def __init__(self, path: Path, entries: dict[str, dict] | None = None) -> None:
        self.path = Path(path)
        self._entries = dict(entries or {})
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None
        return (status.st_mtime_ns, status.st_size)

    def refresh(self) -> None:
        """Read the file again if ``hotline users`` changed it meanwhile.

        A file that became unreadable or invalid keeps the accounts known
        (logged, not raised): the pages stay usable while someone fixes it.
        """
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            fresh = UserBook.load(self.path)
        except ConfigError as exc:
            log.web.warning("web users file not reloaded: %s", exc)
            self._stamp = stamp
            return
        self._entries, self._stamp = fresh._entries, stamp
        log.web.info("web users file reloaded: %d user(s)", len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: Path) -> UserBook:
        """The book of ``path``; an empty one if the file does not exist yet."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        text = read_private_file(path, "web users file")
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: not JSON ({exc})") from None
        users = raw.get("users") if isinstance(raw, dict) else None
        if not isinstance(users, dict):
            raise ConfigError(f'{path}: expected {{"users": {{name: ...}}}}')
        for name, entry in users.items():
            where = f"{path}: user {name!r}"
            check_name(name)
            if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str):
                raise ConfigError(f"{where}: needs a role and a hash")
            role_of(str(entry.get("role")), where)
            agent = entry.get("agent")
            if agent is not None and not _EXTENSION.match(str(agent)):
                raise ConfigError(f"{where}: agent {agent!r} is not an extension")
        return cls(path, users)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def account(self, name: str) -> Account | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        agent = entry.get("agent")
        return Account(
            name,
            Role[entry["role"].upper()],
            str(agent) if agent else None,
            entry["hash"][-16:],
        )

    def verify(self, name: str, password: str) -> Account | None:
        """The account if ``password`` is right; None otherwise (same time)."""
        entry = self._entries.get(name)
        try:
            _HASHER.verify(entry["hash"] if entry else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        return self.account(name) if entry else None

    def add(
        self, name: str, role: Role, password: str, agent: str | None = None
    ) -> Account:
        """Add or replace an account (a new password for a known name)."""
        check_name(name)
        check_password(password)
        if role is Role.AGENT and not agent:
            raise ConfigError(f"agent account {name!r} needs --agent EXTENSION")
        if agent is not None and not _EXTENSION.match(agent):
            raise ConfigError(f"--agent {agent!r} is not an extension such as 6001")
        self._entries[name] = {
            "role": role.name.lower(),
            "agent": agent,
            "hash": _HASHER.hash(password),
        }
        self.save()
        account = self.account(name)
        assert account is not None
        return account

    def remove(self, name: str) -> bool:
        if self._entries.pop(name, None) is None:
            return False
        self.save()
        return True

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"users": self._entries}, indent=1, ensure_ascii=False)
        staged = self.path.with_suffix(".tmp")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.chmod(staged, 0o600)
        os.replace(staged, self.path)
        self._stamp = self._file_stamp()


def users_file(settings) -> Path:
    """Where the users file is: ``YHT_WEB_USERS``, else beside the tokens file."""
    named = os.environ.get("YHT_WEB_USERS")
    if named:
        return Path(named)
    if settings.tokens_file is None:
        raise ConfigError(
            "the web pages need the admin API: write admin.toml with a tokens_file"
        )
    return Path(settings.tokens_file).parent / USERS_FILE_NAME
