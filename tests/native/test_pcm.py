"""float_to_pcm16 / pcm16_to_float: exact semantics, every input kind, every error."""

import array
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from anunzi_fast import float_to_pcm16, pcm16_to_float
from tests._gil import gil_never_preempted
from tests.conftest import browser_clipped, browser_pcm16

F32 = np.float32
SPECIALS = np.array(
    [
        np.nan,
        -np.nan,
        np.inf,
        -np.inf,
        1.0,
        -1.0,
        np.nextafter(F32(1), F32(2)),
        np.nextafter(F32(-1), F32(-2)),
        np.nextafter(F32(1), F32(0)),
        np.nextafter(F32(-1), F32(0)),
        0.0,
        -0.0,
        0.5,
        -0.5,
        1e-45,
        -1e-45,
        3.4e38,
        -3.4e38,
        1.0 / 32767,
        -1.0 / 32768,
    ],
    dtype=F32,
)


def test_special_values_follow_the_browser(isa: str) -> None:
    out = float_to_pcm16(SPECIALS)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, browser_pcm16(SPECIALS))
    assert out[0] == 0 and out[1] == 0  # NaN of either sign -> 0
    assert out[2] == 32767 and out[3] == -32768  # +-Inf clamp
    assert out[4] == 32767 and out[5] == -32768  # +-1.0 exactly
    assert out[12] == 16383 and out[13] == -16384  # 16383.5 truncates toward zero


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 15, 16, 17, 31, 33, 99, 1000, 4099, 65537])
def test_matches_reference_for_many_lengths(isa: str, dtype: type, n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.uniform(-1.3, 1.3, n).astype(dtype)
    x[::7] = np.resize(SPECIALS, len(x[::7]))  # specials at every vector-lane position
    out, clipped = float_to_pcm16(x, return_clipped=True)
    np.testing.assert_array_equal(out, browser_pcm16(x))
    assert clipped == browser_clipped(x)
    assert out.shape == (n,)


def test_float32_values_where_a_float32_product_would_be_wrong(isa: str) -> None:
    # Inputs in [0, 1] whose float32 product x * 32767 rounds up to an integer: the browser's
    # double product truncates one lower. Found by scanning all floats near such integers.
    k = np.arange(1, 32768, dtype=np.float64)
    candidates = np.nextafter((k / 32767).astype(F32), F32(0))
    candidates = np.concatenate([candidates, (k / 32767).astype(F32)])
    wrong_in_float32 = (candidates * F32(32767)).astype(np.int32) != browser_pcm16(candidates)
    assert wrong_in_float32.sum() > 1000  # the trap is real
    np.testing.assert_array_equal(float_to_pcm16(candidates), browser_pcm16(candidates))


def test_float64_rounds_like_javascript(isa: str) -> None:
    # float64 input is multiplied in double, with its rounding, as JavaScript would.
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-1.1, 1.1, 10_001), np.nextafter(np.arange(32768) / 32767, 0)])
    np.testing.assert_array_equal(float_to_pcm16(x), browser_pcm16(x))


def test_empty_input_gives_empty_output() -> None:
    out = float_to_pcm16(np.empty(0, F32))
    assert out.shape == (0,) and out.dtype == np.int16
    assert pcm16_to_float(b"").shape == (0,)
    target = np.empty(0, np.int16)
    assert float_to_pcm16(np.empty(0, F32), target) is target


def test_huge_input() -> None:
    n = (1 << 25) + 3
    x = np.linspace(-1.5, 1.5, n, dtype=F32)
    out, clipped = float_to_pcm16(x, return_clipped=True)
    np.testing.assert_array_equal(out[:: 1 << 10], browser_pcm16(x[:: 1 << 10]))
    np.testing.assert_array_equal(out[-100:], browser_pcm16(x[-100:]))
    assert clipped == browser_clipped(x)


def test_shape_is_kept_for_contiguous_arrays() -> None:
    x = np.linspace(-1, 1, 24, dtype=F32).reshape(2, 3, 4)
    out = float_to_pcm16(x)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, browser_pcm16(x))
    scalar = float_to_pcm16(np.array(0.5, F32))
    assert scalar.shape == () and scalar == 16383


