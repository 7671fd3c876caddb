"""How far the judges agree with each other: the reliability of an ensemble's or of repeated
samples' ratings, before anyone trusts the rates they give.

- **Krippendorff's alpha** per rubric criterion over units (verdicts) by raters (judge model and
  sample index): nominal for label criteria, interval for scale criteria. 1 is perfect
  agreement, 0 is what chance gives, below 0 is systematic disagreement; it is undefined (None)
  when every rating is the same value. A rating that is not there (a failed call, an unscored
  criterion, a judge that was not asked for that verdict) is missing, never a value: a unit
  counts with the ratings it has, and one with fewer than two tells nothing and is left out.
- **Cohen's kappa** between each two judge models on label criteria, on the verdicts both rated.
  A model's rating of a verdict is the majority of its samples; a tie goes to the tied label of
  its earliest sample (with one sample, the sample itself).
- Each comes with a percentile bootstrap 95% interval over prompts (``judge.reports``), so the
  verdicts of one prompt move together. A resample in which every rating is the same value
  counts as agreement 1, the convention ``judge.calibration`` uses for kappa.

Alpha is computed from sums that add up over units (Krippendorff's coincidences, reduced to the
counts per value for nominal data and to the moments for interval data), so a batch of bootstrap
resamples is one numpy call and memory stays linear in the ratings however many distinct scores
there are. ``tests/test_agreement.py`` checks it against the ``krippendorff`` package and against
Krippendorff's published examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from typing import Literal

import numpy as np
from pydantic import BaseModel

from judge.calibration import confusion_statistics
from judge.reports import bootstrap_intervals, group_verdicts, prompt_of
from judge.verdict import Verdict

Level = Literal["nominal", "interval"]
Rating = str | float
Rater = tuple[str, int]
"""A judge model and a sample index."""
Unit = tuple[str, dict[Rater, Rating]]
"""A verdict's prompt and the ratings its calls gave one criterion."""


class PairAgreement(BaseModel):
    """Cohen's kappa between two judge models on one label criterion, over the ``units``
    (verdicts) both labelled; ``agreement`` is the share of them they labelled alike."""

    judge_a: str
    judge_b: str
    units: int
    prompts: int
    agreement: float
    kappa: float | None
    ci_low: float | None
    ci_high: float | None


class CriterionAgreement(BaseModel):
    """Krippendorff's alpha of one criterion in one group, and kappa between its judge models.

    ``units`` and ``ratings`` count what alpha uses (verdicts with at least two ratings, and
    their ratings); ``missing`` counts the (verdict, rater) cells without a rating, over the
    verdicts with any call for the criterion and every rater seen in the group."""

    group: dict[str, str]
    criterion: str
    level: Level
    judges: list[str]
    raters: int
    units: int
    ratings: int
    missing: int
    prompts: int
    alpha: float | None
    ci_low: float | None
    ci_high: float | None
    pairs: list[PairAgreement] = []


def alpha(units: Sequence[Sequence[Rating | None]], level: Level) -> float | None:
    """Krippendorff's alpha of ratings given unit by unit (``None``: missing); None when it is
    undefined (no unit with two ratings, or no variation at all)."""
    if not any(sum(r is not None for r in unit) > 1 for unit in units):
        return None
    return _alpha(_unit_sums(units, level).sum(axis=0), level)


def judge_agreement(
    verdicts: Sequence[Verdict], by: Sequence[str] = ("rubric",)
) -> list[CriterionAgreement]:
    """Agreement per group (``by``, always with the rubric) and criterion, where at least two
    raters (judge models or samples) rated it."""
    keys = [*by, *(["rubric"] if "rubric" not in by else [])]
    found = []
    for key, group in group_verdicts(verdicts, keys).items():
        named = dict(zip(keys, key, strict=True))
        for criterion, (asked, units) in _by_criterion(group).items():
            row = _criterion_agreement(named, criterion, asked, units)
            found += [row] if row is not None else []
    return found


