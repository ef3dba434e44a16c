"""Live microphone and speaker, through the optional ``sounddevice`` package.

``sounddevice`` (and the PortAudio library under it) is not a dependency of anunzi-fast; it is
imported only when a device is opened, and its absence is reported as an
:class:`~anunzi_fast.errors.AudioDeviceError` saying how to install it.

Both classes run the device callback on PortAudio's thread. The microphone hands each block to
the event loop with ``call_soon_threadsafe``; the speaker reads the call's
:class:`~anunzi_fast.JitterBuffer` directly (the buffer's consumer side), so playback never
waits on the event loop.

With echo cancellation (an :class:`~anunzi_fast.aec.EchoPath`), the callbacks are native when
sounddevice allows it (its documented ``_StreamBase`` takes a C callback pointer): the speaker's
C callback plays the jitter buffer and copies what it played, stamped with when it is heard,
into the path's render tap; the microphone's copies each block, stamped with when it was
captured, into the capture tap. No Python (and no GIL) runs on the audio thread then. A worker
thread cancels the echo and hands the cleaned blocks to asyncio. Where the native path is not
available (fake streams in tests, ``native=False``), Python callbacks do the same through the
same native taps.

The speaker also reports when the agent started and stopped being heard
(:meth:`Speaker.playout_events`), from what its callback actually played.
"""

from __future__ import annotations

import asyncio
import threading
import time as _time
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from ._echo import (
    InputEngine,
    OutputEngine,
    PlayoutMonitor,
    input_callback_address,
    output_callback_address,
    steady_now,
)
from ._native import JitterBuffer
from .errors import AudioDeviceError, InvalidArgumentError
from .events import AgentStartedSpeaking, AgentStoppedSpeaking

if TYPE_CHECKING:
    from .aec import EchoPath

__all__ = [
    "AudioStream",
    "Microphone",
    "Speaker",
    "describe_devices",
    "load_sounddevice",
    "parse_device",
]

# A pause this long in what the speaker plays ends the agent's turn as heard (as the turn
# clock's gap between replies).
PLAYOUT_GAP_MS = 100.0

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


def _engine_factory(kind: str, address: int, engine: Any, required: bool
                    ) -> StreamFactory | None:
    """:func:`_native_factory` for a native engine, which is closed if it goes unused.

    Raises:
        AudioDeviceError: If ``required`` and sounddevice cannot take a native callback.
    """
    try:
        factory = _native_factory(kind, address, engine.user_data)
    except BaseException:
        engine.close()
        raise
    if factory is None:
        engine.close()
        if required:
            raise AudioDeviceError("this sounddevice cannot take a native callback")
    return factory


def _native_factory(kind: str, address: int, user_data: int) -> StreamFactory | None:
    """A stream factory that gives PortAudio our C callback, or ``None`` if sounddevice
    cannot take one (its ``_StreamBase`` and cffi handle are the documented way for library
    authors)."""
    sd = load_sounddevice()
    base, ffi = getattr(sd, "_StreamBase", None), getattr(sd, "_ffi", None)
    if base is None or ffi is None:
        return None

    def open_native(*, callback: Any = None, **options: Any) -> AudioStream:
        del callback  # the Python fallback's, unused here
        return cast(AudioStream, base(
            "input" if kind == "InputStream" else "output",
            callback=ffi.cast("PaStreamCallback *", address),
            userdata=ffi.cast("void *", user_data), **options))

    return open_native


def _lead(time_info: Any, attribute: str) -> float:
    """A device latency from a Python callback's time info (0 if absent or implausible)."""
    try:
        value = abs(float(getattr(time_info, attribute)) - float(time_info.currentTime))
    except (AttributeError, TypeError, ValueError):
        return 0.0
    return value if value < 1.0 else 0.0