@pytest.mark.parametrize("step", [2, 3, -1, -5])
def test_strided_1d_views_are_read_in_place(step: int) -> None:
    base = np.linspace(-1.2, 1.2, 1001, dtype=F32)
    view = base[::step]
    np.testing.assert_array_equal(float_to_pcm16(view), browser_pcm16(view))
    pcm = browser_pcm16(base)
    np.testing.assert_array_equal(pcm16_to_float(pcm[::step]), pcm[::step] / np.float32(32768))


def test_non_contiguous_2d_input_is_rejected() -> None:
    x = np.zeros((4, 6), F32)
    with pytest.raises(ValueError, match="contiguous"):
        float_to_pcm16(x.T)
    with pytest.raises(ValueError, match="contiguous"):
        pcm16_to_float(np.zeros((4, 6), np.int16)[:, ::2])


def test_buffer_kinds_are_accepted_without_copy() -> None:
    x = np.array([0.25, -0.25, 1.5], F32)
    expected = browser_pcm16(x)
    for buf in (memoryview(x), x.tobytes(), bytearray(x.tobytes()), array.array("f", x)):
        np.testing.assert_array_equal(float_to_pcm16(buf), expected)
    np.testing.assert_array_equal(float_to_pcm16(array.array("d", x)), expected)
    readonly = x.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(float_to_pcm16(readonly), expected)


def test_out_is_written_in_place_and_returned() -> None:
    x = np.linspace(-1, 1, 50_000, dtype=F32)
    out = np.full(50_000, 7, np.int16)
    result = float_to_pcm16(x, out)
    assert result is out
    np.testing.assert_array_equal(out, browser_pcm16(x))
    result2, clipped = float_to_pcm16(x, out=out, return_clipped=True)
    assert result2 is out and clipped == 0
    as_2d = np.empty((100, 500), np.int16)
    assert float_to_pcm16(x, as_2d) is as_2d  # same size, any shape


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(4, np.int32),
        np.zeros(4, np.float16),
        np.zeros(4, np.complex64),
        np.zeros(4, np.int16),
        np.zeros(4, ">f4"),
        [0.0, 0.5],
        "text",
        None,
    ],
    ids=["int32", "float16", "complex64", "int16", "big-endian", "list", "str", "None"],
)
def test_wrong_input_type_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"float32 or float64|buffer"):
        float_to_pcm16(bad)  # type: ignore[call-overload]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_byte_sized_arrays_are_not_reinterpreted(dtype: type) -> None:
    # Only bytes/bytearray/memoryview are raw data; a numpy array of bytes has a dtype.
    with pytest.raises(TypeError, match="float32 or float64"):
        float_to_pcm16(np.zeros(8, dtype))
    with pytest.raises(TypeError, match="int16"):
        pcm16_to_float(np.zeros(100_000, dtype))  # the exported-buffer path too
    with pytest.raises(TypeError, match="int16"):
        pcm16_to_float(memoryview(bytes(4)).cast("b"))  # signed bytes are not raw data


def test_misaligned_buffers_convert_exactly() -> None:
    # A wire frame sliced at an odd offset: no alignment is assumed anywhere.
    x = np.linspace(-1.2, 1.2, 1001).astype(np.float32)
    raw = bytearray(1) + bytearray(x.tobytes())
    view = np.frombuffer(raw, np.float32, offset=1)
    assert not view.flags.aligned
    np.testing.assert_array_equal(float_to_pcm16(view), browser_pcm16(x))
    pcm = browser_pcm16(x)
    wire = memoryview(bytes(1) + pcm.tobytes())[1:]
    np.testing.assert_array_equal(pcm16_to_float(wire), pcm / np.float32(32768))


