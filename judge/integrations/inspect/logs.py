"""Inspect AI eval logs as transcripts: one per sample and epoch.

An ``.eval`` log is a zip with one entry per sample and epoch; it is read through Inspect's own
reader, ``CHUNK`` samples at a time, without the samples' events and store (the bulk of a log,
which no rubric reads), so memory stays flat for a log of any size. A ``.json`` log is one JSON
document: Inspect reads it whole.

Each transcript carries, in ``metadata``: ``model`` (the evaluated model), ``task``,
``sample_id``, ``epoch``, ``prompt_id`` (``task/sample_id``, so that reports pair the same
prompt across models and treat epochs as repeated samples of it) and ``target``, over the
sample's own metadata (see ``sample_metadata``). Its id is ``task/sample_id/epoch``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from inspect_ai.log import (
    EvalLog,
    EvalSample,
    read_eval_log,
    read_eval_log_sample,
    read_eval_log_samples_by_id,
)
from pydantic import ValidationError

from judge.errors import TranscriptError
from judge.integrations.inspect.messages import sample_metadata, transcript_of
from judge.transcript import Transcript

CHUNK = 64
"""Samples read per pass over the zip's directory (Inspect parses it once per read call)."""
SKIPPED_FIELDS = frozenset({"events", "events_data", "timelines", "store"})
"""Sample fields never read: the event log and the store (the bulk of a log)."""


def read_inspect_log(path: Path | str) -> Iterator[Transcript | TranscriptError]:
    """Yield each sample and epoch of an Inspect log as a transcript, or as the error that
    kept it from being one (``line`` is the sample's position in the log, from 1).

    Samples a cancelled or failed run never wrote are skipped; one that cannot be read or has
    no message is an error, and the samples after it are still read.
    """
    path = Path(path)
    try:
        header = read_eval_log(path.as_posix(), header_only=True)
    except Exception as exc:  # Inspect raises many kinds: a damaged zip, a bad version
        yield TranscriptError(f"not a readable Inspect log: {exc}")
        return
    if path.suffix == ".json":
        yield from _whole(path, header)
    else:
        yield from _streamed(path, header)


def _streamed(path: Path, header: EvalLog) -> Iterator[Transcript | TranscriptError]:
    sample_ids = header.eval.dataset.sample_ids
    if sample_ids is None:
        yield TranscriptError(
            "the log lists no sample ids (reading and re-writing it with Inspect adds them)"
        )
        return
    epochs = header.eval.config.epochs or 1
    where = [(sample_id, epoch) for sample_id in sample_ids for epoch in range(1, epochs + 1)]
    for start in range(0, len(where), CHUNK):
        chunk = where[start : start + CHUNK]
        try:
            samples = read_eval_log_samples_by_id(
                path.as_posix(),
                chunk,
                resolve_attachments=True,
                exclude_fields=set(SKIPPED_FIELDS),
            )
        except Exception:  # a sample missing or unreadable: read them one by one
            yield from _one_by_one(path, header, chunk, first_line=start + 1)
            continue
        for line, sample in enumerate(samples, start=start + 1):
            yield _transcript(sample, header, line)


def _one_by_one(
    path: Path, header: EvalLog, chunk: list[tuple[str | int, int]], first_line: int
) -> Iterator[Transcript | TranscriptError]:
    for line, (sample_id, epoch) in enumerate(chunk, start=first_line):
        try:
            sample = read_eval_log_sample(
                path.as_posix(),
                id=sample_id,
                epoch=epoch,
                resolve_attachments=True,
                exclude_fields=set(SKIPPED_FIELDS),
            )
        except IndexError:  # not written: the run stopped before this sample
            continue
        except Exception as exc:
            yield TranscriptError(f"sample {sample_id} epoch {epoch}: {exc}", line=line)
            continue
        yield _transcript(sample, header, line)


def _whole(path: Path, header: EvalLog) -> Iterator[Transcript | TranscriptError]:
    log = read_eval_log(path.as_posix(), resolve_attachments=True)
    for line, sample in enumerate(log.samples or [], start=1):
        yield _transcript(sample, header, line)


def _transcript(sample: EvalSample, header: EvalLog, line: int) -> Transcript | TranscriptError:
    task = header.eval.task
    ours = {
        "model": header.eval.model,
        "task": task,
        "sample_id": sample.id,
        "epoch": sample.epoch,
        "prompt_id": f"{task}/{sample.id}",
        "target": sample.target,
    }
    try:
        return transcript_of(
            sample.messages,
            id=f"{task}/{sample.id}/{sample.epoch}",
            metadata=sample_metadata(sample.metadata, ours),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        return TranscriptError(
            f"sample {sample.id} epoch {sample.epoch}: {error['msg']}", line=line, field=field
        )
