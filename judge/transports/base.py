"""What every transport returns and raises."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from judge.errors import ErrorKind


@dataclass(frozen=True)
class Completion:
    """What a judge call returned, whichever transport carried it."""

    content: str
    refusal: str | None
    finish_reason: str | None
    top_logprobs: list[tuple[str, float]] | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    """Of the input, tokens the provider had cached (billed at the cached rate)."""
    cache_write_tokens: int = 0
    """Of the input, tokens the provider wrote to its cache (Anthropic bills them higher)."""


class TransportError(Exception):
    """A failed call: its verdict error kind, whether a retry may help, and how long the
    provider asked us to wait (``Retry-After``)."""

    def __init__(
        self, kind: ErrorKind, message: str, *, transient: bool, retry_after: float | None = None
    ):
        self.kind = kind
        self.transient = transient
        self.retry_after = retry_after
        super().__init__(message)


class Transport(Protocol):
    """Sends one chat completion request; ``aclose`` releases its connections."""

    name: str

    async def complete(
        self, messages: list[dict[str, str]], params: dict[str, Any], *, static: Sequence[int] = ()
    ) -> Completion:
        """One request. ``static``: per message, how many leading characters are the same for
        every call of this kind (a transport whose provider caches prompts only when asked marks
        where that part ends)."""
        ...

    async def aclose(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds, when it is a number of them (``nan`` is not: a
    wait of NaN seconds never ends; nor is a negative number)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < math.inf else None
