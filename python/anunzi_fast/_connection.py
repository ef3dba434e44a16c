"""Opening a session's WebSocket, and the deadlines that watch it.

:func:`open_websocket` connects with the right TLS and proxy choices and maps every failure
to one exception of :mod:`anunzi_fast.errors`, saying what happened and where (never the
URL: it carries the session token). :class:`ConnectionWatch` keeps two deadlines per
connection without a timer per message: ``status_agent_ready`` in time, and no send stuck
behind a service that stopped reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
    ProxyError,
)

from ._frames import write_binary
from ._net import (
    certificate_failure,
    describe_network_failure,
    environment_proxy,
    is_loopback_host,
    shared_ssl_context,
)
from .errors import (
    CertificateError,
    InvalidArgumentError,
    NetworkError,
    RemoteProtocolError,
    error_for_handshake_status,
)
from .retry import parse_retry_after

__all__ = ["ConnectionWatch", "open_websocket"]

_logger = logging.getLogger("anunzi_fast.client")


async def open_websocket(url: str, ws_options: dict[str, Any], *, from_caller: bool
                         ) -> ClientConnection:
    """Connect to a session URL; ``from_caller``: the URL came from the user, not the service.

    Raises:
        InvalidArgumentError: The caller's URL is not a ``ws://`` or ``wss://`` URL.
        SessionTokenRejectedError, ServerError, RateLimitedError, RemoteProtocolError: The
            handshake was refused, by status.
        CertificateError, NetworkError: The service could not be reached (what and where).
    """
    options = dict(ws_options)
    scheme = url.partition(":")[0].lower()
    try:
        host, port = urlsplit(url).hostname, urlsplit(url).port
    except ValueError:
        host, port = None, None  # ws_connect reports it below
    if scheme == "wss":
        options["ssl"] = shared_ssl_context()  # not a new CA bundle load per session
    if is_loopback_host(host):
        options["proxy"] = None  # loopback never goes through a proxy from the environment
    where = f"{host}:{port or (443 if scheme == 'wss' else 80)}"
    try:
        return await ws_connect(url, **options)
    except (OSError, TimeoutError) as exc:  # first: a certificate error is a ValueError too
        what = describe_network_failure(exc)
        if certificate_failure(exc) is not None:
            raise CertificateError(f"could not connect the session to {where}: {what}"
                                   ) from exc
        proxy = environment_proxy(scheme, host)
        via = f" via the proxy {proxy}" if proxy else ""
        raise NetworkError(f"could not connect the session to {where}{via}: {what}"
                           ) from exc
    except (InvalidURI, InvalidProxy, ValueError):  # ValueError: e.g. a port out of range
        # Not chained: the cause's message may spell out the URL, token included.
        if from_caller:
            raise InvalidArgumentError(
                "the session URL is not a valid ws:// or wss:// URL") from None
        raise RemoteProtocolError(
            "the token route returned a session URL that cannot be connected to") from None
    except InvalidStatus as exc:
        response = exc.response
        raise error_for_handshake_status(
            response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After"))) from exc
    except ProxyError as exc:
        named = environment_proxy(scheme, host) or "from the environment"
        raise NetworkError(f"could not connect the session to {where} via the proxy "
                           f"{named}: {type(exc).__name__}") from exc
    except InvalidHandshake as exc:
        raise RemoteProtocolError(
            f"the WebSocket handshake with {where} failed: {type(exc).__name__}") from exc


class ConnectionWatch:
    """The deadlines of a call's current connection, checked without a timer per message.

    Args:
        agent_ready_timeout: Seconds a new connection has to deliver ``status_agent_ready``;
            past it ``on_not_ready()`` is asked, and the connection is closed (1002) if it
            says so. ``None``: no limit.
        send_timeout: Seconds one send may wait. A service that stops reading fills the send
            buffer, and the send, the keepalive pings and the closing handshake then all wait
            for ever: past this the connection is aborted (the reader then sees it lost).
    """

    def __init__(self, *, agent_ready_timeout: float | None, send_timeout: float | None,
                 on_not_ready: Callable[[], bool]) -> None:
        self._agent_ready_timeout = agent_ready_timeout
        self._send_timeout = send_timeout
        self._on_not_ready = on_not_ready
        self._connection: ClientConnection | None = None
        self._ready_timer: asyncio.TimerHandle | None = None
        self._send_check: asyncio.TimerHandle | None = None
        self.send_started: float | None = None  # when the pending send began
        self._closing: asyncio.Future[None] | None = None  # kept: a task must be referenced

    def connected(self, connection: ClientConnection) -> None:
        """A new connection: its agent-ready clock starts, and sends are watched."""
        self.stop()
        self._connection = connection
        loop = asyncio.get_running_loop()
        if self._agent_ready_timeout is not None:
            self._ready_timer = loop.call_later(self._agent_ready_timeout, self._not_ready,
                                                connection)
        if self._send_timeout is not None:
            self._send_check = loop.call_later(self._check_interval(), self._check_sends)

    def agent_ready(self) -> None:
        """``status_agent_ready`` arrived on the current connection."""
        if self._ready_timer is not None:
            self._ready_timer.cancel()
            self._ready_timer = None

    def stop(self) -> None:
        """The connection ended: no more deadlines."""
        self.agent_ready()
        if self._send_check is not None:
            self._send_check.cancel()
            self._send_check = None
        self._connection = None

    async def send(self, connection: ClientConnection, message: str | memoryview) -> None:
        """``connection.send(message)`` under the send deadline."""
        if not isinstance(message, str) and write_binary(connection, message):
            return  # written as websockets would, without its per-message overhead
        # Two stores instead of a timer per send: _check_sends reads the start time.
        self.send_started = time.monotonic()
        try:
            await connection.send(message)
        finally:
            self.send_started = None

    def _check_interval(self) -> float:
        return min(1.0, (self._send_timeout or 4.0) / 4)

    def _check_sends(self) -> None:
        connection, started = self._connection, self.send_started
        if connection is None or self._send_timeout is None:
            return
        if started is not None and time.monotonic() - started > self._send_timeout:
            _logger.warning("a send waited over %.1f s: the service stopped reading; aborting "
                            "the connection", self._send_timeout)
            self.send_started = None
            connection.transport.abort()
        self._send_check = asyncio.get_running_loop().call_later(self._check_interval(),
                                                                 self._check_sends)

    def _not_ready(self, connection: ClientConnection) -> None:
        self._ready_timer = None
        if connection is self._connection and self._on_not_ready():
            # The service broke the protocol by never getting ready.
            self._closing = asyncio.ensure_future(
                connection.close(1002, "status_agent_ready not received"))
