"""Requesting a session URL: step 1 of the protocol.

The token route ``GET {base_url}/websocket/token/{assistant_id}`` exchanges the API key for a
single-use, short-lived session URL. :func:`request_session_url` (async) and
:func:`request_session_url_sync` check their arguments before any I/O, retry HTTP 429, 5xx and
connection failures as :class:`~anunzi_fast.retry.RetryPolicy` says, all within one total
deadline whatever the peer does, and map every failure to one exception of
:mod:`anunzi_fast.errors`.

What the service may answer is bounded: at most :data:`MAX_ANSWER_BYTES` of decoded body (a
compressed answer is inflated under the same cap), and a plain ``ws://`` session URL only
from a plain ``http://`` token route or for a loopback host, so that the session token never
crosses a network in clear after an ``https://`` request. Loopback requests never go through a
proxy set in the environment.

The API key and the session token are credentials: they never appear in an exception message or
a repr, and the log redaction of :mod:`anunzi_fast._redact` is installed by every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import zlib
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, cast
from urllib.parse import urlsplit

import httpx

from ._net import (
    SocketWatchdog,
    certificate_failure,
    describe_network_failure,
    environment_proxy,
    is_loopback_host,
    shared_ssl_context,
)
from ._redact import install_log_redaction, redact, redact_url, register_secret
from .errors import (
    AnunziError,
    CertificateError,
    InvalidArgumentError,
    NetworkError,
    RemoteProtocolError,
    error_for_token_status,
)
from .retry import RetryPolicy, RetrySchedule, parse_retry_after

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "MAX_ANSWER_BYTES",
    "RetryPolicy",
    "SessionURL",
    "parse_retry_after",
    "request_session_url",
    "request_session_url_sync",
    "token_route_url",
]

DEFAULT_BASE_URL: Final = "https://widgets.anunzi.net"
API_KEY_ENV: Final = "ANUNZI_API_KEY"
# The answer is a JSON object holding one URL: a few hundred bytes. Anything near this is not it.
MAX_ANSWER_BYTES: Final = 16 * 1024

_logger = logging.getLogger(__name__)

# Messages kept as constants so that tests can match them and none of them can format a secret.
MSG_NO_API_KEY: Final = (
    f"no API key: pass api_key or set the {API_KEY_ENV} environment variable")
MSG_BAD_API_KEY: Final = (
    "the API key is empty or contains whitespace, control or non-ASCII characters")
MSG_BAD_BODY: Final = (
    "the token route answered 200 without a JSON object holding a 'sessionURL' string")
MSG_BAD_SESSION_URL: Final = (
    "the token route returned a sessionURL that is not a ws:// or wss:// URL")
MSG_PLAINTEXT_SESSION: Final = (
    "the token route, reached over https, returned a plain ws:// session URL for a remote "
    "host: refused, as the session token would cross the network unencrypted")
MSG_UNDECODABLE: Final = "the token route's answer could not be decoded"
MSG_TOO_LARGE: Final = (
    f"the token route's answer is larger than {MAX_ANSWER_BYTES} bytes: not a session URL")


# --- arguments --------------------------------------------------------------------------------


class SessionURL(str):
    """A session URL: a ``str`` usable as is, whose repr hides the token it carries."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SessionURL({redact(str.__str__(self))!r})"


def _validate_api_key(api_key: str | None) -> str:
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
    if api_key is None:
        raise InvalidArgumentError(MSG_NO_API_KEY)
    if not isinstance(api_key, str):
        raise InvalidArgumentError("the API key must be a str")
    # Header values must be visible ASCII: anything else is a paste accident or an injection.
    if not api_key or any(not ("!" <= ch <= "~") for ch in api_key):
        raise InvalidArgumentError(MSG_BAD_API_KEY)
    return api_key


_FORBIDDEN_IN_ASSISTANT_ID: Final = ("/", "\\", "?", "#", "%", "..")


def _validate_assistant_id(assistant_id: str) -> str:
    if not isinstance(assistant_id, str) or not assistant_id:
        raise InvalidArgumentError("the assistant id must be a non-empty str")
    # Any of these would change which path the request reaches, not just name an assistant.
    if (
        any(part in assistant_id for part in _FORBIDDEN_IN_ASSISTANT_ID)
        or assistant_id == "."
        or any(not ch.isprintable() or ch.isspace() for ch in assistant_id)
    ):
        raise InvalidArgumentError(
            f"invalid assistant id {assistant_id!r}: it may not contain '/', '\\', '?', '#', "
            "'%', '..', whitespace or control characters"
        )
    return assistant_id


