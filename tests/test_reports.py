"""Rates with intervals, bootstrap over prompts, paired comparisons, trends, judge provenance,
and the report command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from judge.cli import main
from judge.errors import ErrorKind, UsageError
from judge.reports import (
    checkpoints,
    compare,
    confidence_summary,
    judge_usage,
    newcombe,
    prompt_of,
    rates,
    read_verdicts,
    report_json,
    trend,
    unpaired,
    wilson,
)
from judge.verdict import JudgeResult, RubricRef, Status, Verdict, VerdictError

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


def test_prompts_that_all_agree_still_leave_an_interval() -> None:
    """A bootstrap over prompts that all flag resamples only ones: the interval is at least
    Wilson's over the prompts (5 of 5 is not certainty)."""
    verdicts = [verdict("m", f"p{p}", True) for p in range(4) for _ in range(2)]
    [row] = rates(verdicts, [])
    assert row.interval == "bootstrap over prompts" and row.rate == 1.0
    assert (row.ci_low, row.ci_high) == pytest.approx(wilson(4, 4))
    assert row.ci_low is not None and row.ci_low < 0.6


def test_a_small_comparison_where_every_pair_differs_alike_is_not_certain() -> None:
    base = [verdict("base", f"p{i}", True) for i in range(2)]
    tuned = [verdict("tuned", f"p{i}", False) for i in range(2)]
    [result] = compare(base + tuned, "base", "tuned")
    assert result.difference == -1.0
    assert (result.ci_low, result.ci_high) == pytest.approx(newcombe(1.0, 0.0, 2))
    assert result.ci_low == -1.0 and result.ci_high > -0.5


def test_a_large_comparison_keeps_its_paired_interval() -> None:
    base = [verdict("base", f"p{i}", i < 20) for i in range(100)]
    tuned = [verdict("tuned", f"p{i}", i < 30) for i in range(100)]  # the same 20, and 10 more
    [result] = compare(base + tuned, "base", "tuned")
    low, high = newcombe(0.2, 0.3, 100)
    assert result.ci_high - result.ci_low < high - low  # pairing narrows it
    assert result.ci_low < 0.1 < result.ci_high


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


def test_not_applicable_verdicts_are_counted_by_reason() -> None:
    verdicts = [verdict("m", "a", True)]
    for prompt, reason in [("b", "no system prompt"), ("c", "no system prompt"), ("d", "code")]:
        verdicts.append(
            verdict("m", prompt, None, Status.NOT_APPLICABLE).model_copy(update={"reason": reason})
        )
    [row] = rates(verdicts, [])
    assert row.not_applicable == 3
    assert row.not_applicable_by_reason == {"no system prompt": 2, "code": 1}


def test_bootstrap_intervals_equal_resampling_one_at_a_time() -> None:
    """The vectorized statistics give the interval scipy gives calling them per resample."""
    from scipy.stats import bootstrap

    # prompts named so that their sorted order (compare's) is their numeric order
    base = [verdict("base", f"p{p:02}", (p * 7 + s) % 5 == 0) for p in range(30) for s in range(3)]
    tuned = [verdict("tuned", f"p{p:02}", (p * 3 + s) % 4 == 0)
             for p in range(30) for s in range(1 + p % 3)]  # fmt: skip
    [row] = rates(base, [])
    [result] = compare(base + tuned, "base", "tuned")
    counts = np.array([[sum((p * 7 + s) % 5 == 0 for s in range(3)), 3] for p in range(30)])
    pairs = np.array(
        [[*counts[p], sum((p * 3 + s) % 4 == 0 for s in range(1 + p % 3)), 1 + p % 3]
         for p in range(30)]
    )  # fmt: skip

    def one_at_a_time(statistic: Callable[[np.ndarray], float]) -> tuple[float, float]:
        found = bootstrap((np.arange(30),), statistic, vectorized=False, n_resamples=2000,
                          method="percentile", rng=np.random.default_rng(0))  # fmt: skip
        return found.confidence_interval.low, found.confidence_interval.high

    def rate(i: np.ndarray) -> float:
        return float(counts[i, 0].sum() / counts[i, 1].sum())

    def difference(i: np.ndarray) -> float:
        sums = pairs[i].sum(axis=0)
        return float(sums[2] / sums[3] - sums[0] / sums[1])

    # the rate's interval: the bootstrap, widened to Wilson's over the 30 prompts where narrower
    assert row.rate is not None
    boot_low, boot_high = one_at_a_time(rate)
    floor_low, floor_high = wilson(round(row.rate * 30), 30)
    assert (row.ci_low, row.ci_high) == pytest.approx(
        (min(boot_low, floor_low), max(boot_high, floor_high))
    )
    assert result.prompts == 30  # at SMALL_PAIRED: the paired bootstrap alone
    assert (result.ci_low, result.ci_high) == pytest.approx(one_at_a_time(difference))


