"""How loud a call recording is: tells a caller who hears a prompt from one
who hears silence.
"""

from __future__ import annotations

import array
import math
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

FRAME_SECONDS = 0.02
# 16-bit samples: about -36 dBFS.  Line noise and comfort noise stay below it,
# speech and tones do not.
DEFAULT_THRESHOLD = 500


@dataclass(frozen=True)
class Loudness:
    seconds: float  # length of the recording
    peak: int  # largest absolute sample, 0..32768
    rms: float  # over the whole recording
    sounding_seconds: float  # total length of the 20 ms frames above threshold

    @property
    def silent(self) -> bool:
        return self.sounding_seconds == 0


def loudness(path: str | Path, *, threshold: int = DEFAULT_THRESHOLD) -> Loudness:
    """Measure a 16-bit PCM WAV file (as the softphones record them)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16-bit PCM")
        rate = wav.getframerate()
        channels = wav.getnchannels()
        samples = array.array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return Loudness(0.0, 0, 0.0, 0.0)
    frame = max(1, int(rate * FRAME_SECONDS) * channels)
    sounding = 0
    total = 0
    for start in range(0, len(samples), frame):
        chunk = samples[start : start + frame]
        energy = sum(s * s for s in chunk)
        total += energy
        if math.sqrt(energy / len(chunk)) > threshold:
            sounding += len(chunk)
    per_second = rate * channels
    return Loudness(
        seconds=len(samples) / per_second,
        peak=max(abs(min(samples)), abs(max(samples))),
        rms=math.sqrt(total / len(samples)),
        sounding_seconds=sounding / per_second,
    )
