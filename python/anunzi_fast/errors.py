"""The exceptions raised by anunzi-fast.

Every exception derives from :class:`AnunziError`. The second level says whose fault it is,
which is what an application needs to decide what to do next:

- :class:`CallerError`: the arguments or the call sequence are wrong; fix the calling code.
- :class:`CredentialsError`: the API key or the session token was refused; fix the credentials.
- :class:`PeerError`: the service misbehaved, is overloaded or failed; retry later or report it.
- :class:`NetworkError`: the service could not be reached or the connection was lost.

No message ever contains the API key or a session token.

Every code the package meets is mapped to its exception here and nowhere else: HTTP statuses
of the token route (:func:`error_for_token_status`) and of the WebSocket handshake
(:func:`error_for_handshake_status`), WebSocket close codes (:func:`error_for_close`), and
the command line's exit codes (:func:`exit_code_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ._redact import redact

__all__ = [
    "ABNORMAL_CLOSURE",
    "CLEAN_CLOSE_CODES",
    "EXIT_CODES",
    "EXIT_CREDENTIALS",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOCAL_PROTOCOL_FAILURES",
    "AgentNotReadyError",
    "AnunziError",
    "AssistantNotFoundError",
    "AudioDeviceError",
    "AuthenticationError",
    "BadRequestError",
    "CallerError",
    "CertificateError",
    "ConnectionLostError",
    "CredentialsError",
    "InvalidArgumentError",
    "NetworkError",
    "PeerError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RemoteProtocolError",
    "ServerError",
    "SessionClosedError",
    "SessionTokenRejectedError",
    "error_for_close",
    "error_for_handshake_status",
    "error_for_token_status",
    "exit_code_for",
    "is_transient",
]


class AnunziError(Exception):
    """Root of every exception raised by anunzi-fast."""


# --- the caller's fault -----------------------------------------------------------------------


class CallerError(AnunziError):
    """The caller used the API wrongly: bad arguments or a call at the wrong time."""


class InvalidArgumentError(CallerError, ValueError):
    """An argument was rejected before any I/O took place."""


class AudioDeviceError(CallerError):
    """No usable audio device: ``sounddevice`` or PortAudio is missing, or the device failed."""


class BadRequestError(CallerError):
    """The service answered HTTP 400: the request it received was malformed."""


class AssistantNotFoundError(CallerError):
    """The service answered HTTP 404: no assistant has this id.

    Attributes:
        assistant_id: The id that was not found (an id is not a secret).
    """

    def __init__(self, assistant_id: str) -> None:
        super().__init__(f"no assistant with id {assistant_id!r} (HTTP 404)")
        self.assistant_id = assistant_id


class SessionClosedError(CallerError):
    """The session is closed; a new one is needed to send or receive more.

    Attributes:
        code: The WebSocket close code, or ``None`` if the connection never opened.
        reason: The close reason sent by the peer (may be empty).
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


# --- the credentials' fault -------------------------------------------------------------------


class CredentialsError(AnunziError):
    """The service refused the credentials (API key or session token)."""


class AuthenticationError(CredentialsError):
    """HTTP 401: the API key is missing or wrong."""


class PermissionDeniedError(CredentialsError):
    """HTTP 403: the API key is valid but may not use this assistant."""


class SessionTokenRejectedError(PermissionDeniedError):
    """The WebSocket handshake was refused with HTTP 401 or 403.

    The session token in the session URL is unknown, already used or expired: session URLs are
    single-use and short-lived, so request a fresh one for every connection. A kind of
    :class:`PermissionDeniedError`, so that a 403 means the same class family wherever it comes
    from.
    """


# --- the peer's fault -------------------------------------------------------------------------


class PeerError(AnunziError):
    """The service failed, is overloaded, or broke the documented protocol."""


class RateLimitedError(PeerError):
    """HTTP 429 after all retries.

    Attributes:
        retry_after: Seconds the service asked to wait, if it said so.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(PeerError):
    """HTTP 5xx after all retries, or a session closed by the service with an error code.

    Attributes:
        status: The HTTP status or WebSocket close code.
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class RemoteProtocolError(PeerError):
    """The service answered something the protocol does not allow."""


class AgentNotReadyError(PeerError):
    """The service did not send ``status_agent_ready`` within ``agent_ready_timeout``.

    Attributes:
        timeout: The seconds waited.
    """

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


# --- the network's fault ----------------------------------------------------------------------


class NetworkError(AnunziError):
    """The service could not be reached in time."""


class CertificateError(NetworkError):
    """The service's TLS certificate failed verification; never retried (it will not heal)."""


