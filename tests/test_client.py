"""The session client end to end against the emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from anunzi_fast.auth import RetryPolicy
from anunzi_fast.client import CLOSE_MARGIN, Call, CallEvent, CallState, Reconnected, connect
from anunzi_fast.emulator import DEFAULT_API_KEY, Emulator, Fault, SessionRecord, default_greeting
from anunzi_fast.errors import (
    AgentNotReadyError,
    AnunziError,
    ConnectionLostError,
    CredentialsError,
    InvalidArgumentError,
    NetworkError,
    ServerError,
    SessionClosedError,
    SessionTokenRejectedError,
)
from anunzi_fast.protocol import AgentAudio, AgentReady, MalformedMessage, ServerMessage
from tests.conftest import browser_pcm16, tone

TEST_TIMEOUT = 15.0
FAST_RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, deadline=5)
GREETING_SAMPLES = len(default_greeting())


def speech_48k(seconds: float, frequency: float = 300.0, level: float = 0.4) -> np.ndarray:
    return tone(seconds, frequency=frequency, level=level)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(pace="fast", slow_ready_delay=0.2) as running:
        yield running


def open_call(emulator: Emulator, assistant_id: str = "echo", **options: object) -> Call:
    return connect(assistant_id=assistant_id, api_key=DEFAULT_API_KEY,
                   base_url=emulator.base_url, retry=FAST_RETRY, **options)  # type: ignore[arg-type]


async def collect_audio(call: Call, samples: int) -> tuple[np.ndarray, list[CallEvent]]:
    """Iterate events until ``samples`` agent samples arrived."""
    chunks: list[np.ndarray] = []
    events: list[CallEvent] = []
    total = 0
    async for event in call:
        events.append(event)
        if isinstance(event, AgentAudio):
            chunks.append(event.samples)
            total += len(event.samples)
            if total >= samples:
                break
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16), events


async def finished(record: SessionRecord) -> SessionRecord:
    await record.closed.wait()
    return record


async def test_nothing_lost_either_way(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        rng = np.random.default_rng(3)
        speech = browser_pcm16(np.concatenate(
            (speech_48k(0.4), np.zeros(48_000, np.float32), speech_48k(0.3, 600),
             np.zeros(48_000, np.float32))))
        async with open_call(emulator) as call:
            start = 0
            while start < len(speech):  # ragged chunks, as a real capture loop would give
                size = int(rng.integers(1, 20_000))
                await call.send_audio(speech[start : start + size], 48_000)
                start += size
            expected_reply = GREETING_SAMPLES + (19_200 + 14_400) // 3
            received, events = await collect_audio(call, expected_reply)
            assert isinstance(events[0], AgentReady)
        record = await finished(emulator.sessions[0])
        assert bytes(record.received) == speech.tobytes()
        assert record.client_ready_after_bytes == 0  # client_ready went out before any audio
        assert record.text_messages == ['{"type": "status_client_ready"}']
        assert received.tobytes() == bytes(record.sent)
        assert call.metrics.samples_sent == len(speech)
        assert call.metrics.samples_received == len(received)
        jitter = call.jitter_buffer
        assert jitter is not None
        stats = jitter.stats
        assert stats.samples_in == len(received)
        assert stats.samples_in == stats.samples_out + stats.dropped + stats.buffered
        assert call.metrics.underruns == stats.underruns
        played = np.zeros(stats.buffered, np.int16)
        assert jitter.read_into(played) == len(played)
        np.testing.assert_array_equal(played, received[len(received) - len(played):])
        assert call.close_code == 1000


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
async def test_float_input_is_converted_like_the_browser(emulator: Emulator, dtype: type) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        samples = np.concatenate((np.linspace(-1.5, 1.5, 9_001), [np.nan, -0.0, 1e-9, -1e-9]))
        samples = samples.astype(dtype)
        async with open_call(emulator) as call:
            assert await call.send_audio(samples, 48_000) == len(samples)
        record = await finished(emulator.sessions[0])
        assert bytes(record.received) == browser_pcm16(samples).tobytes()


async def test_stereo_is_downmixed(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        left = np.full(960, 0.5, np.float32)
        stereo_float = np.stack((left, np.zeros(960, np.float32)), axis=1)
        stereo_int = np.stack((np.full(960, 1000, np.int16), np.full(960, 2001, np.int16)), axis=1)
        async with open_call(emulator) as call:
            await call.send_audio(stereo_float, 48_000)
            await call.send_audio(stereo_int, 48_000)
            await call.send_audio(np.full((5, 1), 7, np.int16), 48_000)
        record = await finished(emulator.sessions[0])
        received = np.frombuffer(bytes(record.received), "<i2")
        assert received[:960].tolist() == [int(0.25 * 32767)] * 960
        assert received[960:1920].tolist() == [1500] * 960  # rint(1500.5) rounds to even
        assert received[1920:].tolist() == [7] * 5


@pytest.mark.parametrize(
    ("samples", "rate"),
    [
        (np.zeros(10, np.int32), 48_000),
        (np.zeros((2, 2, 2), np.float32), 48_000),
        (np.zeros((10, 0), np.float32), 48_000),
        (np.zeros((2, 4800), np.float32), 48_000),  # (channels, frames): the wrong way round
        (np.zeros(10, np.float32), 0),
        (np.zeros(10, np.float32), 44_100.5),
        (np.zeros(10, np.float32), True),
        (["a"], 48_000),
    ],
)
async def test_bad_audio_is_rejected_before_sending(
    emulator: Emulator, samples: object, rate: object
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with open_call(emulator) as call:
            with pytest.raises(InvalidArgumentError):
                await call.send_audio(samples, rate)  # type: ignore[arg-type]
        record = await finished(emulator.sessions[0])
        assert record.bytes_received == 0 and not record.client_ready


async def test_explicit_client_ready_is_sent_once(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with open_call(emulator) as call:
            await call.send_client_ready()
            await call.send_client_ready()
            await call.send_audio(np.zeros(480, np.int16), 48_000)
            greeting, _ = await collect_audio(call, GREETING_SAMPLES)
        record = await finished(emulator.sessions[0])
        assert len(record.text_messages) == 1
        assert greeting.tobytes() == default_greeting().tobytes()


async def test_metrics_and_turn_latency() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Emulator(pace="realtime") as emulator:
        async with open_call(emulator) as call:
            await call.send_client_ready()
            await collect_audio(call, GREETING_SAMPLES)  # the user listens, then speaks
            loop = asyncio.get_running_loop()
            chunk = 960  # 20 ms, sent in real time like a microphone
            audio = browser_pcm16(np.concatenate(
                (speech_48k(0.3), np.zeros(int(48_000 * 0.9), np.float32))))
            started = loop.time()
            for index, offset in enumerate(range(0, len(audio), chunk)):
                await call.send_audio(audio[offset : offset + chunk], 48_000)
                await asyncio.sleep(started + (index + 1) * 0.02 - loop.time())
            await collect_audio(call, 4_800)
        metrics = call.metrics
        assert metrics.agent_ready_after is not None and metrics.agent_ready_after < 1.0
        assert metrics.first_audio_after is not None
        assert metrics.first_audio_after > metrics.agent_ready_after
        assert len(metrics.turn_latencies) == 1
        # The emulator waits out its VAD hangover (0.4 s) before answering.
        assert 0.3 < metrics.turn_latencies[0] < 1.0
        assert metrics.seconds_sent == pytest.approx(1.2, abs=0.03)


@pytest.mark.parametrize("fault", [Fault.ODD_FRAMES, Fault.RAGGED_FRAMES])
async def test_odd_frames_keep_sample_alignment(emulator: Emulator, fault: Fault) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with open_call(emulator, fault) as call:
            await call.send_client_ready()
            received, _ = await collect_audio(call, GREETING_SAMPLES)
        assert received.tobytes() == default_greeting().tobytes()


async def test_unknown_and_malformed_events_are_passed_on(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with open_call(emulator, Fault.EXTRA_EVENTS) as call:
            await call.send_client_ready()
            kinds: list[type] = []
            async for event in call:
                kinds.append(type(event))
                if isinstance(event, MalformedMessage):
                    break
        assert kinds[0] is ServerMessage and kinds[1] is AgentReady
        assert AgentAudio in kinds and kinds.count(ServerMessage) == 2


async def test_slow_agent_ready_is_measured(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with open_call(emulator, Fault.SLOW_READY) as call:
            async for event in call:
                if isinstance(event, AgentReady):
                    break
        assert call.metrics.agent_ready_after is not None
        assert call.metrics.agent_ready_after >= 0.2


@pytest.mark.parametrize(
    ("fault", "error_class", "code"),
    [(Fault.CLOSE_1011, ServerError, 1011), (Fault.ABRUPT_CLOSE, ConnectionLostError, 1006)],
)
async def test_abnormal_closes_raise_clear_errors(
    emulator: Emulator, fault: Fault, error_class: type[Exception], code: int
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), open_call(emulator, fault) as call:
        await call.send_client_ready()
        with pytest.raises(error_class, match=str(code)):
            async for _ in call:
                pass
        assert call.close_code == code
        if code == 1011:
            assert call.close_reason == "emulated agent failure"
        with pytest.raises(error_class):
            await call.send_audio(np.zeros(10, np.int16), 48_000)


async def test_reconnect_fetches_new_sessions_until_the_limit(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with open_call(emulator, Fault.ABRUPT_CLOSE, reconnect=True,
                             max_reconnects=2) as call:
            await call.send_client_ready()
            reconnections = []
            with pytest.raises(ConnectionLostError):
                async for event in call:
                    if isinstance(event, Reconnected):
                        reconnections.append(event)
                        # A new session must hear client_ready again before it greets.
                        await call.send_audio(np.zeros(480, np.int16), 48_000)
        assert [r.attempt for r in reconnections] == [1, 2]
        assert call.metrics.reconnects == 2
        assert len(emulator.sessions) == 3
        assert all(s.client_ready for s in emulator.sessions)


async def test_server_shutdown_ends_iteration_cleanly(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), open_call(emulator) as call:
        async for event in call:
            if isinstance(event, AgentReady):
                break
        await emulator.stop()
        async for _ in call:
            pass
        assert call.close_code == 1001
        with pytest.raises(SessionClosedError) as info:
            await call.send_audio(np.zeros(10, np.int16), 48_000)
        assert info.value.code == 1001


async def test_sending_after_close_is_a_clear_error(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        call = open_call(emulator)
        with pytest.raises(SessionClosedError, match="not open"):
            await call.send_audio(np.zeros(10, np.int16), 48_000)
        async with call:
            pass
        assert call.close_code == 1000
        with pytest.raises(SessionClosedError, match="1000"):
            await call.send_audio(np.zeros(10, np.int16), 48_000)
        with pytest.raises(InvalidArgumentError):
            await call.open()


async def test_session_urls_are_single_use(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        url = emulator.issue_session_url()
        async with connect(url):
            pass
        with pytest.raises(SessionTokenRejectedError) as info:
            async with connect(url):
                pass
        assert url.split("token=")[1] not in str(info.value)


async def test_unreachable_service_is_a_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with asyncio.timeout(TEST_TIMEOUT):
        with pytest.raises(NetworkError):
            async with connect(f"ws://127.0.0.1:{port}/websocket/start?token=abcdef123456"):
                pass
        with pytest.raises(InvalidArgumentError):
            async with connect("http://not-a-websocket/?token=abcdef123456"):
                pass


def test_connect_argument_checks() -> None:
    with pytest.raises(InvalidArgumentError):
        connect()
    with pytest.raises(InvalidArgumentError):
        connect("ws://x/websocket/start?token=1", assistant_id="a")
    with pytest.raises(InvalidArgumentError):
        connect("ws://x/websocket/start?token=1", reconnect=True)
    with pytest.raises(InvalidArgumentError):
        connect(assistant_id="a", playback_rate=0)


async def test_no_secret_in_logs_reprs_or_errors(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with asyncio.timeout(TEST_TIMEOUT):
        url = emulator.issue_session_url()
        token = url.split("token=")[1]
        async with connect(url, ping_interval=0.05) as call:
            await call.send_audio(speech_48k(0.2), 48_000)
            await asyncio.sleep(0.2)  # long enough for keepalive pings
            text = repr(call)
        with pytest.raises(SessionTokenRejectedError) as info:
            async with connect(url):
                pass
        with pytest.raises(SessionClosedError) as closed:
            await call.send_audio(np.zeros(1, np.int16), 48_000)
    # websockets logged "% sending keepalive ping" up to 14.x, "% sent keepalive ping" from 15.0.
    assert "sent keepalive ping" in caplog.text or "sending keepalive ping" in caplog.text
    assert "GET /websocket/start?token=<redacted>" in caplog.text
    for output in (caplog.text, text, str(info.value), repr(info.value), str(closed.value)):
        assert token not in output and DEFAULT_API_KEY not in output


async def test_no_jitter_buffer_and_no_event_queue(emulator: Emulator) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        open_call(emulator, playback_rate=None, queue_events=False) as call,
    ):
        assert call.jitter_buffer is None
        await call.send_client_ready()
        while call.metrics.samples_received < GREETING_SAMPLES:
            await asyncio.sleep(0.01)
        with pytest.raises(InvalidArgumentError):
            async for _ in call:
                pass


@pytest.mark.parametrize(("rate", "dtype"), [(16_000, np.int16), (44_100, np.float32),
                                             (8_000, np.float64)])
async def test_other_rates_are_resampled_across_calls(
    emulator: Emulator, rate: int, dtype: type
) -> None:
    from anunzi_fast.resampler import resample

    async with asyncio.timeout(TEST_TIMEOUT):
        t = np.arange(rate) / rate
        signal = 0.5 * np.sin(2 * np.pi * 440 * t)
        samples = (signal * 32767).astype(np.int16) if dtype is np.int16 else signal.astype(dtype)
        async with open_call(emulator) as call:
            for start in range(0, len(samples), 997):
                await call.send_audio(samples[start : start + 997], rate)
            # close() flushes the resampler's tail: the emulator gets round(n * 48000 / rate).
        record = await finished(emulator.sessions[0])
        received = np.frombuffer(bytes(record.received), "<i2")
        assert len(received) == round(len(samples) * 48_000 / rate)
        as_float = samples / 32768.0 if dtype is np.int16 else samples
        one_shot = browser_pcm16(resample(as_float.astype(np.float32), rate, 48_000))
        np.testing.assert_array_equal(received, one_shot)


async def test_rate_switch_needs_a_flush(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with open_call(emulator) as call:
            await call.send_audio(np.zeros(160, np.float32), 16_000)
            with pytest.raises(InvalidArgumentError, match="flush_audio"):
                await call.send_audio(np.zeros(441, np.float32), 44_100)
            flushed = await call.flush_audio()
            assert flushed > 0
            await call.send_audio(np.zeros(441, np.float32), 44_100)
        record = await finished(emulator.sessions[0])
        assert record.bytes_received == 2 * (480 + 480)


async def test_jitter_buffer_at_a_device_rate(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), open_call(emulator, playback_rate=48_000) as call:
        await call.send_client_ready()
        await collect_audio(call, GREETING_SAMPLES)
        jitter = call.jitter_buffer
        assert jitter is not None and jitter.dtype == np.float32
        stats = jitter.stats
        # The stream resampler holds back its delay (HQ: about 6 ms) until more input.
        assert 0 <= 3 * GREETING_SAMPLES - stats.samples_in <= 480
        out = np.zeros(stats.buffered, np.float32)
        jitter.read_into(out)
        assert 0.25 < float(np.max(np.abs(out))) < 0.35  # the chimes' level survives


async def test_wss_sessions_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    from anunzi_fast import _connection, _net

    seen: list[dict[str, object]] = []

    async def fake_connect(url: str, **options: object) -> object:
        seen.append(options)
        raise OSError("no network in this test")

    monkeypatch.setattr(_connection, "ws_connect", fake_connect)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await connect("wss://example.invalid/websocket/start?token=abcdef123").open()
    assert seen[0]["ssl"] is seen[1]["ssl"] is _net.shared_ssl_context()
    assert seen[0]["compression"] is None and seen[0]["max_size"] == 2**20


async def test_reconnect_stops_on_a_credentials_error(emulator: Emulator) -> None:
    from anunzi_fast.errors import AuthenticationError

    async with asyncio.timeout(TEST_TIMEOUT):
        async with open_call(emulator, Fault.CLOSE_1011, reconnect=True) as call:
            emulator.api_keys = ("rotated-key-1",)  # the key is revoked mid-call
            await call.send_client_ready()
            with pytest.raises(AuthenticationError):
                async for _ in call:
                    pass
        assert call.metrics.reconnects == 1 and len(emulator.sessions) == 1


async def test_handshake_statuses_map_to_peer_errors(emulator: Emulator) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response

    from anunzi_fast.errors import RemoteProtocolError

    def unavailable(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(503, "maintenance\n")

    async def never(connection: ServerConnection) -> None:
        raise AssertionError("no handshake should complete")

    async with asyncio.timeout(TEST_TIMEOUT):
        with pytest.raises(RemoteProtocolError, match="404"):
            async with connect(f"ws://127.0.0.1:{emulator.port}/elsewhere?token=abcdef123"):
                pass
        async with serve(never, "127.0.0.1", 0, process_request=unavailable) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            with pytest.raises(ServerError) as info:
                async with connect(f"ws://127.0.0.1:{port}/websocket/start?token=abcdef123"):
                    pass
            assert info.value.status == 503


async def test_empty_and_long_inputs(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        long_input = np.arange(3 * 8192 + 5, dtype=np.int16)
        async with open_call(emulator) as call:
            assert await call.send_audio(np.zeros(0, np.float32), 48_000) == 0
            assert await call.send_audio(long_input, 48_000) == len(long_input)
        record = await finished(emulator.sessions[0])
        assert record.client_ready  # the first call, even empty, starts the audio
        assert bytes(record.received) == long_input.tobytes()


@pytest.mark.parametrize("moment", ["backoff", "long backoff", "connecting"])
async def test_close_during_reconnection_leaks_no_connection(
    emulator: Emulator, moment: str
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        # A long backoff outlasts close()'s patience with the reader: it must end it anyway.
        backoff = 20.0 if moment == "long backoff" else 0.4
        retry = RetryPolicy(initial_backoff=backoff, max_backoff=backoff, deadline=30)
        call = connect(assistant_id=Fault.ABRUPT_CLOSE, api_key=DEFAULT_API_KEY,
                       base_url=emulator.base_url, retry=retry, reconnect=True)
        connecting = asyncio.Event()
        connect_once = call._connect_once

        async def observed_connect_once() -> object:
            connecting.set()
            return await connect_once()

        async with call:
            call._connect_once = observed_connect_once  # type: ignore[method-assign]
            await call.send_client_ready()
            if moment != "connecting":
                while call.metrics.reconnects == 0:  # the reader is sleeping before it retries
                    await asyncio.sleep(0.005)
            else:
                await connecting.wait()  # the reader is fetching a new session
            await call.close()
        assert call.close_code == 1000  # the user closed; nothing was lost
        # Every session the emulator served has ended: no connection was left open.
        await asyncio.wait_for(
            asyncio.gather(*(record.closed.wait() for record in emulator.sessions)), 2.0)


async def test_out_of_range_ports_are_errors_of_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    from anunzi_fast import client
    from anunzi_fast.errors import RemoteProtocolError

    bad_url = "ws://127.0.0.1:99999/websocket/start?token=abcdef123456"
    async with asyncio.timeout(TEST_TIMEOUT):
        with pytest.raises(InvalidArgumentError) as info:  # the caller's URL
            await connect(bad_url).open()
        assert "abcdef123456" not in str(info.value)

        async def bad_session_url(*args: object, **kwargs: object) -> str:
            return bad_url

        monkeypatch.setattr(client, "request_session_url", bad_session_url)
        with pytest.raises(RemoteProtocolError):  # the service's URL
            await connect(assistant_id="echo", api_key=DEFAULT_API_KEY).open()


async def test_a_frame_resent_after_reconnection_follows_client_ready(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        retry = RetryPolicy(initial_backoff=0.2, max_backoff=0.2, deadline=5)
        frame = np.full(960, 1234, np.int16)
        async with connect(assistant_id=Fault.ABRUPT_CLOSE, api_key=DEFAULT_API_KEY,
                           base_url=emulator.base_url, retry=retry, reconnect=True) as call:
            await call.send_client_ready()
            while call.metrics.reconnects == 0:  # lost: the reader waits before reconnecting
                await asyncio.sleep(0.005)
            # This send fails on the old connection and is sent again on the new one.
            assert await call.send_audio(frame, 48_000) == len(frame)
        second = await finished(emulator.sessions[1])
        assert second.client_ready_after_bytes == 0
        assert bytes(second.received) == frame.tobytes()


@pytest.mark.parametrize(("code", "match"), [(1009, "max_size"), (1002, "protocol")])
async def test_connections_the_client_fails_are_protocol_errors(code: int, match: str) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    from anunzi_fast.errors import RemoteProtocolError

    async def misbehave(connection: ServerConnection) -> None:
        if code == 1009:
            await connection.send(b"\0" * 2_000)  # over the client's max_size
        else:
            connection.transport.write(bytes([0x8F, 0x00]))  # reserved opcode 0xF
        await connection.wait_closed()

    async with asyncio.timeout(TEST_TIMEOUT), serve(misbehave, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/websocket/start?token=abcdef123",
                           max_size=1_000) as call:
            with pytest.raises(RemoteProtocolError, match=match):
                async for _ in call:
                    pass
            assert call.close_code == code


async def test_an_unread_event_queue_never_stalls_the_session(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), open_call(emulator, event_queue_size=4) as call:
        await call.send_client_ready()
        # Nobody iterates: audio must still reach the jitter buffer and the metrics.
        async with asyncio.timeout(5):
            while call.metrics.samples_received < GREETING_SAMPLES:
                await asyncio.sleep(0.01)
        jitter = call.jitter_buffer
        assert jitter is not None and jitter.stats.samples_in == GREETING_SAMPLES
        # AgentReady and 30 frames of greeting arrived; the 4 newest are kept.
        assert call.metrics.events_dropped == 1 + GREETING_SAMPLES // 320 - 4
        newest = [await anext(aiter(call)) for _ in range(4)]
        assert all(isinstance(event, AgentAudio) for event in newest)


async def test_open_after_a_failed_open_is_a_caller_error(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        url = emulator.issue_session_url()
        async with connect(url):
            pass
        call = connect(url)  # already used: refused
        with pytest.raises(SessionTokenRejectedError):
            await call.open()
        with pytest.raises(InvalidArgumentError, match="opens once"):
            await call.open()
        call = connect(assistant_id="echo", api_key="wrong-key-123", base_url=emulator.base_url)
        with pytest.raises(CredentialsError):
            await call.open()
        with pytest.raises(InvalidArgumentError, match="opens once"):
            await call.open()


# --- hostile peers and careless callers ----------------------------------------------------


class StalledServer:
    """A WebSocket server that greets, then never reads again: the client's sends pile up."""

    def __init__(self) -> None:
        self.server: Any = None
        self.connections: list[Any] = []

    async def __aenter__(self) -> str:
        from websockets.asyncio.server import ServerConnection, serve

        async def handler(connection: ServerConnection) -> None:
            self.connections.append(connection)
            await connection.send('{"type": "status_agent_ready"}')
            connection.transport.pause_reading()
            await connection.wait_closed()  # until __aexit__ drops it

        self.server = await serve(handler, "127.0.0.1", 0, compression=None)
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/websocket/start?token=stalled-0123456"

    async def __aexit__(self, *exc_info: object) -> None:
        # A closing handshake cannot complete with reading paused: drop the connections.
        for connection in self.connections:
            connection.transport.abort()
        self.server.close()
        async with asyncio.timeout(5):
            await self.server.wait_closed()


