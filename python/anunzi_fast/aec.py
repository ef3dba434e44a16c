"""Echo cancellation for calls without headphones.

Two layers:

- :class:`EchoCanceller`: capture (microphone) and reference (what the speaker played) in,
  the capture without the agent's echo out. WebRTC's AEC3 (the optional ``pywebrtc-audio``
  package: ``pip install "anunzi-fast[aec]"``) does the cancelling; in front of it, a native
  GCC-PHAT delay estimator finds the bulk delay between reference and echo (up to
  ``max_delay_ms``, tracked as it drifts) and delays the reference to match, so that AEC3's
  own short-range alignment only has the last milliseconds to do.
- :class:`EchoPath`: the live pipeline's consumer side. The speaker's callback copies what it
  played, stamped with when it is heard, into :attr:`EchoPath.render_tap`; the microphone's
  callback copies each block, stamped with when it was captured, into
  :attr:`EchoPath.capture_tap` (both native rings: no lock, no Python needed on the audio
  thread). :meth:`EchoPath.process_next`, on a worker thread, lines the played audio up with
  each captured block by those times and cancels the echo.

Without ``pywebrtc-audio``, importing this module works; constructing an
:class:`EchoCanceller` raises :class:`~anunzi_fast.errors.EchoCancellationUnavailableError`
with the install hint.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from ._echo import ReferenceAligner, TimedTap, steady_now
from ._native import float_to_pcm16, pcm16_to_float
from .errors import AudioDeviceError, InvalidArgumentError

if TYPE_CHECKING:
    from .options import CallOptions

__all__ = [
    "AEC_INSTALL_HINT",
    "SUPPORTED_RATES",
    "EchoCancellationUnavailableError",
    "EchoCanceller",
    "EchoPath",
    "EchoSetup",
    "aec_available",
    "steady_now",
]

AEC_INSTALL_HINT: Final = (
    "echo cancellation needs the optional 'aec' extra: pip install \"anunzi-fast[aec]\" "
    "(pywebrtc-audio)"
)
# Rates AEC3 runs at natively (10 ms is a whole number of samples, no internal resampling).
SUPPORTED_RATES: Final = (16000, 32000, 48000)
FRAME_MS: Final = 10.0
# AEC3 (as pywebrtc-audio runs it) returns each sample this many samples late, on top of our
# 10 ms framing; measured, and checked by tests/test_aec.py.
AEC3_LATENCY_SAMPLES: Final = {16000: 128, 32000: 260, 48000: 431}
# The reference is left this much ahead of the estimated echo: AEC3 cannot cancel echo that
# arrives before its reference, and its own alignment covers a few milliseconds either way.
MARGIN_MS: Final = 8.0
DEFAULT_MAX_DELAY_MS: Final = 500.0
# Below this bulk delay AEC3's own delay search does better than our realignment, which
# restarts it (measured: benchmarks/bench_aec.py, README); at and above it, ours takes over.
DEFAULT_ALIGN_FROM_MS: Final = 300.0
# An alignment change larger than this restarts AEC3 (see _process_locked).
RESET_AFTER_JUMP_MS: Final = 4.0


class EchoCancellationUnavailableError(AudioDeviceError):
    """Echo cancellation was asked for but ``pywebrtc-audio`` is not installed."""


def aec_available() -> bool:
    """Whether the optional ``pywebrtc-audio`` package is installed (nothing is imported)."""
    return importlib.util.find_spec("pywebrtc_audio") is not None


def _load_aec3(sample_rate: int) -> Any:
    try:
        import pywebrtc_audio  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise EchoCancellationUnavailableError(AEC_INSTALL_HINT) from exc
    return pywebrtc_audio.EchoCanceller(sample_rate=sample_rate, num_channels=1,
                                        stream_delay_ms=0)


def _check_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or int(sample_rate) not in SUPPORTED_RATES:
        raise InvalidArgumentError(
            f"sample_rate must be one of {', '.join(map(str, SUPPORTED_RATES))}, "
            f"not {sample_rate!r}")
    return int(sample_rate)


def _check_delay(name: str, value: object, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= float(value) <= upper:
        raise InvalidArgumentError(f"{name} must be a number from 0 to {upper:g}, not {value!r}")
    return float(value)


class EchoCanceller:
    """Removes the echo of ``reference`` (what was played) from ``capture`` (what was heard).

    Args:
        sample_rate: 16000, 32000 or 48000 Hz (both signals).
        delay_ms: A hint of the bulk delay from reference to echo, used until the signals
            give an estimate; ``None`` starts from 0. It is a starting point, not a promise:
            the estimate replaces it after about a second of far-end speech.
        max_delay_ms: The longest bulk delay searched (up to 2000 ms).
        align_from_ms: The reference is realigned only once the bulk delay reaches this
            (and until it falls below three quarters of it): shorter delays are left to
            AEC3's own delay search, which handles them better than a restart on a new
            alignment does. 0 always realigns.

    When the estimate moves the alignment by more than 4 ms (the first estimate, a device
    change), AEC3 restarts: it converges on the new alignment within about a second, where
    re-adapting its old filter took several; :attr:`resets` counts these restarts.

    Raises:
        EchoCancellationUnavailableError: Without ``pywebrtc-audio`` (message: how to install).
        InvalidArgumentError: For an unsupported rate or an out-of-range delay.

    Thread-safety: :meth:`process`, :meth:`flush` and :meth:`reset` from one thread at a
    time (a second thread gets :class:`RuntimeError`); the properties from any thread (they
    are snapshots taken after each call). The work runs with the GIL released (the delay
    stage in anunzi's C++, the cancelling in AEC3's).
    """

    def __init__(self, sample_rate: int, *, delay_ms: float | None = None,
                 max_delay_ms: float = DEFAULT_MAX_DELAY_MS,
                 align_from_ms: float = DEFAULT_ALIGN_FROM_MS) -> None:
        rate = _check_rate(sample_rate)
        max_delay = _check_delay("max_delay_ms", max_delay_ms, 2000.0)
        if max_delay <= MARGIN_MS:
            raise InvalidArgumentError(f"max_delay_ms must be above {MARGIN_MS:g}")
        hint = 0.0 if delay_ms is None else _check_delay("delay_ms", delay_ms, max_delay)
        # Beyond the search range it could never engage: then it always realigns.
        align_from = _check_delay("align_from_ms", align_from_ms, 2000.0)
        align_from = align_from if align_from <= max_delay else 0.0
        self._aec3 = _load_aec3(rate)
        self.sample_rate = rate
        self.frame = round(rate * FRAME_MS / 1000)
        self._aligner = ReferenceAligner(rate, max_delay_ms=max_delay, initial_delay_ms=hint,
                                         margin_ms=MARGIN_MS, engage_ms=align_from)
        self._lock = threading.Lock()
        self.resets = 0
        self._restart()
        self._snapshot()

    def _restart(self) -> None:
        self._pending_capture = np.zeros(0, np.float32)
        self._pending_reference = np.zeros(0, np.float32)
        self._output = np.zeros(self.frame, np.float32)  # the fixed latency, as silence

    def _snapshot(self) -> None:
        aligner = self._aligner
        self._delay_ms = aligner.delay_ms
        self._confidence = aligner.confidence
        self._estimated = aligner.has_estimate
        self._applied_ms = aligner.applied_delay_ms

    @property
    def latency_samples(self) -> int:
        """How many samples later than its input each output sample comes: our 10 ms framing
        plus AEC3's own delay (128 samples at 16 kHz, 260 at 32 kHz, 431 at 48 kHz)."""
        return self.frame + AEC3_LATENCY_SAMPLES[self.sample_rate]

    @property
    def latency_ms(self) -> float:
        """:attr:`latency_samples` in milliseconds (18 at 16 kHz, about 19 at 48 kHz)."""
        return self.latency_samples * 1000 / self.sample_rate

    @property
    def delay_ms(self) -> float:
        """The bulk delay from reference to echo: the estimate, or the hint before one."""
        return self._delay_ms

    @property
    def delay_estimated(self) -> bool:
        """Whether :attr:`delay_ms` comes from the signals (``False``: still the hint)."""
        return self._estimated

    @property
    def delay_confidence(self) -> float:
        """Confidence of the latest delay measurement, 0 to 1."""
        return self._confidence

    @property
    def applied_delay_ms(self) -> float:
        """How much the reference is delayed now: the estimate less a safety margin once it
        reaches ``align_from_ms``, else 0 (AEC3 aligns by itself)."""
        return self._applied_ms

    def _check(self, capture: npt.ArrayLike, reference: npt.ArrayLike
               ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], bool]:
        cap, ref = np.asarray(capture), np.asarray(reference)
        for name, array in (("capture", cap), ("reference", ref)):
            if array.dtype not in (np.int16, np.float32):
                raise TypeError(f"{name} must be int16 or float32, not {array.dtype}")
            if array.ndim != 1:
                raise InvalidArgumentError(f"{name} must be 1-D (mono), not {array.ndim}-D")
        if cap.dtype != ref.dtype:
            raise TypeError(f"capture and reference must have one dtype, not {cap.dtype} "
                            f"and {ref.dtype}")
        if len(cap) != len(ref):
            raise InvalidArgumentError(
                f"capture and reference must have equal lengths, not {len(cap)} and {len(ref)}")
        pcm = cap.dtype == np.int16
        if pcm:
            return (pcm16_to_float(np.ascontiguousarray(cap)),
                    pcm16_to_float(np.ascontiguousarray(ref)), True)
        return np.ascontiguousarray(cap), np.ascontiguousarray(ref), False

    def process(self, capture: npt.ArrayLike, reference: npt.ArrayLike) -> npt.NDArray[Any]:
        """Cancel the echo of ``reference`` in ``capture``.

        Args:
            capture: The microphone's samples, int16 or float32 (in [-1, 1]), 1-D, any length.
            reference: What the speaker played over the same samples: same dtype and length.

        Returns:
            A new array of ``capture``'s dtype and length: the cleaned capture,
            :attr:`latency_samples` late (the output starts with that much near-silence;
            :meth:`flush` returns the rest, so nothing is lost).

        Raises:
            TypeError: For a dtype other than int16/float32, or two different dtypes.
            InvalidArgumentError: For unequal lengths or a non-1-D array.
        """
        cap, ref, pcm = self._check(capture, reference)
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("EchoCanceller.process is already running in another thread")
        try:
            cleaned = self._process_locked(cap, ref)
        finally:
            self._lock.release()
        return float_to_pcm16(cleaned) if pcm else cleaned

    def _process_locked(self, cap: npt.NDArray[np.float32], ref: npt.NDArray[np.float32]
                        ) -> npt.NDArray[np.float32]:
        n = len(cap)
        aligned = self._aligner.process(ref, cap)
        before = self._applied_ms
        self._snapshot()
        if abs(self._applied_ms - before) > RESET_AFTER_JUMP_MS:
            # AEC3's filter and its own delay search were tuned to the old alignment; from a
            # fresh start it converges on the new one in well under a second, where
            # re-adapting takes seconds.
            self._aec3.reset()
            self.resets += 1
        capture = np.concatenate((self._pending_capture, cap)) if len(
            self._pending_capture) else cap
        reference = np.concatenate((self._pending_reference, aligned)) if len(
            self._pending_reference) else aligned
        whole = len(capture) // self.frame * self.frame
        if whole:
            # AEC3 pads a partial frame with zeros: give it whole frames only, keep the rest.
            cleaned = np.asarray(self._aec3.process(capture[:whole], reference[:whole]),
                                 np.float32)
            self._output = np.concatenate((self._output, cleaned))
        self._pending_capture = capture[whole:].copy()
        self._pending_reference = reference[whole:].copy()
        out, self._output = self._output[:n], self._output[n:]
        return np.ascontiguousarray(out)

    def flush(self) -> npt.NDArray[np.float32]:
        """The last :attr:`latency_samples` of output (float32), completing the input so far.

        What is still held (a partial frame, and AEC3's own delay) is pushed out with silence
        after it. The canceller keeps what it learned and may go on; its next output starts
        with the latency's silence again. Returns float32 whatever the input dtype.
        """
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("EchoCanceller.flush is already running in another thread")
        try:
            held = len(self._pending_capture)
            owed = held + AEC3_LATENCY_SAMPLES[self.sample_rate]  # still inside us or AEC3
            frames = -(-owed // self.frame)
            pad = np.zeros(frames * self.frame - held, np.float32)
            cleaned = np.asarray(self._aec3.process(
                np.concatenate((self._pending_capture, pad)),
                np.concatenate((self._pending_reference, pad))), np.float32)
            result = np.concatenate((self._output, cleaned[:owed]))
            self._restart()
            return np.ascontiguousarray(result)
        finally:
            self._lock.release()

    def reset(self) -> None:
        """Forget the echo path and the delay estimate (back to the hint); drop held audio."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("EchoCanceller.reset is already running in another thread")
        try:
            self._aec3.reset()
            self._aligner.reset()
            self._restart()
            self._snapshot()
        finally:
            self._lock.release()


class _PlayedHistory:
    """The last seconds of played audio, addressed by the time each sample is heard.

    Consumer thread only. The clock of the render blocks is followed smoothly: a block whose
    stamp strays from the running prediction moves the prediction by a twentieth of the
    error (device and host clocks differ by parts per million); a jump beyond 20 ms (a device
    restart, a dropped block) re-anchors it at once.
    """

    def __init__(self, sample_rate: int, seconds: float) -> None:
        self.rate = sample_rate
        self.size = max(1, round(sample_rate * seconds))
        self._ring = np.zeros(self.size, np.float32)
        self._end = 0  # render sample index just past the newest stored
        self._anchor: tuple[int, float] | None = None  # (render index, heard at)

    def add(self, first: int, heard_at: float, samples: npt.NDArray[np.float32]) -> None:
        n = len(samples)
        if self._anchor is None:
            self._anchor = (first, heard_at)
        else:
            index, at = self._anchor
            error = heard_at - (at + (first - index) / self.rate)
            if abs(error) > 0.020:
                self._anchor = (first, heard_at)
            else:
                self._anchor = (index, at + error / 20)
        if n >= self.size:
            samples, first, n = samples[-self.size :], first + n - self.size, self.size
        start = first % self.size
        head = min(n, self.size - start)
        self._ring[start : start + head] = samples[:head]
        self._ring[: n - head] = samples[head:]
        self._end = max(self._end, first + n)

    def at(self, heard_at: float, n: int) -> npt.NDArray[np.float32]:
        """The n samples heard from ``heard_at`` on; silence where nothing was played."""
        out = np.zeros(n, np.float32)
        if self._anchor is None or n == 0:
            return out
        index, at = self._anchor
        first = index + round((heard_at - at) * self.rate)
        lo = max(first, self._end - self.size, 0)
        hi = min(first + n, self._end)
        if hi <= lo:
            return out
        start = lo % self.size
        count = hi - lo
        head = min(count, self.size - start)
        out[lo - first : lo - first + head] = self._ring[start : start + head]
        out[lo - first + head : hi - first] = self._ring[: count - head]
        return out


class EchoPath:
    """A live call's echo cancellation: the device taps and the canceller between them.

    The speaker (producer of :attr:`render_tap`) and the microphone (producer of
    :attr:`capture_tap`) write from their audio callbacks, natively or in Python;
    :meth:`process_next` is the consumer of both, on one worker thread.

    Args:
        sample_rate: The devices' rate (both must use it).
        delay_ms: A hint of the acoustic delay beyond what the devices report.
        canceller: An :class:`EchoCanceller` to use instead of a new one (tests).
        history_s: Played audio kept for alignment, and each tap's capacity.
    """

    def __init__(self, sample_rate: int, *, delay_ms: float | None = None,
                 canceller: EchoCanceller | None = None, history_s: float = 2.0) -> None:
        self.canceller = canceller or EchoCanceller(sample_rate, delay_ms=delay_ms)
        self.sample_rate = self.canceller.sample_rate
        capacity = round(self.sample_rate * history_s)
        self.render_tap = TimedTap(capacity, 1024)
        self.capture_tap = TimedTap(capacity, 1024)
        self._history = _PlayedHistory(self.sample_rate, history_s)
        self.blocks_processed = 0

    def _drain_render(self) -> None:
        while (block := self.render_tap.pop()) is not None:
            heard_at, first, _real, samples = block
            self._history.add(first, heard_at, samples)

    def process_next(self, timeout: float) -> tuple[npt.NDArray[np.float32], float] | None:
        """The next captured block without the echo, and when it was captured.

        Waits up to ``timeout`` seconds (the GIL released) for a block; ``None`` if none came.
        Worker thread only (the consumer of both taps). The block is the canceller's output,
        :attr:`EchoCanceller.latency_ms` late.
        """
        if not self.capture_tap.wait_ready(timeout):
            return None
        block = self.capture_tap.pop()
        if block is None:
            return None
        captured_at, _first, _real, samples = block
        self._drain_render()
        reference = self._history.at(captured_at, len(samples))
        cleaned = self.canceller.process(samples, reference)
        self.blocks_processed += 1
        return cleaned, captured_at


class EchoSetup:
    """A call's echo-cancellation choice, and its :class:`EchoPath` once live devices ask.

    ``call.echo.path()`` builds the path on first use (a speaker and a microphone then share
    it) and returns the same one afterwards; ``None`` when the call does not cancel echo.

    Raises:
        EchoCancellationUnavailableError: With ``echo_cancellation=True`` and no
            ``pywebrtc-audio`` (at ``connect``, before any I/O).
        InvalidArgumentError: With ``echo_cancellation=True`` and a ``playback_rate`` AEC3
            cannot run at.
    """

    def __init__(self, options: CallOptions) -> None:
        self.requested = options.echo_cancellation
        self.sample_rate = options.playback_rate
        self.delay_ms = options.echo_delay_ms
        self._path: EchoPath | None = None
        if self.requested:
            if self.sample_rate not in SUPPORTED_RATES:
                raise InvalidArgumentError(
                    "echo_cancellation needs a playback_rate of "
                    f"{', '.join(map(str, SUPPORTED_RATES))}, not {self.sample_rate}")
            if not aec_available():
                raise EchoCancellationUnavailableError(AEC_INSTALL_HINT)

    @property
    def enabled(self) -> bool:
        """Whether :meth:`path` gives an echo path (asked for, or by default: installed)."""
        if self.requested is False or self.sample_rate not in SUPPORTED_RATES:
            return False
        return bool(self.requested) or aec_available()

    def path(self) -> EchoPath | None:
        """The call's echo path (made once), or ``None`` when echo is not cancelled."""
        if self._path is None and self.enabled:
            assert self.sample_rate is not None
            self._path = EchoPath(self.sample_rate, delay_ms=self.delay_ms)
        return self._path
