"""The emulator on picows: the routes, tokens, agent and faults of :mod:`.server` at a fraction
of its CPU, so that a load test measures the load generator rather than its emulator.

``anunzi-fast load --emulator`` and the sessions benchmark serve with it when the ``load`` extra
(picows) is installed. One picows listener factory answers the token route's plain GET and the
session's upgrade; each session's frames go straight to the protocol and the agent, and one
timer per emulator, not one task per session, sends every session's agent audio when it is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any, Final

from .._picows import import_picows, listener_class
from .._redact import install_log_redaction
from ..errors import InvalidArgumentError
from ..protocol import AGENT_SAMPLE_RATE, UserAudio
from .agent import EchoAgent
from .base import EmulatorBase, HttpAnswer, route_of
from .session import (
    FRAME_SAMPLES,
    Fault,
    Replies,
    SessionRecord,
    fault_of,
    receive_client_text,
    split_frames,
)
from .tokens import SessionGrant

__all__ = ["LightEmulator", "light_emulator_available"]

# Agent frames due within this much of each other go out on one timer call.
PACER_RESOLUTION: Final = 0.002
# After our close frame, how long the client has to answer it before the TCP connection goes.
CLOSE_WAIT_SECONDS: Final = 5.0
SERVER_HEADER: Final = ("Server", "anunzi-fast-emulator")

_NEEDED_BY: Final = "the light emulator (or use Emulator, on websockets)"

_logger = logging.getLogger("anunzi_fast.emulator")
# picows logs through this logger, whose filter redacts secrets (a session path holds a token).
# Through an adapter: given a Logger, picows logs through a child per connection, whose
# records the parent's filter never sees.
_PICOWS_LOGGER = logging.getLogger("anunzi_fast.emulator.picows")
_PICOWS_LOG = logging.LoggerAdapter(_PICOWS_LOGGER)
# The largest message, as the websockets server's max_size (picows bounds frames only).
MAX_MESSAGE_BYTES: Final = 2**20
# Keepalive as websockets' defaults: a ping after 20 s of silence, 20 s for its pong.
PING_IDLE_SECONDS: Final = 20.0
PING_REPLY_SECONDS: Final = 20.0


def light_emulator_available() -> bool:
    """Whether picows (the ``load`` extra) is installed."""
    try:
        import picows  # noqa: F401
    except ImportError:
        return False
    return True


class LightEmulator(EmulatorBase):
    """The :class:`~anunzi_fast.emulator.Emulator` on picows, for load tests.

    Same arguments, routes, tokens, agent, faults and :attr:`sessions`; needs the ``load``
    extra. Measured with the load generator's calls (200 at once, this repository's
    sessions benchmark harness): 1.2 ms of CPU per session-second against 2.3 ms for the
    websockets server on asyncio's loop, 0.95 ms on uvloop (as ``load --emulator`` runs it).
    """

    def _setup(self) -> None:
        self._server: asyncio.Server | None = None
        self._live: set[_Session] = set()
        # Sessions waiting to send their next agent frame: (due time, tie-breaker, session).
        self._due: list[tuple[float, int, _Session]] = []
        self._order = itertools.count()
        self._pacer: asyncio.TimerHandle | None = None
        self._pacer_at = 0.0  # uvloop's timer handles do not tell when they fire
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving."""
        if self._server is not None:
            raise InvalidArgumentError("the emulator is already running")
        picows = import_picows(_NEEDED_BY)
        install_log_redaction((_PICOWS_LOGGER.name,))
        self._stopping = False
        self._server = await picows.ws_create_server(
            self._route, self.host, self._requested_port, max_frame_size=MAX_MESSAGE_BYTES,
            logger_name=_PICOWS_LOG, websocket_handshake_timeout=10,
            enable_auto_ping=True, auto_ping_idle_timeout=PING_IDLE_SECONDS,
            auto_ping_reply_timeout=PING_REPLY_SECONDS)

    async def _stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping = True  # upgrades from now on are refused (503)
        server.close()
        sessions = list(self._live)
        for session in sessions:
            session.close(1001, "the emulator is stopping")
        waits = [asyncio.ensure_future(s.record.closed.wait()) for s in sessions]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=CLOSE_WAIT_SECONDS + 1)
            for wait in pending:
                wait.cancel()
        for session in list(self._live):
            session.abort()
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None
        self._due.clear()
        # Connections still in their handshake end by its timeout at the latest.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), CLOSE_WAIT_SECONDS)
        self._server = None

    async def serve_forever(self) -> None:
        """Serve until cancelled; :meth:`stop` then closes the sessions (code 1001)."""
        if self._server is None:
            await self.start()
        # Not the server's own serve_forever: cancelled, it waits for every connection to
        # end before anyone has told them to.
        await asyncio.get_running_loop().create_future()

    def _listening(self) -> bool:
        return self._server is not None

    def _bound_port(self) -> int | None:
        sockets = list(self._server.sockets) if self._server is not None else []
        return int(sockets[0].getsockname()[1]) if sockets else None

    # --- HTTP ---------------------------------------------------------------------------------

    def _route(self, request: Any) -> Any:
        """picows' listener factory: a token answer, a refusal, or a session's listener."""
        path = request.path.decode("latin-1")
        route, assistant_id = route_of(path)
        if self._stopping:
            return _respond(HttpAnswer(503, b"the emulator is stopping\n"))
        if route == "token":
            return _respond(self.answer_token_request(
                assistant_id, request.headers.get("Authorization", ""),
                request.headers.get("Host")))
        if route != "start":
            return _respond(HttpAnswer(404, b"not found\n"))
        if not _asks_for_websocket(request.headers):
            # As websockets answers it; the token must not be spent on it.
            return _respond(HttpAnswer(426, b"Failed to open a WebSocket connection.\n",
                                       (("Upgrade", "websocket"),)))
        grant = self.redeem_start_path(path)
        if grant is None:
            _logger.info("refused a session: unknown, used or expired token")
            return _respond(HttpAnswer(403, b"invalid, used or expired session token\n"))
        return listener_class()(_Session(self, grant))

    # --- the speaking clock -------------------------------------------------------------------

    def _schedule(self, session: _Session, due: float) -> None:
        heapq.heappush(self._due, (due, next(self._order), session))
        session.scheduled = True
        if self._pacer is None or due < self._pacer_at - PACER_RESOLUTION:
            if self._pacer is not None:
                self._pacer.cancel()
            self._pacer = asyncio.get_running_loop().call_at(due, self._tick)
            self._pacer_at = due

    def _tick(self) -> None:
        self._pacer = None
        loop = asyncio.get_running_loop()
        # Frames due within the resolution go now: speaking up to the same horizon as the
        # one popped to, every session popped makes progress (uvloop's clock moves in ms).
        horizon = loop.time() + PACER_RESOLUTION
        due = self._due
        ready = []
        while due and due[0][0] <= horizon:
            ready.append(heapq.heappop(due)[2])
        try:
            for session in ready:
                session.scheduled = False
                next_due = session.speak_safely(horizon)
                if next_due is not None:
                    heapq.heappush(due, (next_due, next(self._order), session))
                    session.scheduled = True
        finally:
            if due:
                self._pacer_at = due[0][0]
                self._pacer = loop.call_at(self._pacer_at, self._tick)


