"""Fuzz target ``protocol``: :class:`SessionProtocol`, both sides, fed what a peer can send.

The input chooses the side, then a sequence of operations: binary messages cut into frames at
fuzz-chosen points (empty, one byte, odd, even) and passed as ``bytes``, ``bytearray`` or
``memoryview`` (offset slices and multi-byte formats among them); text messages, either
arbitrary Unicode (lone surrogates included) or JSON-ish templates mutated; new connections;
close codes with reasons that carry a token; and this side's own sends.

Invariants: receiving never raises; the samples are the even-length prefix of the binary bytes
of each connection, little-endian int16, bit for bit, and the same when every connection's
bytes arrive in one frame; ``bytes_received``, ``samples_received``, ``pending_bytes`` and
``malformed_messages`` agree with a model; events are frozen, audio read-only, excerpts at
most 120 characters; a close error never shows the token of its reason.
"""

from __future__ import annotations

import array
import dataclasses
import json
from typing import Any

import numpy as np

from anunzi_fast.errors import AnunziError, InvalidArgumentError
from anunzi_fast.protocol import (
    _EXCERPT_CHARS,
    AgentAudio,
    AgentReady,
    ClientMessage,
    ClientReady,
    MalformedMessage,
    ServerMessage,
    SessionProtocol,
    Side,
    UserAudio,
)
from tests.fuzz._input import FuzzInput

MAX_FRAMES_PER_MESSAGE = 16
MAX_MESSAGE_BYTES = 4096
MAX_OPERATIONS = 64

_JSON_TEMPLATES = (
    '{"type": "status_agent_ready"}',
    '{"type": "status_client_ready"}',
    '{"type":"status_agent_ready","extra":[1,2,{"a":null}]}',
    '{"type": 7}',
    '{"type": null}',
    '{"type": ["status_agent_ready"]}',
    "{}",
    "[]",
    '"status_agent_ready"',
    "1e999",
    "NaN",
    "-Infinity",
    "null",
    "true",
    '{"type": "agent_transcript", "text": "h\\u00e9llo \\ud83d\\ude00"}',
    '{"type": "\\ud800"}',
    '{"type": "x", "type": "status_agent_ready"}',
    '{"type": "status_agent_ready"',
    '{"type": "status_agent_ready"} trailing',
    '\ufeff{"type": "status_agent_ready"}',
    ' {"type": "status_client_ready"}\n',
    '{"n": 1' + "0" * 5000 + "}",
)
# Secrets in close reasons: only what redact() removes (token= values of 6 chars or more).
_SECRET = "s3cr3tTOKENvalue"


def _codepoint(source: FuzzInput) -> str:
    return chr((source.u16() | (source.u8() << 16)) % 0x110000)


def _text(source: FuzzInput) -> str:
    kind = source.below(4)
    if kind == 0:  # arbitrary code points, lone surrogates included
        return "".join(_codepoint(source) for _ in range(source.size(300)))
    if kind == 1:  # arbitrary bytes decoded as a peer's UTF-8 would never be, but could be
        return source.take(source.size(300)).decode("utf-8", "surrogateescape")
    text = source.pick(_JSON_TEMPLATES)
    for _ in range(source.below(4) if kind == 2 else 0):
        text = _mutate(source, text)
    if kind == 3:
        depth = source.pick((1, 10, 500, 5000, 100_000))
        text = "[" * depth + text + "]" * (depth if source.flag() else 0)
    return text


def _mutate(source: FuzzInput, text: str) -> str:
    at = source.below(len(text) + 1)
    action = source.below(4)
    if action == 0:
        return text[:at] + _codepoint(source) + text[at:]
    if action == 1:
        return text[:at] + text[at + 1 + source.below(8) :]
    if action == 2:
        return text[:at] + source.pick('{}[]":,\\ 0e-') + text[at + 1 :]
    return text[:at] + text[at : at + source.below(32)] + text[at:]


