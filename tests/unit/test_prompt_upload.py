"""Prompt uploads: every format becomes 8 kHz mono 16-bit, and every refusal.

Fixtures are made here, in tmp folders: with sox and ffmpeg, and the two WAV
headers of case 22 (extensible 96 kHz 24-bit stereo, float with a fact chunk)
byte by byte. Outputs are read with a small RIFF reader, not ``wave``.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import subprocess
import threading
from array import array
from pathlib import Path

import pytest

import ivr.prompt_library
from ivr.prompt_convert import MAX_UPLOAD_BYTES
from ivr.web.auth import Role
from tests.support.admin import admin_api, files_under

pytestmark = pytest.mark.timeout(60)

PCM_GUID = bytes.fromhex("0100000000001000800000aa00389b71")


@pytest.fixture
async def admin(tmp_path):
    async for api in admin_api(tmp_path / "api"):
        yield api


# --- fixtures ---------------------------------------------------------------------


def sine(seconds: float, rate: int, amplitude: float = 0.5) -> list[float]:
    return [
        amplitude * math.sin(2 * math.pi * 440 * i / rate)
        for i in range(round(seconds * rate))
    ]


def riff(fmt: bytes, data: bytes, extra: bytes = b"") -> bytes:
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def extensible_wav() -> bytes:
    """Case 22, input 1: 1.000 s, 2 channels, 96000 Hz, 24 bits, tag 0xFFFE."""
    fmt = struct.pack("<HHIIHH", 0xFFFE, 2, 96000, 576000, 6, 24)
    fmt += struct.pack("<HHI", 22, 24, 3) + PCM_GUID
    assert len(fmt) == 40
    frames = bytearray()
    for value in sine(1.0, 96000):
        sample = round(value * 8_388_607).to_bytes(3, "little", signed=True)
        frames += sample + sample
    return riff(fmt, bytes(frames))


def float_wav() -> bytes:
    """Case 22, input 2: 1.000 s, mono, 44100 Hz, 32-bit float, a fact chunk."""
    samples = array("f", sine(1.0, 44100))
    fmt = struct.pack("<HHIIHHH", 3, 1, 44100, 44100 * 4, 4, 32, 0)
    fact = b"fact" + struct.pack("<II", 4, len(samples))
    return riff(fmt, samples.tobytes(), extra=fact)


def pcm_wav(seconds: float = 1.0, rate: int = 8000, data: bytes | None = None) -> bytes:
    if data is None:
        data = array("h", (round(v * 32767) for v in sine(seconds, rate))).tobytes()
    return riff(struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16), data)


def sox_tone(rate: int, channels: int, bits: int, kind: str) -> bytes:
    """One second of a 440 Hz tone at half scale, as sox writes it to stdout."""
    return subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            str(rate),
            "-c",
            str(channels),
            "-b",
            str(bits),
            "-t",
            kind,
            "-",
            "synth",
            "1.0",
            "sine",
            "440",
            "vol",
            "0.5",
        ],
        check=True,
        capture_output=True,
    ).stdout


def encoded(
    tmp: Path, suffix: str, rate: int, channels: int, codec: list[str]
) -> bytes:
    source = tmp / f"source-{suffix}.wav"
    source.write_bytes(sox_tone(rate, channels, 16, "wav"))
    out = tmp / f"tone.{suffix}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), *codec, str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def formats(tmp: Path) -> dict[str, bytes]:
    pcm = tmp / "pcm.wav"  # to a file: sox then writes the real length
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "22050",
            "-c",
            "1",
            "-b",
            "16",
            str(pcm),
            "synth",
            "1.0",
            "sine",
            "440",
            "vol",
            "0.5",
        ],
        check=True,
        capture_output=True,
    )
    return {
        "wav-pcm-22k": pcm.read_bytes(),
        "wav-float-fact": float_wav(),
        "wav-extensible-96k-24bit-stereo": extensible_wav(),
        "mp3": encoded(tmp, "mp3", 44100, 2, ["-c:a", "libmp3lame", "-b:a", "64k"]),
        "ogg": encoded(tmp, "ogg", 48000, 2, ["-c:a", "libvorbis"]),
        "m4a": encoded(tmp, "m4a", 44100, 1, ["-c:a", "aac"]),
        "flac": sox_tone(96000, 2, 24, "flac"),
    }


def read_wav(data: bytes) -> tuple[int, int, int, int, array]:
    """(format tag, channels, rate, bits, samples) of a PCM WAV, chunk by chunk."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    offset, fmt = 12, None
    while offset < len(data):
        kind, size = (
            data[offset : offset + 4],
            struct.unpack_from("<I", data, offset + 4)[0],
        )
        body = data[offset + 8 : offset + 8 + size]
        if kind == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", body)
        elif kind == b"data":
            assert fmt is not None
            samples = array("h")
            samples.frombytes(body)
            return fmt[0], fmt[1], fmt[2], fmt[5], samples
        offset += 8 + size + size % 2
    raise AssertionError("no data chunk")


