"""Readiness of a store that this process writes to: a write it committed a moment ago says the
store is writable as well as a probe would, and costs nothing, where a probe would wait behind
the writes of the work under way (``/readyz`` while a large job is taken in and graded)."""

from __future__ import annotations

import math
import time

RECENT_SECONDS = 1.0
"""How recent a committed write must be to stand for a probe's."""


class RecentWrites:
    """When this process last committed a write to one store (``mark`` after each commit)."""

    def __init__(self) -> None:
        self._at = -math.inf

    def mark(self) -> None:
        self._at = time.monotonic()

    def vouch(self) -> bool:
        """Whether a write committed within the last ``RECENT_SECONDS``."""
        return time.monotonic() - self._at < RECENT_SECONDS
