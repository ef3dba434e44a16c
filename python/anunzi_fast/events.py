"""What ``async for event in call`` delivers, and the queue that holds it.

The queue is bounded in events and in bytes and never blocks its producer, the session's
reader: when it is full, the oldest events are dropped and counted in the call's metrics.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias, cast

from .errors import AnunziError, SessionClosedError
from .metrics import CallMetrics, TurnClock
from .protocol import Event

if TYPE_CHECKING:
    from .aec import EchoSetup
    from .client import Call

__all__ = [
    "END_OF_EVENTS",
    "AgentStartedSpeaking",
    "AgentStoppedSpeaking",
    "CallEvent",
    "EventQueue",
    "PlayoutReporter",
    "Reconnected",
    "live_parts",
]

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


@dataclass(frozen=True)
class AgentStartedSpeaking:
    """The speaker started playing the agent's audio: when it is heard, not when it arrived.

    Attributes:
        heard_at: ``time.monotonic()`` of its first sample leaving the speaker (the device's
            reported output latency included).
    """

    heard_at: float


@dataclass(frozen=True)
class AgentStoppedSpeaking:
    """The speaker played the agent's last sample before a pause (100 ms of silence or more).

    Attributes:
        heard_at: ``time.monotonic()`` of the end of that last sample, as heard.
    """

    heard_at: float


CallEvent: TypeAlias = Event | Reconnected | AgentStartedSpeaking | AgentStoppedSpeaking


class PlayoutReporter:
    """Takes a speaker's playout events (:meth:`Speaker.playout_events`) into a call: the
    heard-time metrics and turn latencies, and the event queue.

    Args:
        metrics: The call's metrics.
        turns: The call's turn clock.
        queue: The event queue, or ``None`` when events are not queued.
        opened_at: When the call started opening (``time.monotonic()``), once it has.
    """

    def __init__(self, metrics: CallMetrics, turns: TurnClock, queue: EventQueue | None,
                 opened_at: Callable[[], float | None]) -> None:
        self._metrics = metrics
        self._turns = turns
        self._queue = queue
        self._opened_at = opened_at

    def report(self, event: AgentStartedSpeaking | AgentStoppedSpeaking) -> None:
        """One playout event, from the event loop's thread."""
        if isinstance(event, AgentStartedSpeaking):
            opened = self._opened_at()
            if self._metrics.first_audio_heard_after is None and opened is not None:
                self._metrics.first_audio_heard_after = event.heard_at - opened
            self._turns.on_agent_heard(event.heard_at)
        if self._queue is not None:
            self._queue.put(event, 0)


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


def live_parts(call: Call) -> tuple[TurnClock, EchoSetup, PlayoutReporter]:
    """A new call's turn clock, echo-cancellation setup and playout reporter (the client's
    wiring for live devices, kept here so the session code stays small)."""
    from .aec import EchoSetup

    metrics = call._metrics
    turns = TurnClock(metrics.turn_latencies, metrics.heard_turn_latencies)
    queue = call._events if call.options.queue_events else None
    return turns, EchoSetup(call.options), PlayoutReporter(
        metrics, turns, queue, lambda: call._opened_at)
