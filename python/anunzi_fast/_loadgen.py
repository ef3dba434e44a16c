"""The load generator's engine: many real-time calls on one asyncio loop, without Locust.

:mod:`anunzi_fast.loadtest` drives it from Locust's gevent world; nothing here imports Locust
or gevent, so it is tested and benchmarked on its own.

- :class:`CallScript`: what every call says (a WAV, converted once to the 48 kHz PCM16 frames
  the client would send), and where its utterances end, found once by the client's VAD.
- Two drivers of a call, with the same measurements and sample accounting:
  ``"light"`` (:mod:`anunzi_fast._light_driver`, the default when picows is installed)
  carries the sans-I/O :class:`~anunzi_fast.protocol.SessionProtocol` over a picows
  connection, the next frame of every call sent from one clock; ``"client"`` runs
  :func:`anunzi_fast.connect`, the public client, one task per call.
(:mod:`anunzi_fast._loop_thread` runs them in an OS thread beside Locust's gevent.)
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt

from .audio import UplinkEncoder
from .errors import (
    AgentNotReadyError,
    AnunziError,
    InvalidArgumentError,
    PeerError,
)
from .metrics import CallMetrics
from .protocol import CLIENT_SAMPLE_RATE, SessionProtocol
from .retry import RetryPolicy
from .vad import EnergyVad, SpeechEnded, VadEvent
from .wav import read_wav

if TYPE_CHECKING:
    from ._light_driver import FramePacer

__all__ = [
    "DEFAULT_FRAME_MS",
    "DRIVERS",
    "LATE_FRAME_SECONDS",
    "MAX_FRAME_MS",
    "MIN_FRAME_MS",
    "CallConfig",
    "CallOutcome",
    "CallScript",
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
            from ._light_driver import FramePacer, LightCall

            await LightCall(config, script, report, outcome, started,
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
