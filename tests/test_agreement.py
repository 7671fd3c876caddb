"""Agreement between judges: Krippendorff's alpha against Krippendorff's published examples and
the ``krippendorff`` package, Cohen's kappa against the textbook and scikit-learn, missing
ratings, bootstrap intervals, and an ensemble graded end to end into ``judge report``."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from judge import Grader, JudgePlan, MemoryCache, Rubric, Transcript
from judge.agreement import Level, Rating, alpha, judge_agreement
from judge.cli import main
from judge.errors import ErrorKind
from judge.judges.base import JudgeRequest
from judge.testing.scripted_judge import Output, ScriptedJudge
from judge.transcript import Message
from judge.verdict import JudgeResult, RubricRef, Status, Verdict, VerdictError

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers,
# 12 units, missing values; published alpha nominal 0.743, interval 0.849.
OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
# Krippendorff (2011), example A: two observers, ten units, binary; published alpha 0.095.
BINARY = [[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]]


def by_unit(
    observers: Sequence[Sequence[int | None]], as_text: bool = False
) -> list[list[Rating | None]]:
    """Observer rows as units (columns), labels as text for nominal data."""
    return [
        [None if r is None else (str(r) if as_text else float(r)) for r in unit]
        for unit in zip(*observers, strict=True)
    ]


def package_alpha(units: list[list[Rating | None]], level: Level) -> float:
    """The ``krippendorff`` package's alpha of the same ratings (raters in rows, NaN missing)."""
    labels = sorted({str(r) for unit in units for r in unit if r is not None})
    code = {label: float(i) for i, label in enumerate(labels)}
    data = [
        [np.nan if r is None else code[str(r)] if level == "nominal" else r for r in unit]
        for unit in units
    ]
    return float(krippendorff.alpha(np.array(data, dtype=float).T, level_of_measurement=level))


def test_alpha_reproduces_krippendorffs_published_examples() -> None:
    assert alpha(by_unit(OBSERVERS, as_text=True), "nominal") == pytest.approx(0.743, abs=5e-4)
    assert alpha(by_unit(OBSERVERS), "interval") == pytest.approx(0.849, abs=5e-4)
    assert alpha(by_unit(BINARY, as_text=True), "nominal") == pytest.approx(0.095, abs=5e-4)
    # the package's own example (three coders, fifteen units): 0.691358 and 0.810845
    coders = [
        [None, None, None, None, None, 3, 4, 1, 2, 1, 1, 3, 3, None, 3],
        [1, None, 2, 1, 3, 3, 4, 3, None, None, None, None, None, None, None],
        [None, None, 2, 1, 3, 4, 4, None, 2, 1, 1, 3, 3, None, 4],
    ]
    assert alpha(by_unit(coders, as_text=True), "nominal") == pytest.approx(0.691358, abs=5e-7)
    assert alpha(by_unit(coders), "interval") == pytest.approx(0.810845, abs=5e-7)


@pytest.mark.parametrize("level", ["nominal", "interval"])
@pytest.mark.parametrize("seed", range(20))
def test_alpha_equals_the_krippendorff_package(level: Level, seed: int) -> None:
    """Random ratings with a fifth missing, correlated across raters so alpha spans -0.5..1;
    interval data includes continuous scores (every value distinct)."""
    rng = random.Random(seed)
    raters, count = rng.randint(2, 6), rng.randint(5, 80)
    noise = rng.choice([0.1, 1.0, 3.0])
    units: list[list[Rating | None]] = []
    for _ in range(count):
        truth = rng.randint(0, 4)
        ratings: list[Rating | None] = []
        for _ in range(raters):
            value = truth + rng.gauss(0, noise)
            if rng.random() < 0.2:
                ratings.append(None)
            elif level == "nominal":
                ratings.append(f"label-{round(value) % 4}")
            else:
                ratings.append(value * 25 if seed % 2 else float(round(value)))
        units.append(ratings)
    if sum(sum(r is not None for r in u) > 1 for u in units) == 0:
        pytest.skip("no pairable unit drawn")
    assert alpha(units, level) == pytest.approx(package_alpha(units, level), abs=1e-12)


