"""A circuit breaker per channel: after `failures` transient failures in a row the channel
is left alone for `cooldown` seconds, then one message goes through as a probe; its
success closes the breaker, its failure opens it again."""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._open_until is None:
            return "closed"
        return "open" if self._clock() < self._open_until else "half_open"

    def blocked(self) -> bool:
        """True while nothing may be sent: open, or half open with its probe under way."""
        state = self.state
        return state == "open" or (state == "half_open" and self._probing)

    def allow(self) -> bool:
        """May this message go now? In half open, only the first one asking (the probe)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def remaining(self) -> float:
        return max((self._open_until or 0) - self._clock(), 0.0)

    def success(self) -> None:
        self._failures = 0
        self._open_until = None
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._open_until = self._clock() + self._cooldown
            self._probing = False
