"""The load generator's light driver: the sans-I/O protocol over picows, on one frame clock.

A :class:`LightCall` moves :class:`~anunzi_fast.protocol.SessionProtocol`'s bytes through a
picows connection's callbacks; a :class:`FramePacer` sends the next frame of every call of a
loop from one timer per slot instead of one timer (and task) per call. Measurements, turn
clock and counters are those of :mod:`anunzi_fast._loadgen`, shared with the client driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

from ._loadgen import (
    LATE_FRAME_SECONDS,
    CallConfig,
    CallOutcome,
    CallScript,
    Report,
    _fail,
    _stage_of,
    _Turns,
)
from ._net import certificate_failure, describe_network_failure, shared_ssl_context
from ._picows import import_picows, listener_class
from ._redact import install_log_redaction
from .auth import request_session_url
from .errors import (
    AgentNotReadyError,
    AnunziError,
    CertificateError,
    ConnectionLostError,
    NetworkError,
    RemoteProtocolError,
    error_for_handshake_status,
)
from .metrics import TurnClock
from .protocol import AgentAudio, AgentReady, SessionProtocol

__all__ = ["PACER_SLOTS", "STALLED_SECONDS", "FramePacer", "LightCall"]

# Slots of the pacer's clock: calls are spread over them as independent callers would be.
PACER_SLOTS: Final = 4
# A service that has not read for this long has stopped reading (the client's send_timeout).
STALLED_SECONDS: Final = 20.0

_logger = logging.getLogger("anunzi_fast.loadtest")
# picows logs through this logger, whose filter redacts secrets (its handshake log prints the
# session URL, token included). Through an adapter: given a Logger, picows logs through a
# child per connection, whose records the parent's filter never sees.
_PICOWS_LOGGER = logging.getLogger("anunzi_fast.loadtest.picows")
_PICOWS_LOG = logging.LoggerAdapter(_PICOWS_LOGGER)


_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, FramePacer]] = (
    weakref.WeakKeyDictionary())


class FramePacer:
    """Sends the next frame of every call from one timer per slot, not one timer per call.

    Calls are spread over :data:`PACER_SLOTS` slots of the frame period, as independent
    callers would be. A slot that runs late catches up at once, as a microphone's buffer would
    deliver the blocks it held.

    Args:
        frame_seconds: The frame period.
        start_at: Loop time before which no call speaks (a benchmark starts all at once).
        on_tick: Called with each slot tick's lateness and number of calls (benchmarks).
    """

    def __init__(self, frame_seconds: float, *, start_at: float = 0.0,
                 on_tick: Callable[[float, int], None] | None = None) -> None:
        self.frame_seconds = frame_seconds
        self.start_at = start_at
        self.on_tick = on_tick
        self._slots: list[list[LightCall]] = [[] for _ in range(PACER_SLOTS)]
        self._due = [0.0] * PACER_SLOTS
        self._running = [False] * PACER_SLOTS

    @classmethod
    def for_loop(cls, frame_ms: float) -> FramePacer:
        """The pacer of the running loop for this frame size (one per loop and size)."""
        pacers = _PACERS.setdefault(asyncio.get_running_loop(), {})
        pacer = pacers.get(frame_ms)
        if pacer is None:
            pacer = pacers[frame_ms] = cls(frame_ms / 1000)
        return pacer

    def add(self, call: LightCall) -> None:
        slot = min(range(PACER_SLOTS), key=lambda index: len(self._slots[index]))
        self._slots[slot].append(call)
        if not self._running[slot]:
            loop = asyncio.get_running_loop()
            self._running[slot] = True
            first = max(loop.time(), self.start_at)
            self._due[slot] = first + self.frame_seconds * slot / PACER_SLOTS
            loop.call_at(self._due[slot], self._tick, slot)

    def remove(self, call: LightCall) -> None:
        for calls in self._slots:
            if call in calls:
                calls.remove(call)

    def _tick(self, slot: int) -> None:
        loop = asyncio.get_running_loop()
        calls = self._slots[slot]
        if not calls:
            self._running[slot] = False
            return
        now = loop.time()
        lateness = max(0.0, now - self._due[slot])
        self._due[slot] += self.frame_seconds
        loop.call_at(self._due[slot], self._tick, slot)
        if self.on_tick is not None:
            self.on_tick(lateness, len(calls))
        for call in tuple(calls):
            try:
                call.on_tick(lateness)
            except Exception as exc:  # a bug in one call must not stall the others
                _logger.error("a load-generator call failed: %s", type(exc).__name__,
                              exc_info=True)
                call.fail(AnunziError(f"the load generator failed: {type(exc).__name__}"),
                          "call")


class LightCall:
    """One call on picows: the sans-I/O protocol's bytes, moved by a listener's callbacks."""

    def __init__(self, config: CallConfig, script: CallScript, report: Report,
                 outcome: CallOutcome, started: float, pacer: FramePacer) -> None:
        self.picows = import_picows("the light driver (or use the client driver)")
        self._binary = self.picows.WSMsgType.BINARY
        install_log_redaction((_PICOWS_LOGGER.name,))
        self.config, self.script, self.outcome, self.pacer = config, script, outcome, pacer
        self.protocol = SessionProtocol()
        self.metrics = outcome.metrics
        # The same turn clock as the client's, its VAD's work done once for all calls.
        self.turn_clock = TurnClock(self.metrics.turn_latencies, vad=script.vad(), batch=False)
        self.turns = _Turns(script, config, report, outcome, started)
        self.transport: Any = None
        self.frame_index = 0
        self.hung_up = False
        self.paused_since: float | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(self) -> None:
        picows = self.picows
        url = await request_session_url(self.config.assistant_id, self.config.api_key,
                                        base_url=self.config.base_url, retry=self.config.retry)
        listener = listener_class()
        # The client's TLS choices (one shared context); no *_proxy variables are read.
        tls = shared_ssl_context() if url.lower().startswith("wss:") else None
        try:
            self.transport, _ = await picows.ws_connect(
                lambda: listener(self), url, ssl_context=tls,
                websocket_handshake_timeout=self.config.open_timeout,
                max_frame_size=2**20, logger_name=_PICOWS_LOG,
                extra_headers={"User-Agent": "anunzi-fast"})
        except picows.WSInvalidStatusError as exc:
            raise error_for_handshake_status(int(exc.response.status)) from None
        except picows.WSError as exc:  # not chained: the cause may spell out the URL
            raise RemoteProtocolError(
                f"the WebSocket handshake failed: {type(exc).__name__}") from None
        except (OSError, TimeoutError) as exc:
            what = describe_network_failure(exc)
            if certificate_failure(exc) is not None:
                raise CertificateError(f"could not connect the session: {what}") from exc
            raise NetworkError(f"could not connect the session: {what}") from exc
        self.outcome.connect_seconds = time.monotonic() - self.turns.started
        self.turns.report("connect", self.outcome.connect_seconds, None, 0)
        self.turns.connected = True
        self.turns.update(self.metrics)  # agent ready may have come with the handshake
        # The reference client's order: client ready with the first captured block.
        self.transport.send(picows.WSMsgType.TEXT, self.protocol.encode_ready().encode())
        self.pacer.add(self)
        try:
            await asyncio.shield(self.done)
        except asyncio.CancelledError:
            self.outcome.cut = True
            self.hang_up()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.done), self.config.close_timeout)
            raise
        finally:
            self.pacer.remove(self)
            self.transport.disconnect(False)
            self.metrics.samples_sent = self.protocol.samples_sent
            self.metrics.samples_received = self.protocol.samples_received

    def on_tick(self, lateness: float) -> None:
        """The pacer's clock: send this call's next frame, then decide whether to go on."""
        if self.hung_up or self.done.done():
            return
        now = time.monotonic()
        script, outcome, protocol = self.script, self.outcome, self.protocol
        index = self.frame_index
        if index < len(script.frames):
            frame, message = script.frames[index], script.messages[index]
        else:
            frame, message = script.silence, script.silence_message
            if self.turns.speech_sent_at is None:
                self.turns.speech_sent_at = now
        self.frame_index = index + 1
        self.transport.send(self._binary, message)
        # Counted as SessionProtocol.encode_audio counts, without encoding it again.
        protocol.samples_sent += len(frame)
        protocol.bytes_sent += len(message)
        self.turn_clock.on_sent(frame, now)
        outcome.frames_sent += 1
        if lateness > LATE_FRAME_SECONDS:
            outcome.frames_late += 1
        if lateness > outcome.max_lateness:
            outcome.max_lateness = lateness
        if len(self.metrics.turn_latencies) != self.turns.reported_turns:
            self.turns.update(self.metrics)  # the VAD found a turn the agent had answered
        if self.paused_since is not None and now - self.paused_since > STALLED_SECONDS:
            self.fail(ConnectionLostError(
                f"the service stopped reading for {STALLED_SECONDS:g} s"), "call")
            return
        verdict = self.turns.verdict(now, self.metrics)
        if isinstance(verdict, AnunziError):
            self.fail(verdict, _stage_of(verdict))
        elif verdict:
            self.hang_up()

    def on_connected(self, transport: Any) -> None:
        """picows' handshake is done (the transport arrives with ws_connect's answer)."""

    def pause_writing(self) -> None:
        self.paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self.paused_since = None

    def on_frame(self, frame: Any) -> None:
        picows = self.picows
        kind = frame.msg_type
        if kind is self._binary:
            events = self.protocol.receive_binary(frame.get_payload_as_bytes())
        elif kind is picows.WSMsgType.TEXT:
            events = self.protocol.receive_text(frame.get_payload_as_utf8_text())
        elif kind is picows.WSMsgType.CLOSE:
            if not self.transport.is_close_frame_sent:
                self.transport.send_close(frame.get_close_code())
            self.transport.disconnect()
            return
        else:
            return
        now = time.monotonic()
        for event in events:
            if isinstance(event, AgentAudio):
                if self.metrics.first_audio_after is None:
                    self.metrics.first_audio_after = now - self.turns.started
                self.turns.last_agent_audio = now
                self.turn_clock.on_agent_audio(now)
            elif isinstance(event, AgentReady) and self.metrics.agent_ready_after is None:
                self.metrics.agent_ready_after = now - self.turns.started
        self.turns.update(self.metrics)

    def hang_up(self, code: int = 1000, reason: str = "") -> None:
        """Send the close frame; the connection is dropped if the service does not answer."""
        if self.hung_up or self.transport is None:
            return
        self.hung_up = True
        if not self.transport.is_close_frame_sent:
            self.transport.send_close(self.picows.WSCloseCode(code), reason.encode())
        asyncio.get_running_loop().call_later(self.config.close_timeout,
                                              self.transport.disconnect, False)

    def fail(self, error: AnunziError, stage: str) -> None:
        _fail(self.outcome, error, stage)
        if isinstance(error, AgentNotReadyError):  # the service broke the protocol
            self.hang_up(1002, "status_agent_ready not received")
        else:
            self.hang_up()

    def on_disconnected(self) -> None:
        handshake = self.transport.close_handshake if self.transport is not None else None
        received = None if handshake is None else handshake.recv
        sent = None if handshake is None else handshake.sent
        self.protocol.connection_closed(
            received=None if received is None else (int(received.code.value), received.reason),
            sent=None if sent is None else (int(sent.code.value), sent.reason))
        self.outcome.close_code = self.protocol.close_code
        if not self.hung_up:
            # The service ended the call before the hang-up: even a clean close is a failure.
            _fail(self.outcome, self.protocol.close_error(), "call")
        elif received is None:
            _fail(self.outcome, ConnectionLostError(
                "the service did not answer the hang-up with a close frame within "
                f"{self.config.close_timeout:g} s"), "call")
        if not self.done.done():
            self.done.set_result(None)
