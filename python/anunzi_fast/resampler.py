"""Sample-rate conversion with python-soxr's API, on anunzi-fast's own polyphase filters.

Code written for python-soxr runs unchanged: ``resample``, ``ResampleStream`` and the quality
constants take the same arguments and raise the same exception types for the same mistakes.
What differs is the engine: a cascade of direct polyphase filters in which every output sample
is one dot product of a filter row with a window of the stage's input, so

* streaming output is released sample by sample as soon as the input it needs has arrived (a
  fixed latency, reported by :meth:`ResampleStream.delay`), not in FFT-sized blocks;
* concatenated ``resample_chunk`` outputs equal ``resample`` bit for bit for float dtypes,
  whatever the chunk sizes;
* int16/int32 output is rounded to nearest and clipped, never dithered, so digital silence stays
  exactly zero; :meth:`ResampleStream.num_clips` counts clipped samples.

Quality presets. Frequencies are relative to the Nyquist frequency of the lower rate. The
filters are designed when a stream is built (designs are cached), the shortest that meets the
preset: equiripple (Parks-McClellan) where that is shorter (always at HQ), with a passband
ripple of +-0.0009 dB that stays within 2e-5 (QQ, LQ), the stopband's ripple (MQ) or 5e-7 (HQ)
up to 0.8 of the passband edge, so a tone there comes out as the same tone at the new rate
(within 1e-4 of full scale at 32 Hz for every preset); Kaiser-windowed sincs otherwise (VHQ).
Where it is faster, the sharp filter runs at the lowest rate the ratio allows: decimations by
more than 2 first halve the rate with half-band filters (96 -> 48 kHz, then 48 -> 16 kHz), and
upsamplings by 2 or more double it with the sharp filter, then finish with a short
wide-transition stage (16 -> 32 -> 44.1 kHz), unless that would take the latency past 6 ms
(and past the single filter's). A single filter of few phases (48 <-> 16 kHz) runs faster
than such a cascade, which needs fewer multiply-adds but spends them in short filters.
``ResampleStream(...)._core.design`` names the designs a stream uses, ``_core.stages``
describes its stages. Measured on 48 kHz -> 16 kHz with float32 data (VHQ: float64 data),
residual of a tone at 10 kHz / 20 kHz relative to the input, THD+N of a 1 kHz tone, and
``delay()`` once running; "worst" is the worst stopband of the filters built for 48 <-> 16,
44.1 <-> 48 and 16 -> 44.1 kHz (from the streams' impulse responses):

====  ========  =========  =========  ==============  ===========  =======  ==========
name  passband  stopband   worst      alias 10k/20k   THD+N 1 kHz  latency  arithmetic
====  ========  =========  =========  ==============  ===========  =======  ==========
QQ    0.80      from 1.20  -55.1 dB   -62 / -60 dB    -141 dB      0.54 ms  float32
LQ    0.85      from 1.15  -84.2 dB   -102 / -86 dB   -139 dB      1.04 ms  float32
MQ    0.90      from 1.10  -107.5 dB  -118 / -110 dB  -139 dB      1.85 ms  float32
HQ    0.91      from 1.00  -132.4 dB  -135 / -142 dB  -133 dB      4.65 ms  float32
VHQ   0.91      from 1.00  -169.9 dB  -194 / -215 dB  -252 dB      8.19 ms  float64
====  ========  =========  =========  ==============  ===========  =======  ==========

An equiripple stopband stays at its design level everywhere, where a Kaiser one falls away from
its edge (soxr HQ leaves -137 / -144 dB at 10 / 20 kHz). HQ and VHQ reject everything above the
output Nyquist, as soxr does (at 48 kHz -> 16 kHz an 8.2 kHz tone leaves -139 dB). QQ, LQ and MQ
put the stopband edge above Nyquist (at 2 - passband), which shortens their filters and latency:
input between Nyquist and that edge aliases, but only into the transition band above the
passband. Each output is one chain of multiply-adds, so with float32 data THD+N is bounded by
float32 rounding (HQ: -133 dB; float64 data: -252 dB); with float32 data VHQ's residual is
bounded near -160 dB by the float32 input itself. A NaN or infinite sample spoils only the
outputs whose filter window covers it.

A long one-shot :func:`resample` splits its work across threads (the ``threads`` keyword, or
the ``ANUNZI_FAST_THREADS`` environment variable; by default the CPUs the process may use),
each continuing the conversion from its own output sample: the result is bit-identical for
any thread count.

Latency is a fixed number of samples at the lower rate, so it grows as that rate falls: at HQ it
is 1.8 ms for 44.1 <-> 48 kHz, 4.7 ms for 16 -> 48 kHz, 4.6 ms for 48 -> 16 kHz and 5.1 ms for
16 -> 44.1 kHz. HQ stays within 6 ms only when the lower rate is at least 16 kHz; below it, HQ
latency exceeds 6 ms: 6.6 ms at 12 kHz -> 48 kHz, 7.2 ms at 11.025 kHz -> 44.1 kHz, 9.4 ms at
8 kHz <-> 16 kHz and 9.9 ms at 8 kHz -> 48 kHz. Choose MQ or a lower preset where that matters
more than HQ's stopband.

Rate ratios. The ratio out_rate / in_rate is used exactly when it reduces to a fraction whose
numerator and denominator are both at most 2**20 (1,048,576), as it does for integer rates up to
1,048,576 Hz. Otherwise (non-integer rates, large co-prime rates, or a ratio just above 2**20 or
just below 2**-20) it is approximated by the closest such fraction, a continued-fraction
convergent, with a relative error below 2**-20 (1 ppm, finer than any audio clock's accuracy),
so output runs slightly fast or slow by that much. A ratio of 2**20 + 1 or more, in either
direction, cannot be represented and raises ``ValueError``, as does a ratio whose filter
table would exceed 256 MB at the chosen quality (e.g. 192 kHz -> 1 Hz at VHQ).

float64 and int32 streams are always computed in float64; float32 and int16
streams in float32 (except VHQ). A stream's kernels are the package's instruction-set level
when it is built (``anunzi_fast.active_isa()``, as for the PCM conversions):
``ANUNZI_FAST_ISA=portable|sse2|avx2|avx512`` sets it at import (an unknown or unsupported value
falls back to the best level with a ``RuntimeWarning``), ``anunzi_fast._native.set_active_isa()``
for streams built afterwards. Results are bit-identical within a path, and agree across paths
to float rounding.
"""

