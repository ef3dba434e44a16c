"""float32 -> PCM16 conversion against numpy and against a plain copy of the same input.

Run: pytest benchmarks/bench_pcm.py --benchmark-only --benchmark-group-by=param:n
Peers, on the same input in the same run:
- numpy_clip:  (np.clip(x, -1, 1) * 32767).astype(np.int16), the usual one-liner (not exact:
               it scales negatives by 32767 and rounds positives the float32 way);
- numpy_exact: the browser's semantics in numpy (float64 products, NaN to 0);
- memcpy:      np.copyto of the float32 input into a preallocated array, the floor.
"""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from anunzi_fast import float_to_pcm16, pcm16_to_float

SIZES = [1_000, 100_000, 10_000_000]


def numpy_exact(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    s = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    np.clip(s, -1.0, 1.0, out=s)
    return np.trunc(np.where(s < 0, s * 32768.0, s * 32767.0)).astype(np.int16)


def numpy_clip(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def _input(n: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(n).uniform(-1.1, 1.1, n).astype(np.float32)


def _run(benchmark, fn: Callable[[], object], n: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info["samples"] = n
    benchmark(fn)
    if benchmark.stats:  # absent with --benchmark-disable
        benchmark.extra_info["ns_per_sample"] = benchmark.stats.stats.min * 1e9 / n


@pytest.mark.parametrize("n", SIZES)
def test_anunzi_out(benchmark, n: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"float32->pcm16 n={n}"
    x, out = _input(n), np.empty(n, np.int16)
    _run(benchmark, lambda: float_to_pcm16(x, out), n)
    np.testing.assert_array_equal(out, numpy_exact(x))


@pytest.mark.parametrize("n", SIZES)
def test_anunzi_new_array(benchmark, n: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"float32->pcm16 n={n}"
    x = _input(n)
    _run(benchmark, lambda: float_to_pcm16(x), n)


@pytest.mark.parametrize("n", SIZES)
def test_numpy_exact(benchmark, n: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"float32->pcm16 n={n}"
    x = _input(n)
    _run(benchmark, lambda: numpy_exact(x), n)


@pytest.mark.parametrize("n", SIZES)
def test_numpy_clip(benchmark, n: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"float32->pcm16 n={n}"
    x = _input(n)
    _run(benchmark, lambda: numpy_clip(x), n)


@pytest.mark.parametrize("n", SIZES)
def test_memcpy(benchmark, n: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"float32->pcm16 n={n}"
    x, dst = _input(n), np.empty(n, np.float32)
    _run(benchmark, lambda: np.copyto(dst, x), n)


@pytest.mark.parametrize("n", [1_000, 100_000])
def test_anunzi_pcm16_to_float(benchmark, n: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"pcm16->float32 n={n}"
    pcm, out = numpy_exact(_input(n)), np.empty(n, np.float32)
    _run(benchmark, lambda: pcm16_to_float(pcm, out), n)


@pytest.mark.parametrize("n", [1_000, 100_000])
def test_numpy_pcm16_to_float(benchmark, n: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"pcm16->float32 n={n}"
    pcm = numpy_exact(_input(n))
    _run(benchmark, lambda: pcm.astype(np.float32) / np.float32(32768), n)
