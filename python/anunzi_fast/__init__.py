"""anunzi-fast: a real-time Python client for Anunzi voice agents with a native audio core.

The native core (``anunzi_fast._native``):

- :func:`float_to_pcm16` / :func:`pcm16_to_float`: browser-exact PCM conversion, zero copy.
- :class:`SpscRing`: a lock-free single-producer/single-consumer sample ring.
- :class:`JitterBuffer`: the playback queue with prefill, underrun and overflow accounting.

Set ``ANUNZI_FAST_ISA`` to ``portable``, ``sse2``, ``avx2`` or ``avx512`` before import to force
an instruction-set level; :func:`active_isa` tells which one runs.
"""

from anunzi_fast._native import (
    JitterBuffer,
    JitterStats,
    SpscRing,
    active_isa,
    float_to_pcm16,
    pcm16_to_float,
    supported_isas,
)

__version__ = "0.1.0"

__all__ = [
    "JitterBuffer",
    "JitterStats",
    "SpscRing",
    "__version__",
    "active_isa",
    "float_to_pcm16",
    "pcm16_to_float",
    "supported_isas",
]