def parse_device(text: str | None) -> int | str | None:
    """A ``--input-device``/``--output-device`` value: an index if it is a number, else a
    name (or a unique part of one, as sounddevice matches it)."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else text


def describe_devices(sounddevice: ModuleType | None = None) -> list[str]:
    """One line per device: index, name, host API, channels in/out, default rate; the default
    input and output marked ``>`` and ``<``.

    Raises:
        AudioDeviceError: Without sounddevice/PortAudio (with the install hint).
    """
    sd = sounddevice or load_sounddevice()
    hostapis = [api["name"] for api in sd.query_hostapis()]
    default_in, default_out = sd.default.device[0], sd.default.device[1]
    lines = []
    for device in sd.query_devices():
        index = device["index"]
        mark = (">" if index == default_in else " ") + ("<" if index == default_out else " ")
        lines.append(
            f"{mark} {index:3d} {device['name']} ({hostapis[device['hostapi']]}), "
            f"{device['max_input_channels']} in, {device['max_output_channels']} out, "
            f"{device['default_samplerate']:g} Hz")
    return lines


class Microphone:
    """Mono float32 capture, delivered block by block to asyncio.

    Args:
        sample_rate: Capture rate in Hz (48000 avoids resampling before sending).
        block_ms: Block length; 20 ms keeps latency low.
        device: ``sounddevice`` device id or name; the default input if ``None``.
        max_blocks: Blocks queued at most; if the loop falls behind, the oldest are dropped
            (counted in :attr:`dropped_blocks`) rather than letting latency grow.
        stream_factory: Replaces ``sounddevice.InputStream`` (for tests).
        echo: An :class:`~anunzi_fast.aec.EchoPath` (usually ``call.echo.path()``): blocks
            are then delivered with the speaker's echo cancelled, ``echo.canceller.latency_ms``
            later. May also be set as the attribute before opening.
        native: With ``echo``, use the C callback (``None``: when sounddevice allows it;
            ``True``: fail if it does not; ``False``: the Python callback).
        clock: The clock captured blocks are stamped with in the Python callback (the C one
            uses the same: :func:`anunzi_fast._echo.steady_now`); tests pass a virtual one.
    """

    def __init__(
        self,
        sample_rate: int = 48_000,
        *,
        block_ms: float = 20.0,
        device: int | str | None = None,
        max_blocks: int = 50,
        stream_factory: StreamFactory | None = None,
        echo: EchoPath | None = None,
        native: bool | None = None,
        clock: Callable[[], float] = steady_now,
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
        self.echo = echo
        self.native = native
        self._clock = clock
        self._engine: InputEngine | None = None
        self._worker: threading.Thread | None = None
        self._stop_worker = threading.Event()

    @property
    def native_callback(self) -> bool:
        """Whether the open stream runs the C callback (no Python on the audio thread)."""
        return self._engine is not None

    async def __aenter__(self) -> Microphone:
        self._loop = asyncio.get_running_loop()
        factory, callback = self._factory, self._callback
        if self.echo is not None:
            if self.echo.sample_rate != self.sample_rate:
                raise InvalidArgumentError(
                    f"the echo path runs at {self.echo.sample_rate} Hz, the microphone at "
                    f"{self.sample_rate} Hz")
            callback = self._callback_to_tap
            if factory is None and self.native is not False:
                factory = self._open_native()
            self._stop_worker.clear()
            self._worker = threading.Thread(target=self._clean_forever, daemon=True,
                                            name="anunzi-fast echo canceller")
            self._worker.start()
        try:
            self._stream = _start(
                factory, "InputStream", samplerate=self.sample_rate,
                blocksize=self.block_size, channels=1, dtype="float32", device=self._device,
                callback=callback,
            )
        except BaseException:
            self._close_echo()
            raise
        return self

    def _open_native(self) -> StreamFactory | None:
        assert self.echo is not None
        engine = InputEngine(self.echo.capture_tap)
        factory = _engine_factory("InputStream", input_callback_address(), engine,
                                  bool(self.native))
        self._engine = engine if factory is not None else None
        return factory

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stream, self._stream = self._stream, None
        try:
            _stop(stream)
        finally:
            self._close_echo()

    def _close_echo(self) -> None:
        # After the stream: no callback can run any more.
        self._stop_worker.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _callback(self, indata: npt.NDArray[np.float32], frames: int, time: Any,
                  status: Any) -> None:
        # PortAudio's thread: copy (indata is reused after return) and hand over to the loop.
        if status:
            self.overflows += 1
        block = np.array(indata[:, 0], dtype=np.float32)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._deliver, block)

    def _callback_to_tap(self, indata: npt.NDArray[np.float32], frames: int, time: Any,
                         status: Any) -> None:
        # The Python twin of the C callback: the block and its capture time into the tap.
        if status:
            self.overflows += 1
        assert self.echo is not None
        captured_at = self._clock() - _lead(time, "inputBufferAdcTime")
        self.echo.capture_tap.push(np.ascontiguousarray(indata[:, 0], np.float32), captured_at)

    def _clean_forever(self) -> None:
        # The worker: the echo path's consumer side; the loop gets cleaned blocks.
        assert self.echo is not None and self._loop is not None
        while not self._stop_worker.is_set():
            result = self.echo.process_next(0.05)
            if result is None:
                continue
            try:
                self._loop.call_soon_threadsafe(self._deliver, result[0])
            except RuntimeError:  # the loop has closed
                return

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
        echo: An :class:`~anunzi_fast.aec.EchoPath`: what is played goes to its render tap.
        native: Use the C callback (``None``: when sounddevice allows it and no
            ``stream_factory`` is given; ``True``: fail if it cannot; ``False``: Python).
        clock: The clock the Python callback stamps blocks with (see :class:`Microphone`).
    """

    def __init__(
        self,
        jitter_buffer: JitterBuffer,
        *,
        block_ms: float = 20.0,
        device: int | str | None = None,
        stream_factory: StreamFactory | None = None,
        echo: EchoPath | None = None,
        native: bool | None = None,
        clock: Callable[[], float] = steady_now,
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
        self.echo = echo
        self.native = native
        self._clock = clock
        self._engine: OutputEngine | None = None
        self._monitor = PlayoutMonitor(self.sample_rate, gap_ms=PLAYOUT_GAP_MS)
        self.output_latency = 0.0

    @property
    def samples_played(self) -> int:
        """Agent samples played so far (silence not counted)."""
        return int(self._monitor.audio_played)

    @property
    def native_callback(self) -> bool:
        """Whether the open stream runs the C callback (no Python on the audio thread)."""
        return self._engine is not None

    def __enter__(self) -> Speaker:
        if self.echo is not None and self.echo.sample_rate != self.sample_rate:
            raise InvalidArgumentError(
                f"the echo path runs at {self.echo.sample_rate} Hz, the speaker at "
                f"{self.sample_rate} Hz")
        factory = self._factory
        if factory is None and self.native is not False:
            factory = self._open_native()
        try:
            self._stream = _start(
                factory, "OutputStream", samplerate=self.sample_rate,
                blocksize=self.block_size, channels=1, dtype="float32", device=self._device,
                callback=self._callback,
            )
        except BaseException:
            self._close_engine()
            raise
        return self

    def _open_native(self) -> StreamFactory | None:
        engine = OutputEngine(self.jitter_buffer,
                              None if self.echo is None else self.echo.render_tap, self._monitor)
        factory = _engine_factory("OutputStream", output_callback_address(), engine,
                                  bool(self.native))
        self._engine = engine if factory is not None else None
        return factory

    def _close_engine(self) -> None:
        if self._engine is not None:
            self.output_latency = self._engine.output_latency
            self._engine.close()
            self._engine = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stream, self._stream = self._stream, None
        try:
            _stop(stream)
        finally:
            self._close_engine()  # after the stream: no callback can run any more

    def _callback(self, outdata: npt.NDArray[np.float32], frames: int, time: Any,
                  status: Any) -> None:
        # With one channel, column 0 is contiguous: the buffer writes straight into it.
        played = outdata[:, 0]
        real = self.jitter_buffer.read_into(played)
        self.output_latency = _lead(time, "outputBufferDacTime")
        heard_at = self._clock() + self.output_latency
        if self.echo is not None:
            self.echo.render_tap.push(played, heard_at, real)
        self._monitor.on_block(len(played), real, heard_at)

    def playout_events(self) -> list[AgentStartedSpeaking | AgentStoppedSpeaking]:
        """When the agent started and stopped being heard, since the last call.

        Times are ``time.monotonic()`` values, device latency included. One consumer thread
        (usually the event loop's).
        """
        offset = _time.monotonic() - self._clock()
        events: list[AgentStartedSpeaking | AgentStoppedSpeaking] = []
        while (event := self._monitor.pop()) is not None:
            started, heard_at, _sample = event
            kind = AgentStartedSpeaking if started else AgentStoppedSpeaking
            events.append(kind(heard_at + offset))
        return events