def _validate_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise InvalidArgumentError("the base URL must be a str")
    try:
        parts = urlsplit(base_url)
        has_credentials = bool(parts.username or parts.password)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        raise InvalidArgumentError("the base URL cannot be parsed") from None
    if has_credentials:
        # Never echoed: the userinfo is a credential.
        raise InvalidArgumentError("the base URL may not carry credentials (user:password@)")
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidArgumentError(
            f"base URL must be an http:// or https:// URL: {redact_url(base_url)!r}")
    if parts.query or parts.fragment:
        raise InvalidArgumentError("base URL may not carry a query or a fragment")
    return base_url.rstrip("/")


def token_route_url(assistant_id: str, base_url: str = DEFAULT_BASE_URL) -> str:
    """Return the token route URL for ``assistant_id``, after validating both parts."""
    return f"{_validate_base_url(base_url)}/websocket/token/{_validate_assistant_id(assistant_id)}"


# --- the answer -------------------------------------------------------------------------------


def _parse_session_url(body: bytes, route_url: str) -> SessionURL:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        # Raised below, outside this block: the error must not keep a UnicodeDecodeError as
        # its context, which holds the whole body, token included, in its .object.
        answer = None
    url = answer.get("sessionURL") if isinstance(answer, dict) else None
    if not isinstance(url, str):
        raise RemoteProtocolError(MSG_BAD_BODY)
    token = _token_of(url)
    if token:
        register_secret(token)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port  # raises for a port out of range or not a number
    except ValueError:
        raise RemoteProtocolError(MSG_BAD_SESSION_URL) from None  # the cause may show the URL
    if parts.scheme not in ("ws", "wss") or not host or port == 0:
        raise RemoteProtocolError(MSG_BAD_SESSION_URL)
    if (parts.scheme == "ws" and urlsplit(route_url).scheme == "https"
            and not is_loopback_host(host)):
        raise RemoteProtocolError(MSG_PLAINTEXT_SESSION)
    return SessionURL(url)


def _token_of(url: str) -> str | None:
    match = re.search(r"token=([^&#\s]+)", url)
    return match.group(1) if match else None


class _AnswerTooLarge(Exception):
    pass


class _CappedBody:
    """Collects a body as it arrives, inflating it if compressed, never past ``limit`` bytes.

    The request asks for ``identity``; a peer that compresses anyway gets its gzip or deflate
    inflated here, chunk by chunk with a bounded output, so a small bomb cannot inflate to
    hundreds of megabytes before the cap is checked.
    """

    def __init__(self, content_encoding: str, limit: int = MAX_ANSWER_BYTES) -> None:
        encoding = content_encoding.strip().lower()
        self._inflater: Any = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif encoding not in ("", "identity"):
            raise httpx.DecodingError(f"unsupported Content-Encoding {encoding[:40]!r}")
        self._limit = limit
        self._body = bytearray()

    def feed(self, chunk: bytes) -> None:
        if self._inflater is None:
            self._append(chunk)
            return
        try:
            while chunk:
                self._append(self._inflater.decompress(chunk, self._limit + 1 - len(self._body)))
                chunk = self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise httpx.DecodingError("broken compressed body") from exc

    def _append(self, data: bytes) -> None:
        self._body += data
        if len(self._body) > self._limit:
            raise _AnswerTooLarge

    def value(self) -> bytes:
        if self._inflater is not None:
            with contextlib.suppress(zlib.error):
                self._append(self._inflater.flush())
        return bytes(self._body)


# --- the exchange, without I/O ----------------------------------------------------------------


@dataclass(frozen=True)
class _Get:
    """Step of :func:`_token_exchange`: perform this GET and send back what happened."""

    url: str
    headers: dict[str, str] = field(repr=False)  # the Authorization header is a secret
    timeout: float


@dataclass(frozen=True)
class _Wait:
    """Step of :func:`_token_exchange`: wait this long, then send back ``None``."""

    seconds: float


# What an attempt ends with: the answer (its body read, under the cap), or why there is none.
_Outcome: TypeAlias = "httpx.Response | httpx.HTTPError | AnunziError | None"


