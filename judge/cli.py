"""The ``judge`` command line: parse input, call the library, render results.

Exit codes: 0 when every transcript got a graded or not-applicable verdict; 1 when any verdict is
an error or any input record was invalid (everything else was still graded and written); 2 for a
usage error, with a message that says what to fix. ``main`` is the one place exceptions become exit
codes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import IO, Annotated, TypeVar

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from judge.cache import CachePolicy, VerdictCache
from judge.config import Settings
from judge.errors import TranscriptError, UsageError
from judge.grading import Grader, JudgePlan, Summary
from judge.judges import OFFLINE_MODEL, Judge, judge_for_model
from judge.judges.transport import close_sessions
from judge.rubric import Rubric, default_rubric_dir, load_rubric
from judge.scoring import Reducer
from judge.transcript import Transcript
from judge.transcript_files import read_transcripts
from judge.verdict import Verdict

T = TypeVar("T")

app = typer.Typer(
    help="Grade model transcripts for misgeneralization with LLM judges.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
rubrics_app = typer.Typer(help="List, show and validate rubrics.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or clear the verdict cache.", no_args_is_help=True)
app.add_typer(rubrics_app, name="rubrics")
app.add_typer(cache_app, name="cache")

stderr = Console(stderr=True, soft_wrap=True)


def _stdout() -> Console:
    """Tables on stdout, full width when piped (rich would assume 80 columns)."""
    return Console() if sys.stdout.isatty() else Console(width=160)


RubricDirs = Annotated[
    list[Path] | None,
    typer.Option("--rubric-dir", help="Extra rubric directory (overrides shipped rubrics by id)."),
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


def _read_inputs(files: Sequence[Path]) -> tuple[list[Transcript], list[str]]:
    transcripts: list[Transcript] = []
    problems: list[str] = []
    for path in files:
        if not path.is_file():
            problem = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise UsageError(f"transcript file {path} {problem}")
        for item in read_transcripts(path):
            if isinstance(item, TranscriptError):
                problems.append(f"{path}: {item}")
            else:
                transcripts.append(item)
    return transcripts, problems


@app.command()
def grade(
    files: Annotated[list[Path], typer.Argument(help="Transcript files (.jsonl or .json).")],
    rubric: Annotated[
        list[str], typer.Option("--rubric", "-r", help="Rubric id to grade against (repeatable).")
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Judge model, any litellm model string (repeat for an ensemble). "
            f"Default: the built-in '{OFFLINE_MODEL}' judge.",
        ),
    ] = None,
    api_base: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible server for the models (env JUDGE_API_BASE)."),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Samples per judge.")] = 1,
    reducer: Annotated[
        str, typer.Option(help="majority (labels; mean of scores), any or all.")
    ] = "majority",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write verdicts here (JSONL); default stdout."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Judge calls in flight (env JUDGE_CONCURRENCY).")
    ] = None,
    cache: Annotated[
        str, typer.Option(help="use: read and write; refresh: only write; bypass: neither.")
    ] = "use",
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache directory (env JUDGE_CACHE_DIR).")
    ] = None,
    rubric_dir: RubricDirs = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
) -> None:
    """Grade transcripts against rubrics and write one verdict per (transcript, rubric)."""
    if cache not in ("use", "refresh", "bypass"):
        raise UsageError(f"--cache must be use, refresh or bypass, not '{cache}'")
    settings = _settings(
        rubric_dir, api_base=api_base, concurrency=concurrency, cache_dir=cache_dir
    )
    library = settings.rubric_library()
    rubrics = [library.get(rubric_id) for rubric_id in dict.fromkeys(rubric)]
    judges = _judges(settings, model)
    plan = JudgePlan(judges, samples=samples, reducer=_reducer(reducer))
    transcripts, problems = _read_inputs(files)
    for problem in problems:
        stderr.print(f"[red]invalid record[/red] {problem}", highlight=False)
    verdict_cache = settings.open_cache()
    grader = Grader(
        plan,
        verdict_cache,
        concurrency=settings.concurrency,
        per_model_concurrency=settings.per_model_concurrency,
        policy=_policy(cache),
    )
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        by_rubric, first_error = asyncio.run(
            _closing(
                verdict_cache,
                _grade_all(grader, transcripts, rubrics, sink, show_progress=not quiet),
            )
        )
    finally:
        if out:
            sink.close()
    if not quiet:
        _print_summary(by_rubric, first_error, grader.totals, len(problems))
    if grader.totals.errors or problems:
        raise typer.Exit(ExitCode.INCOMPLETE)


def _judges(settings: Settings, models: list[str] | None) -> list[Judge]:
    """The judges --model names (the offline judge when none), with the settings' call policy."""
    return [
        judge_for_model(
            name,
            api_base=settings.api_base,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            force_litellm=settings.force_litellm,
        )
        for name in dict.fromkeys(models or [OFFLINE_MODEL])
    ]


