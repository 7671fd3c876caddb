"""Transcripts and transcript files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from judge.errors import TranscriptError
from judge.transcript import Message, Transcript
from judge.transcript_files import parse_record, read_transcripts


def test_content_hash_ignores_id_and_metadata_but_not_messages() -> None:
    base = Transcript.from_prompt("q", "a")
    relabelled = Transcript.from_prompt("q", "a", id="x", metadata={"tags": ["t"], "gold": "y"})
    edited = Transcript.from_prompt("q", "a!")

    assert base.content_hash == relabelled.content_hash
    assert base.content_hash != edited.content_hash
    assert relabelled.key == "x" and base.key == base.content_hash


def test_single_turn_and_chat_records_are_the_same_transcript() -> None:
    single = parse_record({"prompt": "hi", "response": "hello", "system": "be brief"})
    chat = parse_record(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ]
        }
    )
    assert single.content_hash == chat.content_hash
    assert single.system_prompt == "be brief"


def test_unknown_fields_are_kept_in_metadata() -> None:
    transcript = parse_record(
        {"id": 7, "prompt": "q", "response": "a", "gold": "B", "metadata": {"model": "m"}}
    )
    assert transcript.id == "7"
    assert transcript.metadata == {"gold": "B", "model": "m"}


def test_a_whole_float_group_id_is_its_integer() -> None:
    """pandas writes an integer column with gaps as floats: group 3.0 is group 3."""
    written = parse_record({"prompt": "q", "response": "a", "group": 3.0})
    assert written.metadata["group"] == 3 and isinstance(written.metadata["group"], int)
    with pytest.raises(TranscriptError, match="a group id is a string or an integer"):
        parse_record({"prompt": "q", "response": "a", "group": 3.5})


def test_tool_calls_and_content_parts_are_kept() -> None:
    transcript = parse_record(
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "1", "function": {"name": "w", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "1", "content": "sunny"},
                {"role": "assistant", "content": "Sunny."},
            ]
        }
    )
    assert transcript.messages[0].content == "weather?"
    assert transcript.messages[1].text == "[tool call w({})]"
    assert transcript.assistant_turns == [1, 3]


def test_unknown_role_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Message.model_validate({"role": "narrator", "content": "x"})


def test_bad_records_name_their_line_and_field_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    lines = [
        json.dumps({"prompt": "q1", "response": "a1"}),
        "{not json",
        json.dumps({"prompt": "q2"}),
        "",
        json.dumps({"messages": [{"role": "wizard", "content": "x"}]}),
        json.dumps(["a", "list"]),
        json.dumps({"text": "neither shape"}),
        json.dumps({"prompt": "q3", "response": "a3", "metadata": "oops"}),
        json.dumps({"prompt": "q4", "response": "a4"}),
    ]
    path.write_text("\n".join(lines) + "\n")

    items = list(read_transcripts(path))

    good = [i for i in items if isinstance(i, Transcript)]
    bad = [i for i in items if isinstance(i, TranscriptError)]
    assert [t.last_text("user") for t in good] == ["q1", "q4"]
    assert [(e.line, e.field) for e in bad] == [
        (2, None),
        (3, "response"),
        (5, "messages.0.role"),
        (6, None),
        (7, None),
        (8, "metadata"),
    ]
    assert "line 3, field 'response'" in str(bad[1])


def test_json_file_holds_a_list_or_one_record(tmp_path: Path) -> None:
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{"prompt": "a", "response": "b"}, {"prompt": "c"}]))
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"prompt": "a", "response": "b"}))
    broken = tmp_path / "broken.json"
    broken.write_text("[{")

    assert [type(i).__name__ for i in read_transcripts(many)] == ["Transcript", "TranscriptError"]
    assert len(list(read_transcripts(one))) == 1
    [error] = list(read_transcripts(broken))
    assert isinstance(error, TranscriptError)
