"""A circuit breaker per judge endpoint: when it is down, calls fail fast instead of each one
spending its timeout and retries on it.

After ``threshold`` consecutive calls that could not connect, the breaker opens: every call fails
at once with ``error(unreachable)`` for ``cooldown`` seconds. Then one call is let through (half
open); if it connects, calls flow again, else the breaker opens for another cooldown. Any reply
from the endpoint, even an error status, proves it reachable and resets the count.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from judge.errors import ErrorKind
from judge.transports.base import TransportError


class CircuitBreaker:
    """Counts consecutive connection failures of one endpoint and fails calls fast when open."""

    def __init__(
        self,
        endpoint: str,
        *,
        threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.endpoint = endpoint
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.last_failure = ""

    def check(self) -> None:
        """Raise ``error(unreachable)`` while the breaker is open; after the cooldown let one
        call through (the next one waits for a new cooldown unless that call connects)."""
        if self.opened_at is None:
            return
        waited = self.clock() - self.opened_at
        if waited >= self.cooldown:
            self.opened_at = self.clock()  # this call probes; the others keep failing fast
            return
        raise TransportError(
            ErrorKind.UNREACHABLE,
            f"{self.endpoint} is unreachable: {self.failures} consecutive connection failures "
            f"(last: {self.last_failure}); failing fast for {self.cooldown - waited:.0f} s more",
            transient=False,
        )

    def record(self, error: TransportError | None) -> None:
        """Count a call's outcome: a connection failure, or anything that reached the endpoint."""
        if error is None or error.kind != ErrorKind.UNREACHABLE:
            self.failures = 0
            self.opened_at = None
            return
        self.failures += 1
        self.last_failure = str(error)
        if self.failures >= self.threshold:
            self.opened_at = self.clock()