def stepped(model: str, step: int | None, prompt: str, flagged: bool) -> Verdict:
    made = verdict(model, prompt, flagged)
    if step is None:
        return made
    return made.model_copy(update={"metadata": {**made.metadata, "step": step}})


def test_checkpoints_follow_the_order_given_else_metadata_step() -> None:
    verdicts = [stepped("late", 900, "a", True), stepped("early", 100, "a", False)]
    verdicts += [stepped("mid", 500, "a", True)]
    assert [(c.model, c.position, c.step) for c in checkpoints(verdicts)] == [
        ("early", 0, 100.0), ("mid", 1, 500.0), ("late", 2, 900.0)
    ]  # fmt: skip
    assert [c.model for c in checkpoints(verdicts, ["late", "early"])] == ["late", "early"]
    with pytest.raises(UsageError, match="lat3"):
        checkpoints(verdicts, ["lat3"])
    assert checkpoints([*verdicts, stepped("unstepped", None, "a", True)]) == []
    assert checkpoints([*verdicts, stepped("late", 901, "b", True)]) == []  # two steps: no order


def test_trend_gives_each_rubric_its_rate_at_each_checkpoint_in_order() -> None:
    verdicts = [stepped("b", 2, f"p{i}", i < 8) for i in range(10)]
    verdicts += [stepped("a", 1, f"p{i}", i < 2) for i in range(10)]
    order = checkpoints(verdicts)
    points = trend(rates(verdicts, ["model", "rubric"]), order)
    assert [(p.rubric, p.checkpoint.model, p.rate) for p in points] == [
        ("refusal", "a", 0.2), ("refusal", "b", 0.8)
    ]  # fmt: skip
    assert all(p.ci_low is not None and p.ci_low < p.rate for p in points if p.rate)


def test_judge_usage_counts_calls_and_charges_only_the_paid_ones() -> None:
    def call(model: str, sample: int, cached: bool, error: bool = False) -> JudgeResult:
        failure = VerdictError(kind=ErrorKind.TIMEOUT, message="t") if error else None
        return JudgeResult(model=model, sample=sample, criteria=("refusal",), cached=cached,
                           scoring=None if error else "structured", input_tokens=100,
                           output_tokens=10, cost_usd=0.5, error=failure)  # fmt: skip

    first = verdict("m", "a", True).model_copy(
        update={"judges": [call("gpt", 0, False), call("gpt", 1, True), call("claude", 0, False)]}
    )
    second = verdict("m", "b", None, Status.ERROR).model_copy(
        update={"judges": [call("gpt", 0, False, error=True)]}
    )
    usage = {u.model: u for u in judge_usage([first, second])}
    gpt = usage["gpt"]
    assert (gpt.verdicts, gpt.calls, gpt.cached, gpt.samples, gpt.errors) == (2, 3, 1, 2, 1)
    assert (gpt.input_tokens, gpt.output_tokens, gpt.cost_usd) == (200, 20, 1.0)
    assert gpt.scoring == {"structured": 2, "failed": 1}
    assert (usage["claude"].calls, usage["claude"].cost_usd) == (1, 0.5)