def test_out_errors() -> None:
    x = np.zeros(8, F32)
    with pytest.raises(TypeError, match="int16"):
        float_to_pcm16(x, np.zeros(8, np.int32))
    with pytest.raises(ValueError, match="elements"):
        float_to_pcm16(x, np.zeros(7, np.int16))
    readonly = np.zeros(8, np.int16)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        float_to_pcm16(x, readonly)
    with pytest.raises(ValueError, match="read-only"):
        float_to_pcm16(x, bytes(16))
    with pytest.raises(ValueError, match="contiguous"):
        float_to_pcm16(x, np.zeros(16, np.int16)[::2])
    with pytest.raises(TypeError, match="writable buffer"):
        float_to_pcm16(x, [0] * 8)
    shared = np.zeros(8, F32)
    with pytest.raises(ValueError, match="share memory"):
        float_to_pcm16(shared, shared.view(np.int16)[:8])
    with pytest.raises(ValueError, match="multiple of the sample size"):
        float_to_pcm16(b"\x00" * 6)


def test_pcm16_to_float_is_exact_for_every_value(isa: str) -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    for offset in range(17):  # every tail length of the vector loops
        out = pcm16_to_float(every[offset:])
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, every[offset:].astype(np.float64) / 32768)


def test_pcm16_to_float_reads_wire_bytes() -> None:
    wire = np.array([0, 1, -1, 32767, -32768], "<i2").tobytes()
    np.testing.assert_array_equal(
        pcm16_to_float(wire), np.array([0, 1, -1, 32767, -32768]) / np.float32(32768)
    )
    np.testing.assert_array_equal(pcm16_to_float(bytearray(wire)), pcm16_to_float(memoryview(wire)))
    with pytest.raises(ValueError, match="multiple of the sample size"):
        pcm16_to_float(wire[:-1])


def test_pcm16_to_float_errors() -> None:
    with pytest.raises(TypeError, match="int16"):
        pcm16_to_float(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="int16"):
        pcm16_to_float(np.zeros(4, np.uint16))
    with pytest.raises(TypeError, match="float32"):
        pcm16_to_float(np.zeros(4, np.int16), np.zeros(4, np.float64))
    out = np.zeros(4, np.float32)
    assert pcm16_to_float(np.zeros(4, np.int16), out) is out
    with pytest.raises(ValueError, match="elements"):
        pcm16_to_float(np.zeros(4, np.int16), np.zeros(5, np.float32))
    buf = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="share memory"):
        pcm16_to_float(buf.view(np.int16)[:4], buf[:4])


@pytest.fixture
def no_forced_gil_switches() -> Iterator[None]:
    """With a huge switch interval, a thread runs only when another releases the GIL itself."""
    with gil_never_preempted():
        yield


def ran_while_inside(call: Callable[[], object], repeats: int = 20) -> int:
    """How often this thread ran while another thread was inside `call`.

    Without forced switches the other thread holds the GIL from setting `inside` until it
    blocks, unless `call` releases the GIL: so a non-zero count proves that it does.
    """
    inside = False
    done = threading.Event()

    def worker() -> None:
        nonlocal inside
        for _ in range(repeats):
            inside = True
            call()
            inside = False
            time.sleep(0.001)  # let the main thread take the GIL between calls
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    seen = 0
    while not done.is_set():
        if inside:
            seen += 1
        time.sleep(0.0002)
    thread.join(timeout=60)
    return seen


def test_long_conversions_release_the_gil(no_forced_gil_switches: None) -> None:
    big = np.zeros(4_000_000, np.float32)
    assert ran_while_inside(lambda: float_to_pcm16(big)) > 0
    pcm = np.zeros(4_000_000, np.int16)
    assert ran_while_inside(lambda: pcm16_to_float(pcm)) > 0


def test_short_conversions_keep_the_gil(no_forced_gil_switches: None) -> None:
    # The control for the test above: below 16384 samples the GIL is kept (cheaper).
    small = np.zeros(1000, np.float32)
    assert ran_while_inside(lambda: [float_to_pcm16(small) for _ in range(200)]) == 0


def test_conversions_run_in_parallel_threads() -> None:
    # Long calls release the GIL; results must stay exact when threads run them at once.
    x = np.random.default_rng(3).uniform(-1.2, 1.2, 400_000).astype(F32)
    expected = browser_pcm16(x)
    errors: list[str] = []

    def work() -> None:
        for _ in range(5):
            if not np.array_equal(float_to_pcm16(x), expected):
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
