"""WAV reading and writing: PCM16 through wave, float and other encodings parsed by hand."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from anunzi_fast.errors import InvalidArgumentError
from anunzi_fast.wav import read_wav, write_wav


def test_pcm16_mono_round_trip(tmp_path: Path) -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 1234], np.int16)
    write_wav(tmp_path / "a.wav", samples, 16_000)
    with wave.open(str(tmp_path / "a.wav")) as check:  # the stdlib agrees on the format
        assert (check.getnchannels(), check.getsampwidth(), check.getframerate()) == (1, 2, 16_000)
    audio = read_wav(tmp_path / "a.wav")
    assert audio.sample_rate == 16_000 and audio.channels == 1
    assert audio.samples.dtype == np.int16
    np.testing.assert_array_equal(audio.samples, samples)


def test_float_stereo_round_trip(tmp_path: Path) -> None:
    samples = np.random.default_rng(0).uniform(-1, 1, (101, 2)).astype(np.float32)
    write_wav(tmp_path / "f.wav", samples, 44_100)
    audio = read_wav(tmp_path / "f.wav")
    assert audio.samples.dtype == np.float32 and audio.samples.shape == (101, 2)
    assert audio.duration == pytest.approx(101 / 44_100)
    np.testing.assert_array_equal(audio.samples, samples)


def riff(fmt: bytes, data: bytes, extra: bytes = b"") -> bytes:
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    body += b"data" + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_extensible_float64_and_odd_chunks(tmp_path: Path) -> None:
    values = np.array([0.5, -0.25, 1.0], "<f8")
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 8000, 64000, 8, 64) + struct.pack(
        "<HHI", 22, 64, 4) + struct.pack("<H", 3) + bytes(14)
    odd_chunk = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\x00"  # padded to even size
    (tmp_path / "x.wav").write_bytes(riff(fmt, values.tobytes(), odd_chunk))
    audio = read_wav(tmp_path / "x.wav")
    assert audio.samples.dtype == np.float64 and audio.sample_rate == 8000
    np.testing.assert_array_equal(audio.samples, values)


@pytest.mark.parametrize(("bits", "raw", "expected"), [
    (8, bytes([128, 255, 0]), [0.0, 127 / 128, -1.0]),
    (24, bytes([0, 0, 0x40, 0xFF, 0xFF, 0xFF]), [0.5, -1 / (1 << 23)]),
    (32, struct.pack("<ii", -(1 << 31), 1 << 30), [-1.0, 0.5]),
])
def test_other_pcm_widths(tmp_path: Path, bits: int, raw: bytes, expected: list[float]) -> None:
    width = bits // 8
    fmt = struct.pack("<HHIIHH", 1, 1, 16_000, 16_000 * width, width, bits)
    (tmp_path / "p.wav").write_bytes(riff(fmt, raw))
    np.testing.assert_allclose(read_wav(tmp_path / "p.wav").samples, expected, rtol=1e-6)


@pytest.mark.parametrize("content", [b"", b"RIFF0000WAVX", b"not a wav at all",
                                     riff(struct.pack("<HHIIHH", 2, 1, 8000, 8000, 1, 4), b"x"),
                                     riff(struct.pack("<HHIIHH", 1, 2, 8000, 8000, 3, 16), b""),
                                     riff(struct.pack("<HHIIHH", 1, 1, 8000, 0, 0, 0), b"xx"),
                                     riff(struct.pack("<HHIIHH", 3, 1, 8000, 0, 0, 0), b"")])
def test_bad_files_are_caller_errors(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.wav").write_bytes(content)
    with pytest.raises(InvalidArgumentError):
        read_wav(tmp_path / "bad.wav")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        read_wav(tmp_path / "missing.wav")


def test_bundled_sample_is_small_real_speech() -> None:
    from importlib.resources import files

    audio = read_wav(str(files("anunzi_fast") / "data" / "hello.wav"))
    assert audio.samples.dtype == np.int16 and audio.channels == 1
    assert 2.0 < audio.duration < 10.0
    assert np.abs(audio.samples).max() > 10_000  # not silence


def test_unwritable_path_is_a_caller_error(tmp_path: Path) -> None:
    for samples in (np.zeros(4, np.int16), np.zeros(4, np.float32)):
        with pytest.raises(InvalidArgumentError, match="cannot write"):
            write_wav(tmp_path / "missing-dir" / "x.wav", samples, 16_000)


@pytest.mark.parametrize(
    ("shape", "rate", "match"),
    [
        ((4,), 0, "positive integer"),
        ((4,), -1, "positive integer"),
        ((4,), 2**32, "too high"),
        ((4,), 2**31, "too high"),  # the byte rate overflows its 32-bit field
        ((4,), 48_000.0, "must be an integer"),
        ((4,), True, "positive integer"),
        ((4, 0), 16_000, "channels"),
        ((0, 65_536), 16_000, "channels"),
    ],
)
def test_header_fields_out_of_range_are_caller_errors(
    tmp_path: Path, shape: tuple[int, ...], rate: object, match: str
) -> None:
    # Found by the wav fuzz target: struct.error, wave.Error, or a file read_wav refuses.
    for dtype in (np.int16, np.float32):
        with pytest.raises(InvalidArgumentError, match=match):
            write_wav(tmp_path / "x.wav", np.zeros(shape, dtype), rate)  # type: ignore[arg-type]
        assert not (tmp_path / "x.wav").exists()


def test_largest_header_fields_round_trip(tmp_path: Path) -> None:
    samples = np.arange(2 * 16_383, dtype=np.float32).reshape(2, 16_383)
    write_wav(tmp_path / "wide.wav", samples, 65_535)
    audio = read_wav(tmp_path / "wide.wav")
    assert audio.sample_rate == 65_535 and audio.samples.shape == (2, 16_383)
    np.testing.assert_array_equal(audio.samples, samples)
    write_wav(tmp_path / "fast.wav", np.zeros(3, np.int16), 2**31 - 1)
    assert read_wav(tmp_path / "fast.wav").sample_rate == 2**31 - 1