def test_confidence_summary_per_rubric_and_source() -> None:
    def sure(confidence: float, source: Literal["agreement", "logprob_mass"]) -> Verdict:
        return verdict("m", "a", True).model_copy(
            update={"confidence": confidence, "confidence_source": source}
        )

    summary = confidence_summary(
        [sure(1.0, "agreement"), sure(0.5, "agreement"), sure(0.9, "logprob_mass")]
    )
    assert [(c.source, c.verdicts, c.mean, c.lowest, c.full) for c in summary] == [
        ("agreement", 2, 0.75, 0.5, 1), ("logprob_mass", 1, 0.9, 0.9, 0)
    ]  # fmt: skip


def test_a_comparison_that_cannot_be_made_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "t.jsonl"
    records = [
        {"id": "a1", "prompt_id": "p1", "model": "base", "prompt": "q1", "response": "Sure."},
        {"id": "b1", "prompt_id": "p1", "model": "tuned", "prompt": "q1", "response": "No, sorry."},
        {"id": "b2", "prompt_id": "p2", "model": "tuned", "prompt": "q2", "response": "Sure."},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    verdicts = tmp_path / "v.jsonl"
    assert main(["grade", str(source), "-r", "refusal", "-q", "-o", str(verdicts)]) == 0

    assert main(["report", str(verdicts), "--compare", "base", "tuned"]) == 0
    err = capsys.readouterr().err
    assert (
        "refusal: base and tuned share 1 graded prompt(s); a paired comparison needs at least 2"
        in err
    )
    assert "metadata.prompt_id" in err

    assert main(["report", str(verdicts), "--compare", "base", "ckpt-9"]) == 2
    assert "no verdict is of model 'ckpt-9'; models found: base, tuned" in capsys.readouterr().err


def test_the_shipped_examples_compare_their_two_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples" / "transcripts.jsonl"
    verdicts = tmp_path / "v.jsonl"
    assert main(["grade", str(examples), "-r", "refusal", "-q", "-o", str(verdicts)]) == 0
    capsys.readouterr()
    args = ["report", str(verdicts), "--by", "rubric", "--compare", "example-base", "example-honly"]
    assert main(args) == 0
    assert "refusal: example-honly 0.0% vs example-base" in capsys.readouterr().out


@given(st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_a_wilson_interval_always_contains_the_rate(counts: tuple[int, int]) -> None:
    flagged, total = counts
    low, high = wilson(flagged, total)
    assert 0.0 <= low <= flagged / total <= high <= 1.0
    assert low < high


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), min_size=1, max_size=12))
def test_a_rate_interval_always_contains_the_rate(per_prompt: list[tuple[int, int]]) -> None:
    verdicts = [
        verdict("m", f"p{prompt}", sample < flagged)
        for prompt, (flagged, samples) in enumerate(per_prompt)
        for sample in range(max(samples, flagged))
    ]
    [row] = rates(verdicts, [])
    assert row.rate is not None and row.ci_low is not None and row.ci_high is not None
    assert row.ci_low <= row.rate + 1e-12 and row.rate <= row.ci_high + 1e-12
    assert row.prompts == len(per_prompt)
    several = any(max(samples, flagged) > 1 for flagged, samples in per_prompt)
    assert row.interval == ("bootstrap over prompts" if several else "wilson")


def test_one_prompt_with_several_samples_is_one_observation_wide() -> None:
    """A bootstrap over one prompt is a point; the interval is Wilson's for one observation."""
    [row] = rates([verdict("m", "p", s < 1) for s in range(4)], [])
    assert (row.rate, row.prompts) == (0.25, 1)
    assert (row.ci_low, row.ci_high) == pytest.approx(wilson(0, 1))


def test_a_group_without_graded_verdicts_has_no_rate() -> None:
    failed = [verdict("m", "a", None, Status.ERROR), verdict("m", "b", None, Status.NOT_APPLICABLE)]
    [row] = rates(failed, ["model"])
    assert (row.rate, row.ci_low, row.ci_high, row.interval) == (None, None, None, "none")
    assert (row.verdicts, row.graded, row.flagged, row.prompts) == (2, 0, 0, 0)
    assert row.not_applicable_by_reason == {"(no reason given)": 1}


