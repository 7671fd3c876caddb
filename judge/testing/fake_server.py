"""An OpenAI-compatible (and Anthropic Messages) fake judge server for tests and benchmarks.

It is a real HTTP server (aiohttp, on 127.0.0.1) so that the LLM judge runs litellm's real request
path. Replies come from a script: queued ``Reply`` objects are served first, then a responder
function of the request body. Every request body is recorded. Usage counts tokens as OpenAI does
(GPT-4o's tokenizer), so a dry run's estimate can be checked against what a provider would bill,
and bills repeated prompt prefixes as cached the way OpenAI (automatically) and Anthropic (where
marked) do.

Run it in a thread of the test process (``FakeJudgeServer().start()``) or as its own process
(``python -m judge.testing.fake_server --port 8765 --latency-ms 200``) for benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import tiktoken
from aiohttp import web


@dataclass
class Reply:
    """One scripted response.

    ``content`` is the assistant text; ``top_logprobs`` (token -> probability) adds a logprobs block
    for the first token; ``status`` other than 200 sends ``error_body`` instead, with ``headers``.
    ``delay`` is seconds to wait first. ``refusal`` fills the OpenAI ``message.refusal`` field.
    ``raw_body`` is sent verbatim instead of a completion (a malformed or hostile reply).
    ``finish_reason`` is the choice's (``content_filter``: the provider's filter stopped it).
    """

    content: str | None = ""
    top_logprobs: dict[str, float] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    refusal: str | None = None
    error_body: dict[str, Any] | None = None
    raw_body: bytes | None = None
    finish_reason: str = "stop"


Responder = Callable[[dict[str, Any]], Reply]


@cache
def _encoding() -> tiktoken.Encoding:
    """OpenAI's o200k_base (GPT-4o's tokenizer), read from the copy litellm ships: no download."""
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.origin is not None, "litellm is a dependency"
    tokenizers = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(tokenizers))
    return tiktoken.get_encoding("o200k_base")


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def prompt_token_ids(messages: list[dict[str, Any]]) -> list[int]:
    """The prompt as OpenAI tokenizes it: each message's role and text, with 3 tokens of framing
    per message and 3 more to prime the reply (the framing as placeholder ids)."""
    encoding, ids = _encoding(), []
    for message in messages:
        ids += [
            0,
            0,
            0,
            *encoding.encode(message["role"]),
            *encoding.encode(_text(message.get("content"))),
        ]
    return [*ids, 0, 0, 0]


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens as OpenAI bills them (``prompt_token_ids``)."""
    return len(prompt_token_ids(messages))


class PromptCache:
    """Prompt prefixes a provider has seen, and how much of a new prompt it would bill as
    cached: OpenAI's automatic caching (prefixes of 1,024 tokens and more, in steps of 128),
    or Anthropic's (up to the last block marked ``cache_control``)."""

    STEP = 128
    MINIMUM = 1024

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def automatic(self, ids: list[int]) -> int:
        """Cached tokens of this prompt under automatic caching; remembers its prefixes."""
        ends = range(self.MINIMUM, len(ids) + 1, self.STEP)
        hashes = [hash(tuple(ids[:end])) for end in ends]
        cached = max(
            (end for end, h in zip(ends, hashes, strict=True) if h in self._seen), default=0
        )
        self._seen.update(hashes)
        return cached

    def marked(self, prefix: str) -> bool:
        """Whether this marked prefix was written before (a read), remembering it (a write)."""
        key = hash(("marked", prefix))
        seen = key in self._seen
        self._seen.add(key)
        return seen


def echo_label_responder(body: dict[str, Any]) -> Reply:
    """Default: a valid structured reply naming the first enum value of each schema property."""
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
    reply: dict[str, Any] = {"reasoning": "scripted"}
    for name, spec in schema.get("properties", {}).items():
        if name == "reasoning":
            continue
        if "enum" in spec:
            reply[name] = spec["enum"][0]
        elif spec.get("type") == "array":
            reply[name] = []
        elif spec.get("type") == "string":
            reply[name] = "scripted"
        else:
            reply[name] = spec.get("minimum", 0)
    if body.get("logprobs") and body.get("max_tokens") == 1:
        return Reply(content="50", top_logprobs={"50": 1.0})
    if not schema:  # a free-text grader prompt (Inspect AI, DeepEval): answer in their formats
        logprobs = {"{": 1.0} if body.get("logprobs") else None
        return Reply(content='GRADE: C\n{"score": 8, "reason": "scripted"}', top_logprobs=logprobs)
    return Reply(content=json.dumps(reply))


