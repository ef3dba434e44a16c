"""What an emulated session is, whichever server carries it: its record, its fault, the
answers waiting to be spoken and how agent audio is cut into frames.

No I/O here: :mod:`.server` (websockets) and :mod:`.light` (picows) move the bytes.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import itertools
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..protocol import AGENT_SAMPLE_RATE, ClientReady, SessionProtocol, Side

__all__ = [
    "FRAME_SAMPLES",
    "FRAME_SECONDS",
    "QUEUED_REPLY_SAMPLES",
    "Fault",
    "Pace",
    "Replies",
    "SessionRecord",
    "fault_of",
    "receive_client_text",
    "split_frames",
]

FRAME_SECONDS = 0.020
FRAME_SAMPLES = int(AGENT_SAMPLE_RATE * FRAME_SECONDS)
# Odd on purpose, and not a multiple of anything the client might align to.
ODD_FRAME_BYTES = 641
# The ragged fault's frame sizes, in turn: empty frames right after odd ones included.
RAGGED_FRAME_BYTES = (1, 0, 0, 3, 0, 2, 641, 0, 1, 1, 0, 1000, 7, 0)
# Answers waiting to be spoken (also those held until status_client_ready): at most this much
# audio, the oldest dropped first, so memory stays bounded whatever the client sends.
QUEUED_REPLY_SAMPLES = 30 * AGENT_SAMPLE_RATE

Pace = Literal["realtime", "fast"]


class Fault(enum.StrEnum):
    """Misbehaviours, selected by using the value as the assistant id."""

    SLOW_READY = "slow-ready"
    """``status_agent_ready`` only after ``slow_ready_delay`` seconds."""
    EXTRA_EVENTS = "extra-events"
    """Unknown JSON events and one malformed text message around everything it says."""
    ODD_FRAMES = "odd-frames"
    """Agent audio split into odd-length binary frames."""
    RAGGED_FRAMES = "ragged-frames"
    """Agent audio in frames of every size, empty and one-byte frames among them."""
    ABRUPT_CLOSE = "abrupt-close"
    """The TCP connection is dropped, without a close frame, after the greeting."""
    CLOSE_1011 = "close-1011"
    """The session is closed with code 1011 after the greeting."""
    RATE_LIMITED = "rate-limited"
    """The token route answers 429 with ``Retry-After`` the first ``fault_repeats`` times."""
    SERVER_ERROR = "server-error"
    """The token route answers 503 the first ``fault_repeats`` times."""
    FORBIDDEN = "forbidden"
    """The token route answers 403: the key may not use this assistant."""
    BAD_BODY = "bad-body"
    """The token route answers 200 with a body that is not the documented JSON."""
    NEVER_READY = "never-ready"
    """``status_agent_ready`` is never sent (the client's ``agent_ready_timeout`` ends it)."""


class SessionRecord:
    """What one session exchanged, for tests and the CLI summary.

    Attributes:
        assistant_id: The assistant of the session.
        protocol: The server side of the session's protocol (its counters are the truth).
        received: Every byte of user audio, in order (only if the emulator records audio).
        sent: Every byte of agent audio, in order (only if recording).
        client_ready_after_bytes: User audio bytes received before ``status_client_ready``.
        text_messages: Every text message received (the first 100).
        utterances: User utterances answered.
        replies_dropped: Answers dropped because more than 30 s of them were waiting.
        close_code: The close code once the session ended.
        closed: Set when the session ended.
    """

    MAX_TEXT_MESSAGES = 100

    def __init__(self, assistant_id: str, *, record_audio: bool) -> None:
        self.assistant_id = assistant_id
        self.record_audio = record_audio
        self.protocol = SessionProtocol(Side.SERVER)
        self.received = bytearray()
        self.sent = bytearray()
        self.client_ready_after_bytes: int | None = None
        self.text_messages: list[str] = []
        self.utterances = 0
        self.replies_dropped = 0
        self.close_code: int | None = None
        self.closed = asyncio.Event()

    @property
    def bytes_received(self) -> int:
        """User audio bytes received."""
        return self.protocol.bytes_received

    @property
    def bytes_sent(self) -> int:
        """Agent audio bytes sent."""
        return self.protocol.bytes_sent

    @property
    def client_ready(self) -> bool:
        """Whether ``status_client_ready`` arrived."""
        return self.protocol.peer_ready

    def __repr__(self) -> str:
        return (
            f"SessionRecord(assistant_id={self.assistant_id!r}, "
            f"bytes_received={self.bytes_received}, bytes_sent={self.bytes_sent}, "
            f"close_code={self.close_code})"
        )


class Replies:
    """Answers waiting to be spoken, bounded in samples (the oldest dropped first)."""

    def __init__(self, record: SessionRecord, max_samples: int = QUEUED_REPLY_SAMPLES) -> None:
        self._items: collections.deque[npt.NDArray[np.int16]] = collections.deque()
        self._samples = 0
        self._max_samples = max_samples
        self._record = record
        self._ready = asyncio.Event()

    def put(self, audio: npt.NDArray[np.int16]) -> None:
        self._items.append(audio)
        self._samples += len(audio)
        while self._samples > self._max_samples and len(self._items) > 1:
            self._samples -= len(self._items.popleft())
            self._record.replies_dropped += 1
        self._ready.set()

    def take_all(self) -> list[npt.NDArray[np.int16]]:
        items = list(self._items)
        self._items.clear()
        self._samples = 0
        return items

    def pop(self) -> npt.NDArray[np.int16] | None:
        """The next answer, or ``None`` if none is waiting."""
        if not self._items:
            return None
        audio = self._items.popleft()
        self._samples -= len(audio)
        return audio

    async def get(self) -> npt.NDArray[np.int16]:
        """The next answer, once there is one."""
        while (audio := self.pop()) is None:
            self._ready.clear()
            await self._ready.wait()
        return audio


def split_frames(payload: memoryview, fault: Fault) -> list[memoryview]:
    """Cut encoded agent audio into the odd or ragged frames of ``fault``."""
    sizes = itertools.cycle(
        (ODD_FRAME_BYTES,) if fault is Fault.ODD_FRAMES else RAGGED_FRAME_BYTES)
    frames, at = [], 0
    while at < len(payload):
        size = next(sizes)
        frames.append(payload[at : at + size])
        at += size
    return frames


def fault_of(assistant_id: str) -> Fault | None:
    """The fault an assistant id selects, if any."""
    try:
        return Fault(assistant_id)
    except ValueError:
        return None


def receive_client_text(record: SessionRecord, message: str, greeting: npt.NDArray[np.int16],
                        held: Replies, speech: Replies) -> bool:
    """A text message from the client: recorded, decoded; on ``status_client_ready`` the
    greeting and the answers held until then are queued to speak. Whether that happened."""
    if len(record.text_messages) < record.MAX_TEXT_MESSAGES:
        record.text_messages.append(message)
    protocol = record.protocol
    was_ready = protocol.peer_ready
    events = protocol.receive_text(message)
    if was_ready or not any(isinstance(event, ClientReady) for event in events):
        return False
    record.client_ready_after_bytes = protocol.bytes_received
    speech.put(greeting)
    for reply in held.take_all():
        speech.put(reply)
    return True
