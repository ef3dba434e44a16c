"""Keeping credentials out of messages, reprs and logs.

Three kinds of secret can end up in text: the API key (no recognisable shape, so it is
registered and matched literally), the session token (the ``token=`` query parameter of a
session URL) and the userinfo of any URL (``scheme://user:password@host``). :func:`redact`
removes all three; :func:`redact_url` is for building messages that name a URL.

Nothing here runs on import: :func:`install_log_redaction` is called by
:func:`~anunzi_fast.connect`, the token request, the emulator and the CLI, the code paths that
can log a secret.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "install_log_redaction",
    "redact",
    "redact_url",
    "register_secret",
]

REDACTED: Final = "<redacted>"

# Patterns catch secrets that were never registered, e.g. a token in a URL printed by a library.
_SECRET_PATTERNS: Final = (
    (re.compile(r"(token=)[^&#\s'\"<>]+", re.IGNORECASE), r"\1" + REDACTED),
    (re.compile(r"(bearer\s+)[^\s'\"<>]+", re.IGNORECASE), r"\1" + REDACTED),
    # scheme://anything-but-a-slash@ : the userinfo of any URL, password or not.
    (re.compile(r"([a-z][a-z0-9+.\-]*://)[^/?#\s'\"<>@]*@", re.IGNORECASE), r"\1" + REDACTED + "@"),
)
# Registered secrets are matched literally: a key has no recognisable shape of its own.
_MAX_REGISTERED_SECRETS: Final = 256
_registered_secrets: dict[str, None] = {}  # insertion-ordered, so the oldest is evicted first
_registered_lock = threading.Lock()
# Shorter strings would redact ordinary words; real keys and tokens are far longer.
_MIN_SECRET_LENGTH: Final = 6


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
    """Return ``text`` with API keys, session tokens and URL userinfo replaced."""
    with _registered_lock:
        secrets = list(_registered_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_url(url: str) -> str:
    """``url`` fit for a message: no userinfo, no query, no fragment (they may hold secrets).

    An unparseable URL gives ``"<unparseable URL>"``: its parts cannot be told apart.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


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


# A logger's filters only see records logged through that very logger, not those propagated
# from its children, so every logger that can print a URL or a header is listed by name.
_REDACTED_LOGGERS: Final = (
    "anunzi_fast",
    "anunzi_fast.auth",
    "anunzi_fast.client",
    "anunzi_fast.cli",
    "anunzi_fast.devices",
    "anunzi_fast.emulator",
    "anunzi_fast.loadtest",
    "websockets",
    "websockets.client",
    "websockets.server",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)
_redaction_filter: Final = _RedactingFilter()


def install_log_redaction(extra_loggers: tuple[str, ...] = ()) -> None:
    """Attach the redacting filter to every logger that may print a secret (idempotent)."""
    for name in (*_REDACTED_LOGGERS, *extra_loggers):
        logger = logging.getLogger(name)
        if _redaction_filter not in logger.filters:
            logger.addFilter(_redaction_filter)