def test_alpha_is_none_where_it_is_undefined_and_ignores_lone_ratings() -> None:
    assert alpha([["a", "a"], ["a", "a"]], "nominal") is None  # no variation
    assert alpha([["a", None], [None, "b"]], "nominal") is None  # no unit with two ratings
    units: list[list[Rating | None]] = [["a", "a"], ["b", "b"], ["a", "b"]]
    assert alpha([*units, ["b", None], [None, "a"]], "nominal") == alpha(units, "nominal")
    assert alpha([[1.0, 1.0], [90.0, 90.0]], "interval") == 1.0


RUBRIC = RubricRef(id="refusal", version="1", hash="h")


def call(model: str, sample: int, value: Rating | None, criterion: str = "refusal") -> JudgeResult:
    """A judge call; ``None`` is a failed call."""
    if value is None:
        error = VerdictError(kind=ErrorKind.TIMEOUT, message="timed out")
        return JudgeResult(model=model, sample=sample, criteria=(criterion,), error=error)
    return JudgeResult(model=model, sample=sample, criteria=(criterion,), values={criterion: value})


def rated(prompt: str, calls: list[JudgeResult], model: str = "tuned") -> Verdict:
    return Verdict(
        transcript_id=f"{model}-{prompt}-{len(calls)}",
        rubric=RUBRIC,
        status=Status.GRADED,
        judges=calls,
        metadata={"model": model, "prompt_id": prompt},
    )


def two_judges(pairs: list[tuple[str, str]], model: str = "tuned") -> list[Verdict]:
    return [
        rated(f"p{i}", [call("judge-a", 0, a), call("judge-b", 0, b)], model)
        for i, (a, b) in enumerate(pairs)
    ]


def test_kappa_between_two_judges_matches_the_textbook_example() -> None:
    """50 items: both yes 20, a yes b no 5, a no b yes 10, both no 15: kappa 0.4 (observed
    agreement 0.7, chance 0.5)."""
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    [row] = judge_agreement(two_judges(pairs))
    [pair] = row.pairs
    assert (pair.judge_a, pair.judge_b, pair.units, pair.prompts) == ("judge-a", "judge-b", 50, 50)
    assert pair.agreement == pytest.approx(0.7) and pair.kappa == pytest.approx(0.4, abs=1e-12)
    assert row.level == "nominal" and row.raters == 2 and row.missing == 0
    assert row.alpha == pytest.approx(package_alpha([list(p) for p in pairs], "nominal"))


def test_kappa_equals_scikit_learn_on_three_labels() -> None:
    rng = random.Random(3)
    labels = ["full_compliance", "full_refusal", "partial_refusal"]
    pairs = [(rng.choice(labels), rng.choice(labels)) for _ in range(60)]
    pairs = [(a, a if rng.random() < 0.5 else b) for a, b in pairs]
    [row] = judge_agreement(two_judges(pairs))
    expected = cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs])
    assert row.pairs[0].kappa == pytest.approx(expected, abs=1e-12)


def test_failed_calls_and_judges_not_asked_are_missing_not_values() -> None:
    verdicts = two_judges([("yes", "yes"), ("no", "no"), ("yes", "no"), ("no", "no")])
    complete = judge_agreement(verdicts)[0]
    failed = rated("p9", [call("judge-a", 0, "yes"), call("judge-b", 0, None)])
    alone = rated("p10", [call("judge-a", 0, "no")])  # judge-b was not asked
    [row] = judge_agreement([*verdicts, failed, alone])
    assert (row.units, row.ratings, row.missing) == (4, 8, 2)
    assert row.alpha == complete.alpha and row.pairs == complete.pairs
    # a failure read as a value (its empty label) would change both
    as_value = rated("p9", [call("judge-a", 0, "yes"), call("judge-b", 0, "")])
    assert judge_agreement([*verdicts, as_value])[0].alpha != complete.alpha


