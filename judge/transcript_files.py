"""Reading transcripts from JSON and JSONL files.

Two record shapes are accepted: OpenAI chat (``{"id"?, "messages": [...], "metadata"?}``) and
single turn (``{"id"?, "prompt", "response", "system"?}``). Top-level fields outside those shapes (a
``gold`` label, a ``model`` name) are kept in ``metadata``. A bad record becomes a
``TranscriptError`` with its line and field, and the records after it are still read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.errors import TranscriptError, UsageError
from judge.transcript import Transcript

_CHAT_FIELDS = {"id", "messages", "metadata"}
_SINGLE_TURN_FIELDS = {"id", "prompt", "response", "system", "metadata"}


def parse_record(record: Any, *, line: int | None = None) -> Transcript:
    """Turn one decoded JSON record into a transcript, or raise ``TranscriptError``."""
    if not isinstance(record, dict):
        raise TranscriptError(
            f"a record must be a JSON object, not {type(record).__name__}", line=line
        )
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
        return Transcript(**fields, metadata={**extras, **metadata})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise TranscriptError(error["msg"], line=line, field=field) from None


def read_transcripts(path: Path) -> Iterator[Transcript | TranscriptError]:
    """Yield each record of a ``.json`` or ``.jsonl`` file as a transcript or as its error.

    A ``.json`` file holds one record or a list of them (``line`` is then the position in the
    list, from 1); any other file is read as JSON Lines, blank lines skipped. Inspect AI logs
    (``.eval``, and ``.json`` ones) are read by ``judge.integrations.inspect``.
    """
    if path.suffix == ".eval":
        yield from _read_inspect(path)
        return
    if path.suffix == ".json":
        yield from _read_json(path)
        return
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield TranscriptError(f"invalid JSON: {exc.msg} (column {exc.colno})", line=number)
                continue
            try:
                yield parse_record(record, line=number)
            except TranscriptError as exc:
                yield exc


def _read_json(path: Path) -> Iterator[Transcript | TranscriptError]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        yield TranscriptError(f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)
        return
    if isinstance(document, dict) and {"version", "eval"} <= document.keys():  # an Inspect log
        del document  # Inspect reads the file itself
        yield from _read_inspect(path)
        return
    records = document if isinstance(document, list) else [document]
    for number, record in enumerate(records, start=1):
        try:
            yield parse_record(record, line=number)
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
