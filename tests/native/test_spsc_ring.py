"""SpscRing from Python: semantics, errors, and a two-thread stress checking every sample."""

import threading
import time

import numpy as np
import pytest

from anunzi_fast import SpscRing

from .misuse import run_side_by_side


@pytest.mark.parametrize("capacity", [0, -1, -(2**40), 2**31 + 1, 2**62, 2**64, -(2**70)])
def test_bad_capacity_is_a_value_error(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        SpscRing(capacity)


def test_integer_arguments_accept_numpy_integers_and_reject_others() -> None:
    ring = SpscRing(np.int64(8))
    assert ring.capacity == 8
    with pytest.raises(TypeError, match="integer"):
        SpscRing(8.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_samples"):
        ring.read(2**70)
    with pytest.raises(ValueError, match="num_samples"):
        ring.wait_readable(2**70, 0.0)


@pytest.mark.parametrize("dtype", ["float64", np.int32, "complex64"])
def test_unsupported_dtype_is_a_type_error(dtype: object) -> None:
    with pytest.raises(TypeError, match="int16 or float32"):
        SpscRing(8, dtype)  # type: ignore[arg-type]


def test_write_read_wraps_and_reports_counts() -> None:
    ring = SpscRing(5, "int16")
    assert (ring.capacity, ring.readable, ring.writable) == (5, 0, 5)
    assert ring.dtype == np.int16
    assert ring.write(np.arange(1, 8, dtype=np.int16)) == 5  # only what fits
    assert ring.write(np.arange(3, dtype=np.int16)) == 0
    out = np.zeros(3, np.int16)
    assert ring.read_into(out) == 3
    assert out.tolist() == [1, 2, 3]
    assert ring.write(np.array([6, 7, 8], np.int16)) == 3  # wraps around the end
    np.testing.assert_array_equal(ring.read(100), [4, 5, 6, 7, 8])
    assert ring.read(10).shape == (0,)
    out[:] = -1
    assert ring.read_into(out) == 0 and out.tolist() == [-1, -1, -1]  # untouched
    assert ring.write(np.zeros(0, np.int16)) == 0


def test_float32_ring_and_buffer_kinds() -> None:
    ring = SpscRing(10, np.float32)
    x = np.array([0.5, -1.0, 3.0], np.float32)
    assert ring.write(memoryview(x)) == 3
    got = ring.read(3)
    np.testing.assert_array_equal(got, x)


def test_dtype_layout_and_writability_errors() -> None:
    ring = SpscRing(10, "int16")
    with pytest.raises(TypeError, match="int16"):
        ring.write(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="int16"):
        ring.write(b"\x00\x00")  # raw bytes are not silently reinterpreted
    with pytest.raises(TypeError, match="buffer"):
        ring.write([1, 2, 3])
    with pytest.raises(ValueError, match="contiguous"):
        ring.write(np.zeros(8, np.int16)[::2])
    readonly = np.zeros(4, np.int16)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ring.read_into(readonly)
    with pytest.raises(TypeError, match="int16"):
        ring.read_into(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="max_samples"):
        ring.read(-1)


def test_waits_time_out_or_return_at_once() -> None:
    ring = SpscRing(8, "float32")
    start = time.monotonic()
    assert ring.wait_readable(1, 0.02) is False
    assert time.monotonic() - start >= 0.015
    assert ring.wait_writable(8, 0.0) is True
    ring.write(np.ones(3, np.float32))
    assert ring.wait_readable(3, 10.0) is True
    assert ring.wait_writable(6, 0.01) is False
    with pytest.raises(ValueError, match="num_samples"):
        ring.wait_readable(9, 1.0)  # more than the ring can ever hold
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout"):
            ring.wait_writable(1, bad)


def test_wait_timeout_is_kept_to() -> None:
    # Best of five, so a busy machine cannot fail it; a wait must not overrun its timeout by
    # more than a sleep step (1 ms) plus scheduling.
    ring = SpscRing(8, "int16")
    for timeout in (0.001, 0.005):
        elapsed = []
        for _ in range(5):
            start = time.perf_counter()
            assert ring.wait_readable(1, timeout) is False
            elapsed.append(time.perf_counter() - start)
        assert timeout <= min(elapsed) < timeout + 0.02, elapsed


def test_wait_wakes_when_the_other_thread_writes() -> None:
    ring = SpscRing(480, "int16")

    def write_later() -> None:
        time.sleep(0.05)
        ring.write(np.arange(240, dtype=np.int16))

    writer = threading.Thread(target=write_later)
    writer.start()
    assert ring.wait_readable(240, 10.0) is True  # the GIL is released while waiting
    writer.join(timeout=10)
    np.testing.assert_array_equal(ring.read(240), np.arange(240))


@pytest.mark.parametrize(
    ("capacity", "total", "max_chunk"),
    [(1, 20_000, 3), (3, 50_000, 8), (509, 1_000_000, 1500), (4096, 2_000_000, 9000)],
)
def test_two_thread_stress_every_sample_arrives(capacity: int, total: int, max_chunk: int) -> None:
    ring = SpscRing(capacity, "int16")
    expected = (np.arange(total) % 65536 - 32768).astype(np.int16)
    received = np.empty(total, np.int16)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            rng = np.random.default_rng(1)
            sent = 0
            while sent < total:
                n = min(int(rng.integers(1, max_chunk + 1)), total - sent)
                chunk = expected[sent : sent + n]
                done = 0
                while done < n:
                    taken = ring.write(chunk[done:])
                    if not taken:
                        time.sleep(0)  # let the consumer take the GIL instead of spinning
                    done += taken
                sent += n
        except BaseException as exc:  # surfaced by the assertion below
            failure.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    rng = np.random.default_rng(2)
    got = 0
    while got < total and (producer.is_alive() or ring.readable):
        n = min(int(rng.integers(1, max_chunk + 1)), total - got)
        read = ring.read_into(received[got : got + n])
        if not read:
            time.sleep(0)
        got += read
    producer.join(timeout=60)
    assert not failure
    assert got == total
    np.testing.assert_array_equal(received, expected)


# ---------------------------------------------------------------- misuse: two threads on one side

ONE_PRODUCER = "a ring has one producer"
ONE_CONSUMER = "a ring has one consumer"


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_concurrent_producers_or_consumers_are_refused_not_corrupting(dtype: str) -> None:
    # Copies this long release the GIL, so without a guard two writers (or two readers) run
    # the ring's index updates at once: a reader then saw more samples than the ring holds and
    # copied past the end of its storage. Reads ask for more than the capacity on purpose.
    capacity = 1 << 18
    ring = SpscRing(capacity, dtype)
    chunk = np.ones(capacity // 2, dtype)
    outs = [np.empty(2 * capacity, dtype) for _ in range(3)]
    writers = [lambda: ring.write(chunk) for _ in range(3)]
    readers = [lambda out=out: -ring.read_into(out) for out in outs]
    net, refused = run_side_by_side(writers + readers, 1.0)
    assert refused > 0  # the threads did meet on one side
    assert ring.readable == net  # every sample written was either read or is still there
    assert ring.readable + ring.writable == capacity
    assert ring.read_into(outs[0]) == net
    assert (ring.readable, ring.writable) == (0, capacity)


def test_a_second_consumer_is_refused_while_one_waits() -> None:
    ring = SpscRing(1 << 16, "int16")
    waiter = threading.Thread(target=ring.wait_readable, args=(1 << 16, 30.0))
    waiter.start()
    out = np.empty(16, np.int16)
    deadline = time.monotonic() + 10
    with pytest.raises(RuntimeError, match=ONE_CONSUMER):
        while time.monotonic() < deadline:  # until the waiter is inside its wait
            ring.read_into(out)
            time.sleep(0.001)
    assert ring.write(np.zeros(1 << 16, np.int16)) == 1 << 16  # releases the waiter
    waiter.join(timeout=10)
    assert ring.read_into(out) == 16  # the side is free again


def test_a_second_producer_is_refused_while_one_waits() -> None:
    ring = SpscRing(16, "float32")
    assert ring.write(np.ones(16, np.float32)) == 16
    waiter = threading.Thread(target=ring.wait_writable, args=(16, 30.0))
    waiter.start()
    deadline = time.monotonic() + 10
    with pytest.raises(RuntimeError, match=ONE_PRODUCER):
        while time.monotonic() < deadline:
            ring.write(np.ones(1, np.float32))
            time.sleep(0.001)
    assert len(ring.read(16)) == 16  # releases the waiter
    waiter.join(timeout=10)
    assert ring.write(np.ones(4, np.float32)) == 4