from __future__ import annotations

import math
import operator
import os
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _resampler

__all__ = ["HQ", "LQ", "MQ", "QQ", "VHQ", "ResampleStream", "resample"]

QQ: int = _resampler.QQ
LQ: int = _resampler.LQ
MQ: int = _resampler.MQ
HQ: int = _resampler.HQ
VHQ: int = _resampler.VHQ

# Channel limit and messages as in python-soxr, so callers matching on them keep working.
CHANNEL_LIMIT = 65536
RATE_ERR = "Sample rate should be over 0"
CHANNEL_ERR = f"Channel num({{}}) out of limit. Should be in [1, {CHANNEL_LIMIT}]"
CHANNEL_TYPE_ERR = "Channel num must be an integer, not {}"
DTYPE_ERR = "Data type must be one of [float32, float64, int16, int32], not {}"
DTYPE_UNMATCH_ERR = "Input should be a `np.ndarray` with matching dtype for ResampleStream({})."
QUALITY_ERR = "Quality must be one of [QQ, LQ, MQ, HQ, VHQ]"
NDIM_ERR = "Input must be 1-D or 2-D array"
CHANNEL_MISMATCH_ERR = "Channel num mismatch"  # raised by the compiled core
VR_ERR = "Variable-rate resampling (vr=True) is not supported by anunzi-fast"
THREADS_ERR = "threads must be at least 1, not {}"
THREADS_TYPE_ERR = "threads must be an integer or None, not {}"
THREADS_ENV = "ANUNZI_FAST_THREADS"
_MAX_THREADS = 64  # the core's own cap; also keeps the count within a C unsigned

_SUPPORTED_DTYPES = (
    np.dtype(np.float32),
    np.dtype(np.float64),
    np.dtype(np.int16),
    np.dtype(np.int32),
)

