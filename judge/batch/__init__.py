"""Provider batch mode: a run's uncached judge calls sent as provider batches at the batch price,
their replies read exactly as live ones and cached, so the grading pass answers from the cache.

    api.py      BatchAPI: OpenAI-compatible Files + Batches over httpx; Batch, BatchStatus
    state.py    BatchState (the batches of one set of calls), the Ledger that keeps it across
                restarts, FileLedger (the CLI's, beside the cache)
    prewarm.py  prewarm (submit, poll, read into the cache), Prewarmed.settle, cancel_batches

Only OpenAI's Batch API (and servers that copy it) is spoken: judges on other providers are
refused with a ``BatchError`` before anything is sent.
"""

from judge.batch.api import BatchAPI, BatchStatus
from judge.batch.prewarm import (
    BATCH_WITHOUT_BUDGET,
    BatchOptions,
    Prewarmed,
    batch_endpoint,
    cancel_batches,
    endpoints,
    prewarm,
)
from judge.batch.state import BatchState, FileLedger, Ledger, ProviderBatch, SubmittedBatch

__all__ = [
    "BATCH_WITHOUT_BUDGET",
    "BatchAPI",
    "BatchOptions",
    "BatchState",
    "BatchStatus",
    "FileLedger",
    "Ledger",
    "Prewarmed",
    "ProviderBatch",
    "SubmittedBatch",
    "batch_endpoint",
    "cancel_batches",
    "endpoints",
    "prewarm",
]
