"""Single-use, short-lived session tokens, as the service issues them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SessionGrant", "TokenStore"]


@dataclass(frozen=True)
class SessionGrant:
    """What a redeemed token entitles to: a session with this assistant."""

    assistant_id: str
    expires_at: float

    def __repr__(self) -> str:  # the token itself is never part of a grant
        return f"SessionGrant(assistant_id={self.assistant_id!r})"


class TokenStore:
    """Issues tokens and redeems each one at most once, before it expires.

    Args:
        ttl: Seconds a token stays valid after it is issued.
        clock: Monotonic clock, injectable for tests.
    """

    # Expired tokens are swept when the store grows past this, keeping memory bounded.
    _SWEEP_THRESHOLD = 1024

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._grants: dict[str, SessionGrant] = {}

    def issue(self, assistant_id: str) -> str:
        """Return a new URL-safe token for ``assistant_id``."""
        now = self._clock()
        if len(self._grants) >= self._SWEEP_THRESHOLD:
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
        token = secrets.token_urlsafe(24)
        self._grants[token] = SessionGrant(assistant_id, now + self.ttl)
        return token

    def redeem(self, token: str | None) -> SessionGrant | None:
        """Consume ``token``; ``None`` if it is unknown, already used or expired."""
        if not token:
            return None
        grant = self._grants.pop(token, None)
        if grant is None or grant.expires_at <= self._clock():
            return None
        return grant

    def __len__(self) -> int:
        return len(self._grants)