BIG_BLOCK = np.zeros(480_000, np.int16)  # 10 s at 48 kHz: fills socket buffers quickly


async def test_a_service_that_stops_reading_is_detected_by_the_send_deadline() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), StalledServer() as url:
        call = await connect(url, send_timeout=0.5, close_timeout=0.5, ping_interval=None)
        with pytest.raises(ConnectionLostError):
            while True:
                await call.send_audio(BIG_BLOCK, 48_000)
        started = time.monotonic()
        await call.close()
        assert time.monotonic() - started < 0.5 + CLOSE_MARGIN + 2.0
        assert call.state is CallState.CLOSED and call.close_code == 1006


async def test_close_returns_in_time_while_a_send_is_stuck() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), StalledServer() as url:
        call = await connect(url, send_timeout=None, close_timeout=0.5, ping_interval=None)

        async def send_for_ever() -> None:
            while True:
                await call.send_audio(BIG_BLOCK, 48_000)

        sender = asyncio.create_task(send_for_ever())
        while (started := call._watch.send_started) is None or time.monotonic() - started < 0.3:
            await asyncio.sleep(0.05)  # the sender is stuck in a full send buffer
        started = time.monotonic()
        await call.close()  # waited for the stuck sender's lock, and for ever, before
        assert time.monotonic() - started < 0.5 + CLOSE_MARGIN + 2.0
        with pytest.raises(AnunziError):
            await sender
        assert call.state is CallState.CLOSED


