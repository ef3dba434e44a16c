"""Token route client: validation, status mapping, retries and redaction, over MockTransport."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import json
import logging
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from anunzi_fast import _net, auth
from anunzi_fast._redact import redact, redact_url
from anunzi_fast.auth import (
    RetryPolicy,
    SessionURL,
    parse_retry_after,
    request_session_url,
    request_session_url_sync,
)
from anunzi_fast.errors import (
    AnunziError,
    AssistantNotFoundError,
    AuthenticationError,
    BadRequestError,
    CallerError,
    CertificateError,
    CredentialsError,
    InvalidArgumentError,
    NetworkError,
    PeerError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteProtocolError,
    ServerError,
)

API_KEY = "sk-live-9f8e7d6c5b4a"
TOKEN = "tok-0123456789abcdef"
SESSION_URL = f"wss://widgets.example/websocket/start?token={TOKEN}"
BASE_URL = "https://widgets.example"
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.002, deadline=5)

Handler = Callable[[httpx.Request], httpx.Response]


def ok_response(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"sessionURL": SESSION_URL})


def sequence(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering ``responses`` in order, and the list of requests it saw."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses[min(len(seen), len(responses)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


async def fetch(handler: Handler, *, api_key: str | None = API_KEY, assistant_id: str = "asst-1",
                retry: RetryPolicy = FAST_RETRY) -> SessionURL:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await request_session_url(
            assistant_id, api_key, base_url=BASE_URL, retry=retry, http_client=client
        )


def fetch_sync(handler: Handler, **kwargs: object) -> SessionURL:
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return request_session_url_sync(
            "asst-1", API_KEY, base_url=BASE_URL, retry=FAST_RETRY, http_client=client,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the waits between attempts instead of sleeping through them."""
    waits: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(auth, "_async_sleep", fake_async_sleep)
    monkeypatch.setattr(auth, "_sync_sleep", waits.append)
    return waits


async def test_success_sends_bearer_key_to_the_token_route() -> None:
    handler, seen = sequence(ok_response(httpx.Request("GET", BASE_URL)))
    url = await fetch(handler)
    assert url == SESSION_URL
    assert isinstance(url, SessionURL)
    (request,) = seen
    assert request.method == "GET"
    assert str(request.url) == f"{BASE_URL}/websocket/token/asst-1"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_sync_twin_success_and_error() -> None:
    assert fetch_sync(ok_response) == SESSION_URL
    with pytest.raises(AuthenticationError):
        fetch_sync(lambda _: httpx.Response(401))


def test_session_url_repr_hides_the_token() -> None:
    url = SessionURL(SESSION_URL)
    assert TOKEN not in repr(url)
    assert "token=<redacted>" in repr(url)
    assert str(url) == SESSION_URL


async def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(auth.API_KEY_ENV, "env-key-123456")
    handler, seen = sequence(ok_response(httpx.Request("GET", BASE_URL)))
    await fetch(handler, api_key=None)
    assert seen[0].headers["Authorization"] == "Bearer env-key-123456"


def must_not_be_called(_: httpx.Request) -> httpx.Response:
    raise AssertionError("I/O happened before validation")


@pytest.mark.parametrize("bad_key", ["", " leading", "trailing ", "in side", "tab\there",
                                     "new\nline", "nul\x00", "caf\u00e9-key", "del\x7f"])
async def test_bad_api_keys_are_rejected_before_io(bad_key: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await fetch(must_not_be_called, api_key=bad_key)
    if bad_key.strip():
        assert bad_key not in str(info.value)


async def test_missing_api_key_is_rejected_before_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(auth.API_KEY_ENV, raising=False)
    with pytest.raises(InvalidArgumentError, match=auth.API_KEY_ENV):
        await fetch(must_not_be_called, api_key=None)


@pytest.mark.parametrize("bad_id", ["", "a/b", "../admin", "..", ".", "a?x=1", "a#frag",
                                    "a%2Fb", "a\\b", "a b", "a\nb"])
async def test_path_changing_assistant_ids_are_rejected_before_io(bad_id: str) -> None:
    with pytest.raises(InvalidArgumentError):
        await fetch(must_not_be_called, assistant_id=bad_id)


@pytest.mark.parametrize("bad_base", ["ftp://x", "widgets.example", "https://", "https://x?q=1",
                                      "https://user:pw@x"])
async def test_bad_base_urls_are_rejected_before_io(bad_base: str) -> None:
    with pytest.raises(InvalidArgumentError):
        await request_session_url("a", API_KEY, base_url=bad_base)


@pytest.mark.parametrize(
    ("status", "error_class", "fault_class"),
    [
        (400, BadRequestError, CallerError),
        (401, AuthenticationError, CredentialsError),
        (403, PermissionDeniedError, CredentialsError),
        (404, AssistantNotFoundError, CallerError),
        (418, RemoteProtocolError, PeerError),
    ],
)
async def test_non_retryable_statuses(
    status: int, error_class: type[AnunziError], fault_class: type[AnunziError]
) -> None:
    handler, seen = sequence(httpx.Response(status, text=f"echo {API_KEY}"))
    with pytest.raises(error_class) as info:
        await fetch(handler)
    assert isinstance(info.value, fault_class)
    assert len(seen) == 1
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)