_QUALITIES: dict[Any, int] = {}
for _name, _value in (("qq", QQ), ("lq", LQ), ("mq", MQ), ("hq", HQ), ("vhq", VHQ)):
    _QUALITIES[_value] = _value
    _QUALITIES[_name] = _value
    _QUALITIES["soxr_" + _name] = _value


def _quality_to_enum(quality: Any) -> int:
    if isinstance(quality, str):
        quality = quality.lower()
    try:
        return _QUALITIES[quality]
    except (KeyError, TypeError):
        raise ValueError(QUALITY_ERR) from None


def _check_rates(in_rate: float, out_rate: float) -> None:
    # Stricter than soxr on NaN and infinity, which make soxr hang.
    if not (in_rate > 0 and out_rate > 0 and math.isfinite(in_rate) and math.isfinite(out_rate)):
        raise ValueError(RATE_ERR)


def _check_dtype(dtype: np.dtype[Any]) -> None:
    if dtype not in _SUPPORTED_DTYPES:
        raise TypeError(DTYPE_ERR.format(dtype))


class ResampleStream:
    """Streaming resampler for real-time processing or very long signals.

    Parameters
    ----------
    in_rate : float
        Input sample rate, > 0.
    out_rate : float
        Output sample rate, > 0.
    num_channels : int
        Number of channels, in [1, 65536]: an ``int`` or any integer type (``operator.index``);
        a float such as 2.0 is refused, as python-soxr refuses it.
    dtype : type or str, optional
        Sample type of every chunk: float32, float64, int16 or int32.
    quality : int or str, optional
        One of ``QQ, LQ, MQ, HQ, VHQ`` or their names (case-insensitive, ``'soxr_hq'`` too).
    vr : bool, optional
        Accepted for python-soxr compatibility; only ``False`` is supported.

    Raises
    ------
    ValueError
        For rates <= 0 or not finite, a channel count out of range, a bad quality, a ratio of
        2**20 + 1 or more either way or too extreme for the quality (the filter table would
        exceed 256 MB), or vr=True.
    TypeError
        For an unsupported dtype or a channel count that is not an integer.

    Notes
    -----
    The GIL is released while the filter is designed (at construction) and while samples are
    computed, so independent streams run in parallel threads. One stream must not be used by
    two threads at once: a call made while another thread is inside one of this stream's
    methods (``resample_chunk``, ``delay``, ``num_clips``, ``clear``) raises RuntimeError
    instead of reading or corrupting a stream in mid-update.
    """

    def __init__(
        self,
        in_rate: float,
        out_rate: float,
        num_channels: int,
        dtype: Any = "float32",
        quality: Any = "HQ",
        vr: bool = False,
    ) -> None:
        _check_rates(in_rate, out_rate)
        try:
            num_channels = operator.index(num_channels)
        except TypeError:
            raise TypeError(CHANNEL_TYPE_ERR.format(type(num_channels).__name__)) from None
        if num_channels < 1 or num_channels > CHANNEL_LIMIT:
            raise ValueError(CHANNEL_ERR.format(num_channels))
        self._num_channels = num_channels
        self._type = np.dtype(dtype)
        _check_dtype(self._type)
        q = _quality_to_enum(quality)
        if vr:
            raise ValueError(VR_ERR)
        self._core = _resampler.Resampler(
            float(in_rate),
            float(out_rate),
            num_channels,
            q,
            self._type.name,
            chunk_error=DTYPE_UNMATCH_ERR.format(self._type),
        )
        self._process = self._core.process

    def resample_chunk(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next chunk of the stream.

        Parameters
        ----------
        x : np.ndarray
            1-D (mono) or 2-D ``[frames, channels]`` array of the stream's dtype, any memory
            order. May be empty.
        last : bool, optional
            True for the final chunk: flushes the remaining output. After it, only
            :meth:`clear` makes the stream accept input again.

        Returns
        -------
        np.ndarray
            A new array with the same ndim and dtype as ``x``, holding every output sample that
            the input so far determines (all the rest when ``last``).

        Raises
        ------
        TypeError
            If ``x`` is not an ndarray of the stream's dtype.
        ValueError
            If ``x`` has more than 2 dimensions or the wrong number of channels.
        RuntimeError
            If called after ``last=True`` without :meth:`clear`.
        """
        # The hot path of a real-time loop, so the core does the checks: anything but an
        # ndarray of the stream's dtype is a TypeError with DTYPE_UNMATCH_ERR, more than 2
        # dimensions a ValueError with NDIM_ERR, as documented above.
        y: np.ndarray = self._process(x, last)  # 1-D stays 1-D
        return y

    def num_clips(self) -> int:
        """Number of output samples clipped so far (int16/int32 streams only; else 0).

        Raises RuntimeError if another thread is using the stream at that moment.
        """
        return int(self._core.num_clips())

    def delay(self) -> float:
        """Output samples owed for the input given so far, i.e. the current latency.

        Once the stream runs this is the fixed algorithmic latency of the filter (at most one
        output sample more); it is 0 for a fresh stream and after ``last=True``. Raises
        RuntimeError if another thread is using the stream at that moment.
        """
        return float(self._core.delay())

    def clear(self) -> None:
        """Reset to a fresh stream with the same configuration (no filter redesign)."""
        self._core.clear()


def _default_threads() -> int:
    """ANUNZI_FAST_THREADS if set (a positive integer), else the CPUs this process may use."""
    forced = os.environ.get(THREADS_ENV, "").strip()
    if forced:
        try:
            count = int(forced)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}={forced!r} is not a positive integer") from None
        if count < 1:
            raise ValueError(f"{THREADS_ENV}={forced!r} is not a positive integer")
        return count
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resample(
    x: npt.ArrayLike,
    in_rate: float,
    out_rate: float,
    quality: Any = "HQ",
    *,
    threads: int | None = None,
) -> np.ndarray:
    """Resample a whole signal.

    Parameters
    ----------
    x : array_like
        1-D (mono) or 2-D ``[frames, channels]`` input, C or Fortran order. A non-ndarray is
        converted to float32, as python-soxr does. dtype float32, float64, int16 or int32.
    in_rate : float
        Input sample rate, > 0.
    out_rate : float
        Output sample rate, > 0.
    quality : int or str, optional
        One of ``QQ, LQ, MQ, HQ, VHQ`` or their names (case-insensitive, ``'soxr_hq'`` too).
    threads : int, optional
        anunzi-fast only (keyword): the most threads a long conversion may use; each continues
        the conversion from its own output sample, so the result is bit-identical for any
        count. Conversions shorter than about 0.2 ms of work per thread use one. Default: the
        ``ANUNZI_FAST_THREADS`` environment variable if set, else the CPUs this process may use.

    Returns
    -------
    np.ndarray
        A new array of ``len(x) * out_rate / in_rate`` frames rounded to nearest, halves up
        (as soxr: 1, 3, 5 samples at 16 -> 8 kHz give 1, 2, 3), same ndim and dtype as ``x``,
        aligned with the input (the filter delay is removed).

    Raises
    ------
    ValueError
        For rates <= 0 or not finite, a bad quality, more than 2 dimensions, a channel count
        out of range, a ratio that cannot be represented or designed (see the module notes),
        threads < 1, or a malformed ``ANUNZI_FAST_THREADS``.
    TypeError
        For an unsupported dtype, or threads that is not an integer.
    """
    _check_rates(in_rate, out_rate)
    if threads is None:
        threads = _default_threads()
    else:
        if isinstance(threads, bool):
            raise TypeError(THREADS_TYPE_ERR.format("bool"))
        try:
            threads = operator.index(threads)
        except TypeError:
            raise TypeError(THREADS_TYPE_ERR.format(type(threads).__name__)) from None
        if threads < 1:
            raise ValueError(THREADS_ERR.format(threads))
    if type(x) is not np.ndarray:
        x = np.asarray(x, dtype=np.float32)
    _check_dtype(x.dtype)
    q = _quality_to_enum(quality)
    if x.ndim > 2:
        raise ValueError(NDIM_ERR)
    if x.ndim == 2 and (x.shape[1] < 1 or x.shape[1] > CHANNEL_LIMIT):
        raise ValueError(CHANNEL_ERR.format(x.shape[1]))
    y: np.ndarray = _resampler.oneshot(
        x, float(in_rate), float(out_rate), q, min(threads, _MAX_THREADS)
    )
    return y