def _container(source: FuzzInput, piece: bytes) -> bytes | bytearray | memoryview:
    kind = source.below(7)
    if kind == 0:
        return piece
    if kind == 1:
        return bytearray(piece)
    if kind == 2:
        return memoryview(piece)
    if kind == 3:
        return memoryview(bytearray(piece))
    if kind == 4:  # a slice of a larger buffer, at an offset
        return memoryview(b"\xaa" + piece + b"\x55")[1 : 1 + len(piece)]
    if kind == 5 and len(piece) % 2 == 0:  # a view whose items are not bytes
        return memoryview(array.array("h", piece))
    if kind == 6:
        return memoryview(np.frombuffer(piece, np.uint8))
    return piece


@dataclasses.dataclass
class _Model:
    """What the protocol must report, kept independently of it."""

    side: Side
    bytes_received: int = 0
    samples_received: int = 0
    malformed: int = 0
    peer_ready: bool = False
    segment: bytearray = dataclasses.field(default_factory=bytearray)
    segments: list[bytes] = dataclasses.field(default_factory=list)
    samples: list[np.ndarray] = dataclasses.field(default_factory=list)


def _check_frozen(event: object) -> None:
    field = dataclasses.fields(event)[0].name if dataclasses.fields(event) else "x"  # type: ignore[arg-type]
    try:
        setattr(event, field, None)
    except dataclasses.FrozenInstanceError:
        return
    raise AssertionError(f"{type(event).__name__} is not frozen")


def _receive_binary(protocol: SessionProtocol, model: _Model, source: FuzzInput) -> None:
    payload = source.take(source.size(MAX_MESSAGE_BYTES))
    audio_type = AgentAudio if model.side is Side.CLIENT else UserAudio
    at = 0
    for index in range(MAX_FRAMES_PER_MESSAGE):
        last = index == MAX_FRAMES_PER_MESSAGE - 1 or source.remaining == 0
        cut = source.pick((0, 1, 2, 3, 255, 256, -1, -2))
        if cut == 255:
            cut = source.u8() | 1
        elif cut == 256:
            cut = source.u8() & ~1
        elif cut < 0 or last:
            cut = len(payload) - at
        piece = payload[at : at + cut]
        at += len(piece)
        events = protocol.receive_binary(_container(source, piece))
        model.bytes_received += len(piece)
        model.segment += piece
        assert len(events) <= 1, events
        for event in events:
            assert type(event) is audio_type, event
            samples = event.samples
            assert samples.dtype == np.int16 and samples.ndim == 1 and len(samples) > 0
            assert not samples.flags.writeable
            assert event.sample_rate == protocol.receive_rate
            _check_frozen(event)
            model.samples_received += len(samples)
            model.samples.append(samples.copy())
        _check_counters(protocol, model)
        if at == len(payload) and (last or source.flag()):
            break


