"""The Anunzi widget protocol without I/O, for both peers.

:class:`SessionProtocol` turns the messages a WebSocket delivers into typed events and encodes
what its side sends, for the client (``Side.CLIENT``, used by :func:`~anunzi_fast.connect`) or
the service (``Side.SERVER``, used by the emulator). It never performs I/O and never raises on
what the peer sends: malformed text becomes a :class:`MalformedMessage` event, and binary frames
of any length, odd and empty ones included, in any order, are joined so that samples never
lose their alignment. What it is given by its own side is checked: a wrong argument is an
:class:`~anunzi_fast.errors.InvalidArgumentError`.

It also keeps the session's counters (samples and bytes each way, malformed messages) across
reconnections, and tells why a closed connection ended (:meth:`SessionProtocol.close_error`).

Wire format (see ``PROTOCOL.md``): the client sends PCM16 little-endian mono 48 kHz as binary
messages and ``{"type": "status_client_ready"}`` as text; the service sends PCM16 little-endian
mono 16 kHz as binary messages and ``{"type": "status_agent_ready"}`` and other JSON as text.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from .errors import (
    ABNORMAL_CLOSURE,
    LOCAL_PROTOCOL_FAILURES,
    AnunziError,
    InvalidArgumentError,
    error_for_close,
)

__all__ = [
    "AGENT_SAMPLE_RATE",
    "CLIENT_SAMPLE_RATE",
    "AgentAudio",
    "AgentReady",
    "ClientMessage",
    "ClientReady",
    "Event",
    "MalformedMessage",
    "ServerEvent",
    "ServerMessage",
    "SessionProtocol",
    "Side",
    "UserAudio",
]

CLIENT_SAMPLE_RATE: Final = 48_000
AGENT_SAMPLE_RATE: Final = 16_000
TYPE_AGENT_READY: Final = "status_agent_ready"
TYPE_CLIENT_READY: Final = "status_client_ready"
CLIENT_READY_MESSAGE: Final = json.dumps({"type": TYPE_CLIENT_READY})
AGENT_READY_MESSAGE: Final = json.dumps({"type": TYPE_AGENT_READY})

_PCM16_LE: Final = np.dtype("<i2")
_INT16: Final = np.dtype(np.int16)
_LITTLE_ENDIAN: Final = _INT16 == _PCM16_LE
# Keep error events small: a peer could send megabytes of garbage.
_EXCERPT_CHARS: Final = 120


class Side(enum.Enum):
    """Which peer a :class:`SessionProtocol` speaks for."""

    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, eq=False)
class AgentAudio:
    """A chunk of the agent's speech (what a client receives).

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


@dataclass(frozen=True, eq=False)
class UserAudio:
    """A chunk of the user's speech (what the service receives), 48 kHz mono PCM16.

    Attributes:
        samples: As for :class:`AgentAudio`: a read-only view when aligned, else a copy.
        sample_rate: Always 48000.
    """

    samples: npt.NDArray[np.int16]
    sample_rate: int = CLIENT_SAMPLE_RATE


@dataclass(frozen=True)
class AgentReady:
    """``status_agent_ready``: the agent is ready to receive audio."""


@dataclass(frozen=True)
class ClientReady:
    """``status_client_ready``: the client's capture started; the agent may speak."""


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
class ClientMessage:
    """Any other JSON object from the client (the server side's :class:`ServerMessage`)."""

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
"""What the client side receives."""
ServerEvent: TypeAlias = UserAudio | ClientReady | ClientMessage | MalformedMessage
"""What the server side receives."""


