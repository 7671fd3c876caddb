"""The jobs API measured: throughput and CPU per verdict on SQLite and on Redis (API + workers),
the CPU split by phase (py-spy), a 100,000-transcript job's memory and ``/readyz`` latency while
it is taken in, and how verdicts/s grow with a second worker."""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import phases
import workload
from deploy import Deployment, Scaled, cpu_s, deployment, memory_mib, run_job, stream, submit


def job_body(kind: str, n: int, salt: str, profile: str | None = "fake") -> dict[str, Any]:
    body: dict[str, Any] = {
        "rubrics": [workload.RUBRIC[kind]],
        "transcripts": workload.records(kind, n, salt),
    }
    if profile is not None:
        body["judge"] = {"profile": profile}
    return body


def timed(made: Deployment, body: dict[str, Any]) -> dict[str, Any]:
    """One job through a running deployment: verdicts, wall seconds from the submission to the
    stream's end, seconds to the 202, and CPU seconds of each judge process."""
    per_process = {name: made.processes[name].pid for name in made.processes if name != "redis"}
    before = {name: cpu_s(pid) for name, pid in per_process.items()}
    started = time.perf_counter()
    count, accepted = run_job(made.url, body)
    wall = time.perf_counter() - started
    cpu = {name: cpu_s(pid) - before[name] for name, pid in per_process.items()}
    return {"calls": count, "wall_s": wall, "accepted_s": accepted, "cpu": cpu,
            "cpu_s": sum(cpu.values()), "peak_rss_mib": made.memory_mib()}  # fmt: skip


def jobs_api(
    store: str, api_base: str, calls: int, concurrency: int, repeat: int, kind: str = "short"
) -> dict[str, Any]:
    """Median of ``repeat`` jobs of ``calls`` transcripts through one deployment (``store``
    ``sqlite`` or ``redis``); CPU of the judge processes."""
    with deployment(store, api_base, concurrency) as made:
        run_job(made.url, job_body(kind, 8, "warm"))  # imports, first connections: untimed
        runs = [
            timed(made, job_body(kind, calls, f"{store}-{kind}-{run}-{time.time()}"))
            for run in range(repeat)
        ]
        return {
            "calls": calls,
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "accepted_s": statistics.median(r["accepted_s"] for r in runs),
            "peak_rss_mib": made.memory_mib(),
        }


def profiled(made: Deployment, body: dict[str, Any], directory: Path) -> dict[str, float]:
    """One job under py-spy: CPU ms per verdict by phase (``phases_ms``)."""
    directory.mkdir(parents=True, exist_ok=True)
    with made.profiled(directory) as files:
        run = timed(made, body)
    return phases_ms(files, run)


def phases_ms(files: dict[str, Path], run: dict[str, Any]) -> dict[str, float]:
    """Each phase's CPU ms per verdict, summed over processes: a process's share of samples in
    the phase times its measured CPU per verdict in the profiled run."""
    total: dict[str, float] = {}
    for name, path in files.items():
        if not path.exists():
            continue
        per_verdict = 1000 * run["cpu"][name] / run["calls"]
        for phase, share in phases.shares(path).items():
            total[phase] = total.get(phase, 0.0) + share * per_verdict
    return total


_PROBE = """
import json, sys, threading, time
import httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
latencies = []
with httpx.Client(timeout=30) as client:
    client.get(sys.argv[1])
    print("ready", flush=True)
    while not stop.is_set():
        started = time.perf_counter()
        client.get(sys.argv[1])
        latencies.append(time.perf_counter() - started)
        stop.wait(0.05)
print(json.dumps(latencies), flush=True)
"""


