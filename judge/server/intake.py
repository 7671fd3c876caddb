"""From a request body to what the engine grades: transcripts (each checked, with its index in
the error) and rubrics, within the server's limits."""

from __future__ import annotations

from judge.errors import TranscriptError
from judge.rubric import Rubric
from judge.server.state import ServerState
from judge.transcript import Transcript
from judge.transcript_files import parse_record


def parse_transcripts(records: list[dict[str, object]], max_chars: int) -> list[Transcript]:
    """The records as transcripts; the first bad one is a ``TranscriptError`` naming its index
    and field (a record over ``max_chars`` is one)."""
    transcripts = []
    for index, record in enumerate(records):
        try:
            transcripts.append(parse_record(record, max_chars=max_chars))
        except TranscriptError as exc:
            located = TranscriptError(f"transcripts[{index}]: {exc}")  # exc names the field
            located.field = exc.field
            raise located from None
    return transcripts


def rubrics_for(state: ServerState, ids: list[str]) -> list[Rubric]:
    return [state.library.get(rubric_id) for rubric_id in dict.fromkeys(ids)]
