"""The load generator's engine: many real-time calls on one asyncio loop, without Locust.

:mod:`anunzi_fast.loadtest` drives it from Locust's gevent world; nothing here imports Locust
or gevent, so it is tested and benchmarked on its own.

- :class:`CallScript`: what every call says (a WAV, converted once to the 48 kHz PCM16 frames
  the client would send), and where its utterances end, found once by the client's VAD.
- Two drivers of a call, with the same measurements and sample accounting:
  ``"light"`` (the default when picows is installed) carries the sans-I/O
  :class:`~anunzi_fast.protocol.SessionProtocol` over a picows connection, and a
  :class:`FramePacer` sends the next frame of every call from one timer per slot;
  ``"client"`` runs :func:`anunzi_fast.connect`, the public client, one task per call.
- :class:`LoopThread`: the asyncio loop of a process (uvloop when installed), in its own OS
  thread, which runs calls and reports each measurement through a callback as it happens.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from ._net import certificate_failure, describe_network_failure, shared_ssl_context
from ._redact import install_log_redaction
from .audio import UplinkEncoder
from .auth import request_session_url
from .errors import (
    AgentNotReadyError,
    AnunziError,
    CertificateError,
    ConnectionLostError,
    InvalidArgumentError,
    NetworkError,
    PeerError,
    RemoteProtocolError,
    error_for_handshake_status,
)
from .metrics import CallMetrics, TurnClock
from .protocol import CLIENT_SAMPLE_RATE, AgentAudio, AgentReady, SessionProtocol
from .retry import RetryPolicy
from .vad import EnergyVad, SpeechEnded, VadEvent
from .wav import read_wav

__all__ = [
    "DEFAULT_FRAME_MS",
    "DRIVERS",
    "LATE_FRAME_SECONDS",
    "MAX_FRAME_MS",
    "MIN_FRAME_MS",
    "CallConfig",
    "CallOutcome",
    "CallScript",
    "FramePacer",
    "LoopThread",
    "NoReplyError",
    "ScriptedVad",
    "default_driver",
    "run_call",
]

Driver = Literal["light", "client"]
DRIVERS: Final = ("light", "client")
DEFAULT_FRAME_MS: Final = 20.0
# The reference client's frame (8192 samples, about 171 ms) is the largest frame we send.
MAX_FRAME_MS: Final = 8192 / CLIENT_SAMPLE_RATE * 1000
MIN_FRAME_MS: Final = 5.0
# A frame sent later than this after its due time would have overflowed a device buffer of a
# few blocks: the load generator could not keep up, and the call's audio was not real time.
LATE_FRAME_SECONDS: Final = 0.100
# Slots of the pacer's clock: calls are spread over them as independent callers would be.
PACER_SLOTS: Final = 4
# A service that has not read for this long has stopped reading (the client's send_timeout).
STALLED_SECONDS: Final = 20.0

_logger = logging.getLogger("anunzi_fast.loadtest")
# picows logs through this logger, whose filter redacts secrets (a handshake redirect would
# print the session URL, token included); picows would otherwise make one per connection.
_PICOWS_LOGGER = logging.getLogger("anunzi_fast.loadtest.picows")


class NoReplyError(PeerError):
    """The agent did not answer the user's speech within ``reply_timeout``."""


def default_driver() -> Driver:
    """``"light"`` when picows is installed (``pip install "anunzi-fast[load]"``), else
    ``"client"``."""
    try:
        import picows  # noqa: F401
    except ImportError:
        return "client"
    return "light"


# --- what a call says -------------------------------------------------------------------------


class ScriptedVad(EnergyVad):
    """The events an :class:`EnergyVad` finds in a :class:`CallScript`, computed once.

    Fed the script's audio in order, in chunks of any size, :meth:`process` returns what a
    live VAD would, when it would, from the number of samples alone.
    """

    def __init__(self, events: list[tuple[int, VadEvent]]) -> None:
        super().__init__(CLIENT_SAMPLE_RATE)
        self._events = collections.deque(events)  # (samples seen when found, event)
        self._seen = 0

    def process(self, samples: npt.NDArray[np.int16] | npt.NDArray[np.floating]) -> list[VadEvent]:
        self._seen += len(samples)
        found: list[VadEvent] = []
        while self._events and self._events[0][0] <= self._seen:
            found.append(self._events.popleft()[1])
        return found


