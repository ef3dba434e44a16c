"""The asyncio session client: ``async with anunzi_fast.connect(...) as call``.

The client moves bytes between a :mod:`websockets` connection and the sans-I/O
:class:`~anunzi_fast.protocol.SessionProtocol`. What it adds:

- :meth:`Call.send_audio` takes float32, float64 or int16 audio at any sample rate, mono or
  2-D ``(frames, channels)`` (downmixed), and sends PCM16 at 48 kHz: exact browser conversion
  by the native core and a streaming resampler whose state is kept across calls.
- ``status_client_ready`` goes out once, just before the first audio, as the reference
  client sends it (or explicitly with :meth:`Call.send_client_ready`).
- A background reader decodes every message, feeds agent audio to a
  :class:`~anunzi_fast.JitterBuffer` at the playback rate, keeps :class:`CallMetrics` and
  queues events for ``async for event in call``.
- Lifecycle: close codes surfaced, keepalive pings, bounded message size, clear errors after
  close, and optional reconnection with a fresh session URL after an abnormal close.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeAlias, cast

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from ._native import JitterBuffer, float_to_pcm16, pcm16_to_float
from .auth import (
    DEFAULT_BASE_URL,
    RetryPolicy,
    install_log_redaction,
    redact,
    request_session_url,
    shared_ssl_context,
)
from .errors import (
    AnunziError,
    ConnectionLostError,
    InvalidArgumentError,
    NetworkError,
    RemoteProtocolError,
    ServerError,
    SessionClosedError,
    SessionTokenRejectedError,
)
from .protocol import (
    AGENT_SAMPLE_RATE,
    CLIENT_SAMPLE_RATE,
    AgentAudio,
    AgentReady,
    Event,
    SessionProtocol,
)
from .vad import EnergyVad, SpeechEnded

__all__ = ["Call", "CallEvent", "CallMetrics", "Reconnected", "connect"]

_logger = logging.getLogger("anunzi_fast.client")

# The reference client's frame: longer inputs are split so no message nears max_size.
MAX_FRAME_SAMPLES: Final = 8192
# More channels than any audio interface a voice client records from: a (channels, frames)
# array passed the wrong way round, which would otherwise be averaged across time.
MAX_INPUT_CHANNELS: Final = 32
CLEAN_CLOSE_CODES: Final = frozenset({1000, 1001})
ABNORMAL_CLOSURE: Final = 1006
# Codes with which the client itself fails the connection because of what the service sent.
_LOCAL_PROTOCOL_FAILURES: Final = {
    1002: "the service broke the WebSocket protocol",
    1007: "the service sent invalid data (text that is not UTF-8)",
    1009: "the service sent a message larger than max_size",
}
_END_OF_EVENTS: Final = object()


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


@dataclass
class CallMetrics:
    """Figures users ask for; times in seconds, measured with ``time.monotonic``.

    Attributes:
        agent_ready_after: From the start of :meth:`Call.open` to ``status_agent_ready``.
        first_audio_after: From the start of :meth:`Call.open` to the first agent audio.
        turn_latencies: Per user turn, from the end of the user's speech (energy VAD on what
            was sent) to the first agent audio after it.
        samples_sent: User samples sent, at 48 kHz.
        samples_received: Agent samples received, at 16 kHz.
        underruns: Times the jitter buffer ran dry while playing (read from its stats).
        reconnects: Reconnections after abnormal closes.
        events_dropped: Events dropped from a full event queue (the oldest first), because
            the application did not iterate the call fast enough; the jitter buffer and
            these metrics still saw every event.
    """

    agent_ready_after: float | None = None
    first_audio_after: float | None = None
    turn_latencies: list[float] = field(default_factory=list)
    samples_sent: int = 0
    samples_received: int = 0
    underruns: int = 0
    reconnects: int = 0
    events_dropped: int = 0

    @property
    def seconds_sent(self) -> float:
        """Duration of the user audio sent."""
        return self.samples_sent / CLIENT_SAMPLE_RATE

    @property
    def seconds_received(self) -> float:
        """Duration of the agent audio received."""
        return self.samples_received / AGENT_SAMPLE_RATE


class _TurnClock:
    """Maps the end of each user utterance to the start of the agent's next reply.

    A reply starts with agent audio arriving after at least ``_REPLY_GAP`` seconds without any:
    audio that merely continues what the agent was already saying is not an answer.
    """

    # Enough history to resolve a turn ended up to a few minutes ago; bounded memory.
    _HISTORY = 4096
    # Real-time agents send a frame every 20 ms; a pause five times longer is a new reply.
    _REPLY_GAP = 0.1

    def __init__(self, metrics: CallMetrics) -> None:
        self._metrics = metrics
        self._vad = EnergyVad(CLIENT_SAMPLE_RATE)
        self._sent: collections.deque[tuple[int, float]] = collections.deque(maxlen=self._HISTORY)
        self._sent_total = 0
        self._reply_starts: collections.deque[float] = collections.deque(maxlen=self._HISTORY)
        self._last_arrival = -float("inf")
        self._waiting_since: float | None = None

    def on_sent(self, pcm16: npt.NDArray[np.int16], sent_at: float) -> None:
        self._sent_total += len(pcm16)
        self._sent.append((self._sent_total, sent_at))
        for event in self._vad.process(pcm16):
            if isinstance(event, SpeechEnded):
                self._speech_ended(self._time_of_sample(event.sample - 1))

    def on_agent_audio(self, arrived_at: float) -> None:
        starts_reply = arrived_at - self._last_arrival >= self._REPLY_GAP
        self._last_arrival = arrived_at
        if not starts_reply:
            return
        self._reply_starts.append(arrived_at)
        if self._waiting_since is not None:
            self._metrics.turn_latencies.append(arrived_at - self._waiting_since)
            self._waiting_since = None

    def _time_of_sample(self, index: int) -> float:
        # The time the frame holding that sample left: the last moment the speech was known.
        for end, sent_at in self._sent:
            if index < end:
                return sent_at
        return self._sent[-1][1]

    def _speech_ended(self, ended_at: float) -> None:
        # The agent may answer before our VAD's hangover confirms the end of the turn.
        reply = next((t for t in self._reply_starts if t >= ended_at), None)
        if reply is not None:
            self._metrics.turn_latencies.append(reply - ended_at)
        else:
            self._waiting_since = ended_at


class Call:
    """One voice session with an Anunzi agent. Create it with :func:`connect`."""

    def __init__(
        self,
        session_url: str | None,
        *,
        assistant_id: str | None,
        api_key: str | None,
        base_url: str,
        playback_rate: int | None,
        jitter_prefill_ms: float,
        jitter_max_ms: float,
        queue_events: bool,
        event_queue_size: int,
        reconnect: bool,
        max_reconnects: int,
        retry: RetryPolicy | None,
        open_timeout: float,
        ping_interval: float | None,
        ping_timeout: float | None,
        close_timeout: float,
        max_size: int,
        on_audio_sent: Callable[[npt.NDArray[np.int16]], None] | None = None,
    ) -> None:
        if (session_url is None) == (assistant_id is None):
            raise InvalidArgumentError("pass either a session URL or an assistant id, not both")
        if reconnect and assistant_id is None:
            raise InvalidArgumentError(
                "reconnect=True needs an assistant id and key: session URLs are single-use"
            )
        if playback_rate is not None and playback_rate <= 0:
            raise InvalidArgumentError("playback_rate must be a positive number of Hz")
        self._session_url = session_url
        self.assistant_id = assistant_id
        self._api_key = api_key
        self._base_url = base_url
        self._reconnect = reconnect
        self._max_reconnects = max_reconnects
        self._retry = retry
        self._ws_options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_size": max_size,
            "compression": None,  # PCM does not compress; deflate would only cost CPU
            "user_agent_header": "anunzi-fast",
        }
        self.playback_rate = playback_rate
        self.jitter_buffer: JitterBuffer | None = None
        self._playback_resampler: Any = None
        if playback_rate is not None:
            resampled = playback_rate != AGENT_SAMPLE_RATE
            self.jitter_buffer = JitterBuffer(
                playback_rate,
                prefill_ms=jitter_prefill_ms,
                max_ms=jitter_max_ms,
                dtype="float32" if resampled else "int16",
            )
            if resampled:
                self._playback_resampler = _resample_stream(AGENT_SAMPLE_RATE, playback_rate)
        self._metrics = CallMetrics()
        self._turns = _TurnClock(self._metrics)
        self._queue_events = queue_events
        self._on_audio_sent = on_audio_sent
        self._events: asyncio.Queue[object] = asyncio.Queue(maxsize=event_queue_size)
        self._protocol = SessionProtocol()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._open_attempted = False
        self._opened_at = 0.0
        self._send_lock = asyncio.Lock()
        # Set when the current connection is replaced (reconnection) or the call has ended;
        # a sender that saw the connection close waits on it instead of spinning.
        self._connection_replaced = asyncio.Event()
        self._input_rate: int | None = None
        self._input_resampler: Any = None
        self._closing = False
        self._close_request: tuple[int, str] = (1000, "")
        self._close_requested = asyncio.Event()
        self._finished = False
        self._reader_failure: AnunziError | None = None
        self._failed_locally = False  # the last connection was failed by us, not the service
        self.close_code: int | None = None
        self.close_reason: str = ""
        install_log_redaction()

    @property
    def metrics(self) -> CallMetrics:
        """The call's figures so far (a live object; ``underruns`` is refreshed on access)."""
        if self.jitter_buffer is not None:
            self._metrics.underruns = self.jitter_buffer.stats.underruns
        return self._metrics

    def __repr__(self) -> str:
        # Never the session URL: it carries the token.
        state = "closed" if self.close_code is not None else "open" if self._ws else "new"
        target = f"assistant_id={self.assistant_id!r}" if self.assistant_id else "session_url=..."
        return f"<Call {target} {state} close_code={self.close_code}>"

    # --- opening ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Get a session URL if needed, connect, and start reading.

        Raises:
            InvalidArgumentError: If this call was opened before, even if that failed.
        """
        if self._open_attempted:
            # Also after a failed open: its session URL, single-use, may have been spent.
            raise InvalidArgumentError("a Call opens once; use a new connect() for a new session")
        self._open_attempted = True
        self._opened_at = time.monotonic()
        self._ws = await self._connect_once()
        self._reader = asyncio.create_task(self._read_forever(), name="anunzi-fast reader")

    async def _connect_once(self) -> ClientConnection:
        url = self._session_url
        self._session_url = None  # single-use: a reconnection must fetch a new one
        from_caller = url is not None
        if url is None:
            assert self.assistant_id is not None
            url = await request_session_url(
                self.assistant_id, self._api_key, base_url=self._base_url, retry=self._retry
            )
        options = dict(self._ws_options)
        if url[:6].lower() == "wss://":
            options["ssl"] = shared_ssl_context()  # not a new CA bundle load per session
        try:
            return await ws_connect(url, **options)
        except (InvalidURI, ValueError):  # ValueError: e.g. a port out of range
            # Not chained: the cause's message may spell out the URL, token included.
            if from_caller:
                raise InvalidArgumentError(
                    "the session URL is not a valid ws:// or wss:// URL") from None
            raise RemoteProtocolError(
                "the token route returned a session URL that cannot be connected to") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 403:
                raise SessionTokenRejectedError(
                    "the session token was refused (HTTP 403): it is unknown, already used or "
                    "expired; request a new session URL for every connection"
                ) from exc
            if 500 <= status <= 599:
                raise ServerError(f"the WebSocket handshake failed with HTTP {status}",
                                  status=status) from exc
            raise RemoteProtocolError(f"the WebSocket handshake failed with HTTP {status}") from exc
        except InvalidHandshake as exc:
            raise RemoteProtocolError(
                f"the WebSocket handshake failed: {type(exc).__name__}") from exc
        except (OSError, TimeoutError) as exc:
            raise NetworkError(f"could not connect the session: {type(exc).__name__}") from exc

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

    # --- sending ------------------------------------------------------------------------------

    async def send_client_ready(self) -> None:
        """Send ``status_client_ready`` now, unless it was already sent on this connection."""
        async with self._send_lock:
            await self._send_client_ready_locked()

    async def _send_client_ready_locked(self) -> None:
        if not self._protocol.client_ready_sent:
            await self._send(self._protocol.encode_client_ready())

    async def send_audio(self, samples: npt.ArrayLike, sample_rate: int) -> int:
        """Send user audio; return how many 48 kHz samples went out.

        Args:
            samples: float32/float64 in [-1, 1] or int16, shape ``(frames,)`` or
                ``(frames, channels)`` (channels are averaged).
            sample_rate: Rate of ``samples`` in Hz; other rates than 48000 are resampled with
                a streaming resampler whose state carries over between calls.

        Raises:
            InvalidArgumentError: For a wrong dtype, shape or rate.
            SessionClosedError, ConnectionLostError, ServerError: If the session has ended.
        """
        pcm16 = self._to_wire_pcm16(samples, sample_rate)
        return await self._send_pcm16(pcm16)

    async def flush_audio(self) -> int:
        """Send what the input resampler still holds (its delay); call at the end of input."""
        if self._input_resampler is None:
            return 0
        tail = self._input_resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        self._input_resampler = None
        self._input_rate = None
        return await self._send_pcm16(_float_to_pcm16(np.asarray(tail, np.float32)))

    def _to_wire_pcm16(self, samples: npt.ArrayLike, sample_rate: int) -> npt.NDArray[np.int16]:
        array = np.asarray(samples)
        if array.dtype not in (np.float32, np.float64, np.int16):
            raise InvalidArgumentError(
                f"audio must be float32, float64 or int16, not {array.dtype}")
        if array.ndim == 2:
            array = _downmix(array)
        elif array.ndim != 1:
            raise InvalidArgumentError("audio must be 1-D (mono) or 2-D (frames, channels)")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
                or sample_rate <= 0:
            raise InvalidArgumentError(f"sample_rate must be a positive int, not {sample_rate!r}")
        sample_rate = int(sample_rate)
        if sample_rate == CLIENT_SAMPLE_RATE and self._input_resampler is None:
            if array.dtype == np.int16:
                return np.ascontiguousarray(array)
            return _float_to_pcm16(array)
        if array.dtype == np.int16:
            array = _pcm16_to_float(array)
        if self._input_rate != sample_rate:
            if self._input_resampler is not None:
                raise InvalidArgumentError(
                    "the input sample rate changed: call flush_audio() before switching rates")
            self._input_resampler = _resample_stream(sample_rate, CLIENT_SAMPLE_RATE)
            self._input_rate = sample_rate
        resampled = self._input_resampler.resample_chunk(
            np.ascontiguousarray(array, dtype=np.float32))
        return _float_to_pcm16(np.asarray(resampled, dtype=np.float32))

    async def _send_pcm16(self, pcm16: npt.NDArray[np.int16]) -> int:
        async with self._send_lock:
            await self._send_client_ready_locked()
            # Usually one frame: no slicing then.
            frames = [pcm16] if 0 < len(pcm16) <= MAX_FRAME_SAMPLES else [
                pcm16[start : start + MAX_FRAME_SAMPLES]
                for start in range(0, len(pcm16), MAX_FRAME_SAMPLES)]
            for frame in frames:
                await self._send(self._protocol.encode_audio(frame))
                self._metrics.samples_sent += len(frame)
                self._turns.on_sent(frame, time.monotonic())
                if self._on_audio_sent is not None:
                    self._on_audio_sent(frame)
        return len(pcm16)

    async def _send(self, message: str | memoryview) -> None:
        # Only ever client_ready (text) or audio (binary), with the send lock held.
        while True:
            if self._finished:
                raise self._error_after_close()
            ws = self._ws
            if ws is None:
                raise SessionClosedError("the session is not open: use 'async with connect(...)'")
            replaced = self._connection_replaced
            try:
                await ws.send(message)
                return
            except ConnectionClosed:
                if not self._reconnect or self._closing:
                    await self._wait_reader()
                    raise self._error_after_close() from None
                # The reader reconnects or gives up; either way this event is set.
                await replaced.wait()
                if self._finished:
                    continue  # raises the reason at the top of the loop
                # A new session: client_ready must precede any audio on it. Our caller holds
                # the send lock, so nothing else can be sent in between.
                if isinstance(message, str):
                    message = self._protocol.encode_client_ready()  # marks the new session
                elif not self._protocol.client_ready_sent:
                    await self._send_client_ready_locked()

    # --- receiving ----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[CallEvent]:
        return self._iterate_events()

    async def _iterate_events(self) -> AsyncIterator[CallEvent]:
        if not self._queue_events:
            raise InvalidArgumentError("events are not queued: connect(queue_events=True)")
        while True:
            item = await self._events.get()
            if item is _END_OF_EVENTS:
                # Keep the sentinel for other iterators and later calls.
                self._events.put_nowait(_END_OF_EVENTS)
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
                        if isinstance(message, str):
                            events = self._protocol.receive_text(message)
                        else:
                            events = self._protocol.receive_binary(message)
                        for event in events:
                            self._observe(event)
                            if self._queue_events:
                                self._enqueue(event)
                    code, reason = ws.close_code or 1000, ws.close_reason or ""
                except ConnectionClosed as exc:
                    code, reason = self._close_of(exc)
                if code in CLEAN_CLOSE_CODES or self._closing or not self._reconnect:
                    self._record_close(code, reason)
                    return
                if not await self._reconnect_after(code):
                    if self._closing:  # the user closed while we reconnected
                        code, reason = self._close_request
                    self._record_close(code, reason)
                    return
        except Exception as exc:  # never let the reader die silently
            _logger.error("session reader failed: %s", type(exc).__name__, exc_info=True)
            self._reader_failure = RemoteProtocolError(
                f"the session reader failed: {type(exc).__name__}")
            if self._ws is not None:
                await self._ws.close(1011, "client failure")
        finally:
            if self.close_code is None:
                # Cancelled by close() (e.g. while reconnecting), the user's code is the truth.
                self._record_close(*(self._close_request if self._closing
                                     else (ABNORMAL_CLOSURE, "")))
            self._finished = True
            self._connection_replaced.set()
            self._enqueue(_END_OF_EVENTS)  # always, even when events are not queued

    def _close_of(self, exc: ConnectionClosed) -> tuple[int, str]:
        """The code and reason that ended a connection, and who chose them."""
        self._failed_locally = False
        if exc.rcvd is not None:
            return exc.rcvd.code, exc.rcvd.reason
        if exc.sent is not None and exc.sent.code in _LOCAL_PROTOCOL_FAILURES:
            # We closed because of what the service sent, and it never answered our close.
            self._failed_locally = True
            return exc.sent.code, exc.sent.reason
        # E.g. the keepalive timed out (we sent 1011): the network's fault, not the service's.
        return ABNORMAL_CLOSURE, ""

    def _observe(self, event: Event) -> None:
        """Metrics and the jitter buffer: what every event updates, queued or not."""
        now = time.monotonic()
        if isinstance(event, AgentAudio):
            self._metrics.samples_received += len(event.samples)
            if self._metrics.first_audio_after is None:
                self._metrics.first_audio_after = now - self._opened_at
            self._turns.on_agent_audio(now)
            self._feed_jitter_buffer(event.samples)
        elif isinstance(event, AgentReady) and self._metrics.agent_ready_after is None:
            self._metrics.agent_ready_after = now - self._opened_at

    def _feed_jitter_buffer(self, samples: npt.NDArray[np.int16]) -> None:
        if self.jitter_buffer is None:
            return
        if self._playback_resampler is None:
            _push(self.jitter_buffer, samples)
            return
        resampled = self._playback_resampler.resample_chunk(_pcm16_to_float(samples))
        _push(self.jitter_buffer, np.ascontiguousarray(resampled, dtype=np.float32))

    def _enqueue(self, item: object) -> None:
        """Queue without ever waiting: a full queue loses its oldest event instead.

        The reader must never block on an application that does not iterate, or audio would
        stop reaching the jitter buffer and a sender waiting for a reconnection would hang.
        """
        if self._events.full():
            self._events.get_nowait()
            self._metrics.events_dropped += 1
        self._events.put_nowait(item)

    def _record_close(self, code: int, reason: str) -> None:
        self.close_code = code
        self.close_reason = reason

    def _error_after_close(self) -> AnunziError:
        """The exception that says why the session can no longer be used."""
        if self._reader_failure is not None:
            return self._reader_failure
        code, reason = self.close_code, self.close_reason
        detail = f"code {code}" + (f", reason {redact(reason)!r}" if reason else "")
        if code is None or code in CLEAN_CLOSE_CODES:
            return SessionClosedError(f"the session is closed ({detail})", code=code,
                                      reason=reason)
        if self._failed_locally and code in _LOCAL_PROTOCOL_FAILURES:
            return RemoteProtocolError(
                f"{_LOCAL_PROTOCOL_FAILURES[code]}; the client closed the session ({detail})")
        if code == ABNORMAL_CLOSURE:
            return ConnectionLostError(
                "the connection was lost without a closing handshake (code 1006)", code=code)
        return ServerError(f"the service ended the session abnormally ({detail})", status=code)

    async def _reconnect_after(self, code: int) -> bool:
        while self._metrics.reconnects < self._max_reconnects:
            self._metrics.reconnects += 1
            attempt = self._metrics.reconnects
            delay = (self._retry or RetryPolicy()).backoff(attempt)
            _logger.info("session closed with %d; reconnecting in %.2fs (attempt %d)",
                         code, delay, attempt)
            # Cut short by close(): nobody wants the new connection any more.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._close_requested.wait(), delay)
            if self._closing:
                return False
            try:
                ws = await self._connect_once()
            except (NetworkError, ServerError, SessionTokenRejectedError) as exc:
                _logger.info("reconnection attempt %d failed: %s", attempt, exc)
                continue
            except AnunziError as exc:  # e.g. the key was revoked: retrying cannot help
                self._reader_failure = exc
                return False
            if self._closing:
                # close() already closed the old connection and will not see this one.
                await ws.close(*self._close_request)
                return False
            # A new session: new framing state, and the agent must hear client_ready again.
            self._protocol = SessionProtocol()
            self._ws = ws
            replaced, self._connection_replaced = self._connection_replaced, asyncio.Event()
            replaced.set()
            if self._queue_events:
                self._enqueue(Reconnected(attempt, code))
            return True
        return False

    async def _wait_reader(self) -> None:
        if self._reader is not None and self._reader is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._reader)

    # --- closing ------------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush the input resampler, close the session with ``code`` and stop reading."""
        if self._closing:
            await self._wait_reader()
            return
        if self._ws is not None and not self._finished and self._input_resampler is not None:
            with contextlib.suppress(AnunziError):
                await self.flush_audio()
        self._closing = True
        self._close_request = (code, reason)
        self._close_requested.set()
        closed = self._ws
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


