"""The audio engine's numpy face: what a call does to audio on its way out and in.

- :class:`UplinkEncoder`: the user's audio, any rate, float or int16, mono or
  ``(frames, channels)``, to browser-exact PCM16 at 48 kHz through a streaming resampler
  whose state carries over between calls.
- :class:`Playback`: the agent's 16 kHz audio into a :class:`~anunzi_fast.JitterBuffer` at
  the device's rate (resampled to float32 when the rates differ).
- :class:`CallRecorder`: both sides of a call on one 48 kHz stereo timeline.

No I/O here. Work that can take more than a few milliseconds (a long array, or designing a
new resampler's filter) is flagged by :meth:`UplinkEncoder.needs_worker` and
:meth:`Playback.needs_worker`, so that asyncio code runs it in a worker thread; the native
calls release the GIL, so the event loop keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from ._native import JitterBuffer, float_to_pcm16, pcm16_to_float
from .errors import InvalidArgumentError
from .protocol import AGENT_SAMPLE_RATE, CLIENT_SAMPLE_RATE
from .wav import write_wav

if TYPE_CHECKING:
    from .resampler import ResampleStream

__all__ = [
    "MAX_INPUT_CHANNELS",
    "CallRecorder",
    "Playback",
    "UplinkEncoder",
    "resample_pcm16",
    "run_in_worker",
]

# More channels than any audio interface a voice client records from: a (channels, frames)
# array passed the wrong way round, which would otherwise be averaged across time.
MAX_INPUT_CHANNELS: Final = 32
# Above this many input samples a call takes more than about a millisecond (resampling runs at
# 50-200 M samples/s, conversion faster): worth a worker thread's 50 us hand-off.
WORKER_SAMPLES: Final = 65_536
_T = TypeVar("_T")
# Dtype instances: a set lookup, not a conversion of each type per comparison (once a frame).
_INPUT_DTYPES: Final = frozenset(map(np.dtype, (np.float32, np.float64, np.int16)))


def _stream(in_rate: int, out_rate: int, dtype: str) -> ResampleStream:
    # Imported when needed: 48 kHz input and 16 kHz playback, the common cases, never need it.
    from .resampler import ResampleStream

    return ResampleStream(in_rate, out_rate, 1, dtype=dtype, quality="HQ")


def _check_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate <= 0:
        raise InvalidArgumentError(f"sample_rate must be a positive int, not {sample_rate!r}")
    return int(sample_rate)


class UplinkEncoder:
    """User audio to the wire format: browser-exact PCM16, mono, 48 kHz.

    Use from one task at a time (the client holds its send lock): the resampler's state
    carries over between calls, so chunks must arrive in order.
    """

    def __init__(self) -> None:
        self._resampler: ResampleStream | None = None
        self._rate: int | None = None

    @property
    def input_rate(self) -> int | None:
        """The rate being resampled from, or ``None`` while no resampler is active."""
        return self._rate

    def check(self, samples: npt.ArrayLike, sample_rate: object) -> tuple[npt.NDArray[Any], int]:
        """Validate without converting (cheap); return the array and the rate.

        Raises:
            InvalidArgumentError: For a wrong dtype, shape or rate, or a rate switch while
                the previous rate's resampler still holds audio (call :meth:`flush`).
        """
        array = np.asarray(samples)
        if array.dtype not in _INPUT_DTYPES:
            raise InvalidArgumentError(
                f"audio must be float32, float64 or int16, not {array.dtype}")
        if array.ndim == 2:
            if array.shape[1] == 0:
                raise InvalidArgumentError("2-D audio needs at least one channel")
            if array.shape[1] > MAX_INPUT_CHANNELS:
                raise InvalidArgumentError(
                    f"2-D audio must be (frames, channels); got {array.shape[1]} channels "
                    f"(more than {MAX_INPUT_CHANNELS}): pass array.T if it is "
                    "(channels, frames)")
        elif array.ndim != 1:
            raise InvalidArgumentError("audio must be 1-D (mono) or 2-D (frames, channels)")
        rate = _check_rate(sample_rate)
        if self._resampler is not None and rate != self._rate:
            raise InvalidArgumentError(
                "the input sample rate changed: call flush_audio() before switching rates")
        return array, rate

    def needs_worker(self, array: npt.NDArray[Any], sample_rate: int) -> bool:
        """Whether :meth:`encode` may take long enough to block an event loop."""
        new_filter = sample_rate != CLIENT_SAMPLE_RATE and self._resampler is None
        return new_filter or array.size > WORKER_SAMPLES

    def encode(self, array: npt.NDArray[Any], sample_rate: int) -> npt.NDArray[np.int16]:
        """Downmix, resample to 48 kHz and convert; ``array`` and rate from :meth:`check`."""
        if array.ndim == 2:
            array = _downmix(array)
        if sample_rate == CLIENT_SAMPLE_RATE and self._resampler is None:
            if array.dtype == np.int16:
                return np.ascontiguousarray(array)
            return float_to_pcm16(np.ascontiguousarray(array))
        if array.dtype == np.int16:
            array = pcm16_to_float(np.ascontiguousarray(array))
        if self._resampler is None:
            self._resampler = _stream(sample_rate, CLIENT_SAMPLE_RATE, "float32")
            self._rate = sample_rate
        resampled = self._resampler.resample_chunk(np.ascontiguousarray(array, np.float32))
        return float_to_pcm16(np.ascontiguousarray(resampled, np.float32))

    def flush(self) -> npt.NDArray[np.int16]:
        """What the resampler still holds (its delay), as PCM16; the next call may switch rate."""
        if self._resampler is None:
            return np.zeros(0, np.int16)
        tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        self._resampler = None
        self._rate = None
        return float_to_pcm16(np.ascontiguousarray(tail, np.float32))


def _downmix(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if array.shape[1] == 1:
        return array[:, 0]
    if array.dtype == np.int16:
        mixed: npt.NDArray[Any] = np.rint(array.mean(axis=1)).astype(np.int16)
    else:
        mixed = array.mean(axis=1, dtype=array.dtype)
    return mixed


class Playback:
    """The agent's audio into a jitter buffer at the playback device's rate.

    At 16 kHz the buffer holds the agent's PCM16 as received; at any other rate it holds
    float32, resampled by a streaming resampler (HQ).

    Args:
        sample_rate: The device's rate.
        prefill_ms: Audio the jitter buffer holds before playing.
        max_ms: Audio it holds at most (the oldest is dropped beyond).
    """

    def __init__(self, sample_rate: int, *, prefill_ms: float = 60.0, max_ms: float = 3000.0
                 ) -> None:
        sample_rate = _check_rate(sample_rate)
        self.resampled = sample_rate != AGENT_SAMPLE_RATE
        self.jitter_buffer = JitterBuffer(sample_rate, prefill_ms=prefill_ms, max_ms=max_ms,
                                          dtype="float32" if self.resampled else "int16")
        self._resampler: ResampleStream | None = None

    @property
    def needs_worker(self) -> bool:
        """Whether :meth:`prepare` still has a filter to design (tens of milliseconds)."""
        return self.resampled and self._resampler is None

    def prepare(self) -> None:
        """Design the resampler's filter now rather than on the first audio."""
        if self.resampled and self._resampler is None:
            self._resampler = _stream(AGENT_SAMPLE_RATE, self.jitter_buffer.sample_rate,
                                      "float32")

    def push(self, pcm16: npt.NDArray[np.int16]) -> None:
        """Queue agent audio (16 kHz PCM16) for playback (the jitter buffer's producer side)."""
        if not self.resampled:
            self.jitter_buffer.push(pcm16)
            return
        self.prepare()
        assert self._resampler is not None
        resampled = self._resampler.resample_chunk(pcm16_to_float(np.ascontiguousarray(pcm16)))
        self.jitter_buffer.push(np.ascontiguousarray(resampled, np.float32))


