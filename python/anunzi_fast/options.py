"""How a call behaves: every option of :func:`~anunzi_fast.connect`, documented once.

``connect(..., reconnect=True)`` sets one option by name; ``connect(..., options=opts)`` takes a
whole :class:`CallOptions` (e.g. one shared by many calls), and names given too override it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidArgumentError
from .protocol import AGENT_SAMPLE_RATE
from .retry import RetryPolicy

__all__ = ["CallOptions"]


@dataclass(frozen=True, kw_only=True)
class CallOptions:
    """Options of a call, checked when made (an :class:`InvalidArgumentError` if out of range).

    Attributes:
        playback_rate: Rate of :attr:`Call.jitter_buffer` (16000 keeps the agent's PCM16; other
            rates are resampled to float32); ``None`` for no jitter buffer.
        jitter_prefill_ms: Audio the jitter buffer holds before playing.
        jitter_max_ms: Audio it holds at most (the oldest is dropped beyond).
        queue_events: Queue events for ``async for``; turn off when only the jitter buffer is
            used, which saves queueing every message.
        event_queue_size: Events queued at most.
        event_queue_bytes: Bytes (audio and text) queued at most; 4 MiB holds over two minutes
            of agent audio. Beyond either bound the oldest events are dropped and counted in
            :attr:`CallMetrics.events_dropped` and :attr:`CallMetrics.event_bytes_dropped`: an
            application that does not iterate never stalls the session nor grows its memory
            (audio still reaches the jitter buffer and the metrics).
        reconnect: After an abnormal close, fetch a new session URL and reconnect (needs an
            assistant id: session URLs are single-use).
        max_reconnects: Reconnections allowed in the call.
        retry: Retry policy of the token request and reconnection backoff.
        open_timeout: Seconds allowed for the WebSocket handshake.
        ping_interval: Seconds between keepalive pings; ``None`` disables them.
        ping_timeout: Seconds to wait for a pong before the connection counts as lost.
        close_timeout: Seconds :meth:`Call.close` waits for the closing handshake; then it
            aborts the connection, so it always returns within about this long.
        send_timeout: Seconds one message may wait to be sent. A service that stops reading
            fills the send buffer; past this the connection counts as lost. ``None``: no limit.
        agent_ready_timeout: Seconds to wait for ``status_agent_ready`` after each connection
            opens; past this the call fails with :class:`~anunzi_fast.AgentNotReadyError`.
            ``None`` waits for ever.
        max_size: Largest message accepted from the service, in bytes.
        echo_cancellation: Cancel the agent's echo from a live microphone when a speaker plays
            the call (``call.echo.path()``, used by the CLI's ``--input mic --output
            speaker``): ``None`` (the default) does when the optional ``aec`` extra
            (pywebrtc-audio) is installed and ``playback_rate`` is 16000, 32000 or 48000;
            ``True`` requires it (``connect`` raises with the install hint otherwise);
            ``False`` never does.
        echo_delay_ms: A hint of the echo's delay beyond what the devices report (the
            canceller estimates it anyway); ``None`` starts from 0.
    """

    playback_rate: int | None = AGENT_SAMPLE_RATE
    jitter_prefill_ms: float = 60.0
    jitter_max_ms: float = 3000.0
    queue_events: bool = True
    event_queue_size: int = 1024
    event_queue_bytes: int = 4 * 2**20
    reconnect: bool = False
    max_reconnects: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    open_timeout: float = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 5.0
    send_timeout: float | None = 20.0
    agent_ready_timeout: float | None = 15.0
    max_size: int = 2**20
    echo_cancellation: bool | None = None
    echo_delay_ms: float | None = None

    def __post_init__(self) -> None:
        if self.retry is None:  # accepted for "the default", as before
            object.__setattr__(self, "retry", RetryPolicy())
        _positive(self, "open_timeout", "close_timeout", "event_queue_size", "max_size")
        _positive(self, "playback_rate", "ping_interval", "ping_timeout", "send_timeout",
                  "agent_ready_timeout", none_allowed=True)
        for name in ("event_queue_bytes", "max_reconnects", "jitter_prefill_ms",
                     "jitter_max_ms"):
            if not getattr(self, name) >= 0:
                raise InvalidArgumentError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        if self.echo_cancellation not in (None, True, False):
            raise InvalidArgumentError(
                f"echo_cancellation must be True, False or None, not {self.echo_cancellation!r}")
        delay = self.echo_delay_ms
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float))
                                  or not 0 <= delay <= 2000):
            raise InvalidArgumentError(f"echo_delay_ms must be from 0 to 2000, not {delay!r}")

    def with_changes(self, **changes: Any) -> CallOptions:
        """A copy with some options changed (checked like a new one)."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise InvalidArgumentError(f"unknown option {unknown[0]!r}; the options are: "
                                       + ", ".join(sorted(fields)))
        return dataclasses.replace(self, **changes) if changes else self

    def websocket_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`websockets.asyncio.client.connect`."""
        return {
            "open_timeout": self.open_timeout,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "close_timeout": self.close_timeout,
            "max_size": self.max_size,
            "compression": None,  # PCM does not compress; deflate would only cost CPU
            "user_agent_header": "anunzi-fast",
        }


def _positive(options: CallOptions, *names: str, none_allowed: bool = False) -> None:
    for name in names:
        value = getattr(options, name)
        if value is None and none_allowed:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            suffix = " or None" if none_allowed else ""
            raise InvalidArgumentError(f"{name} must be > 0{suffix}, not {value!r}")