def rms_dbfs(samples: array) -> float:
    power = sum(s * s for s in samples) / len(samples)
    return 10 * math.log10(power / 32768**2)


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body, built by hand so file names go out unaltered
    (aiohttp's client would percent-encode slashes and refuse control codes)."""
    boundary = "yht-test-boundary"
    body = bytearray()
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
            disposition += f'; filename="{quoted}"'
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


async def post_parts(admin, parts):
    body, content_type = multipart(parts)
    headers = {**admin.auth(Role.ADMIN), "Content-Type": content_type}
    return await admin.client.post("/prompts", data=io.BytesIO(body), headers=headers)


async def upload(admin, data: bytes, filename: str = "tone.wav", **fields):
    parts = [(key, None, value.encode()) for key, value in fields.items()]
    return await post_parts(admin, [*parts, ("file", filename, data)])


# --- every format -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, bytes]:
    return formats(tmp_path_factory.mktemp("fixtures"))


@pytest.mark.parametrize(
    "kind",
    [
        "wav-pcm-22k",
        "wav-float-fact",
        "wav-extensible-96k-24bit-stereo",
        "mp3",
        "ogg",
        "m4a",
        "flac",
    ],
)
async def test_every_format_becomes_a_telephony_prompt(admin, sources, kind, caplog):
    with caplog.at_level(logging.INFO, "yihaotong.web"):
        response = await upload(admin, sources[kind], f"{kind}.bin", name="welcome")
    body = await response.json()
    assert response.status == 201, body
    stored = (admin.prompts_dir / "zh" / "welcome.wav").read_bytes()
    tag, channels, rate, bits, samples = read_wav(stored)
    assert (tag, channels, rate, bits) == (1, 1, 8000, 16)
    duration_ms = len(samples) / 8
    assert abs(duration_ms - 1000) <= 20, duration_ms
    assert body["prompt"]["duration_ms"] == pytest.approx(duration_ms, abs=1)
    assert max(abs(s) for s in samples) < 32767  # never clipped
    assert body["installed"] and body["used_by_live_plan"]
    assert (admin.install_dir / "zh" / "welcome.wav").read_bytes() == stored
    assert "prompt zh/welcome: source " in caplog.text  # the source format, logged


async def test_case_22_headers_are_read_as_they_are(admin, sources):
    response = await upload(admin, sources["wav-extensible-96k-24bit-stereo"])
    source = (await response.json())["conversion"]["source"]
    assert source == {
        "container": "WAV",
        "codec": "pcm_s24le",
        "sample_rate": 96000,
        "channels": 2,
        "bits": 24,
        "seconds": 1.0,
    }
    response = await upload(admin, sources["wav-float-fact"], "float.wav")
    source = (await response.json())["conversion"]["source"]
    assert (source["codec"], source["sample_rate"], source["bits"]) == (
        "pcm_f32le",
        44100,
        32,
    )


async def test_silence_is_trimmed_and_loudness_normalised(admin):
    half = b"\0" * 8000  # 0.5 s of silence at 8 kHz
    quiet = array("h", (round(v * 32767) for v in sine(1.0, 8000, 0.05))).tobytes()
    loud = array("h", (round(v * 32767) for v in sine(1.0, 8000, 0.8))).tobytes()
    levels = []
    for name, tone in (("quiet", quiet), ("loud", loud)):
        response = await upload(admin, pcm_wav(data=half + tone + half), f"{name}.wav")
        body = await response.json()
        assert abs(body["conversion"]["trimmed_ms"][0] - 500) <= 10
        assert abs(body["conversion"]["trimmed_ms"][1] - 500) <= 10
        assert abs(body["prompt"]["duration_ms"] - 1000) <= 20
        *_, samples = read_wav((admin.prompts_dir / "zh" / f"{name}.wav").read_bytes())
        levels.append(rms_dbfs(samples))
    assert levels == pytest.approx([-20.0, -20.0], abs=0.5)


async def test_conversion_runs_off_the_event_loop(admin, sources, monkeypatch):
    threads = []
    real = ivr.prompt_library.convert

    def spy(data, workdir):
        threads.append(threading.current_thread())
        return real(data, workdir)

    monkeypatch.setattr(ivr.prompt_library, "convert", spy)
    response = await upload(admin, sources["mp3"], "x.mp3")
    assert response.status == 201
    assert threads and threads[0] is not threading.main_thread()


async def test_a_new_recording_replaces_the_old_one(admin, sources):
    assert (await upload(admin, sources["ogg"], "menu.ogg")).status == 201
    response = await upload(admin, sources["flac"], "menu.flac")
    body = await response.json()
    assert response.status == 200 and body["replaced"] is True
    assert body["prompt"]["name"] == "menu"  # named after the file
    assert files_under(admin.prompts_dir) == ["zh", "zh/menu.wav"]


# --- refusals: a clear 4xx and nothing written ------------------------------------


def long_wav() -> bytes:
    return pcm_wav(data=b"\0" * (301 * 8000 * 2))


def truncated_wav() -> bytes:
    data = pcm_wav(seconds=1.0)
    return data[:40] + struct.pack("<I", 10_000_000) + data[44:]


@pytest.mark.parametrize(
    ("make", "filename", "fields", "status", "error"),
    [
        (lambda: b"hello, this is not audio\n" * 40, "x.wav", {}, 415, "not-audio"),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 500, "x.png", {}, 415, "not-audio"),
        (
            lambda: b"#EXTM3U\n#EXTINF:1,\nfile:///etc/hostname\n",
            "x.mp3",
            {},
            415,
            "not-audio",
        ),
        (lambda: b"", "x.wav", {}, 400, "empty-upload"),
        (long_wav, "x.wav", {}, 422, "audio-too-long"),
        (lambda: b"\0" * (MAX_UPLOAD_BYTES + 1), "x.wav", {}, 413, "upload-too-large"),
        (
            lambda: pcm_wav()[:24] + struct.pack("<I", 1) + pcm_wav()[28:],
            "x.wav",
            {},
            422,
            "bad-audio-header",
        ),
        (
            lambda: pcm_wav()[:24] + struct.pack("<I", 4_000_000_000) + pcm_wav()[28:],
            "x.wav",
            {},
            415,
            "not-audio",
        ),
        (truncated_wav, "x.wav", {}, 422, "bad-audio-header"),
        (lambda: pcm_wav(data=b"\0" * 16000), "x.wav", {}, 422, "silent-audio"),
        (pcm_wav, "../welcome.wav", {}, 400, "bad-file-name"),
        (pcm_wav, "sounds/welcome.wav", {}, 400, "bad-file-name"),
        (pcm_wav, "sounds\\welcome.wav", {}, 400, "bad-file-name"),
        (pcm_wav, "wel\x07come.wav", {}, 400, "bad-multipart"),
        (pcm_wav, "Welcome Message.wav", {}, 400, "bad-prompt-name"),
        (pcm_wav, "x.wav", {"name": "../../etc/passwd"}, 400, "bad-prompt-name"),
        (pcm_wav, "x.wav", {"language": "../zh"}, 400, "bad-language"),
    ],
)
async def test_refusals_write_nothing(admin, make, filename, fields, status, error):
    response = await upload(admin, make(), filename, **fields)
    body = await response.json()
    assert (response.status, body["error"]) == (status, error), body
    assert set(body) == {"status", "message", "error", "details"}
    assert files_under(admin.prompts_dir) == []
    assert files_under(admin.install_dir) == []


