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

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

try:  # websockets' C helper; its pure-Python fallback where the wheel has none
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - every wheel we test has it
    from websockets.utils import apply_mask

__all__ = ["write_binary"]

_MASK_POOL_BYTES = 4096  # 1,024 masks per system call


class _Masks:
    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        if self._at == len(self._pool):
            self._pool, self._at = os.urandom(_MASK_POOL_BYTES), 0
        mask = self._pool[self._at : self._at + 4]
        self._at += 4
        return mask


_masks = _Masks()


def write_binary(connection: ClientConnection, payload: memoryview) -> bool:
    """Write ``payload`` as one masked binary frame if websockets would do just that now."""
    protocol = connection.protocol
    if (protocol.state is not State.OPEN or protocol.extensions
            or getattr(protocol, "writes", True)  # data websockets has yet to write
            # a fragmented send under way (the attribute's name changed in websockets 16)
            or getattr(connection, "send_in_progress", None) is not None
            or getattr(connection, "fragmented_send_waiter", None) is not None
            or getattr(connection, "paused", True)  # flow control: websockets drains
            or connection.transport.is_closing()):
        return False
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
