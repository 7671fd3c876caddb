"""Hostile and unusual input to ``judge grade``: each bad record is named with its file, line and
field, the good ones are still graded, and nothing reaches a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from judge.cli import main


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(directory))
    return directory


def record(record_id: str, response: str = "Sure: run kill <pid>.") -> str:
    return json.dumps({"id": record_id, "prompt": "How do I stop a process?", "response": response})


def graded_ids(path: Path) -> list[str]:
    return sorted(json.loads(line)["transcript_id"] for line in path.read_text().splitlines())


DEEP = "[" * 99 + "]" * 99
HOSTILE_LINES = [
    ('{"id": "surrogate", "prompt": "hi", "response": "bad \\ud800"}', "response", "surrogate"),
    ('{"id": "nul", "prompt": "hi\\u0000", "response": "x"}', "prompt", "control character"),
    ('{"id": "bell", "prompt": "hi", "response": "x\\u0007"}', "response", "control character"),
    ('{"id": "dup", "prompt": "a", "prompt": "b", "response": "x"}', "prompt", "duplicate key"),
    ('{"id": "nan", "prompt": "a", "response": "x", "score": NaN}', None, "NaN"),
    ('{"id": "big", "prompt": "a", "response": "x", "n": 1' + "0" * 40 + "}", None, "too large"),
    ('{"id": "inf", "prompt": "a", "response": "x", "n": 1e999}', None, "too large"),
    ('{"id": "deep", "prompt": "a", "response": "x", "m": ' + DEEP + "}", "m", "nested"),
    ('{"id": "deeper", "prompt": "a", "m": ' + "[" * 5000 + "]" * 5000 + "}", None, "nested"),
    (record("huge", "x" * 5000), "messages", "JUDGE_MAX_TRANSCRIPT_CHARS"),
]  # fmt: skip


def test_each_hostile_record_is_named_and_the_rest_is_graded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_MAX_TRANSCRIPT_CHARS", "1000")
    source = tmp_path / "mixed.jsonl"
    lines = [record("good-1"), *(line for line, _, _ in HOSTILE_LINES), record("good-2")]
    source.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "latin1", "prompt": "\xe9"}\n')
    out = tmp_path / "v.jsonl"

    assert main(["grade", str(source), "-r", "refusal", "-o", str(out)]) == 1

    assert graded_ids(out) == ["good-1", "good-2"]
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for number, (_, field, reason) in enumerate(HOSTILE_LINES, start=2):
        line = next(t for t in err.splitlines() if f"line {number}," in t or f"line {number}:" in t)
        assert str(source) in line and reason in line, line
        if field is not None:
            assert f"field '{field}'" in line, line
    assert f"line {len(lines) + 1}: not UTF-8 text: byte 0xe9" in err
    assert f"{len(HOSTILE_LINES) + 1} invalid input record(s) were skipped" in err


def test_a_binary_file_among_good_ones_is_one_invalid_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(record("a") + "\n" + record("b") + "\n")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(bytes(range(256)) * 40)
    out = tmp_path / "v.jsonl"

    assert main(["grade", str(good), str(binary), "-r", "refusal", "-o", str(out)]) == 1

    assert graded_ids(out) == ["a", "b"]
    err = capsys.readouterr().err
    assert f"{binary}: a binary file" in err and "Traceback" not in err


def test_a_byte_order_mark_is_not_part_of_the_first_record(tmp_path: Path) -> None:
    source = tmp_path / "bom.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + (record("first") + "\n" + record("second")).encode())
    out = tmp_path / "v.jsonl"
    assert main(["grade", str(source), "-r", "refusal", "-q", "-o", str(out)]) == 0
    assert graded_ids(out) == ["first", "second"]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_an_empty_input_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(content)
    assert main(["grade", str(empty), "-r", "refusal"]) == 2
    assert "no transcripts to grade" in capsys.readouterr().err


def test_a_json_file_that_is_not_utf8_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "records.json"
    source.write_bytes(b'[{"prompt": "caf\xe9", "response": "x"}]')
    assert main(["grade", str(source), "-r", "refusal", "-q"]) == 1
    assert "not UTF-8 text: byte 0xe9 at offset 16" in capsys.readouterr().err


def test_dash_reads_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO((record("piped") + "\n").encode()))
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["grade", "-", "-r", "refusal", "-q"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["transcript_id"] == "piped"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("judge ")


def test_the_list_of_commands_rewraps_each_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A docstring's line breaks are not the help's: each summary reads as one paragraph."""
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "with 95% intervals (grading through the cache): your own labelled" in out
    assert "any machine, beside API replicas that share the same Redis)" in out


def test_error_messages_print_brackets_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "t.jsonl"
    source.write_text(record("a") + "\n")
    assert main(["grade", str(source), "-r", "[bold]nope[/bold]"]) == 2
    assert "no rubric '[bold]nope[/bold]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{tmp}/missing/v.jsonl"], "cannot write {tmp}/missing/v.jsonl: No such file"),
        (["--out", "{tmp}"], "cannot write {tmp}: Is a directory"),
        (["--cache-dir", "/proc/no-cache-here"], "cannot use the cache directory /proc/no-cache"),
    ],
)
def test_an_output_or_cache_that_cannot_be_written_is_a_usage_error_before_grading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(record("a") + "\n")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    assert main(["grade", str(good), "-r", "refusal", "-q", *args]) == 2
    assert message.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err


def test_report_skips_a_cut_off_line_says_so_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, verdicts = tmp_path / "good.jsonl", tmp_path / "v.jsonl"
    good.write_text(record("a") + "\n" + record("b", "I can't help with that.") + "\n")
    assert main(["grade", str(good), "-r", "refusal", "-q", "--out", str(verdicts)]) == 0
    whole = verdicts.read_text()
    verdicts.write_text(whole + whole.splitlines()[0][:200])  # a run killed mid-line
    capsys.readouterr()

    assert main(["report", str(verdicts), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rates"][0]["graded"] == 2
    assert f"skipped {verdicts}: line 3 is not a verdict" in captured.err
    assert main(["report", str(verdicts), "--html", str(tmp_path / "no" / "r.html")]) == 2
    assert "cannot write" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["report", str(tmp_path / "empty.jsonl")]) == 2
    assert "no verdicts to report" in capsys.readouterr().err


def test_calibrating_on_records_without_reference_values_says_what_they_need(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unlabelled = tmp_path / "u.jsonl"
    unlabelled.write_text(record("a") + "\n")
    assert main(["calibrate", "--labels", str(unlabelled), "-r", "refusal", "-q"]) == 2
    assert "carries a reference value for rubric refusal" in capsys.readouterr().err
