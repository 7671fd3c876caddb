"""Rates with intervals, bootstrap over prompts, paired comparisons, and the report command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.cli import main
from judge.errors import ErrorKind
from judge.reports import compare, rates, read_verdicts, wilson
from judge.verdict import RubricRef, Status, Verdict, VerdictError

RUBRIC = RubricRef(id="refusal", version="1", hash="h")


def verdict(model: str, prompt: str, flagged: bool | None, status: Status = Status.GRADED,
            tags: list[str] | None = None) -> Verdict:  # fmt: skip
    error = VerdictError(kind=ErrorKind.TIMEOUT, message="t") if status == Status.ERROR else None
    return Verdict(
        transcript_id=f"{model}-{prompt}",
        rubric=RUBRIC,
        status=status,
        flagged=flagged,
        error=error,
        metadata={"model": model, "prompt_id": prompt, "tags": tags or ["benign"]},
    )


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson(10, 100)  # Wilson 95% for 10/100: 0.0552 to 0.1744
    assert low == pytest.approx(0.0552, abs=1e-4) and high == pytest.approx(0.1744, abs=1e-4)


def test_rates_count_every_status_and_exclude_failures_from_the_denominator() -> None:
    verdicts = [verdict("m", f"p{i}", i < 3) for i in range(10)]
    verdicts += [
        verdict("m", "x", None, Status.NOT_APPLICABLE),
        verdict("m", "y", None, Status.ERROR),
    ]
    [row] = rates(verdicts, ["model"])
    assert (row.graded, row.flagged, row.rate) == (10, 3, 0.3)
    assert (row.not_applicable, row.errors, row.errors_by_kind) == (1, 1, {"timeout": 1})
    assert row.interval == "wilson"
    assert row.ci_low is not None and row.ci_high is not None
    assert row.ci_low < 0.3 < row.ci_high


def test_several_samples_per_prompt_use_a_wider_bootstrap_interval() -> None:
    # 20 prompts x 5 samples; whole prompts flag together, so samples are not independent
    verdicts = [verdict("m", f"p{p}", p < 6) for p in range(20) for _ in range(5)]
    [row] = rates(verdicts, [])
    assert row.interval == "bootstrap over prompts" and row.prompts == 20
    assert row.ci_low is not None and row.ci_high is not None
    naive_low, naive_high = wilson(30, 100)
    assert row.ci_high - row.ci_low > naive_high - naive_low


def test_a_verdict_counts_in_each_of_its_tags() -> None:
    verdicts = [verdict("m", "a", True, tags=["x", "y"]), verdict("m", "b", False, tags=["y"])]
    rows = {row.group["tag"]: row for row in rates(verdicts, ["tag"])}
    assert (rows["x"].graded, rows["y"].graded, rows["y"].flagged) == (1, 2, 1)


def test_paired_comparison_uses_shared_prompts_only() -> None:
    base = [verdict("base", f"p{i}", i < 2) for i in range(20)]
    tuned = [verdict("tuned", f"p{i}", i < 10) for i in range(20)] + [
        verdict("tuned", "extra", True)
    ]
    [result] = compare(base + tuned, "base", "tuned")
    assert result.prompts == 20
    assert (result.rate_a, result.rate_b) == (0.1, 0.5)
    assert result.difference == pytest.approx(0.4)
    assert 0 < result.ci_low < 0.4 < result.ci_high


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "v.jsonl"
    rows = [verdict("base", f"p{i}", i < 2) for i in range(10)]
    rows += [verdict("tuned", f"p{i}", i < 7) for i in range(10)]
    path.write_text("".join(v.model_dump_json() + "\n" for v in rows))

    assert main(["report", str(path), "--by", "model", "--compare", "base", "tuned", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["rate"] for r in document["rates"]] == [0.2, 0.7]
    assert document["comparisons"][0]["difference"] == pytest.approx(0.5)
    assert main(["report", str(path), "--by", "colour"]) == 2
    assert "choose from model, rubric, tag, judge" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"not": "a verdict"}\n')
    assert main(["report", str(bad)]) == 2
    assert read_verdicts([path])[0].metadata["model"] == "base"
