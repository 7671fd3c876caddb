"""The benchmark: one command, one fake judge, every client, medians of repeated runs.

    python benchmarks/run.py [--runs 3] [--quick] [--sections ...] [--baseline REV] [--out FILE]

Starts fake OpenAI-compatible judges on 127.0.0.1 (latency 0 and 200 ms, asyncio sleep), then
measures, each in its own process so that CPU time and peak memory are the client's own:

  aiohttp   raw POSTs from one shared session: the floor
  litellm   bare litellm.acompletion
  library   Grader.grade_many (refusal rubric, cold diskcache)
  jobs      the HTTP jobs API end to end (judge serve; CPU and memory of the server process)
  inspect   Inspect AI model_graded_qa, in its own venv (benchmarks/.venvs/inspect)
  deepeval  DeepEval GEval, in its own venv (benchmarks/.venvs/deepeval)

Sections (``--sections``, all by default):

  matrix     every client at C = 1, 32, 128 and L = 0, 200 ms on the short one-line transcripts
  real       C = 128, L = 200 ms on real transcripts (XSTest; ``workload.py``): the floor, the
             library, and the jobs API on SQLite and on Redis (API + worker) in one run, with
             the CPU per verdict split by phase (py-spy, ``phases.py``; skipped without py-spy);
             and the emergent-misalignment rubric (two logprob calls per verdict) on SQLite
  in_flight  512 calls in flight: peak RSS beside what imports hold
  cache      cache-hit throughput (library and HTTP), time from start to /readyz
  big_job    a 100,000-transcript job (``--big-job``) as JSON and as NDJSON, on SQLite and on
             Redis: RSS start to end, /readyz latency while the body is taken in
  scaling    verdicts/s of one and of two workers (Redis), each latency-bound

``--baseline REV`` also runs the library client from git revision REV (a worktree), for
before/after ratios measured in the same run. Results go to ``--out`` as JSON and to stdout as
Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jobs_bench
import workload
from deploy import Server, deployment, fake_judge, run_job

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENVS = HERE / ".venvs"
FRAMEWORKS = {"inspect": ["inspect-ai", "openai"], "deepeval": ["deepeval"]}
LATENCIES_MS = (0, 200)
CONCURRENCIES = (1, 32, 128)
SECTIONS = ("matrix", "real", "in_flight", "cache", "big_job", "scaling")


def calls_for(latency_ms: int, concurrency: int, quick: bool) -> int:
    """At L > 0, eight waves of C calls: the first wave's connection set-up weighs 1/8 (steady
    state is what the targets are about; four waves, until 2026-11-28, weighed it 1/4)."""
    if latency_ms == 0:
        return 100 if quick else 400
    return max(10, concurrency * (2 if quick else 8))


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def framework_python(name: str) -> Path | None:
    python = VENVS / name / "bin" / "python"
    if python.exists():
        return python
    print(f"installing {name} into {VENVS / name} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *FRAMEWORKS[name]],
        capture_output=True, text=True,
    )  # fmt: skip
    if install.returncode != 0:
        print(f"{name} did not install: {install.stderr[-500:]}", file=sys.stderr)
        return None
    return python


def client(
    mode: str,
    api_base: str,
    calls: int,
    concurrency: int,
    repeat: int,
    tree: Path = REPO,
    data: str = "short",
) -> dict[str, Any]:
    """Median of ``repeat`` timed runs in one process (imports paid once, untimed)."""
    args = ["--api-base", api_base, "--calls", str(calls), "--concurrency", str(concurrency),
            "--repeat", str(repeat)]  # fmt: skip
    if data != "short":
        args += ["--data", data]
    if mode in FRAMEWORKS:
        python = framework_python(mode)
        if python is None:
            raise RuntimeError(f"{mode} is not installed")
        return run_json([str(python), str(HERE / f"{mode}_client.py"), *args])
    return run_json(
        [sys.executable, str(HERE / "clients.py"), mode, *args], env={"PYTHONPATH": str(tree)}
    )


def http_cache_hits(api_base: str, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        server = Server(api_base, 32, Path(directory))
        try:
            batches = [
                workload.records("short", 200, f"hit-{b}") for b in range(max(1, calls // 200))
            ]
            body = {"rubrics": ["refusal"], "judge": {"profile": "fake"}}
            with httpx.Client(timeout=120) as http:
                for batch in batches:  # fill the cache
                    http.post(f"{server.url}/v1/grade", json={**body, "transcripts": batch})
                wall = time.perf_counter()
                for batch in batches:
                    reply = http.post(f"{server.url}/v1/grade", json={**body, "transcripts": batch})
                    assert reply.json()["summary"]["cache_hits"] == len(batch)
                wall = time.perf_counter() - wall
            return {"verdicts": 200 * len(batches), "per_s": 200 * len(batches) / wall}
        finally:
            server.stop()


def in_flight_512(api_base: str, runs: int) -> dict[str, Any]:
    """Peak RSS with 512 calls in flight (L = 200 ms, 2,048 calls) beside what imports alone
    hold: the library's, and with litellm's (which resolving a model string brings in)."""
    calls = 2048
    measured: dict[str, Any] = {"imports": run_json(
        [sys.executable, str(HERE / "clients.py"), "imports", "--api-base", api_base,
         "--calls", "0", "--concurrency", "0"]
    )}  # fmt: skip
    for mode in ("aiohttp", "library", "library-litellm"):
        measured[mode] = summarize(client(mode, api_base, calls, 512, runs), 200, 512)
    jobs = jobs_bench.jobs_api("sqlite", api_base, calls, 512, runs)
    measured["jobs"] = summarize(jobs, 200, 512)
    return measured


def median_of(runs: int, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    results = [measure() for _ in range(runs)]
    keys = [k for k, v in results[0].items() if isinstance(v, int | float)]
    return {k: statistics.median(r[k] for r in results) for k in keys}


def summarize(result: dict[str, Any], latency_ms: int, concurrency: int) -> dict[str, Any]:
    throughput = result["calls"] / result["wall_s"]
    ideal = concurrency / (latency_ms / 1000) if latency_ms else None
    return {
        "throughput": throughput,
        "pct_ideal": 100 * throughput / ideal if ideal else None,
        "cpu_ms_per_call": 1000 * result["cpu_s"] / result["calls"],
        "p50_gap_ms": result.get("p50_gap_ms"),
        "peak_rss_mib": result["peak_rss_mib"],
    }


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp()) / "baseline"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(directory), rev],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield directory
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(directory)],
                       check=False, capture_output=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer calls, smaller jobs")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="a comma-separated subset")
    parser.add_argument(
        "--clients", default="aiohttp,litellm,library,library-litellm,jobs,inspect,deepeval"
    )
    parser.add_argument("--baseline", help="git revision to measure the library client at too")
    parser.add_argument("--big-job", type=int, default=100_000)
    parser.add_argument("--profiles", type=Path, help="keep the py-spy profiles here")
    parser.add_argument("--out", type=Path, default=HERE / "results-latest.json")
    args = parser.parse_args()
    sections = args.sections.split(",")
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    results: dict[str, Any] = {"machine": machine(), "runs": args.runs}
    baseline = worktree(args.baseline) if args.baseline else contextlib.nullcontext(None)
    with baseline as base:
        if "matrix" in sections:
            results["matrix"] = matrix(args.clients.split(","), args.runs, args.quick, base)
    if "real" in sections:
        with contextlib.ExitStack() as stack:
            profiles = args.profiles or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            results["real"] = real(max(args.runs, 3), args.quick, profiles)
    if "in_flight" in sections:
        with fake_judge(200) as api_base:
            results["in_flight_512"] = in_flight_512(api_base, args.runs)
    if "cache" in sections:
        results.update(cache_and_start(args.runs))
    if "big_job" in sections:
        results["big_job"] = big_jobs(20_000 if args.quick else args.big_job)
    if "scaling" in sections:
        with fake_judge(200) as api_base:
            transcripts = 1600 if args.quick else 4800
            results["scaling"] = jobs_bench.scaling(api_base, transcripts, concurrency=16, jobs=1)
            results["scaling_two_jobs"] = jobs_bench.scaling(
                api_base, transcripts, concurrency=16, jobs=2
            )
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results))


def matrix(clients: list[str], runs: int, quick: bool, base: Path | None) -> dict[str, Any]:
    """Every client at every latency and concurrency, on the short transcripts."""
    rows: dict[str, Any] = {}
    for latency in LATENCIES_MS:
        with fake_judge(latency) as api_base:
            for concurrency in CONCURRENCIES:
                calls = calls_for(latency, concurrency, quick)
                for mode in [*clients, *(["baseline"] if base else [])]:
                    try:
                        if mode == "jobs":
                            result = jobs_bench.jobs_api(
                                "sqlite", api_base, calls, concurrency, runs
                            )
                        elif mode == "baseline":
                            assert base is not None
                            result = client("library", api_base, calls, concurrency, runs, base)
                        else:
                            result = client(mode, api_base, calls, concurrency, runs)
                        row = summarize(result, latency, concurrency)
                    except RuntimeError as exc:
                        row = {"error": str(exc)[-300:]}
                    rows[f"{mode}|{latency}|{concurrency}"] = row
                    print(mode, latency, concurrency, row, file=sys.stderr)
    return rows


def real(runs: int, quick: bool, profiles: Path) -> dict[str, Any]:
    """C = 128, L = 200 ms on real transcripts. The machine is shared, so its speed drifts: each
    of ``runs`` rounds measures every row once, one after the other (the floor, the library, the
    jobs API on SQLite and on Redis, the scored rubric), and a row's figure is the median over
    rounds; ``÷ floor`` is the median of each round's ratio. Then one more job per store under
    py-spy for the phases (skipped without py-spy)."""
    calls, concurrency = (512 if quick else 1024), 128
    rounds: dict[str, list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        api_base = stack.enter_context(fake_judge(200))
        made = {
            store: stack.enter_context(deployment(store, api_base, concurrency))
            for store in ("sqlite", "redis")
        }
        for kind, store in (("real", "sqlite"), ("real", "redis"), ("em", "sqlite")):
            run_job(made[store].url, jobs_bench.job_body(kind, 8, "warm"))
        rows: dict[str, Callable[[], dict[str, Any]]] = {
            "floor": lambda: client("aiohttp", api_base, calls, concurrency, 1, data="real"),
            "library": lambda: client("library", api_base, calls, concurrency, 1, data="real"),
        }
        for name, store, kind in (("jobs-sqlite", "sqlite", "real"),
                                  ("jobs-redis", "redis", "real"),
                                  ("jobs-sqlite-em", "sqlite", "em")):  # fmt: skip
            rows[name] = functools.partial(
                lambda store, kind: jobs_bench.timed(
                    made[store], jobs_bench.job_body(kind, calls, f"{kind}-{time.time()}")
                ),
                store,
                kind,
            )
        for round_ in range(runs):
            for name, measure in rows.items():
                try:
                    rounds.setdefault(name, []).append(measure())
                except RuntimeError as exc:
                    print(name, "failed:", str(exc)[-300:], file=sys.stderr)
                print(round_, name, summarize(rounds[name][-1], 200, concurrency), file=sys.stderr)
        result: dict[str, Any] = {"calls": calls, "concurrency": concurrency}
        for name, measured in rounds.items():
            row = summarize(_median(measured), 200, concurrency)
            if name != "floor":
                row["vs_floor"] = statistics.median(
                    (m["calls"] / m["wall_s"]) / (f["calls"] / f["wall_s"])
                    for m, f in zip(measured, rounds["floor"], strict=False)
                )
            row["accepted_s"] = _median(measured).get("accepted_s")
            result[name] = row
        if shutil.which("py-spy") is None:
            print("py-spy is not installed: no phases (pip install py-spy)", file=sys.stderr)
            return result
        for name, store, kind in (("jobs-sqlite", "sqlite", "real"),
                                  ("jobs-redis", "redis", "real")):  # fmt: skip
            body = jobs_bench.job_body(kind, calls, f"profiled-{time.time()}")
            result[name]["phases_ms"] = jobs_bench.profiled(made[store], body, profiles / name)
    return result


def _median(measured: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in measured[0].items() if isinstance(v, int | float)]
    return {k: statistics.median(m[k] for m in measured) for k in keys}


def cache_and_start(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with fake_judge(0) as api_base:
        results["library_cache_hits"] = client("library-hits", api_base, 2000, 32, runs)
        results["http_cache_hits"] = median_of(runs, lambda: http_cache_hits(api_base, 2000))
        with tempfile.TemporaryDirectory() as directory:
            readiness = []
            for _ in range(runs):
                server = Server(api_base, 16, Path(directory))
                readiness.append(server.ready_s)
                server.stop()
            results["ready_s"] = statistics.median(readiness)
    return results


def big_jobs(transcripts: int) -> list[dict[str, Any]]:
    """The big job on each store and body type, graded by the fake judge at L = 0."""
    measured = []
    with fake_judge(0) as api_base:
        for store in ("sqlite", "redis"):
            for ndjson in (False, True):
                try:
                    row = jobs_bench.big_job(
                        store, api_base, transcripts, ndjson=ndjson, profile="fake"
                    )
                except RuntimeError as exc:
                    row = {"error": str(exc)[-300:]}
                row["store"] = store
                print("big job", {k: v for k, v in row.items() if "streaming" not in k},
                      file=sys.stderr)  # fmt: skip
                measured.append(row)
    return measured


def machine() -> dict[str, Any]:
    import platform

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def markdown(results: dict[str, Any]) -> str:
    """Each measured section as Markdown."""
    parts = []
    if "matrix" in results or "in_flight_512" in results:
        parts.append(_matrix_markdown(results))
    if "real" in results:
        parts.append(_real_markdown(results["real"]))
    if "library_cache_hits" in results:
        hits = results["library_cache_hits"]
        parts.append(
            f"- cache hits, library: {hits['calls'] / hits['wall_s']:.0f} verdicts/s "
            f"({1000 * hits['cpu_s'] / hits['calls']:.3f} CPU ms each)\n"
            f"- cache hits, HTTP (POST /v1/grade, 200 per request): "
            f"{results['http_cache_hits']['per_s']:.0f} verdicts/s\n"
            f"- process start to /readyz: {results['ready_s']:.2f} s"
        )
    if "big_job" in results:
        parts.append(_big_job_markdown(results["big_job"]))
    for key, what in (("scaling", "one job"), ("scaling_two_jobs", "two jobs")):
        if key in results:
            scaled = results[key]
            parts.append(
                f"- workers on {what} (Redis, {scaled['ideal_per_worker_s']:.0f} verdicts/s ideal "
                f"per worker): one worker {scaled['1']['per_s']:.0f} verdicts/s, two "
                f"{scaled['2']['per_s']:.0f} verdicts/s: **{scaled['ratio']:.2f}x**"
            )
    return "\n\n".join(parts)


def _matrix_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| client | latency ms | C | calls/s | % of ideal C/L | CPU ms/call | p50 ms between "
        "verdicts | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = list(results.get("matrix", {}).items())
    in_flight = results.get("in_flight_512", {})
    rows += [(f"{mode}|200|512", row) for mode, row in in_flight.items() if mode != "imports"]
    for key, row in rows:
        mode, latency, concurrency = key.split("|")
        if "error" in row:
            lines.append(
                f"| {mode} | {latency} | {concurrency} | error: {row['error'][:60]} | | | | |"
            )
            continue
        pct = f"{row['pct_ideal']:.0f}%" if row["pct_ideal"] is not None else "-"
        p50 = f"{row['p50_gap_ms']:.2f}" if row.get("p50_gap_ms") is not None else "-"
        lines.append(
            f"| {mode} | {latency} | {concurrency} | {row['throughput']:.0f} | {pct} | "
            f"{row['cpu_ms_per_call']:.2f} | {p50} | {row['peak_rss_mib']:.0f} |"
        )
    if "imports" in in_flight:
        imports = in_flight["imports"]
        lines += [
            "",
            f"- RSS after imports: library {imports['library_mib']:.0f} MiB, with litellm "
            f"{imports['with_litellm_mib']:.0f} MiB",
        ]
    return "\n".join(lines)


def _real_markdown(real: dict[str, Any]) -> str:
    lines = [
        f"Real transcripts (XSTest; the scored rubric: emergent-misalignment answers), "
        f"C = {real['concurrency']}, L = 200 ms, {real['calls']} transcripts a job, one run "
        "(medians over rounds; ÷ floor: median of each round's ratio):",
        "",
        "| row | verdicts/s | % of ideal | ÷ floor | CPU ms/verdict | job accepted after s |"
        " peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    names = ("floor", "library", "jobs-sqlite", "jobs-redis", "jobs-sqlite-em")
    for name in names:
        row = real.get(name)
        if row is None:
            continue
        if "error" in row:
            lines.append(f"| {name} | error: {row['error'][:80]} | | | | | |")
            continue
        ratio = f"{row['vs_floor']:.2f}" if "vs_floor" in row else "1"
        accepted = f"{row['accepted_s']:.2f}" if row.get("accepted_s") is not None else "-"
        lines.append(
            f"| {name} | {row['throughput']:.0f} | {row['pct_ideal']:.0f}% | {ratio} | "
            f"{row['cpu_ms_per_call']:.2f} | {accepted} | {row['peak_rss_mib']:.0f} |"
        )
    profiled = [name for name in names if real.get(name, {}).get("phases_ms")]
    if profiled:
        lines += ["", "CPU ms per verdict by phase (py-spy --gil, shares of the samples times "
                  "the measured CPU; Redis: API and worker summed):", "",
                  "| phase | " + " | ".join(profiled) + " |",
                  "|---|" + "---|" * len(profiled)]  # fmt: skip
        for phase in real[profiled[0]]["phases_ms"]:
            cells = " | ".join(f"{real[name]['phases_ms'][phase]:.3f}" for name in profiled)
            lines.append(f"| {phase} | {cells} |")
    return "\n".join(lines)


def _big_job_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| store | body | transcripts | accepted s | total s | RSS before MiB | "
        "while streaming MiB | peak MiB (API) | peak MiB (workers) | /readyz ms p50 / p90 / max "
        "while taken in |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['store']} | error: {row['error'][:80]} | | | | | | | | |")
            continue
        streaming = row["rss_while_streaming_mib"] or [0.0]
        workers = ", ".join(f"{m:.0f}" for m in row["worker_peak_rss_mib"]) or "-"
        lines.append(
            f"| {row['store']} | {row['body']} | {row['transcripts']:,} | "
            f"{row['accepted_s']:.1f} | {row['seconds']:.0f} | {row['rss_before_mib']:.0f} | "
            f"{min(streaming):.0f}-{max(streaming):.0f} | {row['peak_rss_mib']:.0f} | "
            f"{workers} | {row['readyz_ms_p50']:.0f} / {row.get('readyz_ms_p90', 0):.0f} / "
            f"{row['readyz_ms_max']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
