"""What ``async for event in call`` delivers, and the queue that holds it.

The queue is bounded in events and in bytes and never blocks its producer, the session's
reader: when it is full, the oldest events are dropped and counted in the call's metrics.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias, cast

from .errors import AnunziError, SessionClosedError
from .metrics import CallMetrics
from .protocol import Event

__all__ = ["END_OF_EVENTS", "CallEvent", "EventQueue", "Reconnected"]

END_OF_EVENTS: Final = object()
"""Queued last, when the session has ended."""


@dataclass(frozen=True)
class Reconnected:
    """The session was re-established after an abnormal close.

    Attributes:
        attempt: Reconnections so far in this call, 1 for the first.
        close_code: The code that ended the previous connection.
    """

    attempt: int
    close_code: int


CallEvent: TypeAlias = Event | Reconnected


class EventQueue:
    """Events for ``async for``, bounded in count and in bytes; never blocks the producer.

    When full, the oldest events are dropped (and counted in the metrics): the reader must
    never wait on an application that does not iterate, or audio would stop reaching the
    jitter buffer.
    """

    def __init__(self, max_events: int, max_bytes: int, metrics: CallMetrics) -> None:
        self._items: collections.deque[tuple[object, int]] = collections.deque()
        self._bytes = 0
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._metrics = metrics
        self._ready = asyncio.Event()

    def put(self, item: object, nbytes: int) -> None:
        self._items.append((item, nbytes))
        self._bytes += nbytes
        while len(self._items) > 1 and (
                len(self._items) > self._max_events or self._bytes > self._max_bytes):
            _, dropped = self._items.popleft()
            self._bytes -= dropped
            self._metrics.events_dropped += 1
            self._metrics.event_bytes_dropped += dropped
        self._ready.set()

    async def get(self) -> object:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item, nbytes = self._items.popleft()
        self._bytes -= nbytes
        return item

    async def iterate(self, error_at_end: Callable[[], AnunziError]) -> AsyncIterator[CallEvent]:
        """The events until :data:`END_OF_EVENTS`; then ``error_at_end()`` is raised unless it
        is a :class:`SessionClosedError` (a clean end)."""
        while True:
            item = await self.get()
            if item is END_OF_EVENTS:
                # Kept for other iterators and later calls.
                self._items.appendleft((END_OF_EVENTS, 0))
                self._ready.set()
                error = error_at_end()
                if not isinstance(error, SessionClosedError):
                    raise error
                return
            yield cast(CallEvent, item)