class SessionProtocol:
    """One side of a session's message stream, without I/O.

    Feed each received message to :meth:`receive_binary` or :meth:`receive_text`; encode what
    this side sends with :meth:`encode_audio` and :meth:`encode_ready`. After a reconnection,
    :meth:`new_connection` resets the framing and the ready flags; the counters go on.

    Args:
        side: ``Side.CLIENT`` (receives agent audio at 16 kHz, sends user audio at 48 kHz) or
            ``Side.SERVER`` (the reverse).
    """

    def __init__(self, side: Side = Side.CLIENT) -> None:
        self.side = side
        self._is_client = side is Side.CLIENT
        self.peer_ready = False
        self.ready_sent = False
        self._carry = b""
        # Counters, for the whole session across reconnections.
        self.samples_received = 0
        self.samples_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.malformed_messages = 0
        # How the last connection ended.
        self.close_code: int | None = None
        self.close_reason = ""
        self._failed_locally = False

    @property
    def receive_rate(self) -> int:
        """Sample rate of the audio this side receives."""
        return AGENT_SAMPLE_RATE if self._is_client else CLIENT_SAMPLE_RATE

    @property
    def agent_ready(self) -> bool:
        """Whether ``status_agent_ready`` went across (received or sent by this side)."""
        return self.peer_ready if self._is_client else self.ready_sent

    @property
    def client_ready_sent(self) -> bool:
        """Whether ``status_client_ready`` went across (sent or received by this side)."""
        return self.ready_sent if self._is_client else self.peer_ready

    @property
    def pending_bytes(self) -> int:
        """Bytes held back from an odd-length frame (0 or 1)."""
        return len(self._carry)

    def new_connection(self) -> None:
        """A new connection of the same session: fresh framing and ready flags."""
        self._carry = b""
        self.peer_ready = self.ready_sent = False
        self.close_code, self.close_reason, self._failed_locally = None, "", False

    # --- receiving ----------------------------------------------------------------------------

    def receive_binary(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Decode one binary message of audio.

        Returns:
            One :class:`AgentAudio` (client side) or :class:`UserAudio` (server side) event, or
            none if the frame, with the byte carried from the previous one, holds no sample.
        """
        if type(data) is bytes and not self._carry and not len(data) % 2 and _LITTLE_ENDIAN:
            # The usual frame: immutable, whole samples, nothing carried. A read-only view.
            self.bytes_received += len(data)
            if not data:
                return []
            samples: npt.NDArray[np.int16] | None = np.frombuffer(data, np.int16)
        else:
            samples = self._samples_of(data)
        if samples is None:
            return []
        self.samples_received += len(samples)
        return [AgentAudio(samples) if self._is_client else UserAudio(samples)]

    def _samples_of(self, data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16] | None:
        view = memoryview(data).cast("B")
        self.bytes_received += len(view)
        if self._carry:
            if not view:
                return None
            # The carried byte shifts every sample: a copy is unavoidable.
            joined = self._carry + view.tobytes()
            usable = len(joined) - len(joined) % 2
            self._carry = joined[usable:]
            aligned: bytes | memoryview = joined[:usable]
        else:
            usable = len(view) - len(view) % 2
            self._carry = view[usable:].tobytes()
            # The usual frame, immutable and whole, is viewed as it is.
            aligned = data if type(data) is bytes and usable == len(view) else view[:usable]
        if not aligned:
            return None
        # On little-endian machines astype(copy=False) is a no-op, so the samples are a view.
        samples = np.frombuffer(aligned, dtype=_PCM16_LE).astype(np.int16, copy=False)
        if samples.flags.writeable:  # a view of the caller's bytearray: protect it
            samples.flags.writeable = False
        return samples

    def receive_text(self, text: str) -> list[Any]:
        """Decode one text message; never raises.

        Returns:
            One event: the peer's ready message (:class:`AgentReady` or :class:`ClientReady`),
            another JSON object (:class:`ServerMessage` or :class:`ClientMessage`), or a
            :class:`MalformedMessage`.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError, TypeError) as exc:
            return [self._malformed(f"not JSON ({type(exc).__name__})", text)]
        if not isinstance(data, dict):
            return [self._malformed("JSON but not an object", text)]
        message_type = data.get("type")
        if message_type == (TYPE_AGENT_READY if self._is_client else TYPE_CLIENT_READY):
            self.peer_ready = True
            return [AgentReady() if self._is_client else ClientReady()]
        kind = message_type if isinstance(message_type, str) else None
        return [ServerMessage(kind, data) if self._is_client else ClientMessage(kind, data)]

    def _malformed(self, reason: str, text: object) -> MalformedMessage:
        self.malformed_messages += 1
        excerpt = text[:_EXCERPT_CHARS] if isinstance(text, str) else repr(text)[:_EXCERPT_CHARS]
        return MalformedMessage(reason, excerpt)

    # --- sending ------------------------------------------------------------------------------

    def encode_ready(self) -> str:
        """This side's ready message (client or agent ready); remembers that it was sent."""
        self.ready_sent = True
        return CLIENT_READY_MESSAGE if self._is_client else AGENT_READY_MESSAGE

    def encode_client_ready(self) -> str:
        """``status_client_ready`` (client side only)."""
        if not self._is_client:
            raise InvalidArgumentError("the server side sends status_agent_ready")
        return self.encode_ready()

    def encode_agent_ready(self) -> str:
        """``status_agent_ready`` (server side only)."""
        if self._is_client:
            raise InvalidArgumentError("the client side sends status_client_ready")
        return self.encode_ready()

    def encode_audio(self, samples: npt.NDArray[np.int16]) -> memoryview:
        """Return PCM16 little-endian bytes for mono ``samples`` at this side's send rate.

        Returns:
            A view of ``samples`` (no copy) on little-endian machines; do not modify
            ``samples`` until the message has been sent.

        Raises:
            InvalidArgumentError: If ``samples`` is not a 1-D int16 array (the caller's bug).
        """
        if not isinstance(samples, np.ndarray) or samples.dtype != _INT16 or samples.ndim != 1:
            raise InvalidArgumentError("encode_audio takes a 1-D int16 array")
        wire = np.ascontiguousarray(samples, dtype=_PCM16_LE)
        self.samples_sent += len(wire)
        self.bytes_sent += wire.nbytes
        return wire.data.cast("B")

    # --- closing ------------------------------------------------------------------------------

    def connection_closed(self, *, received: tuple[int, str] | None,
                          sent: tuple[int, str] | None) -> None:
        """Record how the connection ended, from the close frames received and sent.

        The peer's frame says it all when there is one. Without it, a frame this side sent for
        a protocol failure (1002, 1007, 1009) means the peer broke the protocol and never
        answered; anything else (a dropped connection, a keepalive timeout) is an abnormal
        closure, 1006: the network's fault.
        """
        self._failed_locally = False
        if received is not None:
            self.close_code, self.close_reason = received
        elif sent is not None and sent[0] in LOCAL_PROTOCOL_FAILURES:
            self.close_code, self.close_reason = sent
            self._failed_locally = True
        else:
            self.close_code, self.close_reason = ABNORMAL_CLOSURE, ""

    def closed_by_this_side(self, code: int, reason: str) -> None:
        """Record an end this side chose, whatever the connection saw (e.g. while reconnecting)."""
        self.close_code, self.close_reason, self._failed_locally = code, reason, False

    def close_error(self) -> AnunziError:
        """The exception that says why the session can no longer be used."""
        return error_for_close(self.close_code, self.close_reason,
                               failed_locally=self._failed_locally)
