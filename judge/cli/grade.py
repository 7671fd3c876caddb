"""``judge grade``: transcripts in, one verdict per (transcript, rubric) out, live, from
provider batches, or as a dry run's estimate; and the judge plan the flags name (``calibrate``
uses it too)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.text import Text

from judge.assembly import Reducer
from judge.budget import Budget, check_priced
from judge.cache import CachePolicy
from judge.cli.common import (
    CascadeOption,
    ExitCode,
    MapOption,
    RubricDirs,
    app,
    cli_settings,
    closing,
    open_output,
    print_problems,
    read_inputs,
    stderr,
)
from judge.column_map import ColumnMap
from judge.config import Settings
from judge.errors import UsageError
from judge.estimate import Estimate, estimate
from judge.grading import Grader
from judge.grouping import count_units, units
from judge.judges import OFFLINE_MODEL, Judge, judge_for
from judge.plan import JudgePlan, Order
from judge.rubric import Rubric
from judge.transcript import Transcript
from judge.verdict import Summary, Verdict


@app.command()
def grade(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Transcript files (.jsonl, .json; - for standard input), Inspect AI logs (.eval).",
            metavar="FILE...",
            show_default=False,
        ),
    ],
    rubric: Annotated[
        list[str],
        typer.Option(
            "--rubric", "-r", metavar="ID", help="Rubric id to grade against (repeatable)."
        ),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="Judge model: any litellm model string, or a profile of JUDGE_CONFIG (repeat "
            "for an ensemble). "
            f"Default: the built-in '{OFFLINE_MODEL}' judge.",
        ),
    ] = None,
    api_base: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="OpenAI-compatible server for the models (env JUDGE_API_BASE)."
        ),
    ] = None,
    cascade: CascadeOption = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option(
            metavar="MODEL",
            help="Ask this judge (model string or profile; repeatable, in order) when a judge "
            "declines to grade a call.",
        ),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, metavar="K", help="Samples per judge.")] = 1,
    reducer: Annotated[
        Reducer, typer.Option(help="majority (labels; mean of scores), any or all.")
    ] = Reducer.MAJORITY,
    order: Annotated[
        Order,
        typer.Option(
            help="Paired and group rubrics: show the transcripts in a seeded random order "
            "(recorded), in both orders (disagreement: an 'inconsistent' verdict), or fixed."
        ),
    ] = Order.RANDOM,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="FILE", help="Write verdicts here (JSONL); default stdout."
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Judge calls in flight (env JUDGE_CONCURRENCY)."),
    ] = None,
    cache: Annotated[
        CachePolicy,
        typer.Option(help="use: read and write; refresh: only write; bypass: neither."),
    ] = CachePolicy.USE,
    cache_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Cache directory (env JUDGE_CACHE_DIR).")
    ] = None,
    rubric_dir: RubricDirs = None,
    mapping: MapOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", metavar="", help="No progress bar or summary.")
    ] = False,
    max_cost: Annotated[
        float | None,
        typer.Option(
            metavar="USD",
            help="Spend at most this many dollars on judge calls: past it, the rest get "
            "error(budget); a rerun with more pays only for what is missing.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            metavar="",
            help="Make no judge call: print (JSON) the pairs, cache hits, calls to make, "
            "estimated tokens and cost per model.",
        ),
    ] = False,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            metavar="",
            help="Send the uncached calls as provider batches (half price, within 24 h), then "
            "grade from the cache; rerun the same command to resume after an interruption.",
        ),
    ] = False,
    poll_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.01, metavar="S", help="How often --batch polls (env JUDGE_BATCH_POLL_SECONDS)."
        ),
    ] = None,
) -> None:
    """Grade transcripts against rubrics and write one verdict per (transcript, rubric)."""
    settings = cli_settings(
        rubric_dir,
        api_base=api_base,
        concurrency=concurrency,
        cache_dir=cache_dir,
        batch_poll_seconds=poll_seconds,
    )
    if batch and cache != CachePolicy.USE:
        raise UsageError(
            "--batch fills the cache from provider batches and grades from it: "
            "leave out --cache or use --cache use"
        )
    if batch and max_cost is not None:
        from judge.batch import BATCH_WITHOUT_BUDGET

        raise UsageError(BATCH_WITHOUT_BUDGET)
    library = settings.rubric_library()
    rubrics = [library.get(rubric_id) for rubric_id in dict.fromkeys(rubric)]
    plan = plan_from_flags(
        settings,
        model,
        cascade,
        samples,
        reducer,
        keys=not dry_run,
        fallbacks=fallback,
        order=order,
    )
    budget = None
    if max_cost is not None:
        check_priced(plan)
        budget = Budget(max_cost)
    transcripts, problems = read_inputs(
        files, settings.max_transcript_chars, ColumnMap.parse(mapping or [])
    )
    print_problems(problems)
    if dry_run:
        _print_estimate(plan, settings, transcripts, rubrics, cache, out, quiet=quiet)
        return
    grader = Grader(
        plan,
        settings.open_cache(),
        concurrency=settings.concurrency,
        per_model_concurrency=settings.per_model_concurrency,
        policy=cache,
    )
    with open_output(out, sys.stdout) as sink:
        if batch:
            grading = _grade_batched(grader, transcripts, rubrics, sink, settings, quiet=quiet)
        else:
            grading = grade_all(
                grader, transcripts, rubrics, sink, show_progress=not quiet, budget=budget
            )
        by_rubric, first_error, totals = asyncio.run(closing(grader, grading))
    if not quiet:
        _print_summary(by_rubric, first_error, totals, len(problems))
    if totals.errors or problems:
        raise typer.Exit(ExitCode.INCOMPLETE)


def _print_estimate(
    plan: JudgePlan,
    settings: Settings,
    transcripts: list[Transcript],
    rubrics: list[Rubric],
    policy: CachePolicy,
    out: Path | None,
    *,
    quiet: bool,
) -> None:
    """The dry run: the estimate as JSON (to --out or stdout), and as a table on stderr."""
    from judge.views.tables import estimate_table

    async def run() -> Estimate:
        cache = settings.open_cache()
        try:
            return await estimate(units(transcripts, rubrics), plan, cache, policy)
        finally:
            await cache.close()
            for judge in plan.judges:
                await judge.aclose()

    result = asyncio.run(run())
    with open_output(out, sys.stdout) as sink:
        assert sink is not None
        sink.write(result.model_dump_json(indent=2) + "\n")
    if not quiet:
        stderr.print(estimate_table(result))


def plan_from_flags(
    settings: Settings,
    models: list[str] | None,
    cascade: str | None,
    samples: int,
    reducer: Reducer,
    *,
    keys: bool,
    fallbacks: list[str] | None = None,
    order: Order = Order.RANDOM,
) -> JudgePlan:
    """The plan --model or --cascade names (a --model that is a configured cascade is one),
    each judge with its fallbacks (its profile's, then --fallback's)."""
    if cascade is not None and models:
        raise UsageError("give --model or --cascade, not both")
    names = list(dict.fromkeys(models or [OFFLINE_MODEL]))
    if cascade is None and len(names) == 1 and names[0] in settings.cascades:
        cascade = ",".join(settings.cascades[names[0]])
    if cascade is not None:
        names = list(dict.fromkeys(name.strip() for name in cascade.split(",") if name.strip()))
        if len(names) < 2:
            raise UsageError(f"--cascade needs two or more judges, comma-separated: '{cascade}'")
    chains = {name: settings.fallbacks(name, fallbacks or []) for name in names}
    settings.check_judges([*names, *(f for chain in chains.values() for f in chain)], keys=keys)
    built: dict[str, Judge] = {}

    def built_judge(name: str) -> Judge:  # one judge a name, shared by every role it has
        if name not in built:
            built[name] = judge_for(settings.judge_profile(name))
        return built[name]

    judges = [built_judge(name) for name in names]
    by_judge = {
        built_judge(name).name: [built_judge(f) for f in chain] for name, chain in chains.items()
    }
    if cascade is not None:
        return JudgePlan.cascade(judges, samples, by_judge, order)
    return JudgePlan(judges, samples=samples, reducer=reducer, fallbacks=by_judge, order=order)


async def grade_all(
    grader: Grader,
    transcripts: list[Transcript],
    rubrics: list[Rubric],
    sink: IO[str] | None,
    *,
    show_progress: bool,
    collected: list[Verdict] | None = None,
    budget: Budget | None = None,
    settle: Callable[[Verdict], Verdict] | None = None,
) -> tuple[dict[str, Summary], str | None, Summary]:
    """Write each verdict as it finishes (to ``sink``, and to ``collected`` when a caller needs
    them all); keep only per-rubric and total counts and the first error, so memory stays flat
    for any number of transcripts. ``settle`` adjusts each verdict first (batch mode's)."""
    by_rubric: dict[str, Summary] = {}
    totals = Summary()
    first_error: str | None = None
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        disable=not show_progress,
        transient=True,
    )
    with progress:
        task = progress.add_task("grading", total=count_units(transcripts, rubrics))
        async for graded in grader.grade_many(transcripts, rubrics, budget=budget):
            verdict = settle(graded) if settle is not None else graded
            if sink is not None:
                sink.write(verdict.model_dump_json() + "\n")
                sink.flush()
            if collected is not None:
                collected.append(verdict)
            by_rubric.setdefault(verdict.rubric.id, Summary()).add(verdict)
            totals.add(verdict)
            if first_error is None and verdict.error is not None:
                first_error = verdict.error.message
            progress.advance(task)
    return by_rubric, first_error, totals