def test_rows_are_sorted_and_counts_by_kind_and_reason_are_ordered() -> None:
    def failed(prompt: str, kind: ErrorKind) -> Verdict:
        return verdict("m", prompt, None, Status.ERROR).model_copy(
            update={"error": VerdictError(kind=kind, message="x")}
        )

    def skipped(prompt: str, reason: str) -> Verdict:
        return verdict("m", prompt, None, Status.NOT_APPLICABLE).model_copy(
            update={"reason": reason}
        )

    verdicts = [failed("a", ErrorKind.TIMEOUT), failed("b", ErrorKind.PARSE)]
    verdicts += [failed("c", ErrorKind.TIMEOUT), skipped("d", "b-reason"), skipped("e", "a-reason")]
    verdicts += [skipped("f", "b-reason"), verdict("b-model", "g", True)]
    rows = rates(verdicts, ["model"])
    assert [row.group for row in rows] == [{"model": "b-model"}, {"model": "m"}]
    assert list(rows[1].errors_by_kind.items()) == [("parse", 1), ("timeout", 2)]
    assert list(rows[1].not_applicable_by_reason.items()) == [("b-reason", 2), ("a-reason", 1)]
    assert (rows[1].errors, rows[1].not_applicable) == (3, 3)


def test_what_a_verdict_is_grouped_by() -> None:
    plain = Verdict(transcript_id="t", rubric=RUBRIC, status=Status.GRADED, flagged=True)
    judged = plain.model_copy(
        update={
            "metadata": {"model": "ckpt", "tags": "single"},
            "judges": [
                JudgeResult(model=name, sample=0, criteria=("refusal",))
                for name in ("b-judge", "a-judge", "b-judge")
            ],
        }
    )
    by = ["model", "rubric", "tag", "judge"]
    [row] = rates([plain], by)
    assert row.group == {"model": "(unknown)", "rubric": "refusal", "tag": "(untagged)",
                         "judge": "(none)"}  # fmt: skip
    [row] = rates([judged], by)
    assert row.group == {"model": "ckpt", "rubric": "refusal", "tag": "single",
                         "judge": "a-judge+b-judge"}  # fmt: skip
    with pytest.raises(UsageError, match=r"^cannot group by \['colour'\]; choose from model, "):
        rates([plain], ["model", "colour"])
    with pytest.raises(UsageError, match=r"^group by each key once; repeated: model, tag$"):
        rates([plain], ["tag", "model", "tag", "model"])


def test_a_prompt_is_its_prompt_id_else_question_id_else_the_transcript() -> None:
    plain = Verdict(transcript_id="t", rubric=RUBRIC, status=Status.GRADED)
    assert prompt_of(plain) == "t"
    assert prompt_of(plain.model_copy(update={"metadata": {"question_id": 7}})) == "7"
    both = {"question_id": "q", "prompt_id": "p"}
    assert prompt_of(plain.model_copy(update={"metadata": both})) == "p"
    assert prompt_of(plain.model_copy(update={"metadata": {"prompt_id": ""}})) == "t"


def test_a_comparison_needs_two_shared_graded_prompts() -> None:
    two = [verdict("a", "p1", False), verdict("a", "p2", True)]
    two += [verdict("b", "p1", True), verdict("b", "p2", True), verdict("b", "p3", False)]
    [result] = compare(two, "a", "b")
    assert (result.rubric, result.model_a, result.model_b) == ("refusal", "a", "b")
    assert (result.prompts, result.rate_a, result.rate_b, result.difference) == (2, 0.5, 1.0, 0.5)
    assert result.ci_low <= result.difference <= result.ci_high
    assert unpaired(two, "a", "b") == []
    one = [verdict("a", "p1", False), verdict("b", "p1", True), verdict("a", "p2", None,
           Status.ERROR), verdict("b", "p2", True)]  # fmt: skip
    assert compare(one, "a", "b") == []
    [note] = unpaired(one, "a", "b")
    assert note.startswith("refusal: a and b share 1 graded prompt(s); a paired comparison needs")


