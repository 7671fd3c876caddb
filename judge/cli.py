"""The ``judge`` command line: parse input, call the library, render results.

Exit codes: 0 when every transcript got a graded or not-applicable verdict; 1 when any verdict is
an error or any input record was invalid (everything else was still graded and written); 2 for a
usage error, with a message that says what to fix. ``main`` is the one place exceptions become exit
codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import IO, Annotated, TypeVar

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.text import Text

from judge.assembly import Reducer
from judge.budget import Budget, check_priced
from judge.cache import CachePolicy
from judge.column_map import ColumnMap
from judge.config import Settings
from judge.datasets import Dataset, Split
from judge.errors import TranscriptError, UsageError
from judge.estimate import Estimate, estimate
from judge.grading import Grader
from judge.grouping import count_units, units
from judge.judges import OFFLINE_MODEL, Judge, judge_for
from judge.plan import JudgePlan, Order
from judge.rubric import Rubric, RubricLibrary, default_rubric_dir, load_rubric
from judge.transcript import Transcript
from judge.transcript_files import STDIN, read_transcripts
from judge.verdict import Summary, Verdict

T = TypeVar("T")

app = typer.Typer(
    help="Grade model transcripts for misgeneralization with LLM judges.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
rubrics_app = typer.Typer(help="List, show and validate rubrics.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or clear the verdict cache.", no_args_is_help=True)
app.add_typer(rubrics_app, name="rubrics")
app.add_typer(cache_app, name="cache")

stderr = Console(stderr=True, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"judge {version('judge')}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            is_eager=True,
            callback=_print_version,
            help="Print the version.",
        ),
    ] = False,
) -> None:
    """Grade model transcripts for misgeneralization with LLM judges."""


def _stdout() -> Console:
    """Tables on stdout, full width when piped (rich would assume 80 columns)."""
    return Console() if sys.stdout.isatty() else Console(width=160)


RubricDirs = Annotated[
    list[Path] | None,
    typer.Option(
        "--rubric-dir",
        metavar="DIR",
        help="Extra rubric directory (overrides shipped rubrics by id).",
    ),
]


MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        metavar="TARGET=SOURCE,...",
        help="Read other field or column names, e.g. prompt=question,response=answer,"
        "model=model_id (dotted targets nest: gold.aligned=aligned).",
    ),
]


CascadeOption = Annotated[
    str | None,
    typer.Option(
        metavar="A,B",
        help="Judges cheapest first (model strings or profiles): each decides what it is "
        "confident about (the rubric's cascade thresholds), the next one the rest.",
    ),
]


class ExitCode:
    OK = 0
    INCOMPLETE = 1
    USAGE = 2


def _settings(rubric_dirs: list[Path] | None = None, **overrides: object) -> Settings:
    settings = _load_settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if rubric_dirs:
        updates["rubric_dirs"] = [*settings.rubric_dirs, *rubric_dirs]
    return settings.model_copy(update=updates)


def _read_inputs(
    files: Sequence[Path], max_chars: int, mapping: ColumnMap | None = None
) -> tuple[list[Transcript], list[str]]:
    """Every transcript of the files, and every invalid record as 'file: line N, field F: why'."""
    for path in files:
        if path != STDIN and not path.is_file():
            problem = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise UsageError(f"transcript file {path} {problem}")
    transcripts: list[Transcript] = []
    problems: list[str] = []
    for path in files:
        name = "<stdin>" if path == STDIN else str(path)
        try:
            for item in read_transcripts(path, max_chars=max_chars, mapping=mapping):
                if isinstance(item, TranscriptError):
                    problems.append(f"{name}: {item}")
                else:
                    transcripts.append(item)
        except OSError as exc:
            raise UsageError(f"cannot read transcript file {name}: {exc.strerror}") from None
    if not transcripts and not problems:
        names = ", ".join("<stdin>" if p == STDIN else str(p) for p in files)
        raise UsageError(
            f"no transcripts to grade: {names} holds no records (JSON Lines, one object a line, "
            "or a .json file with an object or a list of them)"
        )
    return transcripts, problems


def _print_problems(problems: list[str], shown: int = 50) -> None:
    for problem in problems[:shown]:
        stderr.print(Text("invalid record ", style="red") + Text(problem))
    if len(problems) > shown:
        stderr.print(Text(f"... and {len(problems) - shown} more invalid records", style="red"))


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
) -> None:
    """Grade transcripts against rubrics and write one verdict per (transcript, rubric)."""
    settings = _settings(
        rubric_dir, api_base=api_base, concurrency=concurrency, cache_dir=cache_dir
    )
    library = settings.rubric_library()
    rubrics = [library.get(rubric_id) for rubric_id in dict.fromkeys(rubric)]
    plan = _plan(
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
    transcripts, problems = _read_inputs(
        files, settings.max_transcript_chars, ColumnMap.parse(mapping or [])
    )
    _print_problems(problems)
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
    with _open_output(out, sys.stdout) as sink:
        grading = _grade_all(
            grader, transcripts, rubrics, sink, show_progress=not quiet, budget=budget
        )
        by_rubric, first_error = asyncio.run(_closing(grader, grading))
    if not quiet:
        _print_summary(by_rubric, first_error, grader.totals, len(problems))
    if grader.totals.errors or problems:
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
    with _open_output(out, sys.stdout) as sink:
        assert sink is not None
        sink.write(result.model_dump_json(indent=2) + "\n")
    if not quiet:
        stderr.print(estimate_table(result))


def _plan(
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


async def _grade_all(
    grader: Grader,
    transcripts: list[Transcript],
    rubrics: list[Rubric],
    sink: IO[str] | None,
    *,
    show_progress: bool,
    collected: list[Verdict] | None = None,
    budget: Budget | None = None,
) -> tuple[dict[str, Summary], str | None]:
    """Write each verdict as it finishes (to ``sink``, and to ``collected`` when a caller needs
    them all); keep only per-rubric counts and the first error, so memory stays flat for any
    number of transcripts."""
    by_rubric: dict[str, Summary] = {}
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
        async for verdict in grader.grade_many(transcripts, rubrics, budget=budget):
            if sink is not None:
                sink.write(verdict.model_dump_json() + "\n")
                sink.flush()
            if collected is not None:
                collected.append(verdict)
            by_rubric.setdefault(verdict.rubric.id, Summary()).add(verdict)
            if first_error is None and verdict.error is not None:
                first_error = verdict.error.message
            progress.advance(task)
    return by_rubric, first_error


def _print_summary(
    by_rubric: dict[str, Summary], first_error: str | None, totals: Summary, invalid_records: int
) -> None:
    from judge.views.tables import grade_summary

    for renderable in grade_summary(by_rubric, first_error, totals, invalid_records):
        stderr.print(renderable)


@app.command()
def report(
    files: Annotated[
        list[Path],
        typer.Argument(help="Verdict files (JSONL), e.g. from grade.", metavar="FILE..."),
    ],
    by: Annotated[
        str,
        typer.Option(
            metavar="KEYS", help="Group by any of: model, rubric, tag, judge (comma-separated)."
        ),
    ] = "model,rubric",
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(
            metavar="BASE TUNED", help="Two models to compare on shared prompts (metadata.model)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="JSON instead of tables.")
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Write a self-contained HTML report with plots here."),
    ] = None,
    order: Annotated[
        str,
        typer.Option(metavar="A,B,C", help="Checkpoints in training order (--html)."),
    ] = "",
    transcripts: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE", help="Transcript files whose text the HTML report shows (repeatable)."
        ),
    ] = None,
    drill_down: Annotated[
        int, typer.Option(min=0, metavar="N", help="Flagged transcripts shown per rubric (--html).")
    ] = 20,
    rubric_dir: RubricDirs = None,
) -> None:
    """Flag rates with 95% intervals, counts of every status, paired model comparisons, and how
    far the judges agree (Krippendorff's alpha, Cohen's kappa) where there are several."""
    from judge.agreement import judge_agreement
    from judge.reports import compare as compare_models
    from judge.reports import rates, read_verdicts, report_json, unpaired

    verdicts = read_verdicts(files)
    keys = [key.strip() for key in by.split(",") if key.strip()]
    notes = unpaired(verdicts, *compare) if compare else []
    if notes and notes[0].startswith("no verdict is of model"):
        raise UsageError(f"--compare: {notes[0]}")
    for note in notes:
        stderr.print(Text(f"no comparison for {note}", style="yellow"))
    if html is not None:
        from judge.views.html import render_html

        settings = _settings(rubric_dir)
        texts, problems = (
            _read_inputs(transcripts, settings.max_transcript_chars) if transcripts else ([], [])
        )
        _print_problems(problems)
        page = render_html(
            verdicts,
            by=keys,
            compare=compare,
            order=[name.strip() for name in order.split(",") if name.strip()],
            rubrics=settings.rubric_library(),
            transcripts=texts,
            drill_down=drill_down,
        )
        html.write_text(page, encoding="utf-8")
        stderr.print(f"wrote {html} ({len(verdicts)} verdicts)", highlight=False)
        return
    rows = rates(verdicts, keys)
    comparisons = compare_models(verdicts, *compare) if compare else []
    agreement = judge_agreement(verdicts, keys)
    if as_json:
        typer.echo(report_json(rows, comparisons, agreement))
        return
    from judge.views.tables import comparison_lines, judge_agreement_tables, rates_table

    out = _stdout()
    out.print(rates_table(rows, keys))
    for line in comparison_lines(comparisons):
        out.print(line)
    for table in judge_agreement_tables(agreement):
        out.print(table)


@app.command()
def calibrate(
    labels: Annotated[
        list[Path] | None,
        typer.Option(
            "--labels",
            metavar="FILE",
            help="Your reference data: transcript files whose records carry 'gold' (a label, a "
            "score, or criterion: value) (repeatable; needs --rubric).",
        ),
    ] = None,
    rubric_id: Annotated[
        str | None,
        typer.Option("--rubric", "-r", metavar="ID", help="The rubric --labels calibrates."),
    ] = None,
    mapping: MapOption = None,
    dataset: Annotated[
        Dataset, typer.Option(help="Without --labels: a built-in reference set.")
    ] = Dataset.XSTEST,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Where the built-in sets are: the shared data folder holding xstest/ and "
            "emergent_misalignment/ (env JUDGE_SHARED_DATA; default ../shared/data).",
        ),
    ] = None,
    split: Annotated[
        Split, typer.Option(help="Part of the data (xstest has dev/heldout).")
    ] = Split.ALL,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", metavar="MODEL", help="Judge model(s); default offline."),
    ] = None,
    cascade: CascadeOption = None,
    api_base: Annotated[
        str | None, typer.Option(metavar="URL", help="OpenAI-compatible server.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Use the first N records.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="FILE", help="Also write the verdicts here (JSONL)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="JSON instead of tables.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="No progress.")] = False,
) -> None:
    """Measure a judge against reference labels or scores, with 95% intervals (grading through
    the cache): your own labelled transcripts (--labels), or a built-in set (--dataset)."""
    from judge.calibration import agreement
    from judge.views.tables import agreement_view

    settings = _settings(api_base=api_base)
    library = settings.rubric_library()
    if labels:
        if rubric_id is None:
            raise UsageError("--labels needs --rubric: the rubric the labels are for")
        rubric = library.get(rubric_id)
        transcripts, problems = _read_inputs(
            labels, settings.max_transcript_chars, ColumnMap.parse(mapping or [])
        )
        _print_problems(problems)
        source = ", ".join(str(path) for path in labels)
    else:
        transcripts, rubric = _reference_set(dataset, data_dir, split, library)
        source = f"{dataset} ({split})"
    transcripts = transcripts[:limit] if limit else transcripts
    plan = _plan(settings, model, cascade, 1, Reducer.MAJORITY, keys=True)
    grader = Grader(plan, settings.open_cache(), concurrency=settings.concurrency)
    verdicts: list[Verdict] = []
    with _open_output(out) as sink:
        grading = _grade_all(
            grader, transcripts, [rubric], sink, show_progress=not quiet, collected=verdicts
        )
        asyncio.run(_closing(grader, grading))
    result = agreement(rubric, verdicts)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    view = _stdout()
    view.print(Text(f"{source}: {len(transcripts)} transcripts, rubric {rubric.id}"))
    stages = [", ".join(j.name for j in stage.judges) for stage in plan.stages]
    view.print(Text(f"judge: {' -> '.join(stages)}"))
    if plan.escalation is not None:
        escalated = sum(bool(v.cascade and v.cascade.stage) for v in verdicts)
        view.print(Text(f"cascade: {escalated} of {len(verdicts)} escalated past the first stage"))
    view.print(Text(f"compared {result.n}; not graded: {result.not_graded or 0}"))
    if result.n == 0:
        view.print("nothing to compare: no graded verdict has a reference value for this rubric")
        raise typer.Exit(ExitCode.INCOMPLETE)
    for renderable in agreement_view(result):
        view.print(renderable)


def _reference_set(
    dataset: Dataset, data_dir: Path | None, split: Split, library: RubricLibrary
) -> tuple[list[Transcript], Rubric]:
    from judge.datasets import DATASETS, load_dataset

    directory = data_dir or Path(os.environ.get("JUDGE_SHARED_DATA", "../shared/data"))
    try:
        transcripts = load_dataset(dataset, directory, split)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(
            f"{exc}. The built-in sets are the shared data of the judge repository "
            "(XSTest v2 completions with their human labels; the emergent-misalignment answers "
            "with their reference scores); give --data-dir the folder that holds xstest/ and "
            "emergent_misalignment/, or calibrate on your own data with --labels FILE --rubric ID"
        ) from None
    return transcripts, library.get(DATASETS[dataset][1])


@contextlib.contextmanager
def _open_output(path: Path | None, default: IO[str] | None = None) -> Iterator[IO[str] | None]:
    """The file verdicts go to (created), else ``default``, which is left open."""
    if path is None:
        yield default
        return
    with path.open("w", encoding="utf-8") as handle:
        yield handle


async def _closing(grader: Grader, work: Awaitable[T]) -> T:
    """Await the work, then close the grader's judges and cache on the same event loop."""
    async with grader:
        return await work


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT")] = 8000,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="Server processes.")] = 1,
) -> None:
    """Run the HTTP service (configured by JUDGE_* variables and JUDGE_CONFIG); docs at /docs."""
    import uvicorn

    from judge.logs import LOG_CONFIG

    _check_configuration(_load_settings())
    uvicorn.run(
        "judge.server.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=LOG_CONFIG,
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Grade queued jobs (needs JUDGE_QUEUE_URL; run any number, on any machine, beside API
    replicas that share the same Redis). Stops on SIGINT/SIGTERM; an unfinished job is re-queued."""
    import logging.config

    from judge.jobs.queue import run_worker
    from judge.logs import LOG_CONFIG

    settings = _load_settings()
    if settings.queue_url is None:
        raise UsageError("judge worker needs JUDGE_QUEUE_URL=redis://host:port/db (the job queue)")
    _check_configuration(settings)
    logging.config.dictConfig(LOG_CONFIG)
    asyncio.run(run_worker(settings))


def _check_configuration(settings: Settings) -> None:
    """Refuse to start, saying why, on rubrics that do not load or judges that cannot call."""
    settings.rubric_library()
    stages = [stage for cascade in settings.cascades.values() for stage in cascade]
    fallbacks = [name for profile in settings.profiles.values() for name in profile.fallbacks]
    settings.check_judges([*settings.profiles, *settings.allowed_models, *stages, *fallbacks])


def _load_settings() -> Settings:
    try:
        return Settings()
    except (ValueError, yaml.YAMLError) as exc:  # pydantic's errors are ValueErrors
        raise UsageError(f"invalid configuration (JUDGE_* or JUDGE_CONFIG): {exc}") from None


@rubrics_app.command("list")
def rubrics_list(rubric_dir: RubricDirs = None) -> None:
    """List the rubrics, a tab-separated line each: id, version, category, criteria, required
    transcript shape, and the first sentence of what it detects."""
    for rubric in _settings(rubric_dir).rubric_library():
        criteria = ",".join(c.name for c in rubric.criteria)
        requires = ",".join(r.value for r in rubric.requires)
        summary = " ".join(rubric.description.split()).split(". ")[0].rstrip(".") + "."
        typer.echo(
            f"{rubric.id}\tv{rubric.version}\t{rubric.category}\t{criteria}\t"
            f"requires {requires}\t{summary}"
        )


@rubrics_app.command("show")
def rubrics_show(rubric_id: str, rubric_dir: RubricDirs = None) -> None:
    """Print one rubric as JSON, with its content hash and output schema."""
    rubric = _settings(rubric_dir).rubric_library().get(rubric_id)
    document = {
        **rubric.model_dump(mode="json"),
        "hash": rubric.content_hash,
        "output_schema": rubric.response_schema if rubric.structured_criteria else None,
    }
    typer.echo(_json(document))


@rubrics_app.command("validate")
def rubrics_validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Rubric files or directories; default: shipped.")
    ] = None,
) -> None:
    """Validate rubric files; exit 2 and say what is wrong if any is invalid."""
    files: list[Path] = []
    for path in paths or [default_rubric_dir()]:
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    if not files:
        raise UsageError("no rubric files found to validate")
    problems = []
    for path in files:
        try:
            rubric = load_rubric(path)
            typer.echo(f"ok  {path}  {rubric.id} v{rubric.version}  {rubric.content_hash[:12]}")
        except UsageError as exc:
            problems += str(exc).splitlines()
    if problems:
        count = f"{len(problems)} problem{'s' * (len(problems) > 1)}"
        raise UsageError(f"{count} in the rubrics:\n" + "\n".join(problems))


@cache_app.command("stats")
def cache_stats(
    cache_dir: Annotated[Path | None, typer.Option(metavar="DIR", help="Cache directory.")] = None,
) -> None:
    """Entries and size of the verdict cache."""
    cache = _settings(cache_dir=cache_dir).open_cache()
    try:
        stats = cache.stats()
    finally:
        asyncio.run(cache.close())
    typer.echo(f"backend: {stats.backend}\nlocation: {stats.location}\nentries: {stats.entries}")
    typer.echo(f"size: {stats.size_bytes} bytes")


@cache_app.command("clear")
def cache_clear(
    cache_dir: Annotated[Path | None, typer.Option(metavar="DIR", help="Cache directory.")] = None,
    yes: Annotated[
        bool, typer.Option("--yes", metavar="", help="Do not ask for confirmation.")
    ] = False,
) -> None:
    """Delete every cached judge result."""
    cache = _settings(cache_dir=cache_dir).open_cache()
    try:
        if not yes and not typer.confirm(f"clear {cache.stats().entries} cached results?"):
            raise typer.Exit(ExitCode.INCOMPLETE)
        typer.echo(f"cleared {cache.clear()} entries")
    finally:
        asyncio.run(cache.close())


def _json(document: object) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; the one place exceptions become exit codes.

    Click reports its own usage errors (unknown option, bad value) with exit code 2; our
    ``UsageError`` gets the same code, with its message on stderr.
    """
    try:
        app(args=list(argv) if argv is not None else None, prog_name="judge")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    except UsageError as exc:
        stderr.print(Text("error: ", style="red") + Text(str(exc)))
        return ExitCode.USAGE
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
