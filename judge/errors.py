"""Exceptions, split at the line between the caller's mistake and a failed run.

    JudgeError
    ├── UsageError              the caller must fix something: HTTP 4xx, CLI exit code 2
    │   ├── RubricError         a rubric file is invalid, or no rubric has that id
    │   ├── TranscriptError     a transcript record is malformed (carries line and field)
    │   ├── JudgeSpecError      a judge specification cannot be used (unknown reducer, bad model)
    │   ├── NotFoundError       no such job or rubric (HTTP 404)
    │   ├── ConflictError       an idempotency key reused for a different request (HTTP 409)
    │   ├── TooLargeError       a request over the configured limits (HTTP 413)
    │   └── BatchError          a provider batch cannot be made or used (no batch API there)
    └── JudgeCallError          one judge call failed; becomes an ``error`` verdict, never a label

A ``JudgeCallError`` carries one of the verdict error kinds in ``ErrorKind`` so that aggregates can
count failures by cause.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why a verdict could not be graded (see DESIGN.md, "Verdict")."""

    PARSE = "parse"
    JUDGE_REFUSED = "judge_refused"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    PROVIDER = "provider"
    UNREACHABLE = "unreachable"
    NO_JUDGE = "no_judge"
    BUDGET = "budget"


class JudgeError(Exception):
    """Base of every exception this package raises on purpose."""


class UsageError(JudgeError):
    """The caller asked for something that cannot work; the message says what to fix."""


class RubricError(UsageError):
    """A rubric file is invalid, or a requested rubric id does not exist."""


class TranscriptError(UsageError):
    """A transcript record is malformed; ``line`` and ``field`` locate it in its file."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None):
        self.line = line
        self.field = field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class JudgeSpecError(UsageError):
    """A judge specification (models, samples, reducer) cannot be used."""


class NotFoundError(UsageError):
    """The named job or rubric does not exist."""


class ConflictError(UsageError):
    """The request conflicts with an earlier one (an idempotency key reused for other content)."""


class TooLargeError(UsageError):
    """The request is larger than this server accepts; the message names the limit."""


class BatchError(UsageError):
    """A provider batch cannot be made or used: the judge's provider has no batch API we support,
    the endpoint refused a request of it, or the provider failed the batch as a whole.
    ``transient`` says whether trying again later may help; ``status`` is the HTTP status of a
    refused request."""

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None):
        self.transient = transient
        self.status = status
        super().__init__(message)


class JudgeCallError(JudgeError):
    """A judge call failed; ``kind`` names the cause, ``raw_output`` keeps what the judge said."""

    def __init__(self, kind: ErrorKind, message: str, *, raw_output: str | None = None):
        self.kind = kind
        self.raw_output = raw_output
        super().__init__(message)
