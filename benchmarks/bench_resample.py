"""Resampler speed and quality, side by side with python-soxr, libsamplerate and scipy.

Under pytest (pytest-benchmark) every library runs the same one-shot and streaming workloads:
float32 mono, one second of noise, on the four rate pairs of issue 3. Run this file as a
script for the README table (best of several runs, ratios against soxr HQ) and the measured
quality and latency of each preset::

    PYTHONPATH=python python benchmarks/bench_resample.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import samplerate
import scipy.signal
import soxr

from anunzi_fast import resampler as rs

PAIRS = [(48000, 16000), (16000, 48000), (16000, 44100), (44100, 48000)]


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


def _best_time(f: Callable[[], Any], repeat: int, number: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            f()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def _db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-30)))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _tone(freq: float, rate: float, n: int) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def _quality(quality: str) -> dict[str, float]:
    dtype = np.float64 if quality == "VHQ" else np.float32
    out: dict[str, float] = {}
    for freq in (10000, 20000):
        x = _tone(freq, 48000, 48000).astype(dtype)
        y = rs.resample(x, 48000, 16000, quality)
        out[f"alias {freq // 1000}k"] = _db(_rms(y[800:-800]) / _rms(x))
    x = _tone(7280, 48000, 48000).astype(dtype)  # 0.91 of the 8 kHz output Nyquist
    y = rs.resample(x, 48000, 16000, quality)
    out["gain at 0.91"] = _db(_rms(y[800:-800]) / _rms(_tone(7280, 16000, 16000)[800:-800]))
    x = _tone(1000, 48000, 48000).astype(dtype)
    y = rs.resample(x, 48000, 16000, quality).astype(np.float64)[800:-800]
    t = np.arange(800, 800 + len(y)) / 16000
    basis = np.stack([np.sin(2 * np.pi * 1000 * t), np.cos(2 * np.pi * 1000 * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    out["THD+N 1k"] = _db(_rms(y - basis @ coef) / _rms(basis @ coef))
    stream = rs.ResampleStream(48000, 16000, 1, dtype, quality)
    stream.resample_chunk(np.zeros(4800, dtype))
    out["latency ms"] = stream.delay() / 16000 * 1000
    return out


def main() -> None:
    threads = rs._default_threads()
    print("One-shot, float32 mono, 2 s of noise, input Msamples/s (best of 9 interleaved rounds)\n")
    print(
        f"| rate pair | anunzi HQ, 1 thread | anunzi HQ, {threads} threads | soxr HQ |"
        " samplerate sinc_best | scipy resample_poly | anunzi/soxr, 1 thread |"
        f" anunzi/soxr, {threads} threads |"
    )
    print("|---|---|---|---|---|---|---|---|")
    libs = ("anunzi", "anunzi-threads", "soxr", "samplerate", "scipy")
    for in_rate, out_rate in PAIRS:
        x = _noise(in_rate * 2)
        funcs = {lib: _oneshot(lib, in_rate, out_rate) for lib in libs}
        best = dict.fromkeys(libs, float("inf"))
        for _ in range(9):  # rounds interleave the libraries, so load changes hit all alike
            for lib in libs:
                best[lib] = min(best[lib], _best_time(lambda f=funcs[lib], x=x: f(x), 1, 1))
        speed = {lib: len(x) / best[lib] / 1e6 for lib in libs}
        print(
            f"| {in_rate}->{out_rate} | {speed['anunzi']:.0f} | {speed['anunzi-threads']:.0f} |"
            f" {speed['soxr']:.0f} | {speed['samplerate']:.1f} | {speed['scipy']:.0f} |"
            f" {speed['anunzi'] / speed['soxr']:.2f}x |"
            f" {speed['anunzi-threads'] / speed['soxr']:.2f}x |"
        )
    print("\nStreaming, 10 ms float32 mono chunks, us per call (best of 9 interleaved rounds)\n")
    print("| rate pair | anunzi HQ | soxr HQ | samplerate sinc_best | anunzi/soxr time |")
    print("|---|---|---|---|---|")
    for in_rate, out_rate in PAIRS:
        chunk = _noise(in_rate // 100)
        streams = {lib: _stream(lib, in_rate, out_rate) for lib in ("anunzi", "soxr", "samplerate")}
        for stream in streams.values():
            for _ in range(20):
                stream.resample_chunk(chunk)
        us = dict.fromkeys(streams, float("inf"))
        for _ in range(9):
            for lib, stream in streams.items():
                t = _best_time(lambda s=stream, c=chunk: s.resample_chunk(c), 1, 300)
                us[lib] = min(us[lib], t * 1e6)
        print(
            f"| {in_rate}->{out_rate} | {us['anunzi']:.2f} | {us['soxr']:.2f} |"
            f" {us['samplerate']:.2f} | {us['anunzi'] / us['soxr']:.2f} |"
        )
    print("\nQuality and latency per preset, 48 kHz -> 16 kHz (dB re input; VHQ on float64)\n")
    keys = ["alias 10k", "alias 20k", "gain at 0.91", "THD+N 1k", "latency ms"]
    print("| preset | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for quality in ("QQ", "LQ", "MQ", "HQ", "VHQ"):
        q = _quality(quality)
        print(
            f"| {quality} | "
            + " | ".join(f"{q[k]:.1f}" if k != "gain at 0.91" else f"{q[k]:.5f}" for k in keys)
            + " |"
        )
    print("\nLatency (delay() at steady state) per rate pair, ms\n")
    print("| rate pair | QQ | LQ | MQ | HQ | VHQ |")
    print("|---|---|---|---|---|---|")
    for in_rate, out_rate in [*PAIRS, (8000, 16000), (44100, 32000)]:
        cells = []
        for quality in ("QQ", "LQ", "MQ", "HQ", "VHQ"):
            s = rs.ResampleStream(in_rate, out_rate, 1, "float32", quality)
            s.resample_chunk(np.zeros(in_rate // 10, np.float32))
            cells.append(f"{s.delay() / out_rate * 1000:.2f}")
        print(f"| {in_rate}->{out_rate} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
