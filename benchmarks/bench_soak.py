"""Soak: many concurrent real-time sessions for minutes, every sample accounted for.

Run a real soak (the figures in the README come from this)::

    PYTHONPATH=python python benchmarks/bench_soak.py --sessions 80 --seconds 300

The emulator runs in its own process (this file with ``--serve``: a real-time echo agent that
answers, over a pipe, what each session's server side counted); the sessions run in this
process, as :func:`anunzi_fast.connect` calls driven by the harness of
``bench_sessions.py``: a 20 ms float32 microphone block of speech-like audio out and a 20 ms
speaker block read from the jitter buffer, every tick. Each session has its own assistant id,
so that the emulator's record of it can be found. At the end the microphones stop, the agent's
last answers are drained (until what the emulator sent stops growing and has all arrived), the
sessions close, and the samples are counted:

- up: samples the client sent == bytes the emulator received / 2, per session;
- down: bytes the emulator sent / 2 == samples the client received, per session.

Both must match exactly (the test asserts that no sample is lost either way). The client's RSS
(``VmRSS``) is sampled every second, the emulator's too; the report gives RSS at the start,
after the warm-up and at the end of streaming, and the growth per minute after the warm-up
(end minus warm-up, and the least-squares slope of the samples). The warm-up (40 % of the
run, at most 120 s) must outlast per-session state that fills before it is bounded: the
client's turn clock keeps the last 4096 frames sent (82 s), about 0.5 MB a session.

Under pytest the soak runs in the test process, its size from ``ANUNZI_SOAK_SESSIONS`` and
``ANUNZI_SOAK_SECONDS``: by default 8 sessions for 40 s with ``--benchmark-only`` (about a
minute with the drain), and 2 sessions for 3 s as the test suite's smoke run
(``--benchmark-disable``). The figures go to ``benchmark.extra_info``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anunzi_fast.auth import RetryPolicy, request_session_url
from anunzi_fast.emulator import DEFAULT_API_KEY, Emulator

# The session harness and its constants are bench_sessions.py's, shared rather than copied
# (this folder is on sys.path both under pytest and when a file here is run as a script).
from bench_sessions import (
    MIC_RATE,
    SPEAKER_BLOCK,
    TICK,
    OurSession,
    speech_like_blocks,
)

SESSIONS_ENV = "ANUNZI_SOAK_SESSIONS"
SECONDS_ENV = "ANUNZI_SOAK_SECONDS"
DEFAULTS = {"benchmark": (8, 40.0), "smoke": (2, 3.0)}
# The speech pattern repeats every 2.5 s: one period of blocks, cycled, keeps memory flat.
PATTERN = speech_like_blocks(2.5)
# Per-session state that fills up before it is bounded must not count as growth: the client's
# turn clock keeps 4096 sent frames of history (82 s of 20 ms frames, about 0.5 MB a session).
WARMUP_LIMIT = 120.0
DRAIN_STABLE = 1.0  # seconds without a new agent byte before the drain counts as done
DRAIN_LIMIT = 45.0  # queued answers are bounded by the emulator (30 s); a drain longer fails


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident set size of a process in MiB, from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- the emulator, in its own process ---------------------------------------------------------


async def serve() -> None:
    """The emulator's process: print the base URL, then answer 'report' lines on stdin."""
    async with Emulator(pace="realtime", record_audio=False, token_ttl=3600,
                        max_session_records=100_000) as emulator:
        print(emulator.base_url, flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while (line := await reader.readline()) and line.strip() != b"quit":
            records = {
                record.assistant_id: {
                    "bytes_received": record.bytes_received,
                    "bytes_sent": record.bytes_sent,
                    "closed": record.closed.is_set(),
                    "close_code": record.close_code,
                    "utterances": record.utterances,
                    "replies_dropped": record.replies_dropped,
                }
                for record in emulator.sessions
            }
            print(json.dumps(records), flush=True)


class EmulatorProcess:
    """The child process running :func:`serve`, optionally pinned to one CPU."""

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu
        self.process: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def __aenter__(self) -> EmulatorProcess:
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        self.process = await asyncio.create_subprocess_exec(
            *pin, sys.executable, __file__, "--serve", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        self.base_url = line.decode().strip()
        if not self.base_url.startswith("http://"):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        return self

    async def report(self) -> dict[str, dict[str, Any]]:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(b"report\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        records: dict[str, dict[str, Any]] = json.loads(line)
        return records

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def __aexit__(self, *exc_info: object) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert process.stdin is not None
            process.stdin.write(b"quit\n")
            await process.stdin.drain()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


# --- the soak ---------------------------------------------------------------------------------


@dataclass
class SoakSession:
    """One session of the soak and what it did."""

    assistant_id: str
    session: OurSession = field(default_factory=OurSession)
    blocks_sent: int = 0
    # Allocated and touched once: a list growing by 50 floats a second per session (or pages
    # of np.zeros mapped as they are first written) would be the harness's own RSS growth.
    lateness: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    error: str | None = None
    streaming_done: asyncio.Event = field(default_factory=asyncio.Event)


async def _stream(s: SoakSession, url: str, blocks: int, start_at: float) -> None:
    """Mic out and speaker in every 20 ms, on schedule, for ``blocks`` ticks."""
    loop = asyncio.get_running_loop()
    out = np.zeros(SPEAKER_BLOCK, np.float32)
    s.lateness = np.full(blocks, np.nan, np.float32)  # written now: zeros would map pages lazily
    try:
        await s.session.open(url)
        await asyncio.sleep(start_at - loop.time())
        pattern = itertools.cycle(PATTERN)
        for index in range(blocks):
            due = start_at + index * TICK
            s.lateness[index] = max(0.0, loop.time() - due)
            await s.session.on_mic_block(next(pattern))
            s.blocks_sent += 1
            s.session.on_speaker_block(out)
            await asyncio.sleep(due + TICK - loop.time())
    except Exception as exc:
        s.error = f"{type(exc).__name__}: {exc}"
    finally:
        s.streaming_done.set()


async def _speaker_until(s: SoakSession, stop: asyncio.Event) -> None:
    """Keep the speaker reading during the drain, as a device would."""
    out = np.zeros(SPEAKER_BLOCK, np.float32)
    while not stop.is_set() and s.error is None:
        s.session.on_speaker_block(out)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK)


async def _sample_rss(samples: list[tuple[float, float | None, float | None]], emulator_pid: int,
                      started: float, stop: asyncio.Event) -> None:
    while True:
        samples.append((time.monotonic() - started, rss_mb(), rss_mb(emulator_pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if stop.is_set():
            return


async def _drain(sessions: list[SoakSession], emulator: EmulatorProcess) -> float:
    """Wait until the emulator has sent all it will and the clients have it; the seconds taken."""
    started = time.monotonic()
    last_change, last_total = started, -1
    while True:
        records = await emulator.report()
        sent = sum(records.get(s.assistant_id, {}).get("bytes_sent", 0) for s in sessions)
        received = sum(s.session.call.metrics.samples_received * 2 for s in sessions
                       if s.error is None)
        now = time.monotonic()
        if sent != last_total:
            last_total, last_change = sent, now
        if sent == received and now - last_change >= DRAIN_STABLE:
            return now - started
        if now - started > DRAIN_LIMIT:
            return now - started  # the accounting below reports what is missing
        await asyncio.sleep(0.25)


def _growth(samples: list[tuple[float, float]], since: float) -> tuple[float, float]:
    """RSS growth after ``since`` in MiB per minute: (end - start) / minutes, and the slope."""
    steady = [(t, rss) for t, rss in samples if t >= since]
    if len(steady) < 2 or steady[-1][0] <= steady[0][0]:
        return 0.0, 0.0
    minutes = (steady[-1][0] - steady[0][0]) / 60
    times = np.array([t for t, _ in steady]) / 60
    values = np.array([rss for _, rss in steady])
    slope = float(np.polyfit(times, values, 1)[0])
    return (steady[-1][1] - steady[0][1]) / minutes, slope


async def _allocation_growth(at_warmup: float, at_end: float, top: int) -> list[str]:
    """The source lines whose traced allocations grew most from the warm-up to the end."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(at_warmup - loop.time())
    first = tracemalloc.take_snapshot()
    await asyncio.sleep(at_end - loop.time())
    growth = tracemalloc.take_snapshot().compare_to(first, "lineno")
    return [str(stat) for stat in growth[:top]]


async def soak(sessions: int, seconds: float, *, emulator_cpu: int | None = None,
               warmup: float | None = None, top_allocations: int = 0) -> dict[str, Any]:
    """Run the soak; return its figures (nothing asserted here)."""
    blocks = max(1, round(seconds / TICK))
    warmup = min(WARMUP_LIMIT, max(1.0, 0.4 * seconds)) if warmup is None else warmup
    rss_samples: list[tuple[float, float | None, float | None]] = []
    async with EmulatorProcess(emulator_cpu) as emulator:
        started = time.monotonic()
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(
            _sample_rss(rss_samples, emulator.pid, started, stop_sampling))
        retry = RetryPolicy(max_attempts=8, initial_backoff=0.05, deadline=120)
        soaks = [SoakSession(f"soak-{index}") for index in range(sessions)]
        urls = await asyncio.gather(*(
            request_session_url(s.assistant_id, DEFAULT_API_KEY, base_url=emulator.base_url,
                                retry=retry) for s in soaks))
        loop = asyncio.get_running_loop()
        start_at = loop.time() + 0.5 + min(10.0, sessions * 0.02)
        streaming_started = time.monotonic() + (start_at - loop.time())
        allocations = asyncio.create_task(_allocation_growth(
            start_at + warmup, start_at + blocks * TICK - 0.5, top_allocations)
        ) if top_allocations else None
        await asyncio.gather(*(
            _stream(s, url, blocks, start_at + TICK * index / sessions)
            for index, (s, url) in enumerate(zip(soaks, urls, strict=True))))
        if allocations is not None:
            print("Python allocations grown between the warm-up and the end of streaming:")
            print("\n".join(await allocations))
        streaming_ended = time.monotonic()
        stop_speakers = asyncio.Event()
        speakers = [asyncio.create_task(_speaker_until(s, stop_speakers)) for s in soaks
                    if s.error is None]
        drain_seconds = await _drain(soaks, emulator)
        stop_speakers.set()
        await asyncio.gather(*speakers)
        stop_sampling.set()
        await sampler
        for s in soaks:
            if s.error is None:
                try:
                    await s.session.close()
                except Exception as exc:
                    s.error = f"close: {type(exc).__name__}: {exc}"
        records = await emulator.report()
        for _ in range(40):  # each server side ends its record once it has seen the close
            if all(records.get(s.assistant_id, {}).get("closed") for s in soaks):
                break
            await asyncio.sleep(0.25)
            records = await emulator.report()
    return _figures(soaks, records, rss_samples, sessions, seconds, warmup,
                    streaming_started - started, streaming_ended - streaming_started,
                    drain_seconds)


def _figures(soaks: list[SoakSession], records: dict[str, dict[str, Any]],
             rss_samples: list[tuple[float, float | None, float | None]], sessions: int,
             seconds: float, warmup: float, streaming_from: float, streamed: float,
             drain_seconds: float) -> dict[str, Any]:
    up_sent = up_received = down_sent = down_received = 0
    up_lost = down_lost = 0
    jitter_dropped = underruns = 0
    unclosed = 0
    for s in soaks:
        metrics = s.session.call.metrics
        record = records.get(s.assistant_id, {"bytes_received": 0, "bytes_sent": 0})
        sent, received = metrics.samples_sent, metrics.samples_received
        server_in, server_out = record["bytes_received"] // 2, record["bytes_sent"] // 2
        up_sent, up_received = up_sent + sent, up_received + server_in
        down_sent, down_received = down_sent + server_out, down_received + received
        up_lost += abs(sent - server_in)
        down_lost += abs(server_out - received)
        unclosed += not record.get("closed", False)
        jitter = s.session.call.jitter_buffer
        if jitter is not None:
            stats = jitter.stats
            assert stats.samples_in == stats.samples_out + stats.dropped + stats.buffered
            jitter_dropped += stats.dropped
            underruns += stats.underruns
    lateness = np.concatenate([s.lateness[: s.blocks_sent] for s in soaks] + [np.zeros(1)])
    client = [(t, c) for t, c, _ in rss_samples if c is not None]
    emulator = [(t, e) for t, _, e in rss_samples if e is not None]
    since = streaming_from + warmup
    # The streaming phase only: connecting and the drain are not steady state.
    client_steady = [(t, c) for t, c in client if t <= streaming_from + streamed + 0.5]
    emulator_steady = [(t, e) for t, e in emulator if t <= streaming_from + streamed + 0.5]

    def at(series: list[tuple[float, float]], when: float) -> float | None:
        after = [value for t, value in series if t >= when]
        return after[0] if after else (series[-1][1] if series else None)

    growth, slope = _growth(client_steady, since)
    emulator_growth, emulator_slope = _growth(emulator_steady, since)
    errors = [s.error for s in soaks if s.error]
    return {
        "sessions": sessions,
        "seconds": seconds,
        "minutes_streamed": streamed / 60,
        "session_minutes": sessions * streamed / 60,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "blocks_missing": sessions * max(1, round(seconds / TICK)) - sum(
            s.blocks_sent for s in soaks),
        "samples_up_sent": up_sent,
        "samples_up_received": up_received,
        "samples_up_lost": up_lost,
        "samples_down_sent": down_sent,
        "samples_down_received": down_received,
        "samples_down_lost": down_lost,
        "sessions_not_closed_on_server": unclosed,
        "agent_utterances": sum(r.get("utterances", 0) for r in records.values()),
        "replies_dropped_by_emulator": sum(r.get("replies_dropped", 0) for r in records.values()),
        "jitter_dropped": jitter_dropped,
        "underruns": underruns,
        "drain_seconds": drain_seconds,
        "lateness_p99_ms": float(np.percentile(lateness, 99) * 1000),
        "lateness_max_ms": float(lateness.max() * 1000),
        "warmup_seconds": warmup,
        "rss_start_mb": client[0][1] if client else None,
        "rss_after_warmup_mb": at(client_steady, since),
        "rss_end_mb": client_steady[-1][1] if client_steady else None,
        "rss_growth_mb_per_min": growth,
        "rss_slope_mb_per_min": slope,
        "emulator_rss_start_mb": emulator[0][1] if emulator else None,
        "emulator_rss_after_warmup_mb": at(emulator_steady, since),
        "emulator_rss_end_mb": emulator_steady[-1][1] if emulator_steady else None,
        "emulator_rss_growth_mb_per_min": emulator_growth,
        "emulator_rss_slope_mb_per_min": emulator_slope,
        "rss_samples": len(client),
        "rss_series_mb": [round(c, 1) for t, c in client_steady[::10]],
    }


def table(figures: dict[str, Any]) -> str:
    """A short plain-text report of the soak."""
    def mb(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    f = figures
    return "\n".join([
        f"soak: {f['sessions']} sessions x {f['minutes_streamed']:.2f} min "
        f"({f['session_minutes']:.1f} session-minutes), errors {f['errors']}",
        f"  up   (48 kHz): sent {f['samples_up_sent']:,}, emulator received "
        f"{f['samples_up_received']:,}, lost {f['samples_up_lost']}",
        f"  down (16 kHz): emulator sent {f['samples_down_sent']:,}, received "
        f"{f['samples_down_received']:,}, lost {f['samples_down_lost']} "
        f"(drained in {f['drain_seconds']:.1f} s)",
        f"  client RSS MiB: start {mb(f['rss_start_mb'])}, after {f['warmup_seconds']:.0f} s "
        f"warm-up {mb(f['rss_after_warmup_mb'])}, end {mb(f['rss_end_mb'])}; growth "
        f"{f['rss_growth_mb_per_min']:+.2f} MiB/min (slope {f['rss_slope_mb_per_min']:+.2f})",
        f"  emulator RSS MiB: start {mb(f['emulator_rss_start_mb'])}, after warm-up "
        f"{mb(f['emulator_rss_after_warmup_mb'])}, end {mb(f['emulator_rss_end_mb'])}; growth "
        f"{f['emulator_rss_growth_mb_per_min']:+.2f} MiB/min",
        f"  tick lateness p99 {f['lateness_p99_ms']:.1f} ms, max {f['lateness_max_ms']:.1f} ms; "
        f"jitter buffer dropped {f['jitter_dropped']}, underruns {f['underruns']}; "
        f"agent utterances {f['agent_utterances']}",
    ])


def check(figures: dict[str, Any]) -> None:
    """What a soak must show: every session to the end, and not one sample lost either way."""
    assert figures["errors"] == 0, figures["first_error"]
    assert figures["blocks_missing"] == 0, figures
    assert figures["samples_up_lost"] == 0, figures
    assert figures["samples_down_lost"] == 0, figures
    assert figures["samples_up_sent"] == figures["sessions"] * round(
        figures["seconds"] / TICK) * round(MIC_RATE * TICK), figures
    assert figures["samples_down_sent"] > 0, figures
    assert figures["sessions_not_closed_on_server"] == 0, figures


# --- pytest -----------------------------------------------------------------------------------


def _size(disabled: bool) -> tuple[int, float]:
    sessions, seconds = DEFAULTS["smoke" if disabled else "benchmark"]
    return (int(os.environ.get(SESSIONS_ENV, sessions)),
            float(os.environ.get(SECONDS_ENV, seconds)))


def test_soak(benchmark) -> None:  # type: ignore[no-untyped-def]
    """Concurrent real-time sessions against the emulator's own process; nothing lost."""
    sessions, seconds = _size(benchmark.disabled)
    results: list[dict[str, Any]] = []

    def run() -> None:
        results.append(asyncio.run(soak(sessions, seconds)))

    benchmark.pedantic(run, rounds=1, iterations=1)
    figures = results[-1]
    benchmark.extra_info.update(figures)
    print("\n" + table(figures))
    check(figures)


def test_rss_growth_is_fitted_after_the_warmup() -> None:
    samples = [(float(t), 100.0 + (0.0 if t < 10 else (t - 10) / 60 * 3)) for t in range(70)]
    growth, slope = _growth(samples, 10.0)
    assert abs(growth - 3.0) < 1e-9 and abs(slope - 3.0) < 1e-9


# --- command line -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--warmup", type=float, help="seconds (default: 40%%, at most 120)")
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--emulator-cpu", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--tracemalloc", type=int, metavar="N", default=0,
                        help="print the N source lines whose Python allocations grew most "
                        "between the warm-up and the end of streaming (slows the client)")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    if args.client_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})
    if args.tracemalloc:
        tracemalloc.start()
    figures = asyncio.run(soak(args.sessions, args.seconds, emulator_cpu=args.emulator_cpu,
                               warmup=args.warmup, top_allocations=args.tracemalloc))
    print(table(figures))
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    check(figures)


if __name__ == "__main__":
    main()