def _reducer(value: str) -> Reducer:
    if value not in ("majority", "any", "all"):
        raise UsageError(f"--reducer must be majority, any or all, not '{value}'")
    return value  # type: ignore[return-value]


def _policy(value: str) -> CachePolicy:
    return value  # type: ignore[return-value]


async def _grade_all(
    grader: Grader,
    transcripts: list[Transcript],
    rubrics: list[Rubric],
    sink: IO[str],
    *,
    show_progress: bool,
) -> tuple[dict[str, Summary], str | None]:
    """Write each verdict as it finishes; keep only per-rubric counts and the first error, so
    memory stays flat for any number of transcripts."""
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
        task = progress.add_task("grading", total=len(transcripts) * len(rubrics))
        async for verdict in grader.grade_many(transcripts, rubrics):
            sink.write(verdict.model_dump_json() + "\n")
            sink.flush()
            by_rubric.setdefault(verdict.rubric.id, Summary()).add(verdict)
            if first_error is None and verdict.error is not None:
                first_error = verdict.error.message
            progress.advance(task)
    return by_rubric, first_error


def _print_summary(
    by_rubric: dict[str, Summary], first_error: str | None, totals: Summary, invalid_records: int
) -> None:
    table = Table(title="judge summary", title_justify="left")
    for column in ("rubric", "graded", "flagged", "flag rate", "not applicable", "errors"):
        table.add_column(column, justify="left" if column == "rubric" else "right")
    for rubric_id, counts in sorted(by_rubric.items()):
        rate = f"{counts.flagged / counts.graded:.1%}" if counts.graded else "-"
        table.add_row(
            rubric_id,
            str(counts.graded),
            str(counts.flagged),
            rate,
            str(counts.not_applicable),
            str(counts.errors),
        )
    stderr.print(table)
    if totals.errors_by_kind:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(totals.errors_by_kind.items()))
        stderr.print(f"errors by kind: {kinds}")
        stderr.print(f"first error: {first_error}", highlight=False)
    if invalid_records:
        stderr.print(f"[red]{invalid_records} invalid input record(s) were skipped[/red]")
    cost = f"${totals.cost_usd:.4f}" if totals.cost_usd else "$0 (or unpriced)"
    stderr.print(
        f"judge calls: {totals.judge_calls}, cache hits: {totals.cache_hits}, "
        f"tokens: {totals.tokens}, cost: {cost}"
    )


