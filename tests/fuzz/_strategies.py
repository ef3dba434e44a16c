"""Hypothesis strategies over fuzz inputs: plain bytes, and seed inputs mutated a little."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

CORPUS = Path(__file__).parent / "corpus"


def seeds(target: str) -> list[bytes]:
    """The seed corpus of ``target``, sorted by file name."""
    folder = CORPUS / target
    return [path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()]


def _mutate(seed: bytes, at: int, action: int, data: bytes) -> bytes:
    at = at % (len(seed) + 1)
    if action == 0:  # overwrite
        return seed[:at] + data + seed[at + len(data) :]
    if action == 1:  # insert
        return seed[:at] + data + seed[at:]
    if action == 2:  # truncate
        return seed[:at]
    return seed[:at] + seed[at + len(data) :]  # erase


def inputs(target: str, max_size: int = 4096) -> st.SearchStrategy[bytes]:
    """Random bytes, or a seed with a few bytes overwritten, inserted or cut."""
    corpus = seeds(target)
    plain = st.binary(max_size=max_size)
    if not corpus:
        return plain
    mutated = st.builds(_mutate, st.sampled_from(corpus), st.integers(0, 2**16),
                        st.integers(0, 3), st.binary(min_size=1, max_size=16))
    return st.one_of(plain, mutated)
