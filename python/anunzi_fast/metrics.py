"""Call metrics, and the turn clock that measures response latency.

:class:`CallMetrics` holds what users ask of a call; :class:`TurnClock` maps the end of each
user utterance (an energy VAD on what was sent) to the start of the agent's next reply.
Neither does I/O: the client feeds them what it sends and receives, with the times.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .protocol import AGENT_SAMPLE_RATE, CLIENT_SAMPLE_RATE
from .vad import EnergyVad, SpeechEnded

__all__ = ["CallMetrics", "TurnClock"]


@dataclass
class CallMetrics:
    """Figures users ask for; times in seconds, measured with ``time.monotonic``.

    Attributes:
        agent_ready_after: From the start of :meth:`Call.open` to ``status_agent_ready``.
        first_audio_after: From the start of :meth:`Call.open` to the first agent audio.
        turn_latencies: Per user turn, from the end of the user's speech (energy VAD on what
            was sent) to the first agent audio after it.
        first_audio_heard_after: From the start of :meth:`Call.open` to the agent's first
            sample leaving the speaker (playout-accurate: jitter buffer and device latency
            included); ``None`` without a speaker reporting playout.
        heard_turn_latencies: Per user turn, from the end of the user's speech to the first
            agent sample heard after it (what the user experiences).
        echo_delay_ms: The echo canceller's estimate of the delay from played to captured
            audio beyond what the devices report, when one ran.
        samples_sent: User samples sent, at 48 kHz.
        samples_received: Agent samples received, at 16 kHz.
        underruns: Times the jitter buffer ran dry while playing (read from its stats).
        reconnects: Reconnections after abnormal closes.
        events_dropped: Events dropped from a full event queue (the oldest first), because
            the application did not iterate the call fast enough; the jitter buffer and
            these metrics still saw every event.
        event_bytes_dropped: The audio and text bytes those dropped events held.
    """

    agent_ready_after: float | None = None
    first_audio_after: float | None = None
    turn_latencies: list[float] = field(default_factory=list)
    first_audio_heard_after: float | None = None
    heard_turn_latencies: list[float] = field(default_factory=list)
    echo_delay_ms: float | None = None
    samples_sent: int = 0
    samples_received: int = 0
    underruns: int = 0
    reconnects: int = 0
    events_dropped: int = 0
    event_bytes_dropped: int = 0

    @property
    def seconds_sent(self) -> float:
        """Duration of the user audio sent."""
        return self.samples_sent / CLIENT_SAMPLE_RATE

    @property
    def seconds_received(self) -> float:
        """Duration of the agent audio received."""
        return self.samples_received / AGENT_SAMPLE_RATE


class _Replies:
    """Reply start times of one kind (arrived, or heard), and the latencies they end."""

    def __init__(self, latencies: list[float], history: int) -> None:
        self.latencies = latencies
        self.starts: collections.deque[float] = collections.deque(maxlen=history)
        self.waiting_since: float | None = None

    def started(self, at: float) -> None:
        self.starts.append(at)
        if self.waiting_since is not None:
            self.latencies.append(at - self.waiting_since)
            self.waiting_since = None

    def speech_ended(self, ended_at: float) -> None:
        reply = next((t for t in self.starts if t >= ended_at), None)
        if reply is not None:
            self.latencies.append(reply - ended_at)
        else:
            self.waiting_since = ended_at


class TurnClock:
    """Maps the end of each user utterance to the start of the agent's next reply.

    A reply starts with agent audio arriving after at least ``REPLY_GAP`` seconds without any:
    audio that merely continues what the agent was already saying is not an answer. Latencies
    are appended to ``latencies`` (typically :attr:`CallMetrics.turn_latencies`); with
    ``heard_latencies``, the same to the moment the reply was heard
    (:meth:`on_agent_heard`, from a speaker's playout events).

    ``vad`` replaces the default :class:`EnergyVad` at 48 kHz (the load generator passes one
    whose events were computed once for the audio every call sends). With ``batch``, sent
    audio is copied and the VAD runs on up to :attr:`PENDING_SAMPLES` at once (a third of
    the cost per 20 ms frame); the latencies are then complete after :meth:`listen`.
    """

    # Enough history to resolve a turn ended up to a few minutes ago; bounded memory.
    HISTORY = 4096
    # Real-time agents send a frame every 20 ms; a pause five times longer is a new reply.
    REPLY_GAP = 0.1

    # Sent audio waits here (copied) for the VAD, which then works on many frames at once: its
    # cost is mostly per call. It catches up before a reply is matched and on listen().
    PENDING_SAMPLES = 16 * 960

    def __init__(self, latencies: list[float], heard_latencies: list[float] | None = None,
                 vad: EnergyVad | None = None, *, batch: bool = True) -> None:
        self.latencies = latencies
        self._vad = EnergyVad(CLIENT_SAMPLE_RATE) if vad is None else vad
        self._pending = np.empty(self.PENDING_SAMPLES if batch else 0, np.int16)
        self._pending_samples = 0
        # Where each sent chunk ends (in samples) and when it left: two deques of numbers, not
        # one of tuples, so that sending allocates nothing the garbage collector tracks.
        self._sent_ends: collections.deque[int] = collections.deque(maxlen=self.HISTORY)
        self._sent_times: collections.deque[float] = collections.deque(maxlen=self.HISTORY)
        self._sent_total = 0
        self._arrived = _Replies(latencies, self.HISTORY)
        self._heard = _Replies([] if heard_latencies is None else heard_latencies, self.HISTORY)
        self._last_arrival = -float("inf")

    def on_sent(self, pcm16: npt.NDArray[np.int16], sent_at: float) -> None:
        """The user audio ``pcm16`` (48 kHz) left at ``sent_at``."""
        self._sent_total += len(pcm16)
        self._sent_ends.append(self._sent_total)
        self._sent_times.append(sent_at)
        pending, end = self._pending, self._pending_samples + len(pcm16)
        if end > len(pending):
            self.listen()
            if len(pcm16) > len(pending):
                self._hear(pcm16)
                return
            end = len(pcm16)
        pending[end - len(pcm16) : end] = pcm16
        self._pending_samples = end

    def listen(self) -> None:
        """Run the VAD over the audio sent since it last ran (before reading latencies)."""
        if self._pending_samples:
            count, self._pending_samples = self._pending_samples, 0
            self._hear(self._pending[:count])

    def _hear(self, pcm16: npt.NDArray[np.int16]) -> None:
        for event in self._vad.process(pcm16):
            if isinstance(event, SpeechEnded):
                self._speech_ended(self._time_of_sample(event.sample - 1))

    def on_agent_audio(self, arrived_at: float) -> None:
        """Agent audio arrived (or, for playout timing, was heard) at ``arrived_at``."""
        starts_reply = arrived_at - self._last_arrival >= self.REPLY_GAP
        self._last_arrival = arrived_at
        if starts_reply:
            self.listen()  # every utterance that ended before this reply is known first
            self._arrived.started(arrived_at)

    def on_agent_heard(self, heard_at: float) -> None:
        """The speaker started playing a reply at ``heard_at`` (a playout event)."""
        self.listen()
        self._heard.started(heard_at)

    def _time_of_sample(self, index: int) -> float:
        # The time the frame holding that sample left: the last moment the speech was known.
        for end, sent_at in zip(self._sent_ends, self._sent_times, strict=True):
            if index < end:
                return sent_at
        return self._sent_times[-1]

    def _speech_ended(self, ended_at: float) -> None:
        # The agent may answer before our VAD's hangover confirms the end of the turn.
        self._arrived.speech_ended(ended_at)
        self._heard.speech_ended(ended_at)
