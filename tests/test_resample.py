"""The soxr-compatible resampler: API and errors, alignment, streaming equivalence, quality."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from math import gcd, lcm
from typing import Any

import numpy as np
import pytest
import soxr

from anunzi_fast import _native, _resampler
from anunzi_fast import resampler as rs
from anunzi_fast.resampler import HQ, LQ, MQ, QQ, VHQ, ResampleStream, resample
from tests._gil import gil_never_preempted

RATE_PAIRS = [
    (48000, 16000),
    (16000, 48000),
    (16000, 44100),
    (44100, 48000),
    (48000, 44100),
    (8000, 16000),
    (24000, 16000),
    (22050, 32000),
    (44100, 32000),
    (7919, 16000),  # a prime rate: interpolated phases
    (16000, 7919),
]
LENGTHS = [0, 1, 2, 3, 99, 101, 997, 4801, 10007]
DTYPES = [np.float32, np.float64, np.int16, np.int32]


def tone(freq: float, rate: float, n: int, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-30)))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ---------------------------------------------------------------- API and errors


def test_constants_match_soxr_values() -> None:
    assert (QQ, LQ, MQ, HQ, VHQ) == (0, 1, 2, 4, 6)


@pytest.mark.parametrize("q", ["HQ", "hq", "soxr_hq", "Soxr_VHQ", "qq", "LQ", "mq", HQ, VHQ])
def test_quality_names_accepted(q: object) -> None:
    assert resample(np.zeros(100, np.float32), 48000, 16000, quality=q).shape == (33,)
    ResampleStream(48000, 16000, 1, quality=q)


@pytest.mark.parametrize("q", ["xq", 3, 5, None, 4.5, "soxr"])
def test_bad_quality_is_value_error(q: object) -> None:
    with pytest.raises(ValueError, match=rs.QUALITY_ERR.replace("[", r"\[")):
        resample(np.zeros(10, np.float32), 48000, 16000, quality=q)
    with pytest.raises(ValueError):
        ResampleStream(48000, 16000, 1, quality=q)


@pytest.mark.parametrize(
    "rates",
    [
        (0, 16000),
        (48000, 0),
        (-1, 16000),
        (48000, -8000),
        (float("nan"), 16000),
        (48000, float("inf")),
    ],
)
def test_bad_rates_are_value_errors(rates: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match=rs.RATE_ERR):
        resample(np.zeros(10, np.float32), *rates)
    with pytest.raises(ValueError, match=rs.RATE_ERR):
        ResampleStream(rates[0], rates[1], 1)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.complex64, np.float16, bool])
def test_unsupported_dtypes_are_type_errors(dtype: type) -> None:
    with pytest.raises(TypeError):
        resample(np.zeros(10, dtype), 48000, 16000)
    with pytest.raises(TypeError):
        ResampleStream(48000, 16000, 1, dtype=dtype)


def test_more_than_two_dims_is_value_error() -> None:
    with pytest.raises(ValueError, match=rs.NDIM_ERR):
        resample(np.zeros((4, 2, 2), np.float32), 48000, 16000)
    with pytest.raises(ValueError, match=rs.NDIM_ERR):
        ResampleStream(48000, 16000, 2).resample_chunk(np.zeros((4, 2, 2), np.float32))


def test_chunk_dtype_mismatch_is_type_error() -> None:
    s = ResampleStream(48000, 16000, 1, dtype="float32")
    with pytest.raises(TypeError, match="matching dtype"):
        s.resample_chunk(np.zeros(10, np.float64))
    with pytest.raises(TypeError):
        s.resample_chunk([0.0, 1.0])  # type: ignore[arg-type]


def test_channel_errors() -> None:
    with pytest.raises(ValueError, match=r"Channel num\(0\)"):
        ResampleStream(48000, 16000, 0)
    with pytest.raises(ValueError):
        ResampleStream(48000, 16000, 65537)
    with pytest.raises(ValueError, match="Channel num mismatch"):
        ResampleStream(48000, 16000, 2).resample_chunk(np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match=r"Channel num\(0\)"):
        resample(np.zeros((10, 0), np.float32), 48000, 16000)
    with pytest.raises(ValueError, match="Channel num mismatch"):  # mono into a stereo stream
        ResampleStream(48000, 16000, 2).resample_chunk(np.zeros(10, np.float32))


@pytest.mark.parametrize("channels", [1.5, 2.0, "2", None])
def test_non_integer_channel_count_is_type_error(channels: object) -> None:
    # soxr refuses these too (even 2.0); they used to be truncated silently.
    with pytest.raises(TypeError, match="Channel num must be an integer"):
        ResampleStream(48000, 16000, channels)  # type: ignore[arg-type]


def test_integer_like_channel_counts_are_accepted() -> None:
    s = ResampleStream(48000, 16000, np.int64(2))
    assert s.resample_chunk(np.zeros((300, 2), np.float32), last=True).shape == (100, 2)
    with pytest.raises(ValueError, match=r"Channel num\(0\)"):
        ResampleStream(48000, 16000, np.int16(0))


def test_dtype_with_metadata_is_the_same_dtype() -> None:
    # Such a dtype is a distinct object equal to float32; the core compared by identity and
    # refused it with a message naming float32 as unsupported.
    with_meta = np.dtype(np.float32, metadata={"unit": "pcm"})
    plain = np.linspace(-0.5, 0.5, 999, dtype=np.float32)
    x = plain.view(with_meta)
    assert x.dtype.metadata and x.dtype == np.float32
    expected = resample(plain, 48000, 16000)
    assert np.array_equal(resample(x, 48000, 16000), expected)
    for stream_dtype in (with_meta, np.float32):
        s = ResampleStream(48000, 16000, 1, dtype=stream_dtype)
        assert np.array_equal(s.resample_chunk(x, last=True), expected)


def test_zero_dim_input_is_value_error() -> None:
    with pytest.raises(ValueError, match=rs.NDIM_ERR):
        resample(np.float32(1.0), 48000, 16000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rs.NDIM_ERR):
        ResampleStream(48000, 16000, 1).resample_chunk(np.array(1.0, np.float32))


def test_vr_is_refused() -> None:
    with pytest.raises(ValueError, match="vr=True"):
        ResampleStream(48000, 16000, 1, vr=True)


def test_input_after_last_is_runtime_error_until_clear() -> None:
    s = ResampleStream(48000, 16000, 1)
    s.resample_chunk(np.ones(100, np.float32), last=True)
    with pytest.raises(RuntimeError, match="after last"):
        s.resample_chunk(np.ones(100, np.float32))
    s.clear()
    assert s.resample_chunk(np.ones(1000, np.float32)).dtype == np.float32


def test_non_ndarray_input_becomes_float32() -> None:
    y = resample([0.0, 0.5, 1.0, 0.5] * 50, 16000, 48000)
    assert y.dtype == np.float32 and y.shape == (600,)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1000,), (1000, 1), (1000, 2), (1000, 5)])
def test_output_dtype_ndim_and_length(dtype: type, shape: tuple[int, ...]) -> None:
    x = np.zeros(shape, dtype)
    y = resample(x, 44100, 48000)
    assert y.dtype == np.dtype(dtype)
    assert y.shape == (1088, *shape[1:])


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
@pytest.mark.parametrize("n", LENGTHS)
def test_length_is_round_half_up(in_rate: int, out_rate: int, n: int) -> None:
    y = resample(np.zeros(n, np.float32), in_rate, out_rate)
    assert len(y) == (2 * n * out_rate + in_rate) // (2 * in_rate)


def test_lengths_match_soxr_for_ties() -> None:
    # 3 * 8000 / 48000 = 0.5 and 15 / 6 = 2.5: soxr rounds halves up.
    assert len(resample(np.zeros(3, np.float32), 48000, 8000)) == 1
    assert len(resample(np.zeros(15, np.float32), 48000, 8000)) == 3


def test_non_integer_rates() -> None:
    x = tone(440, 44100.5, 44100).astype(np.float32)
    y = resample(x, 44100.5, 16000.25)
    assert len(y) == round(44100 * 16000.25 / 44100.5)
    ref = tone(440, 16000.25, len(y))
    assert db(rms(y[300:-300] - ref[300:-300]) / rms(ref)) < -100


def test_ratio_limits_are_as_documented() -> None:
    # Exact up to 2**20 in either direction; the next integer ratio cannot be represented.
    assert ResampleStream(1, 2**20, 1, quality="QQ")._core.ratio == (2**20, 1)
    assert ResampleStream(2**20, 1, 1, quality="QQ")._core.ratio == (1, 2**20)
    for rates in ((1, 2**20 + 1), (2**20 + 1, 1), (1, 2**21)):
        with pytest.raises(ValueError, match="ratio is out of range"):
            ResampleStream(*rates, 1)
    # Reduced terms above 2**20 (1048583 is co-prime with 48000), or a ratio just above
    # 2**20: the closest fraction with terms up to 2**20, within 2**-20 of the true ratio.
    for in_rate, out_rate in ((48000, 1048583), (1048583, 48000), (2, 2**21 + 1)):
        up, down = ResampleStream(in_rate, out_rate, 1, quality="QQ")._core.ratio
        assert max(up, down) <= 2**20
        assert abs(up * in_rate / (down * out_rate) - 1) < 2**-20


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "ms"),
    [
        (16000, 48000, 4.688),
        (48000, 16000, 4.646),
        (44100, 48000, 1.791),
        (16000, 44100, 5.062),
        (12000, 48000, 6.583),
        (8000, 16000, 9.375),
        (8000, 48000, 9.875),
    ],
)
def test_hq_latency_is_as_documented(in_rate: int, out_rate: int, ms: float) -> None:
    # Within 6 ms only when the lower rate is at least 16 kHz (the module docstring says so),
    # within 10 ms at 8 kHz: a cascade never takes it past the single filter's beyond 6 ms.
    latency = ResampleStream(in_rate, out_rate, 1)._core.latency_frames / out_rate * 1000
    assert latency == pytest.approx(ms, abs=0.01)
    assert (latency <= 6) == (min(in_rate, out_rate) >= 16000)
    assert latency <= 10
    assert f"{ms:.1f} ms" in (rs.__doc__ or "")


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "quality", "design", "ratios"),
    [
        # One stage: a cascade would need fewer multiply-adds (270, 119), but its half-band
        # and wide stage run on short runs of taps, and the single one is faster.
        (48000, 16000, HQ, "equiripple", [(1, 3)]),
        (16000, 48000, HQ, "equiripple", [(3, 1)]),
        # half-band 96 -> 48 kHz, then the sharp filter 48 -> 16 kHz
        (96000, 16000, HQ, "half-band + equiripple", [(1, 2), (1, 3)]),
        # the sharp filter 16 -> 32 kHz, then a wide-transition 32 -> 40 kHz
        (16000, 40000, HQ, "equiripple + equiripple", [(2, 1), (5, 4)]),
        (8000, 16000, HQ, "equiripple", [(2, 1)]),
        (24000, 16000, MQ, "equiripple", [(2, 3)]),
        (16000, 44100, HQ, "equiripple + kaiser", [(2, 1), (441, 320)]),
        (44100, 48000, HQ, "smoothed equiripple", [(160, 147)]),  # 160 phases: too many to design
        (44100, 16000, HQ, "half-band + smoothed equiripple", [(1, 2), (320, 441)]),
        (48000, 8000, HQ, "half-band + equiripple", [(1, 2), (1, 3)]),  # 2 half-bands: 14 ms
        (8000, 48000, HQ, "smoothed equiripple", [(6, 1)]),  # a cascade would take 10.1 ms
        (48000, 16000, VHQ, "kaiser", [(1, 3)]),  # its weights defeat the exchange
        (44100, 48000, QQ, "smoothed equiripple", [(160, 147)]),  # flat to 2e-5 near DC
        (48000, 48000, HQ, "smoothed equiripple", [(1, 1)]),  # the direct one has no stopband
    ],
)
def test_design_method(
    in_rate: int, out_rate: int, quality: int, design: str, ratios: list[tuple[int, int]]
) -> None:
    core = ResampleStream(in_rate, out_rate, 1, quality=quality)._core
    assert core.design == design
    assert [(stage["up"], stage["down"]) for stage in core.stages] == ratios
    kaiser_taps = {(48000, 16000): 576, (16000, 44100): 192, (44100, 48000): 192}
    if quality == HQ and (in_rate, out_rate) in kaiser_taps:  # what Kaiser needed at HQ
        assert core.taps <= kaiser_taps[in_rate, out_rate] * 0.84  # multiply-adds per output


# ---------------------------------------------------------------- layout equivalence


@pytest.mark.parametrize("dtype", DTYPES)
def test_fortran_c_and_split_channels_agree(dtype: type) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2003, 3)) * 0.3 * (30000 if np.dtype(dtype).kind == "i" else 1)
    x = x.astype(dtype)
    y_c = resample(np.ascontiguousarray(x), 16000, 44100)
    y_f = resample(np.asfortranarray(x), 16000, 44100)
    assert np.array_equal(y_c, y_f)
    for c in range(3):
        assert np.array_equal(resample(x[:, c].copy(), 16000, 44100), y_c[:, c])
        assert np.array_equal(resample(x[:, c], 16000, 44100), y_c[:, c])  # strided view


# ---------------------------------------------------------------- streaming


def stream_in_chunks(
    x: np.ndarray, in_rate: int, out_rate: int, sizes: list[int], quality: object = "HQ"
) -> np.ndarray:
    channels = 1 if x.ndim == 1 else x.shape[1]
    s = ResampleStream(in_rate, out_rate, channels, dtype=x.dtype, quality=quality)
    out = []
    i = 0
    k = 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(s.resample_chunk(x[i : i + n]))
        i += n
        k += 1
    out.append(s.resample_chunk(x[:0], last=True))
    return np.concatenate(out)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 160, 479, 4097])
def test_streaming_is_bit_exact_with_oneshot(in_rate: int, out_rate: int, chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    x = (rng.standard_normal(3001) * 0.3).astype(np.float32)
    assert np.array_equal(
        stream_in_chunks(x, in_rate, out_rate, [chunk]), resample(x, in_rate, out_rate)
    )


@pytest.mark.parametrize("quality", [QQ, LQ, MQ, HQ, VHQ])
@pytest.mark.parametrize("dtype", DTYPES)
def test_streaming_irregular_chunks_with_empty_ones(quality: int, dtype: type) -> None:
    rng = np.random.default_rng(quality)
    scale = 20000 if np.dtype(dtype).kind == "i" else 0.6
    x = (rng.standard_normal((5003, 2)) * scale).astype(dtype)
    sizes = [0, 1, 0, 13, 480, 0, 2, 1021, 5]
    assert np.array_equal(
        stream_in_chunks(x, 44100, 16000, sizes, quality),
        resample(x, 44100, 16000, quality=quality),
    )


@pytest.mark.parametrize("n", LENGTHS)
def test_streaming_last_chunk_carries_everything(n: int) -> None:
    x = np.linspace(-1, 1, n).astype(np.float64)
    s = ResampleStream(16000, 48000, 1, dtype="float64")
    assert np.array_equal(s.resample_chunk(x, last=True), resample(x, 16000, 48000))


def test_clear_resets_to_a_fresh_stream() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(4000).astype(np.float32)
    s = ResampleStream(48000, 16000, 1)
    first = np.concatenate([s.resample_chunk(x[:1234]), s.resample_chunk(x[1234:], last=True)])
    s.clear()
    s.resample_chunk(rng.standard_normal(777).astype(np.float32))
    s.clear()
    assert s.delay() == 0
    second = np.concatenate([s.resample_chunk(x[:99]), s.resample_chunk(x[99:], last=True)])
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    ("in_rate", "out_rate"), [(48000, 16000), (16000, 48000), (16000, 44100), (44100, 48000)]
)
def test_release_is_sample_by_sample_with_fixed_latency(in_rate: int, out_rate: int) -> None:
    s = ResampleStream(in_rate, out_rate, 1)
    latency = s._core.latency_frames
    assert latency / out_rate <= 0.006  # HQ: at most 6 ms
    produced = 0
    for fed in range(1, 3 * in_rate // 100 + 1):
        produced += len(s.resample_chunk(np.zeros(1, np.float32)))
        owed = fed * out_rate / in_rate - produced
        assert owed == pytest.approx(s.delay())
        if fed * 1000 > 8 * in_rate:  # past the start-up, owed output is the fixed latency
            assert latency - out_rate / in_rate - 1 <= owed <= latency + 1e-9


@pytest.mark.parametrize("quality", [QQ, LQ, MQ, HQ, VHQ])
def test_latency_orders_with_quality(quality: int) -> None:
    lat = ResampleStream(48000, 16000, 1, quality=quality)._core.latency_frames / 16000
    bounds = {QQ: 0.0015, LQ: 0.0025, MQ: 0.004, HQ: 0.006, VHQ: 0.0085}
    assert lat <= bounds[quality]


# ---------------------------------------------------------------- integers


def test_int16_rounds_and_clips_without_dither() -> None:
    silence = np.zeros(4800, np.int16)
    assert not resample(silence, 48000, 16000).any()
    s = ResampleStream(48000, 16000, 1, dtype="int16")
    loud = np.tile(np.array([32767] * 10 + [-32768] * 10, np.int16), 50)
    y = s.resample_chunk(loud, last=True)
    assert y.dtype == np.int16
    assert s.num_clips() > 0
    assert y.max() == 32767 and y.min() == -32768
    assert ResampleStream(48000, 16000, 1).num_clips() == 0


def test_int16_matches_float_path_rounded() -> None:
    x = (tone(1000, 48000, 9600, 0.4) * 32768).astype(np.int16)
    y_int = resample(x, 48000, 16000)
    y_float = resample(x.astype(np.float32) / 32768, 48000, 16000).astype(np.float64)
    assert np.max(np.abs(y_int - np.round(y_float * 32768))) <= 1


def test_int32_full_scale_clips_counted() -> None:
    x = np.tile(np.array([2**31 - 1] * 8 + [-(2**31)] * 8, np.int32), 100)
    s = ResampleStream(16000, 48000, 1, dtype=np.int32)
    y = s.resample_chunk(x, last=True)
    assert y.dtype == np.int32 and s.num_clips() > 0


# ---------------------------------------------------------------- quality


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_tone_is_aligned_and_clean(in_rate: int, out_rate: int) -> None:
    n = in_rate // 2
    x = tone(1000, in_rate, n).astype(np.float32)
    y = resample(x, in_rate, out_rate)
    ref = tone(1000, out_rate, len(y))
    edge = out_rate // 50
    err = db(rms(y[edge:-edge] - ref[edge:-edge]) / rms(ref))
    assert err < -120, err


def thd_n(y: np.ndarray, freq: float, rate: float) -> float:
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)
    return db(rms(y - basis @ coef) / rms(basis @ coef))


@pytest.mark.parametrize(
    ("in_rate", "out_rate"), [(48000, 16000), (16000, 48000), (16000, 44100), (44100, 48000)]
)
def test_hq_thd_n_below_minus_120(in_rate: int, out_rate: int) -> None:
    y = resample(tone(1000, in_rate, in_rate).astype(np.float32), in_rate, out_rate)
    edge = out_rate // 20
    assert thd_n(y[edge:-edge], 1000, out_rate) < -120


def windowed_tone(rate: int, seconds: int = 2, freq: float = 32.0) -> np.ndarray:
    """A full-scale tone under a Hann window spanning the whole signal."""
    t = np.arange(seconds * rate) / rate
    return np.sin(2 * np.pi * freq * t) * np.sin(np.pi * t / seconds) ** 2


@pytest.mark.parametrize("quality", ["QQ", "LQ", "MQ", "HQ", "VHQ"])
@pytest.mark.parametrize(("in_rate", "out_rate"), [(44100, 22050), (22050, 32000), (16000, 48000)])
def test_low_frequency_tone_is_the_tone_at_the_new_rate(
    in_rate: int, out_rate: int, quality: str
) -> None:
    # Code written against soxr compares a resampled tone with the same tone generated at the
    # new rate. Every preset keeps a 32 Hz tone within 1e-4 of full scale, as soxr does: its
    # passband is flat near DC and its stopband deep where images of DC fall (QQ was off by
    # 1.3e-3 before both).
    x = windowed_tone(in_rate).astype(np.float32)
    expected = windowed_tone(out_rate)
    ours = np.abs(resample(x, in_rate, out_rate, quality) - expected).max()
    theirs = np.abs(soxr.resample(x, in_rate, out_rate, quality) - expected).max()
    assert theirs < 1e-4  # what code written against soxr may rely on
    assert ours < 1e-4, (ours, theirs)


@pytest.mark.parametrize(("quality", "limit"), [(HQ, -125), (VHQ, -160)])
@pytest.mark.parametrize("freq", [10000, 20000])
def test_alias_rejection_48k_to_16k(quality: int, limit: float, freq: int) -> None:
    x = tone(freq, 48000, 48000)
    x = x.astype(np.float64 if quality == VHQ else np.float32)
    y = resample(x, 48000, 16000, quality=quality)
    edge = 800
    assert db(rms(y[edge:-edge]) / rms(x)) < limit


@pytest.mark.parametrize("quality", [HQ, VHQ])
def test_passband_flat_to_091_of_nyquist(quality: int) -> None:
    for freq in (100.0, 3000.0, 7280.0):  # 7280 Hz = 0.91 of the 8 kHz output Nyquist
        x = tone(freq, 48000, 24000, 1.0)
        y = resample(x, 48000, 16000, quality=quality)
        edge = 800
        gain = rms(y[edge:-edge]) / rms(tone(freq, 16000, 8000, 1.0)[edge:-edge])
        assert abs(db(gain)) < 0.001


# ---------------------------------------------------------------- ISA paths and threads


@pytest.fixture
def restore_isa() -> Iterator[None]:
    before = _native.active_isa()
    try:
        yield
    finally:
        _native.set_active_isa(before)


@pytest.mark.parametrize("isa", _native.supported_isas())
@pytest.mark.usefixtures("restore_isa")
def test_every_isa_path_agrees(isa: str) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3001, 2)).astype(np.float32) * 0.3
    references = {q: resample(x.astype(np.float64), 16000, 44100, quality=q) for q in (HQ, VHQ)}
    _native.set_active_isa(isa)
    s = ResampleStream(16000, 44100, 2)
    assert s._core.isa == isa
    for quality in (HQ, VHQ):
        y = resample(x, 16000, 44100, quality=quality)
        assert np.array_equal(stream_in_chunks(x, 16000, 44100, [1, 100], quality), y)
        assert np.max(np.abs(y - references[quality])) < 1e-5
    for in_rate, out_rate in ((8000, 16000), (16000, 48000), (48000, 16000)):
        y = resample(x, in_rate, out_rate)  # whole-phase, consecutive and grouped kernels
        assert np.array_equal(stream_in_chunks(x, in_rate, out_rate, [1, 37, 500]), y)
    y_prime = resample(x, 7919, 16000)
    assert np.max(np.abs(y_prime - resample(x.astype(np.float64), 7919, 16000))) < 1e-5


# One conversion of each kind of stage and cascade (what each stage computes with, on AVX-512;
# other instruction sets may pick the other kernel for a stage).
CASCADES = [
    (48000, 16000, "HQ"),  # one stage, 1/3 by phase on sub-streams (correlate)
    (48000, 16000, "LQ"),  # one stage, 1/3 in vectors of consecutive outputs (lanes)
    (32000, 48000, "HQ"),  # one stage, 3/2: sub-streams and interleaved phases
    (96000, 16000, "HQ"),  # half-band, then 1/3 by phase
    (96000, 16000, "LQ"),  # half-band, then 1/3 in lanes
    (44100, 16000, "HQ"),  # half-band, then 320/441 (lanes)
    (192000, 24000, "HQ"),  # three 2:1 stages, the last not a half-band
    (16000, 40000, "HQ"),  # the sharp 2:1 up, its phases split again for a wide 5/4
    (16000, 44100, "HQ"),  # the sharp 2:1 up, then a wide 441/320 (lanes)
    (44100, 48000, "HQ"),  # one stage of 160 phases (lanes)
    (7919, 16000, "HQ"),  # interpolated rows
    (16000, 48000, "VHQ"),  # float64 (correlate)
]


def test_the_cascades_cover_every_kind_of_stage() -> None:
    kinds = {
        (in_rate, out_rate, quality): [
            ("half-band" if s["design"] == "half-band" else s["kernel"], s["up"], s["down"])
            for s in ResampleStream(in_rate, out_rate, 1, quality=quality)._core.stages
        ]
        for in_rate, out_rate, quality in CASCADES
    }
    assert kinds[48000, 16000, "HQ"] == [("correlate", 1, 3)]
    assert kinds[32000, 48000, "HQ"] == [("correlate", 3, 2)]
    assert kinds[96000, 16000, "HQ"] == [("half-band", 1, 2), ("correlate", 1, 3)]
    assert kinds[44100, 16000, "HQ"] == [("half-band", 1, 2), ("lanes", 320, 441)]
    assert [k[0] for k in kinds[192000, 24000, "HQ"]] == ["half-band", "half-band", "correlate"]
    assert kinds[16000, 40000, "HQ"] == [("correlate", 2, 1), ("correlate", 5, 4)]
    assert kinds[16000, 44100, "HQ"] == [("correlate", 2, 1), ("lanes", 441, 320)]
    assert kinds[44100, 48000, "HQ"] == [("lanes", 160, 147)]
    assert kinds[7919, 16000, "HQ"] == [("interpolated", 16000, 7919)]
    if _native.active_isa() == "avx512":
        assert kinds[48000, 16000, "LQ"] == [("lanes", 1, 3)]
        assert kinds[96000, 16000, "LQ"] == [("half-band", 1, 2), ("lanes", 1, 3)]


@pytest.mark.parametrize("isa", _native.supported_isas())
@pytest.mark.parametrize(("in_rate", "out_rate", "quality"), CASCADES)
@pytest.mark.usefixtures("restore_isa")
def test_every_cascade_streams_bit_exactly_on_every_isa(
    isa: str, in_rate: int, out_rate: int, quality: str
) -> None:
    # Each stage computes each output from a fixed window in a fixed order and hands it to the
    # next as soon as it exists: chunks of one sample, primes and large ones all give the
    # one-shot result, on every kernel path, and so does the one-shot split across threads.
    _native.set_active_isa(isa)
    rng = np.random.default_rng(in_rate + out_rate)
    x = (rng.standard_normal((4001, 2)) * 0.3).astype(np.float32)
    one = resample(x, in_rate, out_rate, quality, threads=1)
    assert len(one) == (2 * len(x) * out_rate + in_rate) // (2 * in_rate)
    for sizes in ([1], [7], [101, 3, 1009], [8191]):
        assert np.array_equal(stream_in_chunks(x, in_rate, out_rate, sizes, quality), one), sizes
    long_x = np.tile(x, (max(40, 4 * in_rate // len(x) + 1), 1))  # 4 s at least
    core = ResampleStream(in_rate, out_rate, 2, "float32", quality)._core
    assert core.oneshot_parts(len(long_x), 3) > 1
    assert np.array_equal(
        resample(long_x, in_rate, out_rate, quality, threads=3),
        resample(long_x, in_rate, out_rate, quality, threads=1),
    )


def test_unknown_isa_falls_back_to_the_best_level_with_a_warning() -> None:
    # The one rule for every part (tests/native/test_dispatch.py checks the conversions): an
    # unknown or unsupported ANUNZI_FAST_ISA is the best level, and a RuntimeWarning names it.
    probe = (
        "import numpy as np, anunzi_fast as a;"
        "print(a.active_isa(), a.ResampleStream(48000, 16000, 1)._core.isa,"
        " len(a.resample(np.zeros(480, np.float32), 48000, 16000)))"
    )
    env = {**os.environ, "ANUNZI_FAST_ISA": "neon9000"}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [_native.supported_isas()[-1]] * 2 + ["160"]
    assert "RuntimeWarning: ANUNZI_FAST_ISA='neon9000' is unknown" in result.stderr


@pytest.mark.usefixtures("restore_isa")
def test_set_active_isa_reaches_new_streams() -> None:
    best = _native.supported_isas()[-1]
    _native.set_active_isa(best)
    before = ResampleStream(48000, 16000, 1)
    _native.set_active_isa("portable")
    after = ResampleStream(48000, 16000, 1)
    assert _native.active_isa() == after._core.isa == "portable"
    assert before._core.isa == best  # a stream keeps the level it was built with
    x = np.random.default_rng(4).standard_normal(4800).astype(np.float32)
    assert np.array_equal(resample(x, 48000, 16000), after.resample_chunk(x, last=True))


def test_gil_is_released_during_compute() -> None:
    # A minute of audio: tens of milliseconds of work, long enough to count spins in.
    x = np.random.default_rng(3).standard_normal(16000 * 60).astype(np.float32)
    done = threading.Event()

    def work() -> None:
        resample(x, 16000, 44100, quality="VHQ")
        done.set()

    worker = threading.Thread(target=work)
    spins = 0
    worker.start()
    while not done.is_set():  # Python code can only run here if the worker dropped the GIL
        spins += 1
    worker.join()
    assert spins > 1000


def test_independent_streams_run_in_parallel_threads() -> None:
    # Each thread records when its call started and ended; Python code runs only with the GIL,
    # so if the compute held it the second call could not even start before the first ended.
    # Overlap, not speed-up, is asserted: the two cores are shared with other jobs.
    x = np.random.default_rng(3).standard_normal((16000 * 20, 2)).astype(np.float32)
    expected = resample(x, 16000, 44100, quality="VHQ")
    spans: list[tuple[float, float]] = []
    results: list[np.ndarray] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def work() -> None:
        stream = ResampleStream(16000, 44100, 2, quality="VHQ")
        barrier.wait()
        t0 = time.perf_counter()
        y = stream.resample_chunk(x, last=True)
        t1 = time.perf_counter()
        with lock:
            spans.append((t0, t1))
            results.append(y)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = sorted(spans)
    overlap = min(a1, b1) - b0
    assert overlap > 0.5 * min(a1 - a0, b1 - b0), spans
    assert all(np.array_equal(r, expected) for r in results)


def designs_computed() -> int:
    return _resampler.design_cache_stats()["designs_computed"]


@pytest.mark.parametrize("call", ["stream", "oneshot"])
def test_gil_is_released_during_filter_design(call: str) -> None:
    # 96 kHz -> 1 Hz at HQ designs a 73 MB filter (about a second), larger than the design
    # cache holds, so it is designed afresh each time. The main thread counts its turns while
    # the design is not finished yet: it can only get one if the worker released the GIL.
    build: Callable[[], object] = {
        "stream": lambda: ResampleStream(96000, 1, 1),
        "oneshot": lambda: resample(np.zeros(1, np.float32), 96000, 1),
    }[call]
    before = designs_computed()
    done = threading.Event()

    def work() -> None:
        build()
        done.set()

    turns_during_design = 0
    with gil_never_preempted():
        worker = threading.Thread(target=work)
        worker.start()
        while not done.wait(0.001):  # waiting releases the GIL, so the worker can finish
            if designs_computed() == before:
                turns_during_design += 1
        worker.join()
    assert designs_computed() == before + 1
    assert turns_during_design > 0


def chunk_then_set(stream: ResampleStream, x: np.ndarray, finished: threading.Event) -> None:
    stream.resample_chunk(x)
    finished.set()


def test_delay_and_num_clips_refuse_a_stream_busy_in_another_thread() -> None:
    # They read counters that resample_chunk updates with the GIL released. Under
    # gil_never_preempted, the main thread runs while `finished` is unset only when the worker
    # is inside the compute, holding the stream; it cannot leave until the main thread waits.
    stream = ResampleStream(16000, 44100, 2, quality="VHQ")
    x = np.zeros((16000, 2), np.float32)
    observed_busy = 0
    with gil_never_preempted():
        for _ in range(10):
            finished = threading.Event()
            worker = threading.Thread(target=chunk_then_set, args=(stream, x, finished))
            worker.start()  # returns once the worker released the GIL, or has finished
            if not finished.is_set():
                observed_busy += 1
                with pytest.raises(RuntimeError, match="two threads"):
                    stream.delay()
                with pytest.raises(RuntimeError, match="two threads"):
                    stream.num_clips()
            worker.join()
            if observed_busy:
                break
    assert observed_busy
    assert stream.delay() > 0 and stream.num_clips() == 0  # usable again once the worker is done


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "n"), [(7, 48000, 300), (96000, 700, 96000), (192000, 8000, 192000)]
)
def test_extreme_ratios_keep_length_and_dc(in_rate: int, out_rate: int, n: int) -> None:
    y = resample(np.full(n, 0.25, np.float32), in_rate, out_rate)
    assert len(y) == (2 * n * out_rate + in_rate) // (2 * in_rate)
    middle = y[len(y) // 3 : 2 * len(y) // 3]  # far from both ends: only the DC gain shows
    assert np.allclose(middle, 0.25, atol=1e-5)


def test_design_too_large_is_value_error() -> None:
    with pytest.raises(ValueError, match="too extreme"):
        ResampleStream(192000, 1, 1, quality="VHQ")


def design_bytes(core: _resampler.Resampler) -> int:
    return core.phases * core.taps * (8 if core.double_precision else 4)


def test_large_exact_tables_switch_to_interpolated_rows() -> None:
    # 96000 -> 4001 (a prime) at VHQ: 4001 exact rows of 6000+ float64 taps would be a 190 MB
    # table taking seconds to design; above 8 MB the rows are interpolated instead.
    core = _resampler.Resampler(96000, 4001, 1, VHQ, "float64")
    assert core.ratio == (4001, 96000)
    assert core.interpolated and core.phases < 300
    assert design_bytes(core) < 16 << 20
    assert 4001 * core.taps * 8 > 8 << 20  # the exact table would have been over the limit


def test_interpolated_rows_keep_vhq_quality_when_decimating() -> None:
    n = 2 * 96000
    x = np.stack([tone(1000, 96000, n), tone(3000, 96000, n) + tone(20000, 96000, n)], axis=1)
    y = resample(x, 96000, 4001, quality="VHQ")
    inner = slice(400, -400)  # clear of the filter's reach (about 130 outputs) at both ends
    passband = y[inner, 0] - tone(1000, 4001, len(y))[inner]
    assert db(rms(passband) / rms(x[:, 0])) < -160
    assert db(rms(y[inner, 1]) / rms(x[:, 1])) < -160  # both tones above the 2 kHz Nyquist


def test_design_cache_is_capped_in_bytes() -> None:
    limit = _resampler.design_cache_stats()["limit_bytes"]
    assert limit == 64 << 20
    # Decimation to 1 Hz at HQ: 49 and 46 MB designs, together above the cap.
    sizes = [
        design_bytes(_resampler.Resampler(rate, 1, 1, HQ, "float32")) for rate in (64000, 60000)
    ]
    assert sum(sizes) > limit
    stats = _resampler.design_cache_stats()
    assert sizes[-1] <= stats["bytes"] <= limit  # the most recent design is kept
    # A design bigger than the whole cap is never kept (the old cache held up to 8 of 256 MB).
    big = _resampler.Resampler(96000, 1, 1, HQ, "float32")
    assert design_bytes(big) > limit
    assert _resampler.design_cache_stats()["bytes"] <= limit


@pytest.mark.parametrize(("quality", "limit"), [(HQ, -125), (VHQ, -150)])
@pytest.mark.parametrize("freq", [8200, 8500, 8800])
def test_no_aliasing_just_above_nyquist(quality: int, limit: float, freq: int) -> None:
    # HQ and VHQ reject everything above the output Nyquist, as soxr HQ does (only QQ-MQ let
    # the band just above Nyquist alias into their transition band, documented).
    x = tone(freq, 48000, 48000)
    y = resample(x, 48000, 16000, quality=quality)
    assert db(rms(y[800:-800]) / rms(x)) < limit


@pytest.mark.parametrize(("in_rate", "out_rate"), [(16000, 48000), (16000, 44100), (8000, 16000)])
def test_hq_upsampling_leaves_no_image_of_a_tone_near_nyquist(in_rate: int, out_rate: int) -> None:
    # A tone at 0.95 of the input Nyquist must not come back mirrored above it.
    freq = 0.95 * in_rate / 2
    y = resample(tone(freq, in_rate, in_rate).astype(np.float32), in_rate, out_rate)
    y = y[out_rate // 10 : -out_rate // 10].astype(np.float64)
    t = np.arange(len(y)) / out_rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    assert db(rms(y - basis @ coef) / rms(basis @ coef)) < -120


def test_negative_and_odd_strides_read_in_place() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3000, 4)).astype(np.float32)
    view = x[::-2, 1::2]  # reversed frames, every other channel
    assert np.array_equal(resample(view, 16000, 48000), resample(view.copy(), 16000, 48000))


@pytest.mark.parametrize(
    ("in_rate", "out_rate"), [(44100, 32000), (48000, 44100), (22050, 32000), (16000, 44100)]
)
@pytest.mark.parametrize("chunk", [1, 100, 4097])
def test_long_streams_in_phase_major_groups_are_bit_exact(
    in_rate: int, out_rate: int, chunk: int
) -> None:
    # Long enough for eight whole periods of up to 640 phases, computed phase by phase in
    # one-shot mode but mostly one by one when chunks are small.
    rng = np.random.default_rng(chunk)
    x = (rng.standard_normal((12007, 2)) * 0.3).astype(np.float32)
    assert np.array_equal(
        stream_in_chunks(x, in_rate, out_rate, [chunk]), resample(x, in_rate, out_rate)
    )


# ---------------------------------------------------------------- threaded one-shot


@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [(48000, 16000), (16000, 48000), (16000, 44100), (44100, 48000), (96000, 4001), (8000, 48000)],
)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int16", "int32"])
def test_threaded_oneshot_is_bit_identical(in_rate: int, out_rate: int, dtype: str) -> None:
    rng = np.random.default_rng(in_rate + out_rate)
    x = rng.standard_normal((2 * in_rate + 7, 2)) * 0.5
    if dtype in ("int16", "int32"):
        info = np.iinfo(dtype)
        x = np.clip(x * info.max / 2, info.min, info.max)
    x = x.astype(dtype)
    one = resample(x, in_rate, out_rate, threads=1)
    core = ResampleStream(in_rate, out_rate, 2, dtype)._core
    for threads in (2, 3, 8):
        assert core.oneshot_parts(len(x), threads) > 1  # the split path, not the fallback
        assert np.array_equal(resample(x, in_rate, out_rate, threads=threads), one)
    # and equal to the stream fed in uneven chunks, as every one-shot result is
    stream = ResampleStream(in_rate, out_rate, 2, dtype)
    pieces = [stream.resample_chunk(x[i : i + 4097]) for i in range(0, len(x), 4097)]
    pieces.append(stream.resample_chunk(x[:0], last=True))
    assert np.array_equal(np.concatenate(pieces), one)


@pytest.mark.parametrize("frames", [0, 1, 5, 300, 5000])
def test_short_oneshots_run_on_one_thread(frames: int) -> None:
    core = ResampleStream(44100, 48000, 1)._core
    assert core.oneshot_parts(frames, 8) == 1
    x = np.random.default_rng(frames).standard_normal(frames).astype(np.float32)
    one = resample(x, 44100, 48000, threads=1)
    assert np.array_equal(resample(x, 44100, 48000, threads=8), one)


def test_threads_argument_is_checked() -> None:
    x = np.zeros(100, np.float32)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="threads must be at least 1"):
            resample(x, 48000, 16000, threads=bad)
    for wrong in (True, 1.5, "2"):
        with pytest.raises(TypeError, match="threads must be an integer"):
            resample(x, 48000, 16000, threads=wrong)  # type: ignore[arg-type]
    assert len(resample(x, 48000, 16000, threads=np.int64(2))) == 33


def test_threads_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(5).standard_normal(96000).astype(np.float32)
    expected = resample(x, 48000, 16000, threads=1)
    seen: list[int] = []
    real_oneshot = _resampler.oneshot

    def spy(*args: Any) -> np.ndarray:
        seen.append(args[-1])
        return real_oneshot(*args)

    monkeypatch.setattr(_resampler, "oneshot", spy)
    monkeypatch.setenv("ANUNZI_FAST_THREADS", "3")
    assert np.array_equal(resample(x, 48000, 16000), expected)
    assert seen == [3]  # the variable reached the core
    assert np.array_equal(resample(x, 48000, 16000, threads=2), expected)
    assert seen == [3, 2]  # the keyword wins
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("ANUNZI_FAST_THREADS", bad)
        with pytest.raises(ValueError, match="ANUNZI_FAST_THREADS"):
            resample(x, 48000, 16000)
    monkeypatch.delenv("ANUNZI_FAST_THREADS")
    assert rs._default_threads() >= 1


@pytest.mark.parametrize(
    ("in_rate", "out_rate"), [(48000, 16000), (16000, 48000), (16000, 44100), (44100, 48000)]
)
def test_non_finite_samples_stay_within_the_filter_reach(in_rate: int, out_rate: int) -> None:
    # A NaN or an infinity spoils exactly the outputs whose filter window covers it: those
    # come out non-finite, every other output is what it would have been, and chunked
    # streaming agrees (NaN for NaN).
    clean = np.random.default_rng(3).standard_normal(in_rate // 2).astype(np.float32) * 0.3
    bad = clean.copy()
    spots = {in_rate // 8: np.nan, in_rate // 3: np.inf}
    for i, v in spots.items():
        bad[i] = v
    y_clean = resample(clean, in_rate, out_rate)
    y = resample(bad, in_rate, out_rate)
    reach = ResampleStream(in_rate, out_rate, 1)._core.taps  # input samples, either side
    near = np.zeros(len(y), bool)
    for i in spots:
        centre = round(i * out_rate / in_rate)
        span = round(reach * max(1.0, out_rate / in_rate)) + 2
        near[max(0, centre - span) : centre + span] = True
        assert not np.isfinite(y[centre])
    assert np.array_equal(y[~near], y_clean[~near])
    stream = ResampleStream(in_rate, out_rate, 1)
    pieces = [stream.resample_chunk(bad[i : i + 997]) for i in range(0, len(bad), 997)]
    pieces.append(stream.resample_chunk(bad[:0], last=True))
    assert np.array_equal(np.concatenate(pieces), y, equal_nan=True)


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "quality"),
    [(48000, 16000, "QQ"), (48000, 16000, "LQ"), (44100, 48000, "HQ"), (44100, 48000, "VHQ"),
     (48000, 44100, "LQ"), (22050, 32000, "HQ"), (48000, 48000, "QQ"), (44100, 22050, "MQ"),
     (16000, 44100, "MQ"), (96000, 16000, "MQ"), (44100, 16000, "HQ"), (16000, 48000, "HQ"),
     (16000, 16001, "HQ")],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_samples_do_not_depend_on_the_chunking(in_rate: int, out_rate: int,
                                                          quality: str, dtype: str) -> None:
    # Kernels that compute several outputs from one shared window (a lane per output) must
    # not let a NaN or an infinity beside an output's own taps spoil it: how far the input has
    # arrived decides whether such a sample is in the window, so streaming would disagree
    # with one-shot (the fuzz target found it at 44.1k -> 48k).
    # Signed zeros too: a lane's sum can round to -0, and the samples beside its taps decided
    # whether it stayed so (silence, one negative denormal, then -0 samples shows it).
    rng = np.random.default_rng(in_rate + out_rate)
    tiny = np.finfo(dtype).smallest_subnormal

    def bits(y: np.ndarray) -> bytes:  # NaN payloads aside, every bit, the sign of 0 too
        return np.where(np.isnan(y), np.nan, y).astype(dtype).tobytes()

    for trial in range(10):
        channels = 1 + trial % 2
        shape = (int(rng.integers(300, 2500)), channels)
        if trial < 6:
            x = (rng.standard_normal(shape) * 0.3).astype(dtype)
            for _ in range(1 + trial % 3):
                x[rng.integers(0, shape[0]), rng.integers(0, channels)] = rng.choice(
                    [np.nan, np.inf, -np.inf])
        else:
            x = np.zeros(shape, dtype)
            at = int(rng.integers(0, shape[0] // 2))
            x[at] = -tiny
            x[at + 1 :] = -0.0
        if channels == 1:
            x = x[:, 0]
        one_shot = resample(x, in_rate, out_rate, quality, threads=1)
        stream = ResampleStream(in_rate, out_rate, channels, dtype=dtype, quality=quality)
        pieces, at = [], 0
        while at < len(x):
            step = int(rng.integers(0, 150 if trial < 6 else 4))
            pieces.append(stream.resample_chunk(x[at : at + step]))
            at += step
        pieces.append(stream.resample_chunk(x[:0], last=True))
        assert bits(np.concatenate(pieces)) == bits(one_shot), trial
        assert bits(resample(x, in_rate, out_rate, quality, threads=2)) == bits(one_shot), trial


@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [(1, 2), (1, 3), (1, 5), (1, 7), (1, 16), (2, 1), (3, 1), (4, 1), (5, 1), (7, 1), (16, 1)],
)
@pytest.mark.parametrize("quality", [QQ, LQ, MQ, HQ, VHQ])
def test_fast_fir_streams_are_bit_exact(in_rate: int, out_rate: int, quality: int) -> None:
    # Integer up factors go through the two-parallel fast FIR, whose intermediate terms cancel
    # only in exact arithmetic: every product must lie in the window of an output it computes,
    # for every filter length (odd ones get a zero in front) and chunking. Integer down factors
    # (the direct path) are checked alike.
    scale = 8000
    x = np.random.default_rng(in_rate * 31 + out_rate).standard_normal(1500).astype(np.float32)
    one = resample(x, in_rate * scale, out_rate * scale, quality, threads=1)
    for chunk in (1, 7, 256):
        stream = ResampleStream(in_rate * scale, out_rate * scale, 1, "float32", quality)
        pieces = [stream.resample_chunk(x[i : i + chunk]) for i in range(0, len(x), chunk)]
        pieces.append(stream.resample_chunk(x[:0], last=True))
        assert np.array_equal(np.concatenate(pieces), one), chunk
    long_x = np.tile(x, 200)
    assert np.array_equal(
        resample(long_x, in_rate * scale, out_rate * scale, quality, threads=4),
        resample(long_x, in_rate * scale, out_rate * scale, quality, threads=1),
    )


# ---------------------------------------------------------------- every design meets its preset

PRESETS = {
    QQ: (0.80, 1.20, 50.0),
    LQ: (0.85, 1.15, 80.0),
    MQ: (0.90, 1.10, 105.0),
    HQ: (0.91, 1.00, 130.0),
}


def prototype_response(in_rate: int, out_rate: int, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The frequency response of the filter a stream really uses, from its impulse responses.

    An impulse at input sample q comes out as h(m * in / out - q): with q stepping through
    `down` consecutive samples, the outputs interleave into h at `up` times the input rate
    (up / down the reduced ratio). Float64 data, so the arithmetic is float64 too. Returns
    frequencies in cycles per input sample and the magnitude relative to a nominal gain of 1.
    """
    g = gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    n = 3000
    outputs = []
    for p in range(down):
        x = np.zeros(n)
        x[n // 2 + p] = 1.0
        outputs.append(resample(x, in_rate, out_rate, quality, threads=1))
    m = min(len(y) for y in outputs)
    h = np.zeros(m * down + down * up)
    for p, y in enumerate(outputs):
        h[np.arange(m) * down - p * up + (down - 1) * up] = y[:m]
    size = 1 << 20
    response = np.abs(np.fft.rfft(h, size)) / up
    return np.arange(len(response)) * up / size, response


def cascade_period(core: _resampler.Resampler) -> tuple[int, int]:
    """Input and output samples per period of a stream's cascade of stages.

    A stage of ratio up / down repeats every `down` of its own input samples; the cascade
    repeats when all of its stages do. One stage: (down, up) of the reduced ratio. A half-band
    before a 2/3 stage (48 -> 16 kHz): 6 inputs and 2 outputs, not 3 and 1.
    """
    period = Fraction(1)
    rate = Fraction(1)  # a stage's input samples per cascade input sample
    for stage in core.stages:
        stage_period = Fraction(stage["down"]) / rate  # in cascade input samples
        period = Fraction(
            lcm(period.numerator, stage_period.numerator),
            gcd(period.denominator, stage_period.denominator),
        )
        rate *= Fraction(stage["up"], stage["down"])
    p_in = period.numerator  # a whole number of input samples, the smallest
    return p_in, int(p_in * rate)


def stream_components(
    in_rate: int, out_rate: int, quality: int, size: int = 1 << 13
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a stream makes of each input frequency, from its impulse responses.

    A cascade whose half-bands decimate before its last stage is periodically time-varying,
    with a period of p_in inputs and p_out outputs (cascade_period), not one filter: the
    response to e^(2 pi i f q) is p_out complex gains Y_m (one per output m modulo p_out),
    taken here from the impulse responses at p_in consecutive inputs. Its output is a sum of
    p_out tones at f * in / out + k / p_out cycles per output sample: k = 0 is the input tone
    at the new rate (when f is below the output Nyquist), every other is an alias or image.
    Returns the input frequencies (Hz, up to the input Nyquist), the output frequency of each
    component (Hz, folded into [0, out / 2]) and its amplitude relative to the input's, both
    [component, frequency].
    """
    core = ResampleStream(in_rate, out_rate, 1, quality=quality)._core
    p_in, p_out = cascade_period(core)
    reach = size // 2 - 1  # input samples either side of an output that its filters reach
    n = 2 * reach + 4 * p_in
    q0 = n // 2 // p_in * p_in
    m0 = q0 // p_in * p_out  # the output at input time q0
    js = np.arange(-(reach // p_in), reach // p_in + 1)
    g = np.zeros((p_out, size))  # g[m, q - q0] = the weight of input q in output m0 + m
    for s in range(p_in):
        x = np.zeros(n)
        x[q0 + s] = 1.0
        y = resample(x, in_rate, out_rate, quality, threads=1)
        # Output m0 + m + p_out j weighs input q0 + s as output m0 + m weighs q0 + s - p_in j.
        rows = m0 + np.arange(p_out)[:, None] + p_out * js[None, :]
        g[:, (s - p_in * js) % size] = y[rows]
    f = np.arange(size // 2 + 1) / size  # cycles per input sample
    gains = (np.fft.ifft(g, axis=1) * size)[:, : size // 2 + 1]  # sum_q g[m, q] e^(2 pi i f q)
    shift = np.exp(-2j * np.pi * np.outer(np.arange(p_out), f * in_rate / out_rate))
    components = np.fft.fft(gains * shift, axis=0) / p_out
    k = np.arange(p_out)[:, None]
    f_out = ((f[None, :] * in_rate / out_rate + k / p_out) * out_rate) % out_rate
    f_out = np.minimum(f_out, out_rate - f_out)
    return f * in_rate, f_out, np.abs(components)


@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [
        (16000, 48000),
        (48000, 16000),
        (8000, 16000),
        (12000, 48000),
        (32000, 48000),
        (48000, 32000),
        (44100, 48000),
        (16000, 44100),
        (44100, 16000),
        (8000, 11025),
    ],
)
@pytest.mark.parametrize("quality", [QQ, LQ, MQ, HQ])
def test_every_design_meets_its_preset(in_rate: int, out_rate: int, quality: int) -> None:
    # Measured on the filters the stream computes with (whichever design it chose), not on the
    # designs' own grids: the stopband from the preset's edge on, the passband up to its edge,
    # and (equiripple presets) the flat part below 0.8 of the edge. A cascade that is one
    # polyphase filter in effect (one period of the reduced ratio) is measured as that filter;
    # one with half-bands before its last stage by what it makes of each input frequency.
    passband, stopband, attenuation = PRESETS[quality]
    core = ResampleStream(in_rate, out_rate, 1, quality=quality)._core
    if cascade_period(core) == core.ratio[::-1]:
        f, response = prototype_response(in_rate, out_rate, quality)
        nyquist = 0.5 * min(1.0, out_rate / in_rate)
        assert db(response[f >= stopband * nyquist].max()) < -attenuation
        gain = response[f <= passband * nyquist]
        flat_gain = response[f <= 0.8 * passband * nyquist]
    else:
        f_in, f_out, amplitude = stream_components(in_rate, out_rate, quality)
        nyquist = 0.5 * min(in_rate, out_rate)  # Hz
        tone = np.zeros(amplitude.shape, bool)  # the input tone itself at the new rate
        tone[0] = f_in <= out_rate / 2
        # As for one filter, except between the stopband edge and its mirror image below
        # Nyquist (QQ-MQ: what folds between them stays in the transition band), every
        # component but the tone itself is below the preset's attenuation.
        low, high = (2 - stopband) * nyquist, stopband * nyquist
        folding = (f_in >= low) & (f_in <= high) & (f_out >= low) & (f_out <= high)
        assert db(amplitude[~tone & ~folding].max()) < -attenuation
        gain = amplitude[0, f_in <= passband * nyquist]
        flat_gain = amplitude[0, f_in <= 0.8 * passband * nyquist]
    deviation = np.abs(gain - 1).max()
    flat = np.abs(flat_gain - 1).max()
    if quality == QQ:  # a window design: the stopband's ripple in the passband too
        assert deviation < 10 ** (-attenuation / 20)
    else:
        assert deviation < 1.2e-4  # +-0.001 dB
        assert flat < (6e-7 if quality == HQ else 2e-5 if quality == MQ else 1.2e-4)
