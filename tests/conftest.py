"""What every test shares: the reference browser conversion and speech-like test signals.

The reference is written here once, in plain numpy and independently of the native core, so
that every test of a conversion (native core, client, CLI) checks against the same statement
of the reference client's semantics (PROTOCOL.md, section 3).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def browser_pcm16(x: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """The reference client's float32ToInt16: float64 arithmetic as in JavaScript.

    Clamp to [-1, 1], negatives times 32768, others times 32767, truncation toward zero
    (a typed-array store), NaN to 0.
    """
    s = np.asarray(x, dtype=np.float64)
    s = np.where(np.isnan(s), 0.0, s)
    s = np.clip(s, -1.0, 1.0)
    return np.trunc(np.where(s < 0, s * 32768.0, s * 32767.0)).astype(np.int16)


def browser_clipped(x: npt.ArrayLike) -> int:
    """How many samples :func:`browser_pcm16` clamps (NaN is not counted)."""
    s = np.asarray(x, dtype=np.float64)
    return int(np.count_nonzero((s > 1.0) | (s < -1.0)))


def tone(seconds: float, *, rate: int = 48_000, frequency: float = 300.0, level: float = 0.4,
         dtype: type = np.float32) -> npt.NDArray[np.generic]:
    """A sine loud enough for the energy VAD to call it speech: float in [-1, 1] or int16.

    int16 samples are ``level * 32767 * sin`` truncated, as the tests have always made them.
    """
    t = np.arange(round(seconds * rate)) / rate
    wave = level * np.sin(2 * np.pi * frequency * t)
    if dtype is np.int16:
        return (wave * 32767).astype(np.int16)
    return wave.astype(dtype)
