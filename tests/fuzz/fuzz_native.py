"""Fuzz target ``native``: the compiled core's entry points, fed any array a caller can make.

The input chooses a sequence of calls among ``float_to_pcm16``, ``pcm16_to_float``,
:class:`SpscRing` (``write``, ``read_into``, ``read``, ``wait_readable``),
:class:`JitterBuffer` (``push``, ``read_into``, ``read``, ``clear``) and the resampler
(``resample``, ``ResampleStream.resample_chunk``, ``clear``), each with arguments built from
the input: sizes (0, 1, odd, around the 16,384 samples where the GIL is released), dtypes
(right and wrong: object, bool, big-endian, int8, float16, complex), shapes (0-D to 3-D, strided
and reversed views, Fortran order, read-only), raw ``bytes``/``bytearray``/``memoryview``, NaN
and infinities, and ``out=`` buffers of the wrong size, dtype, layout or overlapping the input.

Invariants: a call raises nothing but ``TypeError`` or ``ValueError`` (``RuntimeError`` only
for a stream used after ``last=True``), a wrong dtype is always a ``TypeError``, a failed call
changes no state, the process never crashes; where a call succeeds its result is the reference:
the browser formula for ``float_to_pcm16`` (clamp, negatives x32768, others x32767 in float64,
truncation, NaN to 0) and its clip count, ``v / 32768`` for ``pcm16_to_float``, the samples
written in order for the ring, ``samples_in == samples_out + dropped + buffered`` and the
queued samples (real samples first, then silence) for the jitter buffer, and for the resampler
``round(n * out / in)`` frames, with chunked float output equal to one-shot bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anunzi_fast._native import JitterBuffer, SpscRing, float_to_pcm16, pcm16_to_float
from anunzi_fast.resampler import ResampleStream, resample
from tests.fuzz._input import FuzzInput

ALLOWED = (TypeError, ValueError)
MAX_SAMPLES = 4096
LARGE_SIZES = (16_383, 16_384, 16_385, 40_001)  # around the GIL-release threshold
MAX_RING = 4096
MAX_JITTER_SAMPLES = 1 << 20  # larger buffers are allocated for real: keep memory bounded
MAX_OPERATIONS = 24

_ANY_DTYPES = ("<f4", "<f8", ">f4", ">f8", "<i2", ">i2", "<i4", "|i1", "|u1", "|b1", "<f2",
               "<c8", "O", "<u2", "<i8", "<f16" if hasattr(np, "float128") else "<f8")
_SPECIALS = (np.nan, np.inf, -np.inf, 1.0, -1.0, 1.0000001, -1.0000001, -0.0, 0.5, -0.5,
             3e38, -3e38, 1e-45, 32767.0 / 32768.0, np.float32(-1.0) - np.float32(1e-7))
_RATE_PAIRS = ((48_000, 16_000), (16_000, 48_000), (44_100, 48_000), (16_000, 44_100),
               (8_000, 16_000), (48_000, 48_000))
_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _is(x: Any, dtype: str) -> bool:
    """Whether x is a numpy array (or a buffer of one) of exactly this native dtype."""
    if isinstance(x, memoryview):
        return x.format == {"int16": "h", "float32": "f", "float64": "d"}[dtype]
    return isinstance(x, np.ndarray) and x.dtype == np.dtype(dtype) and x.dtype.isnative


def _values(source: FuzzInput, dtype: np.dtype[Any], n: int) -> np.ndarray:
    if dtype.kind == "O":
        return np.array([source.pick((0.5, None, "x", 1, np.nan)) for _ in range(n)], object)
    if dtype.kind == "b":
        return (np.frombuffer(source.take(n).ljust(n, b"\0"), np.uint8) & 1).astype(bool)
    raw = source.take(n * dtype.itemsize)
    values = np.frombuffer(raw.ljust(n * dtype.itemsize, b"\0"), dtype).copy()
    if dtype.kind == "f" and n and source.flag():
        for _ in range(1 + source.below(8)):
            values[source.below(n)] = source.pick(_SPECIALS)
    return values


def _array(source: FuzzInput, right: str, large: bool = True) -> Any:
    """Samples as a caller could pass them: mostly the right dtype, in any layout."""
    dtype = np.dtype(right if source.below(3) else source.pick(_ANY_DTYPES))
    n = source.size(MAX_SAMPLES)
    if large and source.below(32) == 0:
        n = source.pick(LARGE_SIZES)
    flat = _values(source, dtype, n)
    layout = source.below(14)
    if layout == 0 and n:
        return np.array(flat[0])  # 0-D
    if layout == 1 and n >= 2:
        return flat[:: source.pick((2, 3, -1, -2))]
    if layout == 2 and n >= 4:
        rows = source.pick((1, 2, 3, 4))
        return flat[: n - n % rows].reshape(rows, -1)
    if layout == 3 and n >= 4:
        return np.asfortranarray(flat[: n - n % 2].reshape(2, -1))
    if layout == 4 and n >= 8:
        return flat[: n - n % 8].reshape(2, 2, -1)
    if layout == 5 and n >= 4:
        return flat[: n - n % 2].reshape(-1, 2)[:, :1]  # 2-D, not contiguous
    if layout == 6:
        flat.flags.writeable = False
        return flat
    if layout == 7 and dtype.kind != "O":
        return flat.tobytes()
    if layout == 8 and dtype.kind != "O":
        return bytearray(flat.tobytes())
    if layout == 9 and dtype.kind != "O":
        return memoryview(flat)
    if layout == 10 and dtype.kind != "O" and n >= 2:
        return memoryview(flat)[::2]
    if layout == 11:
        return list(flat[:8])
    return flat


def _out(source: FuzzInput, x: Any, n: int, right: str) -> Any:
    kind = source.below(10)
    if kind < 4:
        return None
    if kind == 4:
        return np.empty(n, right)
    if kind == 5:
        return np.empty(max(0, n + source.pick((-1, 1, 2))), right)
    if kind == 6:
        return np.empty(n, source.pick(("<i2", "<f4", "<f8", ">i2", ">f4", "|u1")))
    if kind == 7:
        out = np.empty(n, right)
        if source.flag():
            out.flags.writeable = False
            return out
        return np.empty(2 * n, right)[::2]
    if kind == 8:
        return x  # the input itself: overlapping
    return source.pick((bytearray(n * np.dtype(right).itemsize), b"\0" * n * 2, [0] * n, 3))


def _count(x: Any) -> int | None:
    """Samples in x as the core counts them, or None if it is not a buffer of items."""
    try:
        return int(np.asarray(x).size) if not isinstance(x, (bytes, bytearray)) else None
    except Exception:
        return None


def _check_float_to_pcm16(source: FuzzInput) -> None:
    x = _array(source, source.pick(("float32", "float64")))
    raw = isinstance(x, (bytes, bytearray)) or (isinstance(x, memoryview) and x.format == "B")
    values = np.frombuffer(bytes(x[: len(x) - len(x) % 4]), "<f4") if raw else None
    n = len(values) if values is not None else (_count(x) or 0)
    out = _out(source, x, n, "int16")
    want_clipped = source.flag()
    try:
        result = float_to_pcm16(x, out, return_clipped=want_clipped)
    except ALLOWED as exc:
        if isinstance(x, np.ndarray) and x.dtype.kind != "O" and not (
                _is(x, "float32") or _is(x, "float64")):
            assert isinstance(exc, TypeError), f"wrong dtype {x.dtype}: {exc!r}"
        return
    assert raw or _is(x, "float32") or _is(x, "float64"), f"accepted {type(x)} {_dtype(x)}"
    assert not raw or len(bytes(x)) % 4 == 0
    source_values = values if values is not None else np.asarray(x)
    expected = _reference_pcm16(source_values)
    array, clipped = result if want_clipped else (result, None)
    if out is not None:
        assert array is out
        got = np.asarray(out).ravel()
    else:
        got = np.asarray(array)
        assert got.dtype == np.int16
        if not raw:
            assert got.shape == np.asarray(x).shape, (got.shape, np.asarray(x).shape)
    assert np.array_equal(got.ravel(), expected.ravel()), "float_to_pcm16 differs"
    if want_clipped:
        s = np.asarray(source_values, np.float64)
        assert clipped == int(np.count_nonzero((s > 1.0) | (s < -1.0))), clipped


def _dtype(x: Any) -> str:
    return str(getattr(x, "dtype", getattr(x, "format", type(x).__name__)))


def _reference_pcm16(x: Any) -> np.ndarray:
    s = np.asarray(x, dtype=np.float64)
    s = np.where(np.isnan(s), 0.0, s)
    s = np.clip(s, -1.0, 1.0)
    return np.trunc(np.where(s < 0, s * 32768.0, s * 32767.0)).astype(np.int16)


def _check_pcm16_to_float(source: FuzzInput) -> None:
    x = _array(source, "int16")
    raw = isinstance(x, (bytes, bytearray)) or (isinstance(x, memoryview) and x.format == "B")
    n = len(x) // 2 if raw else (_count(x) or 0)
    out = _out(source, x, n, "float32")
    try:
        result = pcm16_to_float(x, out)
    except ALLOWED as exc:
        if isinstance(x, np.ndarray) and not _is(x, "int16") and x.dtype.kind != "O":
            assert isinstance(exc, TypeError), f"wrong dtype {x.dtype}: {exc!r}"
        return
    assert raw or _is(x, "int16"), f"accepted {type(x)} {_dtype(x)}"
    values = np.frombuffer(bytes(x), "<i2") if raw else np.asarray(x)
    assert not raw or len(bytes(x)) % 2 == 0
    expected = values.astype(np.float32) / np.float32(32768)
    got = np.asarray(out if out is not None else result)
    assert out is None or result is out
    assert got.dtype == np.float32
    assert np.array_equal(got.ravel(), expected.ravel()), "pcm16_to_float differs"


def _ring_op(source: FuzzInput, ring: SpscRing, model: bytearray, dtype: str) -> None:
    itemsize = np.dtype(dtype).itemsize
    op = source.below(5)
    before = (ring.readable, bytes(model))
    if op <= 1:
        x = _array(source, dtype, large=False)
        try:
            written = ring.write(x)
        except ALLOWED as exc:
            if isinstance(x, np.ndarray) and not _is(x, dtype) and x.dtype.kind != "O":
                assert isinstance(exc, TypeError), f"wrong dtype {x.dtype}: {exc!r}"
            assert (ring.readable, bytes(model)) == before
            return
        assert _is(x, dtype) and np.asarray(x).flags.c_contiguous, f"accepted {_dtype(x)}"
        data = np.ascontiguousarray(x).tobytes()
        assert written == min(len(data) // itemsize, ring.capacity - len(model) // itemsize)
        model += data[: written * itemsize]
    elif op <= 3:
        out = _out(source, None, source.size(MAX_RING), dtype)
        if out is None:
            out = np.full(source.size(MAX_RING), 7, dtype)
        try:
            got = ring.read_into(out)
        except ALLOWED:
            assert ring.readable == before[0]
            return
        assert _is(out, dtype), f"accepted out {_dtype(out)}"
        expected = bytes(model[: got * itemsize])
        assert got == min(np.asarray(out).size, len(model) // itemsize)
        assert np.asarray(out).ravel()[:got].tobytes() == expected, "ring returned other samples"
        del model[: got * itemsize]
    elif op == 4:
        wanted = source.pick((0, 1, 7, -1, 2**40, 2**70, 1.5, np.int64(3), "2"))
        try:
            array = ring.read(wanted)
        except ALLOWED:
            assert ring.readable == before[0]
            return
        assert array.dtype == np.dtype(dtype)
        assert array.tobytes() == bytes(model[: len(array) * itemsize])
        del model[: len(array) * itemsize]
    assert ring.readable == len(model) // itemsize
    assert ring.readable + ring.writable == ring.capacity
    k = min(ring.capacity, source.pick((0, 1, ring.readable, ring.readable + 1)))
    assert ring.wait_readable(k, 0.0) == (ring.readable >= k)


def _check_ring(source: FuzzInput) -> None:
    dtype = source.pick(("int16", "float32", "int16", "float32", "float64", "int8", object))
    capacity = source.pick((1, 2, 3, 509, 4096, 0, -1, 2**31 + 1, 1 + source.below(MAX_RING)))
    try:
        ring = SpscRing(capacity, dtype)
    except ALLOWED:
        assert dtype not in ("int16", "float32") or not 1 <= capacity <= 2**31
        return
    model = bytearray()
    for _ in range(1 + source.below(MAX_OPERATIONS)):
        if source.remaining == 0:
            break
        _ring_op(source, ring, model, str(dtype))


def _jitter_op(source: FuzzInput, jitter: JitterBuffer, model: bytearray, dtype: str,
               totals: dict[str, int]) -> None:
    itemsize = np.dtype(dtype).itemsize
    op = source.below(6)
    if op <= 1:
        x = _array(source, dtype, large=False)
        try:
            dropped = jitter.push(x)
        except ALLOWED:
            return
        assert _is(x, dtype) and np.asarray(x).flags.c_contiguous, f"accepted {_dtype(x)}"
        model += np.ascontiguousarray(x).tobytes()
        totals["in"] += np.asarray(x).size
        assert dropped <= len(model) // itemsize
        del model[: dropped * itemsize]
        assert len(model) // itemsize <= jitter.max_samples
    elif op <= 3:
        out = _out(source, None, source.size(MAX_RING), dtype)
        if out is None:
            out = np.full(source.size(MAX_RING), 7, dtype)
        try:
            real = jitter.read_into(out)
        except ALLOWED:
            return
        flat = np.asarray(out).ravel()
        assert real <= flat.size
        assert flat[:real].tobytes() == bytes(model[: real * itemsize]), "jitter: other samples"
        assert not flat[real:].view(np.uint8).any(), "jitter: silence is not zeros"
        del model[: real * itemsize]
        totals["out"] += real
    elif op == 4:
        wanted = source.pick((0, 1, 160, 481, -1, 2**70, 2.0))
        out_before = jitter.stats.samples_out
        try:
            block = jitter.read(wanted)
        except ALLOWED:
            return
        real = jitter.stats.samples_out - out_before
        assert len(block) == wanted and block.tobytes()[: real * itemsize] == bytes(
            model[: real * itemsize])
        del model[: real * itemsize]
        totals["out"] += real
    else:
        assert jitter.clear() == len(model) // itemsize
        model.clear()
    stats = jitter.stats
    assert stats.buffered == len(model) // itemsize
    assert stats.samples_in == totals["in"] and stats.samples_out == totals["out"]
    assert stats.samples_in == stats.samples_out + stats.dropped + stats.buffered, stats


def _check_jitter(source: FuzzInput) -> None:
    dtype = source.pick(("int16", "float32", "int16", "float32", "float64", "uint8"))
    rate = source.pick((16_000, 48_000, 8_000, 1, 44_100, 0, -1, 10_000_001, 2.5, 2**70))
    prefill = source.pick((60.0, 0.0, 20.0, 1e-9, float("nan"), float("inf"), -1.0, 3000.0))
    max_ms = source.pick((3000.0, 100.0, 1.0, 0.0, 0.01, float("nan"), 1e9, 1e12, 60.0))
    if isinstance(rate, int) and rate > 0 and max_ms == max_ms and (
            MAX_JITTER_SAMPLES < max_ms * rate / 1000 <= 2**31):
        return  # a valid size, too large to allocate in a fuzz loop
    try:
        jitter = JitterBuffer(rate, prefill_ms=prefill, max_ms=max_ms, dtype=dtype)
    except ALLOWED:
        return
    model = bytearray()
    totals = {"in": 0, "out": 0}
    for _ in range(1 + source.below(MAX_OPERATIONS)):
        if source.remaining == 0:
            break
        _jitter_op(source, jitter, model, dtype, totals)


def _bits(x: np.ndarray) -> bytes:
    """The bytes of x with every NaN made the same NaN.

    Bit for bit otherwise (signed zeros included): a NaN's payload depends on which NaN
    operand an FMA met first, which the contract does not cover.
    """
    x = np.array(x, copy=True)
    if x.dtype.kind == "f":
        x[np.isnan(x)] = np.nan
    return x.tobytes()


def _check_resample(source: FuzzInput) -> None:
    in_rate, out_rate = source.pick(_RATE_PAIRS)
    if source.below(8) == 0:
        in_rate = source.pick((0, -1, float("nan"), float("inf"), 2**21 * 48_000))
    quality = source.pick((*_QUALITIES, "bad", 7))
    dtype = source.pick(("float32", "float64", "int16", "int32", "float32", "int8", "float16"))
    channels = source.pick((1, 1, 2, 3))
    pieces = []
    for _ in range(source.below(5)):
        n = source.size(512)
        piece = _values(source, np.dtype(dtype), n * channels)
        pieces.append(piece.reshape(n, channels) if channels > 1 else piece)
    if not pieces:
        pieces.append(np.zeros((0, channels) if channels > 1 else 0, dtype))
    whole = np.concatenate(pieces)
    try:
        stream = ResampleStream(in_rate, out_rate, channels, dtype=dtype, quality=quality)
    except ALLOWED:
        try:
            resample(whole, in_rate, out_rate, quality)
        except ALLOWED:
            return
        raise AssertionError("resample accepted what ResampleStream refused") from None
    outputs = []
    for piece in pieces:
        view = piece
        if source.below(4) == 0 and len(piece) > 1:
            view = np.asfortranarray(piece) if piece.ndim == 2 else piece[::-1][::-1]
        if source.below(8) == 0:  # the wrong dtype or shape: refused, state unchanged
            wrong = source.pick((piece.astype(np.float64 if dtype != "float64" else np.float32),
                                 piece.reshape(1, 1, -1), list(piece.ravel()[:4])))
            try:
                stream.resample_chunk(wrong)
            except ALLOWED:
                pass
            else:
                raise AssertionError(f"resample_chunk accepted {type(wrong)} {_dtype(wrong)}")
        outputs.append(stream.resample_chunk(view))
    outputs.append(stream.resample_chunk(whole[:0], last=True))
    try:
        stream.resample_chunk(whole[:0])
    except RuntimeError:
        pass
    else:
        raise AssertionError("resample_chunk after last=True did not raise RuntimeError")
    streamed = np.concatenate(outputs)
    oneshot = resample(whole, in_rate, out_rate, quality, threads=source.pick((1, 2)))
    assert oneshot.dtype == whole.dtype and oneshot.ndim == whole.ndim
    # Halves round up, as soxr rounds them.
    assert len(oneshot) == (2 * len(whole) * out_rate + in_rate) // (2 * in_rate), len(oneshot)
    assert streamed.shape == oneshot.shape, (streamed.shape, oneshot.shape)
    if whole.dtype.kind == "f":
        assert _bits(streamed) == _bits(oneshot), "chunked output differs from one-shot"
    stream.clear()
    again = np.concatenate([stream.resample_chunk(whole), stream.resample_chunk(whole[:0], True)])
    if whole.dtype.kind == "f":
        assert _bits(again) == _bits(oneshot), "output after clear() differs"


_OPERATIONS = (_check_float_to_pcm16, _check_pcm16_to_float, _check_ring, _check_jitter,
               _check_resample)


def fuzz_one(data: bytes) -> None:
    """Run one input; raises AssertionError (or whatever escaped) if an invariant broke."""
    source = FuzzInput(data)
    with np.errstate(all="ignore"):  # the inputs overflow and hold NaN on purpose
        for _ in range(4):
            if source.remaining == 0:
                break
            source.pick(_OPERATIONS)(source)
