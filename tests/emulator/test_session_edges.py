"""Session edge cases, on both emulator servers: fragmented and oversized messages, clients
that stop reading, bad text and frames, many paced speakers at once, a client that leaves
in the middle, stopping, and secrets in logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import Frame, Opcode

from anunzi_fast.emulator import DEFAULT_API_KEY, EmulatorBase, default_greeting
from anunzi_fast.errors import InvalidArgumentError

TEST_TIMEOUT = 15.0
READY = json.dumps({"type": "status_client_ready"})


def small_receive_buffer(port: int) -> socket.socket:
    """A client socket whose kernel buffer holds little: a reader that stops is felt soon."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


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
        async with connect(emulator.issue_session_url(), compression=None, max_queue=1,
                           sock=small_receive_buffer(emulator.port)) as ws:
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


async def test_cancelled_serve_forever_then_stop_closes_sessions_with_1001(
    emulator_class: type[EmulatorBase],
) -> None:
    emulator = emulator_class()

    async def serve() -> None:
        try:
            await emulator.serve_forever()
        finally:
            await emulator.stop()

    async with asyncio.timeout(TEST_TIMEOUT):
        serving = asyncio.create_task(serve())
        while True:  # serve_forever starts it
            with contextlib.suppress(InvalidArgumentError):
                url = emulator.issue_session_url()
                break
            await asyncio.sleep(0.01)
        async with connect(url, compression=None) as ws:
            await ws.recv()
            started = time.monotonic()
            serving.cancel()
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            assert ws.close_code == 1001
            assert time.monotonic() - started < 2.0
        await asyncio.gather(serving, return_exceptions=True)


async def test_an_empty_close_frame_is_answered_without_an_invalid_code(
    emulator_class: type[EmulatorBase],
) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        emulator_class() as emulator,
        connect(emulator.issue_session_url(), compression=None) as ws,
    ):
        await ws.recv()
        ws.transport.write(Frame(Opcode.CLOSE, b"").serialize(mask=True, extensions=[]))
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
        # No code (1005) or 1000; code 0 would be a protocol error (1002) here.
        assert isinstance(info.value, ConnectionClosedOK), info.value


@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_a_fragmented_message_over_1_mib_is_refused_with_1009(
    emulator_class: type[EmulatorBase], kind: str
) -> None:
    piece = b"x" * 300_000 if kind == "text" else bytes(300_000)
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class() as emulator:
        async with connect(emulator.issue_session_url(), compression=None) as ws:
            await ws.recv()
            pieces = [piece.decode()] * 8 if kind == "text" else [piece] * 8
            with contextlib.suppress(ConnectionClosed):
                await ws.send(pieces)  # type: ignore[arg-type]
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            assert ws.close_code == 1009
        await emulator.sessions[0].closed.wait()
        assert emulator.sessions[0].text_messages == []


async def test_reserved_bits_without_an_extension_are_refused_with_1002(
    emulator_class: type[EmulatorBase],
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class() as emulator:
        async with connect(emulator.issue_session_url(), compression=None) as ws:
            await ws.recv()
            # FIN + RSV1 + binary, masked, 960 zero bytes (websockets will not build it).
            mask = b"\x01\x02\x03\x04"
            ws.transport.write(b"\xc2\xfe" + (960).to_bytes(2, "big") + mask + mask * 240)
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            assert ws.close_code == 1002
        await emulator.sessions[0].closed.wait()
        assert emulator.sessions[0].bytes_received == 0


async def test_neither_token_nor_key_reaches_the_logs_at_any_level(
    emulator_class: type[EmulatorBase], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)  # picows' own debug level (9) included
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="fast") as emulator:
        url = emulator.issue_session_url()
        async with connect(url, compression=None) as ws:
            await ws.recv()
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{emulator.base_url}/websocket/token/echo",
                                      headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"})
        issued = response.json()["sessionURL"].split("token=")[1]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged  # something was logged: the check below can fail
    for secret in (url.split("token=")[1], issued, DEFAULT_API_KEY):
        assert secret not in logged


async def test_a_light_session_whose_client_stops_reading_ends_after_its_close() -> None:
    # The light server's own wait (5 s); websockets' server takes its close_timeout (~20 s).
    pytest.importorskip("picows", reason="the light emulator needs the 'load' extra")
    from anunzi_fast.emulator import LightEmulator

    greeting = (np.sin(np.arange(4_000_000) / 9) * 9000).astype(np.int16)
    async with asyncio.timeout(TEST_TIMEOUT), LightEmulator(
        pace="fast", greeting=greeting, record_audio=False
    ) as emulator:
        ws = await connect(emulator.issue_session_url(), compression=None, max_queue=1,
                           sock=small_receive_buffer(emulator.port))
        await ws.recv()
        await ws.send(READY)
        await asyncio.sleep(0.3)  # the server's buffers fill; the client reads nothing more
        ws.transport.write(Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=True, extensions=[]))
        ws.transport.pause_reading()
        record = emulator.sessions[0]
        await record.closed.wait()  # within the close wait (5 s), not never
        ws.transport.abort()


async def test_a_second_stop_waits_for_the_first(emulator_class: type[EmulatorBase]) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        emulator = emulator_class()
        await emulator.start()
        async with connect(emulator.issue_session_url(), compression=None) as ws:
            await ws.recv()
            first = asyncio.create_task(emulator.stop())
            await asyncio.sleep(0)  # the first is under way
            await emulator.stop()
            assert emulator.sessions[0].closed.is_set()  # not returned before the first ended
            await first
            with pytest.raises(InvalidArgumentError):
                emulator.issue_session_url()  # stopped: no port any more
        await emulator.stop()  # and once stopped, at once