def _check_counters(protocol: SessionProtocol, model: _Model) -> None:
    assert protocol.bytes_received == model.bytes_received
    assert protocol.samples_received == model.samples_received
    assert protocol.pending_bytes == len(model.segment) % 2
    assert protocol.malformed_messages == model.malformed
    assert protocol.peer_ready == model.peer_ready
    held = sum(len(s) // 2 for s in model.segments) + len(model.segment) // 2
    assert model.samples_received == held, (model.samples_received, held)


def _expected_event(side: Side, text: str) -> type:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return MalformedMessage
    if not isinstance(data, dict):
        return MalformedMessage
    ready = "status_agent_ready" if side is Side.CLIENT else "status_client_ready"
    if data.get("type") == ready:
        return AgentReady if side is Side.CLIENT else ClientReady
    return ServerMessage if side is Side.CLIENT else ClientMessage


def _receive_text(protocol: SessionProtocol, model: _Model, source: FuzzInput) -> None:
    text = _text(source)
    expected = _expected_event(model.side, text)
    events = protocol.receive_text(text)
    assert len(events) == 1, events
    (event,) = events
    assert type(event) is expected, (event, expected)
    _check_frozen(event)
    if isinstance(event, MalformedMessage):
        model.malformed += 1
        assert isinstance(event.reason, str) and event.reason
        assert isinstance(event.excerpt, str) and len(event.excerpt) <= _EXCERPT_CHARS
        assert text.startswith(event.excerpt)
    elif isinstance(event, (AgentReady, ClientReady)):
        model.peer_ready = True
    else:
        assert isinstance(event, (ServerMessage, ClientMessage))
        assert isinstance(event.data, dict)
        kind = event.data.get("type")
        assert event.type == (kind if isinstance(kind, str) else None)
    _check_counters(protocol, model)


def _send(protocol: SessionProtocol, model: _Model, source: FuzzInput) -> None:
    if source.flag():
        chunk = source.take(source.size(512))
        samples = np.frombuffer(chunk[: len(chunk) & ~1], "<i2").astype(np.int16)
        before_samples, before_bytes = protocol.samples_sent, protocol.bytes_sent
        wire = protocol.encode_audio(samples)
        assert bytes(wire) == samples.astype("<i2").tobytes()
        assert protocol.samples_sent == before_samples + len(samples)
        assert protocol.bytes_sent == before_bytes + 2 * len(samples)
        return
    own = protocol.encode_client_ready if source.flag() else protocol.encode_agent_ready
    try:
        message = own()
    except InvalidArgumentError:
        assert (own == protocol.encode_agent_ready) == (model.side is Side.CLIENT)
        return
    assert json.loads(message)["type"] in ("status_client_ready", "status_agent_ready")
    assert protocol.ready_sent


def _close(protocol: SessionProtocol, source: FuzzInput) -> None:
    def frame() -> tuple[int, str] | None:
        if source.flag():
            return None
        reason = source.take(source.size(64)).decode("utf-8", "replace")
        if source.flag():
            reason += f" token={_SECRET}&x"
        return (source.pick((1000, 1001, 1002, 1006, 1007, 1009, 1011, 4000)), reason)

    if source.below(4) == 0:
        protocol.closed_by_this_side(*(frame() or (1000, "")))
    else:
        protocol.connection_closed(received=frame(), sent=frame())
    error = protocol.close_error()
    assert isinstance(error, AnunziError)
    assert _SECRET not in str(error) and _SECRET not in repr(error)


def _new_connection(protocol: SessionProtocol, whole: SessionProtocol, model: _Model) -> None:
    _feed_whole(whole, model)
    protocol.new_connection()
    model.segments.append(bytes(model.segment))
    model.segment.clear()
    model.peer_ready = False
    assert protocol.pending_bytes == 0 and not protocol.peer_ready and not protocol.ready_sent


def _feed_whole(whole: SessionProtocol, model: _Model) -> None:
    whole.receive_binary(bytes(model.segment))
    whole.new_connection()


def _samples_of(events: list[Any]) -> np.ndarray:
    return np.concatenate(events) if events else np.zeros(0, np.int16)


def fuzz_one(data: bytes) -> None:
    """Run one input; raises AssertionError (or whatever escaped) if an invariant broke."""
    source = FuzzInput(data)
    side = Side.SERVER if source.flag() else Side.CLIENT
    protocol, whole = SessionProtocol(side), SessionProtocol(side)
    model = _Model(side)
    whole_samples: list[np.ndarray] = []
    original_receive = whole.receive_binary

    def receive_whole(frame: bytes) -> list[Any]:
        events = original_receive(frame)
        whole_samples.extend(event.samples for event in events)
        return events

    whole.receive_binary = receive_whole  # type: ignore[method-assign]
    for _ in range(MAX_OPERATIONS):
        if source.remaining == 0:
            break
        operation = source.below(16)
        if operation < 8:
            _receive_binary(protocol, model, source)
        elif operation < 12:
            _receive_text(protocol, model, source)
        elif operation < 13:
            _new_connection(protocol, whole, model)
        elif operation < 14:
            _send(protocol, model, source)
        else:
            _close(protocol, source)
    model.segments.append(bytes(model.segment))
    _feed_whole(whole, model)
    expected = b"".join(segment[: len(segment) - len(segment) % 2] for segment in model.segments)
    reference = np.frombuffer(expected, "<i2").astype(np.int16)
    split = _samples_of(model.samples)
    assert np.array_equal(split, reference), "split frames decode to other samples"
    assert np.array_equal(_samples_of(whole_samples), reference), "whole frames differ"
    assert whole.bytes_received == protocol.bytes_received
    assert whole.samples_received == protocol.samples_received
