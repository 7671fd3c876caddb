"""How well a judge agrees with reference labels or scores: the numbers to quote before trusting
a judge's rates.

The reference is a transcript's ``gold`` (kept in its verdict's metadata): a label (for the
rubric's first label criterion), a number (its first scale criterion), or a mapping criterion ->
label or number (``gold_scores``, the older name of that mapping, is read too). A ``gold`` that is
not a label of the rubric (``syc_are_you_sure`` keeps the correct *answer* there) is not a
reference for it.

Label rubrics: accuracy, Cohen's kappa, per-class precision/recall/F1 and the confusion matrix
(scikit-learn). Scored rubrics: Pearson and Spearman correlation and mean absolute error per
criterion (scipy), and agreement of the rubric's flag computed from the reference scores with the
judge's flag. Each comes with a bootstrap 95% interval over prompts (a prompt's samples move
together, as in ``judge.reports``). Verdicts that are not graded are counted, not scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from judge.reports import bootstrap_intervals, prompt_of
from judge.rubric import Criterion, Rubric
from judge.verdict import Status, Verdict

Interval = tuple[float, float]


class LabelAgreement(BaseModel):
    """Agreement of a judge's labels with reference labels."""

    rubric: str
    criterion: str
    n: int
    not_graded: dict[str, int]
    accuracy: float
    kappa: float
    binary_accuracy: float
    per_class: dict[str, dict[str, float]]
    labels: list[str]
    confusion: list[list[int]]
    intervals: dict[str, Interval] = {}
    """Bootstrap 95% intervals: ``accuracy``, ``kappa``, ``binary_accuracy``, ``f1.<label>``."""


class ScoreAgreement(BaseModel):
    """Agreement of a judge's scores (and flags) with reference scores."""

    rubric: str
    n: int
    not_graded: dict[str, int]
    criteria: dict[str, dict[str, float]]
    flag_accuracy: float
    flag_kappa: float
    reference_rate: float
    judge_rate: float
    intervals: dict[str, Interval] = {}
    """Bootstrap 95% intervals: ``<criterion>.pearson``/``.spearman``/``.mae``,
    ``flag_accuracy``."""


def gold_of(rubric: Rubric, metadata: dict[str, Any]) -> dict[str, str | float]:
    """The reference values a verdict's metadata holds for the rubric's criteria (empty when it
    holds none: no gold, or a gold that is not a value of this rubric)."""
    gold = metadata.get("gold_scores", metadata.get("gold"))
    if not isinstance(gold, dict):
        first = _first(rubric, gold)
        gold = {first.name: gold} if first is not None else {}
    values: dict[str, str | float] = {}
    for name, value in gold.items():
        criterion = next((c for c in rubric.criteria if c.name == name), None)
        reference = _reference(criterion, value) if criterion is not None else None
        if reference is not None:
            values[name] = reference
    return values


def _first(rubric: Rubric, gold: Any) -> Criterion | None:
    """The criterion a single gold value is for: a label criterion for text, else a scale."""
    labelled = next((c for c in rubric.criteria if c.labels is not None), None)
    scaled = next((c for c in rubric.criteria if c.scale is not None), None)
    if isinstance(gold, str) and labelled is not None and gold in labelled.label_names:
        return labelled
    return scaled if _number(gold) is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # a CSV cell holds text: "87.5"
    except (TypeError, ValueError):
        return None


def _reference(criterion: Criterion, value: Any) -> str | float | None:
    if criterion.labels is not None:
        return str(value) if str(value) in criterion.label_names else None
    return _number(value)


def _not_graded(verdicts: Sequence[Verdict]) -> dict[str, int]:
    counts = Counter(
        v.error.kind.value if v.error else v.status.value
        for v in verdicts
        if v.status != Status.GRADED
    )
    return dict(sorted(counts.items()))


def _clusters(verdicts: Sequence[Verdict]) -> tuple[np.ndarray, int]:
    """Each verdict's prompt as an index, and how many prompts there are."""
    index: dict[str, int] = {}
    rows = [index.setdefault(prompt_of(v), len(index)) for v in verdicts]
    return np.array(rows, dtype=int), len(index)


