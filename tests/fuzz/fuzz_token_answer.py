"""Fuzz target ``token_answer``: what the token route answers, parsed and capped.

Two halves, chosen by the first byte:

- ``auth._parse_session_url(body, route_url)`` on the raw input, or on a JSON answer built
  around a fuzz-assembled session URL (scheme, userinfo, host, port, path and a ``token=``
  query, each from a list of odd cases or from the input), for an ``http``, ``https`` or
  loopback token route. It raises nothing but :class:`RemoteProtocolError`, whose message and
  chain never hold the token; a URL it returns is a ``ws``/``wss`` URL with a host and a
  nonzero port, never plain ``ws`` for a remote host after ``https``, and its repr hides the
  token.
- ``auth._CappedBody`` fed in fuzz-sized chunks under a fuzz-chosen Content-Encoding
  (identity, gzip, x-gzip, deflate, garbage), the body raw, compressed (zlib, gzip or raw
  deflate, possibly cut or corrupted) or a compression bomb. It raises nothing but
  ``httpx.DecodingError`` and the internal ``_AnswerTooLarge`` that its callers map; it never
  holds more than the cap plus one byte of inflated output (plus the chunk at hand, unencoded),
  never returns more than the cap, and returns exactly the body (identity) or the inflated
  payload (a whole stream) when that fits.
"""

from __future__ import annotations

import gzip
import json
import zlib

import httpx

from anunzi_fast.auth import (
    MAX_ANSWER_BYTES,
    MSG_BAD_BODY,
    MSG_BAD_SESSION_URL,
    MSG_PLAINTEXT_SESSION,
    SessionURL,
    _AnswerTooLarge,
    _CappedBody,
    _parse_session_url,
)
from anunzi_fast.errors import RemoteProtocolError
from tests.fuzz._input import FuzzInput

_ROUTES = (
    "https://widgets.anunzi.net/websocket/token/a",
    "http://127.0.0.1:8080/websocket/token/a",
    "http://widgets.example/websocket/token/a",
    "https://[::1]:8443/websocket/token/a",
)
_SCHEMES = ("wss", "ws", "WSS", "Ws", "http", "https", "", "wss+x", "w s", "javascript")
_HOSTS = ("widgets.anunzi.net", "127.0.0.1", "localhost", "[::1]", "::1", "", "[", "]",
          "a b", "h\u00e9.example", "127.0.0.1.evil", "0.0.0.0", "[fe80::1%25eth0]", "%00")
_PORTS = ("", ":443", ":0", ":65535", ":65536", ":-1", ":x", ":", ":00080", ":99999999999")
_USERINFO = ("", "user@", "user:pw@", "@", ":@")
_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~%+=:;!$'()*,"
_ENCODINGS = ("", "identity", "gzip", "x-gzip", "deflate", " GZIP ", "Deflate", "br", "gzip, br",
              "compress", "\x00", "identity;q=1")
_MESSAGES = (MSG_BAD_BODY, MSG_BAD_SESSION_URL, MSG_PLAINTEXT_SESSION)
# A bomb: far more than the cap once inflated, a few hundred bytes compressed.
_BOMB_PAYLOAD = b"\0" * (64 * MAX_ANSWER_BYTES)
_BOMBS = (zlib.compress(_BOMB_PAYLOAD, 9), gzip.compress(_BOMB_PAYLOAD, 9))
_LIMITS = (MAX_ANSWER_BYTES, 0, 1, 2, 100)


def _token(source: FuzzInput) -> str:
    length = source.pick((32, 6, 5, 1, 64)) if source.flag() else 1 + source.below(80)
    return "".join(_TOKEN_ALPHABET[source.below(len(_TOKEN_ALPHABET))] for _ in range(length))


def _session_url(source: FuzzInput, token: str) -> str:
    url = (source.pick(_SCHEMES) + source.pick(("://", "://", ":/", ":", "")) +
           source.pick(_USERINFO) + source.pick(_HOSTS) + source.pick(_PORTS) +
           source.pick(("/websocket/start", "", "/", "/a?b")))
    query = source.pick(("?token=", "?x=1&token=", "?TOKEN=", "#token=", "?token=&token="))
    url += query + token + source.pick(("", "&y=2", "#frag", " ", "\n"))
    if source.below(4) == 0:  # a fuzz-chosen character anywhere
        at = source.below(len(url) + 1)
        url = url[:at] + chr(source.u16() % 0x110000) + url[at:]
    return url


