"""``judge serve``, ``judge worker`` and ``judge jobs``: the HTTP service, the job workers, and
looking after the job store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

import typer

from judge.cli.common import app, jobs_app, load_settings
from judge.config import Settings
from judge.errors import UsageError


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

    _check_configuration(load_settings())
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

    settings = load_settings()
    if settings.queue_url is None:
        raise UsageError("judge worker needs JUDGE_QUEUE_URL=redis://host:port/db (the job queue)")
    _check_configuration(settings)
    logging.config.dictConfig(LOG_CONFIG)
    with asyncio.Runner(loop_factory=_fast_loop()) as runner:
        runner.run(run_worker(settings))


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (uvicorn runs ``judge serve`` on it too): a
    worker's event loop and Redis client cost less CPU per verdict on it."""
    try:
        import uvloop
    except ImportError:  # not on Windows
        return None
    return uvloop.new_event_loop


def _check_configuration(settings: Settings) -> None:
    """Refuse to start, saying why, on rubrics that do not load or judges that cannot call."""
    settings.rubric_library()
    stages = [stage for cascade in settings.cascades.values() for stage in cascade]
    fallbacks = [name for profile in settings.profiles.values() for name in profile.fallbacks]
    settings.check_judges([*settings.profiles, *settings.allowed_models, *stages, *fallbacks])


@jobs_app.command("prune")
def jobs_prune(
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            min=0,
            metavar="SECONDS",
            help="Remove jobs finished more than SECONDS ago (default: JUDGE_JOB_TTL).",
        ),
    ] = None,
) -> None:
    """Remove finished jobs with their transcripts and verdicts (the verdict cache stays), from
    the job store JUDGE_* names: SQLite under JUDGE_STATE_DIR, or Redis at JUDGE_QUEUE_URL."""
    from judge.jobs.retention import job_store, prune

    settings = load_settings()
    ttl = older_than if older_than is not None else settings.job_ttl
    if ttl is None:
        raise UsageError("give --older-than SECONDS, or set JUDGE_JOB_TTL")
    store = job_store(settings)
    try:
        removed = prune(store, ttl)
    finally:
        store.close()
    typer.echo(f"removed {removed} jobs finished more than {ttl:g} s ago")
