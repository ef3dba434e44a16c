"""Session edge cases, on both emulator servers: fragmented messages, clients that stop
reading, bad text, many paced speakers at once, a client that leaves in the middle."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from anunzi_fast.emulator import EmulatorBase, default_greeting

TEST_TIMEOUT = 15.0
READY = json.dumps({"type": "status_client_ready"})


async def test_fragmented_text_and_audio_are_assembled(
    emulator_class: type[EmulatorBase],
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="fast") as emulator:
        async with connect(emulator.issue_session_url(), compression=None) as ws:
            assert json.loads(await ws.recv()) == {"type": "status_agent_ready"}
            audio = np.arange(-500, 501, dtype=np.int16).tobytes()
            # Fragments of odd sizes: samples split across frames must still add up.
            await ws.send([audio[:1], audio[1:1001], audio[1001:]])
            await ws.send(['{"type": ', '"status_client', '_ready"}'])
            greeting = bytearray()
            while len(greeting) < len(default_greeting()) * 2:
                message = await ws.recv()
                assert isinstance(message, bytes)
                greeting += message
        record = emulator.sessions[0]
        await record.closed.wait()
        assert bytes(record.received) == audio
        assert record.protocol.samples_received == len(audio) // 2
        assert record.client_ready and record.text_messages == [READY]
        assert bytes(greeting) == default_greeting().tobytes()


async def test_invalid_utf8_text_closes_with_1007(emulator_class: type[EmulatorBase]) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class() as emulator:
        async with connect(emulator.issue_session_url(), compression=None) as ws:
            await ws.recv()
            # websockets would not send it: the frame's bytes go to the socket directly.
            bad = Frame(Opcode.TEXT, b"\xff\xfe not utf-8").serialize(mask=True, extensions=[])
            ws.transport.write(bad)
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1007
        await emulator.sessions[0].closed.wait()
        assert emulator.sessions[0].text_messages == []


async def test_a_client_that_stops_reading_gets_everything_once_it_reads_again(
    emulator_class: type[EmulatorBase],
) -> None:
    # 8 MB of greeting, sent as fast as the socket takes it: more than the kernel's buffers
    # (the client's kept small) and the server's write buffer hold, so the server must wait.
    greeting = (np.sin(np.arange(4_000_000) / 9) * 9000).astype(np.int16)
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(
        pace="fast", greeting=greeting, record_audio=False
    ) as emulator:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
        sock.connect(("127.0.0.1", emulator.port))
        sock.setblocking(False)
        async with connect(emulator.issue_session_url(), compression=None, max_queue=1,
                           sock=sock) as ws:
            await ws.recv()
            await ws.send(READY)
            record = emulator.sessions[0]
            sent_before = -1
            while record.protocol.samples_sent != sent_before:  # until the server waits
                sent_before = record.protocol.samples_sent
                await asyncio.sleep(0.2)
            assert 0 < record.protocol.samples_sent < len(greeting)
            received = 0
            while received < len(greeting) * 2:
                message = await ws.recv()
                assert isinstance(message, bytes)
                received += len(message)
        assert received == len(greeting) * 2
        assert record.protocol.samples_sent == len(greeting)


async def test_many_sessions_are_each_paced_in_real_time(
    emulator_class: type[EmulatorBase],
) -> None:
    async def one(emulator: EmulatorBase) -> float:
        async with connect(emulator.issue_session_url(), compression=None) as ws:
            await ws.recv()
            await ws.send(READY)
            started, received = time.monotonic(), 0
            while received < len(default_greeting()) * 2:
                message = await ws.recv()
                assert isinstance(message, bytes)
                received += len(message)
            return time.monotonic() - started

    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="realtime") as emulator:
        durations = await asyncio.gather(*(one(emulator) for _ in range(20)))
    greeting_seconds = len(default_greeting()) / 16_000
    # The last frame leaves one frame before the end of the audio it carries.
    assert min(durations) >= greeting_seconds - 0.03, durations
    assert max(durations) < greeting_seconds + 1.0, durations


async def test_a_client_that_vanishes_mid_answer_is_forgotten(
    emulator_class: type[EmulatorBase],
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="realtime") as emulator:
        ws = await connect(emulator.issue_session_url(), compression=None)
        await ws.recv()
        await ws.send(READY)
        await ws.recv()  # the greeting has started
        ws.transport.abort()
        record = emulator.sessions[0]
        await record.closed.wait()
        assert record.close_code == 1006
        sent = record.protocol.samples_sent
        await asyncio.sleep(0.3)  # nothing more is sent to a session that is gone
        assert record.protocol.samples_sent == sent < len(default_greeting())
        assert not getattr(emulator, "_live", ())