def _by_criterion(verdicts: Sequence[Verdict]) -> dict[str, tuple[set[Rater], list[Unit]]]:
    """Per criterion, in the order the calls name them: every rater asked about it, and each
    verdict with a call for it as a unit (a failed call, or one that left the criterion unscored,
    gives no rating)."""
    found: dict[str, tuple[set[Rater], list[Unit]]] = {}
    for verdict in verdicts:
        prompt = prompt_of(verdict)
        mine: dict[str, dict[Rater, Rating]] = {}
        for call in verdict.judges:
            rater = (call.model, call.sample)
            for criterion in call.criteria:
                asked, units = found.setdefault(criterion, (set(), []))
                asked.add(rater)
                if criterion not in mine:
                    mine[criterion] = {}
                    units.append((prompt, mine[criterion]))
                if call.error is None and criterion in call.values:
                    mine[criterion].setdefault(rater, call.values[criterion])
    return found


def _criterion_agreement(
    group: dict[str, str], criterion: str, asked: set[Rater], units: list[Unit]
) -> CriterionAgreement | None:
    """Alpha over every rater of the criterion, and kappa between each two judge models (label
    criteria); None when fewer than two raters were asked or nobody answered."""
    values = [value for _, given in units for value in given.values()]
    if len(asked) < 2 or not values:
        return None
    raters = sorted(asked)
    level: Level = "nominal" if any(isinstance(v, str) for v in values) else "interval"
    table = [[given.get(rater) for rater in raters] for _, given in units]
    sums = _unit_sums(table, level)
    pairable = np.array([len(given) > 1 for _, given in units])
    prompts = [prompt for (prompt, _), keep in zip(units, pairable, strict=True) if keep]
    point = _alpha(sums.sum(axis=0), level) if pairable.any() else None
    low = high = None
    if point is not None and len(set(prompts)) > 1:
        low, high = _alpha_interval(sums[pairable], prompts, level)
    judges = sorted({model for model, _ in raters})
    return CriterionAgreement(
        group=group,
        criterion=criterion,
        level=level,
        judges=judges,
        raters=len(raters),
        units=int(pairable.sum()),
        ratings=sum(len(given) for (_, given), keep in zip(units, pairable, strict=True) if keep),
        missing=len(units) * len(raters) - len(values),
        prompts=len(set(prompts)),
        alpha=point,
        ci_low=low,
        ci_high=high,
        pairs=[
            pair
            for a, b in combinations(judges, 2)
            if level == "nominal" and (pair := _kappa(a, b, units)) is not None
        ],
    )


def _unit_sums(units: Sequence[Sequence[Rating | None]], level: Level) -> np.ndarray:
    """Per unit, the sums alpha adds up: its observed disagreement (the squared distances
    between its ratings, over its ratings less one), then the counts per value (nominal) or the
    count, sum and sum of squares of its ratings (interval, centred for precision). A unit with
    fewer than two ratings is a row of zeros."""
    kept = [[r for r in unit if r is not None] for unit in units]
    kept = [unit if len(unit) > 1 else [] for unit in kept]
    if level == "nominal":
        categories = {c: i for i, c in enumerate(sorted({str(r) for u in kept for r in u}))}
        counts = np.zeros((len(kept), len(categories)))
        for row, unit in enumerate(kept):
            for rating in unit:
                counts[row, categories[str(rating)]] += 1
        m = counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            observed = np.nan_to_num((m**2 - (counts**2).sum(axis=1)) / (m - 1))
        return np.column_stack([observed, counts])
    everything = [float(r) for unit in kept for r in unit]
    centre = float(np.mean(everything)) if everything else 0.0
    sums = np.zeros((len(kept), 4))
    for row, unit in enumerate(kept):
        if unit:
            x = [float(r) - centre for r in unit]
            mean = sum(x) / len(x)
            spread = sum((v - mean) ** 2 for v in x)
            sums[row] = (2 * len(x) * spread / (len(x) - 1), len(x), sum(x), sum(v * v for v in x))
    return sums


def _disagreements(totals: np.ndarray, level: Level) -> tuple[np.ndarray, ...]:
    """Observed and expected disagreement as sums over pairs of ratings (n times Krippendorff's
    D_o, n(n - 1) times his D_e), and n, the pairable ratings; from summed unit sums, one total
    or a batch on leading axes. Alpha is 1 - (n - 1) observed / expected."""
    observed = totals[..., 0]
    if level == "nominal":
        counts = totals[..., 1:]
        n = counts.sum(axis=-1)
        return observed, n**2 - (counts**2).sum(axis=-1), n
    n, first, second = totals[..., 1], totals[..., 2], totals[..., 3]
    return observed, 2 * n * second - 2 * first**2, n


