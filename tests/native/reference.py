"""Plain numpy statements of the reference semantics, to test the native core against."""

import numpy as np
import numpy.typing as npt


def reference_pcm16(x: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """The browser's float32ToInt16 in plain numpy (float64 arithmetic, like JavaScript)."""
    s = np.asarray(x, dtype=np.float64)
    s = np.where(np.isnan(s), 0.0, s)
    s = np.clip(s, -1.0, 1.0)
    return np.trunc(np.where(s < 0, s * 32768.0, s * 32767.0)).astype(np.int16)


def reference_clipped(x: npt.ArrayLike) -> int:
    s = np.asarray(x, dtype=np.float64)
    return int(np.count_nonzero((s > 1.0) | (s < -1.0)))
