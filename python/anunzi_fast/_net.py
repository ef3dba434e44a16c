"""What the token request and the session share about the network.

Loopback detection (loopback traffic never goes through a proxy, and may use plain ``ws://``),
the proxy a URL would use, one shared TLS context, messages that say what went wrong on the
way to a host (refused, DNS, timeout, certificate) without a secret in them, and a watchdog
that bounds a blocking HTTP attempt as a whole.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import ssl
import threading
import urllib.request
from typing import Any

from ._redact import redact_url

__all__ = [
    "SocketWatchdog",
    "certificate_failure",
    "describe_network_failure",
    "environment_proxy",
    "is_loopback_host",
    "shared_ssl_context",
]


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost``, ``127.0.0.0/8`` or ``::1``."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":  # not *.localhost: only a resolver's convention, not a promise
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def environment_proxy(scheme: str, host: str | None) -> str | None:
    """The proxy that ``*_proxy`` variables give for this scheme and host, redacted; or None.

    Loopback hosts never get one: the package bypasses proxies for them.
    """
    if is_loopback_host(host):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get({"ws": "http", "wss": "https"}.get(scheme, ""))
    proxy = proxy or proxies.get("all")
    if not proxy or (host and urllib.request.proxy_bypass(host)):
        return None
    return redact_url(proxy)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for the whole process.

    Loading the CA bundle costs about 20 ms of CPU; a context per request would pay it on every
    session start. ``SSLContext`` objects are safe to share once configured.
    """
    import httpx  # only when TLS is used: it is slow to import

    return httpx.create_ssl_context()


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 16:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``exc``, if that is what it is."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def describe_network_failure(exc: BaseException) -> str:
    """What went wrong, in words: ``connection refused``, ``DNS lookup failed``, ..."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({cause.verify_message or 'untrusted'})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "DNS lookup failed (unknown host)"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the peer"
        if isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__:
            return "timed out"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or type(cause).__name__})"
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    return type(exc).__name__


class SocketWatchdog:
    """Shuts an attempt's socket down at its deadline, so that a blocked read returns.

    A blocking read cannot be cancelled, and httpx's timeouts bound each read, not the answer:
    a peer dripping its headers a byte at a time would hold the sync twin for ever. The socket
    is learnt from httpcore's trace hook when the connection opens; shutting it down (not
    closing it, which the reading thread still owns) makes the read return at once.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> SocketWatchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._socket = sock
                if self.fired:
                    _shut_down(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._socket is not None:
                _shut_down(self._socket)


def _shut_down(sock: socket.socket) -> None:
    # A second socket object over the same descriptor: shutdown() reaches the connection
    # whatever wraps it (TLS included), and detach() leaves the descriptor to its owner.
    with contextlib.suppress(OSError, ValueError):
        twin = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.fileno())
        try:
            twin.shutdown(socket.SHUT_RDWR)
        finally:
            twin.detach()