def _float_to_pcm16(samples: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    return float_to_pcm16(np.ascontiguousarray(samples))


def _pcm16_to_float(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    return pcm16_to_float(np.ascontiguousarray(samples))


def _push(jitter_buffer: JitterBuffer, samples: npt.NDArray[Any]) -> None:
    jitter_buffer.push(samples)



def _downmix(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if array.shape[1] == 0:
        raise InvalidArgumentError("2-D audio needs at least one channel")
    if array.shape[1] > MAX_INPUT_CHANNELS:
        raise InvalidArgumentError(
            f"2-D audio must be (frames, channels); got {array.shape[1]} channels "
            f"(more than {MAX_INPUT_CHANNELS}): pass array.T if it is (channels, frames)")
    if array.shape[1] == 1:
        return array[:, 0]
    if array.dtype == np.int16:
        mixed: npt.NDArray[Any] = np.rint(array.mean(axis=1)).astype(np.int16)
    else:
        mixed = array.mean(axis=1, dtype=array.dtype)
    return mixed


def _resample_stream(in_rate: int, out_rate: int) -> Any:
    # Imported lazily: 48 kHz input and 16 kHz playback, the common cases, never need it.
    from .resampler import ResampleStream

    return ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")


def connect(
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
    reconnect: bool = False,
    max_reconnects: int = 3,
    retry: RetryPolicy | None = None,
    open_timeout: float = 10.0,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    close_timeout: float = 5.0,
    max_size: int = 2**20,
    on_audio_sent: Callable[[npt.NDArray[np.int16]], None] | None = None,
) -> Call:
    """Start a session with an agent: ``async with connect(...) as call:``.

    Args:
        session_url: A session URL from :func:`~anunzi_fast.request_session_url` (single-use).
        assistant_id: Or the assistant id, and the key, to fetch one.
        api_key: The API key; ``ANUNZI_API_KEY`` by default.
        base_url: Token route base URL.
        playback_rate: Rate of :attr:`Call.jitter_buffer` (16000 keeps the agent's PCM16;
            others are resampled to float32); ``None`` for no jitter buffer.
        jitter_prefill_ms: Audio the jitter buffer holds before playing.
        jitter_max_ms: Audio it holds at most (the oldest is dropped beyond).
        queue_events: Queue events for ``async for``; turn off when only the jitter buffer is
            used, which saves queueing every message.
        event_queue_size: Events queued at most. When the queue is full the oldest event is
            dropped and counted in :attr:`CallMetrics.events_dropped`: an application that
            does not iterate never stalls the session (audio still reaches the jitter buffer).
        reconnect: After an abnormal close, fetch a new session URL and reconnect.
        max_reconnects: Reconnections allowed in the call.
        retry: Retry policy of the token request and reconnection backoff.
        open_timeout: Seconds allowed for the WebSocket handshake.
        ping_interval: Seconds between keepalive pings; ``None`` disables them.
        ping_timeout: Seconds to wait for a pong before the connection counts as lost.
        close_timeout: Seconds to wait for the closing handshake.
        max_size: Largest message accepted from the service, in bytes.
        on_audio_sent: Called with each 48 kHz PCM16 frame once sent (a view: copy to keep),
            e.g. to record the user's side exactly as the service received it.

    Returns:
        A :class:`Call`, to be used as an async context manager.
    """
    return Call(
        session_url,
        assistant_id=assistant_id,
        api_key=api_key,
        base_url=base_url,
        playback_rate=playback_rate,
        jitter_prefill_ms=jitter_prefill_ms,
        jitter_max_ms=jitter_max_ms,
        queue_events=queue_events,
        event_queue_size=event_queue_size,
        reconnect=reconnect,
        max_reconnects=max_reconnects,
        retry=retry,
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        max_size=max_size,
        on_audio_sent=on_audio_sent,
    )
