"""Driving one side of a single-producer/single-consumer object from several threads at once."""

import threading
import time
from collections.abc import Callable


def run_side_by_side(workers: list[Callable[[], int]], seconds: float) -> tuple[int, int]:
    """Runs every worker in a loop on its own thread for about `seconds`.

    Returns the sum of the counts they returned and how many calls raised the misuse
    RuntimeError; any other exception fails the test.
    """
    barrier = threading.Barrier(len(workers))
    totals = [0] * len(workers)
    refused = [0] * len(workers)
    failures: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def loop(i: int) -> None:
        try:
            barrier.wait()
            while time.monotonic() < deadline:
                try:
                    totals[i] += workers[i]()
                except RuntimeError as exc:
                    assert "already running in another thread" in str(exc), exc
                    refused[i] += 1
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    return sum(totals), sum(refused)
