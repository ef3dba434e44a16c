"""How long the event loop stalls while a call sends a long array, ours against inline work.

Run: pytest benchmarks/bench_loop_lag.py --benchmark-only
A ticker task wakes every millisecond and records how late it woke; meanwhile one call sends
60 s of 44.1 kHz audio (resampled to 48 kHz, converted to PCM16, framed) to the emulator,
which runs in its own process so that only the client's work is on this loop.
- ours:   anunzi_fast.connect(...).send_audio, which works long arrays in a thread;
- inline: the same conversion done on the event loop (the peer: how clients usually do it),
          then the same frames sent.
The figure is the worst lag (ms) in extra_info["max_lag_ms"]; the benchmark time is the send.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator

import numpy as np

from anunzi_fast import connect, float_to_pcm16, resample
from anunzi_fast.emulator import DEFAULT_API_KEY

SECONDS = 60
RATE = 44_100
AUDIO = (0.3 * np.sin(np.arange(SECONDS * RATE) * 2 * np.pi * 300 / RATE)).astype(np.float32)


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.001)
        lags.append(loop.time() - before - 0.001)


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    """``anunzi-fast serve`` on a free port in a child process; yields its base URL."""
    server = subprocess.Popen([sys.executable, "-m", "anunzi_fast", "serve", "--port", "0",
                               "--pace", "fast"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "Anunzi emulator listening on http://..."
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        server.terminate()
        server.communicate(timeout=10)  # also closes the pipe


async def _measure(send: Callable[[object], Awaitable[None]], base_url: str) -> float:
    lags: list[float] = []
    async with connect(assistant_id="echo", api_key=DEFAULT_API_KEY, base_url=base_url,
                       queue_events=False) as call:
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(lags, stop))
        await asyncio.sleep(0.01)
        await send(call)
        stop.set()
        await ticker
    return max(lags) * 1000


async def _ours(call: object) -> None:
    await call.send_audio(AUDIO, RATE)  # type: ignore[attr-defined]


async def _inline(call: object) -> None:
    pcm16 = float_to_pcm16(np.ascontiguousarray(resample(AUDIO, RATE, 48_000, threads=1)))
    await call.send_audio(pcm16[: len(pcm16) // 2], 48_000)  # type: ignore[attr-defined]
    await call.send_audio(pcm16[len(pcm16) // 2 :], 48_000)  # type: ignore[attr-defined]


def _run(benchmark, send: Callable[[object], Awaitable[None]]) -> None:  # type: ignore[no-untyped-def]
    worst: list[float] = []

    with emulator_process() as base_url:
        def once() -> None:
            worst.append(asyncio.run(_measure(send, base_url)))

        benchmark.pedantic(once, rounds=3, iterations=1)
    benchmark.extra_info["max_lag_ms"] = round(max(worst), 2)
    print(f"\n{benchmark.name}: worst event-loop lag {max(worst):.1f} ms "
          f"(per round: {', '.join(f'{w:.1f}' for w in worst)})")


def test_loop_lag_ours(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "event-loop lag, 60 s of 44.1 kHz audio sent"
    _run(benchmark, _ours)


def test_loop_lag_inline(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "event-loop lag, 60 s of 44.1 kHz audio sent"
    _run(benchmark, _inline)


if __name__ == "__main__":
    with emulator_process() as url:
        print("ours   max lag ms:", asyncio.run(_measure(_ours, url)))
        print("inline max lag ms:", asyncio.run(_measure(_inline, url)))