def _answer(source: FuzzInput, url: str) -> bytes:
    shape = source.below(6)
    value: object = url
    if shape == 1:
        value = [url]
    elif shape == 2:
        value = {"sessionURL": url}
    answer = {"sessionURL": value} if shape != 3 else {"sessionUrl": url}
    if shape == 4:
        answer["extra"] = [None, 1e308, "x" * source.below(64)]
    text = json.dumps(answer, ensure_ascii=source.flag())
    if shape == 5:
        text = "[" * 100_000 + text
    return text.encode("utf-8", "surrogatepass")


def _check_parse(source: FuzzInput) -> None:
    route = source.pick(_ROUTES)
    token = ""
    if source.flag():
        body = source.rest()
    else:
        token = _token(source)
        body = _answer(source, _session_url(source, token))
    try:
        url = _parse_session_url(body, route)
    except RemoteProtocolError as exc:
        assert str(exc) in _MESSAGES, str(exc)
        _assert_no_token(exc, token)
        return
    assert isinstance(url, SessionURL)
    _check_returned_url(str(url), route)
    if len(token) >= 6 and f"token={token}" in url and not any(token in m for m in _MESSAGES):
        assert token not in repr(url), repr(url)


def _assert_no_token(exc: BaseException, token: str) -> None:
    if len(token) < 6:
        return  # too short to tell apart from the words of the message
    # The messages of the whole chain (what a traceback prints) and the error's own repr. A
    # cause's attributes may hold the body (UnicodeDecodeError.object, JSONDecodeError.doc):
    # they are not messages.
    assert token not in repr(exc) or any(token in m for m in _MESSAGES), repr(exc)
    seen: BaseException | None = exc
    while seen is not None:
        assert token not in str(seen) or any(token in m for m in _MESSAGES), str(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)


def _check_returned_url(url: str, route: str) -> None:
    from urllib.parse import urlsplit

    from anunzi_fast._net import is_loopback_host

    parts = urlsplit(url)
    assert parts.scheme in ("ws", "wss"), url
    assert parts.hostname and parts.port != 0, url
    if parts.scheme == "ws" and urlsplit(route).scheme == "https":
        assert is_loopback_host(parts.hostname), url


def _body(source: FuzzInput) -> tuple[bytes, bytes | None]:
    """The bytes on the wire, and what they inflate to if they are a whole stream."""
    kind = source.below(6)
    payload = source.take(source.size(3 * MAX_ANSWER_BYTES))
    if kind == 0:
        return payload, None
    if kind == 4:
        return source.pick(_BOMBS), _BOMB_PAYLOAD
    level = source.below(10)
    if kind == 1:
        wire = zlib.compress(payload, level)
    elif kind == 2:
        wire = gzip.compress(payload, level, mtime=0)
    else:
        deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw, no header
        wire = deflater.compress(payload) + deflater.flush()
        return wire, None
    if kind == 5 and wire:  # cut or corrupted
        at = source.below(len(wire))
        if source.flag():
            return wire[:at], None
        return wire[:at] + bytes([wire[at] ^ (1 + source.below(255))]) + wire[at + 1 :], None
    return wire, payload


def _check_capped(source: FuzzInput) -> None:
    encoding = source.pick(_ENCODINGS)
    limit = source.pick(_LIMITS)
    wire, inflated = _body(source)
    try:
        body = _CappedBody(encoding, limit)
    except httpx.DecodingError:
        assert encoding.strip().lower() not in ("", "identity", "gzip", "x-gzip", "deflate")
        return
    compressed = encoding.strip().lower() in ("gzip", "x-gzip", "deflate")
    at, largest_chunk = 0, 0
    try:
        while at < len(wire):
            size = source.pick((1, 2, 7, 512, 4096, 65536)) if source.remaining else len(wire)
            chunk = wire[at : at + size]
            at += len(chunk)
            largest_chunk = max(largest_chunk, len(chunk))
            try:
                body.feed(chunk)
            finally:
                held = len(body._body)
                assert held <= limit + (1 if compressed else largest_chunk), (held, limit)
        value = body.value()
    except _AnswerTooLarge:
        expected = inflated if compressed else wire
        assert expected is None or len(expected) > limit or at < len(wire), (len(wire), limit)
        return
    except httpx.DecodingError:
        assert compressed, encoding
        return
    assert len(value) <= limit
    if not compressed:
        assert value == wire
    elif inflated is not None:
        assert value == inflated, (len(value), len(inflated))


def fuzz_one(data: bytes) -> None:
    """Run one input; raises AssertionError (or whatever escaped) if an invariant broke."""
    source = FuzzInput(data)
    if source.flag():
        _check_parse(source)
    else:
        _check_capped(source)
