"""Runs inside the judge container (no network): grade examples/ over HTTP, print the summary."""

import json
import sys
import time
import urllib.request

BASE = "http://127.0.0.1:8000"


def wait_ready(timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            urllib.request.urlopen(f"{BASE}/readyz", timeout=1)
            return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    sys.exit("the server did not become ready")


def grade(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    body = json.dumps({"transcripts": records, "rubrics": ["refusal"]}).encode()
    request = urllib.request.Request(
        f"{BASE}/v1/grade", body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["summary"]


if __name__ == "__main__":
    waited = wait_ready()
    summary = grade(sys.argv[1])
    print(json.dumps({"ready_wait_s": round(waited, 2), **summary}))
