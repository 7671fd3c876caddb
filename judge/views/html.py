"""One self-contained HTML report of a set of verdicts: ``render_html(verdicts) -> str``.

The page needs nothing but itself: plots are inline SVG (``judge.views.plots``), the style sheet is
inline, and it has no script at all; its Content-Security-Policy forbids scripts and every fetch,
so even a mistake in escaping could not run code or reach the network. What it shows, in order:
the flag rates per model and rubric by category, the paired comparison of two models, the trend
across checkpoints, the accounting of every status, the judges' provenance (with how far judges
and samples agree), agreement with gold labels, and the flagged transcripts with their evidence
marked.

The numbers come from ``judge.reports``, ``judge.agreement`` and ``judge.calibration``; this
module only lays them out.
Jinja2 renders the page because it escapes every value by default (``autoescape``): a transcript,
an explanation or a model name can never become markup by someone forgetting an ``escape()``.
The only markup inserted as is: the SVG that ``judge.views.plots`` serialized itself and the
transcript text that ``judge.views.evidence`` escaped around its ``<mark>`` tags.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from markupsafe import Markup

from judge import reports
from judge.agreement import judge_agreement
from judge.calibration import LabelAgreement, ScoreAgreement, agreement, with_gold
from judge.rubric import Rubric
from judge.transcript import Transcript
from judge.verdict import Evidence, Status, Verdict
from judge.views import evidence, plots

UNCATEGORISED = "uncategorised"


@dataclass
class Message:
    """One message of a drill-down transcript, escaped, with its evidence marked."""

    role: str
    index: int
    html: Markup


@dataclass
class Shown:
    """A transcript as the drill-down shows it (``messages`` empty when it was not given)."""

    id: str
    messages: list[Message] = field(default_factory=list)


@dataclass
class Example:
    """One flagged verdict in the drill-down."""

    verdict: Verdict
    new: bool
    transcripts: list[Shown]
    quotes: list[tuple[Evidence, bool]]


@dataclass
class DrillDown:
    """A rubric's flagged verdicts, the first ``cap`` of them."""

    rubric: str
    category: str
    graded: int
    examples: list[Example]
    more: int


def render_html(
    verdicts: Sequence[Verdict],
    *,
    by: Sequence[str] = ("model", "rubric"),
    compare: tuple[str, str] | None = None,
    order: Sequence[str] = (),
    rubrics: Iterable[Rubric] = (),
    categories: Mapping[str, str] | None = None,
    transcripts: Iterable[Transcript] = (),
    drill_down: int = 20,
    title: str = "judge report",
) -> str:
    """The report as one HTML document.

    ``by`` groups the status table (as ``judge report --by``); ``compare`` is (base, tuned) for
    the paired comparison, by default the first and last checkpoint when the models have an order
    (``order``, else ``metadata.step``). ``rubrics`` (or ``categories``, rubric id -> category)
    group rubrics by category and give calibration its label sets. ``transcripts`` show the
    flagged transcripts' text; without them the drill-down shows the evidence quotes alone.
    ``drill_down`` caps the flagged verdicts shown per rubric.
    """
    known = {rubric.id: rubric for rubric in rubrics}
    category_of = {**{r.id: r.category for r in known.values()}, **(categories or {})}
    by_category: dict[str, list[str]] = defaultdict(list)
    for rubric_id in sorted({v.rubric.id for v in verdicts}):
        by_category[category_of.get(rubric_id, UNCATEGORISED)].append(rubric_id)
    by_category = dict(sorted(by_category.items()))
    rubric_order = [rubric_id for ids in by_category.values() for rubric_id in ids]

    ordered = reports.checkpoints(verdicts, order)
    named = {str(v.metadata.get("model", "(unknown)")) for v in verdicts}
    models = [c.model for c in ordered] + sorted(named - {c.model for c in ordered})
    cells = reports.rates(verdicts, ["model", "rubric"])
    rubric_rank = {rubric_id: rank for rank, rubric_id in enumerate(rubric_order)}
    model_rank = {model: rank for rank, model in enumerate(models)}
    cells.sort(key=lambda r: (rubric_rank[r.group["rubric"]], model_rank[r.group["model"]]))
    table = cells if list(by) == ["model", "rubric"] else reports.rates(verdicts, by)
    pair = compare or ((ordered[0].model, ordered[-1].model) if len(ordered) > 1 else None)
    comparisons = reports.compare(verdicts, *pair) if pair else []
    comparisons.sort(key=lambda c: rubric_rank[c.rubric])
    points = reports.trend(cells, ordered) if len(ordered) > 1 else []
    trending = {p.rubric for p in points if p.rate is not None}
    points = [p for p in points if p.rubric in trending]
    return _template().render(
        title=title,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        totals={
            name: sum(getattr(cell, name) for cell in cells)
            for name in (
                "verdicts",
                "graded",
                "flagged",
                "not_applicable",
                "inconsistent",
                "errors",
            )
        },
        models=models,
        categories=by_category,
        category_of=category_of,
        cells=cells,
        by=list(by),
        table=table,
        pair=pair,
        comparisons=comparisons,
        ordered=ordered,
        ordered_by="given" if order else "step",
        points=points,
        usage=reports.judge_usage(verdicts),
        confidence=reports.confidence_summary(verdicts),
        agreement=judge_agreement(verdicts, ["rubric"]),
        calibration=_calibration(verdicts, known, rubric_order),
        uncalibrated=_uncalibrated(verdicts, known),
        drill_downs=_drill_downs(
            verdicts, rubric_order, category_of, model_rank, pair, transcripts, drill_down
        ),
        plots=_plots(cells, models, by_category, comparisons, pair, points),
    )


