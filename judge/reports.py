"""Rates a paper can quote: flag rates among graded verdicts with 95% intervals, and paired
comparisons of two models on the same prompts.

- The rate is flagged / graded. ``not_applicable``, ``inconsistent`` (a group graded in both
  orders whose results disagree) and errors (by kind) are counted beside it, never dropped
  silently and never in the denominator; the inconsistency rate is inconsistent / verdicts
  graded in both orders.
- The interval is Wilson's when every prompt has one verdict; when some prompt has several
  (samples), it is a percentile bootstrap over prompts, so correlated samples do not shrink it,
  widened to at least Wilson's interval with the prompts as the sample size: a bootstrap alone
  collapses to a point when every prompt agrees (5 of 5 flagged is not certainty).
- A comparison pairs the two models' verdicts by prompt (prompts graded for both only) and gives
  the difference of rates with a paired bootstrap interval over prompts; with fewer than
  ``SMALL_PAIRED`` prompts, where a percentile bootstrap undercovers (and collapses when every
  pair differs alike), widened to at least Newcombe's square-and-add interval from the two
  rates' Wilson intervals over the shared prompts.
- A trend is the rate of each rubric at each checkpoint, in the checkpoints' order (an explicit
  list, else ``metadata.step``); the judges' provenance is what they cost and how far their
  samples agreed.

A verdict's prompt is ``metadata.prompt_id`` (or ``question_id``), else its transcript id.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from judge.errors import UsageError
from judge.verdict import Status, Verdict

GROUPINGS = ("model", "rubric", "tag", "judge")
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_BATCH = 250  # resamples evaluated at once: bounds memory for many prompts


class RateRow(BaseModel):
    """One group's rate and counts."""

    group: dict[str, str]
    verdicts: int
    graded: int
    flagged: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    interval: str
    prompts: int
    not_applicable: int
    errors: int
    errors_by_kind: dict[str, int]
    not_applicable_by_reason: dict[str, int] = {}
    inconsistent: int = 0
    inconsistency_rate: float | None = None
    """Of the verdicts graded in both orders, the share whose two orders disagreed."""


class Comparison(BaseModel):
    """Model B's rate minus model A's on the prompts both were graded on."""

    rubric: str
    model_a: str
    model_b: str
    prompts: int
    rate_a: float
    rate_b: float
    difference: float
    ci_low: float
    ci_high: float


def read_verdicts(paths: Iterable[Path], problems: list[str] | None = None) -> list[Verdict]:
    """Verdicts from JSONL files. A malformed line (a run cut off mid-line leaves one) is a
    ``UsageError`` naming file and line, or, given ``problems``, noted there and skipped."""
    verdicts = []
    for path in paths:
        if not path.is_file():
            raise UsageError(f"verdict file {path} does not exist")
        try:
            with path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        verdicts.append(Verdict.model_validate_json(line))
                    except ValidationError as exc:
                        first = exc.errors()[0]
                        where = ".".join(str(p) for p in first["loc"]) or "line"
                        why = f"{where}: {first['msg']}"
                        problem = f"{path}: line {number} is not a verdict ({why})"
                        if problems is None:
                            raise UsageError(problem) from None
                        problems.append(problem)
        except OSError as exc:
            raise UsageError(f"cannot read verdict file {path}: {exc.strerror}") from None
    return verdicts


def prompt_of(verdict: Verdict) -> str:
    metadata = verdict.metadata
    return str(metadata.get("prompt_id") or metadata.get("question_id") or verdict.transcript_id)


def _group_values(verdict: Verdict, key: str) -> list[str]:
    if key == "model":
        return [str(verdict.metadata.get("model", "(unknown)"))]
    if key == "rubric":
        return [verdict.rubric.id]
    if key == "judge":
        return ["+".join(sorted({j.model for j in verdict.judges})) or "(none)"]
    tags = verdict.metadata.get("tags") or ["(untagged)"]
    return [str(tag) for tag in (tags if isinstance(tags, list) else [tags])]


