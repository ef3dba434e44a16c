"""A small energy voice-activity detector, used to find the ends of utterances.

It is deliberately simple: frames of ``frame_ms`` whose RMS level is above ``threshold_dbfs``
count as speech; ``min_speech_ms`` of consecutive speech starts an utterance and ``hangover_ms``
of consecutive non-speech ends it. The emulator uses it to decide when to answer, the client to
measure response latency from the end of the user's speech. Events carry sample indices, so
the caller can map them to its own clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError

__all__ = ["EnergyVad", "SpeechEnded", "SpeechStarted", "VadEvent"]


@dataclass(frozen=True)
class SpeechStarted:
    """An utterance starts at sample index ``sample`` (start of its first loud frame)."""

    sample: int


@dataclass(frozen=True)
class SpeechEnded:
    """An utterance ended at sample index ``sample`` (just past its last loud frame)."""

    sample: int


VadEvent: TypeAlias = SpeechStarted | SpeechEnded

_NO_SAMPLES: npt.NDArray[np.float32] = np.zeros(0, np.float32)


class EnergyVad:
    """Streaming energy VAD over mono audio.

    Args:
        sample_rate: Sample rate of the audio fed to :meth:`process`.
        frame_ms: Analysis frame length.
        threshold_dbfs: RMS level above which a frame counts as speech (0 dBFS = full scale).
        min_speech_ms: Consecutive speech needed to start an utterance (ignores clicks).
        hangover_ms: Consecutive non-speech needed to end it (bridges pauses between words).
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        frame_ms: float = 20.0,
        threshold_dbfs: float = -40.0,
        min_speech_ms: float = 60.0,
        hangover_ms: float = 400.0,
    ) -> None:
        if sample_rate <= 0 or frame_ms <= 0 or min_speech_ms < 0 or hangover_ms < 0:
            raise InvalidArgumentError("sample_rate and frame_ms must be > 0, durations >= 0")
        self.sample_rate = sample_rate
        self.frame_length = max(1, round(sample_rate * frame_ms / 1000.0))
        frame_seconds = self.frame_length / sample_rate
        self._onset_frames = max(1, math.ceil(min_speech_ms / 1000.0 / frame_seconds))
        self._hangover_frames = max(1, math.ceil(hangover_ms / 1000.0 / frame_seconds))
        # Compare frame energies in int16 units, not dB: no log and no rescaling per frame.
        mean_square = (10.0 ** (threshold_dbfs / 20.0) * 32768.0) ** 2
        self._threshold_energy = mean_square * self.frame_length
        self._pending = _NO_SAMPLES
        self._frame_index = 0
        self._loud_run = 0
        self._quiet_run = 0
        self._last_loud_end = 0
        self.in_speech = False

    @property
    def samples_seen(self) -> int:
        """Samples fed so far, including those waiting to complete a frame."""
        return self._frame_index * self.frame_length + len(self._pending)

    def process(self, samples: npt.NDArray[np.int16] | npt.NDArray[np.floating]) -> list[VadEvent]:
        """Feed mono samples (int16, or float in [-1, 1]); return the events they complete."""
        if (type(samples) is np.ndarray and samples.dtype == np.int16 and samples.ndim == 1
                and len(samples) == self.frame_length and not len(self._pending)):
            # One int16 frame per call (a 20 ms WebSocket frame): its energy, nothing else.
            scaled_frame = samples.astype(np.float32)
            events: list[VadEvent] = []
            self._step(float(np.dot(scaled_frame, scaled_frame)) > self._threshold_energy, events)
            return events
        array = np.asarray(samples)
        if array.ndim != 1:
            raise InvalidArgumentError("the VAD takes mono (1-D) audio")
        # float32 in int16 units: exact for int16, and precise enough for a threshold.
        scaled = array.astype(np.float32) if array.dtype == np.int16 else (
            array * 32768.0).astype(np.float32)
        if len(self._pending):
            scaled = np.concatenate((self._pending, scaled))
        whole = len(scaled) // self.frame_length * self.frame_length
        # Copy the remainder so as not to keep the whole input alive; usually it is empty.
        self._pending = scaled[whole:].copy() if whole < len(scaled) else _NO_SAMPLES
        if not whole:
            return []
        if whole == len(scaled) == self.frame_length:  # one block per frame: a BLAS dot
            energies = [float(np.dot(scaled, scaled))]
        else:
            frames = scaled[:whole].reshape(-1, self.frame_length)
            energies = np.einsum("ij,ij->i", frames, frames).tolist()
        events = []
        for energy in energies:
            self._step(energy > self._threshold_energy, events)
        return events

    def _step(self, is_loud: bool, events: list[VadEvent]) -> None:
        index = self._frame_index
        self._frame_index += 1
        if is_loud:
            self._loud_run += 1
            self._quiet_run = 0
            self._last_loud_end = (index + 1) * self.frame_length
            if not self.in_speech and self._loud_run >= self._onset_frames:
                self.in_speech = True
                start = (index + 1 - self._loud_run) * self.frame_length
                events.append(SpeechStarted(start))
        else:
            self._loud_run = 0
            self._quiet_run += 1
            if self.in_speech and self._quiet_run >= self._hangover_frames:
                self.in_speech = False
                events.append(SpeechEnded(self._last_loud_end))