def _respond(answer: HttpAnswer) -> Any:
    """picows' response for a plain HTTP answer (the connection closes after it)."""
    picows = import_picows(_NEEDED_BY)
    headers = {"Content-Type": answer.content_type, **dict(answer.headers)}
    headers[SERVER_HEADER[0]] = SERVER_HEADER[1]
    if answer.status >= 400:
        response = picows.WSUpgradeResponse.create_error_response(
            answer.status, answer.body, headers)
    else:
        response = picows.WSUpgradeResponse.create_ok_response(answer.body, headers)
    return picows.WSUpgradeResponseWithListener(response, None)


def _asks_for_websocket(headers: Any) -> bool:
    tokens = ",".join(headers.getall("Upgrade", [])).split(",")
    return any(token.strip().lower() == "websocket" for token in tokens)


class _Session:
    """One session: the protocol's bytes in and out, the agent, the answers waiting."""

    def __init__(self, emulator: LightEmulator, grant: SessionGrant) -> None:
        self.emulator = emulator
        self.fault = fault_of(grant.assistant_id)
        self.record = SessionRecord(grant.assistant_id, record_audio=emulator.record_audio)
        self.protocol = self.record.protocol
        self.agent = EchoAgent()
        # status_client_ready is what allows the agent to speak: answers to speech heard
        # before it are held, and follow the greeting.
        self.held, self.speech = Replies(self.record), Replies(self.record)
        self.transport: Any = None
        self.greeted = False
        self.paused = False
        self.scheduled = False
        self.closing = False
        self.gone = False
        self.answers_spoken = 0
        self.frames: Iterator[memoryview] | None = None  # the answer being spoken
        self.next_frame_at = 0.0
        self.fragment_kind: Any = None
        self.message_bytes = 0  # of the fragmented message under way
        self.text_parts: list[bytes] = []
        self.close_timer: asyncio.TimerHandle | None = None
        picows = import_picows(_NEEDED_BY)
        self.kinds = picows.WSMsgType
        self.binary = picows.WSMsgType.BINARY
        self.close_codes = picows.WSCloseCode

    # --- picows' callbacks --------------------------------------------------------------------

    def on_connected(self, transport: Any) -> None:
        self.transport = transport
        self.emulator._live.add(self)
        self.emulator.sessions.append(self.record)
        if self.fault is Fault.SLOW_READY:
            asyncio.get_running_loop().call_later(self.emulator.slow_ready_delay, self.greet)
        else:
            self.greet()

    def on_frame(self, frame: Any) -> None:
        try:
            if (frame.msg_type is self.binary and frame.fin and self.fragment_kind is None
                    and not self.closing and not frame.rsv1):
                self.on_audio(frame.get_payload_as_bytes())  # the usual frame, straight on
            else:
                self._on_frame(frame)
        except Exception:
            _logger.exception("an emulated session failed")
            self.close(1011, "emulator error")

    def on_disconnected(self) -> None:
        self.gone = True
        if self.close_timer is not None:
            self.close_timer.cancel()
        # No close frame either way (a dropped connection): no handshake at all.
        handshake = self.transport.close_handshake if self.transport else None
        received = handshake.recv if handshake is not None else None
        if received is None:
            self.record.close_code = 1006
        else:
            code = received.code.value
            self.record.close_code = 1005 if code == 0 else code
        self.emulator._live.discard(self)
        self.record.closed.set()

    # --- what the client says -----------------------------------------------------------------

    def greet(self) -> None:
        if self.gone or self.closing:
            return
        if self.fault is Fault.EXTRA_EVENTS:
            self.send_text(json.dumps({"type": "emulator_notice", "n": 1}))
        if self.fault is not Fault.NEVER_READY:
            self.send_text(self.protocol.encode_agent_ready())
        self.greeted = True
        self.start_speaking()

    def _on_frame(self, frame: Any) -> None:
        kinds = self.kinds
        kind = frame.msg_type
        if kind is kinds.CLOSE:
            if not self.transport.is_close_frame_sent:
                # An empty close frame has no code to echo: 1000 (code 0 is not a close code).
                code = (frame.get_close_code() if frame.payload_size >= 2
                        else self.close_codes.OK)
                self.transport.send_close(code, frame.get_close_message())
            self.closing = True
            self.finish()
            return
        if self.closing or kind not in (kinds.TEXT, kinds.BINARY, kinds.CONTINUATION):
            return  # pings are answered by picows; nothing counts after our close frame
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self.close(1002, "no extension was negotiated")
            return
        if kind is kinds.CONTINUATION:
            kind = self.fragment_kind
            if kind is None:
                self.close(1002, "continuation frame without a message")
                return
        elif self.fragment_kind is not None:
            self.close(1002, "new message inside a fragmented one")
            return
        self.fragment_kind = None if frame.fin else kind
        # Messages are bounded as the websockets server bounds them, fragmented ones too.
        self.message_bytes = 0 if frame.fin else self.message_bytes + frame.payload_size
        if self.message_bytes > MAX_MESSAGE_BYTES:
            self.close(1009, "message too big")
            return
        if kind is kinds.BINARY:  # audio is a byte stream: fragments need no assembly
            self.on_audio(frame.get_payload_as_bytes())
            return
        self.text_parts.append(frame.get_payload_as_bytes())
        if frame.fin:
            data, self.text_parts = b"".join(self.text_parts), []
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.close(1007, "invalid UTF-8")
                return
            self.on_text(text)

    def on_text(self, message: str) -> None:
        if receive_client_text(self.record, message, self.emulator.greeting, self.held,
                               self.speech):
            self.start_speaking()

    def on_audio(self, payload: bytes) -> None:
        record = self.record
        if record.record_audio:
            record.received += payload
        ready = self.protocol.peer_ready
        for event in self.protocol.receive_binary(payload):
            assert isinstance(event, UserAudio)
            for reply in self.agent.receive(event.samples):
                record.utterances += 1
                (self.speech if ready else self.held).put(reply)
                if ready:
                    self.start_speaking()

    # --- what the agent says ------------------------------------------------------------------

    def start_speaking(self) -> None:
        """Speak now if idle; a session already on the clock keeps its turn."""
        if self.scheduled or not self.greeted or self.gone or self.closing:
            return
        loop = asyncio.get_running_loop()
        next_due = self.speak_safely(loop.time())
        if next_due is not None:
            self.emulator._schedule(self, next_due)

    def speak_safely(self, now: float) -> float | None:
        """:meth:`speak`; a failure ends this session (1011), not every session's audio."""
        try:
            return self.speak(now)
        except Exception:
            _logger.exception("an emulated session failed")
            self.close(1011, "emulator error")
            return None

    def speak(self, now: float) -> float | None:
        """Send the frames due by ``now``; the time the next one is due, or ``None`` when
        there is nothing left to say (or the client does not read: resumed by picows)."""
        realtime = self.emulator.pace == "realtime"
        if self.transport.is_close_frame_sent:  # picows closed it (a protocol error)
            self.closing = True
        while not (self.gone or self.closing or self.paused):
            if self.frames is None:
                audio = self.speech.pop()
                if audio is None:
                    return None
                self.frames = self._frames_of(audio)
                # After a pause, speak now rather than catching up on the silent time.
                self.next_frame_at = max(self.next_frame_at, now)
            if realtime and self.next_frame_at > now:
                return self.next_frame_at
            frame = next(self.frames, None)
            if frame is None:
                self.frames = None
                self._after_answer()
                continue
            self.transport.send(self.binary, frame)
            if self.record.record_audio:
                self.record.sent += frame
            self.next_frame_at += len(frame) / 2 / AGENT_SAMPLE_RATE
        return None

    def _frames_of(self, audio: Any) -> Iterator[memoryview]:
        protocol = self.protocol
        if self.fault in (Fault.ODD_FRAMES, Fault.RAGGED_FRAMES):
            assert self.fault is not None
            return iter(split_frames(protocol.encode_audio(audio), self.fault))
        # Encoded (and counted) frame by frame, as each goes out.
        return (protocol.encode_audio(audio[at : at + FRAME_SAMPLES])
                for at in range(0, len(audio), FRAME_SAMPLES))

    def _after_answer(self) -> None:
        first = self.answers_spoken == 0
        self.answers_spoken += 1
        if self.fault is Fault.EXTRA_EVENTS:
            self.send_text(json.dumps({"type": "agent_transcript", "text": "..."}))
            self.send_text("this is {not json")
        if first and self.fault is Fault.ABRUPT_CLOSE:
            self.abort()
        elif first and self.fault is Fault.CLOSE_1011:
            self.close(1011, "emulated agent failure")

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.start_speaking()

    # --- the end ------------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self.transport.send(self.kinds.TEXT, text.encode())

    def close(self, code: int, reason: str) -> None:
        """Send a close frame; the connection goes when the client answers it, or soon after."""
        if self.gone or self.closing or self.transport is None:
            return
        self.closing = True
        self.transport.send_close(self.close_codes(code), reason.encode())
        # The client's answer ends it (finish); a client that does not answer, or does not
        # read, loses the connection after the wait.
        self.close_timer = asyncio.get_running_loop().call_later(CLOSE_WAIT_SECONDS, self.abort)

    def finish(self) -> None:
        """The close handshake is done: close the TCP connection once what is queued is
        written, or drop it after the wait if the client does not read it."""
        self.transport.disconnect()
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = asyncio.get_running_loop().call_later(CLOSE_WAIT_SECONDS, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        if self.gone or self.transport is None:
            return
        self.closing = True
        self.transport.disconnect(graceful=False)
