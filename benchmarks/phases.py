"""Where a server's CPU goes, by phase of a job: py-spy's samples sorted into phases.

    python benchmarks/phases.py PROFILE.txt [--cpu-ms-per-verdict X]

``PROFILE.txt`` is ``py-spy record --gil --format raw`` of the server (or worker) while it runs
a job: one line per distinct stack, ``frame;frame;...;frame COUNT``, root first. ``--gil`` keeps
only samples of the thread holding the GIL, i.e. Python CPU time (py-spy's own idle detection
counts threads blocked in a queue or a condition as busy on this machine); SQLite's and Redis's
work outside the GIL (the query itself, the socket) is therefore missing from the samples.

A sample belongs to the phase of its innermost frame that a rule below names (walking from the
leaf to the root, the first match wins): a pydantic or ``json`` frame under ``add_verdicts`` is
storage of verdicts, under ``cache_key`` a cache cost. Shares are of all samples; given the
measured CPU ms per verdict, each phase's share is turned into ms per verdict.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

PHASES: list[tuple[str, str]] = [
    # (phase, regular expression on "function (file:line)"), most specific first
    ("rendering and neutralization", r"judge/(prompt|neutralize)\.py"),
    ("parsing the reply", r"judge/(parsing|scoring)\.py|_completion \(judge/transports"),
    (
        "cache lookups and writes",
        r"judge/cache\.py|diskcache/|judge/plan\.py|content_hash|_cached|RedisCache",
    ),
    (
        "storage of verdicts",
        r"add_verdicts|_Turn\.(_store|_done|_written)|finish_part|claim_part|finished_pairs",
    ),
    ("streaming verdicts", r"_stream \(judge/server|verdict_lines|job_verdicts|StreamingResponse"),
    (
        "intake and storage of transcripts",
        r"judge/(server/(json_route|intake|body_limit)|json_input|transcript_files|wire)\.py"
        r"|create_job|JobStore\.(create|transcripts)|_Turn\.(units|_units_of|_singles)|ingest|fastapi/",
    ),
    (
        "verdict building",
        r"judge/(assembly|verdict|shape|metrics|grouping)\.py|prometheus_client/",
    ),
    (
        "the call (request, transport, judge)",
        r"judge/(transports|judges)/|aiohttp/|yarl/|multidict/|tenacity/|aiolimiter/|orjson",
    ),
    ("engine (scheduling, semaphores)", r"judge/grading\.py|judge/jobs/runner\.py"),
    ("HTTP server (uvicorn, starlette)", r"uvicorn/|starlette/|httptools|h11/"),
    ("event loop, threads, other", r"."),
]
_RULES = [(phase, re.compile(pattern)) for phase, pattern in PHASES]
_RUNS = re.compile(r"Runner\.run \(asyncio/runners|run_until_complete|Thread\.run \(threading")
"""A frame that runs callbacks or work items: the frames above it (start-up: the CLI, uvicorn's
launch) say nothing about the work."""


def classify(frames: list[str]) -> str:
    """The phase of one stack (frames root first)."""
    start = max((i + 1 for i, frame in enumerate(frames) if _RUNS.search(frame)), default=0)
    for frame in reversed(frames[start:]):
        for phase, rule in _RULES[:-1]:
            if rule.search(frame):
                return phase
    return _RULES[-1][0]


def shares(profile: Path) -> dict[str, float]:
    """Each phase's share of the samples (0-1), in the order of ``PHASES``."""
    counts: collections.Counter[str] = collections.Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            counts[classify(stack.split(";"))] += int(count)
    total = sum(counts.values()) or 1
    return {phase: counts[phase] / total for phase, _ in PHASES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--cpu-ms-per-verdict", type=float)
    args = parser.parse_args()
    for phase, share in shares(args.profile).items():
        ms = f"  {share * args.cpu_ms_per_verdict:.3f} ms" if args.cpu_ms_per_verdict else ""
        print(f"{100 * share:5.1f}%{ms}  {phase}")


if __name__ == "__main__":
    main()