def _error_of(outcome: httpx.Response | httpx.HTTPError | AnunziError, url: str,
              assistant_id: str) -> AnunziError | None:
    if isinstance(outcome, AnunziError):
        return outcome
    if isinstance(outcome, httpx.Response):
        return error_for_token_status(
            outcome.status_code, assistant_id=assistant_id,
            retry_after=parse_retry_after(outcome.headers.get("Retry-After")))
    error: AnunziError
    if isinstance(outcome, httpx.TransportError):
        error = _network_error(outcome, url)
    else:  # a body httpx cannot decode (e.g. broken gzip) or another peer-caused HTTP error
        detail = MSG_UNDECODABLE if isinstance(outcome, httpx.DecodingError) else (
            "the token route's answer was not usable")
        error = RemoteProtocolError(f"{detail}: {type(outcome).__name__}")
    error.__cause__ = outcome
    return error


def _network_error(exc: httpx.TransportError, url: str) -> NetworkError:
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    what = describe_network_failure(exc)
    if certificate_failure(exc) is not None:
        return CertificateError(f"request to {where} failed: {what}")
    proxy = environment_proxy(parts.scheme, parts.hostname)
    if proxy is not None:
        return NetworkError(f"request to {where} via the proxy {proxy} failed: {what} "
                            "(set no_proxy to bypass it)")
    return NetworkError(f"request to {where} failed: {what}")


def _token_exchange(
    assistant_id: str, url: str, headers: dict[str, str], policy: RetryPolicy
) -> Generator[_Get | _Wait, _Outcome, SessionURL]:
    """The whole retry loop without I/O, shared by the async and the sync request.

    Yields the next step; is sent the outcome of each GET; returns the session URL or raises
    the final error.
    """
    schedule = RetrySchedule(policy)
    while True:
        outcome = yield _Get(url, headers, schedule.attempt_timeout())
        assert outcome is not None
        error = _error_of(outcome, url, assistant_id)
        if error is None:
            assert isinstance(outcome, httpx.Response)
            return _parse_session_url(outcome.content, url)
        delay = schedule.delay_before_retry(error)
        if delay is None:
            if schedule.attempts > 1 and error.args:
                error.args = (f"{error.args[0]} (after {schedule.attempts} attempts)",)
            raise error
        _logger.debug("token request attempt %d failed (%s); retrying in %.2fs",
                      schedule.attempts, error, delay)
        yield _Wait(delay)


def _attempt_timed_out() -> httpx.TimeoutException:
    return httpx.TimeoutException("the attempt ran out of time")


def _body_of(response: httpx.Response) -> _CappedBody | None:
    """The body of a response already in memory (e.g. from a mock transport), else None."""
    if not response.is_stream_consumed:
        return None
    body = _CappedBody("")  # httpx decoded it when it read it
    body.feed(response.content)
    return body


def _answer(response: httpx.Response, body: bytes) -> httpx.Response:
    # The body is decoded already: the new response must not decode it again.
    headers = response.headers.copy()
    headers.pop("Content-Encoding", None)
    return httpx.Response(response.status_code, headers=headers, content=body,
                          request=response.request)


# --- the two twins ----------------------------------------------------------------------------


def _prepare(
    assistant_id: str, api_key: str | None, base_url: str
) -> tuple[str, dict[str, str]]:
    install_log_redaction()
    url = token_route_url(assistant_id, base_url)
    key = _validate_api_key(api_key)
    register_secret(key)
    # identity: the answer is tiny, and a compressed one would have to be inflated to be capped.
    return url, {"Authorization": f"Bearer {key}", "Accept": "application/json",
                 "Accept-Encoding": "identity"}


def _client_options(url: str) -> dict[str, Any]:
    # Loopback never goes through a proxy: *_proxy variables are common on CI and corporate
    # machines, and a local emulator is never behind one.
    return {"follow_redirects": False, "verify": shared_ssl_context(),
            "trust_env": not is_loopback_host(urlsplit(url).hostname)}


async def _get_async(client: httpx.AsyncClient, step: _Get) -> _Outcome:
    """One attempt, bounded as a whole: httpx's timeouts only bound each phase or read."""
    try:
        async with asyncio.timeout(step.timeout):
            async with client.stream("GET", step.url, headers=step.headers,
                                     timeout=step.timeout) as response:
                body = _body_of(response)
                if body is None:
                    body = _CappedBody(response.headers.get("Content-Encoding", ""))
                    async for chunk in response.aiter_raw():
                        body.feed(chunk)
                return _answer(response, body.value())
    except TimeoutError:
        return _attempt_timed_out()
    except _AnswerTooLarge:
        return RemoteProtocolError(MSG_TOO_LARGE)
    except httpx.HTTPError as exc:
        return exc


def _get_sync(client: httpx.Client, step: _Get) -> _Outcome:
    """One attempt, its time bounded as a whole by a :class:`SocketWatchdog`."""
    ends_at = time.monotonic() + step.timeout
    with SocketWatchdog(step.timeout) as watchdog:
        try:
            with client.stream("GET", step.url, headers=step.headers, timeout=step.timeout,
                               extensions={"trace": watchdog.trace}) as response:
                body = _body_of(response)
                if body is None:
                    body = _CappedBody(response.headers.get("Content-Encoding", ""))
                    for chunk in response.iter_raw():
                        body.feed(chunk)
                        if time.monotonic() >= ends_at:  # a connection the watchdog did not see
                            return _attempt_timed_out()
                return _answer(response, body.value())
        except _AnswerTooLarge:
            return RemoteProtocolError(MSG_TOO_LARGE)
        except httpx.HTTPError as exc:
            return _attempt_timed_out() if watchdog.fired else exc


# Indirection so tests can observe waits without slowing down or patching asyncio itself.
_async_sleep = asyncio.sleep
_sync_sleep = time.sleep


async def request_session_url(
    assistant_id: str,
    api_key: str | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    retry: RetryPolicy | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> SessionURL:
    """Exchange the API key for a single-use session URL.

    Args:
        assistant_id: The widget agent's id, used as one path segment.
        api_key: The Anunzi API key; defaults to the ``ANUNZI_API_KEY`` environment variable.
        base_url: Service base URL, ``https://widgets.anunzi.net`` by default.
        retry: Retry policy; :class:`RetryPolicy` defaults if ``None``.
        http_client: An ``httpx.AsyncClient`` to use (and not close); a private one otherwise.

    Returns:
        The session URL, a ``str`` whose repr hides its token. Use it for one connection.

    Raises:
        InvalidArgumentError: Before any I/O, for a missing or malformed key, id or base URL.
        AuthenticationError, PermissionDeniedError, AssistantNotFoundError, BadRequestError:
            For HTTP 401, 403, 404 and 400; never retried.
        RateLimitedError, ServerError, NetworkError: When retries or the deadline ran out.
        CertificateError: The service's certificate failed verification (not retried).
        RemoteProtocolError: For an answer that is not the documented JSON, is larger than
            :data:`MAX_ANSWER_BYTES`, or hands a plain ``ws://`` URL to an ``https`` request.
    """
    url, headers = _prepare(assistant_id, api_key, base_url)
    exchange = _token_exchange(assistant_id, url, headers, retry or RetryPolicy())
    client = http_client or httpx.AsyncClient(**_client_options(url))
    try:
        step = next(exchange)
        while True:
            outcome: _Outcome = None
            if isinstance(step, _Wait):
                await _async_sleep(step.seconds)
            else:
                outcome = await _get_async(client, step)
            step = exchange.send(outcome)
    except StopIteration as done:
        return cast(SessionURL, done.value)
    finally:
        if http_client is None:
            await client.aclose()


def request_session_url_sync(
    assistant_id: str,
    api_key: str | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    retry: RetryPolicy | None = None,
    http_client: httpx.Client | None = None,
) -> SessionURL:
    """Blocking twin of :func:`request_session_url`, with the same arguments and errors.

    The same total deadline holds: each attempt's socket is shut down when its time is up,
    however slowly the peer sends its headers or body.
    """
    url, headers = _prepare(assistant_id, api_key, base_url)
    exchange = _token_exchange(assistant_id, url, headers, retry or RetryPolicy())
    client = http_client or httpx.Client(**_client_options(url))
    try:
        step = next(exchange)
        while True:
            outcome: _Outcome = None
            if isinstance(step, _Wait):
                _sync_sleep(step.seconds)
            else:
                outcome = _get_sync(client, step)
            step = exchange.send(outcome)
    except StopIteration as done:
        return cast(SessionURL, done.value)
    finally:
        if http_client is None:
            client.close()

