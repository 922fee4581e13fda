"""An uploaded recording in any common format -> a telephony prompt.

WAV (PCM, float, extensible header), MP3, OGG, M4A and FLAC at any rate,
channel count and depth become 8 kHz mono 16-bit PCM WAV: silence trimmed at
both ends, loudness normalised, never clipped.

ffprobe and ffmpeg read the upload; Python's ``wave`` module never does. It
refuses the extensible header (format tag 0xFFFE) and float WAV (tag 3) before
Python 3.12, and pydub's "safe WAV" path goes through it (pydub issues 57 and
129). Both ffmpeg passes only accept the listed containers and the ``file``
protocol, so a playlist or a concat script posing as audio cannot make ffmpeg
open anything else. pydub then works on raw samples we produced ourselves.

Blocking (subprocesses, large buffers): run :func:`convert` in a thread.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from pydub import AudioSegment
from pydub.silence import detect_leading_silence

from ivr.errors import HotlineError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_SECONDS = 300.0
RATE = 8000
TARGET_RMS_DBFS = -20.0  # speech prompts at a steady level across the plan
PEAK_CEILING_DBFS = -1.0
SILENCE_BELOW_PEAK_DB = 40.0  # quieter than the peak by this much is silence
SILENCE_FLOOR_DBFS = -70.0
MIN_SOUND_MS = 100

# ffmpeg's names for the containers we take (mov covers mp4 and m4a).
CONTAINERS = {
    "wav": "WAV",
    "mp3": "MP3",
    "ogg": "OGG",
    "mov,mp4,m4a,3gp,3g2,mj2": "M4A",
    "flac": "FLAC",
}
_WHITELIST = [
    "-format_whitelist",
    "wav,mp3,ogg,mov,flac",
    "-protocol_whitelist",
    "file",
]
_TIMEOUT = 120  # seconds for one ffmpeg run; a 5-minute file takes about one


class PromptRejected(HotlineError):
    """The upload cannot become a prompt; ``error`` is a stable id for the API."""

    def __init__(self, status: int, error: str, message: str, **details: object):
        self.status = status
        self.error = error
        self.details = details
        super().__init__(message)


@dataclass(frozen=True)
class SourceFormat:
    container: str  # WAV, MP3, OGG, M4A, FLAC
    codec: str
    sample_rate: int
    channels: int
    bits: int  # 0 when the codec has no fixed depth (MP3, AAC, Vorbis)
    seconds: float

    def describe(self) -> str:
        depth = f", {self.bits}-bit" if self.bits else ""
        return (
            f"{self.container} {self.codec}, {self.sample_rate} Hz, "
            f"{self.channels} ch{depth}, {self.seconds:.3f} s"
        )


@dataclass(frozen=True)
class Converted:
    wav: bytes  # 8 kHz mono 16-bit PCM WAV
    duration_ms: int
    source: SourceFormat
    trimmed_ms: tuple[int, int]  # silence cut at the start and at the end
    gain_db: float

    def report(self) -> dict:
        return {
            "duration_ms": self.duration_ms,
            "source": asdict(self.source),
            "trimmed_ms": list(self.trimmed_ms),
            "gain_db": round(self.gain_db, 2),
        }


def convert(data: bytes, workdir: Path) -> Converted:
    """Convert an upload; ``workdir`` is a private folder for the source file."""
    if not data:
        raise PromptRejected(400, "empty-upload", "the uploaded file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise PromptRejected(
            413,
            "upload-too-large",
            f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
            limit_bytes=MAX_UPLOAD_BYTES,
        )
    _check_riff_sizes(data)
    source = workdir / "upload"
    source.write_bytes(data)
    found = probe(source)
    peak = _measure_peak(source)
    # Bring the peak under the ceiling while still in floating point: a float
    # source may exceed full scale, and 16-bit samples would clip it.
    pre_gain = min(0.0, PEAK_CEILING_DBFS - peak) if math.isfinite(peak) else 0.0
    raw = _decode(source, pre_gain)
    audio = AudioSegment(data=raw, sample_width=2, frame_rate=RATE, channels=1)
    if len(audio) / 1000 > MAX_SECONDS + 0.5:
        raise _too_long(len(audio) / 1000)
    trimmed, cut = _trim(audio)
    if len(trimmed) < MIN_SOUND_MS:
        raise PromptRejected(
            422, "silent-audio", "the recording is silent: nothing above the noise"
        )
    gain = min(TARGET_RMS_DBFS - trimmed.dBFS, PEAK_CEILING_DBFS - trimmed.max_dBFS)
    normalised = trimmed.apply_gain(gain)
    out = io.BytesIO()
    normalised.export(out, format="wav")
    return Converted(out.getvalue(), len(normalised), found, cut, pre_gain + gain)


def probe(path: Path) -> SourceFormat:
    """What the upload is, from ffprobe; PromptRejected when it is not audio."""
    done = _run(
        [
            "ffprobe",
            "-v",
            "error",
            *_WHITELIST,
            "-show_entries",
            "format=format_name,duration:stream=codec_type,codec_name,sample_rate,"
            "channels,bits_per_sample,bits_per_raw_sample",
            "-of",
            "json",
            str(path),
        ],
    )
    if done.returncode != 0:
        raise PromptRejected(
            415,
            "not-audio",
            "the file is not audio in a format we take (WAV, MP3, OGG, M4A, FLAC)",
            reason=_reason(done.stderr, path),
        )
    info = json.loads(done.stdout or "{}")
    container = CONTAINERS.get(info.get("format", {}).get("format_name", ""))
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if container is None or not streams:
        raise PromptRejected(
            415,
            "not-audio",
            "the file holds no audio in a format we take (WAV, MP3, OGG, M4A, FLAC)",
        )
    stream = streams[0]
    rate = _int(stream.get("sample_rate"))
    channels = _int(stream.get("channels"))
    bits = _int(stream.get("bits_per_raw_sample")) or _int(
        stream.get("bits_per_sample")
    )
    seconds = _float(info["format"].get("duration"))
    if not 1000 <= rate <= 768_000 or not 1 <= channels <= 32 or not 0 <= bits <= 64:
        raise PromptRejected(
            422,
            "bad-audio-header",
            "the file's header makes no sense for a recording",
            sample_rate=rate,
            channels=channels,
            bits=bits,
        )
    if seconds is not None and seconds > MAX_SECONDS:
        raise _too_long(seconds)
    return SourceFormat(
        container=container,
        codec=str(stream.get("codec_name", "?")),
        sample_rate=rate,
        channels=channels,
        bits=bits,
        seconds=seconds or 0.0,
    )


# Sizes writers put when they do not know the length yet, writing to a pipe:
# 0, 0xFFFFFFFF (ffmpeg) or 0x7FFFF000 (sox). No honest 20 MB upload claims 2 GB.
_UNKNOWN_FROM = 0x7FFFF000


def _check_riff_sizes(data: bytes) -> None:
    """Refuse a WAV whose chunk sizes claim more than the file holds.

    ffmpeg would quietly decode what is there; a header that lies about its
    sizes is a truncated or corrupt upload, and the admin should know. Only
    the chunk headers are read here, never the format (that is ffprobe's job).
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(data):
        kind = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        end = offset + 8 + size
        if kind == b"data":
            streamed = size == 0 or size >= _UNKNOWN_FROM
            if not streamed and end > len(data) + 1:
                raise PromptRejected(
                    422,
                    "bad-audio-header",
                    f"the WAV header promises {size} bytes of audio but the file "
                    f"holds {len(data) - offset - 8}: it is truncated or corrupt",
                    claimed_bytes=size,
                    present_bytes=len(data) - offset - 8,
                )
            return
        if end > len(data):
            raise PromptRejected(
                422,
                "bad-audio-header",
                f"the WAV chunk {kind.decode('latin-1')!r} claims {size} bytes, "
                "past the end of the file",
                chunk=kind.decode("latin-1"),
                claimed_bytes=size,
            )
        offset = end + size % 2


def _filters(gain_db: float = 0.0) -> str:
    chain = [f"aresample={RATE}", "aformat=sample_fmts=flt:channel_layouts=mono"]
    if gain_db:
        chain.append(f"volume={gain_db:.3f}dB")
    return ",".join(chain)


def _ffmpeg_input(path: Path, level: str = "error") -> list[str]:
    return ["ffmpeg", "-nostdin", "-v", level, *_WHITELIST, "-i", str(path)]


def _measure_peak(path: Path) -> float:
    """Peak level in dBFS after the downmix to mono 8 kHz (may exceed 0)."""
    done = _run(
        [
            # volumedetect reports at the info level.
            *_ffmpeg_input(path, "info"),
            "-map",
            "0:a:0",
            "-t",
            str(MAX_SECONDS + 1),
            "-af",
            _filters() + ",volumedetect",
            "-f",
            "null",
            "-",
        ],
    )
    if done.returncode != 0:
        raise _undecodable(done.stderr, path)
    found = re.search(r"max_volume:\s*(-?[0-9.]+|-inf) dB", done.stderr)
    if found is None or found.group(1) == "-inf":
        return -math.inf
    return float(found.group(1))


def _decode(path: Path, gain_db: float) -> bytes:
    done = _run(
        [
            *_ffmpeg_input(path),
            "-map",
            "0:a:0",
            "-t",
            str(MAX_SECONDS + 1),
            "-af",
            _filters(gain_db),
            "-ac",
            "1",
            "-ar",
            str(RATE),
            "-c:a",
            "pcm_s16le",
            "-f",
            "s16le",
            "pipe:1",
        ],
        binary=True,
    )
    if done.returncode != 0:
        raise _undecodable(done.stderr, path)
    return done.stdout


def _trim(audio: AudioSegment) -> tuple[AudioSegment, tuple[int, int]]:
    threshold = max(SILENCE_FLOOR_DBFS, audio.max_dBFS - SILENCE_BELOW_PEAK_DB)
    lead = detect_leading_silence(audio, silence_threshold=threshold, chunk_size=5)
    tail = detect_leading_silence(
        audio.reverse(), silence_threshold=threshold, chunk_size=5
    )
    if lead + tail >= len(audio):
        return audio[:0], (len(audio), 0)
    return audio[lead : len(audio) - tail], (lead, tail)


def _run(command: list[str], *, binary: bool = False) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
            **({} if binary else {"text": True, "errors": "replace"}),
        )
    except subprocess.TimeoutExpired:
        raise PromptRejected(
            422, "undecodable-audio", "decoding the file took too long"
        ) from None
    except FileNotFoundError:
        raise HotlineError(
            f"{command[0]} is needed to convert prompts: apt-get install ffmpeg"
        ) from None


def _undecodable(stderr: str | bytes, path: Path) -> PromptRejected:
    return PromptRejected(
        422,
        "undecodable-audio",
        "the audio in the file cannot be decoded",
        reason=_reason(stderr, path),
    )


def _reason(stderr: str | bytes, path: Path) -> str:
    """ffmpeg's last complaint, without our folder names."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "unknown"
    return last.replace(str(path), "upload")[:300]


def _too_long(seconds: float) -> PromptRejected:
    return PromptRejected(
        422,
        "audio-too-long",
        f"the recording lasts {seconds:.0f} s; a prompt may last at most "
        f"{MAX_SECONDS / 60:.0f} minutes",
        seconds=round(seconds, 3),
        limit_seconds=MAX_SECONDS,
    )


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _float(value: object) -> float | None:
    try:
        result = float(str(value))
    except ValueError:
        return None
    return result if math.isfinite(result) else None
