"""The emulator's server: the token route and the session WebSocket on one port.

A real :mod:`websockets` server. Plain HTTP requests to ``/websocket/token/{assistant_id}`` are
answered from ``process_request``, before any WebSocket handshake; ``/websocket/start?token=``
is refused with HTTP 403 unless the token is valid, unused and unexpired. Fault modes are chosen
by assistant id, like the paths of the ``websockets`` test server. :mod:`.light` serves the
same on picows, at a fraction of the CPU (load tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import weakref
from collections.abc import Iterable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..errors import InvalidArgumentError
from ..protocol import AGENT_SAMPLE_RATE, UserAudio
from .agent import EchoAgent
from .base import DEFAULT_API_KEY, EmulatorBase, route_of
from .session import (
    FRAME_SAMPLES,
    Fault,
    Pace,
    Replies,
    SessionRecord,
    fault_of,
    receive_client_text,
    split_frames,
)
from .tokens import SessionGrant

__all__ = ["DEFAULT_API_KEY", "Emulator", "Fault", "Pace", "SessionRecord"]

_logger = logging.getLogger("anunzi_fast.emulator")


class Emulator(EmulatorBase):
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

    def _setup(self) -> None:
        # A handshake that fails after the token was redeemed never reaches _handle_session:
        # _process_response drops its grant, and the weak keys are a second line of defence.
        self._grants: weakref.WeakKeyDictionary[ServerConnection, SessionGrant] = (
            weakref.WeakKeyDictionary())
        self._server: Server | None = None

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

    async def _stop(self) -> None:
        server = self._server
        if server is not None:
            server.close()
            await server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    def _listening(self) -> bool:
        return self._server is not None

    def _bound_port(self) -> int | None:
        sockets = list(self._server.sockets) if self._server is not None else []
        return int(sockets[0].getsockname()[1]) if sockets else None

    # --- HTTP ---------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        route, assistant_id = route_of(request.path)
        if route == "token":
            answer = self.answer_token_request(
                assistant_id, request.headers.get("Authorization", ""), request.headers.get("Host"))
            return Response(answer.status, http.HTTPStatus(answer.status).phrase, Headers([
                ("Content-Type", answer.content_type), *answer.headers,
                ("Content-Length", str(len(answer.body))), ("Connection", "close")]),
                answer.body)
        if route == "start":
            if not _is_upgrade(request):
                return None  # websockets answers 426; the token must not be spent on it
            grant = self.redeem_start_path(request.path)
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

    # --- sessions -----------------------------------------------------------------------------

    async def _handle_session(self, connection: ServerConnection) -> None:
        grant = self._grants.pop(connection)
        fault = fault_of(grant.assistant_id)
        record = SessionRecord(grant.assistant_id, record_audio=self.record_audio)
        protocol = record.protocol
        self.sessions.append(record)
        # status_client_ready is what allows the agent to speak: answers to speech heard before
        # it are held, and follow the greeting.
        held, speech = Replies(record), Replies(record)
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
                    receive_client_text(record, message, self.greeting, held, speech)
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
        speech: Replies,
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
                    frames = split_frames(protocol.encode_audio(audio), fault)
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


def _is_upgrade(request: Request) -> bool:
    tokens = ",".join(request.headers.get_all("Upgrade")).split(",")
    return any(token.strip().lower() == "websocket" for token in tokens)