def test_a_missing_model_is_named_with_the_models_found() -> None:
    assert unpaired([verdict("a", "p", True)], "a", "z") == [
        "no verdict is of model 'z'; models found: a"
    ]
    bare = Verdict(transcript_id="t", rubric=RUBRIC, status=Status.GRADED)
    assert unpaired([bare], "x", "y") == [
        "no verdict is of model 'x', 'y'; models found: none (no verdict has metadata.model)"
    ]


def test_a_checkpoint_order_names_each_model_once() -> None:
    verdicts = [stepped("a", 1, "p", True), stepped("b", 2, "p", True)]
    with pytest.raises(UsageError, match=r"^the checkpoint order names a model twice$"):
        checkpoints(verdicts, ["a", "b", "a"])
    with pytest.raises(
        UsageError, match=r"^the checkpoint order names models no verdict has: x, y$"
    ):
        checkpoints(verdicts, ["a", "x", "y"])
    flagged_step = verdict("c", "p", True).model_copy(
        update={"metadata": {"model": "c", "step": True}}
    )
    assert checkpoints([*verdicts, flagged_step]) == []  # a boolean is no step
    assert [c.step for c in checkpoints([stepped("a", 0, "p", True)])] == [0.0]


def test_trend_skips_the_cells_that_have_no_rate_row() -> None:
    verdicts = [stepped("a", 1, "p", True), stepped("b", 2, "p", False)]
    order = checkpoints(verdicts)
    rows = [row for row in rates(verdicts, ["model", "rubric"]) if row.group["model"] == "b"]
    [point] = trend(rows, order)
    assert (point.checkpoint.model, point.graded, point.flagged, point.rate) == ("b", 1, 0, 0.0)
    assert trend(rates(verdicts, ["model"]), order) == []


def test_confidence_summary_counts_only_graded_verdicts_with_a_confidence() -> None:
    sure = verdict("m", "a", True).model_copy(update={"confidence": 0.8})
    failed = verdict("m", "b", None, Status.ERROR).model_copy(update={"confidence": 0.1})
    unsure = verdict("m", "c", True)
    [summary] = confidence_summary([sure, failed, unsure])
    assert (summary.rubric, summary.source, summary.verdicts, summary.full) == (
        "refusal", "unknown", 1, 0
    )  # fmt: skip


def test_reading_verdicts_names_the_file_and_line_that_is_not_one(tmp_path: Path) -> None:
    good = verdict("m", "a", True)
    path = tmp_path / "v.jsonl"
    path.write_text(good.model_dump_json() + "\n\n  \n" + '{"transcript_id": 3}\n')
    with pytest.raises(UsageError, match=rf"^{path}: line 4 is not a verdict \(transcript_id: "):
        read_verdicts([path])
    path.write_text(good.model_dump_json() + "\n\n")
    assert read_verdicts([path, path]) == [good, good]
    with pytest.raises(UsageError, match=r"^verdict file .*nope\.jsonl does not exist$"):
        read_verdicts([tmp_path / "nope.jsonl"])


def test_the_json_report_holds_rates_comparisons_and_agreement() -> None:
    rows = rates([verdict("m", "a", True)], ["model"])
    document = json.loads(report_json(rows, []))
    assert document == {"rates": [rows[0].model_dump()], "comparisons": [], "agreement": []}
    document = json.loads(report_json(rows, [], rows))
    assert document["agreement"] == [rows[0].model_dump()]