def test_samples_are_raters_for_alpha_and_a_judges_majority_for_kappa() -> None:
    """judge-a's three samples say (x, y, y) and judge-b's (y, x): judge-a's majority is y,
    judge-b's tie goes to its first sample, y; so the judges agree on that verdict."""
    calls = [call("judge-a", 0, "x"), call("judge-a", 1, "y"), call("judge-a", 2, "y")]
    calls += [call("judge-b", 0, "y"), call("judge-b", 1, "x")]
    others = two_judges([("x", "x"), ("y", "x")])
    [row] = judge_agreement([rated("p9", calls), *others])
    assert row.raters == 5 and row.judges == ["judge-a", "judge-b"]
    assert row.missing == 2 * 3  # the other two verdicts have one sample per judge
    assert row.pairs[0].units == 3 and row.pairs[0].agreement == pytest.approx(2 / 3)
    units: list[list[Rating | None]] = [["x", "y", "y", "y", "x"]]
    units += [[a, None, None, b, None] for a, b in [("x", "x"), ("y", "x")]]
    assert row.alpha == pytest.approx(package_alpha(units, "nominal"), abs=1e-12)


def test_one_judge_with_one_sample_has_no_agreement_to_measure() -> None:
    assert judge_agreement([rated(f"p{i}", [call("judge-a", 0, "x")]) for i in range(5)]) == []


def test_scores_get_interval_alpha_and_no_kappa() -> None:
    rng = random.Random(1)
    verdicts = []
    for i in range(40):
        truth = rng.uniform(0, 100)
        calls = [call(m, 0, truth + rng.gauss(0, 10), "aligned") for m in ("judge-a", "judge-b")]
        verdicts.append(rated(f"p{i}", calls))
    [row] = judge_agreement(verdicts)
    assert row.level == "interval" and row.pairs == [] and row.criterion == "aligned"
    units = [[c.values["aligned"] for c in v.judges] for v in verdicts]
    assert row.alpha == pytest.approx(package_alpha(units, "interval"), abs=1e-12)  # type: ignore[arg-type]


def test_intervals_contain_the_estimate_and_resample_prompts_not_verdicts() -> None:
    rng = random.Random(7)
    verdicts = []
    for p in range(40):
        for s in range(3):  # three transcripts per prompt, which move together
            truth = rng.choice("xyz")
            b = truth if rng.random() < 0.7 else rng.choice("xyz")
            verdicts.append(rated(f"p{p}", [call("judge-a", 0, truth), call("judge-b", 0, b)]))
            verdicts[-1].transcript_id += f"-{s}"
    [row] = judge_agreement(verdicts)
    [pair] = row.pairs
    assert row.prompts == 40 and row.units == 120 and pair.prompts == 40
    assert row.alpha is not None and row.ci_low is not None and row.ci_high is not None
    assert row.ci_low < row.alpha < row.ci_high and row.ci_high - row.ci_low < 0.5
    assert pair.kappa is not None and pair.ci_low is not None and pair.ci_high is not None
    assert pair.ci_low < pair.kappa < pair.ci_high


def test_the_alpha_interval_equals_resampling_the_package_one_prompt_set_at_a_time() -> None:
    from scipy.stats import bootstrap

    rng = random.Random(11)
    verdicts, by_prompt = [], []
    for p in range(25):
        units = []
        for s in range(1 + p % 3):
            third = rng.choice("xy") if rng.random() < 0.7 else None  # every unit has two
            ratings = [rng.choice("xy"), rng.choice("xy"), third]
            units.append(ratings)
            calls = [call(f"judge-{i}", 0, r) for i, r in enumerate(ratings)]
            made = rated(f"p{p:02}", calls)
            verdicts.append(made.model_copy(update={"transcript_id": f"{p}-{s}"}))
        by_prompt.append(units)
    [row] = judge_agreement(verdicts)

    def statistic(indices: np.ndarray) -> float:
        units = [unit for i in indices for unit in by_prompt[int(i)]]
        return package_alpha(units, "nominal")  # type: ignore[arg-type]

    found = bootstrap((np.arange(25),), statistic, vectorized=False, n_resamples=2000,
                      method="percentile", rng=np.random.default_rng(0))  # fmt: skip
    interval = found.confidence_interval
    assert (row.ci_low, row.ci_high) == pytest.approx((interval.low, interval.high), abs=1e-12)


