"""Live microphone and speaker, through the optional ``sounddevice`` package.

``sounddevice`` (and the PortAudio library under it) is not a dependency of anunzi-fast; it is
imported only when a device is opened, and its absence is reported as an
:class:`~anunzi_fast.errors.AudioDeviceError` saying how to install it.

Both classes run the device callback on PortAudio's thread. The microphone hands each block to
the event loop with ``call_soon_threadsafe``; the speaker reads the call's
:class:`~anunzi_fast.JitterBuffer` directly (the buffer's consumer side), so playback never
waits on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from ._native import JitterBuffer
from .errors import AudioDeviceError, InvalidArgumentError

__all__ = ["AudioStream", "Microphone", "Speaker", "load_sounddevice"]

INSTALL_HINT = (
    "live audio needs the optional 'sounddevice' package and PortAudio: "
    "pip install sounddevice (and e.g. apt-get install libportaudio2)"
)


class AudioStream(Protocol):
    """What is used of a ``sounddevice`` stream; tests pass a fake."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


StreamFactory = Callable[..., AudioStream]


def load_sounddevice() -> ModuleType:
    """Import ``sounddevice``, or raise :class:`AudioDeviceError` with the install hint."""
    try:
        import sounddevice  # type: ignore[import-not-found, unused-ignore]
    except (ImportError, OSError) as exc:  # OSError: the module is there, PortAudio is not
        raise AudioDeviceError(INSTALL_HINT) from exc
    return cast(ModuleType, sounddevice)


def _start(factory: StreamFactory | None, kind: str, **options: Any) -> AudioStream:
    if factory is None:
        factory = getattr(load_sounddevice(), kind)
    try:
        stream = factory(**options)
        stream.start()
    except AudioDeviceError:
        raise
    except Exception as exc:  # PortAudio errors have no common base class worth naming
        direction = "input" if kind == "InputStream" else "output"
        if options.get("device") is None and "device -1" in str(exc):
            # PortAudio's way of saying there is none: "Error querying device -1".
            raise AudioDeviceError(
                f"no default audio {direction} device: connect one, or choose a device "
                "by name or index") from exc
        raise AudioDeviceError(f"cannot open the audio {direction} device: {exc}") from exc
    return stream


def _stop(stream: AudioStream | None) -> None:
    if stream is not None:
        stream.stop()
        stream.close()


class Microphone:
    """Mono float32 capture, delivered block by block to asyncio.

    Args:
        sample_rate: Capture rate in Hz (48000 avoids resampling before sending).
        block_ms: Block length; 20 ms keeps latency low.
        device: ``sounddevice`` device id or name; the default input if ``None``.
        max_blocks: Blocks queued at most; if the loop falls behind, the oldest are dropped
            (counted in :attr:`dropped_blocks`) rather than letting latency grow.
        stream_factory: Replaces ``sounddevice.InputStream`` (for tests).
    """

    def __init__(
        self,
        sample_rate: int = 48_000,
        *,
        block_ms: float = 20.0,
        device: int | str | None = None,
        max_blocks: int = 50,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        if sample_rate <= 0 or block_ms <= 0 or max_blocks < 1:
            raise InvalidArgumentError("sample_rate, block_ms and max_blocks must be positive")
        self.sample_rate = sample_rate
        self.block_size = max(1, round(sample_rate * block_ms / 1000))
        self._device = device
        self._factory = stream_factory
        self._blocks: asyncio.Queue[npt.NDArray[np.float32]] = asyncio.Queue(max_blocks)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: AudioStream | None = None
        self.dropped_blocks = 0
        self.overflows = 0

    async def __aenter__(self) -> Microphone:
        self._loop = asyncio.get_running_loop()
        self._stream = _start(
            self._factory, "InputStream", samplerate=self.sample_rate, blocksize=self.block_size,
            channels=1, dtype="float32", device=self._device, callback=self._callback,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stream, self._stream = self._stream, None
        _stop(stream)

    def _callback(self, indata: npt.NDArray[np.float32], frames: int, time: Any,
                  status: Any) -> None:
        # PortAudio's thread: copy (indata is reused after return) and hand over to the loop.
        if status:
            self.overflows += 1
        block = np.array(indata[:, 0], dtype=np.float32)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._deliver, block)

    def _deliver(self, block: npt.NDArray[np.float32]) -> None:
        if self._blocks.full():
            self._blocks.get_nowait()
            self.dropped_blocks += 1
        self._blocks.put_nowait(block)

    async def read(self) -> npt.NDArray[np.float32]:
        """The next captured block (``block_size`` float32 samples at ``sample_rate``)."""
        if self._stream is None:
            raise InvalidArgumentError("the microphone is not open: use 'async with'")
        return await self._blocks.get()


class Speaker:
    """Plays a float32 :class:`~anunzi_fast.JitterBuffer` on an output device.

    Args:
        jitter_buffer: The call's buffer, created with ``playback_rate`` equal to the
            device rate (``connect(playback_rate=48000)`` gives float32 samples).
        block_ms: Device block length.
        device: ``sounddevice`` device id or name; the default output if ``None``.
        stream_factory: Replaces ``sounddevice.OutputStream`` (for tests).
    """

    def __init__(
        self,
        jitter_buffer: JitterBuffer,
        *,
        block_ms: float = 20.0,
        device: int | str | None = None,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        if jitter_buffer.dtype != np.float32:
            raise InvalidArgumentError(
                "the speaker plays float32: connect with a playback_rate other than 16000")
        self.jitter_buffer = jitter_buffer
        self.sample_rate = jitter_buffer.sample_rate
        self.block_size = max(1, round(self.sample_rate * block_ms / 1000))
        self._device = device
        self._factory = stream_factory
        self._stream: AudioStream | None = None
        self.samples_played = 0

    def __enter__(self) -> Speaker:
        self._stream = _start(
            self._factory, "OutputStream", samplerate=self.sample_rate,
            blocksize=self.block_size, channels=1, dtype="float32", device=self._device,
            callback=self._callback,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stream, self._stream = self._stream, None
        _stop(stream)

    def _callback(self, outdata: npt.NDArray[np.float32], frames: int, time: Any,
                  status: Any) -> None:
        # With one channel, column 0 is contiguous: the buffer writes straight into it.
        self.samples_played += self.jitter_buffer.read_into(outdata[:, 0])
