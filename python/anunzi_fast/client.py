"""The asyncio session: ``async with anunzi_fast.connect(...) as call``.

:class:`Call` moves bytes between a :mod:`websockets` connection and the sans-I/O
:class:`~anunzi_fast.protocol.SessionProtocol`; the audio work is
:mod:`anunzi_fast.audio`'s and the figures :mod:`anunzi_fast.metrics`'. What it does itself:
open (token request and handshake), send, read, reconnect and close, with one explicit
:class:`CallState`.

``status_client_ready`` goes out once per connection, just before the first audio, as the
reference client sends it. A background reader decodes every message, feeds the agent's audio
to :attr:`Call.jitter_buffer` and queues events for ``async for event in call``. Every wait is
bounded (see :class:`~anunzi_fast.CallOptions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ._connection import ConnectionWatch, open_websocket
from ._native import JitterBuffer
from ._redact import install_log_redaction
from .audio import Playback, UplinkEncoder, run_in_worker
from .auth import DEFAULT_BASE_URL, _validate_api_key, request_session_url
from .errors import (
    CLEAN_CLOSE_CODES,
    AgentNotReadyError,
    AnunziError,
    InvalidArgumentError,
    RemoteProtocolError,
    SessionClosedError,
    SessionTokenRejectedError,
    is_transient,
)
from .events import END_OF_EVENTS, CallEvent, EventQueue, Reconnected, live_parts
from .metrics import CallMetrics
from .options import CallOptions
from .protocol import AgentAudio, AgentReady, SessionProtocol

__all__ = ["Call", "CallEvent", "CallMetrics", "CallState", "Reconnected", "connect"]

_logger = logging.getLogger("anunzi_fast.client")

# The reference client's frame: longer inputs are split so no message nears max_size.
MAX_FRAME_SAMPLES: Final = 8192
# close() returns within close_timeout plus this, whatever the peer does.
CLOSE_MARGIN: Final = 0.5


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


class Call:
    """One voice session with an Anunzi agent. ``connect`` is this class.

    Use it as an async context manager (``async with connect(...) as call:``), or
    ``call = await connect(...)`` and :meth:`close` when done.

    Args:
        session_url: A session URL from :func:`~anunzi_fast.request_session_url` (single-use).
        assistant_id: Or the assistant id, and the key, to fetch one.
        api_key: The API key; ``ANUNZI_API_KEY`` by default.
        base_url: Token route base URL (e.g. an :class:`~anunzi_fast.Emulator`'s ``base_url``).
        options: How the call behaves (:class:`~anunzi_fast.CallOptions`: jitter buffer,
            event queue, reconnection, timeouts); defaults if ``None``.
        on_audio_sent: Called with each 48 kHz PCM16 frame once sent (a view: copy to keep),
            e.g. to record the user's side exactly as the service received it.
        **changes: Any option of :class:`~anunzi_fast.CallOptions` by name, e.g.
            ``reconnect=True``; it overrides ``options``.

    Raises:
        InvalidArgumentError: Before any I/O, when neither or both of ``session_url`` and
            ``assistant_id`` are given, the API key is missing, or an option is unknown or
            out of range.
    """

    def __init__(
        self,
        session_url: str | None = None,
        *,
        assistant_id: str | None = None,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        options: CallOptions | None = None,
        on_audio_sent: Callable[[npt.NDArray[np.int16]], None] | None = None,
        **changes: Any,
    ) -> None:
        install_log_redaction()
        if session_url is None and assistant_id is None:
            raise InvalidArgumentError(
                "connect() needs a session_url, or an assistant_id with an api_key (or "
                "$ANUNZI_API_KEY) to request one")
        if session_url is not None and assistant_id is not None:
            raise InvalidArgumentError("pass either a session URL or an assistant id, not both")
        self.options = opts = (options or CallOptions()).with_changes(**changes)
        if opts.reconnect and assistant_id is None:
            raise InvalidArgumentError(
                "reconnect=True needs an assistant id and key: session URLs are single-use")
        if assistant_id is not None:
            api_key = _validate_api_key(api_key)
        self.assistant_id = assistant_id
        self._session_url = session_url
        self._api_key = api_key
        self._base_url = base_url
        self._playback = None if opts.playback_rate is None else Playback(
            opts.playback_rate, prefill_ms=opts.jitter_prefill_ms, max_ms=opts.jitter_max_ms)
        self._encoder = UplinkEncoder()
        self._protocol = SessionProtocol()
        self._metrics = CallMetrics()
        self._events = EventQueue(opts.event_queue_size, opts.event_queue_bytes, self._metrics)
        self._turns, self.echo, self.playout = live_parts(self)  # echo.path(), playout.report()
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
        self._watch = ConnectionWatch(agent_ready_timeout=opts.agent_ready_timeout,
                                      send_timeout=opts.send_timeout,
                                      on_not_ready=self._agent_not_ready)
        self._closing_ws: ClientConnection | None = None  # the connection close() closes
        # Why the call failed when the close code does not say it (reader bug, no agent ready).
        self._failure: AnunziError | None = None

    @property
    def playback_rate(self) -> int | None:
        """The rate of :attr:`jitter_buffer`, or ``None`` without one."""
        return self.options.playback_rate

    @property
    def jitter_buffer(self) -> JitterBuffer | None:
        """The agent's audio at ``playback_rate``, for a speaker's callback to read."""
        return None if self._playback is None else self._playback.jitter_buffer

    @property
    def metrics(self) -> CallMetrics:
        """The call's figures so far (a live object, its counters refreshed on access)."""
        self._turns.listen()
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
        return self.state in states  # not inline: mypy's narrowing ignores awaits

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
                await run_in_worker(self._playback.prepare)  # filter design: tens of ms
            self._ws = await self._connect_once()
        except BaseException:
            self.state = CallState.CLOSED
            raise
        self.state = CallState.OPEN
        self._watch.connected(self._ws)
        self._reader = asyncio.create_task(self._read_forever(), name="anunzi-fast reader")

    async def _connect_once(self) -> ClientConnection:
        url = self._session_url
        self._session_url = None  # single-use: a reconnection must fetch a new one
        from_caller = url is not None
        if url is None:
            assert self.assistant_id is not None
            url = await request_session_url(
                self.assistant_id, self._api_key, base_url=self._base_url,
                retry=self.options.retry)
        return await open_websocket(url, self.options.websocket_options(),
                                    from_caller=from_caller)

    def __await__(self) -> Generator[Any, None, Call]:
        """``call = await connect(...)``: open, and return the call."""
        return self.__aenter__().__await__()

    async def __aenter__(self) -> Call:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _agent_not_ready(self) -> bool:
        """The agent-ready deadline passed: fail the call (the watch then closes it)."""
        if self._protocol.agent_ready or self.state is not CallState.OPEN:
            return False
        timeout = cast(float, self.options.agent_ready_timeout)
        self._failure = AgentNotReadyError(
            f"the service did not send status_agent_ready within {timeout:g} s "
            "(agent_ready_timeout)", timeout=timeout)
        _logger.warning("%s; closing the session", self._failure)
        return True

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
                pcm16 = await run_in_worker(self._encoder.encode, array, rate)
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
        if not self._protocol.ready_sent:
            await self._send_client_ready_locked()
        # Usually one frame: no slicing then.
        frames = [pcm16] if 0 < len(pcm16) <= MAX_FRAME_SAMPLES else [
            pcm16[start : start + MAX_FRAME_SAMPLES]
            for start in range(0, len(pcm16), MAX_FRAME_SAMPLES)]
        for index, frame in enumerate(frames, 1):
            await self._send(self._protocol.encode_audio(frame))
            self._turns.on_sent(frame, time.monotonic())
            if self._on_audio_sent is not None:
                self._on_audio_sent(frame)
            if not index % 8:  # a long input: let the loop run between bursts of frames
                await asyncio.sleep(0)
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
                await self._watch.send(ws, message)
                return
            except ConnectionClosed:
                if not self.options.reconnect or self._in_state(CallState.CLOSING,
                                                                 CallState.CLOSED):
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

    # --- receiving ----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[CallEvent]:
        if not self.options.queue_events:
            raise InvalidArgumentError("events are not queued: connect(queue_events=True)")
        return self._events.iterate(self._error_after_close)

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
                self._watch.stop()
                self._protocol.connection_closed(
                    received=None if received is None else (received.code, received.reason),
                    sent=None if sent is None else (sent.code, sent.reason))
                code = cast(int, self._protocol.close_code)
                if (code in CLEAN_CLOSE_CODES or self.state is not CallState.OPEN
                        or not self.options.reconnect or self._failure is not None):
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
            self._watch.stop()
            if self._protocol.close_code is None:
                # Cancelled by close() (e.g. while reconnecting): the user's code is the truth.
                if self.state is CallState.CLOSING:
                    self._protocol.closed_by_this_side(*self._close_request)
                else:
                    self._protocol.connection_closed(received=None, sent=None)
            self.state = CallState.CLOSED
            self._connection_replaced.set()
            self._events.put(END_OF_EVENTS, 0)  # always, even when events are not queued

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
                self._watch.agent_ready()
                if self._metrics.agent_ready_after is None:
                    self._metrics.agent_ready_after = now - cast(float, self._opened_at)
            if self.options.queue_events:
                self._events.put(event, len(message))

    def _error_after_close(self) -> AnunziError:
        """The exception that says why the session can no longer be used."""
        return self._failure or self._protocol.close_error()

    async def _reconnect_after(self, code: int) -> bool:
        self.state = CallState.RECONNECTING
        while self._metrics.reconnects < self.options.max_reconnects:
            self._metrics.reconnects += 1
            attempt = self._metrics.reconnects
            delay = self.options.retry.backoff(attempt)
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
            self._watch.connected(ws)
            replaced, self._connection_replaced = self._connection_replaced, asyncio.Event()
            replaced.set()
            if self.options.queue_events:
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
            async with asyncio.timeout(self.options.close_timeout + CLOSE_MARGIN):
                await self._close_gracefully(code, reason)
        except TimeoutError:
            _logger.warning("closing took over %.1f s: aborting the connection",
                            self.options.close_timeout)
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
        await self._wait_reader()  # it ends once the connection has closed
        if self._ws is not closed and self._ws is not None:
            # A reconnection completed meanwhile: that connection is ours to close too.
            await self._ws.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the session has ended, whoever closed it."""
        await self._wait_reader()


connect = Call
"""``connect(...)`` makes a :class:`Call`: ``async with connect(...) as call:``."""