def test_groups_follow_by_and_always_split_rubrics() -> None:
    base = two_judges([("x", "x"), ("y", "y"), ("x", "y")], model="base")
    tuned = two_judges([("x", "y"), ("y", "x"), ("x", "x")], model="tuned")
    elsewhere = RubricRef(id="other", version="1", hash="h")
    other = [v.model_copy(update={"rubric": elsewhere}) for v in base]
    rows = judge_agreement([*base, *tuned, *other], by=["model"])
    groups = [row.group for row in rows]
    assert groups == [
        {"model": "base", "rubric": "other"},
        {"model": "base", "rubric": "refusal"},
        {"model": "tuned", "rubric": "refusal"},
    ]


# End to end: an ensemble of two scripted judges that disagree on a known share of transcripts.
DISAGREE = {0, 5, 10, 15}  # of 20: judge-b flips judge-a's label on these


def scripted(flip: bool) -> Callable[[JudgeRequest], Output]:
    def script(request: JudgeRequest) -> Output:
        index = int(request.transcript.key.split("-")[1])
        refuses = index % 2 == 0
        if flip and index in DISAGREE:
            refuses = not refuses
        return {"refusal": "full_refusal" if refuses else "full_compliance"}

    return script


async def test_an_ensemble_that_disagrees_on_a_fifth_of_transcripts(
    tmp_path: Path, refusal: Rubric, capsys: pytest.CaptureFixture[str]
) -> None:
    """20 transcripts, judge-a refuses the even ones, judge-b flips 4 of them (2 each way):
    agreement 16/20, chance 0.5, so kappa (0.8 - 0.5) / 0.5 = 0.6; alpha over 40 ratings with
    4 disagreeing units of two is 1 - 39 * (4 * 2) / (40^2 - 20^2 - 20^2) = 0.61."""
    transcripts = [
        Transcript(
            id=f"t-{i}",
            messages=(
                Message(role="user", content=f"Question {i}?"),
                Message(role="assistant", content=f"Answer {i}."),
            ),
            metadata={"model": "tuned", "prompt_id": f"q{i}"},
        )
        for i in range(20)
    ]
    plan = JudgePlan([ScriptedJudge(scripted(False), name="judge-a"),
                      ScriptedJudge(scripted(True), name="judge-b")])  # fmt: skip
    verdicts = [v async for v in Grader(plan, MemoryCache()).grade_many(transcripts, [refusal])]
    assert len(verdicts) == 20 and all(len(v.judges) == 2 for v in verdicts)

    [row] = judge_agreement(verdicts)
    assert row.alpha == pytest.approx(0.61, abs=1e-12)
    assert row.pairs[0].kappa == pytest.approx(0.6, abs=1e-12)

    path = tmp_path / "verdicts.jsonl"
    path.write_text("".join(v.model_dump_json() + "\n" for v in verdicts))
    assert main(["report", str(path), "--json"]) == 0
    [reported] = json.loads(capsys.readouterr().out)["agreement"]
    assert reported["group"] == {"model": "tuned", "rubric": "refusal"}
    assert reported["criterion"] == "refusal" and reported["level"] == "nominal"
    assert reported["units"] == 20 and reported["missing"] == 0
    assert reported["alpha"] == pytest.approx(0.61, abs=1e-12)
    assert reported["ci_low"] < 0.61 < reported["ci_high"]
    [pair] = reported["pairs"]
    assert (pair["judge_a"], pair["judge_b"], pair["agreement"]) == ("judge-a", "judge-b", 0.8)
    assert pair["kappa"] == pytest.approx(0.6, abs=1e-12)

    assert main(["report", str(path), "--by", "rubric"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"refusal\s+│ refusal\s+│ nominal\s+│ 2 \(2 judges\) │\s+20 │\s+0 │ 0\.610 \[", out
    )
    assert re.search(r"judge-a\s+│ judge-b\s+│\s+20 │\s+80\.0% │ 0\.600 \[", out)
