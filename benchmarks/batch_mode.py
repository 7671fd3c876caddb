"""Batch mode against live grading: one job of real XSTest completions (the refusal rubric,
judged as gpt-4o-mini, priced from litellm's table) submitted to the jobs API once live and once
with ``mode: batch``, each with a cold cache, against the fake OpenAI judge with its Files +
Batches API. Reports the HTTP requests the judge's endpoint received, wall time, judge calls,
tokens and cost.

    python benchmarks/batch_mode.py [--transcripts 1000] [--latency-ms 200] [--batch-seconds 5]

The fake answers a batch's requests over ``--batch-seconds`` (a real provider takes minutes to
24 hours), so the batch's wall time here is the judge's own overhead plus that wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx

from judge.client import AsyncClient
from judge.config import Settings
from judge.datasets import load_xstest
from judge.judges import JudgeProfile
from judge.server import create_app
from judge.testing.fake_batches import FakeBatchServer
from judge.transports import litellm_module

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("JUDGE_SHARED_DATA", REPO.parent / "shared" / "data"))


async def run_job(
    fake: FakeBatchServer, records: list[dict[str, Any]], mode: str, poll_seconds: float
) -> dict[str, Any]:
    os.environ["FAKE_KEY"] = "sk-fake"
    with tempfile.TemporaryDirectory() as state:
        profile = JudgeProfile(
            model="openai/gpt-4o-mini", api_base=fake.api_base, api_key_env="FAKE_KEY"
        )
        settings = Settings(
            cache_dir=Path(state) / "cache",
            state_dir=Path(state) / "state",
            profiles={"mini": profile},
            concurrency=16,
            batch_poll_seconds=poll_seconds,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with AsyncClient("http://judge", transport=transport) as client:
                chat, batch_api = fake.served, fake.batch_api_requests
                started = time.perf_counter()
                job = await client.submit(records, ["refusal"], judge="mini", mode=mode)
                done = await client.wait(job.id, timeout=3600, poll=0.2)
                wall = time.perf_counter() - started
    summary = done.summary
    return {
        "mode": mode,
        "state": done.state,
        "graded": summary.graded,
        "wall_s": round(wall, 2),
        "chat_requests": fake.served - chat,
        "batch_api_requests": fake.batch_api_requests - batch_api,
        "judge_calls": summary.judge_calls,
        "tokens": summary.tokens,
        "cost_usd": round(summary.cost_usd, 6),
        "batches": [b.model_dump(mode="json") for b in done.batches],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--batch-seconds", type=float, default=5.0)
    parser.add_argument("--poll-seconds", type=float, default=1.0)
    args = parser.parse_args()
    transcripts = load_xstest(SHARED / "xstest")[: args.transcripts]
    records = [t.model_dump(mode="json", exclude_none=True) for t in transcripts]
    fake = FakeBatchServer(
        latency=args.latency_ms / 1000, record=False, batch_seconds=args.batch_seconds
    )
    fake.start()
    await asyncio.to_thread(litellm_module)  # its import (seconds) is in neither timing
    try:
        rows = [await run_job(fake, records, mode, args.poll_seconds) for mode in ("live", "batch")]
    finally:
        fake.stop()
    print(f"{len(records)} XSTest transcripts, refusal rubric, judge openai/gpt-4o-mini (fake), "
          f"live latency {args.latency_ms:.0f} ms at concurrency 16, batch answered over "
          f"{args.batch_seconds:.0f} s, polled every {args.poll_seconds} s\n")  # fmt: skip
    print("| mode | graded | wall s | chat requests | batch API requests | judge calls | tokens "
          "| cost USD |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['mode']} | {row['graded']} | {row['wall_s']} | {row['chat_requests']} | "
            f"{row['batch_api_requests']} | {row['judge_calls']} | {row['tokens']} | "
            f"{row['cost_usd']:.4f} |"
        )
    print(json.dumps(rows, indent=1), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
