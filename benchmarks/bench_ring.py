"""Hand-off of 10 ms int16 chunks (480 samples at 48 kHz) between two Python threads.

SpscRing against queue.Queue and collections.deque, the usual ways to pass audio between
a network thread and an audio thread. Each round moves CHUNKS chunks from a producer thread
to the consumer (the benchmark's own thread); extra_info has chunks per second.

Between two Python threads the cost that remains after the ring's own (about 0.1 us per
call) is the GIL changing hands, 10-50 us each time. So the ring's side waits with
wait_readable/wait_writable (GIL released, no lock) until half the ring is ready, and then
works through that batch without being interrupted. The peers hold at most as many chunks as
the ring: the queue blocks in get/put as usual, and the deque polls with time.sleep(0).

test_uncontended_calls times the ring's own cost alone: one thread writing and reading back
10 ms chunks, no hand-off, so a change to the per-call path (such as its misuse guard) shows
up here undiluted by the GIL.
"""

import collections
import queue
import threading
import time

import numpy as np
import pytest

from anunzi_fast import SpscRing

CHUNK = 480
CHUNKS = 20_000
RING_CHUNKS = 100  # ring capacity, in chunks: one second of audio


def _chunks() -> list[np.ndarray]:
    base = np.arange(CHUNK, dtype=np.int16)
    return [base + i for i in range(64)]


def _report(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info["chunks"] = CHUNKS
    if benchmark.stats:
        benchmark.extra_info["chunks_per_s"] = CHUNKS / benchmark.stats.stats.min


def handoff_ring() -> int:
    ring = SpscRing(CHUNK * RING_CHUNKS, "int16")
    batch = CHUNK * RING_CHUNKS // 4
    sources = _chunks()

    def produce() -> None:
        for i in range(CHUNKS):
            chunk = sources[i % 64]
            while not ring.write(chunk):  # whole chunks: the capacity is a multiple
                ring.wait_writable(batch, 5.0)

    producer = threading.Thread(target=produce)
    producer.start()
    out = np.empty(CHUNK, np.int16)
    received = 0
    while received < CHUNKS:
        if ring.read_into(out):
            received += 1
        else:
            ring.wait_readable(min(batch, (CHUNKS - received) * CHUNK), 5.0)
    producer.join()
    return received


def handoff_queue() -> int:
    q: queue.Queue[np.ndarray] = queue.Queue(maxsize=RING_CHUNKS)
    sources = _chunks()

    def produce() -> None:
        for i in range(CHUNKS):
            q.put(sources[i % 64])

    producer = threading.Thread(target=produce)
    producer.start()
    received = 0
    while received < CHUNKS:
        q.get()
        received += 1
    producer.join()
    return received


def handoff_deque() -> int:
    d: collections.deque[np.ndarray] = collections.deque()
    sources = _chunks()

    def produce() -> None:
        for i in range(CHUNKS):
            while len(d) >= RING_CHUNKS:
                time.sleep(0)
            d.append(sources[i % 64])

    producer = threading.Thread(target=produce)
    producer.start()
    received = 0
    while received < CHUNKS:
        if d:
            d.popleft()
            received += 1
        else:
            time.sleep(0)
    producer.join()
    return received


@pytest.mark.parametrize(
    "handoff", [handoff_ring, handoff_queue, handoff_deque], ids=["spsc_ring", "queue", "deque"]
)
def test_handoff(benchmark, handoff) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "10 ms chunk hand-off between threads"
    result = benchmark.pedantic(handoff, rounds=5, iterations=1)
    assert result == CHUNKS
    _report(benchmark)


CALLS = 20_000


def write_read_one_thread() -> int:
    ring = SpscRing(CHUNK * 4, "int16")
    chunk = _chunks()[0]
    out = np.empty(CHUNK, np.int16)
    moved = 0
    for _ in range(CALLS):
        moved += ring.write(chunk)
        moved += ring.read_into(out)
    return moved


def test_uncontended_calls(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "10 ms chunk write + read_into on one thread"
    result = benchmark.pedantic(write_read_one_thread, rounds=20, iterations=1)
    assert result == 2 * CALLS * CHUNK
    benchmark.extra_info["calls"] = 2 * CALLS
    if benchmark.stats:
        benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.min / (2 * CALLS) * 1e9
