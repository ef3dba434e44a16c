"""The error tree and its one map from codes (HTTP, handshake, close, exit) to classes."""

from __future__ import annotations

import inspect

import pytest

from anunzi_fast import errors
from anunzi_fast.errors import (
    EXIT_CODES,
    AnunziError,
    AssistantNotFoundError,
    AuthenticationError,
    BadRequestError,
    CallerError,
    CredentialsError,
    NetworkError,
    PeerError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteProtocolError,
    ServerError,
    SessionClosedError,
    SessionTokenRejectedError,
    error_for_close,
    error_for_handshake_status,
    error_for_token_status,
    exit_code_for,
)

FAULT_FAMILIES = (CallerError, CredentialsError, PeerError, NetworkError)
ALL_CLASSES = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
               if issubclass(cls, AnunziError)]


def test_every_error_has_exactly_one_fault_family() -> None:
    for cls in ALL_CLASSES:
        if cls is AnunziError or cls in FAULT_FAMILIES:
            continue
        families = [family for family in FAULT_FAMILIES if issubclass(cls, family)]
        assert len(families) == 1, (cls, families)


@pytest.mark.parametrize("status", range(100, 600))
def test_every_token_route_status_maps_to_one_class(status: int) -> None:
    error = error_for_token_status(status, assistant_id="asst-1")
    expected = {200: None, 400: BadRequestError, 401: AuthenticationError,
                403: PermissionDeniedError, 404: AssistantNotFoundError,
                429: RateLimitedError}.get(status, ServerError if status >= 500 else
                                           RemoteProtocolError)
    assert (None if error is None else type(error)) is expected


@pytest.mark.parametrize("status", [s for s in range(100, 600) if s != 101])
def test_every_handshake_status_maps_to_one_class(status: int) -> None:
    expected = {401: SessionTokenRejectedError, 403: SessionTokenRejectedError,
                429: RateLimitedError}.get(status, ServerError if status >= 500 else
                                           RemoteProtocolError)
    assert type(error_for_handshake_status(status)) is expected


def test_a_403_means_permission_denied_on_both_routes() -> None:
    # The token route and the handshake used to disagree on what 403 meant.
    assert isinstance(error_for_token_status(403, assistant_id="a"), PermissionDeniedError)
    assert isinstance(error_for_handshake_status(403), PermissionDeniedError)


@pytest.mark.parametrize("code", [None, *range(1000, 1016), 3000, 4000, 4999])
@pytest.mark.parametrize("failed_locally", [False, True])
def test_every_close_code_maps_to_one_class(code: int | None, failed_locally: bool) -> None:
    error = error_for_close(code, "", failed_locally=failed_locally)
    if code in (None, 1000, 1001):
        assert type(error) is SessionClosedError
    elif failed_locally and code in (1002, 1007, 1009):
        assert type(error) is RemoteProtocolError
    elif code == 1006:
        assert type(error) is errors.ConnectionLostError
    else:
        assert type(error) is ServerError and error.status == code


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_has_one_exit_code(cls: type[AnunziError]) -> None:
    error = cls.__new__(cls)  # no constructor arguments needed to ask the map
    code = exit_code_for(error)
    nearest = next(base for base in cls.__mro__ if base in EXIT_CODES)
    assert code == EXIT_CODES[nearest]
    if issubclass(cls, (CredentialsError, AssistantNotFoundError)):
        assert code == errors.EXIT_CREDENTIALS
    elif issubclass(cls, CallerError) and cls is not SessionClosedError:
        assert code == errors.EXIT_USAGE
    else:
        assert code == errors.EXIT_NETWORK


def test_close_reasons_are_shown_without_secrets() -> None:
    error = error_for_close(1011, "failed for https://u:pw@h?token=abcdef123456")
    assert "pw" not in str(error) and "abcdef123456" not in str(error)