async def test_an_upload_needs_multipart_and_a_file(admin):
    response = await admin.client.post(
        "/prompts",
        data=pcm_wav(),
        headers={**admin.auth(), "Content-Type": "audio/wav"},
    )
    assert (await response.json())["error"] == "expected-multipart"
    response = await post_parts(admin, [("name", None, b"welcome"), ("x", None, b"")])
    assert (await response.json())["error"] == "missing-file"


async def test_a_wav_streamed_through_a_pipe_is_taken(admin):
    # sox and ffmpeg writing to a pipe cannot go back to fill in the length.
    streamed = sox_tone(22050, 1, 16, "wav")
    assert struct.unpack_from("<I", streamed, 40)[0] == 0x7FFFF000
    response = await upload(admin, streamed, "piped.wav")
    assert response.status == 201
    assert abs((await response.json())["prompt"]["duration_ms"] - 1000) <= 20


async def test_a_control_character_encoded_in_the_file_name_is_refused(admin):
    body, content_type = multipart([("file", "x.wav", pcm_wav())])
    # RFC 5987: aiohttp decodes filename*= for us, control characters and all.
    body = body.replace(b'filename="x.wav"', b"filename*=utf-8''wel%07come.wav")
    response = await admin.client.post(
        "/prompts",
        data=io.BytesIO(body),
        headers={**admin.auth(), "Content-Type": content_type},
    )
    assert (await response.json())["error"] == "bad-file-name"
    assert files_under(admin.prompts_dir) == []