async def test_not_found_names_the_assistant() -> None:
    with pytest.raises(AssistantNotFoundError, match="asst-1") as info:
        await fetch(lambda _: httpx.Response(404))
    assert info.value.assistant_id == "asst-1"


async def test_rate_limit_is_retried_honouring_retry_after(no_sleep: list[float]) -> None:
    handler, seen = sequence(
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(429, headers={"Retry-After": "30"}),
        ok_response(httpx.Request("GET", BASE_URL)),
    )
    policy = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_retry_after=5.0)
    assert await fetch(handler, retry=policy) == SESSION_URL
    assert len(seen) == 3
    assert no_sleep == [2.0, 5.0]  # the second wait is capped at max_retry_after


async def test_retry_after_as_http_date(no_sleep: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    handler, _ = sequence(httpx.Response(429, headers={"Retry-After": when}),
                          ok_response(httpx.Request("GET", BASE_URL)))
    await fetch(handler)
    assert len(no_sleep) == 1 and 1.5 < no_sleep[0] <= 3.0


async def test_server_errors_are_retried_then_reported(no_sleep: list[float]) -> None:
    handler, seen = sequence(httpx.Response(503))
    with pytest.raises(ServerError, match="after 4 attempts") as info:
        await fetch(handler)
    assert info.value.status == 503
    assert len(seen) == 4 and len(no_sleep) == 3


async def test_rate_limit_exhausted_keeps_retry_after(no_sleep: list[float]) -> None:
    handler, _ = sequence(httpx.Response(429, headers={"Retry-After": "1"}))
    with pytest.raises(RateLimitedError) as info:
        await fetch(handler, retry=RetryPolicy(max_attempts=2, max_retry_after=0.01))
    assert info.value.retry_after == 1.0


async def test_connection_failures_are_retried_then_network_error(no_sleep: list[float]) -> None:
    handler, seen = sequence(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                             ok_response(httpx.Request("GET", BASE_URL)))
    assert await fetch(handler) == SESSION_URL
    assert len(seen) == 3
    handler, _ = sequence(httpx.ConnectError("refused"))
    with pytest.raises(NetworkError) as info:
        await fetch(handler)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_sync_retries(no_sleep: list[float]) -> None:
    handler, seen = sequence(httpx.Response(502), ok_response(httpx.Request("GET", BASE_URL)))
    assert fetch_sync(handler) == SESSION_URL
    assert len(seen) == 2 and len(no_sleep) == 1


async def test_the_deadline_bounds_all_attempts() -> None:
    # Real sleeps: a Retry-After beyond the deadline ends the loop at once.
    handler, seen = sequence(httpx.Response(429, headers={"Retry-After": "5"}))
    started = time.monotonic()
    with pytest.raises(RateLimitedError):
        await fetch(handler, retry=RetryPolicy(max_attempts=10, deadline=0.5))
    assert time.monotonic() - started < 0.5
    assert len(seen) == 1


class DrippingServer:
    """An HTTP server on 127.0.0.1 that sends a valid token answer one byte every 0.1 s."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        body = json.dumps({"sessionURL": SESSION_URL}).encode()
        with connection:
            try:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: %d\r\n\r\n" % len(body))
                for byte in body:
                    if self.stopped.wait(0.1):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                pass  # the client gave up

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.listener.close()


@pytest.fixture
def dripping_server() -> Iterator[DrippingServer]:
    server = DrippingServer()
    try:
        yield server
    finally:
        server.close()


async def test_the_deadline_bounds_a_dripping_body(dripping_server: DrippingServer) -> None:
    # Without a bound on the whole attempt, the body would take 7 s to arrive in full.
    async with asyncio.timeout(4.0):
        with pytest.raises(NetworkError, match="timed out"):
            await request_session_url("asst-1", API_KEY,
                                      base_url=f"http://127.0.0.1:{dripping_server.port}",
                                      retry=RetryPolicy(deadline=1.0))


def test_the_deadline_bounds_a_dripping_body_sync(dripping_server: DrippingServer) -> None:
    started = time.monotonic()
    with pytest.raises(NetworkError, match="timed out"):
        request_session_url_sync("asst-1", API_KEY,
                                 base_url=f"http://127.0.0.1:{dripping_server.port}",
                                 retry=RetryPolicy(deadline=1.0))
    assert time.monotonic() - started < 4.0  # the whole body would take 7 s


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"session": "x"}', b'{"sessionURL": 5}',
     b'{"sessionURL": "https://h/websocket/start?token=abc123456"}', b'{"sessionURL": "wss://"}',
     b"[" * 100_000, b'{"sessionURL": "ws://[::1/x"}', b"\xff\xfe",
     b'{"sessionURL": "wss://h:99999/websocket/start?token=abc123456"}',
     b'{"sessionURL": "wss://h:-1/websocket/start?token=abc123456"}'],
)
async def test_malformed_success_bodies_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        await fetch(lambda _: httpx.Response(200, content=body))
    assert "abc123456" not in str(info.value)


def broken_gzip(_: httpx.Request) -> httpx.Response:
    # A stream, so that the body is only decoded when the client reads it.
    return httpx.Response(200, headers={"Content-Encoding": "gzip"},
                          stream=httpx.ByteStream(b"this is not gzip"))


async def test_undecodable_body_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError, match="decoded"):
        await fetch(broken_gzip)


def test_undecodable_body_is_a_protocol_error_sync() -> None:
    with pytest.raises(RemoteProtocolError, match="decoded"):
        fetch_sync(broken_gzip)


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=4.0)
    assert policy.backoff(1, lambda: 0.0) == 0.5
    assert policy.backoff(1, lambda: 1.0) == 1.0
    assert policy.backoff(2, lambda: 0.0) == 1.0
    assert policy.backoff(10, lambda: 1.0) == 4.0
    assert len({policy.backoff(3) for _ in range(20)}) > 1


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("3", 3.0), ("-1", 0.0), ("soon", None), ("nan", None), ("1.5", 1.5)])
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_policy_validation() -> None:
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(deadline=0)


async def test_secrets_never_reach_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    handler, _ = sequence(httpx.Response(503), ok_response(httpx.Request("GET", BASE_URL)))
    url = await fetch(handler)
    # Libraries print URLs and headers; the filter must scrub them whatever the logger.
    for name in ("httpx", "httpcore.http11", "websockets.client", "websockets.server",
                 "anunzi_fast.client"):
        logging.getLogger(name).debug("> GET %s with Authorization: Bearer %s", url, API_KEY)
        logging.getLogger(name).info("key=%s", API_KEY)
    try:
        raise RuntimeError(f"boom {url}")
    except RuntimeError:
        logging.getLogger("websockets.client").exception("failed")
    text = caplog.text
    assert caplog.records
    assert API_KEY not in text and TOKEN not in text
    assert "<redacted>" in text


def test_redact_patterns_without_registration() -> None:
    assert redact("GET /websocket/start?token=zzzz-unregistered&x=1") == (
        "GET /websocket/start?token=<redacted>&x=1"
    )
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer <redacted>"
    assert json.dumps(redact("plain text")) == '"plain text"'


def test_one_tls_context_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading CA certificates costs ~20 ms of CPU: it must happen once, not per request.
    created: list[object] = []
    real = httpx.create_ssl_context
    _net.shared_ssl_context.cache_clear()
    monkeypatch.setattr(httpx, "create_ssl_context", lambda: created.append(1) or real())
    try:
        first = _net.shared_ssl_context()
        assert _net.shared_ssl_context() is first
        assert len(created) == 1
    finally:
        _net.shared_ssl_context.cache_clear()


def test_token_exchange_steps_without_io() -> None:
    # The retry loop is sans-I/O: it says what to do next and is told what happened.
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=1.0)
    exchange = auth._token_exchange("asst-1", f"{BASE_URL}/x", {"A": "b"}, policy)
    first = next(exchange)
    assert isinstance(first, auth._Get) and first.url == f"{BASE_URL}/x"
    wait = exchange.send(httpx.Response(503))
    assert isinstance(wait, auth._Wait) and 0.5 <= wait.seconds <= 1.0
    assert isinstance(exchange.send(None), auth._Get)
    wait = exchange.send(httpx.ConnectError("refused"))
    assert isinstance(wait, auth._Wait)
    assert isinstance(exchange.send(None), auth._Get)
    with pytest.raises(StopIteration) as done:
        exchange.send(httpx.Response(200, json={"sessionURL": SESSION_URL}))
    assert done.value.value == SESSION_URL


# --- hostile token routes ----------------------------------------------------------------------


class HeaderDripServer(DrippingServer):
    """Sends the status line and headers themselves one byte every 0.1 s."""

    def _drip(self, connection: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 200
        with connection:
            try:
                connection.recv(65536)
                for byte in head:
                    if self.stopped.wait(0.1):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                pass


@pytest.fixture
def header_drip_server() -> Iterator[HeaderDripServer]:
    server = HeaderDripServer()
    try:
        yield server
    finally:
        server.close()


async def test_the_deadline_bounds_dripping_headers(header_drip_server: HeaderDripServer) -> None:
    started = time.monotonic()
    with pytest.raises(NetworkError, match="timed out"):
        await request_session_url("asst-1", API_KEY,
                                  base_url=f"http://127.0.0.1:{header_drip_server.port}",
                                  retry=RetryPolicy(deadline=1.0))
    assert time.monotonic() - started < 4.0  # the headers alone would take 25 s


def test_the_deadline_bounds_dripping_headers_sync(header_drip_server: HeaderDripServer) -> None:
    started = time.monotonic()
    with pytest.raises(NetworkError, match="timed out"):
        request_session_url_sync("asst-1", API_KEY,
                                 base_url=f"http://127.0.0.1:{header_drip_server.port}",
                                 retry=RetryPolicy(deadline=1.0))
    assert time.monotonic() - started < 4.0  # 25 s and more before


class CountingStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body of ``total`` bytes in 64 KiB chunks that counts how much was read of it."""

    def __init__(self, chunk: bytes, chunks: int) -> None:
        self.chunk, self.chunks, self.read = chunk, chunks, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.read += 1
            yield self.chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self:
            yield chunk


@pytest.mark.parametrize("sync", [False, True])
async def test_a_huge_answer_is_refused_while_streaming(sync: bool) -> None:
    body = CountingStream(b" " * 65536, 1600)  # 100 MiB of JSON whitespace
    handler, _ = sequence(httpx.Response(200, stream=body))
    with pytest.raises(RemoteProtocolError, match="larger than"):
        if sync:
            fetch_sync(handler)
        else:
            await fetch(handler)
    assert body.read <= 2  # stopped at the cap, not after 100 MiB


def _bomb(megabytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip
    zeros = bytes(2**20)
    return b"".join([*(packer.compress(zeros) for _ in range(megabytes)), packer.flush()])


@pytest.mark.parametrize("sync", [False, True])
async def test_a_compressed_bomb_is_never_inflated(sync: bool) -> None:
    bomb = _bomb(256)  # about 256 KiB that would inflate to 256 MiB
    handler, seen = sequence(httpx.Response(200, headers={"Content-Encoding": "gzip"},
                                            stream=httpx.ByteStream(bomb)))
    tracemalloc.start()
    try:
        with pytest.raises(RemoteProtocolError, match="larger than"):
            if sync:
                fetch_sync(handler)
            else:
                await fetch(handler)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    assert seen[0].headers["Accept-Encoding"] == "identity"


async def test_a_small_compressed_answer_is_still_understood() -> None:
    body = gzip.compress(json.dumps({"sessionURL": SESSION_URL}).encode())
    handler, _ = sequence(httpx.Response(200, headers={"Content-Encoding": "gzip"},
                                         stream=httpx.ByteStream(body)))
    assert await fetch(handler) == SESSION_URL


@pytest.mark.parametrize(
    ("base", "session_url", "accepted"),
    [("https://widgets.example", "ws://widgets.example/websocket/start?token=abc123456", False),
     ("https://widgets.example", "ws://10.0.0.7/websocket/start?token=abc123456", False),
     ("https://widgets.example", "ws://127.0.0.1:8765/websocket/start?token=abc123456", True),
     ("https://widgets.example", "ws://[::1]:8765/websocket/start?token=abc123456", True),
     ("https://widgets.example", "ws://localhost/websocket/start?token=abc123456", True),
     ("http://widgets.example", "ws://widgets.example/websocket/start?token=abc123456", True),
     ("https://widgets.example", "wss://other.example/websocket/start?token=abc123456", True)],
)
async def test_no_plaintext_session_after_an_https_token_route(base: str, session_url: str,
                                                              accepted: bool) -> None:
    handler, _ = sequence(httpx.Response(200, json={"sessionURL": session_url}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        request = request_session_url("asst-1", API_KEY, base_url=base, retry=FAST_RETRY,
                                      http_client=client)
        if accepted:
            assert await request == session_url
        else:
            with pytest.raises(RemoteProtocolError, match="unencrypted") as info:
                await request
            assert "abc123456" not in str(info.value)


@pytest.mark.parametrize("base", ["ftp://alice:hunter22@widgets.example",
                                  "https://alice:hunter22@widgets.example",
                                  "https://hunter22@widgets.example",
                                  "ws://alice:hunter22@host:99999"])
async def test_credentials_in_a_base_url_are_never_echoed(base: str,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidArgumentError) as info:
        await request_session_url("asst-1", API_KEY, base_url=base)
    assert "hunter22" not in str(info.value) and "alice" not in str(info.value)
    logging.getLogger("httpx").info("GET %s failed", base)
    assert "hunter22" not in caplog.text


def test_redact_removes_userinfo_of_any_url() -> None:
    assert redact("see ftp://user:pw@h.example/x and https://tok@h") == (
        "see ftp://<redacted>@h.example/x and https://<redacted>@h")
    assert redact_url("https://u:p@h.example:8443/a?token=zz#f") == "https://h.example:8443/a"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_loopback_token_requests_bypass_proxy_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from anunzi_fast.emulator import DEFAULT_API_KEY, Emulator

    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{_closed_port()}")
    async with Emulator() as emulator:
        url = await request_session_url("echo", DEFAULT_API_KEY, base_url=emulator.base_url)
        sync_url = await asyncio.to_thread(request_session_url_sync, "echo", DEFAULT_API_KEY,
                                           base_url=emulator.base_url)
    assert url.startswith("ws://127.0.0.1") and sync_url.startswith("ws://127.0.0.1")


async def test_a_failing_proxy_is_named_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://proxyuser:s3cret-pw@127.0.0.1:{port}")
    monkeypatch.setenv("https_proxy", f"http://proxyuser:s3cret-pw@127.0.0.1:{port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(NetworkError) as info:
        await request_session_url("asst-1", API_KEY, base_url="https://widgets.example",
                                  retry=RetryPolicy(max_attempts=1))
    message = str(info.value)
    assert f"via the proxy http://127.0.0.1:{port}" in message, message
    assert "widgets.example:443" in message and "refused" in message
    assert "s3cret" not in message and "proxyuser" not in message


class TlsServer:
    """HTTPS on 127.0.0.1 with a certificate nobody trusts; counts the connections."""

    def __init__(self) -> None:
        import ssl

        import trustme

        authority = trustme.CA()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1", "localhost").configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with contextlib.suppress(OSError), self.context.wrap_socket(
                    connection, server_side=True) as tls:
                tls.recv(1024)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.mark.parametrize("sync", [False, True])
async def test_certificate_failures_are_not_retried(sync: bool) -> None:
    server = TlsServer()
    try:
        base = f"https://127.0.0.1:{server.port}"
        policy = RetryPolicy(max_attempts=4, initial_backoff=0.01)
        with pytest.raises(CertificateError, match="certificate verification failed") as info:
            if sync:
                await asyncio.to_thread(request_session_url_sync, "asst-1", API_KEY,
                                        base_url=base, retry=policy)
            else:
                await request_session_url("asst-1", API_KEY, base_url=base, retry=policy)
        assert f"127.0.0.1:{server.port}" in str(info.value)
        assert server.connections == 1
    finally:
        server.close()


async def test_an_undecodable_answer_keeps_no_token_in_its_cause() -> None:
    body = b'{"sessionURL": "wss://h/websocket/start?token=abc123456\xff"}'
    with pytest.raises(RemoteProtocolError) as info:
        await fetch(lambda _: httpx.Response(200, content=body))
    chain, cause = [], info.value.__cause__ or info.value.__context__
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    assert not any("abc123456" in repr(getattr(c, "object", c)) for c in chain)
