"""Audio frames written past websockets' send: what a server parses, and when not to."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.streams import StreamReader
from websockets.uri import parse_uri as urlsplit_uri

from anunzi_fast import _frames
from anunzi_fast._frames import write_binary


class _Transport:
    def __init__(self, closing: bool = False) -> None:
        self.written: list[bytes] = []
        self.closing = closing

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing


def _connection(**changes: Any) -> Any:
    protocol = SimpleNamespace(state=changes.pop("state", State.OPEN),
                               extensions=changes.pop("extensions", []),
                               writes=changes.pop("writes", []),
                               expect_continuation_frame=changes.pop("fragmented", False))
    fields = {"protocol": protocol, "paused": False,
              "transport": _Transport(changes.pop("closing", False))}
    fields.update(changes)
    return SimpleNamespace(**fields)


def _parse(data: bytes) -> Frame:
    """The frame as a server parses it (websockets' own parser, unmasking included)."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=True, max_size=None, extensions=[])
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        assert not reader.buffer  # nothing left over
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("samples", [0, 1, 62, 63, 960, 32767, 32768, 40000])
def test_a_server_parses_the_frame_bit_exactly(samples: int) -> None:
    # Sizes on each side of the 7-bit, 16-bit and 64-bit length encodings.
    pcm = np.random.default_rng(samples).integers(-32768, 32768, samples).astype(np.int16)
    connection = _connection()
    assert write_binary(connection, memoryview(pcm))
    (data,) = connection.transport.written
    frame = _parse(data)
    assert frame.opcode is Opcode.BINARY and frame.fin
    assert bytes(frame.data) == pcm.tobytes()


def test_every_frame_has_its_own_mask_and_the_pool_refills() -> None:
    connection = _connection()
    frames = 3 * _frames._MASK_POOL_BYTES // 4  # three pools
    payload = memoryview(np.zeros(8, np.int16))
    for _ in range(frames):
        assert write_binary(connection, payload)
    masks = [data[2:6] for data in connection.transport.written]
    assert len(set(masks)) > 0.99 * frames  # 32-bit random masks: a few repeats at most
    assert all(_parse(data).data == bytes(16) for data in connection.transport.written[-3:])


@pytest.mark.parametrize(
    "changes",
    [{"state": State.CLOSING}, {"state": State.CLOSED}, {"extensions": ["permessage-deflate"]},
     {"writes": [b"pong"]}, {"fragmented": True}, {"paused": True},
     {"closing": True}, {"payload": memoryview(np.zeros(8, np.int16))[::2]}],
    ids=["closing", "closed", "extension", "queued-writes", "fragmented-send", "paused",
         "transport-closing", "strided-payload"],
)
def test_websockets_sends_whenever_it_has_more_to_do(changes: dict[str, Any]) -> None:
    # Its send then waits for the close, drains, flushes what is queued first or raises
    # ConnectionClosed: nothing may be written past it.
    payload = changes.pop("payload", memoryview(np.zeros(4, np.int16)))
    connection = _connection(**changes)
    assert not write_binary(connection, payload)
    assert connection.transport.written == []


def test_an_unknown_websockets_without_the_attributes_is_left_to_itself() -> None:
    connection = _connection()
    del connection.paused
    assert not write_binary(connection, memoryview(np.zeros(4, np.int16)))
    for attribute in ("writes", "expect_continuation_frame"):
        without = _connection()
        delattr(without.protocol, attribute)
        assert not write_binary(without, memoryview(np.zeros(4, np.int16)))


async def test_the_attributes_it_reads_exist_on_this_websockets() -> None:
    # The fakes above name what a live ClientConnection has; if websockets renames one, the
    # fast path silently turns off: say so here instead.
    from websockets.asyncio.client import ClientConnection
    from websockets.client import ClientProtocol

    protocol = ClientProtocol(urlsplit_uri("ws://127.0.0.1/"))
    assert protocol.writes == [] and protocol.expect_continuation_frame is False
    connection = ClientConnection(protocol)  # needs a running loop, never connected
    assert connection.paused is False


def test_masks_are_per_thread_and_never_short() -> None:
    masks: list[bytes] = []

    def draw() -> None:
        masks.extend(_frames._masks.next() for _ in range(3000))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(masks) == 12000 and all(len(mask) == 4 for mask in masks)
