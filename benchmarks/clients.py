"""One benchmark client per process, so CPU time and peak memory belong to that client alone.

    python benchmarks/clients.py MODE --api-base URL --calls N --concurrency C [--repeat R]

prints one JSON line: calls, and the median over R repeats (each on fresh transcripts) of the wall
seconds and CPU seconds of the timed section; peak RSS of the process.
MODE is ``aiohttp`` (raw POSTs: the floor), ``litellm`` (bare ``litellm.acompletion``),
``library`` (``Grader.grade_many`` on a cold diskcache), ``library-hits`` (the same, all cached).
Every mode sends the body the ``refusal`` rubric renders, to the same fake judge.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import workload

from judge.prompt import render_structured
from judge.rubric import RubricLibrary, default_rubric_dir
from judge.transcript import Transcript

MODEL = "openai/fake-judge"


RUN = {"n": 0}


DATA = {"kind": "short"}
"""Which transcripts (``--data``, see ``workload.py``)."""


def transcripts(n: int, salt: str) -> list[Transcript]:
    salt = f"{salt}{RUN['n']}"
    return [
        Transcript.from_prompt(r["prompt"], r["response"], id=r.get("id"))
        for r in workload.records(DATA["kind"], n, salt)
    ]


def request_bodies(n: int) -> list[dict[str, Any]]:
    RUN["n"] += 1
    rubric = RubricLibrary.from_dirs(default_rubric_dir()).get("refusal")
    schema = rubric.response_schema
    return [
        {
            "model": "fake-judge",
            "messages": render_structured(rubric, t),
            "temperature": 0,
            "max_tokens": 600,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "refusal_verdict", "schema": schema, "strict": True},
            },
        }
        for t in transcripts(n, "raw")
    ]


class Timer:
    """CPU seconds (all threads of this process) and wall seconds of a ``with`` block, and the
    median gap between completions marked in it (at C = 1: the latency of one verdict)."""

    def __enter__(self) -> Timer:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        self.marks = [self._wall]
        return self

    def mark(self) -> None:
        self.marks.append(time.perf_counter())

    def __exit__(self, *exc: object) -> None:
        gaps = [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]
        self.result = (
            time.process_time() - self._cpu,
            time.perf_counter() - self._wall,
            1000 * statistics.median(gaps) if gaps else 0.0,
        )


async def bounded(concurrency: int, jobs: list[Any], run: Any, timer: Timer) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> None:
        async with semaphore:
            await run(job)
        timer.mark()

    await asyncio.gather(*(one(job) for job in jobs))


async def raw_aiohttp(api_base: str, calls: int, concurrency: int) -> tuple[float, float, float]:
    import aiohttp

    bodies = request_bodies(calls)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(body: dict[str, Any]) -> None:
            async with session.post(f"{api_base}/chat/completions", json=body) as response:
                data = await response.json()
                json.loads(data["choices"][0]["message"]["content"])

        with Timer() as timer:
            await bounded(concurrency, bodies, post, timer)
        return timer.result


async def bare_litellm(api_base: str, calls: int, concurrency: int) -> tuple[float, float, float]:
    import litellm

    litellm.suppress_debug_info = True
    bodies = request_bodies(calls)

    async def call(body: dict[str, Any]) -> None:
        response = await litellm.acompletion(
            model=MODEL,
            messages=body["messages"],
            api_base=api_base,
            api_key="sk-fake",
            temperature=0,
            max_tokens=600,
            response_format=body["response_format"],
            max_retries=0,
            timeout=60,
        )
        json.loads(response.choices[0].message.content)

    with Timer() as timer:
        await bounded(concurrency, bodies, call, timer)
    return timer.result


async def library(
    api_base: str, calls: int, concurrency: int, *, hits: bool, force_litellm: bool = False
) -> tuple[float, float, float]:
    from judge.cache import DiskCache
    from judge.grading import Grader
    from judge.judges.llm import LLMJudge

    try:
        from judge.plan import JudgePlan
    except ImportError:  # a --baseline revision from before the plan had its own module
        from judge.grading import JudgePlan  # type: ignore[attr-defined,no-redef]

    rubric = RubricLibrary.from_dirs(default_rubric_dir()).get("refusal")
    batch = transcripts(calls, "lib")
    with tempfile.TemporaryDirectory() as directory:
        cache = DiskCache(Path(directory))
        options = {"force_litellm": True} if force_litellm else {}  # (older revisions lack it)
        judge = LLMJudge(MODEL, api_base=api_base, api_key="sk-fake", max_retries=0, **options)
        if hits:
            warm = Grader(JudgePlan([judge]), cache, concurrency=concurrency)
            async for _ in warm.grade_many(batch, [rubric]):
                pass
        grader = Grader(JudgePlan([judge]), cache, concurrency=concurrency)
        with Timer() as timer:
            async for verdict in grader.grade_many(batch, [rubric]):
                assert verdict.status == "graded", verdict.error
                timer.mark()
        assert grader.totals.cache_hits == (calls if hits else 0)
        closing = cache.close()  # async since 7b46ad6; the --baseline revision may predate it
        if inspect.isawaitable(closing):
            await closing
        if hasattr(judge, "aclose"):
            await judge.aclose()
            return timer.result
        try:  # a --baseline revision whose sessions were the transport module's
            from judge.judges.transport import close_sessions  # type: ignore[import-not-found]
        except ImportError:  # a --baseline revision without the HTTP transport
            return timer.result
        await close_sessions()
        return timer.result


def paired_ratio(runners: dict[str, Any], repeat: int, calls: int) -> None:
    """Library and bare litellm batches alternated in one process, so that drift in the machine's
    speed hits both alike; prints the median of the per-pair CPU ratios."""
    ratios, library_ms, litellm_ms = [], [], []
    for _ in range(repeat):
        RUN["n"] += 1
        litellm_cpu, *_ = asyncio.run(runners["litellm"]())
        RUN["n"] += 1
        library_cpu, *_ = asyncio.run(runners["library"]())
        ratios.append(library_cpu / litellm_cpu)
        library_ms.append(1000 * library_cpu / calls)
        litellm_ms.append(1000 * litellm_cpu / calls)
    result = {
        "pairs": repeat,
        "calls": calls,
        "median_ratio": statistics.median(ratios),
        "ratios": sorted(round(r, 3) for r in ratios),
        "library_ms": statistics.median(library_ms),
        "litellm_ms": statistics.median(litellm_ms),
    }
    print(json.dumps(result))


def import_footprint() -> dict[str, float]:
    """Resident memory after importing the library (what a serving process holds before any
    call), then after litellm's import (which resolving a model string triggers)."""

    def rss_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    import judge.grading
    import judge.judges.llm  # noqa: F401

    library_mib = rss_mib()
    from judge.transports import litellm_module

    litellm_module()
    return {"library_mib": library_mib, "with_litellm_mib": rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "mode",
        choices=[
            "aiohttp", "litellm", "library", "library-litellm", "library-hits",
            "library-vs-litellm", "imports",
        ],
    )  # fmt: skip
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data", choices=["real", "short"], default="short")
    args = parser.parse_args()
    DATA["kind"] = args.data
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    runners = {
        "aiohttp": lambda: raw_aiohttp(args.api_base, args.calls, args.concurrency),
        "litellm": lambda: bare_litellm(args.api_base, args.calls, args.concurrency),
        "library": lambda: library(args.api_base, args.calls, args.concurrency, hits=False),
        "library-hits": lambda: library(args.api_base, args.calls, args.concurrency, hits=True),
        "library-litellm": lambda: library(
            args.api_base, args.calls, args.concurrency, hits=False, force_litellm=True
        ),
    }
    if args.mode == "imports":
        print(json.dumps(import_footprint()))
        return
    if args.mode == "litellm" or args.mode.startswith("library"):
        asyncio.run(bare_litellm(args.api_base, 2, 1))  # import and first-call costs, untimed
    if args.mode.startswith("library") and args.calls:
        asyncio.run(library(args.api_base, 2, 1, hits=False))  # and the library's first call
    if args.mode == "library-vs-litellm":
        paired_ratio(runners, args.repeat, args.calls)
        return
    measured = []
    for _ in range(args.repeat):
        RUN["n"] += 1
        measured.append(asyncio.run(runners[args.mode]()))
    cpu = statistics.median(m[0] for m in measured)
    wall = statistics.median(m[1] for m in measured)
    p50 = statistics.median(m[2] for m in measured)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "calls": args.calls,
        "wall_s": wall,
        "cpu_s": cpu,
        "p50_gap_ms": p50,
        "peak_rss_mib": peak_kib / 1024,
    }
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