class CallScript:
    """What every call says: speech as 48 kHz PCM16 frames, then silence until hang-up.

    Args:
        speech: The user's speech, 48 kHz PCM16 mono (as the client sends it).
        frame_ms: Audio per message; a microphone block (20 ms by default).

    Raises:
        InvalidArgumentError: If ``frame_ms`` is out of range or the speech holds no utterance
            that the VAD (the one that measures turn latency) detects.
    """

    def __init__(self, speech: npt.NDArray[np.int16], frame_ms: float = DEFAULT_FRAME_MS) -> None:
        if not MIN_FRAME_MS <= frame_ms <= MAX_FRAME_MS:
            raise InvalidArgumentError(
                f"frame_ms must be from {MIN_FRAME_MS:g} to {MAX_FRAME_MS:.0f}, not {frame_ms!r}")
        self.frame_ms = float(frame_ms)
        self.frame_samples = round(CLIENT_SAMPLE_RATE * frame_ms / 1000)
        count = max(1, math.ceil(len(speech) / self.frame_samples))
        # The last frame is padded with silence: a microphone delivers whole blocks.
        padded = np.zeros(count * self.frame_samples, np.int16)
        padded[: len(speech)] = speech
        self.frames: list[npt.NDArray[np.int16]] = list(padded.reshape(count, -1))
        self.silence = np.zeros(self.frame_samples, np.int16)
        # The messages themselves, encoded once by the protocol for every call that sends them.
        encoder = SessionProtocol()
        self.messages = [encoder.encode_audio(frame).tobytes() for frame in self.frames]
        self.silence_message = encoder.encode_audio(self.silence).tobytes()
        self._vad_events = self._find_events()
        self.utterances = sum(isinstance(event, SpeechEnded) for _, event in self._vad_events)
        if not self.utterances:
            raise InvalidArgumentError(
                "the input holds no speech: nothing in it is louder than -40 dBFS for 60 ms, "
                "so there is no turn to measure")

    @classmethod
    def from_wav(cls, path: str, frame_ms: float = DEFAULT_FRAME_MS) -> CallScript:
        """Read a WAV (any rate, PCM or float, mono or stereo), as the client would send it."""
        wav = read_wav(path)
        encoder = UplinkEncoder()
        samples, rate = encoder.check(wav.samples, wav.sample_rate)
        speech = np.concatenate((encoder.encode(samples, rate), encoder.flush()))
        return cls(speech, frame_ms)

    @property
    def speech_seconds(self) -> float:
        """How long the speech lasts, in seconds (whole frames)."""
        return len(self.frames) * self.frame_samples / CLIENT_SAMPLE_RATE

    def _find_events(self) -> list[tuple[int, VadEvent]]:
        vad = EnergyVad(CLIENT_SAMPLE_RATE)
        # After the speech, silence until the VAD can have nothing more to say.
        tail = np.zeros(round(CLIENT_SAMPLE_RATE * 0.6) + 2 * vad.frame_length, np.int16)
        audio = np.concatenate([*self.frames, tail])
        events: list[tuple[int, VadEvent]] = []
        # One VAD frame at a time: each event is tagged with the samples seen when a live
        # VAD, fed in chunks of any size, finds it.
        for start in range(0, len(audio), vad.frame_length):
            for event in vad.process(audio[start : start + vad.frame_length]):
                events.append((vad.samples_seen, event))
        return events

    def vad(self) -> ScriptedVad:
        """A fresh VAD for one call."""
        return ScriptedVad(self._vad_events)


