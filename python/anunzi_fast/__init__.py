"""anunzi-fast: a real-time Python client for Anunzi voice agents with a native audio core.

The native core (``anunzi_fast._native``):

- :func:`float_to_pcm16` / :func:`pcm16_to_float`: browser-exact PCM conversion, zero copy.
- :class:`SpscRing`: a lock-free single-producer/single-consumer sample ring.
- :class:`JitterBuffer`: the playback queue with prefill, underrun and overflow accounting.

The streaming resampler (:mod:`anunzi_fast.resample`) has python-soxr's API, so
``import anunzi_fast as soxr`` runs code written for soxr: :func:`resample`,
:class:`ResampleStream` and the quality constants ``QQ``, ``LQ``, ``MQ``, ``HQ``, ``VHQ``.

Set ``ANUNZI_FAST_ISA`` to ``portable``, ``sse2``, ``avx2`` or ``avx512`` before import to force
an instruction-set level; :func:`active_isa` tells which one runs.
"""

import os as _os
import warnings as _warnings

from anunzi_fast._native import (
    JitterBuffer,
    JitterStats,
    SpscRing,
    active_isa,
    float_to_pcm16,
    pcm16_to_float,
    supported_isas,
)
from anunzi_fast.resample import HQ, LQ, MQ, QQ, VHQ, ResampleStream, resample

__version__ = "0.1.0"

if (_forced := _os.environ.get("ANUNZI_FAST_ISA")) and _forced != active_isa():
    _warnings.warn(
        f"ANUNZI_FAST_ISA={_forced!r} is unknown or not supported by this CPU; "
        f"the conversions use {active_isa()!r}",
        RuntimeWarning,
        stacklevel=2,
    )

__all__ = [
    "HQ",
    "LQ",
    "MQ",
    "QQ",
    "VHQ",
    "JitterBuffer",
    "JitterStats",
    "ResampleStream",
    "SpscRing",
    "__version__",
    "active_isa",
    "float_to_pcm16",
    "pcm16_to_float",
    "resample",
    "supported_isas",
]
