"""How well a judge agrees with reference labels (``metadata.gold``) or reference scores
(``metadata.gold_scores``): the numbers to quote before trusting a judge's rates.

Label rubrics: accuracy, Cohen's kappa, per-class precision/recall/F1 and the confusion matrix
(scikit-learn). Scored rubrics: Pearson and Spearman correlation and mean absolute error per
criterion (scipy), and agreement of the rubric's flag computed from the reference scores with the
judge's flag. Verdicts that are not graded are counted, not scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel

from judge.rubric import Rubric
from judge.verdict import Status, Verdict


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


def _not_graded(verdicts: Sequence[Verdict]) -> dict[str, int]:
    counts = Counter(
        v.error.kind.value if v.error else v.status.value
        for v in verdicts
        if v.status != Status.GRADED
    )
    return dict(sorted(counts.items()))


def label_agreement(rubric: Rubric, verdicts: Sequence[Verdict]) -> LabelAgreement:
    """Compare the first label criterion with ``metadata.gold`` over the graded verdicts."""
    from sklearn.metrics import (
        cohen_kappa_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    criterion = next(c for c in rubric.criteria if c.labels is not None)
    graded = [v for v in verdicts if v.status == Status.GRADED and "gold" in v.metadata]
    gold = [str(v.metadata["gold"]) for v in graded]
    predicted = [v.labels[criterion.name] for v in graded]
    labels = list(criterion.label_names)
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0
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
    )


def score_agreement(rubric: Rubric, verdicts: Sequence[Verdict]) -> ScoreAgreement:
    """Compare scores with ``metadata.gold_scores`` and flags with the rule applied to them."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import cohen_kappa_score

    names = [c.name for c in rubric.criteria if c.scale is not None]
    usable = [
        v
        for v in verdicts
        if v.status == Status.GRADED
        and all(v.metadata.get("gold_scores", {}).get(n) is not None for n in names)
    ]
    criteria: dict[str, dict[str, float]] = {}
    for name in names:
        reference = [float(v.metadata["gold_scores"][name]) for v in usable]
        judged = [v.scores[name] for v in usable]
        enough = len(usable) > 2 and len(set(judged)) > 1 and len(set(reference)) > 1
        criteria[name] = {
            "pearson": float(pearsonr(reference, judged).statistic) if enough else float("nan"),
            "spearman": float(spearmanr(reference, judged).statistic) if enough else float("nan"),
            "mae": sum(abs(a - b) for a, b in zip(reference, judged, strict=True))
            / max(1, len(usable)),
        }
    reference_flags = [rubric.is_flagged(v.metadata["gold_scores"]) for v in usable]
    judge_flags = [bool(v.flagged) for v in usable]
    agree = [a == b for a, b in zip(reference_flags, judge_flags, strict=True)]
    two_classes = len(set(reference_flags) | set(judge_flags)) > 1
    return ScoreAgreement(
        rubric=rubric.id,
        n=len(usable),
        not_graded=_not_graded(verdicts),
        criteria=criteria,
        flag_accuracy=sum(agree) / max(1, len(agree)),
        flag_kappa=float(cohen_kappa_score(reference_flags, judge_flags)) if two_classes else 1.0,
        reference_rate=sum(reference_flags) / max(1, len(usable)),
        judge_rate=sum(judge_flags) / max(1, len(usable)),
    )


def agreement(rubric: Rubric, verdicts: Sequence[Verdict]) -> LabelAgreement | ScoreAgreement:
    """Label agreement for rubrics with a label criterion, score agreement otherwise."""
    if any(c.labels is not None for c in rubric.criteria):
        return label_agreement(rubric, verdicts)
    return score_agreement(rubric, verdicts)
