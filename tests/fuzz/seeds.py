"""Writes the seed corpora: ``python -m tests.fuzz.seeds`` (they are kept in the repository).

Each seed spells out, decision by decision, a scenario worth starting from: real WAV headers,
a valid token answer and a gzip bomb, odd and empty frame sequences, arrays at the edges of
the native calls. :class:`Script` writes the bytes that :class:`~tests.fuzz._input.FuzzInput`
reads back as those decisions, so a seed decodes as described as long as the target reads in
the same order; if a target changes, a seed still is a valid input, only a less telling one.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import wave
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CORPUS = Path(__file__).parent / "corpus"


class Script:
    """The inverse of FuzzInput: append the bytes that read back as the given decisions."""

    def __init__(self) -> None:
        self.data = bytearray()

    def u8(self, value: int) -> Script:
        self.data.append(value & 0xFF)
        return self

    def below(self, n: int, value: int) -> Script:
        if n <= 1:
            return self
        size = 1 if n <= 256 else 2 if n <= 65536 else 4
        self.data += (value % n).to_bytes(size, "little")
        return self

    def flag(self, value: bool) -> Script:
        return self.u8(int(value))

    def pick(self, options: Sequence[Any], value: Any) -> Script:
        return self.below(len(options), list(options).index(value))

    def size(self, value: int, cap: int) -> Script:
        if value == 0:
            return self.u8(0)
        if value == 1:
            return self.u8(1)
        if value in (2, 3):
            return self.u8(2).u8(value - 2)
        if value <= 255:
            return self.u8(3).u8(value)
        return self.u8(6).below(cap + 1, value)

    def take(self, data: bytes) -> Script:
        self.data += data
        return self


# --- protocol ---------------------------------------------------------------------------------

_CUTS = (0, 1, 2, 3, 255, 256, -1, -2)


def _binary(script: Script, payload: bytes, cuts: Sequence[int], containers: Sequence[int]
            ) -> None:
    """A binary message cut into frames: each cut one of _CUTS, -1 for the rest."""
    script.below(16, 0).size(len(payload), 4096).take(payload)
    at = 0
    for index, cut in enumerate(cuts):
        script.pick(_CUTS, cut if cut in _CUTS else 255 if cut % 2 else 256)
        if cut not in _CUTS:
            script.u8(cut)
        at = len(payload) if cut < 0 else min(len(payload), at + cut)
        script.below(7, containers[index % len(containers)])
        if at == len(payload) and index < len(cuts) - 1:
            script.flag(False)  # go on with empty frames
    if at == len(payload):
        script.flag(True)


def _template(script: Script, index: int, mutations: Sequence[tuple[int, int, int]] = ()) -> None:
    from tests.fuzz.fuzz_protocol import _JSON_TEMPLATES

    script.below(16, 8).below(4, 2).below(len(_JSON_TEMPLATES), index).below(4, len(mutations))
    for at, action, value in mutations:
        script.below(len(_JSON_TEMPLATES[index]) + 1, at).below(4, action).u8(value)


def protocol_seeds() -> dict[str, bytes]:
    seeds = {}
    s = Script().flag(False)  # client
    _binary(s, bytes(range(33)), [1, 0, 3, 10, -1], [0, 1, 2, 3, 4])
    _template(s, 0)  # status_agent_ready
    _binary(s, b"\x01\x80\x02", [-1], [5])
    s.below(16, 12)  # new connection
    _binary(s, b"\xff" * 7, [1, 1, 0, 0, 1, -1], [6, 0, 1])
    seeds["client-odd-and-empty-frames"] = bytes(s.data)

    s = Script().flag(True)  # server
    _template(s, 1)  # status_client_ready
    _binary(s, bytes(range(256)) * 4, [255, 256, 2, -1], [0, 3])
    _template(s, 16, [(20, 0, 0x41)])  # duplicate keys, mutated
    s.below(16, 13).flag(True).size(6, 512).take(b"\x00\x80\xff\x7f\x01\x00")  # own audio
    s.below(16, 14).flag(False).size(3, 64).take(b"bye").flag(True).below(8, 3)
    seeds["server-ready-audio-sends-close"] = bytes(s.data)

    s = Script().flag(False)
    s.below(16, 8).below(4, 3).below(22, 0).pick((1, 10, 500, 5000, 100_000), 100_000).flag(False)
    s.below(16, 8).below(4, 0).size(4, 300).take(b"\x00\xd8\x00" b"A\x00\x00" b"\xff\xff\x10"
                                                  b"\x22\x00\x00")  # lone surrogate, "
    s.below(16, 8).below(4, 1).size(5, 300).take(b"\xff{\x80}\x00")
    _template(s, 21)  # a number of 5000 digits
    seeds["client-malformed-text"] = bytes(s.data)
    return seeds


# --- wav ------------------------------------------------------------------------------------------


def _riff(fmt: bytes, data: bytes, before: bytes = b"") -> bytes:
    body = b"WAVE" + before + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav_seeds() -> dict[str, bytes]:
    seeds = {}
    real = (Path(__file__).resolve().parents[2] / "python/anunzi_fast/data/hello.wav").read_bytes()
    seeds["file-hello-truncated"] = b"\x00" + real[:600]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44_100)
        out.writeframes(np.arange(-8, 8, dtype="<i2").tobytes())
    seeds["file-pcm16-stereo"] = b"\x00" + buffer.getvalue()
    floats = np.array([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, 1e-40, 0.5], "<f4")
    seeds["file-float32-specials"] = b"\x00" + _riff(
        struct.pack("<HHIIHH", 3, 1, 48_000, 192_000, 4, 32), floats.tobytes())
    ext = struct.pack("<HHIIHH", 0xFFFE, 2, 16_000, 256_000, 16, 64) + struct.pack(
        "<HHIH", 22, 64, 3, 3) + bytes(14)
    seeds["file-extensible-float64-odd-chunk"] = b"\x00" + _riff(
        ext, np.linspace(-1, 1, 6).astype("<f8").tobytes(), before=b"LIST\x03\x00\x00\x00abc\x00")
    seeds["file-pcm24-odd-data"] = b"\x00" + _riff(
        struct.pack("<HHIIHH", 1, 1, 8_000, 24_000, 3, 24), b"\x00\x00\x80\xff\xff\x7f\x01")
    seeds["file-pcm8-lying-size"] = b"\x00" + _riff(
        struct.pack("<HHIIHH", 1, 1, 8_000, 8_000, 1, 8), bytes(range(0, 256, 17)))[:-4]
    seeds["file-block-align-zero"] = b"\x00" + _riff(
        struct.pack("<HHIIHH", 1, 0, 8_000, 0, 0, 0), b"\x00" * 8)
    # Round trips: dtype, shape kind, channels, samples, rate.
    s = Script().below(4, 1).below(7, 1).below(4, 2).below(6, 1).size(16, 4096)
    s.take(np.array([0, -0.0, np.nan, 1], "<f4").tobytes()).below(9, 0)
    seeds["round-trip-float32-stereo"] = bytes(s.data)
    s = Script().below(4, 1).below(7, 0).below(4, 0).size(6, 4096).take(b"\x00\x80\xff\x7f\x01\x00")
    seeds["round-trip-int16-mono"] = bytes(s.data + Script().below(9, 4).data)
    seeds["assembled-riff"] = b"\x02" + bytes(range(64))
    return seeds


# --- token answer -----------------------------------------------------------------------------


def token_answer_seeds() -> dict[str, bytes]:
    seeds = {}
    good = json.dumps({"sessionURL": "wss://widgets.anunzi.net/websocket/start?token="
                       "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"}).encode()
    seeds["parse-valid-answer"] = b"\x01\x00\x01" + good
    local = json.dumps({"sessionURL": "ws://127.0.0.1:8080/websocket/start?token=abcdefgh"})
    seeds["parse-loopback-ws-after-http"] = b"\x01\x01\x01" + local.encode()
    seeds["parse-plain-ws-after-https"] = b"\x01\x00\x01" + local.replace(
        "127.0.0.1", "widgets.anunzi.net").encode()
    seeds["parse-html"] = b"\x01\x00\x01<html>surprise</html>"
    seeds["parse-invalid-utf8"] = b"\x01\x00\x01" + good[:-10] + b"\xff" + good[-10:]
    seeds["parse-structured"] = b"\x01\x00\x00" + bytes(range(1, 60))
    # _CappedBody: encoding, limit, body kind, then the body's own decisions.
    payload = good * 3
    s = Script().flag(False).below(12, 2).below(5, 0).below(6, 2).size(len(payload), 3 * 16384)
    s.take(payload).below(10, 6).pick((1, 2, 7, 512, 4096, 65536), 7)
    seeds["capped-gzip-small-chunks"] = bytes(s.data)
    s = Script().flag(False).below(12, 4).below(5, 0).below(6, 4).size(0, 3 * 16384).below(2, 0)
    seeds["capped-deflate-bomb"] = bytes(s.data + Script().pick((1, 2, 7, 512, 4096, 65536),
                                                                4096).data)
    s = Script().flag(False).below(12, 0).below(5, 0).below(6, 0).size(20_000, 3 * 16384)
    seeds["capped-identity-too-large"] = bytes(s.take(b"{" * 20_000).data)
    seeds["capped-garbage-encoding"] = bytes(Script().flag(False).below(12, 7).data)
    wire = zlib.compress(b'{"sessionURL": "x"}')
    seeds["capped-zlib-raw"] = bytes(Script().flag(False).below(12, 0).below(5, 0).below(6, 0)
                                     .size(len(wire), 3 * 16384).take(wire).data)
    assert gzip  # the bomb seeds use the target's own precomputed bombs
    return seeds


# --- native ---------------------------------------------------------------------------------------


def native_seeds() -> dict[str, bytes]:
    from tests.fuzz.fuzz_native import _OPERATIONS, _SPECIALS

    def op(script: Script, function: Callable[..., None]) -> Script:
        return script.below(len(_OPERATIONS), _OPERATIONS.index(function))

    from tests.fuzz import fuzz_native as n

    seeds = {}
    specials = np.array([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 0.99999994,
                         -1.0000001, 1e-45, 3e38, 0.5, -0.5], "<f4")
    s = op(Script(), n._check_float_to_pcm16).below(2, 0).below(3, 1).size(13, 4096)
    s.below(32, 1).take(specials.tobytes()).flag(True).below(8, 0).below(13, 4)
    s.pick(_SPECIALS, np.inf).below(14, 13).below(10, 4).flag(True)
    seeds["pcm16-specials-out"] = bytes(s.data)
    s = op(Script(), n._check_float_to_pcm16).below(2, 1).below(3, 1).size(9, 4096)
    s.below(32, 1).take(np.linspace(-2, 2, 9).tobytes()).flag(False).below(14, 1).u8(3)
    s.below(10, 0).flag(False)
    seeds["pcm16-float64-strided"] = bytes(s.data)
    s = op(Script(), n._check_pcm16_to_float).below(3, 1).size(5, 4096).below(32, 1)
    s.take(b"\x00\x80\xff\x7f\x01\x00\xff\xff\x00\x00").below(14, 7).below(10, 4)
    seeds["float-from-raw-bytes"] = bytes(s.data)
    s = op(Script(), n._check_ring).below(7, 0).below(9, 2)  # int16, capacity 3
    for _ in range(3):
        s.below(24, 5).below(5, 0).below(3, 1).size(2, 4096).take(b"\x01\x00\x02\x00")
        s.below(14, 13).below(5, 2).size(1, 4096).below(10, 0).size(2, 4096).pick((0, 1), 0)
    seeds["ring-capacity-3"] = bytes(s.data)
    s = op(Script(), n._check_jitter).below(6, 1).below(10, 0).below(8, 2).below(9, 4)
    s.below(24, 8).below(6, 0).below(3, 1).size(200, 4096).take(bytes(800)).below(14, 13)
    s.below(6, 2).below(10, 4).below(6, 5)
    seeds["jitter-float32-push-read-clear"] = bytes(s.data)
    s = op(Script(), n._check_resample).below(6, 2).below(8, 1).below(7, 3).below(7, 0)
    s.pick((1, 1, 2, 3), 2).below(5, 3)
    for count in (7, 0, 100):
        s.size(count, 512).take(np.random.default_rng(count).normal(size=2 * count)
                                .astype("<f4").tobytes())
    seeds["resample-44k1-48k-stereo-chunks"] = bytes(s.data)
    return seeds


def write_all() -> None:
    for target, make in (("protocol", protocol_seeds), ("wav", wav_seeds),
                         ("token_answer", token_answer_seeds), ("native", native_seeds)):
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in make().items():
            (folder / name).write_bytes(data)
        print(f"{target}: {len(list(folder.iterdir()))} seeds")


if __name__ == "__main__":
    write_all()
