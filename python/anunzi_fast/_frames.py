"""Audio frames written straight to a websockets connection's transport.

``ClientConnection.send`` costs about as much as everything else a session does per 20 ms
tick (measured with py-spy in ``benchmarks/bench_sessions.py``): an async context manager per
message, a flow-control wait, and a ``getrandom`` system call for each frame's mask. A client
frame of one whole binary message needs none of that while the connection is open, nothing is
queued ahead of it and the transport accepts writes; then :func:`write_binary` builds the
frame itself, with masks drawn from a pool of ``os.urandom`` bytes (RFC 6455 asks for
unpredictable masks, not for one system call each), and writes it in one call. Otherwise it
returns ``False`` and websockets sends the message, waits for the closing handshake or raises
``ConnectionClosed`` as it always does. Attributes a websockets version lacks count as "not
now", so an unknown version always takes websockets' own path.
"""

from __future__ import annotations

import os
import struct
import threading

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

try:  # websockets' C helper; its pure-Python fallback where the wheel has none
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - every wheel we test has it
    from websockets.utils import apply_mask

__all__ = ["write_binary"]

_MASK_POOL_BYTES = 4096  # 1,024 masks per system call


class _Masks(threading.local):
    """Each thread's own pool (event loops may run in several), drawn anew after a fork."""

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0

    def next(self) -> bytes:
        if self.at + 4 > len(self.pool):
            self.pool, self.at = os.urandom(_MASK_POOL_BYTES), 0
        mask = self.pool[self.at : self.at + 4]
        self.at += 4
        return mask


_masks = _Masks()


def _forget_masks() -> None:  # a forked child must not repeat its parent's masks
    _masks.pool, _masks.at = b"", 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_masks)


def write_binary(connection: ClientConnection, payload: memoryview) -> bool:
    """Write ``payload`` as one masked binary frame if websockets would do just that now."""
    protocol = connection.protocol
    if (protocol.state is not State.OPEN or protocol.extensions
            or getattr(protocol, "writes", True)  # data websockets has yet to write
            or getattr(protocol, "expect_continuation_frame", True)  # a fragmented send
            or getattr(connection, "paused", True)  # flow control: websockets drains
            or connection.transport.is_closing()
            or not payload.c_contiguous):
        return False
    if payload.format != "B":
        payload = payload.cast("B")  # apply_mask's pure-Python fallback counts items
    size = payload.nbytes
    if size < 126:
        header = struct.pack("!BB", 0x82, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x82, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
    mask = _masks.next()
    connection.transport.write(header + mask + apply_mask(payload, mask))
    return True
