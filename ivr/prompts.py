"""Prompt files: recorded ones first, spoken placeholders for the rest.

Admins record prompts as ``recordings/prompts/<lang>/<name>.wav``. A prompt a
dial plan names but nobody has recorded yet gets a placeholder spoken by
espeak-ng (Mandarin voice) from the prompt's text, kept apart under the data
folder so it is never mistaken for a recording. Every file Asterisk plays is
8 kHz mono 16-bit PCM WAV.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from pydub import AudioSegment

from ivr import log
from ivr.errors import HotlineError

TELEPHONY_RATE = 8000
ESPEAK_VOICE = "cmn"


def to_telephony(audio: AudioSegment) -> AudioSegment:
    return audio.set_frame_rate(TELEPHONY_RATE).set_channels(1).set_sample_width(2)


def build_placeholders(plan, recordings: Path, out: Path) -> list[tuple[str, str]]:
    """Speak every prompt that has no recording; returns the (lang, name) made.

    Idempotent: a placeholder is remade only when its text changed.
    """
    from routing.dialplan_model import required_recordings

    if shutil.which("espeak-ng") is None:
        raise HotlineError(
            "espeak-ng is needed to make placeholder prompts: apt-get install espeak-ng"
        )
    made = []
    for language, name in sorted(required_recordings(plan)):
        if (recordings / language / f"{name}.wav").exists():
            continue
        _, text = plan.prompts[name].text_in(language)
        if speak_if_changed(text, out / language / f"{name}.wav"):
            made.append((language, name))
    if made:
        log.pbx.info("made %d placeholder prompts in %s", len(made), out)
    return made


def speak(text: str, target: Path) -> None:
    """Speak Mandarin ``text`` into ``target``, a telephony WAV (blocking)."""
    _speak(text, target)


def _speak(text: str, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", ESPEAK_VOICE, "-s", "190", "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        # pydub leaves files open unless handed file objects; export returns one.
        with raw.open("rb") as source:
            audio = to_telephony(AudioSegment.from_file(source, format="wav"))
        audio.export(str(target), format="wav").close()


def speak_if_changed(text: str, target: Path) -> bool:
    """Speak ``text`` into ``target`` unless it already holds that text.

    A stamp beside the file keeps the text's digest, so a placeholder is
    remade only when its text changes. True when the file was (re)made.
    """
    stamp = target.with_suffix(".txt")
    digest = hashlib.sha256(text.encode()).hexdigest()
    if target.exists() and stamp.exists() and stamp.read_text() == digest:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    speak(text, target)
    stamp.write_text(digest)
    return True


def is_placeholder(name: str, language: str, recordings: Path) -> bool:
    return not (recordings / language / f"{name}.wav").exists()
