"""picows, an optional dependency (the ``load`` extra), for the load generator's light driver
and the light emulator: its import with a clear error, and one listener class for both."""

from __future__ import annotations

from typing import Any

from .errors import InvalidArgumentError

__all__ = ["import_picows", "listener_class"]


def import_picows(needed_by: str) -> Any:
    """The picows module; :class:`InvalidArgumentError` naming ``needed_by`` if missing."""
    try:
        import picows
    except ImportError as exc:
        raise InvalidArgumentError(
            f"{needed_by} needs picows: pip install \"anunzi-fast[load]\"") from exc
    return picows


_LISTENER: Any = None


def listener_class() -> Any:
    """picows' listener, forwarding its callbacks to a target object with ``on_connected``,
    ``on_frame``, ``on_disconnected``, ``pause_writing`` and ``resume_writing`` (the class is
    made once, on first use: picows is optional)."""
    global _LISTENER
    if _LISTENER is None:
        picows = import_picows("a picows connection")

        class Listener(picows.WSListener):  # type: ignore[misc,name-defined]
            def __init__(self, target: Any) -> None:
                super().__init__()
                self.target = target

            def on_ws_connected(self, transport: Any) -> None:
                self.target.on_connected(transport)

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                self.target.on_frame(frame)

            def on_ws_disconnected(self, transport: Any) -> None:
                self.target.on_disconnected()

            def pause_writing(self) -> None:
                self.target.pause_writing()

            def resume_writing(self) -> None:
                self.target.resume_writing()

        _LISTENER = Listener
    return _LISTENER
