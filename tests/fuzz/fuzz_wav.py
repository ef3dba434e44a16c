"""Fuzz target ``wav``: :func:`read_wav` on any file, and ``write_wav`` -> ``read_wav``.

The first byte chooses the mode: the input as the file itself; a RIFF/WAVE file assembled
from fuzz-chosen header fields (format tag, channels, rate, block align, bits, chunk sizes that
lie, odd chunks and their padding, WAVE_FORMAT_EXTENSIBLE with any subformat) around the rest
of the input; or audio generated from the input and written with ``write_wav``.

Invariants: ``read_wav`` raises nothing but :class:`InvalidArgumentError`; what it returns is
consistent (``int16`` or float, 1-D for mono, ``(frames, channels)`` otherwise, a positive rate)
and never larger than four bytes of samples per byte of file, whatever the header claims;
``write_wav`` raises nothing but :class:`InvalidArgumentError`, and what it wrote reads back as
the same samples (bit for bit, NaN payloads included) at the same rate.
"""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from anunzi_fast.errors import InvalidArgumentError
from anunzi_fast.wav import read_wav, write_wav
from tests.fuzz._input import FuzzInput

_WORKDIR = Path(tempfile.mkdtemp(prefix="anunzi-fuzz-wav-", dir="/dev/shm" if os.path.isdir(
    "/dev/shm") else None))
atexit.register(shutil.rmtree, _WORKDIR, True)
_PATH = _WORKDIR / "input.wav"

_TAGS = (0x0001, 0x0003, 0xFFFE, 0x0000, 0x0002, 0x0006, 0x0007, 0x0011, 0xFFFF)
_BITS = (8, 16, 24, 32, 64, 0, 1, 4, 12, 20, 48, 65535)
_RATES = (48_000, 16_000, 44_100, 8_000, 1, 0, 2**31, 2**32 - 1)
_CHANNELS = (1, 2, 1, 6, 0, 3, 255, 65535)
_CHUNK_IDS = (b"fmt ", b"data", b"LIST", b"fact", b"JUNK", b"\0\0\0\0", b"data", b"fmt ")
# Largest sample bytes per file byte: 8-bit PCM decodes to float32.
MAX_EXPANSION = 4


def _field(source: FuzzInput, options: tuple[int, ...], bits: int) -> int:
    return source.pick(options) if source.below(4) else source.below(2**bits)


def _fmt_chunk(source: FuzzInput) -> bytes:
    tag = _field(source, _TAGS, 16)
    channels = _field(source, _CHANNELS, 16)
    rate = _field(source, _RATES, 32)
    bits = _field(source, _BITS, 16)
    block_align = channels * ((bits + 7) // 8) if source.below(8) else source.u16()
    byte_rate = (rate * block_align) % 2**32
    fmt = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, block_align % 2**16, bits)
    if source.below(3) == 0:  # WAVE_FORMAT_EXTENSIBLE's extra fields, subformat GUID first
        subformat = source.pick((1, 3, 0, 0xFFFE, 2))
        fmt += struct.pack("<HHIH", 22, bits, 0, subformat) + bytes(14)
    return fmt[: len(fmt) - source.pick((0, 0, 0, 1, 2, 10))]


def _assembled(source: FuzzInput) -> bytes:
    chunks = []
    for _ in range(1 + source.below(4)):
        chunk_id = source.pick(_CHUNK_IDS)
        body = _fmt_chunk(source) if chunk_id == b"fmt " else source.take(source.size(4096))
        size = len(body)
        lie = source.below(8)
        if lie == 1:
            size = 2**32 - 1
        elif lie == 2:
            size = (size + source.u16()) % 2**32
        elif lie == 3:
            size = max(0, size - source.u8())
        pad = b"\0" if len(body) % 2 and source.flag() else b""
        chunks.append(chunk_id + struct.pack("<I", size) + body + pad)
    body = b"WAVE" + b"".join(chunks) + source.rest()
    riff = source.pick((len(body), 0, 2**32 - 1, len(body) + 1))
    return source.pick((b"RIFF", b"RIFF", b"RIFX", b"RIF")) + struct.pack("<I", riff) + body


def _check_read(data: bytes) -> None:
    _PATH.write_bytes(data)
    try:
        audio = read_wav(_PATH)
    except InvalidArgumentError:
        return
    samples = audio.samples
    assert isinstance(samples, np.ndarray)
    assert samples.dtype in (np.int16, np.float32, np.float64), samples.dtype
    assert samples.ndim in (1, 2) and samples.flags.c_contiguous
    assert samples.nbytes <= MAX_EXPANSION * len(data), (samples.nbytes, len(data))
    assert isinstance(audio.sample_rate, int) and 1 <= audio.sample_rate < 2**32
    assert audio.channels >= 1 and (samples.ndim == 1) == (audio.channels == 1)
    assert audio.duration == len(samples) / audio.sample_rate


def _generated(source: FuzzInput) -> tuple[np.ndarray, int]:
    dtype = source.pick(("<i2", "<f4", ">f4", ">i2", "<f8", "<i4", "|u1"))
    shape_kind = source.below(4)
    channels = source.pick((1, 2, 3, 8, 0, 65536)) if shape_kind >= 2 else 1
    raw = source.take(source.size(4096))
    itemsize = np.dtype(dtype).itemsize
    count = len(raw) // itemsize
    if channels:
        count -= count % channels
    flat = np.frombuffer(raw[: count * itemsize], dtype)
    if shape_kind < 2:
        array = flat
    else:
        array = flat.reshape(-1, channels) if channels else flat[:0].reshape(0, 0)
    if shape_kind == 1 and len(array) > 1:
        array = array[::2]  # not contiguous
    if shape_kind == 3 and array.ndim == 2:
        array = np.asfortranarray(array)
    rate = source.pick((48_000, 16_000, 1, 2**31 - 1, 2**32 - 1, 2**32, 0, -1, 96_000 * 4))
    return array, rate


def _check_round_trip(source: FuzzInput) -> None:
    samples, rate = _generated(source)
    try:
        write_wav(_PATH, samples, rate)
    except InvalidArgumentError:
        return
    assert samples.dtype in (np.int16, np.float32) and samples.ndim in (1, 2), samples.dtype
    audio = read_wav(_PATH)  # what write_wav accepted must read back
    assert audio.sample_rate == rate
    expected = samples.astype(samples.dtype.newbyteorder("="))
    if expected.ndim == 2 and expected.shape[1] == 1:
        expected = expected[:, 0]  # mono reads back as (frames,), as documented
    assert audio.samples.dtype == expected.dtype and audio.samples.shape == expected.shape, (
        audio.samples.shape, expected.shape)
    bits = np.uint16 if expected.dtype == np.int16 else np.uint32
    assert np.array_equal(audio.samples.view(bits), np.ascontiguousarray(expected).view(bits))


def fuzz_one(data: bytes) -> None:
    """Run one input; raises AssertionError (or whatever escaped) if an invariant broke."""
    source = FuzzInput(data)
    mode = source.below(4)
    if mode == 0:
        _check_read(source.rest())
    elif mode == 1:
        _check_round_trip(source)
    else:
        _check_read(_assembled(source))
