"""Reading transcripts from JSON, JSONL and CSV files (or standard input, named ``-``).

Two record shapes are accepted: OpenAI chat (``{"id"?, "messages": [...], "metadata"?}``) and
single turn (``{"id"?, "prompt", "response", "system"?}``). Top-level fields outside those shapes (a
``gold`` label, a ``model`` name) are kept in ``metadata``. A bad record becomes a
``TranscriptError`` with its line and field, and the records after it are still read: bytes that
are not UTF-8, invalid or ambiguous JSON (``judge.json_input``), text with control characters or
lone surrogates, a wrong shape, or more text than ``max_chars``. A binary file is one error.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.column_map import ColumnMap
from judge.errors import TranscriptError, UsageError
from judge.json_input import JSONInputError, check, decode_text, loads
from judge.transcript import Message, Transcript

_CHAT_FIELDS = {"id", "messages", "metadata"}
_SINGLE_TURN_FIELDS = {"id", "prompt", "response", "system", "metadata"}
STDIN = Path("-")
"""The path that names standard input (read as JSON Lines)."""


def parse_record(
    record: Any, *, line: int | None = None, max_chars: int | None = None
) -> Transcript:
    """Turn one decoded JSON record into a transcript, or raise ``TranscriptError``.

    ``max_chars`` bounds the messages (all they hold), and separately the size of the metadata;
    an id is at most ``MAX_ID_CHARS``.
    """
    if not isinstance(record, dict):
        raise TranscriptError(
            f"a record must be a JSON object, not {type(record).__name__}", line=line
        )
    try:
        check(record)
    except JSONInputError as exc:
        raise TranscriptError(str(exc), line=line, field=exc.field) from None
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise TranscriptError("must be an object", line=line, field="metadata")
    if "messages" in record:
        known = _CHAT_FIELDS
        fields = {"id": record.get("id"), "messages": record["messages"]}
    elif "prompt" in record or "response" in record:
        known = _SINGLE_TURN_FIELDS
        for required in ("prompt", "response"):
            if not isinstance(record.get(required), str):
                raise TranscriptError("is required and must be a string", line=line, field=required)
        system = record.get("system")
        if system is not None and not isinstance(system, str):
            raise TranscriptError("must be a string", line=line, field="system")
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["response"]},
        ]
        fields = {"id": record.get("id"), "messages": messages}
    else:
        raise TranscriptError(
            "a record needs 'messages' (OpenAI chat format) or 'prompt' and 'response'", line=line
        )
    extras = {k: v for k, v in record.items() if k not in known}
    try:
        transcript = Transcript(**fields, metadata={**extras, **metadata})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise TranscriptError(error["msg"], line=line, field=field) from None
    group = transcript.metadata.get("group")
    if isinstance(group, float) and group.is_integer():  # 3.0, as pandas writes a gappy column
        group = int(group)
        transcript = transcript.model_copy(
            update={"metadata": {**transcript.metadata, "group": group}}
        )
    if group is not None and (isinstance(group, bool) or not isinstance(group, str | int)):
        raise TranscriptError("a group id is a string or an integer", line=line, field="group")
    if max_chars is not None:
        _check_size(transcript, max_chars, line)
    return transcript


MAX_ID_CHARS = 1024
"""A transcript id names it in verdicts, logs and stores; longer is a mistake, not an id."""


def _check_size(transcript: Transcript, max_chars: int, line: int | None) -> None:
    """The id against ``MAX_ID_CHARS``; the messages, whole (names, tool calls and any extra keys
    besides the text), and the metadata, each against ``max_chars``."""
    if transcript.id is not None and len(transcript.id) > MAX_ID_CHARS:
        raise TranscriptError(
            f"holds {len(transcript.id)} characters; an id is at most {MAX_ID_CHARS}",
            line=line,
            field="id",
        )
    text = sum(_message_chars(message) for message in transcript.messages)
    metadata = (
        len(json.dumps(transcript.metadata, ensure_ascii=False)) if transcript.metadata else 2
    )
    for field, size in (("messages", text), ("metadata", metadata)):
        if size > max_chars:
            raise TranscriptError(
                f"holds {size} characters; at most {max_chars} are accepted per transcript "
                "(JUDGE_MAX_TRANSCRIPT_CHARS)",
                line=line,
                field=field,
            )


def _message_chars(message: Message) -> int:
    size = len(message.content or "") + len(message.name or "") + len(message.tool_call_id or "")
    for rest in (message.tool_calls, message.model_extra):
        if rest:
            size += len(json.dumps(rest, ensure_ascii=False))
    return size


def read_transcripts(
    path: Path, *, max_chars: int | None = None, mapping: ColumnMap | None = None
) -> Iterator[Transcript | TranscriptError]:
    """Yield each record of a file as a transcript or as its error.

    A ``.json`` file holds one record or a list of them (``line`` is then the position in the
    list, from 1); a ``.csv`` file a record a row (with a header; ``line`` is the line the row
    starts on); any other file, and standard input (``-``), is read as JSON Lines, blank lines
    skipped, one line at a time. ``mapping`` renames fields first (``judge.column_map``). Inspect
    AI logs (``.eval``, and ``.json`` ones) are read by ``judge.integrations.inspect``.
    """
    reading = _Reading(max_chars, mapping or ColumnMap())
    if path == STDIN:
        yield from reading.lines(sys.stdin.buffer)
        return
    if path.suffix == ".eval":
        yield from _read_inspect(path)
        return
    with path.open("rb") as handle:
        head = handle.read(8192)
        if b"\x00" in head:
            yield TranscriptError("a binary file (it holds NUL bytes), not JSON text")
            return
        handle.seek(0)
        if path.suffix == ".json":
            yield from reading.document(path, handle.read())
        elif path.suffix == ".csv":
            yield from reading.table(path, handle.read())
        else:
            yield from reading.lines(handle)


@dataclass(frozen=True)
class _Reading:
    """How records of one input become transcripts: mapped, then parsed within ``max_chars``."""

    max_chars: int | None
    mapping: ColumnMap

    def record(self, value: Any, line: int | None) -> Transcript:
        if isinstance(value, dict):
            value = self.mapping.apply(value, line=line)
        return parse_record(value, line=line, max_chars=self.max_chars)

    def lines(self, lines: Iterable[bytes]) -> Iterator[Transcript | TranscriptError]:
        for number, raw in enumerate(lines, start=1):
            try:
                text = decode_text(raw)
            except JSONInputError as exc:
                yield TranscriptError(str(exc), line=number)
                continue
            if not text.strip():
                continue
            try:
                yield self.record(loads(text), number)
            except JSONInputError as exc:
                yield TranscriptError(str(exc), line=number, field=exc.field)
            except TranscriptError as exc:
                yield exc

    def document(self, path: Path, data: bytes) -> Iterator[Transcript | TranscriptError]:
        try:
            document = loads(data, controls=True)  # records refuse control characters themselves
        except JSONInputError as exc:
            yield TranscriptError(str(exc), field=exc.field)
            return
        if isinstance(document, dict) and {"version", "eval"} <= document.keys():  # Inspect's
            del document  # Inspect reads the file itself
            yield from _read_inspect(path)
            return
        records = document if isinstance(document, list) else [document]
        for number, record in enumerate(records, start=1):
            try:
                yield self.record(record, number)
            except TranscriptError as exc:
                yield exc

    def table(self, path: Path, data: bytes) -> Iterator[Transcript | TranscriptError]:
        """CSV rows as records: columns become fields (text, as CSV has no other type)."""
        try:
            text = decode_text(data)
        except JSONInputError as exc:
            yield TranscriptError(str(exc))
            return
        csv.field_size_limit(2**31 - 1)  # a cell is bounded by max_chars, not by csv's 128 KiB
        rows = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        missing = self.mapping.missing(rows.fieldnames or [])
        if missing:
            columns = ", ".join(rows.fieldnames or []) or "none"
            raise UsageError(f"{path} has no column {', '.join(missing)} (columns: {columns})")
        while True:
            start = rows.line_num + 1  # a quoted cell may span lines: name the row's first
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                yield TranscriptError(f"not valid CSV: {exc}", line=start)
                continue
            if None in row or None in row.values():
                yield TranscriptError("has a different number of cells than the header", line=start)
                continue
            try:
                yield self.record(row, start)
            except TranscriptError as exc:
                yield exc


def _read_inspect(path: Path) -> Iterator[Transcript | TranscriptError]:
    try:
        from judge.integrations.inspect.logs import read_inspect_log
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("inspect_ai"):
            raise
        raise UsageError(f"{path} is an Inspect AI log: pip install 'judge[inspect]'") from None
    yield from read_inspect_log(path)
