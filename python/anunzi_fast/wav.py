"""WAV files in and out: integer PCM and IEEE float, mono or multichannel, any rate.

Reading parses the RIFF chunks itself, because the stdlib :mod:`wave` rejects float data and
(before Python 3.12) ``WAVE_FORMAT_EXTENSIBLE`` files; writing PCM16 uses :mod:`wave`.
"""

from __future__ import annotations

import operator
import os
import struct
import wave
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError

__all__ = ["WavAudio", "read_wav", "write_wav"]

_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True, eq=False)
class WavAudio:
    """Decoded WAV audio.

    Attributes:
        samples: ``int16`` for 16-bit PCM, ``float32``/``float64`` for float files and
            ``float32`` in [-1, 1) for 8/24/32-bit PCM; shape ``(frames,)`` for mono,
            ``(frames, channels)`` otherwise. A new array, not a view of the file.
        sample_rate: Frames per second.
    """

    samples: npt.NDArray[Any]
    sample_rate: int

    @property
    def channels(self) -> int:
        """Number of channels."""
        return 1 if self.samples.ndim == 1 else int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def read_wav(path: str | os.PathLike[str]) -> WavAudio:
    """Read a WAV file.

    Raises:
        InvalidArgumentError: If the file is missing, not a WAV file, or in an unsupported
            encoding (the caller chose the file).
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from exc
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidArgumentError(f"{os.fspath(path)!r} is not a RIFF/WAVE file")
    fmt: bytes | None = None
    payload: bytes | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            payload = body  # a truncated last chunk is read as far as it goes
        offset += 8 + size + (size & 1)  # chunks are padded to even sizes
    if fmt is None or payload is None or len(fmt) < 16:
        raise InvalidArgumentError(f"{os.fspath(path)!r} has no fmt or data chunk")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _FORMAT_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]  # first two bytes of the subformat GUID
    # bits == 0 would make block_align 0 as well, and every frame count a division by zero.
    if channels < 1 or rate < 1 or bits < 1 or block_align != channels * ((bits + 7) // 8):
        raise InvalidArgumentError(f"{os.fspath(path)!r} has an inconsistent fmt chunk")
    frames = len(payload) // block_align
    payload = payload[: frames * block_align]
    samples = _decode(payload, tag, bits, path)
    if channels > 1:
        samples = samples.reshape(frames, channels)
    return WavAudio(samples, rate)


def _decode(payload: bytes, tag: int, bits: int, path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    if tag == _FORMAT_FLOAT and bits in (32, 64):
        return np.frombuffer(payload, "<f4" if bits == 32 else "<f8").astype(
            np.float32 if bits == 32 else np.float64
        )
    if tag == _FORMAT_PCM:
        if bits == 16:
            return np.frombuffer(payload, "<i2").astype(np.int16)
        if bits == 8:  # unsigned, centred on 128
            return ((np.frombuffer(payload, np.uint8).astype(np.float32) - 128) / 128).astype(
                np.float32)
        if bits == 24:
            raw = np.frombuffer(payload, np.uint8).reshape(-1, 3).astype(np.int32)
            values = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
            values = np.where(values >= 1 << 23, values - (1 << 24), values)
            return (values / float(1 << 23)).astype(np.float32)
        if bits == 32:
            return (np.frombuffer(payload, "<i4") / float(1 << 31)).astype(np.float32)
    raise InvalidArgumentError(
        f"{os.fspath(path)!r}: unsupported WAV encoding (format {tag:#06x}, {bits} bits); "
        "use PCM 8/16/24/32-bit or float 32/64-bit"
    )


def write_wav(
    path: str | os.PathLike[str], samples: npt.ArrayLike, sample_rate: int
) -> None:
    """Write ``samples`` as a WAV file.

    ``int16`` samples are written as 16-bit PCM (with :mod:`wave`), ``float32`` samples as
    32-bit IEEE float; shape ``(frames,)`` or ``(frames, channels)``.

    Raises:
        InvalidArgumentError: For other dtypes or shapes, no channel, a rate that is not a
            positive integer, or sizes the header's fields cannot hold (checked before the
            file is opened), and if the file cannot be written.
    """
    array = np.asarray(samples)
    if array.ndim not in (1, 2) or array.dtype not in (np.int16, np.float32):
        raise InvalidArgumentError("write_wav takes 1-D or 2-D int16 or float32 samples")
    channels = 1 if array.ndim == 1 else array.shape[1]
    sample_rate = _check_header_fields(array, channels, sample_rate)
    try:
        _write(path, array, channels, sample_rate)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write {os.fspath(path)!r}: {exc.strerror}") from exc


def _check_header_fields(array: npt.NDArray[Any], channels: int, sample_rate: Any) -> int:
    # Without these checks struct or wave fail half-way (struct.error, wave.Error), or a file
    # is written that read_wav refuses (a rate or a channel count of 0).
    try:
        rate = operator.index(sample_rate)
    except TypeError:
        raise InvalidArgumentError(
            f"the sample rate must be an integer, not {type(sample_rate).__name__}") from None
    if isinstance(sample_rate, bool) or rate < 1:
        raise InvalidArgumentError(f"the sample rate must be a positive integer, not {rate!r}")
    block_align = channels * array.dtype.itemsize
    if channels < 1 or block_align > 0xFFFF:
        raise InvalidArgumentError(
            f"a WAV file holds 1 to {0xFFFF // array.dtype.itemsize} channels of "
            f"{array.dtype}, not {channels}")
    if rate * block_align > 0xFFFF_FFFF:  # the byte rate is a 32-bit field
        raise InvalidArgumentError(f"the sample rate {rate} is too high for a WAV file")
    if array.nbytes > 0xFFFF_FFFF - 64:  # RIFF sizes are 32-bit fields
        raise InvalidArgumentError("the samples are too large for a WAV file (4 GiB)")
    return rate


def _write(
    path: str | os.PathLike[str], array: npt.NDArray[Any], channels: int, sample_rate: int
) -> None:
    if array.dtype == np.int16:
        # Open the file first: wave.open(path) leaves a broken object behind if that fails.
        with open(path, "wb") as file, wave.open(file, "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(np.ascontiguousarray(array, "<i2").tobytes())
        return
    payload = np.ascontiguousarray(array, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", _FORMAT_FLOAT, channels, sample_rate,
                      sample_rate * channels * 4, channels * 4, 32)
    header = b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(payload)) + b"WAVE"
    with open(path, "wb") as out:
        out.write(header + b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        out.write(b"data" + struct.pack("<I", len(payload)) + payload)
