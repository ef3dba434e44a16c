"""The emulator's server: the token route and the session WebSocket on one port.

A real :mod:`websockets` server. Plain HTTP requests to ``/websocket/token/{assistant_id}`` are
answered from ``process_request``, before any WebSocket handshake; ``/websocket/start?token=``
is refused with HTTP 403 unless the token is valid, unused and unexpired. Fault modes are chosen
by assistant id, like the paths of the ``websockets`` test server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import hmac
import itertools
import json
import logging
import weakref
from collections.abc import Collection, Iterable
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .._redact import install_log_redaction
from ..errors import InvalidArgumentError
from ..protocol import (
    AGENT_SAMPLE_RATE,
    ClientReady,
    SessionProtocol,
    Side,
    UserAudio,
)
from .agent import EchoAgent, default_greeting
from .tokens import SessionGrant, TokenStore

__all__ = ["DEFAULT_API_KEY", "Emulator", "Fault", "Pace", "SessionRecord"]

DEFAULT_API_KEY = "emulator-key"
TOKEN_ROUTE = "/websocket/token/"
START_ROUTE = "/websocket/start"
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

_logger = logging.getLogger("anunzi_fast.emulator")


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


class _Replies:
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

    async def get(self) -> npt.NDArray[np.int16]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        audio = self._items.popleft()
        self._samples -= len(audio)
        return audio


class Emulator:
    """A local Anunzi service: token route, session WebSocket and an echo agent.

    The agent sends ``status_agent_ready`` on connection and stays silent until
    ``status_client_ready``: then it speaks the greeting, then its answers, in order, to every
    utterance heard, those heard before client-ready included.

    Use it as an async context manager (``async with Emulator() as emulator:``) or call
    :meth:`start` and :meth:`stop`.

    Args:
        host: Interface to bind; loopback by default.
        port: TCP port; 0 picks a free one (see :attr:`port` once started).
        api_keys: Keys accepted by the token route.
        assistant_ids: Known assistants; ``None`` accepts any id (others get HTTP 404).
        token_ttl: Seconds a session token stays valid.
        pace: ``"realtime"`` sends agent audio in 20 ms frames at real-time speed,
            ``"fast"`` as fast as possible (for tests).
        greeting: 16 kHz PCM16 spoken after ``status_client_ready``; two chimes by default.
        fault_repeats: How many token requests the rate-limit and server-error faults fail.
        retry_after: The ``Retry-After`` seconds of the rate-limit fault.
        slow_ready_delay: Seconds the slow-ready fault waits.
        record_audio: Keep every audio byte in :attr:`sessions` (turn off for load tests).
        max_session_records: Records kept in :attr:`sessions`, the oldest dropped first, so
            that a long-running emulator keeps bounded memory.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        assistant_ids: Collection[str] | None = None,
        token_ttl: float = 60.0,
        pace: Pace = "realtime",
        greeting: npt.NDArray[np.int16] | None = None,
        fault_repeats: int = 2,
        retry_after: float = 0.0,
        slow_ready_delay: float = 0.5,
        record_audio: bool = True,
        max_session_records: int = 1000,
    ) -> None:
        if pace not in ("realtime", "fast"):
            raise InvalidArgumentError(f"pace must be 'realtime' or 'fast', not {pace!r}")
        self.host = host
        self._requested_port = port
        self.api_keys = tuple(api_keys)
        if not self.api_keys:
            raise InvalidArgumentError("the emulator needs at least one API key")
        self.assistant_ids = None if assistant_ids is None else frozenset(assistant_ids)
        self.tokens = TokenStore(token_ttl)
        self.pace: Pace = pace
        self.greeting = default_greeting() if greeting is None else greeting
        self.fault_repeats = fault_repeats
        self.retry_after = retry_after
        self.slow_ready_delay = slow_ready_delay
        self.record_audio = record_audio
        self.sessions: collections.deque[SessionRecord] = collections.deque(
            maxlen=max_session_records)
        self.token_requests = 0
        self._fault_counts: dict[str, int] = {}
        # A handshake that fails after the token was redeemed never reaches _handle_session:
        # _process_response drops its grant, and the weak keys are a second line of defence.
        self._grants: weakref.WeakKeyDictionary[ServerConnection, SessionGrant] = (
            weakref.WeakKeyDictionary())
        self._server: Server | None = None
        install_log_redaction()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving."""
        if self._server is not None:
            raise InvalidArgumentError("the emulator is already running")
        self._server = await serve(
            self._handle_session,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            process_response=self._process_response,
            compression=None,  # PCM does not compress; deflate would only cost CPU
            max_size=2**20,
            server_header="anunzi-fast-emulator",
        )

    async def stop(self) -> None:
        """Close every session (code 1001) and stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise InvalidArgumentError("the emulator is not running")
        sockname = next(iter(self._server.sockets)).getsockname()
        return int(sockname[1])

    @property
    def base_url(self) -> str:
        """``http://host:port``, the ``base_url`` for :func:`anunzi_fast.request_session_url`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def issue_session_url(self, assistant_id: str = "echo") -> str:
        """A session URL without going through the token route (for tests)."""
        return f"ws{self.base_url[4:]}{START_ROUTE}?token={self.tokens.issue(assistant_id)}"

    # --- HTTP ---------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.startswith(TOKEN_ROUTE):
            return self._token_route(connection, request, unquote(parts.path[len(TOKEN_ROUTE):]))
        if parts.path == START_ROUTE:
            if not _is_upgrade(request):
                return None  # websockets answers 426; the token must not be spent on it
            token = parse_qs(parts.query).get("token", [None])[0]
            grant = self.tokens.redeem(token)
            if grant is None:
                _logger.info("refused a session: unknown, used or expired token")
                return connection.respond(403, "invalid, used or expired session token\n")
            self._grants[connection] = grant
            return None
        return connection.respond(404, "not found\n")

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        # A handshake refused after the token was redeemed never reaches _handle_session:
        # drop its grant now rather than wait for the connection to be garbage-collected
        # (a logged handshake error can keep it alive for a long time).
        if response.status_code != 101:
            self._grants.pop(connection, None)
        return None

    def _token_route(
        self, connection: ServerConnection, request: Request, assistant_id: str
    ) -> Response:
        self.token_requests += 1
        authorization = request.headers.get("Authorization", "")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(key.encode(), known.encode()) for known in self.api_keys
        ):
            return connection.respond(401, "missing or wrong API key\n")
        if not assistant_id or "/" in assistant_id:
            return connection.respond(400, "bad assistant id\n")
        if self.assistant_ids is not None and assistant_id not in self.assistant_ids:
            return connection.respond(404, "unknown assistant\n")
        if assistant_id == Fault.FORBIDDEN:
            return connection.respond(403, "this key may not use this assistant\n")
        if assistant_id == Fault.BAD_BODY:
            return connection.respond(200, "<html>surprise</html>")
        if assistant_id in (Fault.RATE_LIMITED, Fault.SERVER_ERROR):
            count = self._fault_counts.get(assistant_id, 0) + 1
            self._fault_counts[assistant_id] = count
            if count <= self.fault_repeats:
                if assistant_id == Fault.SERVER_ERROR:
                    return connection.respond(503, "try again later\n")
                response = connection.respond(429, "slow down\n")
                response.headers["Retry-After"] = f"{self.retry_after:g}"
                return response
        host = request.headers.get("Host") or self.base_url.split("//", 1)[1]
        token = self.tokens.issue(assistant_id)
        body = json.dumps({"sessionURL": f"ws://{host}{START_ROUTE}?token={token}"})
        return Response(
            200, "OK", Headers([("Content-Type", "application/json"), ("Connection", "close")]),
            body.encode(),
        )

    # --- sessions -----------------------------------------------------------------------------

    async def _handle_session(self, connection: ServerConnection) -> None:
        grant = self._grants.pop(connection)
        fault = _fault_of(grant.assistant_id)
        record = SessionRecord(grant.assistant_id, record_audio=self.record_audio)
        protocol = record.protocol
        self.sessions.append(record)
        # status_client_ready is what allows the agent to speak: answers to speech heard before
        # it are held, and follow the greeting.
        held, speech = _Replies(record), _Replies(record)
        speaker = asyncio.create_task(self._speak(connection, speech, record, fault))
        agent = EchoAgent()
        try:
            if fault is Fault.SLOW_READY:
                await asyncio.sleep(self.slow_ready_delay)
            if fault is Fault.EXTRA_EVENTS:
                await connection.send(json.dumps({"type": "emulator_notice", "n": 1}))
            if fault is not Fault.NEVER_READY:
                await connection.send(protocol.encode_agent_ready())
            async for message in connection:
                if isinstance(message, str):
                    if len(record.text_messages) < record.MAX_TEXT_MESSAGES:
                        record.text_messages.append(message)
                    was_ready = protocol.peer_ready
                    events = protocol.receive_text(message)
                    if not was_ready and any(isinstance(e, ClientReady) for e in events):
                        record.client_ready_after_bytes = protocol.bytes_received
                        speech.put(self.greeting)
                        for reply in held.take_all():
                            speech.put(reply)
                    continue
                if record.record_audio:
                    record.received += message
                for event in protocol.receive_binary(message):
                    assert isinstance(event, UserAudio)
                    for reply in agent.receive(event.samples):
                        record.utterances += 1
                        (speech if protocol.peer_ready else held).put(reply)
        except ConnectionClosed:
            pass
        finally:
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await speaker
            record.close_code = connection.close_code
            record.closed.set()

    async def _speak(
        self,
        connection: ServerConnection,
        speech: _Replies,
        record: SessionRecord,
        fault: Fault | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        next_frame_at = loop.time()
        first = True
        protocol = record.protocol
        try:
            while True:
                audio = await speech.get()
                frames: Iterable[memoryview]
                if fault in (Fault.ODD_FRAMES, Fault.RAGGED_FRAMES):
                    frames = _split(protocol.encode_audio(audio), fault)
                else:  # encoded (and counted) frame by frame, as each goes out
                    frames = (protocol.encode_audio(audio[at : at + FRAME_SAMPLES])
                              for at in range(0, len(audio), FRAME_SAMPLES))
                # After a pause, speak now rather than catching up on the silent time.
                next_frame_at = max(next_frame_at, loop.time())
                for frame in frames:
                    await connection.send(frame)
                    if record.record_audio:
                        record.sent += frame
                    if self.pace == "realtime":
                        next_frame_at += len(frame) / 2 / AGENT_SAMPLE_RATE
                        await asyncio.sleep(next_frame_at - loop.time())
                if fault is Fault.EXTRA_EVENTS:
                    await connection.send(json.dumps({"type": "agent_transcript", "text": "..."}))
                    await connection.send("this is {not json")
                if first and fault is Fault.ABRUPT_CLOSE:
                    connection.transport.abort()
                    return
                if first and fault is Fault.CLOSE_1011:
                    await connection.close(1011, "emulated agent failure")
                    return
                first = False
        except ConnectionClosed:
            pass


def _split(payload: memoryview, fault: Fault) -> list[memoryview]:
    sizes = itertools.cycle(
        (ODD_FRAME_BYTES,) if fault is Fault.ODD_FRAMES else RAGGED_FRAME_BYTES)
    frames, at = [], 0
    while at < len(payload):
        size = next(sizes)
        frames.append(payload[at : at + size])
        at += size
    return frames


def _fault_of(assistant_id: str) -> Fault | None:
    try:
        return Fault(assistant_id)
    except ValueError:
        return None


def _is_upgrade(request: Request) -> bool:
    tokens = ",".join(request.headers.get_all("Upgrade")).split(",")
    return any(token.strip().lower() == "websocket" for token in tokens)
