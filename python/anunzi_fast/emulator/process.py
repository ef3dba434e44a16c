"""The emulator in a process of its own, as ``anunzi-fast load --emulator`` and the sessions
benchmark run it: on its own cores, so that it does not share the load generator's.

``python -m anunzi_fast.emulator.process`` prints its base URL, serves until its stdin closes,
then prints one JSON line of what its sessions received and sent (also, so far, for each
``totals`` line read: benchmarks account for each trial). :func:`start_emulator_process`
starts one from asyncio and :meth:`EmulatorProcess.stop` collects those totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable

from ..errors import AnunziError
from .base import EmulatorBase
from .light import LightEmulator, light_emulator_available
from .server import Emulator

__all__ = ["EmulatorProcess", "start_emulator_process"]


class EmulatorProcess:
    """An emulator serving in a child process (see :func:`start_emulator_process`)."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    async def stop(self) -> dict[str, int] | None:
        """Stop it (stdin closed); return its totals."""
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
            return None
        try:
            totals: dict[str, int] = json.loads(line)
        except ValueError:
            return None
        return totals


async def start_emulator_process(cpus: set[int] | None = None) -> EmulatorProcess:
    """Start ``python -m anunzi_fast.emulator.process`` (on ``cpus`` if given); its URL known."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "anunzi_fast.emulator.process",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(process.pid, cpus)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
    except TimeoutError:
        line = b""
    if not line.startswith(b"http://"):
        process.kill()
        await process.wait()
        raise AnunziError("the embedded emulator did not start")
    return EmulatorProcess(process, line.decode().strip())


async def _serve_emulator() -> None:
    """The emulator of ``load --emulator``: prints its URL, serves until stdin closes, then
    prints what its sessions received and sent, as one JSON line (also, so far, for each
    ``totals`` line read: benchmarks account for each trial)."""
    # picows' emulator when the load extra is there: a third of the CPU per session.
    server = LightEmulator if light_emulator_available() else Emulator
    emulator: EmulatorBase = server(pace="realtime", record_audio=False, token_ttl=600,
                                    max_session_records=1_000_000)
    totals = {"sessions": 0, "user_samples_received": 0, "agent_samples_sent": 0}

    def fold(everything: bool = False) -> None:
        # Closed sessions are added up and forgotten: memory stays bounded by the open ones.
        still_open = []
        for record in emulator.sessions:
            if record.closed.is_set() or everything:
                totals["sessions"] += 1
                totals["user_samples_received"] += record.protocol.samples_received
                totals["agent_samples_sent"] += record.protocol.samples_sent
            else:
                still_open.append(record)
        emulator.sessions.clear()
        emulator.sessions.extend(still_open)

    async def fold_forever() -> None:
        while True:
            await asyncio.sleep(1.0)
            fold()

    await emulator.start()
    print(emulator.base_url, flush=True)
    folding = asyncio.create_task(fold_forever())
    while (await asyncio.to_thread(sys.stdin.buffer.readline)).strip() == b"totals":
        fold()
        print(json.dumps({**totals, "open_sessions": len(emulator.sessions)}), flush=True)
    folding.cancel()
    await emulator.stop()
    fold(everything=True)
    totals["token_requests"] = emulator.token_requests
    print(json.dumps(totals), flush=True)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (the load extra): the emulator's I/O at less CPU."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(
            loop_factory=_loop_factory()) as runner:
        runner.run(_serve_emulator())
