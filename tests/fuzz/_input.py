"""Reading decisions out of a fuzz input: the one decoder every target and engine shares.

The input is consumed from the front; once it is exhausted every read returns zeros or empty
bytes, so a target's loop ends on :attr:`FuzzInput.remaining` and never on an exception. A
plain class rather than atheris's ``FuzzedDataProvider`` so that an input found by atheris
replays identically under hypothesis or pytest, and corpus files mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

_T = TypeVar("_T")


class FuzzInput:
    """A cursor over the fuzz input's bytes."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not consumed yet."""
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer at the end of the input)."""
        n = max(0, n)
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        """Everything not consumed yet."""
        return self.take(self.remaining)

    def u8(self) -> int:
        chunk = self.take(1)
        return chunk[0] if chunk else 0

    def u16(self) -> int:
        return int.from_bytes(self.take(2).ljust(2, b"\0"), "little")

    def u32(self) -> int:
        return int.from_bytes(self.take(4).ljust(4, b"\0"), "little")

    def below(self, n: int) -> int:
        """An integer in ``[0, n)``, from one byte when ``n <= 256``, else from two or four."""
        if n <= 1:
            return 0
        if n <= 256:
            return self.u8() % n
        if n <= 65536:
            return self.u16() % n
        return self.u32() % n

    def flag(self) -> bool:
        return bool(self.u8() & 1)

    def pick(self, options: Sequence[_T]) -> _T:
        return options[self.below(len(options))]

    def size(self, cap: int) -> int:
        """A length with the interesting ones likely: 0, 1, 2, 3, small odd and even, up to cap."""
        kind = self.u8() % 8
        if kind == 0:
            return 0
        if kind == 1:
            return 1
        if kind == 2:
            return min(cap, 2 + self.u8() % 2)
        if kind < 6:
            return min(cap, self.u8())
        return self.below(cap + 1)