async def test_no_agent_ready_is_a_clear_error_after_the_timeout(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), open_call(emulator, Fault.NEVER_READY,
                                                agent_ready_timeout=0.3) as call:
        started = time.monotonic()
        with pytest.raises(AgentNotReadyError, match=r"within 0\.3 s") as info:
            async for _ in call:
                pass
        assert info.value.timeout == 0.3
        assert time.monotonic() - started < 5
        with pytest.raises(AgentNotReadyError):
            await call.send_audio(np.zeros(480, np.int16), 48_000)


async def test_a_ready_agent_is_not_timed_out(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), open_call(emulator, agent_ready_timeout=0.2) as call:
        await asyncio.sleep(0.4)
        await call.send_client_ready()
        await collect_audio(call, GREETING_SAMPLES)


async def test_the_event_queue_is_bounded_in_bytes(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), open_call(emulator, event_queue_bytes=4_000) as call:
        await call.send_client_ready()
        while call.metrics.samples_received < GREETING_SAMPLES:
            await asyncio.sleep(0.01)
        metrics = call.metrics
        assert metrics.events_dropped > 0
        assert metrics.event_bytes_dropped >= 2 * GREETING_SAMPLES - 4_000 - 640
        assert call._events._bytes <= 4_000
        jitter = call.jitter_buffer
        assert jitter is not None and jitter.stats.samples_in == GREETING_SAMPLES  # nothing lost