class ConnectionLostError(NetworkError):
    """The WebSocket connection broke without a closing handshake.

    Attributes:
        code: The close code observed locally (1006 for an abnormal closure).
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


# --- the one map from codes to exceptions ---------------------------------------------------

# Token route: GET {base}/websocket/token/{assistant_id} (PROTOCOL.md, section 1).
_TOKEN_ROUTE_MESSAGES: Final[Mapping[int, str]] = {
    400: "the token route answered HTTP 400 (bad request)",
    401: "the API key was refused (HTTP 401): check it",
    429: "the token route is rate limiting this client (HTTP 429)",
}


def error_for_token_status(
    status: int, *, assistant_id: str, retry_after: float | None = None
) -> AnunziError | None:
    """The error of a token-route answer with HTTP ``status``; ``None`` for 200."""
    if status == 200:
        return None
    if status == 400:
        return BadRequestError(_TOKEN_ROUTE_MESSAGES[400])
    if status == 401:
        return AuthenticationError(_TOKEN_ROUTE_MESSAGES[401])
    if status == 403:
        return PermissionDeniedError(
            f"the API key may not use assistant {assistant_id!r} (HTTP 403)")
    if status == 404:
        return AssistantNotFoundError(assistant_id)
    if status == 429:
        return RateLimitedError(_TOKEN_ROUTE_MESSAGES[429], retry_after=retry_after)
    if 500 <= status <= 599:
        return ServerError(f"the token route failed with HTTP {status}", status=status)
    return RemoteProtocolError(f"the token route answered an unexpected HTTP {status}")


def error_for_handshake_status(status: int, *, retry_after: float | None = None) -> AnunziError:
    """The error of a WebSocket handshake refused with HTTP ``status`` (never 101)."""
    if status in (401, 403):
        return SessionTokenRejectedError(
            f"the session token was refused (HTTP {status}): it is unknown, already used or "
            "expired; request a new session URL for every connection")
    if status == 429:
        return RateLimitedError("the session route is rate limiting this client (HTTP 429)",
                                retry_after=retry_after)
    if 500 <= status <= 599:
        return ServerError(f"the WebSocket handshake failed with HTTP {status}", status=status)
    return RemoteProtocolError(f"the WebSocket handshake failed with HTTP {status}")


CLEAN_CLOSE_CODES: Final = frozenset({1000, 1001})
ABNORMAL_CLOSURE: Final = 1006
# Codes with which the client itself fails the connection because of what the service sent.
LOCAL_PROTOCOL_FAILURES: Final[Mapping[int, str]] = {
    1002: "the service broke the WebSocket protocol",
    1007: "the service sent invalid data (text that is not UTF-8)",
    1009: "the service sent a message larger than max_size",
}


def error_for_close(code: int | None, reason: str = "", *, failed_locally: bool = False
                    ) -> AnunziError:
    """Why a session with this close code can no longer be used.

    Args:
        code: The close code, ``None`` if the connection never opened.
        reason: The close reason (shown with secrets redacted).
        failed_locally: Whether this side closed with ``code`` because of what the peer sent
            (the peer never answered the close frame).
    """
    detail = f"code {code}" + (f", reason {redact(reason)!r}" if reason else "")
    if code is None or code in CLEAN_CLOSE_CODES:
        return SessionClosedError(f"the session is closed ({detail})", code=code, reason=reason)
    if failed_locally and code in LOCAL_PROTOCOL_FAILURES:
        return RemoteProtocolError(
            f"{LOCAL_PROTOCOL_FAILURES[code]}; the client closed the session ({detail})")
    if code == ABNORMAL_CLOSURE:
        return ConnectionLostError(
            "the connection was lost without a closing handshake (code 1006)", code=code)
    return ServerError(f"the service ended the session abnormally ({detail})", status=code)


def is_transient(error: AnunziError) -> bool:
    """Whether trying again later may succeed (rate limits, server and network failures)."""
    return isinstance(error, (RateLimitedError, ServerError, NetworkError)) and not isinstance(
        error, CertificateError)


EXIT_OK: Final = 0
EXIT_INTERNAL: Final = 1
EXIT_USAGE: Final = 2
EXIT_CREDENTIALS: Final = 3
EXIT_NETWORK: Final = 4
EXIT_INTERRUPTED: Final = 130

# The command line's exit code per class; a class not listed takes its nearest base's code.
EXIT_CODES: Final[Mapping[type[AnunziError], int]] = {
    AnunziError: EXIT_NETWORK,
    CallerError: EXIT_USAGE,
    SessionClosedError: EXIT_NETWORK,  # the service ended the call: not a usage error
    AssistantNotFoundError: EXIT_CREDENTIALS,
    CredentialsError: EXIT_CREDENTIALS,
    PeerError: EXIT_NETWORK,
    NetworkError: EXIT_NETWORK,
}


def exit_code_for(error: AnunziError) -> int:
    """The exit code of a failure, by whose fault it is (see :data:`EXIT_CODES`)."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_NETWORK
