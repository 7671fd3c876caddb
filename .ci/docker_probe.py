"""Probes for .ci/docker-test (standard library only).

``probe.py FILE``: inside the judge container (no network), grade FILE over HTTP, print the summary.
``probe.py FILE URL_A URL_B``: on the host, against two API containers and a worker container on
one Redis: submit FILE as a job to A, stream its verdicts from B, then grade FILE on both (each must
be all cache hits); print what was seen.
"""

import json
import sys
import time
import urllib.request


def wait_ready(base: str, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            urllib.request.urlopen(f"{base}/readyz", timeout=1)
            return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{base} did not become ready")


def call(base: str, path: str, body: dict | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base}{path}", data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def batch(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return {"transcripts": records, "rubrics": ["refusal"]}


def scale_out(path: str, a: str, b: str) -> dict:
    job = json.loads(call(a, "/v1/jobs", batch(path)))
    lines = call(b, f"/v1/jobs/{job['id']}/verdicts").decode().splitlines()  # follows to the end
    final = json.loads(call(b, f"/v1/jobs/{job['id']}"))
    hits = [json.loads(call(base, "/v1/grade", batch(path)))["summary"] for base in (a, b)]
    return {
        "job_state": final["state"],
        "streamed_from_b": len(lines),
        "worker_calls": final["summary"]["judge_calls"],
        "cache_hits_a": hits[0]["cache_hits"],
        "cache_hits_b": hits[1]["cache_hits"],
        "calls_a_b": hits[0]["judge_calls"] + hits[1]["judge_calls"],
    }


if __name__ == "__main__":
    if len(sys.argv) == 4:
        for base in sys.argv[2:]:
            wait_ready(base)
        print(json.dumps(scale_out(*sys.argv[1:])))
    else:
        waited = wait_ready("http://127.0.0.1:8000")
        summary = json.loads(call("http://127.0.0.1:8000", "/v1/grade", batch(sys.argv[1])))
        print(json.dumps({"ready_wait_s": round(waited, 2), **summary["summary"]}))
