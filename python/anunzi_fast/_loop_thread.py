"""The load generator's event loop, in a real OS thread beside Locust's gevent.

Each Locust process runs one asyncio loop (uvloop when installed) in a thread of its own, which
runs calls (:meth:`LoopThread.spawn`) and hands each outcome back through a callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._loadgen import CallOutcome

__all__ = ["CallHandle", "LoopThread", "new_event_loop"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (a third of asyncio's cost per frame), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class CallHandle:
    """A call running on a :class:`LoopThread`; :meth:`cancel` hangs it up (thread-safe)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def cancel(self) -> None:
        self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        self._cancelled = True
        if self.task is not None:
            self.task.cancel()


class LoopThread:
    """A process's asyncio loop, in its own OS thread.

    Args:
        start_thread: Starts ``function()`` in a new OS thread (``_thread.start_new_thread``
            by default; under gevent, pass the unpatched one).
    """

    def __init__(self, start_thread: Callable[[Callable[[], None], tuple[()]], object]
                 | None = None) -> None:
        if start_thread is None:
            import _thread

            start_thread = _thread.start_new_thread
        self._start_thread = start_thread
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Create the loop and start its thread (idempotent)."""
        if self.loop is not None:
            return
        self.loop = new_event_loop()
        self._start_thread(self._run, ())

    def _run(self) -> None:
        loop = self.loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            # Stopped: cancelled calls hang up (within their close timeout), then it closes.
            pending = asyncio.all_tasks(loop)
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=10))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def stop(self) -> None:
        """Cancel the calls under way and stop the loop; its thread then closes it
        (thread-safe; the thread ends shortly after)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        def stop() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.stop()

        loop.call_soon_threadsafe(stop)

    def spawn(self, coroutine: Callable[[], Coroutine[Any, Any, CallOutcome]],
              on_done: Callable[[CallOutcome | BaseException], None]) -> CallHandle:
        """Run ``coroutine()`` on the loop; ``on_done`` gets its result or exception, in the
        loop's thread."""
        self.start()
        assert self.loop is not None
        handle = CallHandle(self.loop)

        def start() -> None:
            if handle._cancelled:
                on_done(asyncio.CancelledError())
                return
            handle.task = task = asyncio.ensure_future(coroutine())

            def finished(done: asyncio.Task[CallOutcome]) -> None:
                if done.cancelled():
                    on_done(asyncio.CancelledError())
                elif done.exception() is not None:
                    on_done(done.exception())  # type: ignore[arg-type]
                else:
                    on_done(done.result())

            task.add_done_callback(finished)

        self.loop.call_soon_threadsafe(start)
        return handle

    def call_soon(self, function: Callable[[], Any]) -> None:
        """Run ``function()`` on the loop's thread."""
        self.start()
        assert self.loop is not None
        self.loop.call_soon_threadsafe(function)