def _alpha(totals: np.ndarray, level: Level) -> float | None:
    observed, expected, n = _disagreements(totals, level)
    return float(1 - (n - 1) * observed / expected) if expected > 0 else None


def _alphas(totals: np.ndarray, level: Level) -> np.ndarray:
    """Alpha of each total in a batch; 1 where the ratings do not vary (all agree)."""
    observed, expected, n = _disagreements(totals, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, 1 - (n - 1) * observed / expected, 1.0)


def _by_prompt(rows: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
    """Rows summed per prompt (first axis), so resampling prompts resamples their units."""
    index: dict[str, int] = {}
    clusters = np.array([index.setdefault(p, len(index)) for p in prompts], dtype=int)
    per_prompt = np.zeros((len(index), *rows.shape[1:]))
    np.add.at(per_prompt, clusters, rows)
    return per_prompt


def _resampled(per_prompt: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The per-prompt rows summed over each resample of prompt indices (on the last axis of
    ``indices``): how often each prompt was drawn, times its rows, as one matrix product, which
    is several times faster than gathering the rows and summing them."""
    draws = indices.astype(int).reshape(-1, indices.shape[-1])
    prompts = len(per_prompt)
    flat = (draws + prompts * np.arange(len(draws))[:, None]).ravel()
    counts = np.bincount(flat, minlength=len(draws) * prompts).reshape(len(draws), prompts)
    sums: np.ndarray = counts @ per_prompt.reshape(prompts, -1)
    return sums.reshape(*indices.shape[:-1], *per_prompt.shape[1:])


def _alpha_interval(sums: np.ndarray, prompts: Sequence[str], level: Level) -> tuple[float, float]:
    per_prompt = _by_prompt(sums, prompts)

    def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        return _alphas(_resampled(per_prompt, indices), level)

    (low,), (high,) = bootstrap_intervals(len(per_prompt), statistic)
    return float(low), float(high)


def _majority(given: dict[Rater, Rating], model: str) -> str | None:
    """The model's label for a unit: the majority of its samples' ratings, a tie going to the
    tied label of its earliest sample; None when none of its samples gave one."""
    labels = [str(value) for (name, _), value in sorted(given.items()) if name == model]
    if not labels:
        return None
    counts = Counter(labels)
    top = max(counts.values())
    return next(label for label in labels if counts[label] == top)


def _kappa(model_a: str, model_b: str, units: Sequence[Unit]) -> PairAgreement | None:
    """Cohen's kappa of two models' labels on the units both labelled, with a bootstrap
    interval over their prompts; None when they share no unit."""
    pairs = [
        (prompt, a, b)
        for prompt, given in units
        if (a := _majority(given, model_a)) is not None
        and (b := _majority(given, model_b)) is not None
    ]
    if not pairs:
        return None
    code = {label: i for i, label in enumerate(sorted({x for _, a, b in pairs for x in (a, b)}))}
    cells = np.zeros((len(pairs), len(code), len(code)))
    cells[np.arange(len(pairs)), [code[a] for _, a, _ in pairs], [code[b] for *_, b in pairs]] = 1
    same = np.eye(len(code), dtype=bool)
    total = cells.sum(axis=0)
    agreement, kappa = confusion_statistics(total, same)[:2]
    prompts = [prompt for prompt, _, _ in pairs]
    low = high = None
    if len(code) > 1 and len(set(prompts)) > 1:
        per_prompt = _by_prompt(cells, prompts)

        def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
            matrices = _resampled(per_prompt, indices)
            return np.asarray(confusion_statistics(matrices, same)[..., 1])

        (low,), (high,) = bootstrap_intervals(len(per_prompt), statistic)
    return PairAgreement(
        judge_a=model_a,
        judge_b=model_b,
        units=len(pairs),
        prompts=len(set(prompts)),
        agreement=float(agreement),
        kappa=float(kappa) if len(code) > 1 else None,
        ci_low=None if low is None else float(low),
        ci_high=None if high is None else float(high),
    )
