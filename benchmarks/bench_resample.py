"""Resampler speed and quality, side by side with python-soxr, libsamplerate and scipy.

Under pytest (pytest-benchmark) every library runs the same one-shot and streaming workloads:
float32 mono, one second of noise, on the rate pairs of issues 3 and 8. Run this file as a
script for the README tables, measured in one run with the libraries' rounds interleaved so
that the machine's load changes hit all alike, one thread each (soxr has one)::

    PYTHONPATH=python python benchmarks/bench_resample.py

It prints the register-only FMA peak of this machine and the multiply-adds per second the
resampler achieves against it, one-shot and streaming speeds with their ratios to soxr HQ,
each pair's stages and latency, and each preset's measured quality: the worst stopband of the
filters built (from the streams' impulse responses), aliasing and THD+N at 48 -> 16 kHz, and
the error on a 32 Hz tone next to soxr's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from math import gcd
from typing import Any

import numpy as np
import pytest
import samplerate
import scipy.signal
import soxr

from anunzi_fast import _resampler
from anunzi_fast import resampler as rs

PAIRS = [(48000, 16000), (16000, 48000), (16000, 44100), (44100, 48000), (8000, 16000)]
PRESETS = ("QQ", "LQ", "MQ", "HQ", "VHQ")
# Stopband edge and attenuation each preset promises, relative to the lower Nyquist frequency.
PROMISES = {"QQ": (1.20, 50.0), "LQ": (1.15, 80.0), "MQ": (1.10, 105.0), "HQ": (1.00, 130.0)}


def _noise(n: int) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(n) * 0.25).astype(np.float32)


def _oneshot(lib: str, in_rate: int, out_rate: int) -> Callable[[np.ndarray], np.ndarray]:
    if lib == "anunzi":  # one thread, as the other libraries use
        return lambda x: rs.resample(x, in_rate, out_rate, "HQ", threads=1)
    if lib == "anunzi-threads":  # the default: every CPU the process may use
        return lambda x: rs.resample(x, in_rate, out_rate, "HQ")
    if lib == "soxr":
        return lambda x: soxr.resample(x, in_rate, out_rate, "HQ")
    if lib == "samplerate":
        return lambda x: samplerate.resample(x, out_rate / in_rate, "sinc_best")
    g = np.gcd(in_rate, out_rate)
    return lambda x: scipy.signal.resample_poly(x, out_rate // g, in_rate // g)


class _SamplerateStream:
    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._ratio = out_rate / in_rate
        self._r = samplerate.Resampler("sinc_best", channels=1)

    def resample_chunk(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        y: np.ndarray = self._r.process(x, self._ratio, end_of_input=last)
        return y


def _stream(lib: str, in_rate: int, out_rate: int) -> Any:
    if lib == "anunzi":
        return rs.ResampleStream(in_rate, out_rate, 1, "float32", "HQ")
    if lib == "soxr":
        return soxr.ResampleStream(in_rate, out_rate, 1, "float32", "HQ")
    return _SamplerateStream(in_rate, out_rate)


@pytest.mark.parametrize("lib", ["anunzi", "anunzi-threads", "soxr", "samplerate", "scipy"])
@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_oneshot_1s_mono_float32(benchmark: Any, lib: str, in_rate: int, out_rate: int) -> None:
    benchmark.group = f"oneshot {in_rate}->{out_rate}"
    x = _noise(in_rate)
    y = benchmark.pedantic(_oneshot(lib, in_rate, out_rate), args=(x,), rounds=5, iterations=1)
    assert abs(len(y) - out_rate) <= 1


@pytest.mark.parametrize("lib", ["anunzi", "soxr", "samplerate"])
@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_stream_10ms_chunk(benchmark: Any, lib: str, in_rate: int, out_rate: int) -> None:
    benchmark.group = f"stream 10 ms {in_rate}->{out_rate}"
    chunk = _noise(in_rate // 100)
    stream = _stream(lib, in_rate, out_rate)
    for _ in range(20):  # past the start-up, into the steady state
        stream.resample_chunk(chunk)
    y = benchmark.pedantic(stream.resample_chunk, args=(chunk,), rounds=200, iterations=5)
    if lib == "anunzi":  # sample-by-sample release: every chunk yields its share, no bursts
        assert abs(len(y) - out_rate / 100) < 1
    else:
        assert y.ndim == 1


# ---------------------------------------------------------------- report (script mode)


def _best_time(f: Callable[[], Any], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        f()
    return (time.perf_counter() - t0) / number


def _db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-30)))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _tone(freq: float, rate: float, n: int) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def _windowed_tone(rate: int, seconds: int = 2, freq: float = 32.0) -> np.ndarray:
    t = np.arange(seconds * rate) / rate
    return np.sin(2 * np.pi * freq * t) * np.sin(np.pi * t / seconds) ** 2


def _core(in_rate: int, out_rate: int, quality: str = "HQ") -> Any:
    return rs.ResampleStream(in_rate, out_rate, 1, "float32", quality)._core


def _worst_stopband(in_rate: int, out_rate: int, quality: str) -> float:
    """The stream's worst stopband, dB, from its impulse responses (float64 arithmetic).

    For the pairs measured here every stream is one polyphase filter in effect (its cascade
    repeats every `down` inputs of the reduced ratio): `down` impulse responses interleave
    into that filter at `up` times the input rate (tests/test_resample.py does the same, and
    measures cascades with half-bands too).
    """
    g = gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    n = 3000
    outputs = []
    for p in range(down):
        x = np.zeros(n)
        x[n // 2 + p] = 1.0
        outputs.append(rs.resample(x, in_rate, out_rate, quality, threads=1))
    m = min(len(y) for y in outputs)
    h = np.zeros(m * down + down * up)
    for p, y in enumerate(outputs):
        h[np.arange(m) * down - p * up + (down - 1) * up] = y[:m]
    response = np.abs(np.fft.rfft(h, 1 << 20)) / up
    f = np.arange(len(response)) * up / (1 << 20)
    stopband, _ = PROMISES[quality]
    return _db(response[f >= stopband * 0.5 * min(1.0, out_rate / in_rate)].max())


def _quality(quality: str) -> dict[str, float]:
    dtype = np.float64 if quality == "VHQ" else np.float32
    out: dict[str, float] = {}
    for freq in (10000, 20000):
        x = _tone(freq, 48000, 48000).astype(dtype)
        y = rs.resample(x, 48000, 16000, quality)
        out[f"alias {freq // 1000}k"] = _db(_rms(y[800:-800]) / _rms(x))
    x = _tone(1000, 48000, 48000).astype(dtype)
    y = rs.resample(x, 48000, 16000, quality).astype(np.float64)[800:-800]
    t = np.arange(800, 800 + len(y)) / 16000
    basis = np.stack([np.sin(2 * np.pi * 1000 * t), np.cos(2 * np.pi * 1000 * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    out["THD+N 1k"] = _db(_rms(y - basis @ coef) / _rms(basis @ coef))
    out["latency ms"] = _core(48000, 16000, quality).latency_frames / 16000 * 1000
    if quality in PROMISES:
        pairs = [(48000, 16000), (16000, 48000), (44100, 48000), (48000, 44100), (16000, 44100)]
        out["worst stopband"] = max(_worst_stopband(a, b, quality) for a, b in pairs)
    ours = theirs = 0.0
    for in_rate, out_rate in ((44100, 22050), (22050, 32000)):
        x = _windowed_tone(in_rate).astype(np.float32)
        expected = _windowed_tone(out_rate)
        y = rs.resample(x, in_rate, out_rate, quality)
        ours = max(ours, float(np.abs(y - expected).max()))
        y = soxr.resample(x, in_rate, out_rate, quality)
        theirs = max(theirs, float(np.abs(y - expected).max()))
    out["32 Hz error"], out["soxr 32 Hz error"] = ours, theirs
    return out


def _oneshot_table(threads: int, peak: float) -> None:
    print(
        "One-shot, float32 mono, 2 s of noise, input Msamples/s: anunzi and soxr best of 15"
        " rounds that interleave them (and nothing else, so both run warm); samplerate and"
        " scipy best of 3 after them. G MAC/s: multiply-adds per second of anunzi on one"
        " thread\n"
    )
    print(
        f"| rate pair | anunzi HQ, 1 thread | anunzi HQ, {threads} threads | soxr HQ |"
        " samplerate sinc_best | scipy resample_poly | anunzi/soxr, 1 thread | G MAC/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for in_rate, out_rate in PAIRS:
        x = _noise(in_rate * 2)
        best: dict[str, float] = {}
        for libs, rounds in (
            (("anunzi", "anunzi-threads", "soxr"), 15),
            (("samplerate", "scipy"), 3),
        ):
            funcs = {lib: _oneshot(lib, in_rate, out_rate) for lib in libs}
            best.update(dict.fromkeys(libs, float("inf")))
            for _ in range(rounds):  # rounds interleave the libraries: load changes hit all alike
                for lib in libs:
                    best[lib] = min(best[lib], _best_time(lambda f=funcs[lib], x=x: f(x), 1))
        speed = {lib: len(x) / t / 1e6 for lib, t in best.items()}
        macs = speed["anunzi"] * 1e6 * out_rate / in_rate * _core(in_rate, out_rate).taps / 1e9
        print(
            f"| {in_rate}->{out_rate} | {speed['anunzi']:.0f} | {speed['anunzi-threads']:.0f} |"
            f" {speed['soxr']:.0f} | {speed['samplerate']:.1f} | {speed['scipy']:.0f} |"
            f" **{speed['anunzi'] / speed['soxr']:.2f}x** |"
            f" {macs:.0f} ({macs / peak:.0%} of peak) |"
        )


def _stream_table() -> None:
    print(
        "\nStreaming, 10 ms float32 mono chunks, us per call"
        " (best of 9 interleaved rounds of 300 calls)\n"
    )
    print("| rate pair | anunzi HQ | soxr HQ | samplerate sinc_best | anunzi/soxr time |")
    print("|---|---|---|---|---|")
    for in_rate, out_rate in PAIRS:
        chunk = _noise(in_rate // 100)
        libs = ("anunzi", "soxr", "samplerate")
        streams = {lib: _stream(lib, in_rate, out_rate) for lib in libs}
        for stream in streams.values():
            for _ in range(20):
                stream.resample_chunk(chunk)
        us = dict.fromkeys(streams, float("inf"))
        for _ in range(9):
            for lib, stream in streams.items():
                t = _best_time(lambda s=stream, c=chunk: s.resample_chunk(c), 300)
                us[lib] = min(us[lib], t * 1e6)
        print(
            f"| {in_rate}->{out_rate} | {us['anunzi']:.2f} | {us['soxr']:.2f} |"
            f" {us['samplerate']:.2f} | **{us['anunzi'] / us['soxr']:.2f}** |"
        )


def _stage_table() -> None:
    print("\nHQ stages, multiply-adds per output and latency (delay() at steady state)\n")
    print("| rate pair | stages (ratio, taps, kernel) | multiply-adds per output | latency |")
    print("|---|---|---|---|")
    for in_rate, out_rate in [*PAIRS, (48000, 8000), (44100, 16000), (96000, 16000)]:
        core = _core(in_rate, out_rate)
        stages = " + ".join(
            f"{s['design']} {s['up']}/{s['down']} {s['taps']} ({s['kernel']})" for s in core.stages
        )
        s = rs.ResampleStream(in_rate, out_rate, 1, "float32", "HQ")
        s.resample_chunk(np.zeros(in_rate // 10, np.float32))
        print(
            f"| {in_rate}->{out_rate} | {stages} | {core.taps} |"
            f" {s.delay() / out_rate * 1000:.2f} ms |"
        )


def main() -> None:
    threads = rs._default_threads()
    peak = _resampler.fma_peak() / 1e9
    isa = _core(48000, 16000).isa
    print(f"Register-only FMA peak ({isa}, float32, 12 chains): {peak:.0f} G multiply-adds/s\n")
    _oneshot_table(threads, peak)
    _stream_table()
    _stage_table()
    print("\nQuality per preset at 48 kHz -> 16 kHz (dB re input; VHQ on float64); worst stopband")
    print("over 48k <-> 16k, 44.1k <-> 48k and 16k -> 44.1k; 32 Hz error: max |resampled -")
    print("tone at the new rate| at full scale, 44.1k -> 22.05k and 22.05k -> 32k, float32\n")
    keys = ["alias 10k", "alias 20k", "THD+N 1k", "worst stopband", "latency ms"]
    print("| preset | " + " | ".join(keys) + " | 32 Hz error | soxr 32 Hz error |")
    print("|---" * (len(keys) + 3) + "|")
    for quality in PRESETS:
        q = _quality(quality)
        cells = [f"{q[k]:.1f}" if k in q else "-" for k in keys]
        print(
            f"| {quality} | " + " | ".join(cells) + f" | {q['32 Hz error']:.1e} |"
            f" {q['soxr 32 Hz error']:.1e} |"
        )


if __name__ == "__main__":
    main()