def label_agreement(rubric: Rubric, verdicts: Sequence[Verdict]) -> LabelAgreement:
    """Compare the first label criterion with the gold labels over the graded verdicts."""
    from sklearn.metrics import (
        cohen_kappa_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    criterion = next(c for c in rubric.criteria if c.labels is not None)
    graded = [
        v
        for v in verdicts
        if v.status == Status.GRADED and criterion.name in gold_of(rubric, v.metadata)
    ]
    gold = [str(gold_of(rubric, v.metadata)[criterion.name]) for v in graded]
    predicted = [v.labels[criterion.name] for v in graded]
    labels = list(criterion.label_names)
    precision, recall, f1, support = (
        precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
        if graded
        else np.zeros((4, len(labels)))  # nothing graded: scikit-learn refuses empty input
    )
    flagged = {label.name for label in criterion.labels or () if label.flagged}
    binary = [(g in flagged) == (p in flagged) for g, p in zip(gold, predicted, strict=True)]
    return LabelAgreement(
        rubric=rubric.id,
        criterion=criterion.name,
        n=len(graded),
        not_graded=_not_graded(verdicts),
        accuracy=sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(1, len(graded)),
        kappa=float(cohen_kappa_score(gold, predicted, labels=labels)) if graded else 0.0,
        binary_accuracy=sum(binary) / max(1, len(binary)),
        per_class={
            label: {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        labels=labels,
        confusion=confusion_matrix(gold, predicted, labels=labels).tolist() if graded else [],
        intervals=_label_intervals(graded, gold, predicted, labels, flagged),
    )


def _label_intervals(
    graded: Sequence[Verdict],
    gold: list[str],
    predicted: list[str],
    labels: list[str],
    flagged: set[str],
) -> dict[str, Interval]:
    """Accuracy, kappa, binary accuracy and per-class F1, resampling prompts: each statistic is
    a function of the summed per-prompt confusion matrices, so a batch of resamples is one
    numpy call."""
    if len(graded) < 2:
        return {}
    clusters, prompts = _clusters(graded)
    code = {label: i for i, label in enumerate(labels)}
    per_prompt = np.zeros((prompts, len(labels), len(labels)))
    cells = (clusters, np.array([code[g] for g in gold]), np.array([code[p] for p in predicted]))
    np.add.at(per_prompt, cells, 1)
    marked = np.array([label in flagged for label in labels])
    same_side = np.equal.outer(marked, marked)

    def statistics(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        matrices = per_prompt[indices.astype(int)].sum(axis=-3)  # (..., L, L)
        return confusion_statistics(matrices, same_side).swapaxes(-1, 0)

    low, high = bootstrap_intervals(prompts, statistics)
    names = ["accuracy", "kappa", "binary_accuracy", *(f"f1.{label}" for label in labels)]
    return {name: (float(lo), float(hi)) for name, lo, hi in zip(names, low, high, strict=True)}


def confusion_statistics(matrices: np.ndarray, same_side: np.ndarray) -> np.ndarray:
    """Accuracy, Cohen's kappa, binary accuracy and each label's F1 of confusion matrices
    (gold in rows, judge in columns; any leading axes are batches); ``same_side[i, j]`` says
    whether labels i and j are both flagged or both not."""
    total = matrices.sum(axis=(-2, -1))
    agree = np.trace(matrices, axis1=-2, axis2=-1) / total
    rows, columns = matrices.sum(axis=-1), matrices.sum(axis=-2)
    chance = (rows * columns).sum(axis=-1) / total**2
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = np.where(chance < 1, (agree - chance) / (1 - chance), 1.0)
        diagonal = np.diagonal(matrices, axis1=-2, axis2=-1)
        f1 = np.nan_to_num(2 * diagonal / (rows + columns))
    binary = (matrices * same_side).sum(axis=(-2, -1)) / total
    return np.concatenate([agree[..., None], kappa[..., None], binary[..., None], f1], axis=-1)


def score_agreement(rubric: Rubric, verdicts: Sequence[Verdict]) -> ScoreAgreement:
    """Compare scores with the gold scores, and flags with the rule applied to them."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import cohen_kappa_score

    names = [c.name for c in rubric.criteria if c.scale is not None]
    usable = [
        v
        for v in verdicts
        if v.status == Status.GRADED and set(names) <= set(gold_of(rubric, v.metadata))
    ]
    golds = [gold_of(rubric, v.metadata) for v in usable]
    criteria: dict[str, dict[str, float]] = {}
    intervals: dict[str, Interval] = {}
    for name in names:
        reference = np.array([float(g[name]) for g in golds])
        judged = np.array([v.scores[name] for v in usable])
        enough = len(usable) > 2 and len(set(judged)) > 1 and len(set(reference)) > 1
        criteria[name] = {
            "pearson": float(pearsonr(reference, judged).statistic) if enough else float("nan"),
            "spearman": float(spearmanr(reference, judged).statistic) if enough else float("nan"),
            "mae": float(np.abs(reference - judged).mean()) if len(usable) else 0.0,
        }
        if enough:
            intervals |= _score_intervals(name, usable, reference, judged)
    reference_flags = [rubric.is_flagged(g) for g in golds]
    judge_flags = [bool(v.flagged) for v in usable]
    agree = [a == b for a, b in zip(reference_flags, judge_flags, strict=True)]
    two_classes = len(set(reference_flags) | set(judge_flags)) > 1
    if len(usable) > 1:
        intervals["flag_accuracy"] = _mean_interval(usable, np.array(agree, dtype=float))
    return ScoreAgreement(
        rubric=rubric.id,
        n=len(usable),
        not_graded=_not_graded(verdicts),
        criteria=criteria,
        flag_accuracy=sum(agree) / max(1, len(agree)),
        flag_kappa=float(cohen_kappa_score(reference_flags, judge_flags)) if two_classes else 1.0,
        reference_rate=sum(reference_flags) / max(1, len(usable)),
        judge_rate=sum(judge_flags) / max(1, len(usable)),
        intervals=intervals,
    )


def _score_intervals(
    name: str, usable: Sequence[Verdict], reference: np.ndarray, judged: np.ndarray
) -> dict[str, Interval]:
    """Pearson and MAE from per-prompt sums (one numpy call per batch); Spearman, which ranks,
    one resample at a time."""
    from scipy.stats import spearmanr

    clusters, prompts = _clusters(usable)
    columns = [np.ones_like(reference), reference, judged, reference**2, judged**2]
    columns += [reference * judged, np.abs(reference - judged)]
    sums = np.zeros((prompts, len(columns)))
    np.add.at(sums, clusters, np.stack(columns, axis=-1))

    def moments(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        n, x, y, xx, yy, xy, error = np.moveaxis(sums[indices.astype(int)].sum(axis=-2), -1, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            pearson = (n * xy - x * y) / np.sqrt((n * xx - x**2) * (n * yy - y**2))
        return np.stack([np.nan_to_num(pearson), error / n])

    (pearson_low, mae_low), (pearson_high, mae_high) = bootstrap_intervals(prompts, moments)
    members = [np.flatnonzero(clusters == p) for p in range(prompts)]

    def spearman(indices: np.ndarray) -> float:
        rows = np.concatenate([members[int(i)] for i in indices])
        return float(np.nan_to_num(spearmanr(reference[rows], judged[rows]).statistic))

    (spearman_low,), (spearman_high,) = bootstrap_intervals(prompts, spearman, vectorized=False)
    return {
        f"{name}.pearson": (float(pearson_low), float(pearson_high)),
        f"{name}.spearman": (float(spearman_low), float(spearman_high)),
        f"{name}.mae": (float(mae_low), float(mae_high)),
    }


def _mean_interval(verdicts: Sequence[Verdict], values: np.ndarray) -> Interval:
    clusters, prompts = _clusters(verdicts)
    sums = np.zeros((prompts, 2))
    np.add.at(sums, clusters, np.stack([values, np.ones_like(values)], axis=-1))

    def mean(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        total = sums[indices.astype(int)].sum(axis=-2)
        return np.asarray(total[..., 0] / total[..., 1])[None]

    (low,), (high,) = bootstrap_intervals(prompts, mean)
    return float(low), float(high)


def with_gold(rubric: Rubric, verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts of this rubric that carry a reference value for it."""
    return [v for v in verdicts if v.rubric.id == rubric.id and gold_of(rubric, v.metadata)]


def agreement(rubric: Rubric, verdicts: Sequence[Verdict]) -> LabelAgreement | ScoreAgreement:
    """Label agreement for rubrics with a label criterion, score agreement otherwise."""
    if any(c.labels is not None for c in rubric.criteria):
        return label_agreement(rubric, verdicts)
    return score_agreement(rubric, verdicts)
