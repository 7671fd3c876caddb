"""A fake OpenAI Files + Batches API beside the fake judge's chat completions, for tests and
benchmarks.

``FakeBatchServer`` is a ``FakeJudgeServer`` (same script, same responder, same completion bodies)
that also serves ``/v1/files`` and ``/v1/batches``. A batch's requests are answered by the
responder that answers live calls, one after another over ``batch_seconds``; ``hold`` keeps
batches in progress until it is cleared; ``expire_after`` ends each batch ``expired`` once that
many of its requests are answered (the output file has those, the error file the rest, as
OpenAI's expired batches do). Counts: ``batches_created``, ``batch_api_requests`` (every Files and
Batches request), ``polls`` (by batch id), ``batch_bodies`` (the requests batches answered).

Run it as its own process: ``python -m judge.testing.fake_batches --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

from aiohttp import web

from judge.testing.fake_server import FakeJudgeServer, Reply, Responder, echo_label_responder


class FakeBatchServer(FakeJudgeServer):
    """A fake judge that also takes OpenAI-style batches (see the module)."""

    def __init__(
        self,
        responder: Responder = echo_label_responder,
        *,
        latency: float = 0.0,
        record: bool = True,
        batch_seconds: float = 0.0,
        expire_after: int | None = None,
    ):
        super().__init__(responder, latency=latency, record=record)
        self.batch_seconds = batch_seconds
        self.expire_after = expire_after
        self.hold = False
        self.fail_with: str | None = None
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batches_created = 0
        self.batch_api_requests = 0
        self.polls: Counter[str] = Counter()
        self.batch_bodies: list[dict[str, Any]] = []
        self._file_ids = itertools.count(1)
        self._batch_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches/{id}", self._get)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)
        return app

    def _file(self, content: bytes) -> str:
        file_id = f"file-fake-{next(self._file_ids)}"
        self.files[file_id] = content
        return file_id

    async def _upload(self, request: web.Request) -> web.Response:
        self.batch_api_requests += 1
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
            return _error(400, "a batch input file needs purpose=batch and a file")
        content = upload.file.read()
        file_id = self._file(content)
        return web.json_response(
            {"id": file_id, "object": "file", "bytes": len(content), "purpose": "batch"}
        )

    async def _content(self, request: web.Request) -> web.Response:
        self.batch_api_requests += 1
        content = self.files.get(request.match_info["id"])
        if content is None:
            return _error(404, "no such file")
        return web.Response(body=content, content_type="application/octet-stream")

    async def _create(self, request: web.Request) -> web.Response:
        self.batch_api_requests += 1
        body = await request.json()
        content = self.files.get(body.get("input_file_id", ""))
        if content is None:
            return _error(400, "no such input file")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return _error(400, "endpoint must be /v1/chat/completions, completion_window 24h")
        self.batches_created += 1
        batch_id = f"batch_fake_{next(self._batch_ids)}"
        lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "errors": None,
        }
        self.batches[batch_id] = batch
        task = asyncio.create_task(self._process(batch, lines))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(batch)

    async def _get(self, request: web.Request) -> web.Response:
        self.batch_api_requests += 1
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _error(404, "no such batch")
        self.polls[batch["id"]] += 1
        return web.json_response(batch)

    async def _cancel(self, request: web.Request) -> web.Response:
        self.batch_api_requests += 1
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _error(404, "no such batch")
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            batch["status"] = "cancelling"
        return web.json_response(batch)

    async def _process(self, batch: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        """Answer the requests one by one, as the live endpoint would, then write the files."""
        problem = self.fail_with or _invalid(lines)
        if problem is not None:
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "invalid", "message": problem}]}
            return
        batch["status"] = "in_progress"
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        pause = self.batch_seconds / max(len(lines), 1)
        for number, line in enumerate(lines):
            while self.hold and batch["status"] == "in_progress":
                await asyncio.sleep(0.02)
            if pause:
                await asyncio.sleep(pause)
            expired = self.expire_after is not None and number >= self.expire_after
            if expired or batch["status"] == "cancelling":
                errors.append(_unrun(line, "batch_expired" if expired else "batch_cancelled"))
                continue
            body = line["body"]
            if self.record:
                self.batch_bodies.append(body)
            reply = self._queue.popleft() if self._queue else self.responder(body)
            answer = self._answer(line, body, reply)
            (outputs if answer["response"]["status_code"] == 200 else errors).append(answer)
            counts = batch["request_counts"]
            counts["completed" if answer["response"]["status_code"] == 200 else "failed"] += 1
        if self.expire_after is not None and len(lines) > self.expire_after:
            final = "expired"
        elif batch["status"] == "cancelling":
            final = "cancelled"
        else:
            final = "completed"
        batch["status"] = "finalizing"
        if outputs:
            batch["output_file_id"] = self._file(_jsonl(outputs))
        if errors:
            batch["error_file_id"] = self._file(_jsonl(errors))
        batch["request_counts"]["failed"] = len(errors)
        batch["status"] = final

    def _answer(self, line: dict[str, Any], body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        if reply.status != 200:
            error = reply.error_body or {"error": {"message": "scripted failure", "type": "fake"}}
            response = {"status_code": reply.status, "request_id": "fake", "body": error}
        else:
            completion = self._completion(body, reply)
            response = {"status_code": 200, "request_id": "fake", "body": completion}
        answer_id = f"batch_req_{line['custom_id'][:12]}"
        return {
            "id": answer_id,
            "custom_id": line["custom_id"],
            "response": response,
            "error": None,
        }

    def release(self) -> None:
        """Let held batches go on."""
        self.hold = False


def _invalid(lines: list[dict[str, Any]]) -> str | None:
    """Why OpenAI would refuse this input file, if it would."""
    ids = [line.get("custom_id") for line in lines]
    if len(set(ids)) != len(ids):
        return "custom_id values must be unique"
    if len({line.get("body", {}).get("model") for line in lines}) > 1:
        return "all requests of a batch must use one model"
    if any(line.get("url") != "/v1/chat/completions" for line in lines):
        return "every request must go to /v1/chat/completions"
    return None


def _unrun(line: dict[str, Any], code: str) -> dict[str, Any]:
    message = "This request could not be executed before the completion window expired."
    error = {"code": code, "message": message}
    return {"id": None, "custom_id": line["custom_id"], "response": None, "error": error}


def _jsonl(items: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in items).encode()


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request"}}, status=status
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--batch-seconds", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeBatchServer(
        latency=args.latency_ms / 1000, record=False, batch_seconds=args.batch_seconds
    )
    web.run_app(server.app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
