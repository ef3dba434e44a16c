"""JitterBuffer from Python: prefill, underrun, overflow, clear, accounting, errors, threads."""

import threading
import time

import numpy as np
import pytest

from anunzi_fast import JitterBuffer, JitterStats

from .misuse import run_side_by_side


def assert_accounted(jb: JitterBuffer) -> None:
    s = jb.stats
    assert s.samples_in == s.samples_out + s.dropped + s.buffered, s


def test_defaults_and_repr() -> None:
    jb = JitterBuffer(16000)
    assert (jb.sample_rate, jb.prefill_ms, jb.max_ms) == (16000, 60.0, 3000.0)
    assert (jb.prefill_samples, jb.max_samples) == (960, 48000)
    assert jb.dtype == np.int16 and not jb.playing
    assert "JitterBuffer(sample_rate=16000" in repr(jb)
    assert isinstance(jb.stats, JitterStats)
    assert "samples_in=0" in repr(jb.stats)


def test_prefill_then_play_then_underrun_then_prefill_again() -> None:
    jb = JitterBuffer(1000, prefill_ms=10, max_ms=100)  # prefill 10 samples
    out = np.full(4, 99, np.int16)
    assert jb.read_into(out) == 0 and out.tolist() == [0, 0, 0, 0]
    jb.push(np.arange(1, 9, dtype=np.int16))  # 8 < 10
    assert jb.read_into(out) == 0 and not jb.playing
    jb.push(np.arange(9, 13, dtype=np.int16))  # 12 >= 10
    assert jb.read_into(out) == 4 and out.tolist() == [1, 2, 3, 4] and jb.playing
    got = jb.read(10)
    assert got.tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 0, 0]
    s = jb.stats
    assert (s.underruns, s.underrun_samples) == (1, 2) and not jb.playing
    assert s.samples_out == 12 and s.silence_samples == 4 + 4 + 2
    assert s.depth_ms == 0.0
    assert_accounted(jb)


def test_partial_prefill_plays_after_waiting_a_prefill() -> None:
    # The last few words of a turn must not be stuck below the prefill forever.
    jb = JitterBuffer(1000, prefill_ms=20, max_ms=100)
    jb.push(np.array([5, 6, 7], np.int16))
    assert jb.read(10).tolist() == [0] * 10
    assert jb.read(10).tolist() == [5, 6, 7] + [0] * 7
    assert jb.stats.buffered == 0
    assert_accounted(jb)


def test_overflow_drops_the_oldest_and_counts() -> None:
    jb = JitterBuffer(1000, prefill_ms=0, max_ms=5)
    assert jb.push(np.array([1, 2, 3, 4], np.int16)) == 0
    assert jb.push(np.array([5, 6, 7], np.int16)) == 2
    assert jb.stats.depth_ms == 5.0
    assert jb.read(5).tolist() == [3, 4, 5, 6, 7]
    assert jb.push(np.arange(10, 18, dtype=np.int16)) == 3  # a chunk longer than max_ms
    assert jb.read(5).tolist() == [13, 14, 15, 16, 17]
    assert jb.stats.dropped == 5
    assert_accounted(jb)


def test_clear_for_barge_in() -> None:
    jb = JitterBuffer(1000, prefill_ms=2, max_ms=100, dtype="float32")
    jb.push(np.linspace(0.1, 1.0, 10, dtype=np.float32))
    assert jb.read(3).shape == (3,) and jb.playing
    assert jb.clear() == 7
    assert not jb.playing and jb.stats.buffered == 0
    assert jb.read(4).tolist() == [0.0] * 4
    s = jb.stats
    assert (s.clears, s.dropped, s.underruns) == (1, 7, 0)
    assert_accounted(jb)


