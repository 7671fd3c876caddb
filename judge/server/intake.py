"""From a request body to what the engine grades: transcripts (each checked, with its index in
the error) and rubrics, within the server's limits."""

from __future__ import annotations

from judge.errors import TooLargeError, TranscriptError
from judge.rubric import Rubric
from judge.server.state import ServerState
from judge.transcript import Transcript
from judge.transcript_files import parse_record


def parse_transcripts(records: list[dict[str, object]], max_chars: int) -> list[Transcript]:
    transcripts = []
    for index, record in enumerate(records):
        try:
            transcript = parse_record(record)
        except TranscriptError as exc:
            raise TranscriptError(f"transcripts[{index}]: {exc}", field=exc.field) from None
        size = sum(len(message.text) for message in transcript.messages)
        if size > max_chars:
            raise TooLargeError(
                f"transcripts[{index}] has {size} characters; this server accepts at most "
                f"{max_chars} per transcript"
            )
        transcripts.append(transcript)
    return transcripts


def rubrics_for(state: ServerState, ids: list[str]) -> list[Rubric]:
    return [state.library.get(rubric_id) for rubric_id in dict.fromkeys(ids)]
