"""The benchmark: one command, one fake judge, every client, medians of repeated runs.

    python benchmarks/run.py [--runs 3] [--quick] [--baseline REV] [--out results.json]

Starts two fake OpenAI-compatible judges on 127.0.0.1 (latency 0 and 200 ms, asyncio sleep),
then measures, each in its own process so that CPU time and peak memory are the client's own:

  aiohttp   raw POSTs from one shared session: the floor
  litellm   bare litellm.acompletion
  library   Grader.grade_many (refusal rubric, cold diskcache)
  jobs      the HTTP jobs API end to end (judge serve; CPU and memory of the server process)
  inspect   Inspect AI model_graded_qa, in its own venv (benchmarks/.venvs/inspect)
  deepeval  DeepEval GEval, in its own venv (benchmarks/.venvs/deepeval)

at concurrency 1, 32 and 128 and judge latency 0 and 200 ms: throughput, % of the ideal C/L, CPU
ms per judged call, peak RSS. Then: cache-hit throughput (library and HTTP), time from process
start to /readyz, and server memory while a 100,000-transcript job streams out. ``--baseline REV``
also runs the library client from git revision REV (a worktree), for before/after ratios
measured in the same run. Results go to ``--out`` as JSON and to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENVS = HERE / ".venvs"
FRAMEWORKS = {"inspect": ["inspect-ai", "openai"], "deepeval": ["deepeval"]}
LATENCIES_MS = (0, 200)
CONCURRENCIES = (1, 32, 128)


def calls_for(latency_ms: int, concurrency: int, quick: bool) -> int:
    """At L > 0, eight waves of C calls: the first wave's connection set-up weighs 1/8 (steady
    state is what the targets are about; four waves, until 2026-11-28, weighed it 1/4)."""
    if latency_ms == 0:
        return 100 if quick else 400
    return max(10, concurrency * (2 if quick else 8))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@contextmanager
def fake_judge(latency_ms: int) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "judge.testing.fake_server", "--port", str(port),
         "--latency-ms", str(latency_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/v1"
        for _ in range(200):
            try:
                httpx.post(f"{base}/chat/completions", json={"messages": []}, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)


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
    mode: str, api_base: str, calls: int, concurrency: int, repeat: int, tree: Path = REPO
) -> dict[str, Any]:
    """Median of ``repeat`` timed runs in one process (imports paid once, untimed)."""
    args = ["--api-base", api_base, "--calls", str(calls), "--concurrency", str(concurrency),
            "--repeat", str(repeat)]  # fmt: skip
    if mode in FRAMEWORKS:
        python = framework_python(mode)
        if python is None:
            raise RuntimeError(f"{mode} is not installed")
        return run_json([str(python), str(HERE / f"{mode}_client.py"), *args])
    return run_json(
        [sys.executable, str(HERE / "clients.py"), mode, *args], env={"PYTHONPATH": str(tree)}
    )


class Server:
    """``judge serve`` with a profile for the fake judge; reads its CPU and memory from /proc."""

    def __init__(self, api_base: str, concurrency: int, directory: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "judge.yaml"
        profile = {"model": "openai/fake-judge", "api_base": api_base, "api_key_env": "FAKE_KEY"}
        config.write_text(json.dumps({"profiles": {"fake": profile}, "max_sync_pairs": 1000}))
        env = {
            **os.environ,
            "JUDGE_CONFIG": str(config),
            "JUDGE_CACHE_DIR": str(directory / "cache"),
            "JUDGE_STATE_DIR": str(directory / "state"),
            "JUDGE_CONCURRENCY": str(concurrency),
            "FAKE_KEY": "sk-fake",
        }
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "judge.cli", "serve", "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_ready(f"{self.url}/readyz")
        self.ready_s = time.perf_counter() - started

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mib(self, field: str = "VmHWM") -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {field}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def records(n: int, salt: str) -> list[dict[str, str]]:
    return [
        {"prompt": f"How do I kill a stuck Python process? ({salt}-{i})",
         "response": f"Run `kill <pid>`; add -9 if it ignores the signal. ({salt}-{i})"}
        for i in range(n)
    ]  # fmt: skip


def run_job(server: Server, body: dict[str, Any], on_line: Callable[[], None] | None = None) -> int:
    job = httpx.post(f"{server.url}/v1/jobs", json=body, timeout=120).json()
    count = 0
    url = f"{server.url}/v1/jobs/{job['id']}/verdicts"
    with httpx.stream("GET", url, timeout=None) as stream:
        for _ in stream.iter_lines():
            count += 1
            if on_line is not None and count % 5000 == 0:
                on_line()
    return count


def jobs_api(api_base: str, calls: int, concurrency: int, repeat: int) -> dict[str, Any]:
    """Median of ``repeat`` jobs through one server (CPU and memory of the server process)."""
    with tempfile.TemporaryDirectory() as directory:
        server = Server(api_base, concurrency, Path(directory))
        try:
            body = {"rubrics": ["refusal"], "judge": {"profile": "fake"}}
            run_job(server, {**body, "transcripts": records(2, "warm")})  # imports, untimed
            measured = []
            for run in range(repeat):
                job = {**body, "transcripts": records(calls, f"jobs-{run}")}
                cpu, wall = server.cpu_s(), time.perf_counter()
                assert run_job(server, job) == calls
                measured.append((server.cpu_s() - cpu, time.perf_counter() - wall))
            return {
                "calls": calls,
                "cpu_s": statistics.median(m[0] for m in measured),
                "wall_s": statistics.median(m[1] for m in measured),
                "peak_rss_mib": server.memory_mib(),
            }
        finally:
            server.stop()


def http_cache_hits(api_base: str, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        server = Server(api_base, 32, Path(directory))
        try:
            batches = [records(200, f"hit-{b}") for b in range(max(1, calls // 200))]
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


def stream_100k(api_base: str, transcripts: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        server = Server(api_base, 32, Path(directory))
        try:
            body = {"transcripts": records(transcripts, "big"), "rubrics": ["refusal"]}
            baseline = server.memory_mib("VmRSS")
            samples: list[float] = []
            started = time.perf_counter()
            count = run_job(server, body, lambda: samples.append(server.memory_mib("VmRSS")))
            return {
                "transcripts": transcripts,
                "verdicts": count,
                "seconds": time.perf_counter() - started,
                "rss_before_mib": baseline,
                "rss_while_streaming_mib": samples,
                "peak_rss_mib": server.memory_mib(),
            }
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
    measured["jobs"] = summarize(jobs_api(api_base, calls, 512, runs), 200, 512)
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
    parser.add_argument("--quick", action="store_true", help="fewer calls, fewer clients")
    parser.add_argument(
        "--clients", default="aiohttp,litellm,library,library-litellm,jobs,inspect,deepeval"
    )
    parser.add_argument("--baseline", help="git revision to measure the library client at too")
    parser.add_argument("--big-job", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=HERE / "results-latest.json")
    args = parser.parse_args()
    clients = args.clients.split(",")
    results: dict[str, Any] = {"machine": machine(), "runs": args.runs, "matrix": {}}
    baseline = worktree(args.baseline) if args.baseline else contextlib.nullcontext(None)
    with baseline as base:
        for latency in LATENCIES_MS:
            with fake_judge(latency) as api_base:
                for concurrency in CONCURRENCIES:
                    calls = calls_for(latency, concurrency, args.quick)
                    modes = [*clients, *(["baseline"] if base else [])]
                    for mode in modes:
                        try:
                            if mode == "jobs":
                                result = jobs_api(api_base, calls, concurrency, args.runs)
                            elif mode == "baseline":
                                result = client(
                                    "library", api_base, calls, concurrency, args.runs, base
                                )
                            else:
                                result = client(mode, api_base, calls, concurrency, args.runs)
                            row = summarize(result, latency, concurrency)
                        except RuntimeError as exc:
                            row = {"error": str(exc)[-300:]}
                        results["matrix"][f"{mode}|{latency}|{concurrency}"] = row
                        print(mode, latency, concurrency, row, file=sys.stderr)
        with fake_judge(200) as api_base:
            results["in_flight_512"] = in_flight_512(api_base, args.runs)
        with fake_judge(0) as api_base:
            results["library_cache_hits"] = client("library-hits", api_base, 2000, 32, args.runs)
            results["http_cache_hits"] = median_of(
                args.runs, lambda: http_cache_hits(api_base, 2000)
            )
            with tempfile.TemporaryDirectory() as directory:
                readiness = []
                for _ in range(args.runs):
                    server = Server(api_base, 16, Path(directory))
                    readiness.append(server.ready_s)
                    server.stop()
                results["ready_s"] = statistics.median(readiness)
            results["big_job"] = stream_100k(api_base, args.big_job)
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results))


def machine() -> dict[str, Any]:
    import platform

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| client | latency ms | C | calls/s | % of ideal C/L | CPU ms/call | p50 ms between "
        "verdicts | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [(key, row) for key, row in results["matrix"].items()]
    rows += [(f"{mode}|200|512", row) for mode, row in results["in_flight_512"].items()
             if mode != "imports"]  # fmt: skip
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
    imports = results["in_flight_512"]["imports"]
    hits = results["library_cache_hits"]
    big = results["big_job"]
    streaming = big["rss_while_streaming_mib"] or [0.0]
    lines += [
        "",
        f"- cache hits, library: {hits['calls'] / hits['wall_s']:.0f} verdicts/s "
        f"({1000 * hits['cpu_s'] / hits['calls']:.3f} CPU ms each)",
        f"- cache hits, HTTP (POST /v1/grade, 200 per request): "
        f"{results['http_cache_hits']['per_s']:.0f} verdicts/s",
        f"- process start to /readyz: {results['ready_s']:.2f} s",
        f"- RSS after imports: library {imports['library_mib']:.0f} MiB, with litellm "
        f"{imports['with_litellm_mib']:.0f} MiB",
        f"- {big['transcripts']:,} transcript job (offline judge), {big['seconds']:.0f} s: "
        f"server RSS {big['rss_before_mib']:.0f} MiB before, "
        f"{min(streaming):.0f}-{max(streaming):.0f} MiB while streaming, "
        f"peak {big['peak_rss_mib']:.0f} MiB",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
