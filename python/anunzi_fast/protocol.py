"""The Anunzi widget protocol without I/O.

:class:`SessionProtocol` turns the messages a WebSocket delivers into typed events and encodes
what the client sends. It never performs I/O and never raises on what the peer sends: malformed
text becomes a :class:`MalformedMessage` event, and an odd-length binary frame keeps its last
byte for the next frame so that samples never lose their alignment.

Wire format (see ``PROTOCOL.md``): the client sends PCM16 little-endian mono 48 kHz as binary
messages and ``{"type": "status_client_ready"}`` as text; the service sends PCM16 little-endian
mono 16 kHz as binary messages and ``{"type": "status_agent_ready"}`` and other JSON as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError

__all__ = [
    "AGENT_SAMPLE_RATE",
    "CLIENT_SAMPLE_RATE",
    "AgentAudio",
    "AgentReady",
    "Event",
    "MalformedMessage",
    "ServerMessage",
    "SessionProtocol",
]

CLIENT_SAMPLE_RATE: Final = 48_000
AGENT_SAMPLE_RATE: Final = 16_000
TYPE_AGENT_READY: Final = "status_agent_ready"
TYPE_CLIENT_READY: Final = "status_client_ready"
CLIENT_READY_MESSAGE: Final = json.dumps({"type": TYPE_CLIENT_READY})

_PCM16_LE: Final = np.dtype("<i2")
_LITTLE_ENDIAN: Final = np.dtype(np.int16) == _PCM16_LE
# Keep error events small: a peer could send megabytes of garbage.
_EXCERPT_CHARS: Final = 120


@dataclass(frozen=True, eq=False)
class AgentAudio:
    """A chunk of the agent's speech.

    Attributes:
        samples: Mono PCM16 samples (``int16``). A read-only view of the received frame when
            the frame was aligned, otherwise a copy joining the carried byte.
        sample_rate: Always 16000 for the Anunzi service.
    """

    samples: npt.NDArray[np.int16]
    sample_rate: int = AGENT_SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length of the chunk in seconds."""
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class AgentReady:
    """``status_agent_ready``: the agent is ready to receive audio."""


@dataclass(frozen=True)
class ServerMessage:
    """Any other JSON object from the service, passed on as is.

    Attributes:
        type: The object's ``"type"`` if it is a string, else ``None``.
        data: The whole decoded object.
    """

    type: str | None
    data: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class MalformedMessage:
    """A text message that is not a JSON object; the session goes on.

    Attributes:
        reason: Why it was rejected.
        excerpt: The start of the message, for diagnostics.
    """

    reason: str
    excerpt: str


Event: TypeAlias = AgentAudio | AgentReady | ServerMessage | MalformedMessage


class SessionProtocol:
    """State of one session's message stream, without I/O.

    Feed each received message to :meth:`receive_binary` or :meth:`receive_text`; encode outgoing
    messages with :meth:`encode_audio` and :meth:`encode_client_ready`.
    """

    def __init__(self) -> None:
        self._carry: bytes = b""
        self.agent_ready: bool = False
        self.client_ready_sent: bool = False
        self.samples_received: int = 0
        self.samples_sent: int = 0
        self.malformed_messages: int = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes held back from an odd-length frame (0 or 1)."""
        return len(self._carry)

    def receive_binary(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Decode one binary message of agent audio.

        Returns:
            One :class:`AgentAudio` event, or none if the frame held less than one sample.
        """
        if type(data) is bytes and not self._carry and not len(data) % 2 and _LITTLE_ENDIAN:
            # The usual frame: aligned, immutable, native order. A view, nothing else to do.
            if not data:
                return []
            samples: npt.NDArray[np.int16] = np.frombuffer(data, np.int16)
            self.samples_received += len(samples)
            return [AgentAudio(samples)]
        view = memoryview(data).cast("B")
        if self._carry:
            joined = self._carry + bytes(view[: len(view) - (len(view) + 1) % 2])
            self._carry = bytes(view[len(view) - (len(view) + 1) % 2 :])
            aligned: bytes | memoryview = joined
        else:
            usable = len(view) - len(view) % 2
            aligned = view[:usable]
            self._carry = bytes(view[usable:])
        if not aligned:
            return []
        # On little-endian machines astype(copy=False) is a no-op, so the event is a view.
        samples = np.frombuffer(aligned, dtype=_PCM16_LE).astype(np.int16, copy=False)
        if samples.flags.writeable:  # a view of the caller's bytearray: protect it
            samples.flags.writeable = False
        self.samples_received += len(samples)
        return [AgentAudio(samples)]

    def receive_text(self, text: str) -> list[Event]:
        """Decode one text message; never raises."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError, TypeError) as exc:
            return [self._malformed(f"not JSON ({type(exc).__name__})", text)]
        if not isinstance(data, dict):
            return [self._malformed("JSON but not an object", text)]
        message_type = data.get("type")
        if message_type == TYPE_AGENT_READY:
            self.agent_ready = True
            return [AgentReady()]
        return [ServerMessage(message_type if isinstance(message_type, str) else None, data)]

    def _malformed(self, reason: str, text: str) -> MalformedMessage:
        self.malformed_messages += 1
        excerpt = text[:_EXCERPT_CHARS] if isinstance(text, str) else repr(text)[:_EXCERPT_CHARS]
        return MalformedMessage(reason, excerpt)

    def encode_client_ready(self) -> str:
        """Return the ``status_client_ready`` message and remember it was sent."""
        self.client_ready_sent = True
        return CLIENT_READY_MESSAGE

    def encode_audio(self, samples: npt.NDArray[np.int16]) -> memoryview:
        """Return PCM16 little-endian bytes for 48 kHz mono ``samples``.

        Returns:
            A view of ``samples`` (no copy) on little-endian machines; do not modify
            ``samples`` until the message has been sent.

        Raises:
            InvalidArgumentError: If ``samples`` is not a 1-D int16 array (the caller's bug).
        """
        if not isinstance(samples, np.ndarray) or samples.dtype != np.int16 or samples.ndim != 1:
            raise InvalidArgumentError("encode_audio takes a 1-D int16 array")
        wire = np.ascontiguousarray(samples, dtype=_PCM16_LE)
        self.samples_sent += len(wire)
        return wire.data.cast("B")