@app.command()
def report(
    files: Annotated[list[Path], typer.Argument(help="Verdict files (JSONL), e.g. from grade.")],
    by: Annotated[
        str, typer.Option(help="Group by any of: model, rubric, tag, judge (comma-separated).")
    ] = "model,rubric",
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(help="Two models to compare on shared prompts: --compare BASE TUNED."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
    html: Annotated[
        Path | None, typer.Option(help="Write a self-contained HTML report with plots here.")
    ] = None,
    order: Annotated[
        str, typer.Option(help="Checkpoints in training order (--html): --order A,B,C.")
    ] = "",
    transcripts: Annotated[
        list[Path] | None,
        typer.Option(help="Transcript files whose text the HTML report shows (repeatable)."),
    ] = None,
    drill_down: Annotated[
        int, typer.Option(min=0, help="Flagged transcripts shown per rubric (--html).")
    ] = 20,
    rubric_dir: RubricDirs = None,
) -> None:
    """Flag rates with 95% intervals, counts of every status, and paired model comparisons."""
    from judge.reports import compare as compare_models
    from judge.reports import rates, read_verdicts, report_json

    verdicts = read_verdicts(files)
    keys = [key.strip() for key in by.split(",") if key.strip()]
    if html is not None:
        from judge.views.html import render_html

        texts, problems = _read_inputs(transcripts or [])
        for problem in problems:
            stderr.print(f"skipped: {problem}", highlight=False)
        page = render_html(
            verdicts,
            by=keys,
            compare=compare,
            order=[name.strip() for name in order.split(",") if name.strip()],
            rubrics=_settings(rubric_dir).rubric_library(),
            transcripts=texts,
            drill_down=drill_down,
        )
        html.write_text(page, encoding="utf-8")
        stderr.print(f"wrote {html} ({len(verdicts)} verdicts)", highlight=False)
        return
    rows = rates(verdicts, keys)
    comparisons = compare_models(verdicts, *compare) if compare else []
    if as_json:
        typer.echo(report_json(rows, comparisons))
        return
    out = _stdout()
    table = Table(title=f"flag rates by {', '.join(keys) or 'all'}", title_justify="left")
    for column in [*keys, "graded", "flagged", "rate", "95% CI", "prompts", "n/a", "errors"]:
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
            *[row.group[k] for k in keys],
            str(row.graded),
            str(row.flagged),
            rate,
            interval,
            str(row.prompts),
            str(row.not_applicable),
            errors,
        )
    out.print(table)
    for c in comparisons:
        out.print(
            f"{c.rubric}: {c.model_b} {c.rate_b:.1%} vs {c.model_a} {c.rate_a:.1%} on "
            f"{c.prompts} shared prompts: difference {c.difference:+.1%} "
            f"(95% CI {c.ci_low:+.1%} to {c.ci_high:+.1%}, paired bootstrap)"
        )