async def _grade_batched(
    grader: Grader,
    transcripts: list[Transcript],
    rubrics: list[Rubric],
    sink: IO[str] | None,
    settings: Settings,
    *,
    quiet: bool,
) -> tuple[dict[str, Summary], str | None, Summary]:
    """Batch mode: the uncached calls go to provider batches (kept in a ledger under the cache
    directory, so a rerun of the same command resumes them), then every pair is graded from the
    cache, live where a batch gave no result."""
    from judge.batch import BatchOptions, FileLedger, prewarm

    ledger = FileLedger(settings.cache_dir / "batches")
    options = BatchOptions(
        poll_seconds=settings.batch_poll_seconds,
        max_requests=settings.batch_max_requests,
        concurrency=settings.concurrency,
    )

    def report(line: str) -> None:
        if not quiet:
            stderr.print(Text(line), highlight=False)

    outcome = await prewarm(
        lambda: units(transcripts, rubrics), grader.plan, grader.cache, ledger, options, report
    )
    graded = await grade_all(
        grader, transcripts, rubrics, sink, show_progress=not quiet, settle=outcome.settle
    )
    if outcome.state is not None:
        await ledger.discard(outcome.state.calls)
    return graded


def _print_summary(
    by_rubric: dict[str, Summary], first_error: str | None, totals: Summary, invalid_records: int
) -> None:
    from judge.views.tables import grade_summary

    for renderable in grade_summary(by_rubric, first_error, totals, invalid_records):
        stderr.print(renderable)
