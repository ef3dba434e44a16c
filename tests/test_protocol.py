"""The sans-I/O protocol: exact decoding, alignment across odd frames, garbage never raises."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from anunzi_fast.errors import (
    ConnectionLostError,
    InvalidArgumentError,
    RemoteProtocolError,
    ServerError,
    SessionClosedError,
)
from anunzi_fast.protocol import (
    AgentAudio,
    AgentReady,
    ClientMessage,
    ClientReady,
    Event,
    MalformedMessage,
    ServerMessage,
    SessionProtocol,
    Side,
    UserAudio,
)


def audio_of(events: list[Event]) -> np.ndarray:
    chunks = [event.samples for event in events if isinstance(event, (AgentAudio, UserAudio))]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def test_binary_frame_decodes_little_endian_pcm16_as_a_view() -> None:
    protocol = SessionProtocol()
    frame = bytes([0x01, 0x00, 0xFF, 0x7F, 0x00, 0x80, 0xFF, 0xFF])
    (event,) = protocol.receive_binary(frame)
    assert isinstance(event, AgentAudio)
    assert event.samples.dtype == np.int16
    assert event.samples.tolist() == [1, 32767, -32768, -1]
    assert event.sample_rate == 16_000
    assert event.duration == 4 / 16_000
    assert np.shares_memory(event.samples, np.frombuffer(frame, np.uint8))
    assert not event.samples.flags.writeable
    assert protocol.samples_received == 4


def test_bytearray_frames_are_not_aliased_writably() -> None:
    frame = bytearray(b"\x01\x00\x02\x00")
    (event,) = SessionProtocol().receive_binary(frame)
    assert isinstance(event, AgentAudio)
    with pytest.raises(ValueError):
        event.samples[0] = 5


@pytest.mark.parametrize("sizes", [[3, 3], [1, 1, 1, 1], [5, 2, 1, 7, 1], [1, 2, 3, 4, 5, 6, 9]])
def test_odd_frames_keep_their_last_byte(sizes: list[int]) -> None:
    stream = np.arange(-600, 600, 37, dtype="<i2").tobytes()
    total = sum(sizes)
    stream = (stream * (total // len(stream) + 1))[:total]
    protocol = SessionProtocol()
    events: list[Event] = []
    offset = 0
    for size in sizes:
        events += protocol.receive_binary(stream[offset : offset + size])
        offset += size
    expected = np.frombuffer(stream[: total - total % 2], "<i2")
    np.testing.assert_array_equal(audio_of(events), expected)
    assert protocol.pending_bytes == total % 2


def test_byte_by_byte_equals_whole() -> None:
    stream = np.random.default_rng(1).integers(-32768, 32767, 501, dtype=np.int16).tobytes()
    whole = audio_of(SessionProtocol().receive_binary(stream))
    protocol = SessionProtocol()
    pieces: list[Event] = []
    for index in range(len(stream)):
        pieces += protocol.receive_binary(stream[index : index + 1])
    np.testing.assert_array_equal(audio_of(pieces), whole)
    assert protocol.samples_received == len(whole) == 501


def test_empty_frame_gives_no_event() -> None:
    assert SessionProtocol().receive_binary(b"") == []


def test_an_empty_frame_after_an_odd_one_keeps_the_carried_byte() -> None:
    protocol = SessionProtocol()
    assert protocol.receive_binary(b"\x01") == []
    assert protocol.receive_binary(b"") == []  # raised ValueError, losing the session
    assert protocol.pending_bytes == 1
    (event,) = protocol.receive_binary(b"\x02")
    assert event.samples.tolist() == [0x0201]


FRAME_TYPES = (bytes, bytearray, lambda data: memoryview(bytearray(data)))


@pytest.mark.parametrize("side", list(Side))
@pytest.mark.parametrize("seed", range(40))
def test_any_sequence_of_frame_sizes_parses_bit_exactly(side: Side, seed: int) -> None:
    # Sizes 0, 1, odd and even in any order, as bytes, bytearray or memoryview.
    rng = random.Random(seed)
    sizes = [rng.choice([0, 0, 1, 1, 2, 3, rng.randrange(4, 64), rng.randrange(64, 5000)])
             for _ in range(rng.randrange(1, 60))]
    stream = np.random.default_rng(seed).integers(0, 256, sum(sizes), dtype=np.uint8).tobytes()
    protocol = SessionProtocol(side)
    events: list[Event] = []
    offset = 0
    for size in sizes:
        frame = rng.choice(FRAME_TYPES)(stream[offset : offset + size])
        events += protocol.receive_binary(frame)
        offset += size
    assert all(len(event.samples) for event in events)  # never an empty event
    usable = len(stream) - len(stream) % 2
    np.testing.assert_array_equal(audio_of(events), np.frombuffer(stream[:usable], "<i2"))
    assert protocol.pending_bytes == len(stream) % 2
    assert protocol.bytes_received == len(stream)
    assert protocol.samples_received == usable // 2


def test_agent_ready_and_other_messages() -> None:
    protocol = SessionProtocol()
    assert protocol.receive_text('{"type": "status_agent_ready"}') == [AgentReady()]
    assert protocol.agent_ready
    (other,) = protocol.receive_text('{"type": "transcript", "text": "hi"}')
    assert other == ServerMessage("transcript", {"type": "transcript", "text": "hi"})
    (untyped,) = protocol.receive_text('{"type": 3}')
    assert isinstance(untyped, ServerMessage) and untyped.type is None


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[1, 2]", '"str"', "42", "null", "{", "[" * 100_000, "9" * 10_000,
     "\ud800", '{"type": "status_agent_ready"', "\x00\x01"],
)
def test_malformed_text_is_an_event_not_an_exception(text: str) -> None:
    protocol = SessionProtocol()
    (event,) = protocol.receive_text(text)
    assert isinstance(event, MalformedMessage)
    assert len(event.excerpt) <= 120
    assert protocol.malformed_messages == 1


def test_random_garbage_whole_and_char_by_char_never_raises() -> None:
    rng = random.Random(7)
    alphabet = '{}[]":,.0123456789-+eE truefalsnul\\u\x00\ud800\n'
    for _ in range(200):
        garbage = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        protocol = SessionProtocol()
        events = protocol.receive_text(garbage)
        for char in garbage:
            events += protocol.receive_text(char)
        raw = garbage.encode("utf-8", "surrogatepass")
        events += protocol.receive_binary(raw)
        for index in range(len(raw)):
            events += protocol.receive_binary(raw[index : index + 1])
        assert all(isinstance(e, (AgentAudio, AgentReady, ServerMessage, MalformedMessage))
                   for e in events)


def test_client_ready_encoding() -> None:
    protocol = SessionProtocol()
    assert json.loads(protocol.encode_client_ready()) == {"type": "status_client_ready"}
    assert protocol.client_ready_sent


def test_encode_audio_exact_bytes_without_copy() -> None:
    protocol = SessionProtocol()
    samples = np.array([1, -1, 32767, -32768], np.int16)
    wire = protocol.encode_audio(samples)
    assert bytes(wire) == b"\x01\x00\xff\xff\xff\x7f\x00\x80"
    assert np.shares_memory(np.frombuffer(wire, np.uint8), samples)
    assert protocol.samples_sent == 4
    strided = np.arange(8, dtype=np.int16)[::2]
    assert bytes(protocol.encode_audio(strided)) == np.array([0, 2, 4, 6], "<i2").tobytes()


@pytest.mark.parametrize("bad", [np.zeros(4, np.float32), np.zeros((2, 2), np.int16), b"\x00\x00"])
def test_encode_audio_rejects_wrong_input(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        SessionProtocol().encode_audio(bad)  # type: ignore[arg-type]


def test_events_are_frozen() -> None:
    event = AgentReady()
    with pytest.raises(AttributeError):
        event.x = 1  # type: ignore[attr-defined]
    message = ServerMessage("a", {})
    with pytest.raises(AttributeError):
        message.type = "b"  # type: ignore[misc]


def test_the_server_side_mirrors_the_client_side() -> None:
    server = SessionProtocol(Side.SERVER)
    assert server.receive_rate == 48_000
    assert server.encode_agent_ready() == '{"type": "status_agent_ready"}'
    assert server.agent_ready and not server.client_ready_sent
    (ready,) = server.receive_text('{"type": "status_client_ready"}')
    assert isinstance(ready, ClientReady) and server.client_ready_sent
    # The other side's ready message is just another message here.
    (other,) = server.receive_text('{"type": "status_agent_ready"}')
    assert other == ClientMessage("status_agent_ready", {"type": "status_agent_ready"})
    (audio,) = server.receive_binary(b"\x01\x00\x02\x00")
    assert isinstance(audio, UserAudio) and audio.sample_rate == 48_000
    assert bytes(server.encode_audio(np.array([1, -1], np.int16))) == b"\x01\x00\xff\xff"
    assert server.samples_sent == 2 and server.bytes_sent == 4
    with pytest.raises(InvalidArgumentError):
        server.encode_client_ready()
    with pytest.raises(InvalidArgumentError):
        SessionProtocol().encode_agent_ready()


def test_a_client_and_a_server_understand_each_other() -> None:
    client, server = SessionProtocol(Side.CLIENT), SessionProtocol(Side.SERVER)
    assert server.receive_text(client.encode_ready()) == [ClientReady()]
    assert client.receive_text(server.encode_ready()) == [AgentReady()]
    speech = np.arange(-100, 100, dtype=np.int16)
    (heard,) = server.receive_binary(bytes(client.encode_audio(speech)))
    np.testing.assert_array_equal(heard.samples, speech)
    (reply,) = client.receive_binary(bytes(server.encode_audio(speech[::2].copy())))
    np.testing.assert_array_equal(reply.samples, speech[::2])


def test_counters_survive_a_new_connection_and_framing_does_not() -> None:
    protocol = SessionProtocol()
    protocol.receive_binary(b"\x01\x00\x02")
    protocol.receive_text('{"type": "status_agent_ready"}')
    protocol.encode_ready()
    protocol.new_connection()
    assert protocol.pending_bytes == 0 and not protocol.agent_ready
    assert not protocol.client_ready_sent
    assert protocol.samples_received == 1 and protocol.bytes_received == 3


@pytest.mark.parametrize(
    ("received", "sent", "code", "error"),
    [((1000, "bye"), (1000, ""), 1000, SessionClosedError),
     ((1001, ""), None, 1001, SessionClosedError),
     ((1011, "agent failure"), None, 1011, ServerError),
     (None, (1009, "too big"), 1009, RemoteProtocolError),  # we failed it: the peer's fault
     (None, (1011, "keepalive ping timeout"), 1006, ConnectionLostError),
     (None, None, 1006, ConnectionLostError)],
)
def test_how_a_connection_ended(received: tuple[int, str] | None, sent: tuple[int, str] | None,
                                code: int, error: type[Exception]) -> None:
    protocol = SessionProtocol()
    protocol.connection_closed(received=received, sent=sent)
    assert protocol.close_code == code
    assert type(protocol.close_error()) is error
