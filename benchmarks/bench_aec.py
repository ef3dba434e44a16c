"""Echo cancellation: offline scenarios and CPU per 10 ms frame.

``PYTHONPATH=python python benchmarks/bench_aec.py [--rate 48000]`` prints the scenario table:
speech (espeak-ng, generated at run time; synthetic speech-like noise without it) through
synthetic rooms (direct path, early reflections, a reverberant tail, noise), the echo delayed
by 0-250 ms beyond what the caller knows, for three figures each:

- ERLE: echo return loss enhancement (echo in over residue out, dB) after 2 s of far-end
  speech, with far-end speech alone;
- near-end passthrough: output over input level with near-end speech alone (0 dB is perfect);
- double-talk retention: the near-end speech's level in the output while both talk (its
  least-squares gain, dB), after the canceller has converged on far-end speech alone;

for anunzi-fast's :class:`~anunzi_fast.aec.EchoCanceller` (delay stage + AEC3) and, side by
side, AEC3 alone (``pywebrtc_audio.EchoCanceller(stream_delay_ms=0)``). As pytest benchmarks
(``pytest benchmarks/bench_aec.py``): the CPU time of one 10 ms frame through each.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

pywebrtc_audio = pytest.importorskip("pywebrtc_audio", reason="needs the 'aec' extra")
signal = pytest.importorskip("scipy.signal")

from anunzi_fast.aec import AEC3_LATENCY_SAMPLES, DEFAULT_ALIGN_FROM_MS, EchoCanceller  # noqa: E402
from anunzi_fast.resampler import resample  # noqa: E402

Floats = npt.NDArray[np.float32]
DELAYS_MS = (0, 50, 100, 180, 250)
LONG_DELAY_MS = 600  # beyond AEC3's own delay search (about 450 ms here)
FAR_TEXT = (
    "Thank you for calling. I am the voice agent of this service, and I am happy to help you "
    "today. Before we start, let me read you a few details about your booking, so that we can "
    "check them together. Your flight leaves on Tuesday morning at nine fifteen, from gate "
    "twenty three, and arrives a little after noon.")
NEAR_TEXT = ("Sorry to interrupt, but could you please repeat the departure time? I did not "
             "catch it the first time.")


def espeak(text: str, rate: int, voice: str) -> Floats | None:
    """``text`` spoken by espeak-ng at ``rate``, float32; ``None`` without espeak-ng."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run([binary, "-v", voice, "-s", "165", "-w", str(path), text], check=True,
                       capture_output=True, timeout=60)
        with wave.open(str(path)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
            source_rate = w.getframerate()
    speech = pcm.astype(np.float32) / 32768
    return np.asarray(resample(speech, source_rate, rate), np.float32)


def speech_like(seconds: float, rate: int, seed: int) -> Floats:
    """Syllable-like bursts of coloured noise with pauses: speech's envelope, not its words."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(seconds * rate), np.float32)
    position = 0
    while position < len(out):
        length = round(rng.uniform(0.1, 0.3) * rate)
        if rng.uniform() < 0.15:  # a pause
            position += length
            continue
        centre = rng.uniform(300, 3000)
        b, a = signal.iirpeak(centre, 3, fs=rate)
        burst = signal.lfilter(b, a, rng.standard_normal(length)) * np.hanning(length)
        end = min(len(out), position + length)
        out[position:end] = (0.1 * burst / (np.abs(burst).max() + 1e-9))[: end - position]
        position = end
    return out


@functools.cache
def voices(rate: int) -> tuple[Floats, Floats, str]:
    """Far-end and near-end speech at ``rate``, and where they come from."""
    far = espeak(FAR_TEXT, rate, "en-us")
    near = espeak(NEAR_TEXT, rate, "en-gb+f3")
    if far is None or near is None:
        return speech_like(14, rate, 1), speech_like(5, rate, 2), "synthetic speech-like noise"
    return far * 0.5, near * 0.5, "espeak-ng speech"


def room_response(rate: int, rt60: float = 0.35, seed: int = 0) -> npt.NDArray[np.float64]:
    """Direct path, a few early reflections, then an exponentially decaying diffuse tail."""
    rng = np.random.default_rng(seed)
    n = round(rt60 * rate)
    t = np.arange(n) / rate
    # The same reverberant energy at every rate: per-tap amplitude scales with 1/sqrt(rate).
    h = 0.08 * np.sqrt(16_000 / rate) * rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    h[: round(0.003 * rate)] = 0  # the tail starts after the direct sound
    h[0] = 0.7
    for delay_ms, gain in ((2.1, 0.35), (4.7, -0.25), (7.9, 0.2), (13.3, 0.12)):
        h[round(delay_ms * rate / 1000)] += gain
    return h


def echo_of(far: Floats, rate: int, delay_ms: float, seed: int = 0) -> Floats:
    """What the microphone hears of ``far``: the room, then the bulk delay."""
    wet = signal.fftconvolve(far, room_response(rate, seed=seed))[: len(far)]
    d = round(delay_ms * rate / 1000)
    return np.concatenate((np.zeros(d), wet))[: len(far)].astype(np.float32)


def noise(n: int, level: float = 3e-4, seed: int = 9) -> Floats:
    return (np.random.default_rng(seed).standard_normal(n) * level).astype(np.float32)


class Aec3Alone:
    """AEC3 without our delay stage, in whole 10 ms frames, its own delay taken out."""

    def __init__(self, rate: int) -> None:
        self.inner = pywebrtc_audio.EchoCanceller(sample_rate=rate, stream_delay_ms=0)
        self.lag = AEC3_LATENCY_SAMPLES[rate]
        self.frame = rate // 100

    def run(self, capture: Floats, reference: Floats) -> Floats:
        pad = np.zeros(-(-self.lag // self.frame) * self.frame, np.float32)
        out = self.inner.process(np.concatenate((capture, pad)), np.concatenate((reference, pad)))
        return np.asarray(out[self.lag : self.lag + len(capture)], np.float32)


class Ours:
    max_delay_ms = 500.0  # the default
    align_from_ms = DEFAULT_ALIGN_FROM_MS  # the default: short delays are left to AEC3

    def __init__(self, rate: int) -> None:
        self.inner = EchoCanceller(rate, max_delay_ms=self.max_delay_ms,
                                   align_from_ms=self.align_from_ms)

    def run(self, capture: Floats, reference: Floats) -> Floats:
        # 10 ms chunks as a device would deliver them; drop the fixed latency to compare.
        frame = self.inner.frame
        chunks = [self.inner.process(capture[i : i + frame], reference[i : i + frame])
                  for i in range(0, len(capture), frame)]
        out = np.concatenate([*chunks, self.inner.flush()])
        return np.asarray(out[self.inner.latency_samples :], np.float32)


class OursLongRange(Ours):
    """For bulk delays beyond the default search range."""

    max_delay_ms = 1000.0


class AlwaysAligned(Ours):
    """Our delay stage applied at every delay (align_from_ms=0), to show what it costs."""

    align_from_ms = 0.0


class AlwaysAlignedLongRange(AlwaysAligned):
    max_delay_ms = 1000.0


def db(numerator: float, denominator: float) -> float:
    return float(10 * np.log10(max(numerator, 1e-20) / max(denominator, 1e-20)))


def speech_seconds_reached(far: Floats, rate: int, seconds: float) -> int:
    """The sample index by which ``far`` has had ``seconds`` of active speech."""
    frame = rate // 100
    frames = far[: len(far) // frame * frame].reshape(-1, frame)
    active = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > 10 ** (-50 / 20)
    reached = np.flatnonzero(np.cumsum(active) * 0.01 >= seconds)
    return int(reached[0] + 1) * frame if len(reached) else len(far)


@dataclass
class Figures:
    erle_db: float
    passthrough_db: float
    double_talk_db: float


def scenario(engine_kind: type[Any], rate: int, delay_ms: float) -> Figures:
    far, near, _ = voices(rate)
    n = len(far) // (rate // 100) * (rate // 100)
    far = far[:n]
    echo = echo_of(far, rate, delay_ms)
    floor = noise(n)
    # 1. Far end alone: ERLE after 2 s of far-end speech.
    out = engine_kind(rate).run(echo + floor, far)
    start = speech_seconds_reached(far, rate, 2.0)
    erle = db(float(np.mean(echo[start:] ** 2)), float(np.mean(out[start:] ** 2)))
    # 2. Near end alone (the far end silent): what passes of the user's speech.
    m = len(near) // (rate // 100) * (rate // 100)
    quiet = np.zeros(m, np.float32)
    out = engine_kind(rate).run(near[:m] + noise(m), quiet)
    passthrough = db(float(np.mean(out**2)), float(np.mean(near[:m] ** 2)))
    # 3. Double talk: the user speaks over the agent from 4 s of far end on.
    begin = min(4 * rate, n - m)
    talk = np.zeros(n, np.float32)
    talk[begin : begin + m] = near[:m]
    out = engine_kind(rate).run(echo + talk + floor, far)
    window = slice(begin, begin + m)
    gain = float(np.dot(out[window], talk[window]) / np.dot(talk[window], talk[window]))
    return Figures(erle, passthrough, 20 * np.log10(max(abs(gain), 1e-6)))


def table(rate: int) -> str:
    _, _, source = voices(rate)
    lines = [f"Echo cancellation at {rate} Hz ({source}; room RT60 0.35 s, noise -70 dBFS)",
             "",
             "| bulk delay | ERLE ours | always aligned | AEC3 alone | passthrough ours / alone "
             "| double talk ours / alone |",
             "|---|---|---|---|---|---|"]
    for delay in (*DELAYS_MS, LONG_DELAY_MS):
        long_range = delay > Ours.max_delay_ms
        ours = scenario(OursLongRange if long_range else Ours, rate, delay)
        always = scenario(AlwaysAlignedLongRange if long_range else AlwaysAligned, rate, delay)
        alone = scenario(Aec3Alone, rate, delay)
        label = f"{delay} ms" if delay in DELAYS_MS else f"{delay} ms (max_delay_ms=1000)"
        lines.append(
            f"| {label} | {ours.erle_db:.1f} dB | {always.erle_db:.1f} dB "
            f"| {alone.erle_db:.1f} dB "
            f"| {ours.passthrough_db:+.1f} / {alone.passthrough_db:+.1f} dB "
            f"| {ours.double_talk_db:+.1f} / {alone.double_talk_db:+.1f} dB |")
    return "\n".join(lines)


# --- CPU per 10 ms frame ------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16_000, 48_000])
def test_cpu_per_frame_ours(benchmark: Any, rate: int) -> None:
    canceller = EchoCanceller(rate)
    frame = rate // 100
    far = speech_like(2, rate, 3)
    mic = echo_of(far, rate, 100) + noise(len(far))
    canceller.process(mic, far)  # warm: the estimator's histories are full
    position = [0]

    def one_frame() -> None:
        i = position[0] % (len(far) - frame)
        canceller.process(mic[i : i + frame], far[i : i + frame])
        position[0] += frame

    benchmark(one_frame)


@pytest.mark.parametrize("rate", [16_000, 48_000])
def test_cpu_per_frame_aec3_alone(benchmark: Any, rate: int) -> None:
    inner = pywebrtc_audio.EchoCanceller(sample_rate=rate, stream_delay_ms=0)
    frame = rate // 100
    far = speech_like(2, rate, 3)
    mic = echo_of(far, rate, 100) + noise(len(far))
    position = [0]

    def one_frame() -> None:
        i = position[0] % (len(far) - frame)
        inner.process(mic[i : i + frame], far[i : i + frame])
        position[0] += frame

    benchmark(one_frame)


def cpu_share(rate: int, seconds: float = 20.0) -> tuple[float, float]:
    """CPU time per 10 ms frame (us) and share of one core, over ``seconds`` of audio."""
    canceller = EchoCanceller(rate)
    frame = rate // 100
    far = speech_like(seconds, rate, 3)
    mic = echo_of(far, rate, 100) + noise(len(far))
    started = time.process_time()
    for i in range(0, len(far) - frame, frame):
        canceller.process(mic[i : i + frame], far[i : i + frame])
    per_frame = (time.process_time() - started) / (len(far) // frame)
    return per_frame * 1e6, per_frame / 0.010 * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, action="append", choices=(16_000, 48_000))
    args = parser.parse_args()
    for rate in args.rate or [16_000, 48_000]:
        print(table(rate))
        micros, share = cpu_share(rate)
        print(f"\nCPU per 10 ms frame (ours, delay stage + AEC3): {micros:.0f} us = "
              f"{share:.2f} % of a core\n")


if __name__ == "__main__":
    main()
