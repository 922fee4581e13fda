"""Every published dial plan, kept: who published it, when, and what changed.

A version is three files in one folder (under the data folder by default)::

    000007.yaml   the text exactly as published
    000007.diff   unified diff against the version that was live before it
    000007.json   number, author, time, source, sha256, previous, restores

The ``.json`` is written last and marks the version as complete, so a crash
half-way leaves no version behind. Versions are never rewritten: a rollback
publishes the older text again as a new version that ``restores`` it, and the
live plan is always the newest version. Publishing validates first; a plan
with problems raises :class:`~ivr.errors.DialplanError` and stores nothing.

Plain files on purpose: an admin can read, grep and diff them without the
server. Blocking; the server calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ivr.errors import DialplanError, HotlineError
from routing.dialplan import DialPlan, parse_dialplan

SOURCES = ("api", "file", "rollback")
_AUTHOR = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")
_VERSION_FILE = re.compile(r"^(\d{6})\.json$")


class DialplanStoreError(HotlineError):
    """The versions folder cannot be used, or a version does not exist."""


class NothingToRollBack(DialplanStoreError):
    pass


class UnknownVersion(DialplanStoreError, LookupError):
    pass


@dataclass(frozen=True)
class PlanVersion:
    number: int
    author: str
    published_at: str
    source: str  # one of SOURCES
    sha256: str
    previous: int | None = None  # the version live when this one was published
    restores: int | None = None  # a rollback: the version whose text it is
    summary: str = ""  # "3 menus, 5 desks"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Published:
    """The outcome of a publish: the live version and its validated plan."""

    version: PlanVersion
    plan: DialPlan
    created: bool  # False: the text was already live, nothing was stored


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_author(author: str) -> str:
    if not isinstance(author, str) or not _AUTHOR.match(author.strip() or "\x00"):
        raise ValueError("author: 1 to 100 printable characters")
    return author.strip()


class DialplanStore:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        # One publisher at a time: numbers are allocated from what is on disk.
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------

    def versions(self) -> list[PlanVersion]:
        """Every complete version, oldest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for entry in sorted(os.listdir(self.folder)):
            if _VERSION_FILE.match(entry):
                found.append(self._meta(self.folder / entry))
        return found

    def latest(self) -> PlanVersion | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def get(self, number: int) -> PlanVersion:
        path = self._path(number, "json")
        if not path.exists():
            raise UnknownVersion(f"no dial plan version {number}")
        return self._meta(path)

    def text(self, number: int) -> str:
        self.get(number)
        return self._path(number, "yaml").read_text(encoding="utf-8")

    def diff(self, number: int) -> str:
        self.get(number)
        return self._path(number, "diff").read_text(encoding="utf-8")

    def diff_against(self, number: int, text: str, label: str = "proposed") -> str:
        """Unified diff from version ``number`` to ``text``."""
        return unified_diff(self.text(number), text, f"v{number}", label)

    # -- writing ------------------------------------------------------------------

    def publish(
        self,
        text: str,
        author: str,
        *,
        source: str = "api",
        filename: str = "dialplan.yaml",
        restores: int | None = None,
    ) -> Published:
        """Validate ``text`` and store it as the new live version.

        Raises DialplanError (nothing stored) when the plan has problems.
        Publishing the live text again stores nothing and returns the live
        version with ``created=False``.
        """
        author = check_author(author)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}")
        plan = parse_dialplan(text, filename)
        sha = digest(text)
        with self._lock:
            live = self.latest()
            if live is not None and live.sha256 == sha:
                return Published(live, plan, created=False)
            number = live.number + 1 if live else 1
            before = self.text(live.number) if live else ""
            version = PlanVersion(
                number=number,
                author=author,
                published_at=now_iso(),
                source=source,
                sha256=sha,
                previous=live.number if live else None,
                restores=restores,
                summary=f"{len(plan.menus)} menus, {len(plan.desks)} desks",
            )
            self.folder.mkdir(parents=True, exist_ok=True)
            label = f"v{live.number}" if live else "(nothing)"
            _write(self._path(number, "yaml"), text)
            _write(
                self._path(number, "diff"),
                unified_diff(before, text, label, f"v{number}"),
            )
            _write(self._path(number, "json"), json.dumps(version.to_dict(), indent=1))
        return Published(version, plan, created=True)

    def rollback_target(self, to: int | None = None) -> PlanVersion:
        """The version a rollback would restore: ``to``, or the one before live."""
        live = self.latest()
        if live is None:
            raise NothingToRollBack("no dial plan has been published yet")
        if to is not None:
            target = self.get(to)
            if target.sha256 == live.sha256:
                raise NothingToRollBack(f"version {to} is what is live already")
            return target
        # Undo steps: rolling back a rollback goes one version further back.
        base = self.get(live.restores) if live.restores is not None else live
        if base.previous is None:
            raise NothingToRollBack(
                f"version {base.number} is the first: there is nothing before it"
            )
        return self.get(base.previous)

    def rollback(self, author: str, to: int | None = None) -> Published:
        """Publish an earlier version's text again (validated like any other)."""
        target = self.rollback_target(to)
        return self.publish(
            self.text(target.number),
            author,
            source="rollback",
            filename=f"v{target.number}.yaml",
            restores=target.number,
        )

    # -- files --------------------------------------------------------------------

    def _path(self, number: int, suffix: str) -> Path:
        if not isinstance(number, int) or number < 1:
            raise UnknownVersion(f"no dial plan version {number!r}")
        return self.folder / f"{number:06d}.{suffix}"

    @staticmethod
    def _meta(path: Path) -> PlanVersion:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return PlanVersion(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise DialplanStoreError(
                f"{path}: unreadable version record: {exc}"
            ) from exc


def unified_diff(before: str, after: str, old: str, new: str) -> str:
    def lines(text: str) -> list[str]:
        # A last line without its newline would run into the next diff line.
        return (text if text.endswith("\n") or not text else text + "\n").splitlines(
            keepends=True
        )

    return "".join(
        difflib.unified_diff(lines(before), lines(after), fromfile=old, tofile=new)
    )


def _write(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


__all__ = [
    "DialplanError",
    "DialplanStore",
    "DialplanStoreError",
    "NothingToRollBack",
    "PlanVersion",
    "Published",
    "UnknownVersion",
    "digest",
    "unified_diff",
]
