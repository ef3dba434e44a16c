"""The emulated agent's audio: its greeting, and echoing utterances back at 16 kHz.

This module does no I/O. The server feeds :class:`EchoAgent` the user's 48 kHz audio and sends
whatever replies it returns. Decimation uses its own small FIR filter on purpose: a test peer
that shared the client's resampler could not catch that resampler's bugs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..protocol import AGENT_SAMPLE_RATE, CLIENT_SAMPLE_RATE
from ..vad import EnergyVad, SpeechEnded, SpeechStarted

__all__ = ["EchoAgent", "decimate_48k_to_16k", "default_greeting"]

_DECIMATION = CLIENT_SAMPLE_RATE // AGENT_SAMPLE_RATE


def _lowpass_taps(num_taps: int = 63, cutoff: float = 7_000.0) -> npt.NDArray[np.float64]:
    """Windowed-sinc low-pass taps for 48 kHz, unity gain at DC."""
    centre = (num_taps - 1) / 2
    times = (np.arange(num_taps) - centre) / CLIENT_SAMPLE_RATE
    taps: npt.NDArray[np.float64] = np.sinc(2 * cutoff * times) * np.blackman(num_taps)
    normalised: npt.NDArray[np.float64] = taps / float(taps.sum())
    return normalised


_TAPS = _lowpass_taps()
# The taps of each phase: k = 3q + phase (zero-padded to a multiple of 3 taps).
_PHASE_TAPS = [np.concatenate([_TAPS, np.zeros(-len(_TAPS) % _DECIMATION)])[phase::_DECIMATION]
               for phase in range(_DECIMATION)]


def decimate_48k_to_16k(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """Low-pass and keep every third sample: ``ceil(n / 3)`` samples out, a new array.

    Output ``m`` is ``sum_k taps[k] * x[delay + 3m - k]`` (the filter centred on input ``3m``).
    Only the kept outputs are computed: one short convolution per phase of the input, a third
    of the multiply-adds of filtering everything and dropping two samples in three.
    """
    count = len(samples)
    if count == 0:
        return np.zeros(0, np.int16)
    taps = len(_TAPS)
    delay = (taps - 1) // 2
    # x[j] sits at padded[j + lead]: zeros before and after stand for the signal's ends.
    lead = taps - 1
    padded = np.zeros(lead + count + taps + _DECIMATION, np.float64)
    padded[lead : lead + count] = samples
    outputs = -(-count // _DECIMATION)
    filtered = np.zeros(outputs)
    for phase in range(_DECIMATION):
        # Taps k = 3q + phase meet inputs 3(m + base - q) + offset: one phase of the input.
        base, offset = divmod(delay + lead - phase, _DECIMATION)
        full = np.convolve(padded[offset::_DECIMATION], _PHASE_TAPS[phase])
        filtered += full[base : base + outputs]
    return np.clip(np.rint(filtered), -32768, 32767).astype(np.int16)


def default_greeting() -> npt.NDArray[np.int16]:
    """Two short chimes at 16 kHz (0.6 s): recognisable, and loud enough for any VAD."""
    rate = AGENT_SAMPLE_RATE
    parts = []
    for frequency in (523.25, 659.25):
        t = np.arange(int(0.25 * rate)) / rate
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)  # 20 ms fades: no clicks
        parts.append(0.3 * envelope * np.sin(2 * np.pi * frequency * t))
        parts.append(np.zeros(int(0.05 * rate)))
    return np.round(np.concatenate(parts) * 32767).astype(np.int16)


class EchoAgent:
    """Finds the user's utterances with an energy VAD and returns each one at 16 kHz.

    Args:
        vad: The detector, at 48 kHz; a default :class:`EnergyVad` if ``None``.
        max_utterance_seconds: Longer speech is answered in pieces of this length, which
            bounds memory whatever the client sends.
    """

    def __init__(
        self, vad: EnergyVad | None = None, *, max_utterance_seconds: float = 30.0
    ) -> None:
        self.vad = vad or EnergyVad(CLIENT_SAMPLE_RATE)
        self._max_samples = int(max_utterance_seconds * CLIENT_SAMPLE_RATE)
        self._chunks: list[npt.NDArray[np.int16]] = []
        self._buffer_start = 0  # sample index of the first buffered sample
        self._buffered = 0
        self._speech_start: int | None = None
        self.utterances = 0

    def receive(self, samples: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]:
        """Take user audio at 48 kHz; return the replies (16 kHz) of utterances it completed."""
        self._chunks.append(samples)
        self._buffered += len(samples)
        replies = []
        for event in self.vad.process(samples):
            if isinstance(event, SpeechStarted):
                self._speech_start = event.sample
            elif isinstance(event, SpeechEnded) and self._speech_start is not None:
                replies.append(self._take(self._speech_start, event.sample))
                self._speech_start = None
        if self._speech_start is None:
            self._forget_before(self.vad.samples_seen - self.vad.frame_length * 8)
        elif self.vad.samples_seen - self._speech_start > self._max_samples:
            end = self.vad.samples_seen
            replies.append(self._take(self._speech_start, end))
            self._speech_start = end
        return replies

    def _take(self, start: int, end: int) -> npt.NDArray[np.int16]:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        utterance = audio[max(0, start - self._buffer_start) : end - self._buffer_start]
        self.utterances += 1
        self._chunks = [audio[end - self._buffer_start :]]
        self._buffered = len(self._chunks[0])
        self._buffer_start = end
        return decimate_48k_to_16k(utterance)

    def _forget_before(self, index: int) -> None:
        # Outside speech only a short pre-roll matters; keep memory flat during long silence.
        drop = index - self._buffer_start
        if drop <= CLIENT_SAMPLE_RATE:
            return
        audio = np.concatenate(self._chunks)
        self._chunks = [audio[drop:]]
        self._buffer_start += drop
        self._buffered = len(self._chunks[0])