class _ReadyProbe:
    """Times ``/readyz`` every 50 ms until stopped, from a process of its own (as a kubelet
    would: the client sending the body would otherwise delay the probe with its own GIL)."""

    def __init__(self, url: str):
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PROBE, f"{url}/readyz"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stdin is not None
        self.process.stdout.readline()  # connected, probing
        self.latencies: list[float] = []

    def stop(self) -> None:
        assert self.process.stdout is not None and self.process.stdin is not None
        self.process.stdin.close()
        self.latencies = json.loads(self.process.stdout.read().splitlines()[-1])
        self.process.wait(10)


def big_job(
    store: str, api_base: str, transcripts: int, *, ndjson: bool, profile: str | None
) -> dict[str, Any]:
    """A job of ``transcripts`` real transcripts, submitted as one JSON body (or NDJSON), graded
    and streamed to the end: the API process's RSS before, its peak from start to end (and each
    worker's), and ``/readyz`` latency while the body is taken in."""
    with deployment(store, api_base, 32) as made:
        run_job(made.url, job_body("real", 8, "warm", profile))
        spec = {k: v for k, v in job_body("real", 0, "x", profile).items() if k != "transcripts"}
        records = workload.records("real", transcripts, "big")
        if ndjson:
            lines = [json.dumps(spec), *(json.dumps(r) for r in records)]
            body, content_type = ("\n".join(lines) + "\n").encode(), "application/x-ndjson"
        else:
            body, content_type = json.dumps({**spec, "transcripts": records}).encode(), (
                "application/json")  # fmt: skip
        del records
        before = made.memory_mib("VmRSS")
        probe = _ReadyProbe(made.url)
        started = time.perf_counter()
        job = submit(made.url, body, content_type)
        accepted = time.perf_counter() - started
        probe.stop()
        del body
        samples: list[float] = []
        count = stream(
            made.url,
            job["id"],
            lambda n: samples.append(made.memory_mib("VmRSS")) if n % 5000 == 0 else None,
        )
        return {
            "transcripts": transcripts,
            "body": "ndjson" if ndjson else "json",
            "verdicts": count,
            "accepted_s": accepted,
            "seconds": time.perf_counter() - started,
            "rss_before_mib": before,
            "rss_while_streaming_mib": samples,
            "peak_rss_mib": made.memory_mib(),
            "worker_peak_rss_mib": [
                memory_mib(p.pid) for n, p in made.processes.items() if n.startswith("worker")
            ],
            "readyz_ms_max": 1000 * max(probe.latencies, default=0.0),
            "readyz_ms_p50": 1000 * statistics.median(probe.latencies or [0.0]),
            "readyz_ms_p90": 1000 * statistics.quantiles(probe.latencies or [0.0] * 2, n=10)[-1],
            "readyz_probes": len(probe.latencies),
        }


def scaling(api_base: str, transcripts: int, concurrency: int, jobs: int) -> dict[str, Any]:
    """Verdicts/s of one and of two workers (each with ``concurrency`` calls in flight, so that
    a worker is bound by the judge's latency) on ``jobs`` jobs that together hold
    ``transcripts`` transcripts, submitted at once and streamed to their ends."""
    measured: dict[str, Any] = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as directory:
            made = Scaled(api_base, concurrency, Path(directory), workers=workers)
            try:
                run_job(made.url, job_body("real", 4, "warm"))
                bodies = [
                    json.dumps(job_body("real", transcripts // jobs, f"scale-{workers}-{j}"))
                    for j in range(jobs)
                ]
                started = time.perf_counter()
                ids = [submit(made.url, body.encode())["id"] for body in bodies]
                with ThreadPoolExecutor(len(ids)) as streams:
                    counts = list(streams.map(functools.partial(stream, made.url), ids))
                seconds = time.perf_counter() - started
                measured[f"{workers}"] = {
                    "verdicts": sum(counts),
                    "seconds": seconds,
                    "per_s": sum(counts) / seconds,
                }
            finally:
                made.stop()
    measured["ratio"] = measured["2"]["per_s"] / measured["1"]["per_s"]
    measured["ideal_per_worker_s"] = concurrency / 0.2
    return measured
