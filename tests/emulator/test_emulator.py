"""The emulator, driven by plain httpx and websockets clients (not by our own client)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from anunzi_fast.auth import RetryPolicy, request_session_url
from anunzi_fast.emulator import (
    DEFAULT_API_KEY,
    EchoAgent,
    EmulatorBase,
    Fault,
    TokenStore,
    decimate_48k_to_16k,
    default_greeting,
)
from anunzi_fast.errors import (
    AssistantNotFoundError,
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteProtocolError,
    ServerError,
)
from tests.conftest import tone

TEST_TIMEOUT = 10.0
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
FAST_RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, deadline=5)


def speech_48k(seconds: float, frequency: float = 300.0) -> np.ndarray:
    return tone(seconds, frequency=frequency, dtype=np.int16)


async def session_url(emulator: EmulatorBase, assistant_id: str = "echo") -> str:
    return await request_session_url(
        assistant_id, DEFAULT_API_KEY, base_url=emulator.base_url, retry=FAST_RETRY
    )


async def receive_json(ws: ClientConnection) -> dict[str, object]:
    while True:
        message = await ws.recv()
        if isinstance(message, str):
            data = json.loads(message)
            assert isinstance(data, dict)
            return data


async def receive_audio(ws: ClientConnection, samples: int) -> bytes:
    """Collect agent audio until ``samples`` samples arrived, skipping text."""
    audio = bytearray()
    while len(audio) < samples * 2:
        message = await ws.recv()
        if isinstance(message, bytes):
            audio += message
    return bytes(audio)


async def test_token_route_issues_a_session_url_that_connects(
    emulator_class: type[EmulatorBase],
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="fast") as emulator:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{emulator.base_url}/websocket/token/echo", headers=AUTH)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        url = response.json()["sessionURL"]
        assert url.startswith(f"ws://127.0.0.1:{emulator.port}/websocket/start?token=")
        async with connect(url, compression=None) as ws:
            assert await receive_json(ws) == {"type": "status_agent_ready"}
        assert emulator.sessions[0].assistant_id == "echo"


@pytest.mark.parametrize(
    ("headers", "assistant", "status"),
    [
        ({}, "echo", 401),
        ({"Authorization": "Bearer wrong"}, "echo", 401),
        ({"Authorization": f"Basic {DEFAULT_API_KEY}"}, "echo", 401),
        (AUTH, "nobody", 404),
        (AUTH, "forbidden", 403),
    ],
)
async def test_token_route_errors(
    headers: dict[str, str], assistant: str, status: int, emulator_class: type[EmulatorBase]
) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        emulator_class(assistant_ids={"echo", "forbidden"}) as emulator,
        httpx.AsyncClient() as http,
    ):
        response = await http.get(
            f"{emulator.base_url}/websocket/token/{assistant}", headers=headers
        )
        assert response.status_code == status


async def test_unknown_paths_are_404(emulator_class: type[EmulatorBase]) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        emulator_class() as emulator,
        httpx.AsyncClient() as http,
    ):
        assert (await http.get(f"{emulator.base_url}/elsewhere")).status_code == 404


async def test_every_token_route_error_class_end_to_end(emulator_class: type[EmulatorBase]) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        emulator_class(assistant_ids={a.value for a in Fault}, fault_repeats=100) as emulator,
    ):
        base = emulator.base_url
        with pytest.raises(AuthenticationError):
            await request_session_url("echo", "bad-key-123", base_url=base, retry=FAST_RETRY)
        with pytest.raises(AssistantNotFoundError):
            await session_url(emulator, "echo")
        with pytest.raises(PermissionDeniedError):
            await session_url(emulator, Fault.FORBIDDEN)
        with pytest.raises(RemoteProtocolError):
            await session_url(emulator, Fault.BAD_BODY)
        with pytest.raises(RateLimitedError):
            await session_url(emulator, Fault.RATE_LIMITED)
        with pytest.raises(ServerError):
            await session_url(emulator, Fault.SERVER_ERROR)


@pytest.mark.parametrize("fault", [Fault.RATE_LIMITED, Fault.SERVER_ERROR])
async def test_transient_token_faults_are_retried_through(
    fault: Fault, emulator_class: type[EmulatorBase]
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(fault_repeats=2) as emulator:
        url = await session_url(emulator, fault)
        assert url.startswith("ws://")
        assert emulator.token_requests == 3


async def test_bad_reused_and_expired_tokens_are_refused_with_403(
    emulator_class: type[EmulatorBase],
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(token_ttl=0.2) as emulator:
        url = await session_url(emulator)
        async with connect(url, compression=None):
            pass
        expired = await session_url(emulator)
        await asyncio.sleep(0.25)
        base = f"ws://127.0.0.1:{emulator.port}/websocket/start"
        for refused in (url, expired, f"{base}?token=made-up", base):
            with pytest.raises(InvalidStatus) as info:
                async with connect(refused, compression=None):
                    pass
            assert info.value.response.status_code == 403


async def test_a_failed_upgrade_neither_spends_the_token_nor_keeps_a_grant(
    emulator_class: type[EmulatorBase],
) -> None:
    import gc

    async with (
        asyncio.timeout(TEST_TIMEOUT),
        emulator_class() as emulator,
        httpx.AsyncClient() as http,
    ):
        url = await session_url(emulator)
        # A plain GET, without Upgrade: refused, and the token stays usable.
        assert (await http.get("http" + url[2:])).status_code == 426
        # An upgrade the handshake refuses after the token was checked (no Sec-WebSocket-Key).
        other = await session_url(emulator)
        response = await http.get(
            "http" + other[2:], headers={"Upgrade": "websocket", "Connection": "Upgrade"}
        )
        assert response.status_code == 400
        while getattr(emulator, "_grants", None):  # forgotten with its connection
            gc.collect()
            await asyncio.sleep(0.01)
        async with connect(url, compression=None) as ws:
            assert await receive_json(ws) == {"type": "status_agent_ready"}


async def test_greeting_then_echo_of_each_utterance(emulator_class: type[EmulatorBase]) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="fast") as emulator:
        async with connect(await session_url(emulator), compression=None) as ws:
            assert await receive_json(ws) == {"type": "status_agent_ready"}
            await ws.send(json.dumps({"type": "status_client_ready"}))
            greeting = await receive_audio(ws, len(default_greeting()))
            assert greeting == default_greeting().astype("<i2").tobytes()
            sent = bytearray()
            for utterance in (speech_48k(0.5), speech_48k(0.3, 500)):
                chunk = np.concatenate((utterance, np.zeros(48_000, np.int16))).tobytes()
                for offset in range(0, len(chunk), 16_384):  # the reference frame size
                    await ws.send(chunk[offset : offset + 16_384])
                sent += chunk
            reply = await receive_audio(ws, (24_000 + 14_400) // 3)
        record = emulator.sessions[0]
        await record.closed.wait()
        assert bytes(record.received) == bytes(sent)
        assert record.utterances == 2 and record.client_ready
        assert bytes(record.sent) == greeting + reply
        assert record.close_code == 1000


async def test_the_agent_speaks_only_after_client_ready(emulator_class: type[EmulatorBase]) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="fast") as emulator:
        async with connect(await session_url(emulator), compression=None) as ws:
            assert await receive_json(ws) == {"type": "status_agent_ready"}
            speech = np.concatenate((speech_48k(0.5), np.zeros(48_000, np.int16)))
            await ws.send(speech.tobytes())  # heard before client_ready: held, not answered
            record = emulator.sessions[0]
            while record.utterances == 0:
                await asyncio.sleep(0.005)
            assert record.bytes_sent == 0
            await ws.send(json.dumps({"type": "status_client_ready"}))
            greeting = len(default_greeting())
            audio = await receive_audio(ws, greeting + 24_000 // 3)
        # The greeting first, as documented, then the held answer.
        assert audio[: 2 * greeting] == default_greeting().astype("<i2").tobytes()
        await record.closed.wait()
        assert bytes(record.sent) == audio


async def test_realtime_pacing_takes_real_time(emulator_class: type[EmulatorBase]) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="realtime") as emulator:
        async with connect(await session_url(emulator), compression=None) as ws:
            await receive_json(ws)
            await ws.send(json.dumps({"type": "status_client_ready"}))
            started = time.monotonic()
            await receive_audio(ws, len(default_greeting()))
            elapsed = time.monotonic() - started
        assert 0.5 < elapsed < 1.5  # the greeting lasts 0.6 s


async def test_fault_slow_ready(emulator_class: type[EmulatorBase]) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        emulator_class(slow_ready_delay=0.3) as emulator,
        connect(await session_url(emulator, Fault.SLOW_READY)) as ws,
    ):
        started = time.monotonic()
        assert await receive_json(ws) == {"type": "status_agent_ready"}
        assert time.monotonic() - started >= 0.25


async def test_fault_extra_events_and_odd_frames(emulator_class: type[EmulatorBase]) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="fast") as emulator:
        async with connect(await session_url(emulator, Fault.EXTRA_EVENTS)) as ws:
            assert (await receive_json(ws))["type"] == "emulator_notice"
            assert (await receive_json(ws))["type"] == "status_agent_ready"
            await ws.send(json.dumps({"type": "status_client_ready"}))
            texts = []
            while len(texts) < 2:
                message = await ws.recv()
                if isinstance(message, str):
                    texts.append(message)
            assert json.loads(texts[0])["type"] == "agent_transcript"
            assert texts[1] == "this is {not json"
        async with connect(await session_url(emulator, Fault.ODD_FRAMES)) as ws:
            await receive_json(ws)
            await ws.send(json.dumps({"type": "status_client_ready"}))
            sizes = []
            while sum(sizes) < len(default_greeting()) * 2:
                message = await ws.recv()
                assert isinstance(message, bytes)
                sizes.append(len(message))
            assert sizes[0] % 2 == 1


@pytest.mark.parametrize(("fault", "code"), [(Fault.ABRUPT_CLOSE, 1006), (Fault.CLOSE_1011, 1011)])
async def test_fault_closes(fault: Fault, code: int, emulator_class: type[EmulatorBase]) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        emulator_class(pace="fast") as emulator,
        connect(await session_url(emulator, fault)) as ws,
    ):
        await receive_json(ws)
        await ws.send(json.dumps({"type": "status_client_ready"}))
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
        assert isinstance(info.value, ConnectionClosedError)
        assert ws.protocol.close_code == code


async def test_many_sessions_at_once(emulator_class: type[EmulatorBase]) -> None:
    async def one_session(emulator: EmulatorBase, index: int) -> bytes:
        async with connect(await session_url(emulator), compression=None) as ws:
            await receive_json(ws)
            audio = np.full(4_800, index, np.int16).tobytes()
            await ws.send(audio)
            return audio

    async with asyncio.timeout(TEST_TIMEOUT), emulator_class(pace="fast") as emulator:
        sent = await asyncio.gather(*(one_session(emulator, i) for i in range(40)))
        await asyncio.gather(*(record.closed.wait() for record in emulator.sessions))
        received = sorted(bytes(record.received) for record in emulator.sessions)
        assert received == sorted(sent)


async def test_stop_closes_open_sessions_with_1001(emulator_class: type[EmulatorBase]) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        emulator = emulator_class()
        await emulator.start()
        async with connect(emulator.issue_session_url()) as ws:
            await receive_json(ws)
            await emulator.stop()
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.protocol.close_code == 1001


def test_token_store_single_use_and_expiry() -> None:
    now = [100.0]
    store = TokenStore(ttl=5.0, clock=lambda: now[0])
    first, second = store.issue("a"), store.issue("b")
    assert first != second and len(first) >= 24
    grant = store.redeem(first)
    assert grant is not None and grant.assistant_id == "a"
    assert first not in repr(grant)
    assert store.redeem(first) is None
    assert store.redeem(None) is None and store.redeem("") is None
    now[0] += 5.0
    assert store.redeem(second) is None


def test_decimation_length_and_passband() -> None:
    for length in (0, 1, 2, 3, 4, 99, 4800):
        assert len(decimate_48k_to_16k(np.ones(length, np.int16))) == -(-length // 3)
    out = decimate_48k_to_16k(speech_48k(0.2, 1000.0))
    reference = tone(len(out) / 16_000, rate=16_000, frequency=1000.0) * 32767.0
    assert np.max(np.abs(out[50:-50] - reference[50:-50])) < 400


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 62, 63, 64, 65, 960, 4801, 48_002])
def test_decimation_equals_filtering_everything_then_keeping_one_in_three(length: int) -> None:
    from anunzi_fast.emulator.agent import _TAPS

    samples = (np.random.default_rng(length).standard_normal(length) * 9000).astype(np.int16)
    samples[: min(3, length)] = [32767, -32768, 32767][: min(3, length)]  # clipping too
    delay = (len(_TAPS) - 1) // 2
    everything = np.convolve(samples.astype(np.float64), _TAPS)[delay : delay + length : 3]
    expected = np.clip(np.rint(everything), -32768, 32767).astype(np.int16)
    got = decimate_48k_to_16k(samples)
    assert got.dtype == np.int16 and len(got) == len(expected)
    assert np.max(np.abs(got.astype(np.int32) - expected)) <= 1  # summation order only


def test_echo_agent_splits_long_speech_and_forgets_silence() -> None:
    agent = EchoAgent(max_utterance_seconds=1.0)
    replies = []
    for _ in range(30):  # 3 s of speech in 100 ms chunks
        replies += agent.receive(speech_48k(0.1))
    assert len(replies) >= 2
    for _ in range(100):  # 10 s of silence: memory stays bounded
        agent.receive(np.zeros(4_800, np.int16))
    assert agent._buffered < 2 * 48_000


async def test_session_records_are_bounded(emulator_class: type[EmulatorBase]) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        emulator_class(max_session_records=3, record_audio=False) as emulator,
    ):
        for index in range(5):
            async with connect(emulator.issue_session_url(f"a{index}")) as ws:
                await receive_json(ws)
                await ws.send(b"\x01\x00" * 10)
        await emulator.sessions[-1].closed.wait()
        assert [record.assistant_id for record in emulator.sessions] == ["a2", "a3", "a4"]
        assert emulator.sessions[-1].bytes_received == 20
        assert emulator.sessions[-1].received == bytearray()  # counts only


async def test_waiting_replies_are_bounded() -> None:
    from anunzi_fast.emulator.session import QUEUED_REPLY_SAMPLES, Replies, SessionRecord

    record = SessionRecord("echo", record_audio=False)
    replies = Replies(record)
    second = np.zeros(16_000, np.int16)
    for _ in range(45):
        replies.put(second)
    assert record.replies_dropped == 45 - QUEUED_REPLY_SAMPLES // 16_000
    assert len(replies.take_all()) * 16_000 <= QUEUED_REPLY_SAMPLES