def test_prefill_zero_plays_at_once() -> None:
    jb = JitterBuffer(8000, prefill_ms=0, max_ms=10)
    jb.push(np.array([1], np.int16))
    assert jb.read(2).tolist() == [1, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": -16000}, "sample_rate"),
        ({"sample_rate": 16000, "prefill_ms": -1}, "prefill_ms"),
        ({"sample_rate": 16000, "prefill_ms": float("nan")}, "prefill_ms"),
        ({"sample_rate": 16000, "max_ms": float("inf")}, "max_ms"),
        ({"sample_rate": 16000, "max_ms": 0}, "max_ms"),
        ({"sample_rate": 16000, "prefill_ms": 200, "max_ms": 100}, "prefill_ms"),
        ({"sample_rate": 16000, "max_ms": 1e12}, "too large"),
    ],
)
def test_bad_settings_are_value_errors(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JitterBuffer(**kwargs)  # type: ignore[arg-type]


def test_dtype_errors() -> None:
    with pytest.raises(TypeError, match="int16 or float32"):
        JitterBuffer(16000, dtype="float64")
    jb = JitterBuffer(16000)
    with pytest.raises(TypeError, match="int16"):
        jb.push(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="int16"):
        jb.read_into(np.zeros(4, np.float32))
    readonly = np.zeros(4, np.int16)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        jb.read_into(readonly)
    with pytest.raises(ValueError, match="contiguous"):
        jb.push(np.zeros(8, np.int16)[::2])
    assert jb.read(0).shape == (0,)


def test_stats_from_a_third_thread_stay_in_range() -> None:
    # buffered is computed from two indices that both move; it must never come out negative
    # (as a huge unsigned number) or above max_samples, whoever reads it.
    jb = JitterBuffer(16000, prefill_ms=0, max_ms=20)
    stop = threading.Event()
    chunk = np.ones(100, np.int16)

    def produce() -> None:
        while not stop.is_set():
            jb.push(chunk)

    def consume() -> None:
        out = np.empty(64, np.int16)
        while not stop.is_set():
            jb.read_into(out)

    workers = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for w in workers:
        w.start()
    worst = 0
    for _ in range(20_000):
        worst = max(worst, jb.stats.buffered)
    stop.set()
    for w in workers:
        w.join(timeout=10)
    assert worst <= jb.max_samples
    assert_accounted(jb)


def test_producer_and_consumer_threads_lose_nothing_silently() -> None:
    # A network-like producer (bursty chunks, a barge-in now and then) against a consumer
    # reading 10 ms blocks; every real sample comes out in order and all are accounted for.
    rate = 16000
    jb = JitterBuffer(rate, prefill_ms=40, max_ms=200, dtype="float32")
    total = 300_000
    sent = np.arange(1, total + 1, dtype=np.float32)
    done = threading.Event()

    def produce() -> None:
        rng = np.random.default_rng(5)
        i = 0
        while i < total:
            n = int(rng.integers(1, 2000))
            jb.push(sent[i : i + n])
            i += n
            if rng.random() < 0.02:
                jb.clear()
            if rng.random() < 0.3:
                time.sleep(0.0002)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    block = np.empty(160, np.float32)
    played: list[np.ndarray] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished = done.is_set()
        got = jb.read_into(block)
        assert not block[got:].any()  # silence is zeros
        played.append(block[:got].copy())
        if finished and jb.stats.buffered == 0:
            break
    producer.join(timeout=10)
    out = np.concatenate(played)
    assert np.all(np.diff(out) > 0)  # in order, nothing repeated or invented
    s = jb.stats
    assert s.samples_in == total and s.samples_out == len(out)
    assert_accounted(jb)


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_concurrent_producers_or_consumers_are_refused_not_corrupting(dtype: str) -> None:
    # push always runs with the GIL released and reads this long do too: without a guard two
    # pushers ran the ring's write index updates at once and could copy past its storage.
    jb = JitterBuffer(48000, prefill_ms=0, max_ms=4000, dtype=dtype)
    chunk = np.ones(96_000, dtype)
    outs = [np.empty(200_000, dtype) for _ in range(2)]
    pushers = [lambda: jb.push(chunk) for _ in range(2)]
    readers = [lambda out=out: jb.read_into(out) for out in outs]
    _, refused = run_side_by_side([*pushers, jb.clear, *readers], 1.0)
    assert refused > 0  # the threads did meet on one side
    assert jb.stats.buffered <= jb.max_samples
    assert_accounted(jb)
