"""What survives a restart while provider batches run: which batches were submitted for which
calls, kept in a ledger (a file beside the cache for the CLI, the job's row for a job), so a
rerun or a restarted server polls the same batches instead of paying for new ones."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from judge.batch.api import FINISHED, BatchStatus


class ProviderBatch(BaseModel):
    """One provider batch as a user sees it: its id, model, status and request counts."""

    model_config = ConfigDict(extra="forbid")

    id: str
    model: str
    status: BatchStatus
    requests: int
    completed: int = 0
    failed: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class SubmittedBatch(ProviderBatch):
    """A provider batch and the calls it holds: those of judge ``judge`` (its index in the plan)
    at positions ``start`` to ``end`` (excluded) of that judge's calls, less the ones that were
    cached or repeated when it was made."""

    judge: int
    start: int
    end: int


class BatchState(BaseModel):
    """The batches made for one set of calls (``calls``: their digest), and whether their results
    are read into the cache (then nothing is left to wait for)."""

    model_config = ConfigDict(extra="forbid")

    calls: str
    batches: list[SubmittedBatch] = []
    read: bool = False

    def covers(self, judge: int, position: int) -> bool:
        return any(b.judge == judge and b.start <= position < b.end for b in self.batches)

    def public(self) -> list[ProviderBatch]:
        return [ProviderBatch.model_validate(b.model_dump(include=_PUBLIC)) for b in self.batches]


_PUBLIC = set(ProviderBatch.model_fields)


class Ledger(Protocol):
    """Where a batch state is kept between runs."""

    async def load(self, calls: str) -> BatchState | None:
        """The state kept for this set of calls (a state for other calls counts as none)."""
        ...

    async def save(self, state: BatchState) -> None: ...


class FileLedger:
    """States as JSON files in a directory (the CLI's: under its cache directory), one per set
    of calls, written atomically."""

    def __init__(self, directory: Path):
        self.directory = directory

    def path(self, calls: str) -> Path:
        return self.directory / f"{calls[:40]}.json"

    async def load(self, calls: str) -> BatchState | None:
        path = self.path(calls)
        if not path.is_file():
            return None
        state = BatchState.model_validate_json(await asyncio.to_thread(path.read_bytes))
        return state if state.calls == calls else None

    async def save(self, state: BatchState) -> None:
        await asyncio.to_thread(self._write, state)

    def _write(self, state: BatchState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(state.calls)
        partial = path.with_suffix(".partial")
        partial.write_text(state.model_dump_json(), encoding="utf-8")
        os.replace(partial, path)

    async def discard(self, calls: str) -> None:
        """Forget the state: its batches are read and their calls graded."""
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path(calls).unlink)