class FakeJudgeServer:
    """A scripted OpenAI-compatible ``/v1/chat/completions`` endpoint (and Anthropic's
    ``/v1/messages``) on 127.0.0.1."""

    def __init__(
        self,
        responder: Responder = echo_label_responder,
        *,
        latency: float = 0.0,
        record: bool = True,
    ):
        self.responder = responder
        self.latency = latency
        self.record = record
        self.served = 0
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.prompt_cache = PromptCache()
        self.port = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def script(self, *replies: Reply) -> None:
        """Queue replies to serve, in order, before falling back to the responder."""
        self._queue.extend(replies)

    def reset(self) -> None:
        self.requests.clear()
        self._queue.clear()
        self.prompt_cache = PromptCache()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/chat/completions", self._handle)
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def _messages(self, request: web.Request) -> web.Response:
        """Anthropic's Messages API, answered by the same script: the request is read as the
        chat request it stands for (system first, ``output_format``'s schema as the response
        format); the prefix up to the last ``cache_control`` mark is cached as Anthropic does
        (written on first sight, read after)."""
        body = await request.json()
        self.served += 1
        system = body.get("system") or []
        blocks = [
            {"role": "system", **b}
            for b in (system if isinstance(system, list) else [{"type": "text", "text": system}])
        ]
        for message in body["messages"]:
            content = message["content"]
            parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
            blocks += [{"role": message["role"], **part} for part in parts]
        chat = [{"role": b["role"], "content": b.get("text", "")} for b in blocks]
        schema = (body.get("output_format") or {}).get("schema")
        as_chat = {
            "model": body.get("model"),
            "messages": chat,
            **({"response_format": {"json_schema": {"schema": schema}}} if schema else {}),
        }
        if self.record:
            self.requests.append(body)
        reply = self._queue.popleft() if self._queue else self.responder(as_chat)
        if self.latency or reply.delay:
            await asyncio.sleep(self.latency + reply.delay)
        encoding = _encoding()
        total = sum(len(encoding.encode(b.get("text", ""))) for b in blocks)
        marks = [i for i, b in enumerate(blocks) if "cache_control" in b]
        cached = 0
        read = False
        if marks:
            prefix = blocks[: marks[-1] + 1]
            cached = sum(len(encoding.encode(b.get("text", ""))) for b in prefix)
            read = self.prompt_cache.marked(json.dumps(prefix, sort_keys=True))
        return web.json_response(
            {
                "id": f"msg_fake_{next(self._ids)}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "fake"),
                "content": [{"type": "text", "text": reply.content or ""}],
                "stop_reason": "end_turn",
                "usage": {
                    "input_tokens": total - cached,
                    "output_tokens": len(encoding.encode(reply.content or "")) or 1,
                    "cache_read_input_tokens": cached if read else 0,
                    "cache_creation_input_tokens": 0 if read else cached,
                },
            }
        )

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.served += 1
        if self.record:
            self.requests.append(body)
        reply = self._queue.popleft() if self._queue else self.responder(body)
        if self.latency or reply.delay:
            await asyncio.sleep(self.latency + reply.delay)
        if reply.raw_body is not None:
            return web.Response(
                body=reply.raw_body, status=reply.status, content_type="application/json"
            )
        if reply.status != 200:
            error = reply.error_body or {"error": {"message": "scripted failure", "type": "fake"}}
            return web.json_response(error, status=reply.status, headers=reply.headers)
        return web.json_response(self._completion(body, reply), headers=reply.headers)

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.refusal is not None:
            message["refusal"] = reply.refusal
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": reply.finish_reason,
        }
        probabilities = reply.top_logprobs
        if probabilities is not None:
            top = [
                {"token": token, "logprob": math.log(p), "bytes": list(token.encode())}
                for token, p in probabilities.items()
            ]
            best = max(probabilities, key=lambda token: probabilities[token])
            first = next(item for item in top if item["token"] == best)
            choice["logprobs"] = {"content": [{**first, "top_logprobs": top}]}
        ids = prompt_token_ids(body["messages"])
        prompt_tokens, cached = len(ids), self.prompt_cache.automatic(ids)
        completion_tokens = len(_encoding().encode(reply.content or "")) or 1
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }

    def start(self) -> FakeJudgeServer:
        """Serve from a background thread with its own event loop; returns once listening."""
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start_site())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-judge", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake judge server did not start within 10 s")
        return self

    async def _start_site(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeJudgeServer(latency=args.latency_ms / 1000, record=False)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(server.app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