def repeated_keys(by: Sequence[str]) -> str | None:
    """What is wrong with grouping keys that repeat (each repeat would multiply the groups by
    the values of its key), or None."""
    repeated = sorted({key for key in by if by.count(key) > 1})
    return f"group by each key once; repeated: {', '.join(repeated)}" if repeated else None


def group_verdicts(
    verdicts: Iterable[Verdict], by: Sequence[str]
) -> dict[tuple[str, ...], list[Verdict]]:
    """Verdicts by the values of the grouping keys, in key order (a verdict with several tags is
    in each of its tags' groups); an unknown key is a ``UsageError``."""
    unknown = [key for key in by if key not in GROUPINGS]
    if unknown:
        raise UsageError(f"cannot group by {unknown}; choose from {', '.join(GROUPINGS)}")
    if problem := repeated_keys(by):
        raise UsageError(problem)
    groups: dict[tuple[str, ...], list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        keys: list[tuple[str, ...]] = [()]
        for key in by:
            keys = [(*k, value) for k in keys for value in _group_values(verdict, key)]
        for key_tuple in keys:
            groups[key_tuple].append(verdict)
    return dict(sorted(groups.items()))


def rates(verdicts: Sequence[Verdict], by: Sequence[str] = ("rubric",)) -> list[RateRow]:
    """Flag rates with 95% intervals, one row per group (a verdict with several tags counts in
    each of its tags' groups)."""
    return [
        _row(dict(zip(by, key, strict=True)), group)
        for key, group in group_verdicts(verdicts, by).items()
    ]


def _row(group: dict[str, str], verdicts: list[Verdict]) -> RateRow:
    graded = [v for v in verdicts if v.status == Status.GRADED]
    errors: dict[str, int] = defaultdict(int)
    reasons: dict[str, int] = defaultdict(int)
    for verdict in verdicts:
        if verdict.error is not None:
            errors[verdict.error.kind.value] += 1
        if verdict.status == Status.NOT_APPLICABLE:
            reasons[verdict.reason or "(no reason given)"] += 1
    per_prompt = _per_prompt(graded)
    flagged = sum(1 for v in graded if v.flagged)
    inconsistent = sum(1 for v in verdicts if v.status == Status.INCONSISTENT)
    both_orders = sum(
        1
        for v in verdicts
        if len(v.orders) > 1 and v.status in (Status.GRADED, Status.INCONSISTENT)
    )
    low = high = rate = None
    interval = "none"
    if graded:
        rate = flagged / len(graded)
        if max(n for _, n in per_prompt.values()) > 1:
            low, high = _widest(
                _bootstrap_rate(list(per_prompt.values())), _wilson_over(rate, per_prompt)
            )
            interval = "bootstrap over prompts"
        else:
            low, high = wilson(flagged, len(graded))
            interval = "wilson"
    return RateRow(
        group=group,
        verdicts=len(verdicts),
        graded=len(graded),
        flagged=flagged,
        rate=rate,
        ci_low=low,
        ci_high=high,
        interval=interval,
        prompts=len(per_prompt),
        not_applicable=sum(reasons.values()),
        errors=sum(errors.values()),
        errors_by_kind=dict(sorted(errors.items())),
        not_applicable_by_reason=dict(sorted(reasons.items(), key=lambda item: -item[1])),
        inconsistent=inconsistent,
        inconsistency_rate=inconsistent / both_orders if both_orders else None,
    )


def _per_prompt(graded: list[Verdict]) -> dict[str, tuple[int, int]]:
    """(flagged, graded) per prompt."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for verdict in graded:
        entry = counts[prompt_of(verdict)]
        entry[0] += bool(verdict.flagged)
        entry[1] += 1
    return {prompt: (f, n) for prompt, (f, n) in counts.items()}


def wilson(flagged: int, total: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion (scipy's implementation)."""
    from scipy.stats import binomtest

    interval = binomtest(flagged, total).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def _wilson_over(rate: float, per_prompt: dict[str, tuple[int, int]]) -> tuple[float, float]:
    """Wilson's interval of a rate as if each prompt were one observation (the least a rate
    over that many prompts can be known to), the flagged count rounded."""
    prompts = len(per_prompt)
    return wilson(round(rate * prompts), prompts)


def _widest(*intervals: tuple[float, float]) -> tuple[float, float]:
    return min(low for low, _ in intervals), max(high for _, high in intervals)


def newcombe(rate_a: float, rate_b: float, prompts: int) -> tuple[float, float]:
    """Newcombe's square-and-add 95% interval of ``rate_b - rate_a`` from the two rates'
    Wilson intervals over ``prompts`` (independent samples: wider than a paired interval when
    the two models agree on prompts, so a safe floor for one)."""
    low_a, high_a = wilson(round(rate_a * prompts), prompts)
    low_b, high_b = wilson(round(rate_b * prompts), prompts)
    difference = rate_b - rate_a
    below = ((rate_b - low_b) ** 2 + (high_a - rate_a) ** 2) ** 0.5
    above = ((high_b - rate_b) ** 2 + (rate_a - low_a) ** 2) ** 0.5
    return max(-1.0, difference - below), min(1.0, difference + above)


def _bootstrap_rate(per_prompt: list[tuple[int, int]]) -> tuple[float, float]:

    counts = np.array(per_prompt, dtype=float)
    if len(counts) < 2:
        rate = counts[0, 0] / counts[0, 1]
        return rate, rate

    def pooled(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        sums = counts[indices.astype(int)].sum(axis=-2)
        return np.asarray(sums[..., 0] / sums[..., 1])

    return _bootstrap_over_prompts(len(counts), pooled)


def _bootstrap_over_prompts(
    prompts: int, statistic: Callable[[np.ndarray, int], np.ndarray]
) -> tuple[float, float]:
    (low,), (high,) = bootstrap_intervals(prompts, statistic)
    return float(low), float(high)


def bootstrap_intervals(
    prompts: int, statistic: Callable[..., Any], *, vectorized: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95% intervals of a statistic of resampled prompt indices (fixed seed): one
    value, or several at once (the statistic returns them along its first axis).

    A vectorized statistic takes a batch of index resamples at once: one numpy call per batch
    instead of one Python call per resample, ten times faster for the same interval.
    """
    from scipy.stats import bootstrap

    result = bootstrap(
        (np.arange(prompts),),
        statistic,
        vectorized=vectorized,
        batch=BOOTSTRAP_BATCH if vectorized else None,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    interval = result.confidence_interval
    return np.atleast_1d(interval.low), np.atleast_1d(interval.high)


MIN_PAIRS = 2
"""Prompts two models must share (graded) before their rates are compared."""

SMALL_PAIRED = 30
"""Below this many shared prompts a comparison's interval is at least Newcombe's."""


def compare(verdicts: Sequence[Verdict], model_a: str, model_b: str) -> list[Comparison]:
    """Per rubric, model B's flag rate minus model A's on the prompts both have graded verdicts
    for, with a paired bootstrap 95% interval over those prompts (rubrics where they share fewer
    than ``MIN_PAIRS`` are left out; ``unpaired`` says why)."""

    comparisons = []
    for (rubric_id,), group in group_verdicts(verdicts, ["rubric"]).items():
        sides = {
            model: _per_prompt(
                [v for v in group if v.status == Status.GRADED and v.metadata.get("model") == model]
            )
            for model in (model_a, model_b)
        }
        shared = sorted(set(sides[model_a]) & set(sides[model_b]))
        if len(shared) < MIN_PAIRS:
            continue
        paired = np.array([[*sides[model_a][p], *sides[model_b][p]] for p in shared], dtype=float)

        def difference(
            indices: np.ndarray, axis: int = -1, paired: np.ndarray = paired
        ) -> np.ndarray:
            sums = paired[indices.astype(int)].sum(axis=-2)
            return np.asarray(sums[..., 2] / sums[..., 3] - sums[..., 0] / sums[..., 1])

        low, high = _bootstrap_over_prompts(len(shared), difference)
        rate_a = paired[:, 0].sum() / paired[:, 1].sum()
        rate_b = paired[:, 2].sum() / paired[:, 3].sum()
        if len(shared) < SMALL_PAIRED:
            low, high = _widest((low, high), newcombe(rate_a, rate_b, len(shared)))
        comparisons.append(
            Comparison(
                rubric=rubric_id,
                model_a=model_a,
                model_b=model_b,
                prompts=len(shared),
                rate_a=float(rate_a),
                rate_b=float(rate_b),
                difference=float(rate_b - rate_a),
                ci_low=low,
                ci_high=high,
            )
        )
    return comparisons


def unpaired(verdicts: Sequence[Verdict], model_a: str, model_b: str) -> list[str]:
    """Why ``compare`` gives nothing for a rubric: a model that is not there, or too few shared
    prompts, with what pairing needs. Empty when every rubric has its comparison."""
    models = sorted({str(v.metadata["model"]) for v in verdicts if "model" in v.metadata})
    missing = [m for m in (model_a, model_b) if m not in models]
    if missing:
        found = ", ".join(models) or "none (no verdict has metadata.model)"
        return [f"no verdict is of model {', '.join(map(repr, missing))}; models found: {found}"]
    compared = {c.rubric for c in compare(verdicts, model_a, model_b)}
    notes = []
    for (rubric_id,), group in group_verdicts(verdicts, ["rubric"]).items():
        if rubric_id in compared:
            continue
        graded = [v for v in group if v.status == Status.GRADED]
        prompts = [
            {prompt_of(v) for v in graded if v.metadata.get("model") == model}
            for model in (model_a, model_b)
        ]
        notes.append(
            f"{rubric_id}: {model_a} and {model_b} share {len(prompts[0] & prompts[1])} graded "
            f"prompt(s); a paired comparison needs at least {MIN_PAIRS}. Verdicts pair by "
            "metadata.prompt_id (else question_id, else the transcript id): give the same "
            "prompt the same prompt_id in both models' transcripts."
        )
    return notes


class Checkpoint(BaseModel):
    """A model's place in a training run: its position, and ``metadata.step`` if it has one."""

    model: str
    position: int
    step: float | None


class TrendPoint(BaseModel):
    """One rubric's rate at one checkpoint."""

    rubric: str
    checkpoint: Checkpoint
    graded: int
    flagged: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


def checkpoints(verdicts: Sequence[Verdict], order: Sequence[str] = ()) -> list[Checkpoint]:
    """The models in training order: ``order`` if given (a name no verdict has is a
    ``UsageError``), else by ``metadata.step`` when every model carries exactly one; else none."""
    steps: dict[str, set[float]] = defaultdict(set)
    for verdict in verdicts:
        found = steps[str(verdict.metadata.get("model", "(unknown)"))]
        step = verdict.metadata.get("step")
        if isinstance(step, int | float) and not isinstance(step, bool):
            found.add(float(step))
    unknown = [model for model in order if model not in steps]
    if unknown:
        raise UsageError(f"the checkpoint order names models no verdict has: {', '.join(unknown)}")
    if len(set(order)) < len(order):
        raise UsageError("the checkpoint order names a model twice")
    single = {model: next(iter(s)) for model, s in steps.items() if len(s) == 1}
    models = list(order) or (
        sorted(single, key=single.__getitem__) if single.keys() == steps.keys() else []
    )
    return [
        Checkpoint(model=model, position=position, step=single.get(model))
        for position, model in enumerate(models)
    ]


def trend(rows: Sequence[RateRow], order: Sequence[Checkpoint]) -> list[TrendPoint]:
    """Each rubric's rate at each checkpoint, in order, from rows grouped by model and rubric."""
    by_cell = {(row.group.get("model"), row.group.get("rubric")): row for row in rows}
    rubrics = sorted({rubric for _, rubric in by_cell if rubric is not None})
    return [
        TrendPoint(
            rubric=rubric,
            checkpoint=point,
            graded=row.graded,
            flagged=row.flagged,
            rate=row.rate,
            ci_low=row.ci_low,
            ci_high=row.ci_high,
        )
        for rubric in rubrics
        for point in order
        if (row := by_cell.get((point.model, rubric))) is not None
    ]


class JudgeUsage(BaseModel):
    """What one judge model did: calls, cache hits, samples, failures, and what it cost."""

    model: str
    verdicts: int = 0
    calls: int = 0
    cached: int = 0
    samples: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    scoring: dict[str, int] = {}


def judge_usage(verdicts: Iterable[Verdict]) -> list[JudgeUsage]:
    """Per judge model, over every call of every verdict; tokens and cost count only the calls
    that were paid for (a cache hit repeats its first call's numbers but costs nothing). A call
    never made (``attempts`` 0: no judge could grade it, or a budget refused it) is no call and
    no failed call, as in the CLI's summary: its scoring counts it as "not made"."""
    usage: dict[str, JudgeUsage] = {}
    samples: dict[str, set[int]] = defaultdict(set)
    for verdict in verdicts:
        for model in {call.model for call in verdict.judges}:
            usage.setdefault(model, JudgeUsage(model=model)).verdicts += 1
        for call in verdict.judges:
            entry = usage[call.model]
            if not call.cached and not call.attempts:  # no judge could take it, or a budget
                entry.scoring["not made"] = entry.scoring.get("not made", 0) + 1  # refused it
                continue
            samples[call.model].add(call.sample)
            scoring = call.scoring or ("failed" if call.error else "none")
            entry.scoring[scoring] = entry.scoring.get(scoring, 0) + 1
            entry.calls += 1
            entry.errors += call.error is not None
            if call.cached:
                entry.cached += 1
            else:
                entry.input_tokens += call.input_tokens or 0
                entry.output_tokens += call.output_tokens or 0
                entry.cost_usd += call.cost_usd or 0.0
    for model, entry in usage.items():
        entry.samples = len(samples[model])
    return [usage[model] for model in sorted(usage)]


class ConfidenceSummary(BaseModel):
    """How sure a rubric's graded verdicts were, per source: the agreement among samples and
    judges, or the logprob mass on the numeric answer."""

    rubric: str
    source: str
    verdicts: int
    mean: float
    lowest: float
    full: int


def confidence_summary(verdicts: Iterable[Verdict]) -> list[ConfidenceSummary]:
    """Per rubric and confidence source; ``full`` counts verdicts at confidence 1 (unanimous)."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for verdict in verdicts:
        if verdict.status == Status.GRADED and verdict.confidence is not None:
            source = verdict.confidence_source or "unknown"
            values[(verdict.rubric.id, source)].append(verdict.confidence)
    return [
        ConfidenceSummary(
            rubric=rubric,
            source=source,
            verdicts=len(found),
            mean=sum(found) / len(found),
            lowest=min(found),
            full=sum(1 for value in found if value >= 1.0),
        )
        for (rubric, source), found in sorted(values.items())
    ]


def report_json(
    rows: list[RateRow], comparisons: list[Comparison], agreement: Sequence[BaseModel] = ()
) -> str:
    """The report as ``judge report --json`` prints it: rates, comparisons and agreement between
    judges (``judge.agreement``, computed by the caller: it builds on this module)."""
    document: dict[str, Any] = {
        "rates": [row.model_dump() for row in rows],
        "comparisons": [c.model_dump() for c in comparisons],
        "agreement": [a.model_dump() for a in agreement],
    }
    return json.dumps(document, indent=2)