def resample_pcm16(samples: npt.NDArray[np.int16], in_rate: int, out_rate: int
                   ) -> npt.NDArray[np.int16]:
    """PCM16 at ``in_rate`` to PCM16 at ``out_rate`` (one shot, HQ; float inside, exact PCM16)."""
    if in_rate == out_rate:
        return samples
    from .resampler import resample

    resampled = resample(pcm16_to_float(np.ascontiguousarray(samples)), in_rate, out_rate)
    return float_to_pcm16(np.ascontiguousarray(resampled, np.float32))


class CallRecorder:
    """Both sides of a call on one 48 kHz stereo timeline: user left, agent right.

    Each chunk is placed at the moment it was sent or received, but never over the previous
    chunk of its side, so a side's audio is continuous like played-back audio.

    Args:
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._t0 = clock()
        self._segments: tuple[list[tuple[int, npt.NDArray[np.int16]]], ...] = ([], [])
        self._cursor = [0, 0]
        self._upsampler: ResampleStream | None = None

    def add_user(self, pcm16_48k: npt.NDArray[np.int16]) -> None:
        """User audio as sent (48 kHz): it was captured during the block before."""
        self._place(0, np.array(pcm16_48k), self._clock(), len(pcm16_48k))

    def add_agent(self, pcm16_16k: npt.NDArray[np.int16]) -> None:
        """Agent audio as received (16 kHz)."""
        if self._upsampler is None:
            self._upsampler = _stream(AGENT_SAMPLE_RATE, CLIENT_SAMPLE_RATE, "int16")
        # The stream's output is not shifted, but it holds back its filter delay: what comes
        # out now starts with the held-back end of the previous chunks, which belongs that
        # many samples before this chunk's arrival.
        held_back = round(self._upsampler.delay())
        upsampled = self._upsampler.resample_chunk(np.ascontiguousarray(pcm16_16k))
        self._place(1, np.asarray(upsampled, np.int16), self._clock(), held_back)

    def _place(self, side: int, samples: npt.NDArray[np.int16], at: float, lead: int) -> None:
        position = max(self._cursor[side], round((at - self._t0) * CLIENT_SAMPLE_RATE) - lead)
        self._segments[side].append((position, samples))
        self._cursor[side] = position + len(samples)

    def stereo(self) -> npt.NDArray[np.int16]:
        """The recording so far as ``(frames, 2)`` PCM16, after flushing the agent's upsampler."""
        if self._upsampler is not None:
            tail = self._upsampler.resample_chunk(np.zeros(0, np.int16), last=True)
            self._upsampler = None
            # Right after the rest: it is the end of the last chunk.
            self._place(1, np.asarray(tail, np.int16), self._t0, 0)
        stereo = np.zeros((max(self._cursor), 2), np.int16)
        for side, segments in enumerate(self._segments):
            for position, samples in segments:
                stereo[position : position + len(samples), side] = samples
        return stereo

    def write(self, path: str) -> None:
        """Write the stereo PCM16 WAV at 48 kHz."""
        write_wav(path, self.stereo(), CLIENT_SAMPLE_RATE)


async def run_in_worker(function: Callable[..., _T], *args: Any) -> _T:
    """Run blocking work in a worker thread; if cancelled, still wait for it to finish.

    The work mutates state (a resampler) that the next caller will use: returning before it
    is done would let two threads use it at once.
    """
    future = asyncio.get_running_loop().run_in_executor(None, function, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise
