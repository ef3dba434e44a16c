"""Requesting a session URL, and keeping the credentials out of logs.

The token route ``GET {base_url}/websocket/token/{assistant_id}`` exchanges the API key for a
single-use, short-lived session URL. :func:`request_session_url` (async) and
:func:`request_session_url_sync` check their arguments before any I/O, retry HTTP 429, 5xx and
connection failures with jittered exponential backoff (honouring ``Retry-After``) within one
total deadline, and map every failure to one exception of :mod:`anunzi_fast.errors`.

Both secrets, the API key and the session token inside the URL, are credentials. They are never
put in an exception message or a repr, and :func:`install_log_redaction` (called on import)
scrubs them from records of this package's loggers and of the ``websockets``, ``httpx`` and
``httpcore`` loggers, which print URLs and headers at DEBUG level.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import math
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeAlias, cast
from urllib.parse import urlsplit

import httpx

from .errors import (
    AnunziError,
    AssistantNotFoundError,
    AuthenticationError,
    BadRequestError,
    InvalidArgumentError,
    NetworkError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteProtocolError,
    ServerError,
)

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "RetryPolicy",
    "SessionURL",
    "install_log_redaction",
    "parse_retry_after",
    "redact",
    "register_secret",
    "request_session_url",
    "request_session_url_sync",
    "shared_ssl_context",
    "token_route_url",
]

DEFAULT_BASE_URL = "https://widgets.anunzi.net"
API_KEY_ENV = "ANUNZI_API_KEY"
REDACTED = "<redacted>"

_logger = logging.getLogger(__name__)

# Messages kept as constants so that tests can match them and none of them can format a secret.
MSG_NO_API_KEY = f"no API key: pass api_key or set the {API_KEY_ENV} environment variable"
MSG_BAD_API_KEY = "the API key is empty or contains whitespace, control or non-ASCII characters"
MSG_BAD_BODY = "the token route answered 200 without a JSON object holding a 'sessionURL' string"
MSG_BAD_SESSION_URL = "the token route returned a sessionURL that is not a ws:// or wss:// URL"
MSG_UNDECODABLE = "the token route's answer could not be decoded"

# --- redaction --------------------------------------------------------------------------------

# Patterns catch secrets that were never registered, e.g. a token in a URL printed by a library.
_SECRET_PATTERNS = (
    (re.compile(r"(token=)[^&\s'\"<>]+", re.IGNORECASE), r"\1" + REDACTED),
    (re.compile(r"(bearer\s+)[^\s'\"<>]+", re.IGNORECASE), r"\1" + REDACTED),
)
# Registered secrets are matched literally: a key has no recognisable shape of its own.
_MAX_REGISTERED_SECRETS = 256
_registered_secrets: dict[str, None] = {}  # insertion-ordered, so the oldest is evicted first
_registered_lock = threading.Lock()
# Shorter strings would redact ordinary words; real keys and tokens are far longer.
_MIN_SECRET_LENGTH = 6


def register_secret(secret: str) -> None:
    """Remember ``secret`` so that :func:`redact` removes it wherever it appears."""
    if len(secret) < _MIN_SECRET_LENGTH:
        return
    with _registered_lock:
        _registered_secrets.pop(secret, None)
        _registered_secrets[secret] = None
        while len(_registered_secrets) > _MAX_REGISTERED_SECRETS:
            del _registered_secrets[next(iter(_registered_secrets))]


def redact(text: str) -> str:
    """Return ``text`` with API keys and session tokens replaced by ``<redacted>``."""
    with _registered_lock:
        secrets = list(_registered_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback text) without its secrets; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_REDACTED_LOGGERS = (
    "anunzi_fast",
    "anunzi_fast.auth",
    "anunzi_fast.client",
    "anunzi_fast.cli",
    "anunzi_fast.devices",
    "anunzi_fast.emulator",
    "websockets",
    "websockets.client",
    "websockets.server",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
)
_redaction_filter = _RedactingFilter()


def install_log_redaction(extra_loggers: tuple[str, ...] = ()) -> None:
    """Attach the redacting filter to the loggers that may print a secret.

    A logger's filters only see records logged through that very logger, not those propagated
    from its children, so every logger that can print a URL or a header is listed by name.
    Installing twice is harmless.
    """
    for name in (*_REDACTED_LOGGERS, *extra_loggers):
        logger = logging.getLogger(name)
        if _redaction_filter not in logger.filters:
            logger.addFilter(_redaction_filter)


install_log_redaction()


# --- the session URL --------------------------------------------------------------------------


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


_FORBIDDEN_IN_ASSISTANT_ID = ("/", "\\", "?", "#", "%", "..")


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
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"base URL must be an http:// or https:// URL: {base_url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidArgumentError("base URL may not carry a query, a fragment or credentials")
    return base_url.rstrip("/")


def token_route_url(assistant_id: str, base_url: str = DEFAULT_BASE_URL) -> str:
    """Return the token route URL for ``assistant_id``, after validating both parts."""
    return f"{_validate_base_url(base_url)}/websocket/token/{_validate_assistant_id(assistant_id)}"


def _parse_session_url(response: httpx.Response) -> SessionURL:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(MSG_BAD_BODY) from exc
    url = body.get("sessionURL") if isinstance(body, dict) else None
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
    return SessionURL(url)


def _token_of(url: str) -> str | None:
    match = re.search(r"token=([^&#\s]+)", url)
    return match.group(1) if match else None


# --- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How the token request retries 429, 5xx and connection failures.

    Attributes:
        max_attempts: Attempts in all, the first one included.
        initial_backoff: Base delay before the second attempt, in seconds; doubled per attempt.
        max_backoff: Upper bound on the computed backoff, in seconds.
        max_retry_after: Upper bound on a ``Retry-After`` the service asks for, in seconds.
        deadline: Total time allowed for all attempts and waits, in seconds.
        attempt_timeout: Timeout of one HTTP attempt, in seconds.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.25
    max_backoff: float = 4.0
    max_retry_after: float = 10.0
    deadline: float = 30.0
    attempt_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidArgumentError("max_attempts must be at least 1")
        for name in ("initial_backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise InvalidArgumentError(f"{name} must be a finite number >= 0")
        if not self.deadline > 0 or not self.attempt_timeout > 0:
            raise InvalidArgumentError("deadline and attempt_timeout must be > 0")

    def backoff(self, retry_number: int, uniform: Callable[[], float] = random.random) -> float:
        """Delay before retry number ``retry_number`` (1 for the first retry), jittered.

        "Equal jitter": half the exponential delay is kept, the other half is random, so
        clients that failed together spread out without ever retrying at once.
        """
        ceiling = min(self.max_backoff, self.initial_backoff * 2.0 ** (retry_number - 1))
        return ceiling / 2.0 + uniform() * ceiling / 2.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or ``None``."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class _RetrySchedule:
    """The sans-I/O half of the retry loop, shared by the async and the sync request."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._deadline = clock() + policy.deadline
        self.attempts = 0

    def attempt_timeout(self) -> float:
        self.attempts += 1
        return max(0.001, min(self.policy.attempt_timeout, self._deadline - self._clock()))

    def delay_before_retry(self, error: AnunziError) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up with ``error``."""
        if not isinstance(error, (RateLimitedError, ServerError, NetworkError)):
            return None
        if self.attempts >= self.policy.max_attempts:
            return None
        delay = self.policy.backoff(self.attempts)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.policy.max_retry_after))
        if self._clock() + delay >= self._deadline:
            return None
        return delay


def _error_for_response(response: httpx.Response, assistant_id: str) -> AnunziError | None:
    status = response.status_code
    if status == 200:
        return None
    if status == 400:
        return BadRequestError("the token route answered HTTP 400 (bad request)")
    if status == 401:
        return AuthenticationError("the API key was refused (HTTP 401): check it")
    if status == 403:
        return PermissionDeniedError(
            f"the API key may not use assistant {assistant_id!r} (HTTP 403)"
        )
    if status == 404:
        return AssistantNotFoundError(assistant_id)
    if status == 429:
        return RateLimitedError(
            "the token route is rate limiting this client (HTTP 429)",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if 500 <= status <= 599:
        return ServerError(f"the token route failed with HTTP {status}", status=status)
    return RemoteProtocolError(f"the token route answered an unexpected HTTP {status}")


def _network_error(exc: httpx.TransportError, url: str) -> NetworkError:
    host = urlsplit(url).hostname
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return NetworkError(f"request to {host} {what}: {type(exc).__name__}")


def _prepare(
    assistant_id: str, api_key: str | None, base_url: str
) -> tuple[str, dict[str, str]]:
    url = token_route_url(assistant_id, base_url)
    key = _validate_api_key(api_key)
    register_secret(key)
    return url, {"Authorization": f"Bearer {key}", "Accept": "application/json"}


def _final_error(error: AnunziError, attempts: int) -> AnunziError:
    if attempts > 1 and isinstance(error, (RateLimitedError, ServerError, NetworkError)):
        error.args = (f"{error.args[0]} (after {attempts} attempts)",)
    return error


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for the whole process.

    Loading the CA bundle costs about 20 ms of CPU; a context per request would pay it on every
    session start. ``SSLContext`` objects are safe to share once configured.
    """
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class _Get:
    """Step of :func:`_token_exchange`: perform this GET and send back what happened."""

    url: str
    headers: dict[str, str]
    timeout: float


@dataclass(frozen=True)
class _Wait:
    """Step of :func:`_token_exchange`: wait this long, then send back ``None``."""

    seconds: float


_Outcome: TypeAlias = "httpx.Response | httpx.HTTPError | None"


def _token_exchange(
    assistant_id: str, url: str, headers: dict[str, str], policy: RetryPolicy
) -> Generator[_Get | _Wait, _Outcome, SessionURL]:
    """The whole retry loop without I/O, shared by the async and the sync request.

    Yields the next step; is sent the response (or the httpx error) of each GET; returns
    the session URL or raises the final error.
    """
    schedule = _RetrySchedule(policy)
    while True:
        outcome = yield _Get(url, headers, schedule.attempt_timeout())
        if isinstance(outcome, httpx.Response):
            error = _error_for_response(outcome, assistant_id)
            if error is None:
                return _parse_session_url(outcome)
        elif isinstance(outcome, httpx.TransportError):
            error = _network_error(outcome, url)
            error.__cause__ = outcome
        else:
            # A body httpx cannot decode (e.g. broken gzip) or another peer-caused HTTP error.
            assert isinstance(outcome, httpx.HTTPError)
            detail = MSG_UNDECODABLE if isinstance(outcome, httpx.DecodingError) else (
                "the token route's answer was not usable")
            error = RemoteProtocolError(f"{detail}: {type(outcome).__name__}")
            error.__cause__ = outcome
        delay = schedule.delay_before_retry(error)
        if delay is None:
            raise _final_error(error, schedule.attempts)
        _logger.debug("token request attempt %d failed (%s); retrying in %.2fs",
                      schedule.attempts, error, delay)
        yield _Wait(delay)


def _attempt_timed_out() -> httpx.TimeoutException:
    return httpx.TimeoutException("the attempt ran out of time")


async def _get_async(client: httpx.AsyncClient, step: _Get) -> _Outcome:
    """One attempt, bounded as a whole: httpx's timeouts only bound each phase or read."""
    try:
        return await asyncio.wait_for(
            client.get(step.url, headers=step.headers, timeout=step.timeout), step.timeout)
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        return _attempt_timed_out()
    except httpx.HTTPError as exc:
        return exc


def _get_sync(
    client: httpx.Client, step: _Get, clock: Callable[[], float] = time.monotonic
) -> _Outcome:
    """One attempt, its body streamed so that the clock is checked between chunks.

    A peer dripping its answer is stopped at the attempt's end; a single read that stalls
    still waits up to ``step.timeout`` (the budget left), so the worst case is under twice it.
    """
    ends_at = clock() + step.timeout
    try:
        with client.stream("GET", step.url, headers=step.headers,
                           timeout=step.timeout) as streamed:
            body = bytearray()
            for chunk in streamed.iter_bytes():
                body += chunk
                if clock() >= ends_at:
                    return _attempt_timed_out()
        # The body is decoded already: the new response must not decode it again.
        headers = streamed.headers.copy()
        headers.pop("Content-Encoding", None)
        return httpx.Response(streamed.status_code, headers=headers, content=bytes(body),
                              request=streamed.request)
    except httpx.HTTPError as exc:
        return exc


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
        InvalidArgumentError: Before any I/O, for a missing or malformed key or id.
        AuthenticationError, PermissionDeniedError, AssistantNotFoundError, BadRequestError:
            For HTTP 401, 403, 404 and 400; never retried.
        RateLimitedError, ServerError, NetworkError: When retries ran out.
        RemoteProtocolError: For an answer that is not the documented JSON.
    """
    url, headers = _prepare(assistant_id, api_key, base_url)
    exchange = _token_exchange(assistant_id, url, headers, retry or RetryPolicy())
    client = http_client or httpx.AsyncClient(follow_redirects=False,
                                              verify=shared_ssl_context())
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

    The deadline is checked between received chunks of the answer: a single read that stalls
    can overrun it by up to the budget that was left when the attempt began.
    """
    url, headers = _prepare(assistant_id, api_key, base_url)
    exchange = _token_exchange(assistant_id, url, headers, retry or RetryPolicy())
    client = http_client or httpx.Client(follow_redirects=False, verify=shared_ssl_context())
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
