"""A Python client for the judge service (``judge serve``): ``Client`` and ``AsyncClient``.

    with Client("http://judge:8000", api_key="...") as client:  # else JUDGE_URL, JUDGE_API_KEY
        job = client.submit(records, ["refusal"], judge="mini")
        for verdict in client.verdicts(job.id):  # each verdict once, across restarts
            ...

Both speak the server's own models (``judge.wire``, ``judge.verdict``) and import neither FastAPI,
Redis nor litellm.

**One protocol, two thin clients.** Everything but I/O is written once, as pure pieces:
``calls`` (each request as data: method, path, canonical JSON body, headers, how to read the
reply, whether it may be sent again) and ``resume`` (the retry policy as tenacity arguments, which
``Retrying`` and ``AsyncRetrying`` take alike; its time budget; a verdict stream's cursor). The
two classes in ``clients`` only send calls and run two short loops (``verdicts``, ``wait``), line
for line the same but for ``await``. A sync client driving the async one on a private event loop
was the alternative: it needs a thread per client and iterators that cross event loops, for no
less code.

**Retries.** Connection errors and 429/502/503/504 are retried (``Retry-After`` honoured) until
the service has been away for ``max_wait`` seconds (default 60): then ``JudgeUnavailableError``.
``grade`` is sent again only when it cannot have reached the server, since grading twice could pay
for judge calls twice; ``submit`` carries an ``Idempotency-Key`` (the sha256 of its canonical body
unless given), so sending it again never makes a second job. Any other error reply raises at once
as ``JudgeAPIError``, with the problem details the server sent.

**Resuming.** ``verdicts`` counts the complete NDJSON lines it has yielded and, whenever the
connection drops (a restart, a proxy, a read timeout on an idle stream), reopens the stream with
``?cursor=<lines received>``: the server keeps the order fixed, so no verdict is skipped or
repeated.
"""

from judge.client.calls import DEFAULT_URL, JudgeLike, TranscriptLike
from judge.client.clients import AsyncClient, Client
from judge.client.errors import JudgeAPIError, JudgeClientError, JudgeUnavailableError

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "Client",
    "JudgeAPIError",
    "JudgeClientError",
    "JudgeLike",
    "JudgeUnavailableError",
    "TranscriptLike",
]