def test_a_rubric_without_pairs_does_not_stop_the_others() -> None:
    def other(model: str, prompt: str, flagged: bool) -> Verdict:
        made = verdict(model, prompt, flagged)
        return made.model_copy(update={"rubric": RubricRef(id="zzz", version="1", hash="h")})

    early = [verdict("a", "p1", True), verdict("b", "p1", False)]  # 'refusal': one pair
    late = [other(m, p, m == "b") for m in ("a", "b") for p in ("p1", "p2")]  # 'zzz': two
    assert [c.rubric for c in compare(early + late, "a", "b")] == ["zzz"]
    reversed_roles = [verdict(m, p, True) for m in ("a", "b") for p in ("p1", "p2")]
    reversed_roles += [other("a", "p1", True), other("b", "p2", True)]
    [note] = unpaired(reversed_roles, "a", "b")
    assert note == (
        "zzz: a and b share 0 graded prompt(s); a paired comparison needs at least 2. Verdicts "
        "pair by metadata.prompt_id (else question_id, else the transcript id): give the same "
        "prompt the same prompt_id in both models' transcripts."
    )


def test_the_shared_prompts_counted_are_the_two_models_own() -> None:
    verdicts = [verdict("a", "p1", True), verdict("b", "p1", True), verdict("b", "p2", True)]
    verdicts += [verdict("c", "p1", True), verdict("c", "p3", True)]
    [note] = unpaired(verdicts, "a", "b")
    assert note.startswith("refusal: a and b share 1 graded prompt(s);")


def test_verdicts_without_a_model_are_the_unknown_checkpoint() -> None:
    plain = Verdict(transcript_id="t", rubric=RUBRIC, status=Status.GRADED, flagged=True)
    [point] = checkpoints([plain], ["(unknown)"])
    assert (point.model, point.position, point.step) == ("(unknown)", 0, None)
    [cell] = trend(rates([plain], ["model", "rubric"]), [point])
    assert (cell.rate, cell.ci_low, cell.ci_high) == (1.0, *wilson(1, 1))


def test_judge_usage_counts_each_call_and_treats_missing_numbers_as_zero() -> None:
    def call(cached: bool, error: bool = False, scoring: str | None = None) -> JudgeResult:
        failure = VerdictError(kind=ErrorKind.TIMEOUT, message="t") if error else None
        return JudgeResult(model="j", sample=0, criteria=("refusal",), cached=cached,
                           scoring=scoring, error=failure)  # type: ignore[arg-type]  # fmt: skip

    made = verdict("m", "a", True).model_copy(
        update={
            "judges": [call(True), call(True), call(False, True), call(False, True), call(False)]
        }
    )
    [usage] = judge_usage([made])
    assert (usage.calls, usage.cached, usage.errors, usage.verdicts) == (5, 2, 2, 1)
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (0, 0, 0.0)
    assert usage.scoring == {"none": 3, "failed": 2}

    never = JudgeResult(model="j", sample=0, criteria=("refusal",), attempts=0,
                        error=VerdictError(kind=ErrorKind.NO_JUDGE, message="offline"))  # fmt: skip
    unmade = verdict("m", "b", None, Status.ERROR).model_copy(update={"judges": [never]})
    [usage] = judge_usage([made, unmade])  # as the CLI counts: no call, no failed call
    assert (usage.calls, usage.errors, usage.verdicts) == (5, 2, 2)
    assert usage.scoring == {"none": 3, "failed": 2, "not made": 1}


def test_reading_names_the_field_path_or_the_line(tmp_path: Path) -> None:
    def problem(line: str, tmp: Path) -> str:
        path = tmp / "v.jsonl"
        path.write_text(line + "\n")
        with pytest.raises(UsageError) as error:
            read_verdicts([path])
        return str(error.value).split(" is not a verdict ", 1)[1]

    tmp = tmp_path
    assert problem("[1]", tmp).startswith("(line: ")
    nested = verdict("m", "a", True).model_dump(mode="json")
    nested["rubric"]["id"] = 7
    assert problem(json.dumps(nested), tmp).startswith("(rubric.id: ")


def test_the_json_report_is_indented_for_reading() -> None:
    text = report_json(rates([verdict("m", "a", True)], ["model"]), [])
    assert text.startswith('{\n  "rates": [\n    {\n      "group"')