# --- one call ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallConfig:
    """How each call is made.

    Attributes:
        assistant_id: The agent to call.
        api_key: The API key (never shown: ``repr`` hides it).
        base_url: Token route base URL.
        driver: ``"light"`` (picows, the default when installed) or ``"client"``
            (:func:`anunzi_fast.connect`).
        agent_ready_timeout: Seconds allowed for ``status_agent_ready``.
        reply_timeout: Seconds allowed, after the speech has been sent, for the agent's answer
            to every utterance.
        hangup_after: Seconds of agent silence, once it has answered, before hanging up.
        open_timeout: Seconds allowed for the WebSocket handshake.
        close_timeout: Seconds allowed for the closing handshake.
        retry: The token request's retry policy.
    """

    assistant_id: str
    api_key: str = field(repr=False)
    base_url: str
    driver: Driver = "light"
    agent_ready_timeout: float = 15.0
    reply_timeout: float = 15.0
    hangup_after: float = 1.0
    open_timeout: float = 10.0
    close_timeout: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.driver not in DRIVERS:
            raise InvalidArgumentError(f"driver must be one of {', '.join(DRIVERS)}, "
                                       f"not {self.driver!r}")
        for name in ("agent_ready_timeout", "reply_timeout", "hangup_after", "open_timeout",
                     "close_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidArgumentError(f"{name} must be > 0, not {getattr(self, name)!r}")


@dataclass
class CallOutcome:
    """What one call did.

    Attributes:
        metrics: The client's figures (agent ready, first audio, turn latencies, samples).
        connect_seconds: Token request plus handshake, if the call connected.
        error: Why the call failed, or ``None``.
        failed_at: The measurement the failure belongs to (``connect``, ``agent_ready``,
            ``turn`` or ``call``).
        frames_sent: Audio frames sent.
        frames_late: Frames sent more than :data:`LATE_FRAME_SECONDS` after they were due.
        max_lateness: The latest frame's delay, in seconds.
        close_code: How the session ended.
        cut: The call was cancelled (the load test stopped) before it ended by itself.
    """

    metrics: CallMetrics = field(default_factory=CallMetrics)
    connect_seconds: float | None = None
    error: AnunziError | None = None
    failed_at: str | None = None
    frames_sent: int = 0
    frames_late: int = 0
    max_lateness: float = 0.0
    close_code: int | None = None
    cut: bool = False


Report = Callable[[str, float | None, AnunziError | None, int], None]
"""``report(kind, seconds, error, length)``: one measurement, as it happens."""


class _Turns:
    """Measurements shared by both drivers: what to report and when the call may hang up."""

    def __init__(self, script: CallScript, config: CallConfig, report: Report,
                 outcome: CallOutcome, started: float) -> None:
        self.script = script
        self.config = config
        self.report = report
        self.outcome = outcome
        self.started = started
        self.reported_turns = 0
        self.connected = False  # nothing is reported before "connect"
        self.ready_reported = False
        self.first_audio_reported = False
        self.speech_sent_at: float | None = None
        self.last_agent_audio = -math.inf

    def update(self, metrics: CallMetrics) -> None:
        """Report what the metrics newly hold."""
        if not self.connected:
            return
        if not self.ready_reported and metrics.agent_ready_after is not None:
            self.ready_reported = True
            self.report("agent_ready", metrics.agent_ready_after, None, 0)
        if not self.first_audio_reported and metrics.first_audio_after is not None:
            self.first_audio_reported = True
            self.report("first_audio", metrics.first_audio_after, None, 0)
        while self.reported_turns < len(metrics.turn_latencies):
            self.report("turn", metrics.turn_latencies[self.reported_turns], None, 0)
            self.reported_turns += 1

    def verdict(self, now: float, metrics: CallMetrics) -> AnunziError | bool:
        """``True`` to hang up, an error to fail, ``False`` to go on."""
        if metrics.agent_ready_after is None and (
                now - self.started > self.config.agent_ready_timeout):
            timeout = self.config.agent_ready_timeout
            return AgentNotReadyError(
                f"the service did not send status_agent_ready within {timeout:g} s "
                "(agent_ready_timeout)", timeout=timeout)
        if self.speech_sent_at is None:
            return False
        if len(metrics.turn_latencies) >= self.script.utterances:
            return now - self.last_agent_audio >= self.config.hangup_after
        if now - self.speech_sent_at > self.config.reply_timeout:
            answered = len(metrics.turn_latencies)
            return NoReplyError(
                f"the agent answered {answered} of {self.script.utterances} utterances within "
                f"{self.config.reply_timeout:g} s of the end of the speech (reply_timeout)")
        return False


def _fail(outcome: CallOutcome, error: AnunziError, stage: str) -> None:
    if outcome.error is None:
        outcome.error, outcome.failed_at = error, stage


def _stage_of(error: AnunziError) -> str:
    if isinstance(error, AgentNotReadyError):
        return "agent_ready"
    if isinstance(error, NoReplyError):
        return "turn"
    return "call"


async def run_call(config: CallConfig, script: CallScript, report: Report,
                   pacer: FramePacer | None = None) -> CallOutcome:
    """Make one whole call; report each measurement as it happens; never raise an
    :class:`AnunziError` (it is in the outcome, and reported with the stage it belongs to).

    Cancelling it hangs the call up, and returns the outcome so far (``outcome.cut``).
    """
    outcome = CallOutcome()
    started = time.monotonic()
    try:
        if config.driver == "light":
            await _LightCall(config, script, report, outcome, started,
                             pacer or FramePacer.for_loop(script.frame_ms)).run()
        else:
            await _run_client_call(config, script, report, outcome, started)
    except AnunziError as exc:
        _fail(outcome, exc, "connect" if outcome.connect_seconds is None else _stage_of(exc))
    except asyncio.CancelledError:
        # Only the caller's handle cancels this task: the outcome (what was sent and received
        # until then) still counts.
        outcome.cut = True
    duration = time.monotonic() - started
    if outcome.error is not None:
        report(outcome.failed_at or "call", duration, outcome.error, 0)
    elif not outcome.cut:
        report("call", duration, None, outcome.metrics.samples_received * 2)
    return outcome


# --- the light driver: SessionProtocol over picows, paced by one clock --------------------


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
        self._slots: list[list[_LightCall]] = [[] for _ in range(PACER_SLOTS)]
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

    def add(self, call: _LightCall) -> None:
        slot = min(range(PACER_SLOTS), key=lambda index: len(self._slots[index]))
        self._slots[slot].append(call)
        if not self._running[slot]:
            loop = asyncio.get_running_loop()
            self._running[slot] = True
            first = max(loop.time(), self.start_at)
            self._due[slot] = first + self.frame_seconds * slot / PACER_SLOTS
            loop.call_at(self._due[slot], self._tick, slot)

    def remove(self, call: _LightCall) -> None:
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


def _picows() -> Any:
    try:
        import picows
    except ImportError as exc:
        raise InvalidArgumentError(
            "the light driver needs picows: pip install \"anunzi-fast[load]\" (or use the "
            "client driver)") from exc
    return picows


_LISTENER: Any = None


def _listener_class() -> Any:
    """picows' listener, forwarding to a :class:`_LightCall` (made once: picows is optional)."""
    global _LISTENER
    if _LISTENER is None:
        picows = _picows()

        class Listener(picows.WSListener):  # type: ignore[misc,name-defined]
            def __init__(self, call: _LightCall) -> None:
                super().__init__()
                self.call = call

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                self.call.on_frame(frame)

            def on_ws_disconnected(self, transport: Any) -> None:
                self.call.on_disconnected()

            def pause_writing(self) -> None:
                self.call.paused_since = time.monotonic()

            def resume_writing(self) -> None:
                self.call.paused_since = None

        _LISTENER = Listener
    return _LISTENER


class _LightCall:
    """One call on picows: the sans-I/O protocol's bytes, moved by a listener's callbacks."""

    def __init__(self, config: CallConfig, script: CallScript, report: Report,
                 outcome: CallOutcome, started: float, pacer: FramePacer) -> None:
        self.picows = _picows()
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
        listener = _listener_class()
        # The client's TLS choices (one shared context); no *_proxy variables are read.
        tls = shared_ssl_context() if url.lower().startswith("wss:") else None
        try:
            self.transport, _ = await picows.ws_connect(
                lambda: listener(self), url, ssl_context=tls,
                websocket_handshake_timeout=self.config.open_timeout,
                max_frame_size=2**20, logger_name=_PICOWS_LOGGER,
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


# --- the client driver: anunzi_fast.connect ----------------------------------------------------


async def _run_client_call(config: CallConfig, script: CallScript, report: Report,
                           outcome: CallOutcome, started: float) -> None:
    from .client import connect

    call = connect(assistant_id=config.assistant_id, api_key=config.api_key,
                   base_url=config.base_url, retry=config.retry, queue_events=False,
                   playback_rate=None, agent_ready_timeout=config.agent_ready_timeout,
                   open_timeout=config.open_timeout, close_timeout=config.close_timeout)
    turns = _Turns(script, config, report, outcome, started)
    await call.open()
    outcome.connect_seconds = time.monotonic() - started
    report("connect", outcome.connect_seconds, None, 0)
    turns.connected = True
    loop = asyncio.get_running_loop()
    period = script.frame_samples / CLIENT_SAMPLE_RATE
    due = loop.time()
    received = 0
    try:
        while True:
            lateness = max(0.0, loop.time() - due)
            index = outcome.frames_sent
            frame = script.frames[index] if index < len(script.frames) else script.silence
            if index == len(script.frames):
                turns.speech_sent_at = time.monotonic()
            await call.send_audio(frame, CLIENT_SAMPLE_RATE)
            outcome.frames_sent += 1
            outcome.frames_late += lateness > LATE_FRAME_SECONDS
            outcome.max_lateness = max(outcome.max_lateness, lateness)
            metrics = call.metrics
            if metrics.samples_received != received:
                received, turns.last_agent_audio = metrics.samples_received, time.monotonic()
            turns.update(metrics)
            verdict = turns.verdict(time.monotonic(), metrics)
            if isinstance(verdict, AnunziError):
                _fail(outcome, verdict, _stage_of(verdict))
                break
            if verdict:
                break
            due += period
            await asyncio.sleep(due - loop.time())
    except AnunziError as exc:
        _fail(outcome, exc, _stage_of(exc))
    except asyncio.CancelledError:
        outcome.cut = True
        raise
    finally:
        await call.close()
        outcome.metrics = call.metrics
        outcome.close_code = call.close_code
        turns.update(outcome.metrics)


# --- the loop thread ----------------------------------------------------------------------------


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
