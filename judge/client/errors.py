"""What the client raises::

    JudgeClientError
    ├── JudgeAPIError          an error reply (problem details): status, title, detail, errors,
    │                          body, retry_after
    └── JudgeUnavailableError  unreachable, or 503/429, for longer than max_wait: waited, last_error

Invalid arguments fail before anything is sent, as pydantic's ``ValidationError``.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx


class JudgeClientError(Exception):
    """What the client raises on purpose."""


class JudgeAPIError(JudgeClientError):
    """The service answered with an error (RFC 9457 problem details): ``status``, ``title``,
    ``detail`` (what to fix), ``errors`` (one per invalid field, on 422), the whole ``body``, and
    ``retry_after`` (seconds) when the service said when to come back."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.body = body or {}
        self.retry_after = retry_after

    @classmethod
    def of(cls, response: httpx.Response) -> JudgeAPIError:
        """The error a read reply stands for; a body that is not problem JSON (a proxy's page)
        becomes the detail."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"detail": response.text[:2000]}
        return cls(
            response.status_code,
            str(body.get("title") or response.reason_phrase),
            str(body.get("detail", "")),
            errors=list(body.get("errors") or []),
            body=body,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )


class JudgeUnavailableError(JudgeClientError):
    """The service stayed unreachable, or kept answering 503/429, for longer than ``max_wait``:
    how long the client ``waited`` and the ``last_error`` it saw."""

    def __init__(self, url: str, waited: float, last_error: BaseException | None) -> None:
        super().__init__(
            f"the judge service at {url} has been unavailable for {waited:.1f} s, longer than the "
            f"client's max_wait; last error: {last_error!r}"
        )
        self.waited = waited
        self.last_error = last_error


def checked(response: httpx.Response) -> httpx.Response:
    """The response, if it is a success; else its ``JudgeAPIError`` (read the body first)."""
    if not response.is_success:
        raise JudgeAPIError.of(response)
    return response


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` value (seconds or an HTTP date) in seconds from now."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