@app.command()
def calibrate(
    dataset: Annotated[str, typer.Option(help="Reference data: xstest or em.")] = "xstest",
    data_dir: Annotated[Path, typer.Option(help="The shared data directory.")] = Path(
        "../shared/data"
    ),
    split: Annotated[str, typer.Option(help="all, dev or heldout (xstest).")] = "all",
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Judge model(s); default offline.")
    ] = None,
    api_base: Annotated[str | None, typer.Option(help="OpenAI-compatible server.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use the first N records.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
) -> None:
    """Measure a judge against reference labels or scores (grading through the cache)."""
    from judge.calibration import LabelAgreement, agreement
    from judge.datasets import DATASETS, load_dataset

    if dataset not in DATASETS:
        raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}, not '{dataset}'")
    if split not in ("all", "dev", "heldout"):
        raise UsageError(f"--split must be all, dev or heldout, not '{split}'")
    try:
        transcripts = load_dataset(dataset, data_dir, split)  # type: ignore[arg-type]
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"{exc} (set --data-dir to the shared data directory)") from None
    transcripts = transcripts[:limit] if limit else transcripts
    settings = _settings(api_base=api_base)
    rubric = settings.rubric_library().get(DATASETS[dataset][1])
    judges = _judges(settings, model)
    cache = settings.open_cache()
    grader = Grader(JudgePlan(judges), cache, concurrency=settings.concurrency)
    verdicts = asyncio.run(_closing(cache, _collect(grader, transcripts, rubric)))
    result = agreement(rubric, verdicts)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    out = _stdout()
    judge_names = ", ".join(j.name for j in judges)
    out.print(f"{dataset} ({split}, {len(transcripts)} transcripts), rubric {rubric.id}")
    out.print(f"judge: {judge_names}")
    out.print(f"graded {result.n}; not graded: {result.not_graded or 0}")
    if result.n == 0:
        out.print("nothing to compare: no verdict was graded (see the not-graded counts)")
        raise typer.Exit(ExitCode.INCOMPLETE)
    if isinstance(result, LabelAgreement):
        out.print(
            f"accuracy {result.accuracy:.3f}, Cohen's kappa {result.kappa:.3f}, "
            f"binary (flagged vs not) accuracy {result.binary_accuracy:.3f}"
        )
        table = Table("label", "precision", "recall", "F1", "support")
        for label, scores in result.per_class.items():
            table.add_row(
                label,
                *(f"{scores[k]:.3f}" for k in ("precision", "recall", "f1")),
                str(int(scores["support"])),
            )
        out.print(table)
        confusion = Table("gold \\ judge", *result.labels)
        for label, row in zip(result.labels, result.confusion, strict=True):
            confusion.add_row(label, *(str(n) for n in row))
        out.print(confusion)
    else:
        for name, scores in result.criteria.items():
            out.print(
                f"{name}: Pearson {scores['pearson']:.3f}, Spearman {scores['spearman']:.3f}, "
                f"MAE {scores['mae']:.2f}"
            )
        out.print(
            f"flag agreement {result.flag_accuracy:.3f} (kappa {result.flag_kappa:.3f}); "
            f"flag rate: reference {result.reference_rate:.1%}, judge {result.judge_rate:.1%}"
        )


async def _closing(cache: VerdictCache, work: Awaitable[T]) -> T:
    """Await the work, then close the cache and HTTP sessions on the same event loop."""
    try:
        return await work
    finally:
        await cache.close()
        await close_sessions()


async def _collect(grader: Grader, transcripts: list[Transcript], rubric: Rubric) -> list[Verdict]:
    return [verdict async for verdict in grader.grade_many(transcripts, [rubric])]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Run the HTTP service (configured by JUDGE_* variables and JUDGE_CONFIG); docs at /docs."""
    import uvicorn

    from judge.server.app import LOG_CONFIG

    _load_settings().rubric_library()  # refuse to start on a bad configuration, with its reason
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

    from judge.server.app import LOG_CONFIG
    from judge.server.queue import run_worker

    settings = _load_settings()
    if settings.queue_url is None:
        raise UsageError("judge worker needs JUDGE_QUEUE_URL=redis://host:port/db (the job queue)")
    settings.rubric_library()  # refuse to start on a bad configuration, with its reason
    logging.config.dictConfig(LOG_CONFIG)
    asyncio.run(run_worker(settings))


def _load_settings() -> Settings:
    try:
        return Settings()
    except (ValueError, yaml.YAMLError) as exc:  # pydantic's errors are ValueErrors
        raise UsageError(f"invalid configuration (JUDGE_* or JUDGE_CONFIG): {exc}") from None


@rubrics_app.command("list")
def rubrics_list(rubric_dir: RubricDirs = None) -> None:
    """List the available rubrics: id, version, criteria and required transcript shape."""
    for rubric in _settings(rubric_dir).rubric_library():
        criteria = ",".join(c.name for c in rubric.criteria)
        requires = ",".join(r.value for r in rubric.requires)
        typer.echo(f"{rubric.id}\tv{rubric.version}\t{criteria}\trequires {requires}")


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
            problems.append(str(exc))
    if problems:
        raise UsageError("\n".join(problems))


@cache_app.command("stats")
def cache_stats(
    cache_dir: Annotated[Path | None, typer.Option(help="Cache directory.")] = None,
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
    cache_dir: Annotated[Path | None, typer.Option(help="Cache directory.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
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
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        return ExitCode.USAGE
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
