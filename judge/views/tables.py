"""Terminal views: rich tables and lines for the CLI's summaries, reports and agreement numbers.

Every text that did not come from this module (rubric ids, model names, error messages, labels)
enters as ``rich.text.Text`` or a table cell, never as markup, so brackets in it print as they are.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from judge.agreement import CriterionAgreement
from judge.calibration import LabelAgreement, ScoreAgreement
from judge.estimate import Estimate
from judge.reports import Comparison, RateRow
from judge.verdict import Summary


def grade_summary(
    by_rubric: dict[str, Summary], first_error: str | None, totals: Summary, invalid_records: int
) -> list[RenderableType]:
    """Per-rubric counts of a grading run, errors by kind, invalid records, calls and cost."""
    table = Table(title="judge summary", title_justify="left")
    for column in ("rubric", "graded", "flagged", "flag rate", "not applicable", "errors"):
        table.add_column(column, justify="left" if column == "rubric" else "right")
    for rubric_id, counts in sorted(by_rubric.items()):
        rate = f"{counts.flagged / counts.graded:.1%}" if counts.graded else "-"
        table.add_row(
            Text(rubric_id),
            str(counts.graded),
            str(counts.flagged),
            rate,
            str(counts.not_applicable),
            str(counts.errors),
        )
    lines: list[RenderableType] = [table]
    if totals.errors_by_kind:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(totals.errors_by_kind.items()))
        lines.append(Text(f"errors by kind: {kinds}"))
        lines.append(Text(f"first error: {first_error}"))
    if invalid_records:
        lines.append(Text(f"{invalid_records} invalid input record(s) were skipped", style="red"))
    cost = f"${totals.cost_usd:.4f}"
    if totals.unpriced_calls:
        cost += f" + {totals.unpriced_calls} unpriced call(s) (no price known for the model)"
    lines.append(
        Text(
            f"judge calls: {totals.judge_calls}, cache hits: {totals.cache_hits}, "
            f"tokens: {totals.tokens}, cost: {cost}"
        )
    )
    extras = {
        "inconsistent in both orders": totals.inconsistent,
        "escalated past a cascade's first stage": totals.escalated,
        "answered by a fallback judge": totals.fallbacks,
        "input tokens from the provider's prompt cache": totals.cached_input_tokens,
    }
    if any(extras.values()):
        lines.append(Text(", ".join(f"{what}: {n}" for what, n in extras.items() if n)))
    return lines


def estimate_table(estimate: Estimate) -> Table:
    """A dry run per judge model: calls, cache hits, calls to make, tokens, cost."""
    table = Table(
        title=f"dry run: {estimate.pairs} pairs, {estimate.not_applicable} not applicable",
        title_justify="left",
    )
    columns = ("judge", "calls", "cache hits", "to make", "input tokens", "output tokens", "cost")
    for column in columns:
        table.add_column(column, justify="left" if column == "judge" else "right")
    for model in estimate.models:
        cost = "unknown price" if model.cost_usd is None else f"${model.cost_usd:.4f}"
        table.add_row(
            Text(model.model),
            str(model.calls),
            str(model.cache_hits),
            str(model.calls_to_make),
            f"{model.input_tokens:,}",
            f"{model.output_tokens:,}",
            cost,
        )
    unpriced = " + unknown" if estimate.unpriced_models else ""
    table.caption = f"estimated total: ${estimate.cost_usd:.4f}{unpriced} (re-asks not included)"
    return table


def rates_table(rows: list[RateRow], keys: list[str]) -> Table:
    """Flag rates with their intervals and every status count, one row per group."""
    table = Table(title=f"flag rates by {', '.join(keys) or 'all'}", title_justify="left")
    orders = any(row.inconsistency_rate is not None for row in rows)
    columns = [*keys, "graded", "flagged", "rate", "95% CI", "prompts", "n/a", "errors"]
    for column in [*columns, *(["inconsistent (both orders)"] if orders else [])]:
        table.add_column(column, justify="left" if column in keys else "right")
    for row in rows:
        rate = f"{row.rate:.1%}" if row.rate is not None else "-"
        interval = (
            f"{row.ci_low:.1%}-{row.ci_high:.1%}"
            + (" (boot)" if "bootstrap" in row.interval else "")
            if row.ci_low is not None and row.ci_high is not None
            else "-"
        )
        errors = ", ".join(f"{k} {n}" for k, n in row.errors_by_kind.items()) or "0"
        table.add_row(
            *[Text(row.group[k]) for k in keys],
            str(row.graded),
            str(row.flagged),
            rate,
            interval,
            str(row.prompts),
            str(row.not_applicable),
            Text(errors),
            *([_inconsistency(row)] if orders else []),
        )
    return table


def _inconsistency(row: RateRow) -> str:
    if row.inconsistency_rate is None:
        return "-"
    return f"{row.inconsistent} ({row.inconsistency_rate:.1%})"


def comparison_lines(comparisons: list[Comparison]) -> list[RenderableType]:
    """One line per rubric: B's rate minus A's on shared prompts, with its paired interval."""
    return [
        Text(
            f"{c.rubric}: {c.model_b} {c.rate_b:.1%} vs {c.model_a} {c.rate_a:.1%} on "
            f"{c.prompts} shared prompts: difference {c.difference:+.1%} "
            f"(95% CI {c.ci_low:+.1%} to {c.ci_high:+.1%}, paired bootstrap)"
        )
        for c in comparisons
    ]


def _number(value: float | None, low: float | None, high: float | None) -> str:
    """A statistic to three decimals with its interval in brackets; "-" when it is undefined."""
    if value is None:
        return "-"
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{value:.3f}{interval}"


def judge_agreement_tables(rows: list[CriterionAgreement]) -> list[Table]:
    """Krippendorff's alpha per group and criterion, and Cohen's kappa per pair of judge models
    (each with its bootstrap 95% interval over prompts); nothing when no criterion had two
    raters."""
    if not rows:
        return []
    keys = list(rows[0].group)
    alpha = Table(
        title="agreement between judges: Krippendorff's alpha [95% CI, bootstrap over prompts]",
        title_justify="left",
    )
    for column in [*keys, "criterion", "level", "raters", "units", "missing", "alpha"]:
        alpha.add_column(
            column, justify="left" if column in {*keys, "criterion", "level"} else "right"
        )
    kappa = Table(
        title="Cohen's kappa between judge models (each model's majority over its samples)",
        title_justify="left",
    )
    numbers = ["units", "agree", "kappa"]
    for column in [*keys, "criterion", "judge a", "judge b", *numbers]:
        kappa.add_column(column, justify="right" if column in numbers else "left")
    for row in rows:
        group = [Text(row.group[k]) for k in keys]
        alpha.add_row(
            *group,
            Text(row.criterion),
            row.level,
            f"{row.raters} ({len(row.judges)} judge{'s' * (len(row.judges) > 1)})",
            str(row.units),
            str(row.missing),
            _number(row.alpha, row.ci_low, row.ci_high),
        )
        for pair in row.pairs:
            kappa.add_row(
                *group,
                Text(row.criterion),
                Text(pair.judge_a),
                Text(pair.judge_b),
                str(pair.units),
                f"{pair.agreement:.1%}",
                _number(pair.kappa, pair.ci_low, pair.ci_high),
            )
    return [alpha, kappa] if kappa.row_count else [alpha]


def _ci(intervals: dict[str, tuple[float, float]], name: str) -> str:
    interval = intervals.get(name)
    return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""


def agreement_view(result: LabelAgreement | ScoreAgreement) -> list[RenderableType]:
    """Accuracy, kappa, per-class scores and the confusion matrix; or correlations and MAE;
    each with its bootstrap 95% interval in brackets."""
    ci = result.intervals
    if isinstance(result, LabelAgreement):
        table = Table("label", "precision", "recall", "F1 [95% CI]", "support")
        for label, scores in result.per_class.items():
            table.add_row(
                Text(label),
                f"{scores['precision']:.3f}",
                f"{scores['recall']:.3f}",
                f"{scores['f1']:.3f}{_ci(ci, f'f1.{label}')}",
                str(int(scores["support"])),
            )
        confusion = Table("gold \\ judge", *result.labels)
        for label, row in zip(result.labels, result.confusion, strict=True):
            confusion.add_row(Text(label), *(str(n) for n in row))
        headline = (
            f"accuracy {result.accuracy:.3f}{_ci(ci, 'accuracy')}, Cohen's kappa "
            f"{result.kappa:.3f}{_ci(ci, 'kappa')}, binary (flagged vs not) accuracy "
            f"{result.binary_accuracy:.3f}{_ci(ci, 'binary_accuracy')} (95% CIs, bootstrap "
            "over prompts)"
        )
        return [Text(headline), table, confusion]
    lines: list[RenderableType] = [
        Text(
            f"{name}: Pearson {scores['pearson']:.3f}{_ci(ci, f'{name}.pearson')}, Spearman "
            f"{scores['spearman']:.3f}{_ci(ci, f'{name}.spearman')}, MAE {scores['mae']:.2f}"
            f"{_ci(ci, f'{name}.mae')}"
        )
        for name, scores in result.criteria.items()
    ]
    lines.append(
        Text(
            f"flag agreement {result.flag_accuracy:.3f}{_ci(ci, 'flag_accuracy')} (kappa "
            f"{result.flag_kappa:.3f}); flag rate: reference {result.reference_rate:.1%}, judge "
            f"{result.judge_rate:.1%} (95% CIs, bootstrap over prompts)"
        )
    )
    return lines
