"""What both emulator servers share: their settings, the token route and the session records.

The token route is answered here as a plain :class:`HttpAnswer`; :mod:`.server` (websockets)
and :mod:`.light` (picows) turn it into their own HTTP response.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import numpy.typing as npt

from .._redact import install_log_redaction
from ..errors import InvalidArgumentError
from .agent import default_greeting
from .session import Fault, Pace, SessionRecord
from .tokens import SessionGrant, TokenStore

__all__ = [
    "DEFAULT_API_KEY",
    "START_ROUTE",
    "TOKEN_ROUTE",
    "EmulatorBase",
    "HttpAnswer",
    "route_of",
]

DEFAULT_API_KEY = "emulator-key"
TOKEN_ROUTE = "/websocket/token/"
START_ROUTE = "/websocket/start"


@dataclass(frozen=True)
class HttpAnswer:
    """A plain HTTP answer of the emulator: status, body and extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "text/plain; charset=utf-8"


class EmulatorBase:
    """Settings, tokens, fault counters and session records of an emulator (see
    :class:`~anunzi_fast.emulator.Emulator` for the arguments)."""

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
        install_log_redaction()
        self._stopping_task: asyncio.Future[None] | None = None
        self._setup()

    def _setup(self) -> None:
        """The server's own state (called last by ``__init__``)."""

    # --- lifecycle (each server provides these) ----------------------------------------------

    async def start(self) -> None:
        """Bind and start serving."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Close every session (code 1001) and stop listening; a second call while the first
        is under way waits for it."""
        if self._stopping_task is None:
            if not self._listening():
                return
            self._stopping_task = asyncio.ensure_future(self._stop())
            self._stopping_task.add_done_callback(self._stopped)
        await asyncio.shield(self._stopping_task)

    def _stopped(self, task: asyncio.Future[None]) -> None:
        self._stopping_task = None

    async def _stop(self) -> None:
        """The server's own way of closing its sessions and stopping (called once)."""
        raise NotImplementedError

    def _listening(self) -> bool:
        """Whether started and not yet stopped (also while stopping)."""
        raise NotImplementedError

    def _bound_port(self) -> int | None:
        """The port once listening, else ``None``."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
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
        port = self._bound_port()
        if port is None:
            raise InvalidArgumentError("the emulator is not running")
        return port

    @property
    def base_url(self) -> str:
        """``http://host:port``, the ``base_url`` for :func:`anunzi_fast.request_session_url`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def issue_session_url(self, assistant_id: str = "echo") -> str:
        """A session URL without going through the token route (for tests)."""
        return f"ws{self.base_url[4:]}{START_ROUTE}?token={self.tokens.issue(assistant_id)}"

    # --- HTTP ---------------------------------------------------------------------------------

    def answer_token_request(
        self, assistant_id: str, authorization: str, host: str | None
    ) -> HttpAnswer:
        """The token route's answer for ``assistant_id`` (already unquoted)."""
        self.token_requests += 1
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(key.encode(), known.encode()) for known in self.api_keys
        ):
            return HttpAnswer(401, b"missing or wrong API key\n")
        if not assistant_id or "/" in assistant_id:
            return HttpAnswer(400, b"bad assistant id\n")
        if self.assistant_ids is not None and assistant_id not in self.assistant_ids:
            return HttpAnswer(404, b"unknown assistant\n")
        if assistant_id == Fault.FORBIDDEN:
            return HttpAnswer(403, b"this key may not use this assistant\n")
        if assistant_id == Fault.BAD_BODY:
            return HttpAnswer(200, b"<html>surprise</html>", content_type="text/html")
        if assistant_id in (Fault.RATE_LIMITED, Fault.SERVER_ERROR):
            count = self._fault_counts.get(assistant_id, 0) + 1
            self._fault_counts[assistant_id] = count
            if count <= self.fault_repeats:
                if assistant_id == Fault.SERVER_ERROR:
                    return HttpAnswer(503, b"try again later\n")
                return HttpAnswer(429, b"slow down\n", (("Retry-After", f"{self.retry_after:g}"),))
        host = host or self.base_url.split("//", 1)[1]
        token = self.tokens.issue(assistant_id)
        body = json.dumps({"sessionURL": f"ws://{host}{START_ROUTE}?token={token}"})
        return HttpAnswer(200, body.encode(), content_type="application/json")

    def redeem_start_path(self, path: str) -> SessionGrant | None:
        """The grant of a ``/websocket/start?token=`` path, spending the token; ``None`` if the
        token is unknown, used or expired."""
        token = parse_qs(urlsplit(path).query).get("token", [None])[0]
        return self.tokens.redeem(token)


def route_of(path: str) -> tuple[str, str]:
    """``("token", assistant_id)``, ``("start", "")`` or ``("other", "")`` for a request path."""
    route = urlsplit(path).path
    if route.startswith(TOKEN_ROUTE):
        return "token", unquote(route[len(TOKEN_ROUTE):])
    if route == START_ROUTE:
        return "start", ""
    return "other", ""
