"""``judge serve`` and ``judge worker``: the HTTP service and the job workers."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from judge.cli.common import (
    app,
    load_settings,
)
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
    asyncio.run(run_worker(settings))


def _check_configuration(settings: Settings) -> None:
    """Refuse to start, saying why, on rubrics that do not load or judges that cannot call."""
    settings.rubric_library()
    stages = [stage for cascade in settings.cascades.values() for stage in cascade]
    fallbacks = [name for profile in settings.profiles.values() for name in profile.fallbacks]
    settings.check_judges([*settings.profiles, *settings.allowed_models, *stages, *fallbacks])