async def test_long_input_and_a_new_filter_are_worked_off_the_event_loop(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anunzi_fast import audio

    loop_thread = threading.get_ident()
    threads: list[tuple[str, bool]] = []
    real_encode, real_stream = audio.UplinkEncoder.encode, audio._stream

    def encode(self: Any, array: np.ndarray, rate: int) -> np.ndarray:
        threads.append(("encode", threading.get_ident() == loop_thread))
        return real_encode(self, array, rate)

    def stream(*args: Any) -> Any:
        threads.append(("design", threading.get_ident() == loop_thread))
        return real_stream(*args)

    monkeypatch.setattr(audio.UplinkEncoder, "encode", encode)
    monkeypatch.setattr(audio, "_stream", stream)
    async with asyncio.timeout(TEST_TIMEOUT), open_call(emulator, playback_rate=44_100) as call:
        assert threads == [("design", False)]  # the playback filter, designed in open()
        threads.clear()
        await call.send_audio(np.zeros(960, np.float32), 48_000)  # 20 ms: on the loop
        await call.send_audio(np.zeros(60 * 48_000, np.float32), 48_000)  # 60 s: a worker
        await call.send_audio(np.zeros(441, np.float32), 44_100)  # a new filter: a worker
        await call.send_audio(np.zeros(441, np.float32), 44_100)  # the same stream: the loop
        assert threads == [("encode", True), ("encode", False), ("encode", False),
                           ("design", False), ("encode", True)]


def test_connect_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANUNZI_API_KEY", raising=False)
    with pytest.raises(InvalidArgumentError, match="session_url, or an assistant_id"):
        connect()
    with pytest.raises(InvalidArgumentError, match="no API key"):
        connect(assistant_id="echo")
    for bad in ({"close_timeout": 0}, {"send_timeout": -1.0}, {"event_queue_size": 0},
                {"agent_ready_timeout": 0.0}):
        with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
            connect("ws://127.0.0.1:9/websocket/start?token=abcdef123456", **bad)  # type: ignore[arg-type]


async def test_loopback_ignores_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.setenv(name, "http://proxy.invalid:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    async with Emulator(pace="fast") as emulator, asyncio.timeout(TEST_TIMEOUT), \
            open_call(emulator) as call:
        await call.send_client_ready()
        received, _ = await collect_audio(call, GREETING_SAMPLES)
    assert len(received) == GREETING_SAMPLES


async def test_await_connect_opens_and_the_state_follows_the_call(emulator: Emulator) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        call = open_call(emulator)
        assert call.state is CallState.CONNECTING and "connecting" in repr(call)
        assert await call is call
        assert call.state is CallState.OPEN
        await call.close()
        assert call.state is CallState.CLOSED and call.close_code == 1000
        await call.close()  # twice is harmless


def test_options_by_name_or_as_an_object() -> None:
    from anunzi_fast import CallOptions

    url = "ws://127.0.0.1:9/websocket/start?token=abcdef123456"
    shared = CallOptions(send_timeout=3.0, queue_events=False)
    call = connect(url, options=shared, close_timeout=1.0)
    assert call.options.send_timeout == 3.0 and call.options.close_timeout == 1.0
    assert not call.options.queue_events and shared.close_timeout == 5.0
    with pytest.raises(InvalidArgumentError, match="unknown option 'reconect'"):
        connect(url, reconect=True)
    with pytest.raises(InvalidArgumentError, match="playback_rate"):
        CallOptions(playback_rate=0)
    assert connect(url, playback_rate=None).jitter_buffer is None


async def test_an_untrusted_certificate_is_a_certificate_error() -> None:
    from anunzi_fast.errors import CertificateError
    from tests.test_auth import TlsServer

    server = TlsServer()
    try:
        url = f"wss://127.0.0.1:{server.port}/websocket/start?token=abcdef123456"
        with pytest.raises(CertificateError, match="certificate verification failed") as info:
            await connect(url).open()
        assert f"127.0.0.1:{server.port}" in str(info.value)
        assert "abcdef123456" not in str(info.value)
    finally:
        server.close()
