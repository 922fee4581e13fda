"""The recorded prompts: ``<folder>/<language>/<name>.wav``, and their copy in Asterisk.

An upload is converted in a private staging folder inside the prompts folder,
then moved into place in one rename, then copied into the folder Asterisk
plays from, so the next call hears it. A refused upload leaves nothing behind.
Names are checked before any path is built: nothing is ever written outside
the two folders.

Blocking (conversion, copies): the admin API calls it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ivr import log
from ivr.prompt_convert import Converted, PromptRejected, convert
from routing.dialplan_model import LANGUAGE_PATTERN, NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)
_LANGUAGE = re.compile(LANGUAGE_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
STAGING_PREFIX = ".upload-"


@dataclass(frozen=True)
class PromptFile:
    language: str
    name: str
    size: int
    duration_ms: int

    def to_dict(self) -> dict:
        return {
            "language": self.language,
            "name": self.name,
            "bytes": self.size,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True)
class Added:
    prompt: PromptFile
    converted: Converted
    replaced: bool  # a recording of that name existed and was replaced
    installed: bool  # copied where Asterisk plays it


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise PromptRejected(
            400,
            "bad-prompt-name",
            "a prompt name is lowercase letters, digits, '-' and '_' (at most 64), "
            "as in the dial plan",
            name=str(name)[:100],
        )
    return name


def check_language(language: object) -> str:
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise PromptRejected(
            400,
            "bad-language",
            "a language is a code such as zh, bo or ii",
            language=str(language)[:20],
        )
    return language


def check_filename(filename: str) -> str:
    """An uploaded file's own name: refused with '..', slashes or control codes."""
    if (
        ".." in filename
        or "/" in filename
        or "\\" in filename
        or _CONTROL.search(filename)
        or len(filename) > 255
    ):
        raise PromptRejected(
            400,
            "bad-file-name",
            "the file name may not contain '..', slashes or control characters",
            filename=_CONTROL.sub("?", filename)[:100],
        )
    return filename


def name_from_filename(filename: str) -> str:
    """``welcome.mp3`` -> ``welcome``: the prompt name when none is given."""
    return check_name(check_filename(filename).rsplit(".", 1)[0])


class PromptLibrary:
    def __init__(self, folder: Path, install_dir: Path | None = None) -> None:
        self.folder = Path(folder)
        self.install_dir = Path(install_dir) if install_dir is not None else None

    def path(self, language: str, name: str) -> Path:
        return self.folder / check_language(language) / f"{check_name(name)}.wav"

    def exists(self, language: str, name: str) -> bool:
        return self.path(language, name).is_file()

    def list(self) -> list[PromptFile]:
        found = []
        if not self.folder.is_dir():
            return found
        for language_dir in sorted(self.folder.iterdir()):
            if not language_dir.is_dir() or not _LANGUAGE.match(language_dir.name):
                continue
            for wav in sorted(language_dir.glob("*.wav")):
                if _NAME.match(wav.stem):
                    found.append(self._describe(language_dir.name, wav))
        return found

    def recorded(self) -> set[tuple[str, str]]:
        return {(p.language, p.name) for p in self.list()}

    def get(self, language: str, name: str) -> PromptFile:
        path = self.path(language, name)
        if not path.is_file():
            raise PromptRejected(
                404,
                "prompt-not-found",
                f"no recording {language}/{name}",
                language=language,
                name=name,
            )
        return self._describe(language, path)

    def add(self, data: bytes, language: str, name: str) -> Added:
        """Convert ``data`` and make it the recording ``language/name``."""
        target = self.path(language, name)
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(
            prefix=STAGING_PREFIX, dir=self.folder
        ) as staging:
            converted = convert(data, Path(staging))
            log.web.info(
                "prompt %s/%s: source %s; %d ms after trimming %s ms, gain %.1f dB",
                language,
                name,
                converted.source.describe(),
                converted.duration_ms,
                "+".join(str(ms) for ms in converted.trimmed_ms),
                converted.gain_db,
            )
            staged = Path(staging) / "prompt.wav"
            staged.write_bytes(converted.wav)
            staged.chmod(0o644)
            replaced = target.exists()
            target.parent.mkdir(exist_ok=True)
            staged.replace(target)  # same file system: one atomic rename
        installed = self.install(language, name)
        return Added(self._describe(language, target), converted, replaced, installed)

    def install(self, language: str, name: str) -> bool:
        """Copy one recording where Asterisk plays it; False when not configured."""
        if self.install_dir is None:
            return False
        source = self.path(language, name)
        dest = self.install_dir / language / f"{name}.wav"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():
            dest.unlink()  # a link to a stock sound: replace the link only
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o644)
        tmp.replace(dest)
        return True

    def delete(self, language: str, name: str) -> bool:
        """Remove a recording and its copy in Asterisk; False if it did not exist."""
        path = self.path(language, name)
        if not path.is_file():
            return False
        path.unlink()
        if self.install_dir is not None:
            copy = self.install_dir / language / f"{name}.wav"
            if copy.is_file() and not copy.is_symlink():
                copy.unlink()
        return True

    def sweep_staging(self) -> int:
        """Remove staging folders a crash left behind."""
        removed = 0
        if self.folder.is_dir():
            for entry in self.folder.iterdir():
                if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
        return removed

    @staticmethod
    def _describe(language: str, path: Path) -> PromptFile:
        return PromptFile(
            language, path.stem, path.stat().st_size, wav_duration_ms(path)
        )


def wav_duration_ms(path: Path) -> int:
    """Duration of one of our own PCM WAV files, from its fmt and data chunks."""
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        byte_rate = 0
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return 0
            kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if kind == b"fmt ":
                fmt = handle.read(size)
                byte_rate = struct.unpack("<I", fmt[8:12])[0] if size >= 12 else 0
                handle.seek(size % 2, os.SEEK_CUR)
            elif kind == b"data":
                return size * 1000 // byte_rate if byte_rate else 0
            else:
                handle.seek(size + size % 2, os.SEEK_CUR)
