"""When to try again: the retry policy of the token request and of reconnections.

:class:`RetryPolicy` is the user's knob; :class:`RetrySchedule` applies it to one request
without doing any I/O (the caller sleeps), so the async and the sync request share it.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import AnunziError, InvalidArgumentError, is_transient

__all__ = ["RetryPolicy", "RetrySchedule", "parse_retry_after"]


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


class RetrySchedule:
    """One request's attempts under a :class:`RetryPolicy`, without I/O.

    Call :meth:`attempt_timeout` before each attempt and :meth:`delay_before_retry` after a
    failed one. The deadline counts from construction and bounds attempts and waits together.
    """

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self.deadline = clock() + policy.deadline
        self.attempts = 0

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - self._clock())

    def attempt_timeout(self) -> float:
        """Start an attempt; return the time it may take."""
        self.attempts += 1
        return max(0.001, min(self.policy.attempt_timeout, self.remaining()))

    def delay_before_retry(self, error: AnunziError) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up with ``error``."""
        if not is_transient(error) or self.attempts >= self.policy.max_attempts:
            return None
        delay = self.policy.backoff(self.attempts)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.policy.max_retry_after))
        if self._clock() + delay >= self.deadline:
            return None
        return delay
