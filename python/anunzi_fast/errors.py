"""The exceptions raised by anunzi-fast.

Every exception derives from :class:`AnunziError`. The second level says whose fault it is,
which is what an application needs to decide what to do next:

- :class:`CallerError`: the arguments or the call sequence are wrong; fix the calling code.
- :class:`CredentialsError`: the API key or the session token was refused; fix the credentials.
- :class:`PeerError`: the service misbehaved, is overloaded or failed; retry later or report it.
- :class:`NetworkError`: the service could not be reached or the connection was lost.

No message ever contains the API key or a session token.
"""

from __future__ import annotations

__all__ = [
    "AnunziError",
    "AssistantNotFoundError",
    "AudioDeviceError",
    "AuthenticationError",
    "BadRequestError",
    "CallerError",
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


class SessionTokenRejectedError(CredentialsError):
    """The WebSocket handshake was refused with HTTP 403.

    The session token in the session URL is unknown, already used or expired: session URLs are
    single-use and short-lived, so request a fresh one for every connection.
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


# --- the network's fault ----------------------------------------------------------------------


class NetworkError(AnunziError):
    """The service could not be reached in time."""


class ConnectionLostError(NetworkError):
    """The WebSocket connection broke without a closing handshake.

    Attributes:
        code: The close code observed locally (1006 for an abnormal closure).
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
