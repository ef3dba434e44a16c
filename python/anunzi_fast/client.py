"""The asyncio session: ``async with anunzi_fast.connect(...) as call``.

:class:`Call` moves bytes between a :mod:`websockets` connection and the sans-I/O
:class:`~anunzi_fast.protocol.SessionProtocol`; the audio work is
:mod:`anunzi_fast.audio`'s and the figures :mod:`anunzi_fast.metrics`'. What it does itself:
open (token request and handshake), send, read, reconnect and close, with one explicit
:class:`CallState`.

- ``status_client_ready`` goes out once per connection, just before the first audio, as the
  reference client sends it (or explicitly with :meth:`Call.send_client_ready`).
- A background reader decodes every message, feeds the agent's audio to
  :attr:`Call.jitter_buffer` and queues events for ``async for event in call``; the queue is
  bounded in events and in bytes, and drops (and counts) its oldest events rather than stall.
- Every wait is bounded: the handshake (``open_timeout``), each send (``send_timeout``: a
  service that stops reading is a lost connection), ``status_agent_ready``
  (``agent_ready_timeout``), and :meth:`Call.close` (``close_timeout``, then the connection is
  aborted).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeAlias, TypeVar, cast
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
    ProxyError,
)

from ._native import JitterBuffer
from ._net import (
    certificate_failure,
    describe_network_failure,
    environment_proxy,
    is_loopback_host,
    shared_ssl_context,
)
from ._redact import install_log_redaction
from .audio import Playback, UplinkEncoder
from .auth import DEFAULT_BASE_URL, _validate_api_key, request_session_url
from .errors import (
    CLEAN_CLOSE_CODES,
    AgentNotReadyError,
    AnunziError,
    CertificateError,
    InvalidArgumentError,
    NetworkError,
    RemoteProtocolError,
    SessionClosedError,
    SessionTokenRejectedError,
    error_for_handshake_status,
    is_transient,
)
from .metrics import CallMetrics, TurnClock
from .protocol import AGENT_SAMPLE_RATE, AgentAudio, AgentReady, Event, SessionProtocol
from .retry import RetryPolicy, parse_retry_after

__all__ = ["Call", "CallEvent", "CallMetrics", "CallState", "Reconnected", "connect"]

_logger = logging.getLogger("anunzi_fast.client")

# The reference client's frame: longer inputs are split so no message nears max_size.
MAX_FRAME_SAMPLES: Final = 8192
# close() returns within close_timeout plus this, whatever the peer does.
CLOSE_MARGIN: Final = 0.5
# What the agent-ready timer closes with: the service broke the protocol by never getting ready.
_NOT_READY_CLOSE: Final = (1002, "status_agent_ready not received")
_END_OF_EVENTS: Final = object()
_T = TypeVar("_T")


class CallState(enum.Enum):
    """Where a :class:`Call` is in its life."""

    CONNECTING = "connecting"
    """Created, or opening: token request and handshake."""
    OPEN = "open"
    """Connected: audio and events flow."""
    RECONNECTING = "reconnecting"
    """The connection closed abnormally; a new session is being set up (``reconnect=True``)."""
    CLOSING = "closing"
    """:meth:`Call.close` is running."""
    CLOSED = "closed"
    """Over: sending raises, iteration ends."""


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


class _EventQueue:
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

    def put_back_end(self) -> None:
        """Keep the end marker for other iterators and later calls."""
        self._items.appendleft((_END_OF_EVENTS, 0))
        self._ready.set()


async def _off_loop(function: Callable[..., _T], *args: Any) -> _T:
    """Run blocking work in a worker thread; if cancelled, still wait for it to finish.

    The work mutates state (a resampler) that the next caller will use: returning before it
    is done would let two threads use it at once.
    """
    future = asyncio.get_running_loop().run_in_executor(None, function, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise


class Call:
    """One voice session with an Anunzi agent. ``connect`` is this class.

    Use it as an async context manager (``async with connect(...) as call:``), or
    ``call = await connect(...)`` and :meth:`close` when done.

    Args:
        session_url: A session URL from :func:`~anunzi_fast.request_session_url` (single-use).
        assistant_id: Or the assistant id, and the key, to fetch one.
        api_key: The API key; ``ANUNZI_API_KEY`` by default.
        base_url: Token route base URL (e.g. an :class:`~anunzi_fast.Emulator`'s ``base_url``).
        playback_rate: Rate of :attr:`jitter_buffer` (16000 keeps the agent's PCM16; other
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
        reconnect: After an abnormal close, fetch a new session URL and reconnect.
        max_reconnects: Reconnections allowed in the call.
        retry: Retry policy of the token request and reconnection backoff.
        open_timeout: Seconds allowed for the WebSocket handshake.
        ping_interval: Seconds between keepalive pings; ``None`` disables them.
        ping_timeout: Seconds to wait for a pong before the connection counts as lost.
        close_timeout: Seconds :meth:`close` waits for the closing handshake; then it aborts
            the connection, so it always returns within about this long.
        send_timeout: Seconds one message may wait to be sent. A service that stops reading
            fills the send buffer; past this the connection counts as lost. ``None``: no limit.
        agent_ready_timeout: Seconds to wait for ``status_agent_ready`` after each connection
            opens; past this the call fails with :class:`~anunzi_fast.AgentNotReadyError`.
            ``None`` waits for ever.
        max_size: Largest message accepted from the service, in bytes.
        on_audio_sent: Called with each 48 kHz PCM16 frame once sent (a view: copy to keep),
            e.g. to record the user's side exactly as the service received it.

    Raises:
        InvalidArgumentError: Before any I/O, when neither or both of ``session_url`` and
            ``assistant_id`` are given, the API key is missing, or a number is out of range.
    """

    def __init__(
        self,
        session_url: str | None = None,
        *,
        assistant_id: str | None = None,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        playback_rate: int | None = AGENT_SAMPLE_RATE,
        jitter_prefill_ms: float = 60.0,
        jitter_max_ms: float = 3000.0,
        queue_events: bool = True,
        event_queue_size: int = 1024,
        event_queue_bytes: int = 4 * 2**20,
        reconnect: bool = False,
        max_reconnects: int = 3,
        retry: RetryPolicy | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 5.0,
        send_timeout: float | None = 20.0,
        agent_ready_timeout: float | None = 15.0,
        max_size: int = 2**20,
        on_audio_sent: Callable[[npt.NDArray[np.int16]], None] | None = None,
    ) -> None:
        install_log_redaction()
        if session_url is None and assistant_id is None:
            raise InvalidArgumentError(
                "connect() needs a session_url, or an assistant_id with an api_key (or "
                "$ANUNZI_API_KEY) to request one")
        if session_url is not None and assistant_id is not None:
            raise InvalidArgumentError("pass either a session URL or an assistant id, not both")
        if reconnect and assistant_id is None:
            raise InvalidArgumentError(
                "reconnect=True needs an assistant id and key: session URLs are single-use")
        if assistant_id is not None:
            api_key = _validate_api_key(api_key)
        if playback_rate is not None and playback_rate <= 0:
            raise InvalidArgumentError("playback_rate must be a positive number of Hz")
        _check_positive(open_timeout=open_timeout, close_timeout=close_timeout,
                        event_queue_size=event_queue_size, max_size=max_size)
        _check_positive_or_none(ping_interval=ping_interval, ping_timeout=ping_timeout,
                                send_timeout=send_timeout,
                                agent_ready_timeout=agent_ready_timeout)
        if event_queue_bytes < 0 or max_reconnects < 0:
            raise InvalidArgumentError("event_queue_bytes and max_reconnects must be >= 0")
        self.assistant_id = assistant_id
        self._session_url = session_url
        self._api_key = api_key
        self._base_url = base_url
        self._reconnect = reconnect
        self._max_reconnects = max_reconnects
        self._retry = retry or RetryPolicy()
        self._ws_options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_size": max_size,
            "compression": None,  # PCM does not compress; deflate would only cost CPU
            "user_agent_header": "anunzi-fast",
        }
        self._close_timeout = close_timeout
        self._send_timeout = send_timeout
        self._agent_ready_timeout = agent_ready_timeout
        self.playback_rate = playback_rate
        self._playback = None if playback_rate is None else Playback(
            playback_rate, prefill_ms=jitter_prefill_ms, max_ms=jitter_max_ms)
        self._encoder = UplinkEncoder()
        self._protocol = SessionProtocol()
        self._metrics = CallMetrics()
        self._turns = TurnClock(self._metrics.turn_latencies)
        self._queue_events = queue_events
        self._events = _EventQueue(event_queue_size, event_queue_bytes, self._metrics)
        self._on_audio_sent = on_audio_sent
        self.state = CallState.CONNECTING
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opened_at: float | None = None
        self._send_lock = asyncio.Lock()
        # Set when the current connection is replaced (reconnection) or the call has ended;
        # a sender that saw the connection close waits on it instead of spinning.
        self._connection_replaced = asyncio.Event()
        self._close_request: tuple[int, str] = (1000, "")
        self._close_requested = asyncio.Event()
        self._ready_timer: asyncio.TimerHandle | None = None
        self._closing_ws: ClientConnection | None = None  # the connection close() closes
        self._send_started: float | None = None  # when the pending send began
        self._background: set[asyncio.Task[None]] = set()
        # Why the call failed when the close code does not say it (reader bug, no agent ready).
        self._failure: AnunziError | None = None

    @property
    def jitter_buffer(self) -> JitterBuffer | None:
        """The agent's audio at ``playback_rate``, for a speaker's callback to read."""
        return None if self._playback is None else self._playback.jitter_buffer

    @property
    def metrics(self) -> CallMetrics:
        """The call's figures so far (a live object, its counters refreshed on access)."""
        self._metrics.samples_sent = self._protocol.samples_sent
        self._metrics.samples_received = self._protocol.samples_received
        if self._playback is not None:
            self._metrics.underruns = self._playback.jitter_buffer.stats.underruns
        return self._metrics

    @property
    def close_code(self) -> int | None:
        """The code that ended the session, once it has ended."""
        return self._protocol.close_code if self.state is CallState.CLOSED else None

    @property
    def close_reason(self) -> str:
        """The close reason that came with :attr:`close_code` (may be empty)."""
        return self._protocol.close_reason if self.state is CallState.CLOSED else ""

    def _in_state(self, *states: CallState) -> bool:
        # A method, not an inline comparison: the state changes across awaits, which type
        # checkers' narrowing of an attribute does not know.
        return self.state in states

    def __repr__(self) -> str:
        # Never the session URL: it carries the token.
        target = f"assistant_id={self.assistant_id!r}" if self.assistant_id else "session_url=..."
        return f"<Call {target} {self.state.value} close_code={self.close_code}>"

    # --- opening ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Get a session URL if needed, connect, and start reading.

        Raises:
            InvalidArgumentError: If this call was opened before, even if that failed.
            AnunziError: The token request's or the handshake's error.
        """
        if self._opened_at is not None:
            # Also after a failed open: its session URL, single-use, may have been spent.
            raise InvalidArgumentError("a Call opens once; use a new connect() for a new session")
        self._opened_at = time.monotonic()
        try:
            if self._playback is not None and self._playback.needs_worker:
                await _off_loop(self._playback.prepare)  # filter design: tens of ms
            self._ws = await self._connect_once()
        except BaseException:
            self.state = CallState.CLOSED
            raise
        self.state = CallState.OPEN
        self._start_ready_timer()
        self._watch_sends()
        self._reader = asyncio.create_task(self._read_forever(), name="anunzi-fast reader")

    async def _connect_once(self) -> ClientConnection:
        url = self._session_url
        self._session_url = None  # single-use: a reconnection must fetch a new one
        from_caller = url is not None
        if url is None:
            assert self.assistant_id is not None
            url = await request_session_url(
                self.assistant_id, self._api_key, base_url=self._base_url, retry=self._retry)
        options = dict(self._ws_options)
        scheme = url.partition(":")[0].lower()
        try:
            host, port = urlsplit(url).hostname, urlsplit(url).port
        except ValueError:
            host, port = None, None  # ws_connect reports it below
        if scheme == "wss":
            options["ssl"] = shared_ssl_context()  # not a new CA bundle load per session
        if is_loopback_host(host):
            options["proxy"] = None  # loopback never goes through a proxy from the environment
        where = f"{host}:{port or (443 if scheme == 'wss' else 80)}"
        try:
            return await ws_connect(url, **options)
        except (InvalidURI, InvalidProxy, ValueError):  # ValueError: e.g. a port out of range
            # Not chained: the cause's message may spell out the URL, token included.
            if from_caller:
                raise InvalidArgumentError(
                    "the session URL is not a valid ws:// or wss:// URL") from None
            raise RemoteProtocolError(
                "the token route returned a session URL that cannot be connected to") from None
        except InvalidStatus as exc:
            response = exc.response
            raise error_for_handshake_status(
                response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After"))) from exc
        except ProxyError as exc:
            named = environment_proxy(scheme, host) or "from the environment"
            raise NetworkError(f"could not connect the session to {where} via the proxy "
                               f"{named}: {type(exc).__name__}") from exc
        except InvalidHandshake as exc:
            raise RemoteProtocolError(
                f"the WebSocket handshake with {where} failed: {type(exc).__name__}") from exc
        except (OSError, TimeoutError) as exc:
            what = describe_network_failure(exc)
            if certificate_failure(exc) is not None:
                raise CertificateError(f"could not connect the session to {where}: {what}"
                                       ) from exc
            proxy = environment_proxy(scheme, host)
            via = f" via the proxy {proxy}" if proxy else ""
            raise NetworkError(f"could not connect the session to {where}{via}: {what}"
                               ) from exc

    def __await__(self) -> Generator[Any, None, Call]:
        """``call = await connect(...)``: open, and return the call."""
        return self._open_and_return().__await__()

    async def _open_and_return(self) -> Call:
        await self.open()
        return self

    async def __aenter__(self) -> Call:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _start_ready_timer(self) -> None:
        if self._agent_ready_timeout is not None and self._ws is not None:
            self._ready_timer = asyncio.get_running_loop().call_later(
                self._agent_ready_timeout, self._agent_not_ready, self._ws)

    def _stop_ready_timer(self) -> None:
        if self._ready_timer is not None:
            self._ready_timer.cancel()
            self._ready_timer = None

    def _agent_not_ready(self, ws: ClientConnection) -> None:
        if self._protocol.agent_ready or ws is not self._ws or self.state is not CallState.OPEN:
            return
        timeout = cast(float, self._agent_ready_timeout)
        self._failure = AgentNotReadyError(
            f"the service did not send status_agent_ready within {timeout:g} s "
            "(agent_ready_timeout)", timeout=timeout)
        _logger.warning("%s; closing the session", self._failure)
        task = asyncio.ensure_future(ws.close(*_NOT_READY_CLOSE))
        self._background.add(task)  # a reference, so that the task is not collected early
        task.add_done_callback(self._background.discard)

    # --- sending ------------------------------------------------------------------------------

    async def send_client_ready(self) -> None:
        """Send ``status_client_ready`` now, unless it was already sent on this connection."""
        async with self._send_lock:
            await self._send_client_ready_locked()

    async def _send_client_ready_locked(self) -> None:
        if not self._protocol.ready_sent:
            await self._send(self._protocol.encode_ready())

    async def send_audio(self, samples: npt.ArrayLike, sample_rate: int) -> int:
        """Send user audio; return how many 48 kHz samples went out.

        Long arrays (and the first chunk at a new rate, which designs a resampler's filter)
        are converted in a worker thread, so the event loop keeps running.

        Args:
            samples: float32/float64 in [-1, 1] or int16, shape ``(frames,)`` or
                ``(frames, channels)`` (channels are averaged).
            sample_rate: Rate of ``samples`` in Hz; other rates than 48000 are resampled with
                a streaming resampler whose state carries over between calls.

        Raises:
            InvalidArgumentError: For a wrong dtype, shape or rate.
            SessionClosedError, ConnectionLostError, ServerError: If the session has ended.
        """
        async with self._send_lock:
            array, rate = self._encoder.check(samples, sample_rate)
            if self._encoder.needs_worker(array, rate):
                pcm16 = await _off_loop(self._encoder.encode, array, rate)
            else:
                pcm16 = self._encoder.encode(array, rate)
            return await self._send_pcm16_locked(pcm16)

    async def flush_audio(self) -> int:
        """Send what the input resampler still holds (its delay); call at the end of input."""
        async with self._send_lock:
            if self._encoder.input_rate is None:
                return 0
            return await self._send_pcm16_locked(self._encoder.flush())

    async def _send_pcm16_locked(self, pcm16: npt.NDArray[np.int16]) -> int:
        await self._send_client_ready_locked()
        # Usually one frame: no slicing then.
        frames = [pcm16] if 0 < len(pcm16) <= MAX_FRAME_SAMPLES else [
            pcm16[start : start + MAX_FRAME_SAMPLES]
            for start in range(0, len(pcm16), MAX_FRAME_SAMPLES)]
        for frame in frames:
            await self._send(self._protocol.encode_audio(frame))
            self._turns.on_sent(frame, time.monotonic())
            if self._on_audio_sent is not None:
                self._on_audio_sent(frame)
        return len(pcm16)

    async def _send(self, message: str | memoryview) -> None:
        # Only ever client_ready (text) or audio (binary), with the send lock held.
        while True:
            if self.state is CallState.CLOSED:
                raise self._error_after_close()
            ws = self._ws
            if ws is None:
                raise SessionClosedError("the session is not open: use 'async with connect(...)'")
            replaced = self._connection_replaced
            try:
                await self._send_with_deadline(ws, message)
                return
            except ConnectionClosed:
                if not self._reconnect or self.state in (CallState.CLOSING, CallState.CLOSED):
                    await self._wait_reader()
                    raise self._error_after_close() from None
                # The reader reconnects or gives up; either way this event is set.
                await replaced.wait()
                if self._in_state(CallState.CLOSED):
                    continue  # raises the reason at the top of the loop
                # A new session: client_ready must precede any audio on it. Our caller holds
                # the send lock, so nothing else can be sent in between.
                if isinstance(message, str):
                    message = self._protocol.encode_ready()  # marks the new session
                elif not self._protocol.ready_sent:
                    await self._send_client_ready_locked()

    async def _send_with_deadline(self, ws: ClientConnection, message: str | memoryview) -> None:
        # Two stores instead of a timer per send: _watch_sends checks the start time.
        self._send_started = time.monotonic()
        try:
            await ws.send(message)
        finally:
            self._send_started = None

    def _watch_sends(self) -> None:
        """Abort the connection when a send has waited longer than ``send_timeout``.

        A service that stops reading fills the send buffer: the send, the keepalive pings and
        the closing handshake all wait for ever. Checked a few times per ``send_timeout``.
        """
        if self.state is CallState.CLOSED or self._send_timeout is None:
            return
        started, ws = self._send_started, self._ws
        if (started is not None and ws is not None
                and time.monotonic() - started > self._send_timeout):
            _logger.warning("a send waited over %.1f s: the service stopped reading; aborting "
                            "the connection", self._send_timeout)
            self._send_started = None
            ws.transport.abort()
        asyncio.get_running_loop().call_later(
            min(1.0, self._send_timeout / 4), self._watch_sends)

    # --- receiving ----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[CallEvent]:
        return self._iterate_events()

    async def _iterate_events(self) -> AsyncIterator[CallEvent]:
        if not self._queue_events:
            raise InvalidArgumentError("events are not queued: connect(queue_events=True)")
        while True:
            item = await self._events.get()
            if item is _END_OF_EVENTS:
                self._events.put_back_end()
                error = self._error_after_close()
                if not isinstance(error, SessionClosedError):
                    raise error
                return
            yield cast(CallEvent, item)

    async def _read_forever(self) -> None:
        try:
            while True:
                ws = self._ws
                assert ws is not None
                try:
                    async for message in ws:
                        self._receive(message)
                    received, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
                except ConnectionClosed as exc:
                    received, sent = exc.rcvd, exc.sent
                self._stop_ready_timer()
                self._protocol.connection_closed(
                    received=None if received is None else (received.code, received.reason),
                    sent=None if sent is None else (sent.code, sent.reason))
                code = cast(int, self._protocol.close_code)
                if (code in CLEAN_CLOSE_CODES or self.state is not CallState.OPEN
                        or not self._reconnect or self._failure is not None):
                    return
                if not await self._reconnect_after(code):
                    if self._in_state(CallState.CLOSING):  # the user closed while reconnecting
                        self._protocol.closed_by_this_side(*self._close_request)
                    return
        except Exception as exc:  # never let the reader die silently
            _logger.error("session reader failed: %s", type(exc).__name__, exc_info=True)
            self._failure = RemoteProtocolError(f"the session reader failed: {type(exc).__name__}")
            if self._ws is not None:
                await self._ws.close(1011, "client failure")
        finally:
            self._stop_ready_timer()
            if self._protocol.close_code is None:
                # Cancelled by close() (e.g. while reconnecting): the user's code is the truth.
                if self.state is CallState.CLOSING:
                    self._protocol.closed_by_this_side(*self._close_request)
                else:
                    self._protocol.connection_closed(received=None, sent=None)
            self.state = CallState.CLOSED
            self._connection_replaced.set()
            self._events.put(_END_OF_EVENTS, 0)  # always, even when events are not queued

    def _receive(self, message: str | bytes) -> None:
        """Decode one message; update metrics, playback and the event queue."""
        if isinstance(message, str):
            events = self._protocol.receive_text(message)
        else:
            events = self._protocol.receive_binary(message)
        now = time.monotonic()
        for event in events:
            if isinstance(event, AgentAudio):
                if self._metrics.first_audio_after is None:
                    self._metrics.first_audio_after = now - cast(float, self._opened_at)
                self._turns.on_agent_audio(now)
                if self._playback is not None:
                    self._playback.push(event.samples)
            elif isinstance(event, AgentReady):
                self._stop_ready_timer()
                if self._metrics.agent_ready_after is None:
                    self._metrics.agent_ready_after = now - cast(float, self._opened_at)
            if self._queue_events:
                self._events.put(event, len(message))

    def _error_after_close(self) -> AnunziError:
        """The exception that says why the session can no longer be used."""
        return self._failure or self._protocol.close_error()

    async def _reconnect_after(self, code: int) -> bool:
        self.state = CallState.RECONNECTING
        while self._metrics.reconnects < self._max_reconnects:
            self._metrics.reconnects += 1
            attempt = self._metrics.reconnects
            delay = self._retry.backoff(attempt)
            _logger.info("session closed with %d; reconnecting in %.2fs (attempt %d)",
                         code, delay, attempt)
            # Cut short by close(): nobody wants the new connection any more.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._close_requested.wait(), delay)
            if self.state is CallState.CLOSING:
                return False
            try:
                ws = await self._connect_once()
            except AnunziError as exc:
                # A rejected token belongs to a session URL we will not use again.
                if is_transient(exc) or isinstance(exc, SessionTokenRejectedError):
                    _logger.info("reconnection attempt %d failed: %s", attempt, exc)
                    continue
                self._failure = exc  # e.g. the key was revoked: retrying cannot help
                return False
            if self._in_state(CallState.CLOSING):
                # close() already closed the old connection and will not see this one.
                await ws.close(*self._close_request)
                return False
            # A new session: new framing state, and the agent must hear client_ready again.
            self._protocol.new_connection()
            self._ws = ws
            self.state = CallState.OPEN
            self._start_ready_timer()
            replaced, self._connection_replaced = self._connection_replaced, asyncio.Event()
            replaced.set()
            if self._queue_events:
                self._events.put(Reconnected(attempt, code), 0)
            return True
        return False

    async def _wait_reader(self) -> None:
        if self._reader is not None and self._reader is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._reader)

    # --- closing ------------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush the input resampler, close the session with ``code`` and stop reading.

        Returns within ``close_timeout`` (plus a fraction of a second) whatever the service
        does: past it the connection is aborted.
        """
        if self.state in (CallState.CLOSING, CallState.CLOSED) or self._reader is None:
            if self._reader is None:
                self.state = CallState.CLOSED
            await self._wait_reader()
            return
        self._close_request = (code, reason)
        try:
            async with asyncio.timeout(self._close_timeout + CLOSE_MARGIN):
                await self._close_gracefully(code, reason)
        except TimeoutError:
            _logger.warning("closing took over %.1f s: aborting the connection",
                            self._close_timeout)
            for ws in {self._ws, self._closing_ws}:
                if ws is not None:
                    ws.transport.abort()
            reader = self._reader
            if not reader.done():
                reader.cancel()
        await self._wait_reader()

    async def _close_gracefully(self, code: int, reason: str) -> None:
        if self.state is CallState.OPEN and self._encoder.input_rate is not None:
            with contextlib.suppress(AnunziError):
                await self.flush_audio()
        if self.state is CallState.CLOSED:
            return
        self.state = CallState.CLOSING
        self._close_requested.set()
        self._closing_ws = closed = self._ws
        if closed is not None:
            await closed.close(code, reason)
        reader = self._reader
        if reader is not None and not reader.done():
            # It ends once the connection has closed; a bound all the same, as close() must end.
            done, _ = await asyncio.wait({reader}, timeout=1.0)
            if not done:
                reader.cancel()
        await self._wait_reader()
        if self._ws is not closed and self._ws is not None:
            # A reconnection completed meanwhile: that connection is ours to close too.
            await self._ws.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the session has ended, whoever closed it."""
        await self._wait_reader()


connect = Call
"""``connect(...)`` makes a :class:`Call`: ``async with connect(...) as call:``."""


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise InvalidArgumentError(f"{name} must be > 0, not {value!r}")


def _check_positive_or_none(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not value > 0:
            raise InvalidArgumentError(f"{name} must be > 0 or None, not {value!r}")