@cache
def _template() -> Template:
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(pct=_pct, pp=_pp, ci=_ci, decimal=_decimal, decimal_ci=_decimal_ci)
    return environment.get_template("report.html.j2")


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _pp(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} pp"


def _ci(low: float | None, high: float | None, points: bool = False) -> str:
    if low is None or high is None:
        return "-"
    if points:
        return f"{low * 100:+.1f} to {high * 100:+.1f} pp"
    return f"{low * 100:.1f}\u2013{high * 100:.1f}%"


def _decimal(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _decimal_ci(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{low:.3f} to {high:.3f}"


def _plots(
    cells: list[reports.RateRow],
    models: list[str],
    categories: dict[str, list[str]],
    comparisons: list[reports.Comparison],
    pair: tuple[str, str] | None,
    points: list[reports.TrendPoint],
) -> dict[str, Markup]:
    made: dict[str, Markup] = {}
    if any(cell.rate is not None for cell in cells):
        made["overview"] = Markup(
            plots.rate_overview(
                cells,
                models,
                categories,
                ident="plot-overview",
                title="Flag rate by rubric and model",
                description=f"Dot-and-whisker plot of the flag rate with its 95% interval for "
                f"{len(models)} models on {sum(map(len, categories.values()))} rubrics, one "
                "panel per category; the table beside it has every number.",
            )
        )
    if comparisons and pair:
        made["forest"] = Markup(
            plots.forest(
                comparisons,
                ident="plot-forest",
                title=f"Paired difference in flag rate, {pair[1]} minus {pair[0]}",
                description="Forest plot of the difference in flag rate on shared prompts per "
                "rubric, with paired bootstrap 95% intervals, a zero line and the number of "
                "pairs; the table beside it has every number.",
            )
        )
    if points:
        trending = {p.rubric for p in points}
        made["trend"] = Markup(
            plots.trend(
                points,
                {c: [r for r in rubrics if r in trending] for c, rubrics in categories.items()},
                ident="plot-trend",
                title="Flag rate across checkpoints",
                description="Line plots of each rubric's flag rate with 95% intervals across "
                "checkpoints in training order, one panel per category; the table beside it "
                "has every number.",
            )
        )
    return made


def _calibration(
    verdicts: Sequence[Verdict], known: Mapping[str, Rubric], rubric_order: list[str]
) -> list[LabelAgreement | ScoreAgreement]:
    """Agreement with the reference values verdicts carry (``judge.calibration.gold_of``), per
    rubric that has any."""
    found: list[LabelAgreement | ScoreAgreement] = []
    for rubric_id in rubric_order:
        rubric = known.get(rubric_id)
        mine = with_gold(rubric, verdicts) if rubric is not None else []
        if rubric is not None and mine:
            found.append(agreement(rubric, mine))
    return found


def _uncalibrated(verdicts: Sequence[Verdict], known: Mapping[str, Rubric]) -> list[str]:
    """Rubrics whose verdicts carry gold labels but whose rubric was not given."""
    return sorted(
        {v.rubric.id for v in verdicts if "gold" in v.metadata or "gold_scores" in v.metadata}
        - set(known)
    )


def _drill_downs(
    verdicts: Sequence[Verdict],
    rubric_order: list[str],
    category_of: Mapping[str, str],
    model_rank: Mapping[str, int],
    pair: tuple[str, str] | None,
    transcripts: Iterable[Transcript],
    cap: int,
) -> list[DrillDown]:
    """Per rubric, its flagged verdicts: those flagged for the tuned model on a prompt the base
    model was graded and not flagged on come first (marked new), then the tuned model's others,
    then by model order and id."""
    texts = {t.key: t for t in transcripts}
    flagged: dict[str, list[Verdict]] = defaultdict(list)
    graded: dict[str, int] = defaultdict(int)
    base_graded: dict[str, set[str]] = defaultdict(set)
    base_flagged: dict[str, set[str]] = defaultdict(set)
    for v in verdicts:
        if v.status != Status.GRADED:
            continue
        graded[v.rubric.id] += 1
        if v.flagged:
            flagged[v.rubric.id].append(v)
        if pair and v.metadata.get("model") == pair[0]:
            base_graded[v.rubric.id].add(reports.prompt_of(v))
            if v.flagged:
                base_flagged[v.rubric.id].add(reports.prompt_of(v))

    def is_new(v: Verdict) -> bool:
        prompt = reports.prompt_of(v)
        return bool(
            pair
            and v.metadata.get("model") == pair[1]
            and prompt in base_graded[v.rubric.id]
            and prompt not in base_flagged[v.rubric.id]
        )

    tuned = pair[1] if pair else None

    def rank(v: Verdict) -> tuple[bool, bool, int, str]:
        model = str(v.metadata.get("model", "(unknown)"))
        return (not is_new(v), model != tuned, model_rank[model], v.transcript_id)

    sections = []
    for rubric_id in rubric_order:
        chosen = sorted(flagged.get(rubric_id, []), key=rank)
        sections.append(
            DrillDown(
                rubric=rubric_id,
                category=category_of.get(rubric_id, UNCATEGORISED),
                graded=graded[rubric_id],
                examples=[_example(v, is_new(v), texts) for v in chosen[:cap]],
                more=max(0, len(chosen) - cap),
            )
        )
    return sections


def _example(verdict: Verdict, new: bool, texts: Mapping[str, Transcript]) -> Example:
    """The verdict with its transcripts' text (where given), each cited quote marked in the
    message it cites."""
    ids = verdict.members or [verdict.transcript_id]
    shown = []
    marked: set[int] = set()
    for member, transcript_id in enumerate(ids):
        transcript = texts.get(transcript_id)
        view = Shown(id=transcript_id)
        for index, message in enumerate(transcript.messages if transcript else ()):
            cited = [
                (number, e)
                for number, e in enumerate(verdict.evidence)
                if e.message == index and (e.transcript or 0) == member
            ]
            html, _ = evidence.mark(message.text, [e.quote for _, e in cited])
            marked.update(n for n, e in cited if evidence.find(message.text, e.quote))
            view.messages.append(Message(role=message.role, index=index, html=html))
        shown.append(view)
    quotes = [(e, number in marked) for number, e in enumerate(verdict.evidence)]
    return Example(verdict=verdict, new=new, transcripts=shown, quotes=quotes)
